//! Turning what the user typed into accounts and signing keys: addresses, key names of the
//! keystore, and secret URIs.

use crate::{
    keystore::{self, Keystore, PassphraseUse},
    passphrase,
};
use anyhow::{bail, Context, Result};
use gridchain_primitives::{AccountId, Pair};
use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};
use zeroize::Zeroizing;

/// The keystore file chosen by `--keystore`/`GRID_KEYSTORE`, or the default one, and its
/// passphrase once asked (so one command asks at most once).
pub struct KeystoreLocation {
    explicit: Option<PathBuf>,
    passphrase: OnceLock<Zeroizing<String>>,
}

impl std::fmt::Debug for KeystoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoreLocation")
            .field("explicit", &self.explicit)
            .finish_non_exhaustive()
    }
}

impl KeystoreLocation {
    pub fn new(explicit: Option<PathBuf>) -> Self {
        KeystoreLocation {
            explicit,
            passphrase: OnceLock::new(),
        }
    }

    pub fn open(&self) -> Result<Keystore> {
        let path = match &self.explicit {
            Some(path) => path.clone(),
            None => keystore::default_path()?,
        };
        Keystore::open(&path)
    }

    /// The keystore passphrase ([`passphrase::read`]), asked at most once per run.
    pub fn passphrase(&self, path: &Path, use_: PassphraseUse) -> Result<Zeroizing<String>> {
        if let Some(passphrase) = self.passphrase.get() {
            return Ok(passphrase.clone());
        }
        let passphrase = passphrase::read(path, use_)?;
        Ok(self.passphrase.get_or_init(|| passphrase).clone())
    }
}

/// An account given as an address (prefix 42) or as the name of a keystore key.
pub fn resolve_account(text: &str, keystore: &KeystoreLocation) -> Result<AccountId> {
    let text = text.trim();
    let address_error = match text.parse::<AccountId>() {
        Ok(account) => return Ok(account),
        Err(e) => e,
    };
    if keystore::looks_like_secret_uri(text) {
        bail!("'{text}' is not an address: {address_error}");
    }
    match keystore.open()?.account(text)? {
        Some(account) => Ok(account),
        None => bail!("'{text}' is neither an address ({address_error}) nor a key name"),
    }
}

/// The signing key of `--from`: a keystore key name or a secret URI.
pub fn resolve_signer(from: Option<&str>, keystore: &KeystoreLocation) -> Result<Pair> {
    let Some(from) = from.map(str::trim) else {
        bail!("no signer: pass --from <key name|secret URI>");
    };
    if keystore::looks_like_secret_uri(from) {
        return Pair::from_uri(from).context("--from is not a valid secret URI");
    }
    let store = keystore.open()?;
    match store.get(from, &|path, use_| keystore.passphrase(path, use_))? {
        Some(key) => Ok(key.pair),
        None => bail!(
            "no signer: no key named '{from}' in {} (give a key name or a secret URI)",
            store.path().display()
        ),
    }
}
