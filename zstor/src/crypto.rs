//! Keys and authenticated encryption.
//!
//! - The user's secret is a passphrase or a raw 32-byte key ([`KeySource`]). A passphrase is
//!   stretched with Argon2id (salt and cost parameters travel in the clear in the sealed
//!   manifest's header, [`KdfParams`]); a raw key is used as is. Either gives the
//!   [`MasterKey`].
//! - In Zero-Store the master key only seals manifests: XChaCha20-Poly1305 with a random 24-byte
//!   nonce under `blake3::derive_key("gridchain zstor v1 manifest key", master)`.
//! - Other users of a passphrase (the wallet keystore) seal small secrets with
//!   [`MasterKey::seal_secret`]: the same construction under a key derived with another context,
//!   `"gridchain v1 passphrase-sealed secret key"`, so a sealed secret never opens as a manifest
//!   and a manifest never opens as a secret.
//! - Chunks are encrypted with a fresh random [`FileKey`] per stored file, kept inside the
//!   manifest: ChaCha20-Poly1305, nonce = chunk index (unique, since the key is never reused
//!   across files), associated data = file id, chunk index, compression flag and plaintext
//!   length, so chunks cannot be swapped, reordered or moved between files.

use crate::error::ZstorError;
use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Tag, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

/// Bytes of a Poly1305 tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;
/// Bytes of the XChaCha20 nonce in front of a sealed manifest.
pub const MANIFEST_NONCE_LEN: usize = 24;
/// Bytes of the XChaCha20 nonce in front of a sealed secret ([`MasterKey::seal_secret`]).
pub const SECRET_NONCE_LEN: usize = 24;
const MANIFEST_KEY_CONTEXT: &str = "gridchain zstor v1 manifest key";
const SECRET_KEY_CONTEXT: &str = "gridchain v1 passphrase-sealed secret key";
const CHUNK_AD_DOMAIN: &[u8] = b"zstor-chunk-v1";

/// Where the master key comes from.
pub enum KeySource {
    /// Stretched with Argon2id.
    Passphrase(Zeroizing<String>),
    /// Used directly.
    RawKey(Zeroizing<[u8; 32]>),
}

impl KeySource {
    /// Parses a key file's content: 64 hex digits (an optional `0x` and surrounding whitespace
    /// are allowed).
    pub fn raw_key_from_hex(text: &str) -> Result<KeySource, ZstorError> {
        let text = text.trim();
        let hex = text.strip_prefix("0x").unwrap_or(text);
        let mut key = Zeroizing::new([0u8; 32]);
        if hex.len() != 64 {
            return Err(ZstorError::InvalidKey(format!(
                "a raw key is 64 hex digits, got {} characters",
                hex.len()
            )));
        }
        for (byte, pair) in key.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let digits = std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok());
            *byte = digits.ok_or_else(|| {
                ZstorError::InvalidKey("a raw key is 64 hex digits (0-9, a-f)".into())
            })?;
        }
        Ok(KeySource::RawKey(key))
    }

    /// A new random raw key, as 64 hex digits (what `raw_key_from_hex` reads).
    pub fn generate_raw_key_hex() -> Zeroizing<String> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut());
        let mut text = Zeroizing::new(String::with_capacity(64));
        for byte in key.iter() {
            text.push_str(&format!("{byte:02x}"));
        }
        text
    }

    /// KDF parameters for a new manifest: a fresh salt for a passphrase.
    pub fn fresh_kdf_params(&self) -> KdfParams {
        match self {
            KeySource::Passphrase(_) => {
                let mut salt = [0u8; 16];
                rand::rng().fill_bytes(&mut salt);
                KdfParams::Argon2id {
                    memory_kib: Params::DEFAULT_M_COST,
                    iterations: Params::DEFAULT_T_COST,
                    parallelism: Params::DEFAULT_P_COST,
                    salt,
                }
            }
            KeySource::RawKey(_) => KdfParams::RawKey,
        }
    }

    /// Derives the master key with `params` (from a manifest header or [`Self::fresh_kdf_params`]).
    pub fn master_key(&self, params: &KdfParams) -> Result<MasterKey, ZstorError> {
        let mut key = Zeroizing::new([0u8; 32]);
        match (self, params) {
            (KeySource::RawKey(raw), KdfParams::RawKey) => key.copy_from_slice(raw.as_ref()),
            (
                KeySource::Passphrase(passphrase),
                KdfParams::Argon2id {
                    memory_kib,
                    iterations,
                    parallelism,
                    salt,
                },
            ) => {
                let argon_params = Params::new(*memory_kib, *iterations, *parallelism, Some(32))
                    .map_err(|e| ZstorError::CorruptManifest(format!("Argon2 parameters: {e}")))?;
                if *memory_kib > MAX_ARGON2_MEMORY_KIB {
                    return Err(ZstorError::CorruptManifest(format!(
                        "Argon2 memory cost {memory_kib} KiB is above the accepted {MAX_ARGON2_MEMORY_KIB} KiB"
                    )));
                }
                Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params)
                    .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
                    .map_err(|e| ZstorError::InvalidKey(format!("Argon2id: {e}")))?;
            }
            (KeySource::RawKey(_), KdfParams::Argon2id { .. }) => {
                return Err(ZstorError::WrongKeyKind(
                    "this file was stored with a passphrase, not a raw key",
                ))
            }
            (KeySource::Passphrase(_), KdfParams::RawKey) => {
                return Err(ZstorError::WrongKeyKind(
                    "this file was stored with a raw key, not a passphrase",
                ))
            }
        }
        Ok(MasterKey {
            key,
            params: params.clone(),
        })
    }
}

/// Manifests claiming more Argon2 memory than this are refused (4 GiB), so a hostile manifest
/// header cannot make `get` allocate without bound.
const MAX_ARGON2_MEMORY_KIB: u32 = 4 * 1024 * 1024;

/// How the master key was derived; stored in the clear in a sealed manifest's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KdfParams {
    RawKey,
    Argon2id {
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        salt: [u8; 16],
    },
}

/// The key that seals manifests, with the parameters it was derived with.
pub struct MasterKey {
    key: Zeroizing<[u8; 32]>,
    params: KdfParams,
}

impl MasterKey {
    pub fn kdf_params(&self) -> &KdfParams {
        &self.params
    }

    /// XChaCha20-Poly1305 under `blake3::derive_key(context, master)`.
    fn cipher(&self, context: &str) -> XChaCha20Poly1305 {
        let key = Zeroizing::new(blake3::derive_key(context, self.key.as_ref()));
        XChaCha20Poly1305::new(key.as_ref().into())
    }

    /// `nonce ++ ciphertext ++ tag` under the key of `context`, with a random nonce.
    fn seal(&self, context: &str, associated_data: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; MANIFEST_NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut sealed = Vec::with_capacity(MANIFEST_NONCE_LEN + plaintext.len() + TAG_LEN);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = self
            .cipher(context)
            .encrypt_in_place_detached(
                XNonce::from_slice(&nonce),
                associated_data,
                &mut sealed[MANIFEST_NONCE_LEN..],
            )
            .ok()?;
        sealed.extend_from_slice(&tag);
        Some(sealed)
    }

    /// Reverses [`Self::seal`]; `None` when authentication fails.
    fn open(
        &self,
        context: &str,
        associated_data: &[u8],
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < MANIFEST_NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, rest) = sealed.split_at(MANIFEST_NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut plaintext = Zeroizing::new(ciphertext.to_vec());
        self.cipher(context)
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                associated_data,
                &mut plaintext,
                Tag::from_slice(tag),
            )
            .ok()?;
        Some(plaintext)
    }

    /// Encrypts `plaintext` with a random nonce; returns `nonce ++ ciphertext ++ tag`,
    /// authenticating `header` as associated data.
    pub fn seal_manifest(&self, header: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, ZstorError> {
        self.seal(MANIFEST_KEY_CONTEXT, header, plaintext)
            .ok_or_else(|| ZstorError::InvalidParams("manifest too large to encrypt".into()))
    }

    /// Reverses [`Self::seal_manifest`]; `None` when authentication fails (wrong key, or a
    /// modified header or body).
    pub fn open_manifest(&self, header: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        self.open(MANIFEST_KEY_CONTEXT, header, sealed)
            .map(|plaintext| plaintext.to_vec())
    }

    /// Encrypts a small secret (a wallet keystore entry, say) with a random nonce; returns
    /// `nonce ++ ciphertext ++ tag` ([`SECRET_NONCE_LEN`] + len + [`TAG_LEN`] bytes),
    /// authenticating `associated_data`, which should say what the secret is (its name, the
    /// file it belongs to) so that sealed secrets cannot be swapped. The key is derived from the
    /// master key with a context of its own: secrets and manifests never open as each other.
    pub fn seal_secret(
        &self,
        associated_data: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ZstorError> {
        self.seal(SECRET_KEY_CONTEXT, associated_data, plaintext)
            .ok_or_else(|| ZstorError::InvalidParams("secret too large to encrypt".into()))
    }

    /// Reverses [`Self::seal_secret`]; `None` when authentication fails (wrong key, other
    /// associated data, or a modified ciphertext). The plaintext is wiped when dropped.
    pub fn open_secret(&self, associated_data: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.open(SECRET_KEY_CONTEXT, associated_data, sealed)
    }
}

/// The random per-file key that encrypts chunks; it lives only inside the sealed manifest.
#[derive(Clone)]
pub struct FileKey(Zeroizing<[u8; 32]>);

impl FileKey {
    pub fn random() -> FileKey {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut());
        FileKey(key)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> FileKey {
        FileKey(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn chunk_cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(self.0.as_ref().into())
    }
}

/// What a chunk's ciphertext is bound to besides its key.
#[derive(Debug, Clone, Copy)]
pub struct ChunkBinding {
    pub file_id: [u8; 16],
    pub index: u64,
    pub compressed: bool,
    pub plain_len: u32,
}

impl ChunkBinding {
    /// Nonce: the chunk index, little endian, padded to 12 bytes.
    pub(crate) fn nonce(&self) -> chacha20poly1305::Nonce {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&self.index.to_le_bytes());
        nonce.into()
    }

    /// Associated data: domain ++ file id ++ index ++ compressed ++ plaintext length.
    pub(crate) fn associated_data(&self) -> [u8; 14 + 16 + 8 + 1 + 4] {
        let mut ad = [0u8; 43];
        ad[..14].copy_from_slice(CHUNK_AD_DOMAIN);
        ad[14..30].copy_from_slice(&self.file_id);
        ad[30..38].copy_from_slice(&self.index.to_le_bytes());
        ad[38] = u8::from(self.compressed);
        ad[39..43].copy_from_slice(&self.plain_len.to_le_bytes());
        ad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passphrase_key(passphrase: &str, params: &KdfParams) -> MasterKey {
        KeySource::Passphrase(Zeroizing::new(passphrase.to_string()))
            .master_key(params)
            .expect("derive")
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_associated_data() {
        let source = KeySource::Passphrase(Zeroizing::new("pw".to_string()));
        let params = source.fresh_kdf_params();
        let key = passphrase_key("pw", &params);
        let sealed = key.seal_secret(b"name=a", b"//Alice").expect("seal");
        assert_eq!(sealed.len(), SECRET_NONCE_LEN + 7 + TAG_LEN);
        assert_eq!(
            key.open_secret(b"name=a", &sealed)
                .expect("open")
                .as_slice(),
            b"//Alice"
        );
        assert!(key.open_secret(b"name=b", &sealed).is_none(), "other AD");
        assert!(passphrase_key("wrong", &params)
            .open_secret(b"name=a", &sealed)
            .is_none());
        let mut flipped = sealed.clone();
        flipped[SECRET_NONCE_LEN] ^= 1;
        assert!(key.open_secret(b"name=a", &flipped).is_none(), "modified");
        assert!(key.open_secret(b"name=a", &sealed[..20]).is_none(), "short");
    }

    #[test]
    fn secrets_and_manifests_use_separate_keys() {
        let key = KeySource::raw_key_from_hex(&KeySource::generate_raw_key_hex())
            .expect("key")
            .master_key(&KdfParams::RawKey)
            .expect("derive");
        let secret = key.seal_secret(b"ad", b"payload").expect("seal");
        assert!(key.open_manifest(b"ad", &secret).is_none());
        let manifest = key.seal_manifest(b"ad", b"payload").expect("seal");
        assert!(key.open_secret(b"ad", &manifest).is_none());
        assert_eq!(
            key.open_manifest(b"ad", &manifest).expect("open"),
            b"payload"
        );
    }
}
