//! The application side of consensus without sockets: several [`App`]s, each on its own RocksDB,
//! driven with Malachite's application messages by hand — what the engine would send them —
//! in deterministic scenarios (n4: four honest validators; n4f1: one of them faulty).
#![allow(clippy::unwrap_used)]

use crate::app::{proposal_stream, App, AppParts};
use crate::codec::certificate_to_malachite;
use crate::context::{Address, BlockValue, GridContext, Height, ProposalPart};
use crate::signing::{vote_sign_bytes, GridSigner};
use crate::ConsensusStatus;
use gridchain_primitives::{finality::CommitCertificate, ChainContext, Hash, Pair};
use gridchain_runtime::{balances, build_genesis, Block, Call, Extrinsic, SPEC_VERSION};
use gridchain_storage::Storage;
use gridchain_txpool::{PoolLimits, TxPool};
use malachitebft_app_channel::app::engine::host::{Next, SyncedValueOutcome};
use malachitebft_app_channel::app::events::TxEvent;
use malachitebft_app_channel::app::streaming::{StreamContent, StreamMessage};
use malachitebft_app_channel::app::types::core::{
    Context as _, HeightParams, NilOrVal, Round, Validity, VoteType,
};
use malachitebft_app_channel::app::types::{PeerId, ProposedValue};
use malachitebft_app_channel::{AppMsg, Channels, NetworkMsg};
use parity_scale_codec::Encode;
use std::sync::{atomic::Ordering, Arc};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};

const VALIDATORS: [&str; 4] = ["Alice", "Bob", "Charlie", "Dave"];

/// A libp2p peer id from a fixed seed.
fn peer_id(seed: u8) -> PeerId {
    let key = malachitebft_app_channel::app::types::Keypair::ed25519_from_bytes([seed; 32])
        .expect("32 bytes");
    PeerId::from_bytes(&key.public().to_peer_id().to_bytes()).expect("a peer id")
}

struct TestNode {
    _dir: tempfile::TempDir,
    storage: Arc<Storage>,
    pool: Arc<TxPool>,
    app: App,
    channels: Channels<GridContext>,
    published: mpsc::Receiver<NetworkMsg<GridContext>>,
    key: Pair,
    peer: PeerId,
    chain: ChainContext,
}

fn app(
    storage: Arc<Storage>,
    pool: Arc<TxPool>,
    chain: ChainContext,
    signer: GridSigner,
    status: Arc<ConsensusStatus>,
) -> App {
    App::new(AppParts {
        storage,
        pool,
        chain,
        signer: Some(Arc::new(signer)),
        validators: crate::runtime_validators(),
        block_time: Duration::from_millis(500),
        heads: broadcast::channel(16).0,
        on_commit: Arc::new(|_, _, _| {}),
        status,
    })
}

/// A validator node of the built-in `local` chain (4 validators) on a fresh database.
fn node(name: &str) -> TestNode {
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
    let pool = Arc::new(TxPool::new(chain, PoolLimits::default()));
    let key = Pair::dev(name);
    let (network, published) = mpsc::channel(1_024);
    let channels = Channels {
        consensus: mpsc::channel(1).1,
        network,
        events: TxEvent::new(),
        requests: mpsc::channel(1).0,
        net_requests: mpsc::channel(1).0,
    };
    let status = Arc::new(ConsensusStatus::default());
    status.peers.store(3, Ordering::Relaxed);
    let app = app(
        storage.clone(),
        pool.clone(),
        chain,
        GridSigner {
            key: key.clone(),
            genesis: chain.genesis_hash,
        },
        status,
    );
    TestNode {
        _dir: dir,
        storage,
        pool,
        app,
        channels,
        published,
        key,
        peer: peer_id(name.len() as u8 + name.as_bytes()[0]),
        chain,
    }
}

impl TestNode {
    /// Sends one application message and returns the reply.
    async fn ask<T>(&mut self, msg: impl FnOnce(oneshot::Sender<T>) -> AppMsg<GridContext>) -> T {
        let (tx, rx) = oneshot::channel();
        self.app.handle(msg(tx), &self.channels).await.unwrap();
        rx.await.expect("the app replied")
    }

    async fn ready(&mut self) -> (Height, HeightParams<GridContext>) {
        self.ask(|reply| AppMsg::ConsensusReady { reply }).await
    }

    async fn start_round(&mut self, height: u64, round: u32) -> Vec<ProposedValue<GridContext>> {
        let proposer = Address(self.key.public());
        self.ask(|reply_value| AppMsg::StartedRound {
            height: Height(height),
            round: Round::new(round),
            proposer,
            role: malachitebft_app_channel::app::consensus::Role::Validator,
            reply_value,
        })
        .await
    }

    async fn propose(&mut self, height: u64, round: u32) -> Hash {
        let value = self
            .ask(|reply| AppMsg::GetValue {
                height: Height(height),
                round: Round::new(round),
                timeout: Duration::from_secs(3),
                reply,
            })
            .await;
        value.value.0
    }

    /// What the node published since the last call.
    fn drain_published(&mut self) -> Vec<StreamMessage<ProposalPart>> {
        let mut out = Vec::new();
        while let Ok(NetworkMsg::PublishProposalPart(m)) = self.published.try_recv() {
            out.push(m);
        }
        out
    }

    /// Delivers a stream from `from`; returns the value the last part completed, if any.
    async fn receive(
        &mut self,
        from: PeerId,
        parts: Vec<StreamMessage<ProposalPart>>,
    ) -> Option<ProposedValue<GridContext>> {
        let mut last = None;
        for part in parts {
            last = self
                .ask(|reply| AppMsg::ReceivedProposalPart {
                    from,
                    published_by: Some(from),
                    part,
                    reply,
                })
                .await;
        }
        last
    }

    async fn decide(&mut self, certificate: &CommitCertificate) {
        let certificate = certificate_to_malachite(certificate);
        self.ask(|reply| AppMsg::Decided {
            certificate,
            extensions: Default::default(),
            reply,
        })
        .await;
    }

    fn signer(&self) -> GridSigner {
        GridSigner {
            key: self.key.clone(),
            genesis: self.chain.genesis_hash,
        }
    }
}

/// Precommits for `hash` at (height, round 0) by the given validators.
fn certificate(nodes: &[&TestNode], height: u64, hash: Hash) -> CommitCertificate {
    CommitCertificate {
        height,
        round: 0,
        block_hash: hash,
        signatures: nodes
            .iter()
            .map(|n| {
                let bytes = vote_sign_bytes(
                    n.chain.genesis_hash,
                    VoteType::Precommit,
                    Height(height),
                    Round::new(0),
                    &NilOrVal::Val(hash),
                    &Address(n.key.public()),
                );
                (n.key.public(), n.key.sign(&bytes))
            })
            .collect(),
    }
}

async fn network() -> Vec<TestNode> {
    let mut nodes: Vec<TestNode> = VALIDATORS.iter().map(|n| node(n)).collect();
    for n in nodes.iter_mut() {
        let (height, params) = n.ready().await;
        assert_eq!(height, Height(1));
        assert_eq!(params.validator_set.validators().len(), 4);
        n.start_round(1, 0).await;
    }
    nodes
}

fn proposer_of(nodes: &[TestNode], height: u64, round: u32) -> usize {
    let set = crate::context::ValidatorSet::new(
        nodes
            .iter()
            .map(|n| crate::context::Validator {
                address: Address(n.key.public()),
                public_key: n.key.public(),
                account: n.key.public(),
                power: 100_000,
            })
            .collect(),
    );
    let chosen = GridContext.select_proposer(&set, Height(height), Round::new(round));
    nodes
        .iter()
        .position(|n| Address(n.key.public()) == chosen.address)
        .unwrap()
}

fn transfer(from: &Pair, nonce: u64, chain: ChainContext) -> Extrinsic {
    Extrinsic::sign(
        from,
        Call::Balances(balances::Call::Transfer {
            dest: Pair::dev("Ferdie").public(),
            amount: 1_000,
        }),
        nonce,
        1_000,
        0,
        chain,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn n4_an_honest_proposal_is_valid_everywhere_and_commits_identically() {
    let mut nodes = network().await;
    let p = proposer_of(&nodes, 1, 0);
    let xt = transfer(&Pair::dev("Eve"), 0, nodes[p].chain);
    let storage: &Storage = &nodes[p].storage.clone();
    nodes[p]
        .pool
        .submit(storage, 1, xt.clone(), xt.encoded_size())
        .unwrap();

    let hash = nodes[p].propose(1, 0).await;
    let parts = nodes[p].drain_published();
    // Asked twice for the same round, a proposer must give (and stream) the same block.
    assert_eq!(nodes[p].propose(1, 0).await, hash);
    assert_eq!(nodes[p].drain_published(), parts);
    let from = nodes[p].peer;
    for (i, n) in nodes.iter_mut().enumerate().filter(|(i, _)| *i != p) {
        let value = n.receive(from, parts[..parts.len() / 2].to_vec()).await;
        assert!(value.is_none(), "node {i} completed half a stream");
        let value = n
            .receive(from, parts[parts.len() / 2..].to_vec())
            .await
            .expect("the stream is complete");
        assert_eq!(value.value, BlockValue(hash));
        assert_eq!(value.validity, Validity::Valid);
        assert_eq!(value.proposer, Address(Pair::dev(VALIDATORS[p]).public()));
    }

    let signers: Vec<&TestNode> = nodes.iter().take(3).collect();
    let cert = certificate(&signers, 1, hash);
    for n in nodes.iter_mut() {
        n.decide(&cert).await;
        let next = n
            .ask(|reply| AppMsg::Finalized {
                certificate: certificate_to_malachite(&cert),
                extensions: Default::default(),
                evidence: malachitebft_app_channel::app::types::MisbehaviorEvidence {
                    proposals: Default::default(),
                    votes: Default::default(),
                },
                reply,
            })
            .await;
        assert!(matches!(next, Next::Start(Height(2), _)));
        assert_eq!(n.storage.hash_of(1).unwrap(), Some(hash));
        assert_eq!(n.storage.certificate(1).unwrap(), Some(cert.clone()));
        assert_eq!(
            n.storage
                .tx_location(&xt.hash())
                .unwrap()
                .unwrap()
                .block_number,
            1
        );
        assert!(n.storage.pending_proposals().unwrap().is_empty());
    }
    // The proposer's staking account was paid the fee: all states agree, roots included.
    let root = nodes[0].storage.best_header().unwrap().unwrap().state_root;
    assert!(nodes
        .iter()
        .all(|n| n.storage.best_header().unwrap().unwrap().state_root == root));

    // Sync serves what was committed, with its certificate.
    let values = nodes[1]
        .ask(|reply| AppMsg::GetDecidedValues {
            range: Height(1)..=Height(5),
            reply,
        })
        .await;
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].certificate.value_id, hash);
}

/// n4f1: the fourth validator is faulty. Each of its tampered proposals is refused by the
/// honest three, and never counts as a valid value.
#[tokio::test(flavor = "multi_thread")]
async fn n4f1_tampered_proposals_are_refused() {
    let mut nodes = network().await;
    // The faulty validator is the proposer of round 0; its tampered blocks go out in rounds it
    // also proposes.
    let faulty = proposer_of(&nodes, 1, 0);
    let rounds_of_faulty: Vec<u32> = (0..40u32)
        .filter(|r| proposer_of(&nodes, 1, *r) == faulty)
        .collect();
    // The faulty node builds an honest block first, to have something to tamper with.
    let honest_hash = nodes[faulty].propose(1, 0).await;
    let honest_parts = nodes[faulty].drain_published();
    let from = nodes[faulty].peer;
    let block: Block = {
        let mut bytes = Vec::new();
        for p in &honest_parts {
            if let StreamContent::Data(ProposalPart::Data(d)) = &p.content {
                bytes.extend_from_slice(d);
            }
        }
        gridchain_primitives::decode_untrusted("block", &bytes).unwrap()
    };
    assert_eq!(block.hash(), honest_hash);
    let signer = nodes[faulty].signer();
    let genesis = nodes[faulty].chain.genesis_hash;
    let signed =
        |b: &Block, round: u32| proposal_stream(&signer, genesis, 1, round, -1, &b.encode());

    // 1. Bytes changed after signing: the signature no longer covers them.
    let mut flipped = honest_parts.clone();
    for p in flipped.iter_mut() {
        if let StreamContent::Data(ProposalPart::Data(d)) = &mut p.content {
            d[0] ^= 1;
        }
    }
    // 2. A state root the block does not produce.
    let mut bad_root = block.clone();
    bad_root.header.state_root = Hash::of(b"not the state");
    // 3. A timestamp far ahead of every clock.
    let mut future = block.clone();
    future.header.timestamp_ms += 3_600_000;
    // 4. Not a child of the best block.
    let mut orphan = block.clone();
    orphan.header.parent_hash = Hash::of(b"elsewhere");
    // 5. A transaction whose signature does not verify.
    let mut forged = block.clone();
    let mut xt = transfer(&Pair::dev("Eve"), 0, nodes[0].chain);
    xt.signature.0[0] ^= 1;
    forged.extrinsics.push(xt);
    forged.header.extrinsics_root = Block::compute_extrinsics_root(&forged.extrinsics);

    let honest: Vec<usize> = (0..4).filter(|i| *i != faulty).collect();
    let out_of_turn = (0..40u32)
        .find(|r| proposer_of(&nodes, 1, *r) != faulty)
        .expect("another proposer");
    for i in honest {
        let n = &mut nodes[i];
        assert!(
            n.receive(from, flipped.clone()).await.is_none(),
            "bad signature accepted"
        );
        for (k, bad) in [&bad_root, &future, &orphan, &forged]
            .into_iter()
            .enumerate()
        {
            let round = rounds_of_faulty[k + 1];
            // Each in a round the faulty node proposes, as an honest node would be in it
            // (streams far ahead of our round are not even reassembled).
            n.start_round(1, round).await;
            let value = n.receive(from, signed(bad, round)).await.expect("complete");
            assert_eq!(value.validity, Validity::Invalid, "tampered block {k}");
        }
        // 7. A well-formed block streamed for a round it does not propose: not even checked.
        assert!(n.receive(from, signed(&block, out_of_turn)).await.is_none());
        // 6. A stream signed by someone outside the validator set.
        let mallory = GridSigner {
            key: Pair::dev("Mallory"),
            genesis,
        };
        let parts = proposal_stream(&mallory, genesis, 1, 5, -1, &block.encode());
        assert!(n.receive(peer_id(99), parts).await.is_none());
        // The honest block itself is still fine.
        let ok = n.receive(from, honest_parts.clone()).await.unwrap();
        assert_eq!(ok.validity, Validity::Valid);
        assert_eq!(n.storage.best_header().unwrap().unwrap().number, 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_validators_proposal_is_restreamed_verbatim() {
    let mut nodes = network().await;
    let p = proposer_of(&nodes, 1, 0);
    let hash = nodes[p].propose(1, 0).await;
    let parts = nodes[p].drain_published();
    let from = nodes[p].peer;
    let v = (p + 1) % 4;
    nodes[v].receive(from, parts.clone()).await.unwrap();
    // Past its hidden-lock round, Malachite asks a validator to re-publish the proposal it
    // locked on, whoever made it: the original, signed by its proposer, goes out again.
    let address = Address(nodes[p].key.public());
    let relay = &mut nodes[v];
    relay
        .app
        .handle(
            AppMsg::RestreamProposal {
                height: Height(1),
                round: Round::new(0),
                valid_round: Round::Nil,
                address,
                value_id: hash,
            },
            &relay.channels,
        )
        .await
        .unwrap();
    assert_eq!(nodes[v].drain_published(), parts);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_validator_gets_back_the_proposal_it_saw() {
    let mut nodes = network().await;
    let p = proposer_of(&nodes, 1, 0);
    let hash = nodes[p].propose(1, 0).await;
    let parts = nodes[p].drain_published();
    let from = nodes[p].peer;
    let v = (p + 1) % 4;
    nodes[v].receive(from, parts).await.unwrap();

    // "Crash": a new App on the same database, as after kill -9.
    let restarted = {
        let old = &nodes[v];
        app(
            old.storage.clone(),
            old.pool.clone(),
            old.chain,
            old.signer(),
            Arc::new(ConsensusStatus::default()),
        )
    };
    nodes[v].app = restarted;
    nodes[v].ready().await;
    let values = nodes[v].start_round(1, 0).await;
    assert_eq!(
        values.len(),
        1,
        "the proposal seen before the crash is handed back"
    );
    assert_eq!(values[0].value, BlockValue(hash));
    // And it can be decided: the block was kept.
    let signers: Vec<&TestNode> = nodes.iter().take(3).collect();
    let cert = certificate(&signers, 1, hash);
    nodes[v].decide(&cert).await;
    assert_eq!(nodes[v].storage.hash_of(1).unwrap(), Some(hash));
}

#[tokio::test(flavor = "multi_thread")]
async fn synced_values_are_checked_before_import() {
    let mut nodes = network().await;
    let p = proposer_of(&nodes, 1, 0);
    let hash = nodes[p].propose(1, 0).await;
    let block_bytes = nodes[p]
        .app
        .executed_block_bytes(&hash)
        .expect("the proposer keeps its block");
    let v = (p + 1) % 4;
    let proposer = Address(nodes[p].key.public());
    let sync = |bytes: Vec<u8>, height: u64| {
        move |reply| AppMsg::ProcessSyncedValue {
            height: Height(height),
            round: Round::new(0),
            proposer,
            value_bytes: bytes.into(),
            reply,
        }
    };
    let garbage = nodes[v].ask(sync(vec![1, 2, 3], 1)).await;
    assert!(matches!(garbage, SyncedValueOutcome::PeerFault));
    let wrong_height = nodes[v].ask(sync(block_bytes.clone(), 2)).await;
    assert!(matches!(wrong_height, SyncedValueOutcome::PeerFault));
    match nodes[v].ask(sync(block_bytes, 1)).await {
        SyncedValueOutcome::Verdict(value) => {
            assert_eq!(value.value, BlockValue(hash));
            assert_eq!(value.validity, Validity::Valid);
        }
        _ => panic!("a valid synced block was not accepted"),
    }
}

mod streams {
    use super::*;
    use proptest::prelude::*;

    /// A publisher cannot make a stream hold more than a block's worth of parts.
    #[test]
    fn a_stream_of_endless_tiny_parts_is_dropped() {
        let mut streams = crate::app::PartStreams::default();
        let id = malachitebft_app_channel::app::streaming::StreamId::new(bytes::Bytes::from(
            (1u64, 0u32).encode(),
        ));
        let mut dropped = false;
        for seq in 0..10_000u64 {
            let part = StreamMessage::new(
                id.clone(),
                seq,
                StreamContent::Data(ProposalPart::Data(vec![0; 8])),
            );
            if streams.insert(peer_id(3), part).is_err() {
                dropped = true;
                break;
            }
        }
        assert!(dropped, "an unbounded stream was kept");
    }

    /// A peer that opens streams without end keeps at most a few open and cannot push out the
    /// round proposer's stream: the honest stream still completes.
    #[test]
    fn one_publisher_cannot_crowd_out_the_others_streams() {
        let key = Pair::dev("Alice");
        let signer = GridSigner {
            key,
            genesis: Hash::ZERO,
        };
        let data = vec![7u8; 600_000];
        let mut honest = proposal_stream(&signer, Hash::ZERO, 9, 0, -1, &data);
        let last = honest.pop().expect("a stream has parts");
        let mut streams = crate::app::PartStreams::default();
        for part in honest {
            assert!(streams.insert(peer_id(1), part).unwrap().is_none());
        }
        // The spammer opens 1,000 streams, one part each.
        for n in 0..1_000u64 {
            let id = malachitebft_app_channel::app::streaming::StreamId::new(bytes::Bytes::from(
                (n, 0u32).encode(),
            ));
            let part =
                StreamMessage::new(id, 1, StreamContent::Data(ProposalPart::Data(vec![0; 64])));
            let _ = streams.insert(peer_id(3), part);
            assert!(streams.open_count(&peer_id(3)) <= 4);
        }
        let complete = streams
            .insert(peer_id(1), last)
            .unwrap()
            .expect("the honest stream survived the spam");
        assert_eq!(complete.data, data);
    }

    /// Streams for heights behind ours, too far ahead, or rounds far ahead of ours are refused
    /// before anything of them is kept; moving on drops the streams left behind.
    #[test]
    fn streams_outside_the_height_and_round_window_are_refused() {
        let part_at = |height: u64, round: u32| {
            let id = malachitebft_app_channel::app::streaming::StreamId::new(bytes::Bytes::from(
                (height, round).encode(),
            ));
            StreamMessage::new(id, 1, StreamContent::Data(ProposalPart::Data(vec![0; 64])))
        };
        let mut streams = crate::app::PartStreams::default();
        streams.set_position(10, 2);
        for (height, round) in [(9, 0), (15, 0), (10, 11), (11, 9), (14, 1_000)] {
            let refused = streams.insert(peer_id(3), part_at(height, round));
            assert!(refused.is_err(), "({height}, {round}) was accepted");
        }
        assert_eq!(streams.open_count(&peer_id(3)), 0);
        let garbage = StreamMessage::new(
            malachitebft_app_channel::app::streaming::StreamId::new(bytes::Bytes::from_static(
                b"not a position",
            )),
            1,
            StreamContent::Data(ProposalPart::Data(vec![0; 8])),
        );
        assert!(streams.insert(peer_id(3), garbage).is_err());
        for (height, round) in [(10, 2), (10, 10), (11, 8), (14, 0)] {
            let kept = streams.insert(peer_id(4), part_at(height, round));
            assert!(matches!(kept, Ok(None)), "({height}, {round}) was refused");
        }
        assert_eq!(streams.open_count(&peer_id(4)), 4);
        // At height 11 the streams of height 10 are gone.
        streams.set_position(11, 0);
        assert_eq!(streams.open_count(&peer_id(4)), 2);
        // An honest proposal of our height and round still completes.
        let signer = GridSigner {
            key: Pair::dev("Alice"),
            genesis: Hash::ZERO,
        };
        let data = vec![5u8; 1_000];
        let mut complete = None;
        for part in proposal_stream(&signer, Hash::ZERO, 11, 0, -1, &data) {
            complete = streams.insert(peer_id(1), part).unwrap();
        }
        assert_eq!(complete.expect("complete").data, data);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Parts arrive in any order (gossip does not keep it); the stream completes exactly
        /// when the last missing part arrives, and yields the signed bytes.
        #[test]
        fn parts_in_any_order_reassemble(
            len in 0usize..700_000,
            seed in any::<u64>(),
        ) {
            let key = Pair::dev("Alice");
            let signer = GridSigner { key, genesis: Hash::ZERO };
            let data: Vec<u8> = (0..len).map(|i| (i as u64 ^ seed) as u8).collect();
            let mut parts = proposal_stream(&signer, Hash::ZERO, 7, 2, -1, &data);
            // A deterministic shuffle from the seed.
            let mut s = seed;
            for i in (1..parts.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                parts.swap(i, (s >> 33) as usize % (i + 1));
            }
            let mut streams = crate::app::PartStreams::default();
            let publisher = peer_id(1);
            let n = parts.len();
            for (i, part) in parts.into_iter().enumerate() {
                let out = streams.insert(publisher, part).unwrap();
                if i + 1 < n {
                    prop_assert!(out.is_none());
                } else {
                    let complete = out.expect("complete after the last part");
                    prop_assert_eq!(complete.data, data.clone());
                    prop_assert_eq!(complete.init.height, 7);
                }
            }
        }
    }
}
