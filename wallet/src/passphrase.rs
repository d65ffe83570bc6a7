//! The keystore passphrase: `GRID_PASSWORD` for scripts, else a prompt without echo on the
//! terminal. Asked only when a secret is read from an encrypted keystore or a keystore is
//! written.

use crate::keystore::PassphraseUse;
use anyhow::{bail, Context, Result};
use std::{io::IsTerminal, path::Path};
use zeroize::Zeroizing;

/// The environment variable holding the keystore passphrase.
pub const ENV: &str = "GRID_PASSWORD";

/// Reads the passphrase of the keystore at `path`: `GRID_PASSWORD` if set, else from the
/// terminal (twice for a new passphrase), else an error saying to set `GRID_PASSWORD`. An empty
/// passphrase is refused.
pub fn read(path: &Path, use_: PassphraseUse) -> Result<Zeroizing<String>> {
    if let Some(value) = std::env::var_os(ENV) {
        let Ok(passphrase) = value.into_string().map(Zeroizing::new) else {
            bail!("{ENV} is not valid UTF-8");
        };
        if passphrase.is_empty() {
            bail!("{ENV} is empty: the keystore passphrase may not be empty");
        }
        return Ok(passphrase);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "the keystore {} needs a passphrase and there is no terminal to ask for it: set {ENV}",
            path.display()
        );
    }
    let prompt = match use_ {
        PassphraseUse::Unlock => format!("Passphrase of keystore {}: ", path.display()),
        PassphraseUse::New => format!("New passphrase for keystore {}: ", path.display()),
    };
    let passphrase = prompt_password(&prompt)?;
    if passphrase.is_empty() {
        bail!("empty passphrase refused");
    }
    if use_ == PassphraseUse::New {
        let again = prompt_password("Repeat the passphrase: ")?;
        if again != passphrase {
            bail!("the two passphrases differ; nothing was written");
        }
    }
    Ok(passphrase)
}

fn prompt_password(prompt: &str) -> Result<Zeroizing<String>> {
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .context("cannot read the passphrase from the terminal")
}
