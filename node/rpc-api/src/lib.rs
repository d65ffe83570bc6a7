//! # gridchain RPC API
//!
//! The node's JSON-RPC interface, defined once with `jsonrpsee`'s `#[rpc]` macro: the node
//! implements the generated `*Server` traits, and every client (the `grid` wallet, the agent, the
//! explorer, tests, the bench) calls the generated `*Client` traits on a WebSocket or HTTP client,
//! so nobody decodes raw JSON or raw storage by hand.
//!
//! Method names and shapes follow Substrate (`chain_*`, `author_*`, `state_*`, `system_*`) so
//! habits carry over; `gridchain_*` methods return decoded, typed data. Conventions: hashes and
//! bytes are `0x` hex, amounts are decimal strings, block numbers are JSON numbers, addresses are
//! SS58-style strings.
//!
//! Errors carry the stable codes in [`error_codes`]; transaction errors put the runtime's typed
//! reason in the error's `data`.

use gridchain_primitives::{
    account::balance_string, block::BlockNumber, finality::CommitCertificate, AccountId, Balance,
    Bytes, Hash, Header,
};
use gridchain_runtime::{Call, EventRecord};
use jsonrpsee::{core::SubscriptionResult, proc_macros::rpc, types::ErrorObjectOwned};
use serde::{Deserialize, Serialize};

pub use jsonrpsee;

pub mod grid;
pub use grid::{GridApiClient, GridApiServer, NodeCapacity, NodeFilter, NodeInfo, NodeSnapshot};

pub type RpcResult<T> = Result<T, ErrorObjectOwned>;

/// Stable JSON-RPC error codes.
pub mod error_codes {
    /// The submitted bytes are not a SCALE-encoded extrinsic.
    pub const BAD_FORMAT: i32 = 1001;
    /// Signature does not verify (wrong key, wrong chain/genesis, or wrong runtime version).
    pub const BAD_SIGNATURE: i32 = 1002;
    /// Nonce already used.
    pub const STALE_NONCE: i32 = 1003;
    /// Past its `valid_until` block.
    pub const EXPIRED: i32 = 1004;
    /// Encoded extrinsic exceeds the size limit.
    pub const TOO_LARGE: i32 = 1005;
    /// The signer cannot pay the fee and tip.
    pub const INSUFFICIENT_FEE: i32 = 1006;
    /// Nonce too far ahead (only when a block is being built).
    pub const FUTURE_NONCE: i32 = 1007;
    /// No room left in a block, or heavier than any block's extrinsics may weigh.
    pub const EXHAUSTS_RESOURCES: i32 = 1008;
    /// This exact transaction is already pooled.
    pub const ALREADY_IMPORTED: i32 = 1013;
    /// A pooled transaction with the same nonce pays at least as much.
    pub const TOO_LOW_PRIORITY: i32 = 1014;
    /// The pool is full.
    pub const POOL_FULL: i32 = 1016;
    /// The sender already has as many transactions pooled as one sender may.
    pub const TOO_MANY_FROM_SENDER: i32 = 1017;
    /// Standard JSON-RPC "invalid params": malformed address, hash, key, or number.
    pub const INVALID_PARAMS: i32 = -32602;
    /// The requested block is not known.
    pub const UNKNOWN_BLOCK: i32 = 4001;
    /// The node failed internally (storage error); the request may be retried.
    pub const INTERNAL: i32 = -32603;
}

/// A block as `chain_getBlock` returns it: header plus SCALE-encoded extrinsics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBlock {
    pub block: BlockJson,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockJson {
    pub header: Header,
    pub extrinsics: Vec<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadProofJson {
    /// The block whose state root the proofs are checked against.
    pub at: Hash,
    /// One SCALE-encoded `gridchain_primitives::ReadProof` per requested key.
    pub proof: Vec<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub peers: u32,
    pub is_syncing: bool,
    pub should_have_peers: bool,
}

/// One connected consensus peer (`system_peers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    pub peer_id: String,
    /// The name the peer gave itself (`--name`).
    pub name: String,
    pub address: String,
    /// Its consensus address when it announced itself as a validator.
    pub validator: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeVersion {
    pub spec_name: String,
    pub spec_version: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainProperties {
    pub token_symbol: String,
    pub token_decimals: u8,
    pub address_prefix: u8,
}

/// `gridchain_account`: an account's balances and nonce after the best block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    pub address: AccountId,
    #[serde(with = "balance_string")]
    pub free: Balance,
    #[serde(with = "balance_string")]
    pub reserved: Balance,
    pub nonce: u64,
    pub at: Hash,
}

/// `gridchain_extrinsic`: where a transaction landed and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtrinsicInfo {
    pub hash: Hash,
    pub block_hash: Hash,
    pub block_number: BlockNumber,
    pub index: u32,
    pub signer: AccountId,
    pub nonce: u64,
    #[serde(with = "balance_string")]
    pub tip: Balance,
    pub call: Call,
    pub success: bool,
    /// The pallet error when `success` is false.
    pub error: Option<gridchain_runtime::system::DispatchError>,
    #[serde(with = "balance_string")]
    pub fee: Balance,
    pub events: Vec<EventRecord>,
}

/// Status updates of `author_submitAndWatchExtrinsic`, in Substrate's shape: `"ready"`,
/// `{"inBlock": "0x…"}`, `{"finalized": "0x…"}`, …
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TransactionStatus {
    Future,
    Ready,
    InBlock(Hash),
    Finalized(Hash),
    Usurped(Hash),
    Dropped,
    Invalid,
}

#[rpc(server, client)]
pub trait ChainApi {
    /// Header of block `hash`, or of the best block.
    #[method(name = "chain_getHeader")]
    async fn header(&self, hash: Option<Hash>) -> RpcResult<Option<Header>>;

    /// Block `hash`, or the best block.
    #[method(name = "chain_getBlock")]
    async fn block(&self, hash: Option<Hash>) -> RpcResult<Option<SignedBlock>>;

    /// Hash of block `number`, or of the best block.
    #[method(name = "chain_getBlockHash")]
    async fn block_hash(&self, number: Option<BlockNumber>) -> RpcResult<Option<Hash>>;

    #[method(name = "chain_getFinalizedHead")]
    async fn finalized_head(&self) -> RpcResult<Hash>;

    #[subscription(name = "chain_subscribeNewHeads" => "chain_newHead", unsubscribe = "chain_unsubscribeNewHeads", item = Header)]
    async fn subscribe_new_heads(&self) -> SubscriptionResult;

    /// Every final header, in order, starting with the current final head.
    #[subscription(name = "chain_subscribeFinalizedHeads" => "chain_finalizedHead", unsubscribe = "chain_unsubscribeFinalizedHeads", item = Header)]
    async fn subscribe_finalized_heads(&self) -> SubscriptionResult;
}

#[rpc(server, client)]
pub trait AuthorApi {
    /// Validates and pools a SCALE-encoded signed extrinsic; returns its hash.
    #[method(name = "author_submitExtrinsic")]
    async fn submit_extrinsic(&self, extrinsic: Bytes) -> RpcResult<Hash>;

    #[subscription(name = "author_submitAndWatchExtrinsic" => "author_extrinsicUpdate", unsubscribe = "author_unwatchExtrinsic", item = TransactionStatus)]
    async fn submit_and_watch_extrinsic(&self, extrinsic: Bytes) -> SubscriptionResult;

    #[method(name = "author_pendingExtrinsics")]
    async fn pending_extrinsics(&self) -> RpcResult<Vec<Bytes>>;
}

#[rpc(server, client)]
pub trait StateApi {
    /// Raw value of a state key at block `at` (default: best).
    #[method(name = "state_getStorage")]
    async fn storage(&self, key: Bytes, at: Option<Hash>) -> RpcResult<Option<Bytes>>;

    /// Merkle proofs of `keys` against the state root of block `at` (default: best).
    #[method(name = "state_getReadProof")]
    async fn read_proof(&self, keys: Vec<Bytes>, at: Option<Hash>) -> RpcResult<ReadProofJson>;

    #[method(name = "state_getRuntimeVersion")]
    async fn runtime_version(&self) -> RpcResult<RuntimeVersion>;
}

#[rpc(server, client)]
pub trait SystemApi {
    #[method(name = "system_health")]
    async fn health(&self) -> RpcResult<Health>;

    #[method(name = "system_peers")]
    async fn peers(&self) -> RpcResult<Vec<PeerInfo>>;

    #[method(name = "system_chain")]
    async fn chain(&self) -> RpcResult<String>;

    #[method(name = "system_name")]
    async fn name(&self) -> RpcResult<String>;

    #[method(name = "system_version")]
    async fn version(&self) -> RpcResult<String>;

    #[method(name = "system_properties")]
    async fn properties(&self) -> RpcResult<ChainProperties>;

    /// The next nonce to sign with: the account's nonce, past any of its transactions already
    /// ready in the pool.
    #[method(name = "system_accountNextIndex")]
    async fn account_next_index(&self, address: String) -> RpcResult<u64>;
}

#[rpc(server, client)]
pub trait GridchainApi {
    #[method(name = "gridchain_account")]
    async fn account(&self, address: String) -> RpcResult<AccountInfo>;

    /// `null` if the transaction is not (yet) in a final block.
    #[method(name = "gridchain_extrinsic")]
    async fn extrinsic(&self, hash: Hash) -> RpcResult<Option<ExtrinsicInfo>>;

    /// The commit certificate (precommit signatures) that made block `number` final; `null` for
    /// genesis and blocks this node does not have. Check it with
    /// `CommitCertificate::verify` against the validator set of that height.
    #[method(name = "gridchain_commitCertificate")]
    async fn commit_certificate(&self, number: BlockNumber)
        -> RpcResult<Option<CommitCertificate>>;

    /// The validator set that signs block `number` (default: the next block), read from the
    /// state after `number - 1`, and the change scheduled in that state, if any.
    #[method(name = "gridchain_validators")]
    async fn validators(&self, number: Option<BlockNumber>) -> RpcResult<ValidatorSetInfo>;
}

/// `gridchain_validators`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorSetInfo {
    /// The height these validators sign.
    pub height: BlockNumber,
    pub validators: Vec<gridchain_runtime::validators::ValidatorInfo>,
    /// A new set chosen at an epoch end, and the first height it signs.
    pub scheduled: Option<ScheduledValidators>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledValidators {
    pub effective_height: BlockNumber,
    pub validators: Vec<gridchain_runtime::validators::ValidatorInfo>,
}
