//! `grid key …`: generating, inspecting and storing keys. None of these talk to a node.

use crate::{
    accounts::KeystoreLocation,
    cli::KeyCommand,
    keystore::{looks_like_secret_uri, PassphraseUse},
    output::Rendered,
};
use anyhow::{anyhow, Context, Result};
use gridchain_primitives::{account::DEFAULT_ADDRESS_PREFIX, hash::encode_hex, AccountId, Pair};
use serde_json::json;

pub fn run(command: KeyCommand, keystore: &KeystoreLocation) -> Result<Rendered> {
    match command {
        KeyCommand::Generate { save } => generate(save.as_deref(), keystore),
        KeyCommand::Inspect { input, show_secret } => inspect(&input, show_secret, keystore),
        KeyCommand::Add { name, secret_uri } => add(&name, &secret_uri, keystore),
        KeyCommand::List => list(keystore),
        KeyCommand::Remove { name } => remove(&name, keystore),
        KeyCommand::Encrypt => encrypt(keystore),
    }
}

/// The passphrase source of `keystore`'s commands.
fn passphrase(
    keystore: &KeystoreLocation,
) -> impl Fn(&std::path::Path, PassphraseUse) -> Result<zeroize::Zeroizing<String>> + '_ {
    |path, use_| keystore.passphrase(path, use_)
}

fn public_key_hex(account: &AccountId) -> String {
    encode_hex(&account.0)
}

fn generate(save: Option<&str>, keystore: &KeystoreLocation) -> Result<Rendered> {
    let mnemonic = Pair::generate_mnemonic();
    let account = Pair::from_uri(&mnemonic)
        .context("generated mnemonic does not derive a key")?
        .public();
    let mut text = format!(
        "mnemonic:   {mnemonic}\naddress:    {account}\npublic key: {}\n",
        public_key_hex(&account)
    );
    let mut json = json!({
        "mnemonic": mnemonic,
        "address": account,
        "publicKey": public_key_hex(&account),
    });
    if let Some(name) = save {
        let mut store = keystore.open()?;
        store.add(name, &mnemonic, &passphrase(keystore))?;
        text.push_str(&format!(
            "saved as:   {name} in {}\n",
            store.path().display()
        ));
        json["savedAs"] = json!(name);
        json["keystore"] = json!(store.path());
    }
    text.push_str(
        "Write the mnemonic down and keep it secret: it is the only way to recover this key.",
    );
    Ok(Rendered::new(json, text))
}

fn inspect(input: &str, show_secret: bool, keystore: &KeystoreLocation) -> Result<Rendered> {
    let input = input.trim();
    if looks_like_secret_uri(input) {
        let pair = Pair::from_uri(input).context("invalid secret URI")?;
        return Ok(describe_pair(&pair, None, show_secret));
    }
    let address_error = match AccountId::from_address(input) {
        Ok((account, prefix)) => {
            let mut text = format!(
                "address:    {input}\npublic key: {}\nprefix:     {prefix}",
                public_key_hex(&account)
            );
            if prefix != DEFAULT_ADDRESS_PREFIX {
                text.push_str(&format!(
                    " (gridchain uses {DEFAULT_ADDRESS_PREFIX}: {account})"
                ));
            }
            let json = json!({
                "address": input,
                "publicKey": public_key_hex(&account),
                "prefix": prefix,
            });
            return Ok(Rendered::new(json, text));
        }
        Err(e) => e,
    };
    let store = keystore.open()?;
    let not_found =
        || anyhow!("'{input}' is not a secret URI, an address ({address_error}) or a key name");
    if !show_secret {
        // The address is enough: no passphrase needed.
        let account = store.account(input)?.ok_or_else(not_found)?;
        return Ok(describe_account(&account, Some(input), None));
    }
    match store.get(input, &passphrase(keystore))? {
        Some(key) => Ok(describe_pair(&key.pair, Some(&key.name), show_secret)),
        None => Err(not_found()),
    }
}

fn describe_pair(pair: &Pair, name: Option<&str>, show_secret: bool) -> Rendered {
    let seed = show_secret.then(|| pair.seed());
    describe_account(&pair.public(), name, seed.as_ref().map(|seed| &seed[..]))
}

fn describe_account(account: &AccountId, name: Option<&str>, seed: Option<&[u8]>) -> Rendered {
    let mut text = String::new();
    let mut json = json!({
        "address": account,
        "publicKey": public_key_hex(account),
    });
    if let Some(name) = name {
        text.push_str(&format!("name:        {name}\n"));
        json["name"] = json!(name);
    }
    text.push_str(&format!(
        "address:     {account}\npublic key:  {}",
        public_key_hex(account)
    ));
    if let Some(seed) = seed {
        let seed = encode_hex(seed);
        text.push_str(&format!("\nsecret seed: {seed}"));
        json["secretSeed"] = json!(seed);
    }
    Rendered::new(json, text)
}

fn add(name: &str, secret_uri: &str, keystore: &KeystoreLocation) -> Result<Rendered> {
    let mut store = keystore.open()?;
    let key = store.add(name, secret_uri, &passphrase(keystore))?;
    let json = json!({
        "name": key.name,
        "address": key.account(),
        "keystore": store.path(),
    });
    let text = format!(
        "added {} ({}) to {}",
        key.name,
        key.account(),
        store.path().display()
    );
    Ok(Rendered::new(json, text))
}

fn list(keystore: &KeystoreLocation) -> Result<Rendered> {
    let store = keystore.open()?;
    let keys = store.accounts()?;
    let json = json!({
        "keystore": store.path(),
        "keys": keys
            .iter()
            .map(|(name, account)| json!({ "name": name, "address": account }))
            .collect::<Vec<_>>(),
    });
    let text = if keys.is_empty() {
        format!("no keys in {}", store.path().display())
    } else {
        let width = keys.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        keys.iter()
            .map(|(name, account)| format!("{name:width$}  {account}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Rendered::new(json, text))
}

fn remove(name: &str, keystore: &KeystoreLocation) -> Result<Rendered> {
    let mut store = keystore.open()?;
    let account = store.remove(name, &passphrase(keystore))?;
    let json = json!({ "removed": name, "address": account });
    let text = format!("removed {name} ({account})");
    Ok(Rendered::new(json, text))
}

fn encrypt(keystore: &KeystoreLocation) -> Result<Rendered> {
    let mut store = keystore.open()?;
    let encrypted_now = store.encrypt(&passphrase(keystore))?;
    let json = json!({ "keystore": store.path(), "encryptedNow": encrypted_now });
    let text = if encrypted_now {
        format!("encrypted {}", store.path().display())
    } else {
        format!("{} is encrypted already", store.path().display())
    };
    Ok(Rendered::new(json, text))
}
