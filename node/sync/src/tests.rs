//! Import without sockets (stage 1 and 2 on real RocksDB), and catch-up over real libp2p swarms
//! on loopback with an honest peer and a lying one.
#![allow(clippy::unwrap_used)]

use crate::fixtures::{certificate, final_blocks, grow, importer, node, Node, VALIDATORS};
use crate::import::{check_signatures, ImportError, KnownSigners};
use crate::protocol::{
    serve, FinalBlock, Server, SyncRequest, SyncResponse, MAX_IN_FLIGHT, MAX_IN_FLIGHT_PER_PEER,
};
use crate::{catch_up, SyncStatus};
use gridchain_network::{NetworkConfig, PeerId};
use gridchain_primitives::Hash;
use parity_scale_codec::Encode;
use std::sync::Arc;
use std::time::Duration;

fn import_all(target: &Node, blocks: Vec<FinalBlock>) -> Result<u64, ImportError> {
    let importer = importer(target);
    let checked = check_signatures(target.chain, &known(target), blocks)?;
    let mut count = 0;
    for block in checked {
        importer.import(block)?;
        count += 1;
    }
    Ok(count)
}

fn known(node: &Node) -> KnownSigners {
    KnownSigners::at_best(&node.storage).unwrap()
}

fn best(node: &Node) -> u64 {
    node.storage.best_header().unwrap().unwrap().number
}

#[test]
fn imported_blocks_are_the_source_chain_with_its_certificates() {
    let source = node();
    grow(&source, 25, 2);
    let target = node();
    assert_eq!(
        import_all(&target, final_blocks(&source, 1, 25)).unwrap(),
        25
    );
    target.storage.sync_to_disk().unwrap();
    for n in 0..=25 {
        assert_eq!(
            target.storage.hash_of(n).unwrap(),
            source.storage.hash_of(n).unwrap()
        );
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
    grow(&source, 3, 2);
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
    assert!(
        matches!(&err, ImportError::Peer { number: 2, reason } if reason.contains("not a validator")),
        "{err}"
    );
    assert_eq!(best(&target), 1);
}

#[test]
fn forged_signatures_are_caught_before_anything_executes() {
    let source = node();
    grow(&source, 2, 2);
    let target = node();

    let mut blocks = final_blocks(&source, 1, 2);
    blocks[0].certificate.signatures[0].1 .0[0] ^= 1;
    assert!(matches!(
        check_signatures(target.chain, &known(&target), blocks),
        Err(ImportError::Peer { number: 1, .. })
    ));

    let mut blocks = final_blocks(&source, 1, 2);
    blocks[1].block.extrinsics[0].signature.0[5] ^= 1;
    // The certificate still names the original block: re-certify the tampered one, so only the
    // transaction signature is wrong.
    blocks[1].certificate = certificate(source.chain, &blocks[1].block, &VALIDATORS[..3]);
    let err = check_signatures(target.chain, &known(&target), blocks)
        .err()
        .unwrap();
    assert!(
        matches!(&err, ImportError::Peer { number: 2, reason } if reason.contains("bad signature")),
        "{err}"
    );

    let mut blocks = final_blocks(&source, 1, 1);
    blocks[0].certificate.block_hash = Hash::of(b"another block");
    assert!(check_signatures(target.chain, &known(&target), blocks).is_err());

    // Oversized or repeated signer lists are refused before any signature is checked.
    let mut blocks = final_blocks(&source, 1, 1);
    let first = blocks[0].certificate.signatures[0];
    blocks[0].certificate.signatures.push(first);
    let err = check_signatures(target.chain, &known(&target), blocks)
        .err()
        .unwrap();
    assert!(
        matches!(&err, ImportError::Peer { reason, .. } if reason.contains("twice")),
        "{err}"
    );
    let mut blocks = final_blocks(&source, 1, 1);
    blocks[0].certificate.signatures = vec![first; 1_001];
    let err = check_signatures(target.chain, &known(&target), blocks)
        .err()
        .unwrap();
    assert!(
        matches!(&err, ImportError::Peer { reason, .. } if reason.contains("more than any")),
        "{err}"
    );
    // A signer outside every set the target knows for that height is refused before its
    // signature is looked at (this one is garbage too: the verdict names the outsider).
    let mut blocks = final_blocks(&source, 1, 1);
    let outsider = gridchain_primitives::Pair::dev("Mallory").public();
    blocks[0].certificate.signatures[0].0 = outsider;
    let err = check_signatures(target.chain, &known(&target), blocks)
        .err()
        .unwrap();
    assert!(
        matches!(&err, ImportError::Peer { reason, .. } if reason.contains("not a validator") && reason.contains(&outsider.to_string())),
        "{err}"
    );
    assert_eq!(best(&target), 0);
}

#[test]
fn a_certified_block_whose_execution_disagrees_is_refused() {
    let source = node();
    grow(&source, 2, 2);
    let target = node();
    let mut blocks = final_blocks(&source, 1, 2);
    // Even with a valid certificate (as if 2/3 of the validators lied), the state root must be
    // what execution gives.
    blocks[1].block.header.state_root = Hash::of(b"wrong root");
    blocks[1].certificate = certificate(source.chain, &blocks[1].block, &VALIDATORS);
    let err = import_all(&target, blocks).unwrap_err();
    assert!(
        matches!(&err, ImportError::Peer { number: 2, reason } if reason.contains("state root")),
        "{err}"
    );
    assert_eq!(best(&target), 1);

    // A block that skips a height does not extend the best block.
    grow(&source, 1, 2);
    let err = import_all(&target, final_blocks(&source, 3, 3)).unwrap_err();
    assert!(
        matches!(&err, ImportError::Peer { number: 3, reason } if reason.contains("does not extend")),
        "{err}"
    );
    assert_eq!(best(&target), 1);
}

#[test]
fn serving_answers_ranges_and_refuses_garbage() {
    let source = node();
    grow(&source, 12, 2);
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

#[test]
fn a_peer_gets_at_most_its_share_of_requests_answered_at_once() {
    let source = node();
    grow(&source, 3, 0);
    let server = Server::new(source.storage.clone());
    let (greedy, other) = (PeerId::random(), PeerId::random());
    let status = SyncRequest::Status.encode();
    let answer = |peer| SyncResponse::decode_untrusted(&server.serve(peer, &status)).unwrap();

    let held: Vec<_> = (0..MAX_IN_FLIGHT_PER_PEER)
        .map(|_| server.permit(greedy).unwrap())
        .collect();
    assert!(matches!(answer(greedy), SyncResponse::Refused(r) if r.contains("too many")));
    assert_eq!(answer(other), SyncResponse::Status { best: 3 });
    drop(held);
    assert_eq!(answer(greedy), SyncResponse::Status { best: 3 });

    // All peers together are capped too.
    let crowd: Vec<_> = (0..MAX_IN_FLIGHT)
        .map(|i| server.permit(if i % 2 == 0 { greedy } else { PeerId::random() }))
        .take_while(Option::is_some)
        .collect();
    assert!(
        crowd.len() < MAX_IN_FLIGHT,
        "greedy alone stops at its share"
    );
    let others: Vec<_> = (crowd.len()..MAX_IN_FLIGHT)
        .map(|_| server.permit(PeerId::random()).unwrap())
        .collect();
    assert!(matches!(answer(other), SyncResponse::Refused(_)));
    drop((crowd, others));
    assert_eq!(answer(other), SyncResponse::Status { best: 3 });
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

/// A swarm on loopback with `(node key, port)`, dialling `peers`, answering with `on_request`.
async fn swarm(
    genesis: Hash,
    (key, port): ([u8; 32], u16),
    peers: &[([u8; 32], u16)],
    on_request: gridchain_network::RequestHandler,
) -> gridchain_network::Network {
    let config = NetworkConfig {
        listen: format!("/ip4/127.0.0.1/tcp/{port}"),
        peers: peers
            .iter()
            .map(|(k, p)| format!("/ip4/127.0.0.1/tcp/{p}/p2p/{}", peer_id(*k)))
            .collect(),
        node_key: key,
        genesis,
    };
    gridchain_network::start(
        config,
        Arc::new(|_| gridchain_network::GossipVerdict::Accept),
        on_request,
    )
    .await
    .unwrap()
}

/// An honest peer serves its chain; a liar claims a longer one and serves the same blocks with
/// one certificate signature broken. A fresh node catches up with the honest chain over real
/// sockets, bans the liar, and ends with every block and certificate of the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_imports_from_honest_peers_and_bans_a_liar() {
    let source = Arc::new(node());
    grow(&source, 1_200, 2);
    let genesis = source.chain.genesis_hash;
    let (honest_key, liar_key, target_key) = ([11u8; 32], [12u8; 32], [13u8; 32]);
    let (honest_port, liar_port, target_port) = (free_port(), free_port(), free_port());

    let serving = Server::new(source.storage.clone());
    let _honest = swarm(
        genesis,
        (honest_key, honest_port),
        &[],
        Arc::new(move |peer, request| serving.serve(peer, &request)),
    )
    .await;
    let lying = source.storage.clone();
    let _liar = swarm(
        genesis,
        (liar_key, liar_port),
        &[],
        Arc::new(move |_, request| {
            match SyncResponse::decode_untrusted(&serve(&lying, &request)) {
                Some(SyncResponse::Status { best }) => {
                    SyncResponse::Status { best: best + 5 }.encode()
                }
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
    .await;

    let target = node();
    let network = swarm(
        genesis,
        (target_key, target_port),
        &[(honest_key, honest_port), (liar_key, liar_port)],
        Arc::new(|_, _| Vec::new()),
    )
    .await;
    // Both peers connected, so the liar is asked too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while network.peers() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "peers did not connect"
        );
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
        assert_eq!(
            target.storage.hash_of(n).unwrap(),
            source.storage.hash_of(n).unwrap()
        );
        assert_eq!(
            target.storage.certificate(n).unwrap(),
            source.storage.certificate(n).unwrap()
        );
    }
}
