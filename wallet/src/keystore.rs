//! The keystore: named secret URIs in one JSON file only its owner can read.
//!
//! Format: `{"version": 1, "keys": {"<name>": {"secretUri": "<secret uri>"}}}`. Secrets are
//! stored in plain text; what protects them is the file mode. The file is created with mode 0600
//! (never briefly wider), every change is written to a temporary file in the same directory and
//! renamed over the old one (so a crash leaves the old or the new keystore, never half of one),
//! and a keystore that the group or others may access is refused.

use anyhow::{bail, Context, Result};
use gridchain_primitives::{
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

const FORMAT_VERSION: u32 = 1;
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredKey {
    secret_uri: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeystoreFile {
    version: u32,
    keys: BTreeMap<String, StoredKey>,
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
#[derive(Debug)]
pub struct Keystore {
    path: PathBuf,
    keys: BTreeMap<String, StoredKey>,
}

impl Keystore {
    /// Reads the keystore at `path`, refusing it if group or others may access it.
    pub fn open(path: &Path) -> Result<Self> {
        let unreadable = || format!("cannot read keystore {}", path.display());
        match secret_file::check_private(path) {
            Err(SecretFileError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                return Ok(Keystore {
                    path: path.to_path_buf(),
                    keys: BTreeMap::new(),
                })
            }
            Err(e) => bail!("keystore: {e}"),
            Ok(()) => {}
        }
        let text = fs::read_to_string(path).with_context(unreadable)?;
        let file: KeystoreFile = serde_json::from_str(&text)
            .with_context(|| format!("keystore {} is not valid JSON", path.display()))?;
        if file.version != FORMAT_VERSION {
            bail!(
                "keystore {} has format version {}, this grid reads version {FORMAT_VERSION}",
                path.display(),
                file.version
            );
        }
        Ok(Keystore {
            path: path.to_path_buf(),
            keys: file.keys,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key called `name`, if any.
    pub fn get(&self, name: &str) -> Result<Option<NamedKey>> {
        self.keys
            .get(name)
            .map(|stored| named_key(name, stored))
            .transpose()
    }

    /// Every key, sorted by name.
    pub fn keys(&self) -> Result<Vec<NamedKey>> {
        self.keys
            .iter()
            .map(|(name, stored)| named_key(name, stored))
            .collect()
    }

    /// Adds `name` and saves. Fails if the name is taken or the secret URI gives no key.
    pub fn add(&mut self, name: &str, secret_uri: &str) -> Result<NamedKey> {
        validate_name(name)?;
        if self.keys.contains_key(name) {
            bail!("key '{name}' already exists in {}", self.path.display());
        }
        let stored = StoredKey {
            secret_uri: secret_uri.trim().to_string(),
        };
        let key = named_key(name, &stored)?;
        self.keys.insert(name.to_string(), stored);
        self.save()?;
        Ok(key)
    }

    /// Removes `name` and saves; returns the removed key.
    pub fn remove(&mut self, name: &str) -> Result<NamedKey> {
        let Some(stored) = self.keys.remove(name) else {
            bail!("no key named '{name}' in {}", self.path.display());
        };
        self.save()?;
        named_key(name, &stored)
    }

    /// Writes the keystore atomically: a new 0600 file beside it, synced, then renamed over it.
    fn save(&self) -> Result<()> {
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
        let contents = serde_json::to_string_pretty(&KeystoreFile {
            version: FORMAT_VERSION,
            keys: self.keys.clone(),
        })?;
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

fn named_key(name: &str, stored: &StoredKey) -> Result<NamedKey> {
    let pair = Pair::from_uri(&stored.secret_uri)
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
    use std::os::unix::fs::PermissionsExt;

    fn temp_keystore() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested").join("keystore.json");
        (dir, path)
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn missing_file_is_an_empty_keystore() {
        let (_dir, path) = temp_keystore();
        let store = Keystore::open(&path).expect("open");
        assert!(store.keys().expect("keys").is_empty());
        assert!(!path.exists(), "opening must not create the file");
    }

    #[test]
    fn add_get_remove_round_trip_with_private_file() {
        let (_dir, path) = temp_keystore();
        let mut store = Keystore::open(&path).expect("open");
        let added = store.add("alice", "//Alice").expect("add");
        assert_eq!(added.account(), Pair::dev("Alice").public());
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(path.parent().expect("parent")), 0o700);

        let reopened = Keystore::open(&path).expect("reopen");
        let alice = reopened.get("alice").expect("get").expect("present");
        assert_eq!(alice.account(), Pair::dev("Alice").public());
        assert!(reopened.get("bob").expect("get").is_none());

        let mut store = reopened;
        assert!(store.add("alice", "//Bob").is_err(), "duplicate name");
        store.add("bob", "//Bob").expect("add bob");
        let names: Vec<String> = store
            .keys()
            .expect("keys")
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, ["alice", "bob"]);
        store.remove("alice").expect("remove");
        assert!(store.remove("alice").is_err());
        let reopened = Keystore::open(&path).expect("reopen");
        assert_eq!(reopened.keys().expect("keys").len(), 1);
        assert_eq!(mode_of(&path), 0o600);
        let leftovers = fs::read_dir(path.parent().expect("parent"))
            .expect("read dir")
            .count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
    }

    #[test]
    fn refuses_group_or_world_accessible_file() {
        let (_dir, path) = temp_keystore();
        Keystore::open(&path)
            .expect("open")
            .add("alice", "//Alice")
            .expect("add");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = Keystore::open(&path).expect_err("must refuse 0644");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(Keystore::open(&path).is_err());
    }

    #[test]
    fn rejects_bad_names_and_secrets() {
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
            assert!(store.add(name, "//Alice").is_err(), "name {name:?}");
        }
        assert!(store.add("broken", "not a mnemonic").is_err());
        assert!(!path.exists(), "nothing valid was added");
    }

    #[test]
    fn refuses_unknown_format_version() {
        let (dir, _) = temp_keystore();
        let path = dir.path().join("keystore.json");
        write_private_file(&path, br#"{"version": 2, "keys": {}}"#).expect("write");
        let err = Keystore::open(&path).expect_err("version 2");
        assert!(err.to_string().contains("format version 2"), "{err}");
    }
}
