//! The deployment file parser of `grid reserve` (wallet/src/deployment.rs): YAML or JSON text
//! (`DeploymentFile::parse(text, json)`), then `to_deployment_with` (sizes, mesh peers' keys, secrets sealed to a
//! node, the chain's own validation), and `parse_size`. Must return `Ok` or an error, never
//! panic, never allocate without bound (YAML aliases, deep nesting).
//!
//! The wallet is a binary crate, so its module is compiled in here by path.
#![no_main]
#![allow(dead_code)]

#[path = "../../src/deployment.rs"]
mod deployment;

use deployment::{parse_size, DeploymentFile, SealTarget};
use gridchain_primitives::{wireguard::WireguardKey, Hash, Pair};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match mode % 3 {
        2 => {
            if let Ok(bytes) = parse_size(text) {
                // a plain byte count parses back to itself
                assert_eq!(parse_size(&bytes.to_string()), Ok(bytes));
            }
        }
        json => {
            if let Ok(file) = DeploymentFile::parse(text, json == 1) {
                let target = SealTarget {
                    genesis: Hash([9; 32]),
                    owner: Pair::from_seed(&[1; 32]).public(),
                    node: Pair::from_seed(&[2; 32]).public(),
                };
                let _ = file.to_deployment_with(&target, Some(&|_| WireguardKey([5; 32])));
            }
        }
    }
});
