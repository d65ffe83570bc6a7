//! The keystore: named keys in one JSON file only its owner can read, their secret URIs
//! encrypted with a passphrase.
//!
//! Format (version 2):
//!
//! ```json
//! {
//!   "version": 2,
//!   "kdf": { "algorithm": "argon2id", "memoryKib": 19456, "iterations": 2, "parallelism": 1,
//!            "salt": "0x<16 random bytes>" },
//!   "check": "0x<sealed>",
//!   "keys": { "<name>": { "address": "<address>", "sealedSecretUri": "0x<sealed>" } }
//! }
//! ```
//!
//! - The passphrase is stretched with Argon2id into a master key ([`zstor::crypto`]); salt and
//!   cost parameters are the file's own (a fresh random salt whenever a keystore is encrypted).
//! - Every secret URI is sealed with [`MasterKey::seal_secret`] (XChaCha20-Poly1305, random
//!   nonce, under a key derived from the master key for sealed secrets only). Its associated
//!   data is `"gridchain wallet keystore v2 entry"`, the salt, the name (length-prefixed) and the
//!   address: an entry moved to another name or another file, or given another address, does
//!   not open.
//! - `check` seals a constant under associated data `"gridchain wallet keystore v2 check"` ++
//!   salt: it tells a wrong passphrase ("wrong keystore passphrase") from a modified entry, and
//!   lets `add` refuse a wrong passphrase before sealing anything with it.
//! - Addresses stay in the clear: listing keys and resolving a name to an address need no
//!   passphrase; only reading a secret (signing, `key inspect --show-secret`) and adding a key
//!   do. Removing a key from an encrypted keystore needs none either.
//!
//! Version 1 (`{"version": 1, "keys": {"<name>": {"secretUri": "<secret uri>"}}}`, secrets in
//! plain text) is still read. The first change to such a keystore (`key add`, `key remove`,
//! `key generate --save`, or `key encrypt`) asks for a new passphrase and rewrites every key in
//! version 2; plain text is never written.
//!
//! Whatever the version: the file is created with mode 0600 (never briefly wider), every change
//! is written to a temporary file in the same directory and renamed over the old one (so a crash
//! leaves the old or the new keystore, never half of one), and a keystore that the group or
//! others may access is refused.

use anyhow::{anyhow, bail, Context, Result};
use gridchain_primitives::{
    hash::{decode_hex, encode_hex},
    secret_file::{self, SecretFileError},
    AccountId, Pair,
};
use serde::{Deserialize, Serialize};
use std::{
    collections::BTreeMap,
    fs::{self, DirBuilder, OpenOptions},
    io::{ErrorKind, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};
use zeroize::{Zeroize, Zeroizing};
use zstor::crypto::{KdfParams, KeySource, MasterKey};

const PLAIN_VERSION: u32 = 1;
const FORMAT_VERSION: u32 = 2;
const KDF_ALGORITHM: &str = "argon2id";
const ENTRY_AD_DOMAIN: &[u8] = b"gridchain wallet keystore v2 entry";
const CHECK_AD_DOMAIN: &[u8] = b"gridchain wallet keystore v2 check";
const CHECK_PLAINTEXT: &[u8] = b"gridchain wallet keystore";

/// Where the keystore lives when neither `--keystore` nor `GRID_KEYSTORE` says:
/// `$XDG_CONFIG_HOME/grid/keystore.json`, else `~/.config/grid/keystore.json`.
pub fn default_path() -> Result<PathBuf> {
    let config_dir = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .context("cannot locate the keystore: neither XDG_CONFIG_HOME nor HOME is set (use --keystore)")?;
            PathBuf::from(home).join(".config")
        }
    };
    Ok(config_dir.join("grid").join("keystore.json"))
}

/// Why a passphrase is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassphraseUse {
    /// To open an encrypted keystore.
    Unlock,
    /// To encrypt a keystore for the first time: a prompt should ask twice.
    New,
}

/// Where the passphrase comes from: called only when a secret is read or a keystore written.
pub type PassphraseSource<'a> = &'a dyn Fn(&Path, PassphraseUse) -> Result<Zeroizing<String>>;

#[derive(Debug, Deserialize)]
struct VersionOnly {
    version: u32,
}

/// A key of a version-1 keystore; the secret is wiped when dropped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlainKey {
    secret_uri: String,
}

impl Drop for PlainKey {
    fn drop(&mut self) {
        self.secret_uri.zeroize();
    }
}

#[derive(Deserialize)]
struct PlainFile {
    keys: BTreeMap<String, PlainKey>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KdfJson {
    algorithm: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SealedKeyJson {
    address: AccountId,
    sealed_secret_uri: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedFileJson {
    version: u32,
    kdf: KdfJson,
    check: String,
    keys: BTreeMap<String, SealedKeyJson>,
}

#[derive(Debug, Clone)]
struct SealedKey {
    account: AccountId,
    sealed: Vec<u8>,
}

/// The contents of a version-2 keystore.
#[derive(Debug, Clone)]
struct Sealed {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: [u8; 16],
    check: Vec<u8>,
    keys: BTreeMap<String, SealedKey>,
}

impl Sealed {
    fn kdf_params(&self) -> KdfParams {
        KdfParams::Argon2id {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
            parallelism: self.parallelism,
            salt: self.salt,
        }
    }

    fn check_ad(&self) -> Vec<u8> {
        [CHECK_AD_DOMAIN, &self.salt[..]].concat()
    }

    /// Associated data of an entry: domain ++ salt ++ name length (u32 LE) ++ name ++ public key.
    fn entry_ad(&self, name: &str, account: &AccountId) -> Vec<u8> {
        let name_len = u32::try_from(name.len()).unwrap_or(u32::MAX).to_le_bytes();
        [
            ENTRY_AD_DOMAIN,
            &self.salt[..],
            &name_len[..],
            name.as_bytes(),
            &account.0[..],
        ]
        .concat()
    }

    /// A new, empty keystore under `passphrase`: fresh salt, production Argon2id costs.
    fn create(passphrase: Zeroizing<String>) -> Result<(Sealed, MasterKey)> {
        let source = KeySource::Passphrase(passphrase);
        let params = source.fresh_kdf_params();
        let KdfParams::Argon2id {
            memory_kib,
            iterations,
            parallelism,
            salt,
        } = params
        else {
            bail!("a passphrase gave no Argon2id parameters");
        };
        let master = source
            .master_key(&params)
            .map_err(|e| anyhow!("cannot derive the keystore key: {e}"))?;
        let mut sealed = Sealed {
            memory_kib,
            iterations,
            parallelism,
            salt,
            check: Vec::new(),
            keys: BTreeMap::new(),
        };
        sealed.check = master
            .seal_secret(&sealed.check_ad(), CHECK_PLAINTEXT)
            .map_err(|e| anyhow!("{e}"))?;
        Ok((sealed, master))
    }

    /// The master key, if `passphrase` is the keystore's.
    fn unlock(&self, path: &Path, passphrase: Zeroizing<String>) -> Result<MasterKey> {
        let master = KeySource::Passphrase(passphrase)
            .master_key(&self.kdf_params())
            .map_err(|e| anyhow!("keystore {}: {e}", path.display()))?;
        match master.open_secret(&self.check_ad(), &self.check) {
            Some(check) if check.as_slice() == CHECK_PLAINTEXT => Ok(master),
            _ => bail!("wrong keystore passphrase for {}", path.display()),
        }
    }

    fn insert(&mut self, master: &MasterKey, name: &str, secret_uri: &str) -> Result<NamedKey> {
        let key = named_key(name, secret_uri)?;
        let account = key.account();
        let sealed = master
            .seal_secret(&self.entry_ad(name, &account), secret_uri.as_bytes())
            .map_err(|e| anyhow!("{e}"))?;
        self.keys
            .insert(name.to_string(), SealedKey { account, sealed });
        Ok(key)
    }

    fn to_json(&self) -> SealedFileJson {
        SealedFileJson {
            version: FORMAT_VERSION,
            kdf: KdfJson {
                algorithm: KDF_ALGORITHM.to_string(),
                memory_kib: self.memory_kib,
                iterations: self.iterations,
                parallelism: self.parallelism,
                salt: encode_hex(&self.salt),
            },
            check: encode_hex(&self.check),
            keys: self
                .keys
                .iter()
                .map(|(name, key)| {
                    let json = SealedKeyJson {
                        address: key.account,
                        sealed_secret_uri: encode_hex(&key.sealed),
                    };
                    (name.clone(), json)
                })
                .collect(),
        }
    }

    fn from_json(file: SealedFileJson) -> Result<Sealed, String> {
        if file.kdf.algorithm != KDF_ALGORITHM {
            return Err(format!(
                "unknown key derivation '{}' (this grid knows {KDF_ALGORITHM})",
                file.kdf.algorithm
            ));
        }
        let hex = |what: &str, text: &str| {
            decode_hex(text).map_err(|e| format!("{what} is not 0x-prefixed hex: {e}"))
        };
        let salt = <[u8; 16]>::try_from(hex("kdf.salt", &file.kdf.salt)?)
            .map_err(|_| "kdf.salt is not 16 bytes".to_string())?;
        let keys = file
            .keys
            .into_iter()
            .map(|(name, key)| {
                let sealed = hex(&format!("key '{name}'"), &key.sealed_secret_uri)?;
                let key = SealedKey {
                    account: key.address,
                    sealed,
                };
                Ok((name, key))
            })
            .collect::<Result<_, String>>()?;
        Ok(Sealed {
            memory_kib: file.kdf.memory_kib,
            iterations: file.kdf.iterations,
            parallelism: file.kdf.parallelism,
            salt,
            check: hex("check", &file.check)?,
            keys,
        })
    }
}

enum Contents {
    /// A version-1 keystore, or none yet (empty).
    Plain(BTreeMap<String, PlainKey>),
    Sealed(Sealed),
}

/// A key of the keystore, with its secret.
#[derive(Debug)]
pub struct NamedKey {
    pub name: String,
    pub pair: Pair,
}

impl NamedKey {
    pub fn account(&self) -> AccountId {
        self.pair.public()
    }
}

/// The keystore file at one path. A missing file is an empty keystore.
pub struct Keystore {
    path: PathBuf,
    contents: Contents,
}

impl std::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystore")
            .field("path", &self.path)
            .field("encrypted", &self.is_encrypted())
            .finish_non_exhaustive()
    }
}

impl Keystore {
    /// Reads the keystore at `path`, refusing it if group or others may access it. Needs no
    /// passphrase: secrets stay sealed until [`Self::get`].
    pub fn open(path: &Path) -> Result<Self> {
        let unreadable = || format!("cannot read keystore {}", path.display());
        let invalid = |reason: &dyn std::fmt::Display| {
            anyhow!("keystore {} is invalid: {reason}", path.display())
        };
        match secret_file::check_private(path) {
            Err(SecretFileError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                return Ok(Keystore {
                    path: path.to_path_buf(),
                    contents: Contents::Plain(BTreeMap::new()),
                })
            }
            Err(e) => bail!("keystore: {e}"),
            Ok(()) => {}
        }
        let text = Zeroizing::new(fs::read_to_string(path).with_context(unreadable)?);
        let version: VersionOnly = serde_json::from_str(&text)
            .with_context(|| format!("keystore {} is not valid JSON", path.display()))?;
        let contents = match version.version {
            PLAIN_VERSION => {
                let file: PlainFile = serde_json::from_str(&text).map_err(|e| invalid(&e))?;
                Contents::Plain(file.keys)
            }
            FORMAT_VERSION => {
                let file: SealedFileJson = serde_json::from_str(&text).map_err(|e| invalid(&e))?;
                Contents::Sealed(Sealed::from_json(file).map_err(|e| invalid(&e))?)
            }
            other => bail!(
                "keystore {} has format version {other}, this grid reads versions \
                 {PLAIN_VERSION} and {FORMAT_VERSION}",
                path.display()
            ),
        };
        Ok(Keystore {
            path: path.to_path_buf(),
            contents,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file is a version-2 (encrypted) keystore.
    pub fn is_encrypted(&self) -> bool {
        matches!(self.contents, Contents::Sealed(_))
    }

    /// The address of the key called `name`, if any; needs no passphrase.
    pub fn account(&self, name: &str) -> Result<Option<AccountId>> {
        match &self.contents {
            Contents::Plain(keys) => keys
                .get(name)
                .map(|key| named_key(name, &key.secret_uri).map(|key| key.account()))
                .transpose(),
            Contents::Sealed(sealed) => Ok(sealed.keys.get(name).map(|key| key.account)),
        }
    }

    /// Every key's name and address, sorted by name; needs no passphrase.
    pub fn accounts(&self) -> Result<Vec<(String, AccountId)>> {
        match &self.contents {
            Contents::Plain(keys) => keys
                .iter()
                .map(|(name, key)| Ok((name.clone(), named_key(name, &key.secret_uri)?.account())))
                .collect(),
            Contents::Sealed(sealed) => Ok(sealed
                .keys
                .iter()
                .map(|(name, key)| (name.clone(), key.account))
                .collect()),
        }
    }

    /// The key called `name`, with its secret, if any. The passphrase is asked only if there is
    /// such a key and the keystore is encrypted.
    pub fn get(&self, name: &str, passphrase: PassphraseSource<'_>) -> Result<Option<NamedKey>> {
        let sealed = match &self.contents {
            Contents::Plain(keys) => {
                return keys
                    .get(name)
                    .map(|key| named_key(name, &key.secret_uri))
                    .transpose()
            }
            Contents::Sealed(sealed) => sealed,
        };
        let Some(key) = sealed.keys.get(name) else {
            return Ok(None);
        };
        let master = sealed.unlock(&self.path, passphrase(&self.path, PassphraseUse::Unlock)?)?;
        let modified = || {
            anyhow!(
                "key '{name}' in keystore {} does not decrypt with the right passphrase: \
                 the file was modified",
                self.path.display()
            )
        };
        let secret_uri = master
            .open_secret(&sealed.entry_ad(name, &key.account), &key.sealed)
            .ok_or_else(modified)?;
        let secret_uri = std::str::from_utf8(&secret_uri).map_err(|_| modified())?;
        let named = named_key(name, secret_uri)?;
        if named.account() != key.account {
            return Err(modified());
        }
        Ok(Some(named))
    }

    /// Adds `name` and saves. Fails, before asking for a passphrase, if the name is taken or
    /// the secret URI gives no key. A version-1 or new keystore is encrypted under a new
    /// passphrase ([`PassphraseUse::New`]).
    pub fn add(
        &mut self,
        name: &str,
        secret_uri: &str,
        passphrase: PassphraseSource<'_>,
    ) -> Result<NamedKey> {
        validate_name(name)?;
        let secret_uri = secret_uri.trim();
        if self.account(name)?.is_some() {
            bail!("key '{name}' already exists in {}", self.path.display());
        }
        named_key(name, secret_uri)?;
        let (mut sealed, master) = match &self.contents {
            Contents::Sealed(sealed) => {
                let master =
                    sealed.unlock(&self.path, passphrase(&self.path, PassphraseUse::Unlock)?)?;
                (sealed.clone(), master)
            }
            Contents::Plain(_) => self.encrypted(passphrase)?,
        };
        let key = sealed.insert(&master, name, secret_uri)?;
        self.replace(sealed)?;
        Ok(key)
    }

    /// Removes `name` and saves; returns the removed key's address. An encrypted keystore needs
    /// no passphrase for this; a version-1 keystore is encrypted under a new one.
    pub fn remove(&mut self, name: &str, passphrase: PassphraseSource<'_>) -> Result<AccountId> {
        let Some(account) = self.account(name)? else {
            bail!("no key named '{name}' in {}", self.path.display());
        };
        let mut sealed = match &self.contents {
            Contents::Sealed(sealed) => sealed.clone(),
            Contents::Plain(_) => self.encrypted(passphrase)?.0,
        };
        sealed.keys.remove(name);
        self.replace(sealed)?;
        Ok(account)
    }

    /// Encrypts a version-1 (or not yet existing) keystore under a new passphrase and saves it;
    /// `false` if it was encrypted already (nothing is asked or written then).
    pub fn encrypt(&mut self, passphrase: PassphraseSource<'_>) -> Result<bool> {
        if self.is_encrypted() {
            return Ok(false);
        }
        let (sealed, _) = self.encrypted(passphrase)?;
        self.replace(sealed)?;
        Ok(true)
    }

    /// The keys of a version-1 keystore sealed under a new passphrase.
    fn encrypted(&self, passphrase: PassphraseSource<'_>) -> Result<(Sealed, MasterKey)> {
        let Contents::Plain(keys) = &self.contents else {
            bail!("keystore {} is encrypted already", self.path.display());
        };
        let (mut sealed, master) = Sealed::create(passphrase(&self.path, PassphraseUse::New)?)?;
        for (name, key) in keys {
            sealed.insert(&master, name, &key.secret_uri)?;
        }
        Ok((sealed, master))
    }

    /// Saves `sealed`, then keeps it as the contents.
    fn replace(&mut self, sealed: Sealed) -> Result<()> {
        self.save(&sealed)?;
        self.contents = Contents::Sealed(sealed);
        Ok(())
    }

    /// Writes the keystore atomically: a new 0600 file beside it, synced, then renamed over it.
    fn save(&self, sealed: &Sealed) -> Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
        let file_name = self
            .path
            .file_name()
            .with_context(|| format!("keystore path {} has no file name", self.path.display()))?;
        let mut temp_name = file_name.to_os_string();
        temp_name.push(format!(".tmp-{}", std::process::id()));
        let temp_path = dir.join(temp_name);
        let contents = serde_json::to_string_pretty(&sealed.to_json())?;
        let written = write_private_file(&temp_path, contents.as_bytes())
            .and_then(|()| fs::rename(&temp_path, &self.path));
        if let Err(e) = written {
            let _ = fs::remove_file(&temp_path);
            return Err(e)
                .with_context(|| format!("cannot write keystore {}", self.path.display()));
        }
        Ok(())
    }
}

/// Creates `path` with mode 0600 (failing if it exists) and writes `contents` durably.
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn named_key(name: &str, secret_uri: &str) -> Result<NamedKey> {
    let pair = Pair::from_uri(secret_uri)
        .with_context(|| format!("key '{name}' has an invalid secret URI"))?;
    Ok(NamedKey {
        name: name.to_string(),
        pair,
    })
}

/// Whether `text` is written like a secret URI (`//Name`, `0x…` seed, or a phrase of words)
/// rather than like a key name or an address.
pub fn looks_like_secret_uri(text: &str) -> bool {
    let text = text.trim();
    text.starts_with("//") || text.starts_with("0x") || text.contains(char::is_whitespace)
}

/// Key names are short words that cannot be mistaken for a secret URI or an address.
fn validate_name(name: &str) -> Result<()> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.is_empty() || name.len() > 64 || !valid_chars {
        bail!("invalid key name '{name}': use 1 to 64 letters, digits, '-', '_' or '.'");
    }
    if looks_like_secret_uri(name) || name.parse::<AccountId>().is_ok() {
        bail!("invalid key name '{name}': it reads as a secret URI or an address");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::{cell::RefCell, os::unix::fs::PermissionsExt};

    const PASSPHRASE: &str = "correct horse battery staple";

    fn temp_keystore() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested").join("keystore.json");
        (dir, path)
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    fn pass(_: &Path, _: PassphraseUse) -> Result<Zeroizing<String>> {
        Ok(Zeroizing::new(PASSPHRASE.to_string()))
    }

    fn wrong(_: &Path, _: PassphraseUse) -> Result<Zeroizing<String>> {
        Ok(Zeroizing::new("not the passphrase".to_string()))
    }

    fn never(_: &Path, use_: PassphraseUse) -> Result<Zeroizing<String>> {
        panic!("no passphrase should be asked ({use_:?})")
    }

    fn names(store: &Keystore) -> Vec<String> {
        store
            .accounts()
            .expect("accounts")
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    fn missing_file_is_an_empty_keystore() {
        let (_dir, path) = temp_keystore();
        let store = Keystore::open(&path).expect("open");
        assert!(store.accounts().expect("accounts").is_empty());
        assert!(store.get("alice", &never).expect("get").is_none());
        assert!(!path.exists(), "opening must not create the file");
    }

    #[test]
    fn add_get_remove_round_trip_with_private_encrypted_file() {
        let (_dir, path) = temp_keystore();
        let asked = RefCell::new(Vec::new());
        let recording = |_: &Path, use_: PassphraseUse| {
            asked.borrow_mut().push(use_);
            Ok(Zeroizing::new(PASSPHRASE.to_string()))
        };
        let mut store = Keystore::open(&path).expect("open");
        let added = store.add("alice", "//Alice", &recording).expect("add");
        assert_eq!(added.account(), Pair::dev("Alice").public());
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(path.parent().expect("parent")), 0o700);
        assert_eq!(*asked.borrow(), [PassphraseUse::New]);

        let reopened = Keystore::open(&path).expect("reopen");
        assert!(reopened.is_encrypted());
        let alice = reopened
            .get("alice", &recording)
            .expect("get")
            .expect("present");
        assert_eq!(alice.account(), Pair::dev("Alice").public());
        assert!(reopened.get("bob", &never).expect("get").is_none());
        assert_eq!(
            reopened.account("alice").expect("account"),
            Some(Pair::dev("Alice").public())
        );

        let mut store = reopened;
        assert!(
            store.add("alice", "//Bob", &never).is_err(),
            "duplicate name"
        );
        store.add("bob", "//Bob", &recording).expect("add bob");
        assert_eq!(
            *asked.borrow(),
            [
                PassphraseUse::New,
                PassphraseUse::Unlock,
                PassphraseUse::Unlock
            ]
        );
        assert_eq!(names(&store), ["alice", "bob"]);
        assert_eq!(
            store.remove("alice", &never).expect("remove"),
            Pair::dev("Alice").public()
        );
        assert!(store.remove("alice", &never).is_err());
        let reopened = Keystore::open(&path).expect("reopen");
        assert_eq!(names(&reopened), ["bob"]);
        let bob = reopened.get("bob", &pass).expect("get").expect("present");
        assert_eq!(bob.account(), Pair::dev("Bob").public());
        assert_eq!(mode_of(&path), 0o600);
        let leftovers = fs::read_dir(path.parent().expect("parent"))
            .expect("read dir")
            .count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
    }

    #[test]
    fn the_file_holds_no_secret_and_production_argon2_costs() {
        let (_dir, path) = temp_keystore();
        let phrase = Pair::generate_mnemonic();
        let mut store = Keystore::open(&path).expect("open");
        store.add("alice", "//Alice", &pass).expect("add");
        store.add("words", &phrase, &pass).expect("add");
        let text = fs::read_to_string(&path).expect("read");
        for secret in ["//Alice", "Alice", phrase.as_str(), PASSPHRASE] {
            assert!(!text.contains(secret), "{secret:?} in the file:\n{text}");
        }
        for word in phrase.split_whitespace().filter(|w| w.len() > 4) {
            assert!(!text.contains(word), "mnemonic word {word:?} in the file");
        }
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(json["version"], 2);
        assert_eq!(json["kdf"]["algorithm"], "argon2id");
        assert!(json["kdf"]["memoryKib"].as_u64().expect("memory") >= 19 * 1024);
        assert!(json["kdf"]["iterations"].as_u64().expect("iterations") >= 2);
        assert_eq!(
            json["keys"]["alice"]["address"],
            Pair::dev("Alice").public().to_string()
        );
    }

    #[test]
    fn a_wrong_passphrase_is_refused_and_changes_nothing() {
        let (_dir, path) = temp_keystore();
        Keystore::open(&path)
            .expect("open")
            .add("alice", "//Alice", &pass)
            .expect("add");
        let before = fs::read(&path).expect("read");
        let mut store = Keystore::open(&path).expect("open");
        let err = store.get("alice", &wrong).expect_err("wrong passphrase");
        assert!(
            err.to_string().starts_with("wrong keystore passphrase"),
            "{err}"
        );
        let err = store
            .add("bob", "//Bob", &wrong)
            .expect_err("wrong passphrase");
        assert!(
            err.to_string().starts_with("wrong keystore passphrase"),
            "{err}"
        );
        assert_eq!(fs::read(&path).expect("read"), before, "file unchanged");
        assert_eq!(names(&store), ["alice"]);
    }

    #[test]
    fn entries_swapped_between_names_or_files_do_not_open() {
        let (dir, path) = temp_keystore();
        let mut store = Keystore::open(&path).expect("open");
        store.add("alice", "//Alice", &pass).expect("add");
        store.add("bob", "//Bob", &pass).expect("add");
        let mut json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).expect("read")).expect("json");
        let keys = json["keys"].as_object_mut().expect("keys");
        let alice = keys["alice"]["sealedSecretUri"].clone();
        let bob = keys["bob"]["sealedSecretUri"].clone();
        keys.get_mut("alice").expect("alice")["sealedSecretUri"] = bob;
        keys.get_mut("bob").expect("bob")["sealedSecretUri"] = alice.clone();
        let swapped = dir.path().join("swapped.json");
        write_private_file(&swapped, json.to_string().as_bytes()).expect("write");
        let store = Keystore::open(&swapped).expect("open");
        for name in ["alice", "bob"] {
            let err = store.get(name, &pass).expect_err("swapped");
            assert!(err.to_string().contains("was modified"), "{err}");
        }

        // The same name in another keystore (same passphrase, other salt) does not open either.
        let other = dir.path().join("other.json");
        let mut store = Keystore::open(&other).expect("open");
        store.add("alice", "//Charlie", &pass).expect("add");
        let mut json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&other).expect("read")).expect("json");
        json["keys"]["alice"]["sealedSecretUri"] = alice;
        json["keys"]["alice"]["address"] = json!(Pair::dev("Alice").public());
        fs::remove_file(&other).expect("remove");
        write_private_file(&other, json.to_string().as_bytes()).expect("write");
        let err = Keystore::open(&other)
            .expect("open")
            .get("alice", &pass)
            .expect_err("moved between files");
        assert!(err.to_string().contains("was modified"), "{err}");
    }

    #[test]
    fn a_version_1_keystore_is_read_and_encrypted_on_the_first_write() {
        let (dir, _) = temp_keystore();
        let path = dir.path().join("keystore.json");
        write_private_file(
            &path,
            br#"{"version": 1, "keys": {"alice": {"secretUri": "//Alice"}}}"#,
        )
        .expect("write");
        let mut store = Keystore::open(&path).expect("open");
        assert!(!store.is_encrypted());
        assert_eq!(names(&store), ["alice"]);
        let alice = store.get("alice", &never).expect("get").expect("present");
        assert_eq!(alice.account(), Pair::dev("Alice").public());

        let asked = RefCell::new(Vec::new());
        let recording = |_: &Path, use_: PassphraseUse| {
            asked.borrow_mut().push(use_);
            Ok(Zeroizing::new(PASSPHRASE.to_string()))
        };
        store.add("bob", "//Bob", &recording).expect("add");
        assert_eq!(*asked.borrow(), [PassphraseUse::New]);
        let text = fs::read_to_string(&path).expect("read");
        assert!(
            !text.contains("//Alice") && !text.contains("//Bob"),
            "{text}"
        );
        assert_eq!(mode_of(&path), 0o600);
        let reopened = Keystore::open(&path).expect("reopen");
        assert!(reopened.is_encrypted());
        for (name, dev) in [("alice", "Alice"), ("bob", "Bob")] {
            let key = reopened.get(name, &pass).expect("get").expect("present");
            assert_eq!(key.account(), Pair::dev(dev).public());
        }
    }

    #[test]
    fn encrypt_and_remove_upgrade_a_version_1_keystore() {
        let (dir, _) = temp_keystore();
        let plain = br#"{"version": 1, "keys": {"alice": {"secretUri": "//Alice"}, "bob": {"secretUri": "//Bob"}}}"#;
        let path = dir.path().join("keystore.json");
        write_private_file(&path, plain).expect("write");
        let mut store = Keystore::open(&path).expect("open");
        assert!(store.encrypt(&pass).expect("encrypt"));
        assert!(!store.encrypt(&never).expect("again"), "already encrypted");
        assert!(!fs::read_to_string(&path).expect("read").contains("//Alice"));
        assert_eq!(
            names(&Keystore::open(&path).expect("reopen")),
            ["alice", "bob"]
        );

        let path = dir.path().join("removed.json");
        write_private_file(&path, plain).expect("write");
        let mut store = Keystore::open(&path).expect("open");
        store.remove("alice", &pass).expect("remove");
        let text = fs::read_to_string(&path).expect("read");
        assert!(!text.contains("//Bob"), "{text}");
        let reopened = Keystore::open(&path).expect("reopen");
        assert_eq!(names(&reopened), ["bob"]);
        assert!(reopened.get("bob", &pass).expect("get").is_some());
    }

    #[test]
    fn refuses_group_or_world_accessible_file() {
        let (_dir, path) = temp_keystore();
        Keystore::open(&path)
            .expect("open")
            .add("alice", "//Alice", &pass)
            .expect("add");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = Keystore::open(&path).expect_err("must refuse 0644");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(Keystore::open(&path).is_err());
    }

    #[test]
    fn rejects_bad_names_and_secrets_before_asking_a_passphrase() {
        let (_dir, path) = temp_keystore();
        let mut store = Keystore::open(&path).expect("open");
        let alice_address = Pair::dev("Alice").public().to_string();
        for name in [
            "",
            "two words",
            "//Alice",
            "0xabc",
            "a/b",
            alice_address.as_str(),
        ] {
            assert!(store.add(name, "//Alice", &never).is_err(), "name {name:?}");
        }
        assert!(store.add("broken", "not a mnemonic", &never).is_err());
        assert!(!path.exists(), "nothing valid was added");
    }

    #[test]
    fn refuses_unknown_format_version() {
        let (dir, _) = temp_keystore();
        let path = dir.path().join("keystore.json");
        write_private_file(&path, br#"{"version": 3, "keys": {}}"#).expect("write");
        let err = Keystore::open(&path).expect_err("version 3");
        assert!(err.to_string().contains("format version 3"), "{err}");
    }
}
