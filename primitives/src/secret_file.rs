//! Files that hold secrets (node keys, validator keys, the wallet keystore) must be readable by
//! their owner alone: a key another local user can read is a key they own. Every program that
//! reads one checks the file's mode first and refuses a file group or others may access, with a
//! message that says how to fix it. (The one place this crate does I/O.)

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

/// Permission bits that must be clear on a secret file.
pub const GROUP_OTHER_BITS: u32 = 0o077;

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is accessible by group or others (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
}

/// Fails if group or others have any access to the existing file `path`.
pub fn check_private(path: &Path) -> Result<(), SecretFileError> {
    let io = |source| SecretFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mode = fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & GROUP_OTHER_BITS != 0 {
        return Err(SecretFileError::TooOpen {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

/// Reads a one-line secret (e.g. a secret URI) from `path` after [`check_private`]; surrounding
/// whitespace is dropped.
pub fn read_secret_file(path: &Path) -> Result<String, SecretFileError> {
    check_private(path)?;
    fs::read_to_string(path)
        .map(|text| text.trim().to_string())
        .map_err(|source| SecretFileError::Io {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owner_only_files_are_read() {
        let dir = std::env::temp_dir().join(format!("secret-file-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        fs::write(&path, "//Alice\n").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o610] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = read_secret_file(&path).unwrap_err();
            assert!(
                matches!(err, SecretFileError::TooOpen { mode: m, .. } if m == mode),
                "{err}"
            );
            assert!(err.to_string().contains("chmod 600"));
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret_file(&path).unwrap(), "//Alice");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(read_secret_file(&path).unwrap(), "//Alice");
        assert!(matches!(
            read_secret_file(&dir.join("missing")),
            Err(SecretFileError::Io { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
