//! A `local` chain (four validators) built and certified in process, for tests and the import
//! benchmark (feature `fixtures`).
#![allow(clippy::unwrap_used)]

use crate::import::Importer;
use crate::protocol::FinalBlock;
use gridchain_primitives::finality::{vote_sign_bytes, CommitCertificate, PRECOMMIT};
use gridchain_primitives::{ChainContext, Pair};
use gridchain_runtime::{
    balances, build_genesis, Block, BlockBuilder, Call, Extrinsic, SPEC_VERSION,
};
use gridchain_storage::Storage;
use gridchain_txpool::{PoolLimits, TxPool};
use parity_scale_codec::Encode;
use std::sync::Arc;
use tokio::sync::broadcast;

pub const VALIDATORS: [&str; 4] = ["Alice", "Bob", "Charlie", "Dave"];

pub struct Node {
    _dir: tempfile::TempDir,
    pub storage: Arc<Storage>,
    pub chain: ChainContext,
}

/// A fresh database of the built-in `local` chain (four validators).
pub fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(Storage::open(dir.path()).unwrap());
    let spec = gridchain_chain_spec::local();
    let changes = build_genesis(&spec.genesis_config()).unwrap();
    let prepared = storage.prepare_state(&changes, 0).unwrap();
    let genesis = gridchain_runtime::genesis_header(prepared.root);
    storage
        .commit_genesis(&genesis, &changes, prepared)
        .unwrap();
    let chain = ChainContext {
        genesis_hash: genesis.hash(),
        spec_version: SPEC_VERSION,
    };
    Node {
        _dir: dir,
        storage,
        chain,
    }
}

pub fn importer(node: &Node) -> Importer {
    Importer {
        storage: node.storage.clone(),
        chain: node.chain,
        pool: Arc::new(TxPool::new(node.chain, PoolLimits::default())),
        heads: broadcast::channel(16).0,
    }
}

pub fn certificate(chain: ChainContext, block: &Block, signers: &[&str]) -> CommitCertificate {
    let (height, hash) = (block.header.number, block.hash());
    CommitCertificate {
        height,
        round: 0,
        block_hash: hash,
        signatures: signers
            .iter()
            .map(|n| {
                let key = Pair::dev(n);
                let bytes = vote_sign_bytes(
                    chain.genesis_hash,
                    PRECOMMIT,
                    height,
                    0,
                    Some(hash),
                    &key.public(),
                );
                (key.public(), key.sign(&bytes))
            })
            .collect(),
    }
}

/// Builds, certifies (3 of 4) and commits `count` blocks on `node`, each with `transfers`
/// transfers from one of the funded dev accounts to Ferdie.
pub fn grow(node: &Node, count: u64, transfers: u64) {
    let senders: Vec<Pair> = ["Eve", "Alice", "Bob", "Charlie", "Dave"]
        .iter()
        .map(|n| Pair::dev(n))
        .collect();
    let ferdie = Pair::dev("Ferdie").public();
    for _ in 0..count {
        let best = node.storage.best_header().unwrap().unwrap();
        let number = best.number + 1;
        let storage: &Storage = &node.storage;
        let mut builder = BlockBuilder::new(
            storage,
            node.chain,
            best.hash(),
            number,
            1_700_000_000_000 + number * 1_000,
            Pair::dev(VALIDATORS[(number % 4) as usize]).public(),
        )
        .unwrap();
        for i in 0..transfers {
            let sender = &senders[(i % senders.len() as u64) as usize];
            let nonce = gridchain_runtime::account_nonce(storage, &sender.public())
                + i / senders.len() as u64;
            let xt = Extrinsic::sign(
                sender,
                Call::Balances(balances::Call::Transfer {
                    dest: ferdie,
                    amount: 1_000,
                }),
                nonce,
                number + 100,
                0,
                node.chain,
            );
            let len = xt.encoded_size();
            builder.push(xt, len, true).unwrap().unwrap();
        }
        let built = builder.finish();
        let prepared = node.storage.prepare_state(&built.changes, number).unwrap();
        let block = Block {
            header: built.header(prepared.root),
            extrinsics: built.extrinsics.clone(),
        };
        let cert = certificate(node.chain, &block, &VALIDATORS[..3]);
        node.storage
            .commit_block(&block, &cert, &built.changes, prepared)
            .unwrap();
    }
}

/// Blocks `from ..= to` of `node` with their certificates, as a peer serves them.
pub fn final_blocks(node: &Node, from: u64, to: u64) -> Vec<FinalBlock> {
    (from..=to)
        .map(|n| {
            let hash = node.storage.hash_of(n).unwrap().unwrap();
            FinalBlock {
                block: node.storage.block(&hash).unwrap().unwrap(),
                certificate: node.storage.certificate(n).unwrap().unwrap(),
            }
        })
        .collect()
}
