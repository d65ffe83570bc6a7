//! Small metadata files of a namespace, each replaced atomically
//! (write to a temporary file, fsync, rename, fsync the directory):
//! - `settings`: the namespace properties set by `NSSET`, as `name=value` lines;
//! - `manifest`: the ids of the namespace's data files in replay order.
//!
//! The manifest is the commit point of rotation and compaction: a data file
//! that is not listed is an unfinished leftover and is deleted on open.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::config::Mode;
use crate::error::{StoreError, StoreResult};

/// Namespace properties, as `NSSET` changes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsSettings {
    pub mode: Mode,
    pub password: Option<String>,
    pub public: bool,
    /// Limit on the live payload bytes; 0 is unlimited.
    pub maxsize: u64,
    pub worm: bool,
    pub lock: bool,
    pub freeze: bool,
}

impl NsSettings {
    pub fn new(mode: Mode, maxsize: u64) -> Self {
        NsSettings {
            mode,
            password: None,
            public: true,
            maxsize,
            worm: false,
            lock: false,
            freeze: false,
        }
    }

    fn encode(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("mode={}\n", self.mode.as_str()));
        if let Some(p) = &self.password {
            // hex keeps any byte of the password off the line structure
            s.push_str(&format!("password={}\n", hex::encode(p.as_bytes())));
        }
        for (name, value) in [
            ("public", self.public),
            ("worm", self.worm),
            ("lock", self.lock),
            ("freeze", self.freeze),
        ] {
            s.push_str(&format!("{name}={}\n", u8::from(value)));
        }
        s.push_str(&format!("maxsize={}\n", self.maxsize));
        s
    }

    fn decode(text: &str, path: &Path) -> StoreResult<NsSettings> {
        let bad = |reason: String| StoreError::BadSettings {
            path: path.to_path_buf(),
            reason,
        };
        let mut s = NsSettings::new(Mode::User, 0);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("line without '=': {line}")))?;
            let flag = || match value {
                "0" => Ok(false),
                "1" => Ok(true),
                other => Err(bad(format!("{name}: expected 0 or 1, got {other}"))),
            };
            match name {
                "mode" => {
                    s.mode = Mode::parse(value).ok_or_else(|| bad(format!("mode {value}")))?
                }
                "password" => {
                    let raw = hex::decode(value).map_err(|e| bad(format!("password: {e}")))?;
                    s.password =
                        Some(String::from_utf8(raw).map_err(|e| bad(format!("password: {e}")))?);
                }
                "public" => s.public = flag()?,
                "worm" => s.worm = flag()?,
                "lock" => s.lock = flag()?,
                "freeze" => s.freeze = flag()?,
                "maxsize" => s.maxsize = value.parse().map_err(|e| bad(format!("maxsize: {e}")))?,
                other => return Err(bad(format!("unknown property {other}"))),
            }
        }
        Ok(s)
    }

    pub fn load(path: &Path) -> StoreResult<Option<NsSettings>> {
        match fs::read_to_string(path) {
            Ok(text) => NsSettings::decode(&text, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(path, e)),
        }
    }

    pub fn save(&self, path: &Path) -> StoreResult<()> {
        write_atomic(path, self.encode().as_bytes())
    }
}

const MANIFEST_HEADER: &str = "zdb-manifest 1";

/// Reads the data file ids in replay order; `None` when there is no manifest yet.
pub fn load_manifest(path: &Path) -> StoreResult<Option<Vec<u32>>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let mut lines = text.lines();
    if lines.next() != Some(MANIFEST_HEADER) {
        return Err(StoreError::BadMagic {
            path: path.to_path_buf(),
            what: "manifest",
        });
    }
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.parse::<u32>().map_err(|e| StoreError::BadSettings {
                path: path.to_path_buf(),
                reason: format!("manifest line {l:?}: {e}"),
            })
        })
        .collect::<StoreResult<Vec<u32>>>()
        .map(Some)
}

pub fn save_manifest(path: &Path, ids: &[u32]) -> StoreResult<()> {
    let mut text = format!("{MANIFEST_HEADER}\n");
    for id in ids {
        text.push_str(&format!("{id}\n"));
    }
    write_atomic(path, text.as_bytes())
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> StoreResult<()> {
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))
    })();
    result.map_err(|e| StoreError::io(path, e))
}

/// Makes a directory's entries (creations, renames, removals) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_roundtrip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("settings");
        assert_eq!(NsSettings::load(&path).expect("load"), None);
        let s = NsSettings {
            mode: Mode::Seq,
            password: Some("p=a\nss".into()),
            public: false,
            maxsize: 1234,
            worm: true,
            lock: false,
            freeze: true,
        };
        s.save(&path).expect("save");
        assert_eq!(NsSettings::load(&path).expect("load"), Some(s));
        fs::write(&path, "mode=weird\n").expect("write");
        assert!(NsSettings::load(&path).is_err());
    }

    #[test]
    fn manifest_roundtrip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("manifest");
        save_manifest(&path, &[3, 1, 7]).expect("save");
        assert_eq!(load_manifest(&path).expect("load"), Some(vec![3, 1, 7]));
    }
}
