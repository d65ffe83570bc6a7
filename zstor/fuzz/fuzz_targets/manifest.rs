//! The manifest parser: a sealed manifest as read from a backend (`manifest::open_sealed`:
//! header, KDF parameters, decryption, SCALE decoding, validation) and a location string
//! (`Location::parse`). Must return `Ok` or a `ZstorError`, never panic.
//!
//! The manifest body is authenticated, so random sealed bytes stop at decryption; mode 1 seals
//! the input with a known raw key first, so the decoder and `validate` see arbitrary plaintext.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;
use zstor::crypto::{KdfParams, KeySource};
use zstor::manifest::{open_sealed, Location};

const KEY: [u8; 32] = [7; 32];
/// `"ZSTM" | format 1 | kdf 0 (raw key)`, the header `Manifest::seal` writes for a raw key.
const RAW_HEADER: &[u8] = b"ZSTM\x01\x00";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = KeySource::RawKey(Zeroizing::new(KEY));
    match mode % 3 {
        0 => {
            let _ = open_sealed(rest, &key);
        }
        1 => {
            let master = key.master_key(&KdfParams::RawKey).expect("raw key");
            let body = master.seal_manifest(RAW_HEADER, rest).expect("seal");
            let mut sealed = RAW_HEADER.to_vec();
            sealed.extend_from_slice(&body);
            if let Ok((manifest, _)) = open_sealed(&sealed, &key) {
                // what `get` does next with a valid manifest
                let params = manifest.codec_params();
                params.validate().expect("open_sealed validated the parameters");
                for chunk in &manifest.chunks {
                    assert_eq!(chunk.shards.len(), params.total_shards());
                    let _ = chunk.layout();
                }
                let _ = manifest.file_key();
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(location) = Location::parse(text) {
                    // the string it prints parses back to the same location
                    assert_eq!(Location::parse(&location.to_string()).ok(), Some(location));
                }
            }
        }
    }
});
