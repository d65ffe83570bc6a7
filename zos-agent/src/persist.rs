//! Small files the agent keeps in its data dir (the cursor, the interface names it allocated),
//! written so that a crash or a power cut leaves either the old or the new content: a temporary
//! file is written and fsynced, renamed over the old one, and the directory is fsynced so the
//! rename itself survives. A file that does not parse is treated as missing (and logged): the
//! agent rebuilds what it holds from the chain and the host.

use serde::{de::DeserializeOwned, Serialize};
use std::{fs, io::Write, path::Path};

/// Replaces `path` with `value` as JSON, durably.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_bytes(path, &bytes)
}

/// Replaces `path` with `bytes`, durably.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The JSON in `path`; `None` if it is missing or does not parse.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(Some(value)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "corrupt file; treated as missing");
                Ok(None)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corrupt_is_missing() {
        let dir = std::env::temp_dir().join(format!("agent-persist-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), None);
        write_json(&path, &vec![1u32, 2]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), Some(vec![1, 2]));
        assert!(!path.with_extension("tmp").exists());
        fs::write(&path, b"{\"torn").unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
