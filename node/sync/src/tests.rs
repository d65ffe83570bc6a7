//! Import without sockets (stage 1 and 2 on real RocksDB), and catch-up over real libp2p swarms
//! on loopback with an honest peer and a lying one.
#![allow(clippy::unwrap_used)]

use crate::import::{check_signatures, ImportError, Importer};
use crate::protocol::{serve, FinalBlock, SyncRequest, SyncResponse};
use crate::{catch_up, SyncStatus};
use gridchain_network::NetworkConfig;
use gridchain_primitives::finality::{vote_sign_bytes, CommitCertificate, PRECOMMIT};
use gridchain_primitives::{ChainContext, Hash, Pair};
use gridchain_runtime::{balances, build_genesis, Block, BlockBuilder, Call, Extrinsic, SPEC_VERSION};
use gridchain_storage::Storage;
use gridchain_txpool::{PoolLimits, TxPool};
use parity_scale_codec::Encode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

const VALIDATORS: [&str; 4] = ["Alice", "Bob", "Charlie", "Dave"];

struct Node {
    _dir: tempfile::TempDir,
    storage: Arc<Storage>,
    chain: ChainContext,
}

/// A fresh database of the built-in `local` chain (four validators).
fn node() -> Node {
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

fn importer(node: &Node) -> Importer {
    Importer {
        storage: node.storage.clone(),
        chain: node.chain,
        pool: Arc::new(TxPool::new(node.chain, PoolLimits::default())),
        heads: broadcast::channel(16).0,
    }
}

fn certificate(chain: ChainContext, block: &Block, signers: &[&str]) -> CommitCertificate {
    let (height, hash) = (block.header.number, block.hash());
    CommitCertificate {
        height,
        round: 0,
        block_hash: hash,
        signatures: signers
            .iter()
            .map(|n| {
                let key = Pair::dev(n);
                let bytes =
                    vote_sign_bytes(chain.genesis_hash, PRECOMMIT, height, 0, Some(hash), &key.public());
                (key.public(), key.sign(&bytes))
            })
            .collect(),
    }
}

/// Builds, certifies (3 of 4) and commits `count` blocks on `node`, each with two transfers.
fn grow(node: &Node, count: u64) {
    let eve = Pair::dev("Eve");
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
        for i in 0..2 {
            let xt = Extrinsic::sign(
                &eve,
                Call::Balances(balances::Call::Transfer {
                    dest: ferdie,
                    amount: 1_000,
                }),
                (number - 1) * 2 + i,
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

fn final_blocks(node: &Node, from: u64, to: u64) -> Vec<FinalBlock> {
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

fn import_all(target: &Node, blocks: Vec<FinalBlock>) -> Result<u64, ImportError> {
    let importer = importer(target);
    let checked = check_signatures(target.chain, blocks)?;
    let mut count = 0;
    for block in checked {
        importer.import(block)?;
        count += 1;
    }
    Ok(count)
}

fn best(node: &Node) -> u64 {
    node.storage.best_header().unwrap().unwrap().number
}

#[test]
fn imported_blocks_are_the_source_chain_with_its_certificates() {
    let source = node();
    grow(&source, 25);
    let target = node();
    assert_eq!(import_all(&target, final_blocks(&source, 1, 25)).unwrap(), 25);
    target.storage.sync_to_disk().unwrap();
    for n in 0..=25 {
        assert_eq!(target.storage.hash_of(n).unwrap(), source.storage.hash_of(n).unwrap());
    }
    assert_eq!(
        target.storage.certificate(25).unwrap(),
        source.storage.certificate(25).unwrap()
    );
    assert_eq!(
        target.storage.best_header().unwrap().unwrap().state_root,
        source.storage.best_header().unwrap().unwrap().state_root
    );
}

#[test]
fn a_certificate_without_two_thirds_of_the_power_is_refused_and_nothing_is_written() {
    let source = node();
    grow(&source, 3);
    let target = node();
    let mut blocks = final_blocks(&source, 1, 3);
    blocks[1].certificate = certificate(source.chain, &blocks[1].block, &["Alice", "Bob"]);
    let err = import_all(&target, blocks).unwrap_err();
    assert!(
        matches!(&err, ImportError::Peer { number: 2, reason } if reason.contains("more than 2/3")),
        "{err}"
    );
    assert_eq!(best(&target), 1);

    // Signatures of keys outside the set carry no power either.
    let mut blocks = final_blocks(&source, 2, 3);
    blocks[0].certificate =
        certificate(source.chain, &blocks[0].block, &["Alice", "Bob", "Mallory"]);
    let err = import_all(&target, blocks).unwrap_err();
    assert!(matches!(&err, ImportError::Peer { number: 2, reason } if reason.contains("not a validator")), "{err}");
    assert_eq!(best(&target), 1);
}

#[test]
fn forged_signatures_are_caught_before_anything_executes() {
    let source = node();
    grow(&source, 2);
    let target = node();

    let mut blocks = final_blocks(&source, 1, 2);
    blocks[0].certificate.signatures[0].1 .0[0] ^= 1;
    assert!(matches!(
        check_signatures(target.chain, blocks),
        Err(ImportError::Peer { number: 1, .. })
    ));

    let mut blocks = final_blocks(&source, 1, 2);
    blocks[1].block.extrinsics[0].signature.0[5] ^= 1;
    // The certificate still names the original block: re-certify the tampered one, so only the
    // transaction signature is wrong.
    blocks[1].certificate = certificate(source.chain, &blocks[1].block, &VALIDATORS[..3]);
    let err = check_signatures(target.chain, blocks).err().unwrap();
    assert!(matches!(&err, ImportError::Peer { number: 2, reason } if reason.contains("bad signature")), "{err}");

    let mut blocks = final_blocks(&source, 1, 1);
    blocks[0].certificate.block_hash = Hash::of(b"another block");
    assert!(check_signatures(target.chain, blocks).is_err());
    assert_eq!(best(&target), 0);
}

#[test]
fn a_certified_block_whose_execution_disagrees_is_refused() {
    let source = node();
    grow(&source, 2);
    let target = node();
    let mut blocks = final_blocks(&source, 1, 2);
    // Even with a valid certificate (as if 2/3 of the validators lied), the state root must be
    // what execution gives.
    blocks[1].block.header.state_root = Hash::of(b"wrong root");
    blocks[1].certificate = certificate(source.chain, &blocks[1].block, &VALIDATORS);
    let err = import_all(&target, blocks).unwrap_err();
    assert!(matches!(&err, ImportError::Peer { number: 2, reason } if reason.contains("state root")), "{err}");
    assert_eq!(best(&target), 1);

    // A block that skips a height does not extend the best block.
    grow(&source, 1);
    let err = import_all(&target, final_blocks(&source, 3, 3)).unwrap_err();
    assert!(matches!(&err, ImportError::Peer { number: 3, reason } if reason.contains("does not extend")), "{err}");
    assert_eq!(best(&target), 1);
}

#[test]
fn serving_answers_ranges_and_refuses_garbage() {
    let source = node();
    grow(&source, 12);
    let decode = |bytes: Vec<u8>| SyncResponse::decode_untrusted(&bytes).unwrap();
    assert_eq!(
        decode(serve(&source.storage, &SyncRequest::Status.encode())),
        SyncResponse::Status { best: 12 }
    );
    let SyncResponse::Blocks(blocks) = decode(serve(
        &source.storage,
        &SyncRequest::Blocks { from: 5, max: 4 }.encode(),
    )) else {
        panic!("blocks expected")
    };
    let numbers: Vec<u64> = blocks.iter().map(|b| b.block.header.number).collect();
    assert_eq!(numbers, vec![5, 6, 7, 8]);
    let SyncResponse::Blocks(blocks) = decode(serve(
        &source.storage,
        &SyncRequest::Blocks {
            from: 11,
            max: u32::MAX,
        }
        .encode(),
    )) else {
        panic!("blocks expected")
    };
    assert_eq!(blocks.len(), 2, "the chain ends at 12");
    assert!(matches!(
        decode(serve(&source.storage, b"\xff\x00garbage")),
        SyncResponse::Refused(_)
    ));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn peer_id(key: [u8; 32]) -> String {
    gridchain_network::peer_id(&key).unwrap().to_string()
}

/// An honest peer serves its chain; a liar claims a longer one and serves the same blocks with
/// one certificate signature broken. A fresh node catches up with the honest chain over real
/// sockets, bans the liar, and ends with every block and certificate of the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_imports_from_honest_peers_and_bans_a_liar() {
    let source = Arc::new(node());
    grow(&source, 1_200);
    let genesis = source.chain.genesis_hash;
    let (honest_key, liar_key, target_key) = ([11u8; 32], [12u8; 32], [13u8; 32]);
    let (honest_port, liar_port, target_port) = (free_port(), free_port(), free_port());

    let serving = source.storage.clone();
    let _honest = gridchain_network::start(
        NetworkConfig {
            listen: format!("/ip4/127.0.0.1/tcp/{honest_port}"),
            peers: vec![],
            node_key: honest_key,
            genesis,
        },
        Arc::new(|_| {}),
        Arc::new(move |_, request| serve(&serving, &request)),
    )
    .await
    .unwrap();
    let lying = source.storage.clone();
    let _liar = gridchain_network::start(
        NetworkConfig {
            listen: format!("/ip4/127.0.0.1/tcp/{liar_port}"),
            peers: vec![],
            node_key: liar_key,
            genesis,
        },
        Arc::new(|_| {}),
        Arc::new(move |_, request| {
            match SyncResponse::decode_untrusted(&serve(&lying, &request)) {
                Some(SyncResponse::Status { best }) => SyncResponse::Status { best: best + 5 }.encode(),
                Some(SyncResponse::Blocks(mut blocks)) => {
                    if let Some(first) = blocks.first_mut() {
                        first.certificate.signatures[0].1 .0[9] ^= 1;
                    }
                    SyncResponse::Blocks(blocks).encode()
                }
                _ => Vec::new(),
            }
        }),
    )
    .await
    .unwrap();

    let target = node();
    let network = gridchain_network::start(
        NetworkConfig {
            listen: format!("/ip4/127.0.0.1/tcp/{target_port}"),
            peers: vec![
                format!("/ip4/127.0.0.1/tcp/{honest_port}/p2p/{}", peer_id(honest_key)),
                format!("/ip4/127.0.0.1/tcp/{liar_port}/p2p/{}", peer_id(liar_key)),
            ],
            node_key: target_key,
            genesis,
        },
        Arc::new(|_| {}),
        Arc::new(|_, _| Vec::new()),
    )
    .await
    .unwrap();
    // Both peers connected, so the liar is asked too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while network.peers() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "peers did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = SyncStatus::default();
    let report = catch_up(
        &network,
        Arc::new(importer(&target)),
        &status,
        true,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(report.best, 1_200);
    assert_eq!(report.imported, 1_200);
    assert_eq!(report.banned.len(), 1, "{report:?}");
    assert_eq!(report.banned[0].to_string(), peer_id(liar_key));
    assert!(!status.is_syncing());
    for n in [1, 600, 1_200] {
        assert_eq!(target.storage.hash_of(n).unwrap(), source.storage.hash_of(n).unwrap());
        assert_eq!(
            target.storage.certificate(n).unwrap(),
            source.storage.certificate(n).unwrap()
        );
    }
}
