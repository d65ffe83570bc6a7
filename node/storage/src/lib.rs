//! # gridchain storage
//!
//! Everything a node persists, in one RocksDB database with these column families:
//!
//! | column family | key | value |
//! |---|---|---|
//! | `headers`    | block hash | SCALE `Header` |
//! | `bodies`     | block hash | SCALE `Vec<Extrinsic>` |
//! | `numbers`    | block number (u64 big-endian) | block hash |
//! | `tx_index`   | extrinsic hash | SCALE `(BlockNumber, u32 index)` |
//! | `state`      | state key | value after the best block (what the runtime reads) |
//! | `jmt_nodes`  | borsh `jmt::NodeKey` | borsh `jmt::Node` |
//! | `jmt_values` | key hash ++ version (u64 big-endian) | SCALE `Option<Vec<u8>>` |
//! | `meta`       | `genesis`, `best`, `finalized` | block hash |
//! | `certificates` | block number (u64 big-endian) | SCALE `CommitCertificate` (precommits that made it final) |
//! | `pending`    | block hash | a proposal of the next height this validator built or accepted (consensus's, opaque here) |
//!
//! The state root is the root of a Jellyfish Merkle tree whose version is the block number.
//! Updating it costs time proportional to the keys a block changed (each touches one path of the
//! tree), not to the size of the state. Versioned values make `state_getStorage` and
//! `state_getReadProof` answerable at any past block.
//!
//! A block is committed with [`Storage::commit_block`]: header, body, commit certificate, number
//! index, transaction index, state changes, tree nodes and the best/finalized pointers go into
//! **one** write batch,
//! written with `sync`. A process killed at any moment reopens with every block whose commit
//! returned, and with exactly the matching state: there is no window where the state is ahead of
//! or behind the blocks.

use gridchain_primitives::{
    block::BlockNumber,
    decode_untrusted,
    finality::CommitCertificate,
    hash::Blake2b256,
    state::{state_key_hash, ReadProof, StateChanges},
    Hash, Header, StateRead,
};
use gridchain_runtime::{Block, Extrinsic};
use jmt::{
    storage::{LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch},
    JellyfishMerkleTree, KeyHash, OwnedValue, Version,
};
use parity_scale_codec::{Decode, Encode};
use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};
use std::path::Path;

const CF_HEADERS: &str = "headers";
const CF_BODIES: &str = "bodies";
const CF_NUMBERS: &str = "numbers";
const CF_TX_INDEX: &str = "tx_index";
const CF_STATE: &str = "state";
const CF_JMT_NODES: &str = "jmt_nodes";
const CF_JMT_VALUES: &str = "jmt_values";
const CF_META: &str = "meta";
const CF_CERTIFICATES: &str = "certificates";
const CF_PENDING: &str = "pending";
const COLUMN_FAMILIES: [&str; 10] = [
    CF_HEADERS,
    CF_BODIES,
    CF_NUMBERS,
    CF_TX_INDEX,
    CF_STATE,
    CF_JMT_NODES,
    CF_JMT_VALUES,
    CF_META,
    CF_CERTIFICATES,
    CF_PENDING,
];

const META_GENESIS: &[u8] = b"genesis";
const META_BEST: &[u8] = b"best";
const META_FINALIZED: &[u8] = b"finalized";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("database is corrupt: {0}")]
    Corrupt(String),
    #[error("state tree: {0}")]
    Tree(String),
    #[error("state at block {0} is not available")]
    UnknownState(BlockNumber),
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// Where an extrinsic landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct TxLocation {
    pub block_number: BlockNumber,
    pub index: u32,
}

/// The state-tree update for one block, computed before its header is sealed.
pub struct PreparedState {
    pub root: Hash,
    version: Version,
    tree_update: TreeUpdateBatch,
}

pub struct Storage {
    db: DB,
}

impl Storage {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        let cfs = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Storage { db })
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created on open")
    }

    fn get_cf(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    fn get_decoded<T: Decode>(
        &self,
        cf: &str,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>> {
        match self.get_cf(cf, key)? {
            None => Ok(None),
            Some(bytes) => decode_untrusted(what, &bytes)
                .map(Some)
                .map_err(|e| StorageError::Corrupt(e.to_string())),
        }
    }

    fn meta_hash(&self, key: &[u8]) -> Result<Option<Hash>> {
        self.get_decoded(CF_META, key, "meta hash")
    }

    pub fn genesis_hash(&self) -> Result<Option<Hash>> {
        self.meta_hash(META_GENESIS)
    }

    pub fn best_hash(&self) -> Result<Option<Hash>> {
        self.meta_hash(META_BEST)
    }

    pub fn finalized_hash(&self) -> Result<Option<Hash>> {
        self.meta_hash(META_FINALIZED)
    }

    pub fn header(&self, hash: &Hash) -> Result<Option<Header>> {
        self.get_decoded(CF_HEADERS, &hash.0, "header")
    }

    pub fn body(&self, hash: &Hash) -> Result<Option<Vec<Extrinsic>>> {
        self.get_decoded(CF_BODIES, &hash.0, "block body")
    }

    pub fn block(&self, hash: &Hash) -> Result<Option<Block>> {
        let Some(header) = self.header(hash)? else {
            return Ok(None);
        };
        let extrinsics = self
            .body(hash)?
            .ok_or_else(|| StorageError::Corrupt(format!("header {hash} has no body")))?;
        Ok(Some(Block { header, extrinsics }))
    }

    pub fn hash_of(&self, number: BlockNumber) -> Result<Option<Hash>> {
        self.get_decoded(CF_NUMBERS, &number.to_be_bytes(), "block hash")
    }

    pub fn best_header(&self) -> Result<Option<Header>> {
        match self.best_hash()? {
            Some(h) => self.header(&h),
            None => Ok(None),
        }
    }

    /// The commit certificate of block `number` (none for genesis).
    pub fn certificate(&self, number: BlockNumber) -> Result<Option<CommitCertificate>> {
        self.get_decoded(CF_CERTIFICATES, &number.to_be_bytes(), "commit certificate")
    }

    /// Replaces the stored certificate of a committed block, e.g. with one that gathered more
    /// precommits after the decision.
    pub fn put_certificate(&self, certificate: &CommitCertificate) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_CERTIFICATES),
            certificate.height.to_be_bytes(),
            certificate.encode(),
        );
        self.write(batch)
    }

    /// Keeps a proposal (opaque bytes) until its height is committed, synced to disk before
    /// returning: a validator restarted mid-height must still have what it voted for.
    pub fn put_pending_proposal(&self, hash: &Hash, bytes: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_PENDING), hash.0, bytes);
        self.write(batch)
    }

    pub fn pending_proposals(&self) -> Result<Vec<(Hash, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_PENDING), IteratorMode::Start)
        {
            let (k, v) = item?;
            let key: [u8; 32] = k
                .as_ref()
                .try_into()
                .map_err(|_| StorageError::Corrupt("pending proposal key".into()))?;
            out.push((Hash(key), v.to_vec()));
        }
        Ok(out)
    }

    pub fn delete_pending_proposal(&self, hash: &Hash) -> Result<()> {
        Ok(self.db.delete_cf(self.cf(CF_PENDING), hash.0)?)
    }

    pub fn tx_location(&self, hash: &Hash) -> Result<Option<TxLocation>> {
        self.get_decoded(CF_TX_INDEX, &hash.0, "tx location")
    }

    /// The value of `key` after the best block.
    pub fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_cf(CF_STATE, key)
    }

    /// The value of `key` after block `number`.
    pub fn state_at(&self, key: &[u8], number: BlockNumber) -> Result<Option<Vec<u8>>> {
        self.versioned_value(number, state_key_hash(key))
    }

    fn versioned_value(&self, max_version: Version, key_hash: KeyHash) -> Result<Option<Vec<u8>>> {
        let seek = value_key(&key_hash, max_version);
        let mut iter = self.db.iterator_cf(
            self.cf(CF_JMT_VALUES),
            IteratorMode::From(&seek, Direction::Reverse),
        );
        match iter.next() {
            Some(item) => {
                let (k, v) = item?;
                if k.len() != 40 || k[..32] != key_hash.0 {
                    return Ok(None);
                }
                decode_untrusted::<Option<Vec<u8>>>("versioned value", &v)
                    .map_err(|e| StorageError::Corrupt(e.to_string()))
            }
            None => Ok(None),
        }
    }

    /// A proof of `key`'s value after block `number`, checkable against that block's state root.
    pub fn read_proof(&self, key: &[u8], number: BlockNumber) -> Result<ReadProof> {
        let store = TreeStore(self);
        let tree = JellyfishMerkleTree::<_, Blake2b256>::new(&store);
        let (value, proof) = tree
            .get_with_proof(state_key_hash(key), number)
            .map_err(|e| StorageError::Tree(e.to_string()))?;
        let proof = borsh::to_vec(&proof).map_err(|e| StorageError::Tree(e.to_string()))?;
        Ok(ReadProof {
            key: key.to_vec(),
            value,
            proof,
        })
    }

    /// Computes the state root after applying `changes` as block `number`. Nothing is written
    /// until [`Storage::commit_block`].
    pub fn prepare_state(
        &self,
        changes: &StateChanges,
        number: BlockNumber,
    ) -> Result<PreparedState> {
        let store = TreeStore(self);
        let tree = JellyfishMerkleTree::<_, Blake2b256>::new(&store);
        let value_set = changes.iter().map(|(k, v)| (state_key_hash(k), v.clone()));
        let (root, tree_update) = tree
            .put_value_set(value_set, number)
            .map_err(|e| StorageError::Tree(e.to_string()))?;
        Ok(PreparedState {
            root: Hash(root.0),
            version: number,
            tree_update,
        })
    }

    /// Writes the genesis block and state. Refuses if the database already has a chain.
    pub fn commit_genesis(
        &self,
        header: &Header,
        changes: &StateChanges,
        prepared: PreparedState,
    ) -> Result<()> {
        if let Some(existing) = self.genesis_hash()? {
            return Err(StorageError::Corrupt(format!(
                "database already has genesis {existing}"
            )));
        }
        let block = Block {
            header: header.clone(),
            extrinsics: vec![],
        };
        let mut batch = self.block_batch(&block, changes, prepared, None)?;
        batch.put_cf(self.cf(CF_META), META_GENESIS, header.hash().encode());
        self.write(batch)
    }

    /// Atomically stores a final block, its commit certificate, its state changes and tree nodes,
    /// makes it the best and finalized block, and forgets the pending proposals (they were for
    /// this height).
    pub fn commit_block(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        changes: &StateChanges,
        prepared: PreparedState,
    ) -> Result<()> {
        let batch = self.block_batch(block, changes, prepared, Some(certificate))?;
        self.write_with(batch, true)
    }

    /// [`Storage::commit_block`] without waiting for the disk: the batch is still atomic and
    /// survives the process being killed (it is in RocksDB's log in the OS cache), but a power
    /// loss may drop the last such blocks. Only for blocks that can be fetched again and that
    /// nothing was promised on — a full node importing blocks it never voted on.
    pub fn commit_block_unsynced(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        changes: &StateChanges,
        prepared: PreparedState,
    ) -> Result<()> {
        let batch = self.block_batch(block, changes, prepared, Some(certificate))?;
        self.write_with(batch, false)
    }

    /// Waits until every block committed so far, synced or not, is on disk.
    pub fn sync_to_disk(&self) -> Result<()> {
        Ok(self.db.flush_wal(true)?)
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_with(batch, true)
    }

    fn write_with(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        Ok(self.db.write_opt(batch, &opts)?)
    }

    fn block_batch(
        &self,
        block: &Block,
        changes: &StateChanges,
        prepared: PreparedState,
        certificate: Option<&CommitCertificate>,
    ) -> Result<WriteBatch> {
        let header = &block.header;
        if prepared.version != header.number || prepared.root != header.state_root {
            return Err(StorageError::Corrupt(format!(
                "prepared state (block {}, root {}) does not match header (block {}, root {})",
                prepared.version, prepared.root, header.number, header.state_root
            )));
        }
        let hash = header.hash();
        if let Some(c) = certificate {
            if c.height != header.number || c.block_hash != hash {
                return Err(StorageError::Corrupt(format!(
                    "certificate (block {}, {}) is not for block {} ({hash})",
                    c.height, c.block_hash, header.number
                )));
            }
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_HEADERS), hash.0, header.encode());
        if let Some(c) = certificate {
            batch.put_cf(
                self.cf(CF_CERTIFICATES),
                header.number.to_be_bytes(),
                c.encode(),
            );
            // Keys are 32-byte hashes: [0; 32] ..= [0xff; 32] is every pending proposal.
            let pending = self.cf(CF_PENDING);
            batch.delete_range_cf(pending, [0u8; 32], [0xffu8; 32]);
            batch.delete_cf(pending, [0xffu8; 32]);
        }
        batch.put_cf(self.cf(CF_BODIES), hash.0, block.extrinsics.encode());
        batch.put_cf(
            self.cf(CF_NUMBERS),
            header.number.to_be_bytes(),
            hash.encode(),
        );
        for (index, xt) in block.extrinsics.iter().enumerate() {
            let location = TxLocation {
                block_number: header.number,
                index: index as u32,
            };
            batch.put_cf(self.cf(CF_TX_INDEX), xt.hash().0, location.encode());
        }
        let state_cf = self.cf(CF_STATE);
        for (key, value) in changes {
            match value {
                Some(v) => batch.put_cf(state_cf, key, v),
                None => batch.delete_cf(state_cf, key),
            }
        }
        let nodes = self.cf(CF_JMT_NODES);
        for (key, node) in prepared.tree_update.node_batch.nodes() {
            batch.put_cf(nodes, borsh_bytes(key)?, borsh_bytes(node)?);
        }
        let values = self.cf(CF_JMT_VALUES);
        for ((version, key_hash), value) in prepared.tree_update.node_batch.values() {
            batch.put_cf(values, value_key(key_hash, *version), value.encode());
        }
        batch.put_cf(self.cf(CF_META), META_BEST, hash.encode());
        batch.put_cf(self.cf(CF_META), META_FINALIZED, hash.encode());
        Ok(batch)
    }
}

impl StateRead for Storage {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        // The runtime cannot handle I/O errors mid-block; a failing disk must stop the node.
        self.state(key)
            .unwrap_or_else(|e| panic!("state read failed: {e}"))
    }
}

fn value_key(key_hash: &KeyHash, version: Version) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..32].copy_from_slice(&key_hash.0);
    out[32..].copy_from_slice(&version.to_be_bytes());
    out
}

fn borsh_bytes<T: borsh::BorshSerialize>(value: &T) -> Result<Vec<u8>> {
    borsh::to_vec(value).map_err(|e| StorageError::Tree(e.to_string()))
}

/// The Jellyfish Merkle tree's view of the database.
struct TreeStore<'a>(&'a Storage);

impl TreeReader for TreeStore<'_> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let key = borsh::to_vec(node_key)?;
        match self.0.get_cf(CF_JMT_NODES, &key)? {
            Some(bytes) => Ok(Some(borsh::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self.0.versioned_value(max_version, key_hash)?)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only used when restoring a tree from a snapshot, which gridchain does not do.
        anyhow::bail!("tree restore is not supported")
    }
}

#[cfg(test)]
mod tests;
