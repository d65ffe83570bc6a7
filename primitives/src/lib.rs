//! # gridchain primitives
//!
//! The types every other crate speaks, with no I/O (but [`secret_file`], the one check every
//! program reading a key file makes):
//!
//! - [`hash`]: blake2b-256, the only hash function of the chain, and `0x` hex helpers.
//! - [`account`]: ed25519 accounts, signatures, key pairs from secret URIs, SS58-style addresses.
//! - [`block`]: [`Header`], [`Block`], signed [`Extrinsic`]s and the payload they sign, which binds
//!   a transaction to one chain (genesis hash), one runtime version and a validity window.
//! - [`seal`]: secrets sealed to a 3Node's key (X25519 from its ed25519 key), for reservations.
//! - [`merkle`]: the extrinsics root, a binary Merkle root that also commits to the leaf count.
//! - [`state`]: the runtime's view of state (an [`Overlay`] with nested transactions over a
//!   read-only backend), storage key layout, and [`ReadProof`]s against a header's state root.
//! - [`wireguard`]: WireGuard keys of private networks' meshes, derived from account seeds.
//!
//! `Block` and `Extrinsic` are generic over the call type; the runtime fixes it to its `Call`.

pub mod account;
pub mod block;
pub mod finality;
pub mod hash;
pub mod merkle;
pub mod seal;
pub mod secret_file;
pub mod signature;
pub mod state;
pub mod wireguard;

pub use account::{AccountId, AddressError, Balance, Pair, SecretError, Signature};
pub use block::{
    decode_untrusted, Block, BlockNumber, ChainContext, DecodeError, Extrinsic, Header, SpecVersion,
};
pub use hash::{Bytes, Hash};
pub use state::{Overlay, ReadProof, StateChanges, StateRead};
