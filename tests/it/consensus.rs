//! Many validators: real `gridnode` processes of the `local` chain (4 validators) on loopback.

use gridchain_primitives::{finality::CommitCertificate, Pair};
use gridchain_rpc_api::{ChainApiClient, GridchainApiClient};
use gridchain_tests::{Network, NetworkNode};
use std::time::Duration;

const VALIDATORS: [&str; 4] = ["Alice", "Bob", "Charlie", "Dave"];

/// Voting power of a `local` genesis validator (100,000 tokens each).
fn local_set() -> Vec<(gridchain_primitives::AccountId, u64)> {
    VALIDATORS
        .iter()
        .map(|n| (Pair::dev(n).public(), 100_000))
        .collect()
}

async fn check_certificates(network: &Network, up_to: u64) {
    let client = network.nodes[0].client().await;
    let genesis = client.block_hash(Some(0)).await.unwrap().unwrap();
    for h in 1..=up_to {
        let hash = client.block_hash(Some(h)).await.unwrap().unwrap();
        let cert: CommitCertificate = client
            .commit_certificate(h)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no certificate for block {h}"));
        cert.verify(genesis, h, hash, &local_set())
            .unwrap_or_else(|e| panic!("certificate of block {h}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn four_validators_finalize_one_chain_with_verifiable_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let network = Network::start(dir.path(), &VALIDATORS, 1, 500).await;
    network.wait_all(10, Duration::from_secs(60)).await;
    network.assert_one_chain(10).await;
    check_certificates(&network, 10).await;
    // The full node (last) follows without a key and has the same chain.
    assert!(network.nodes[4].key.is_none());
    let health = {
        use gridchain_rpc_api::SystemApiClient;
        network.nodes[0].client().await.health().await.unwrap()
    };
    assert!(health.peers >= 3, "{health:?}");
    assert!(health.should_have_peers);
    let peers = {
        use gridchain_rpc_api::SystemApiClient;
        network.nodes[0].client().await.peers().await.unwrap()
    };
    let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
    for other in ["node-1", "node-2", "node-3", "node-4"] {
        assert!(names.contains(&other), "{names:?}");
    }
    assert!(peers.iter().filter(|p| p.validator.is_some()).count() >= 3);

    // A transfer submitted to the full node (which never proposes) is gossiped to the
    // validators and becomes final; every node then reports it in the same block.
    let full = network.nodes[4].client().await;
    let chain = gridchain_tests::chain_context(&full).await;
    let call = gridchain_runtime::Call::Balances(gridchain_runtime::balances::Call::Transfer {
        dest: Pair::dev("Ferdie").public(),
        amount: 7,
    });
    let xt = gridchain_tests::signed(&Pair::dev("Eve"), call, 0, 1_000_000, 0, chain);
    use gridchain_rpc_api::AuthorApiClient;
    let hash = full.submit_extrinsic(xt).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let included = loop {
        if let Some(info) = full.extrinsic(hash).await.unwrap() {
            break info;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "transfer not final in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(included.success);
    // Each validator decides the height on its own schedule (when it has seen the
    // precommits), so a validator may report the block a moment after the full node.
    for node in &network.nodes[..4] {
        let client = node.client().await;
        let info = loop {
            if let Some(info) = client.extrinsic(hash).await.unwrap() {
                break info;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{:?} never reported the final transfer",
                node.key
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(info.block_hash, included.block_hash);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_of_four_down_goes_on_two_down_halts_then_resumes_without_fork() {
    let dir = tempfile::tempdir().unwrap();
    let mut network = Network::start(dir.path(), &VALIDATORS, 0, 500).await;
    network.wait_all(3, Duration::from_secs(60)).await;

    network.nodes[3].kill9();
    let before = network.max_height().await;
    network.wait_all(before + 5, Duration::from_secs(60)).await;

    network.nodes[2].kill9();
    // Let what was in flight settle, then check that nothing more is finalized.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let halted = network.max_height().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        network.max_height().await,
        halted,
        "2 of 4 validators finalized blocks alone"
    );

    network.nodes[2].start().await;
    network.nodes[3].start().await;
    network.wait_all(halted + 5, Duration::from_secs(90)).await;
    network.assert_one_chain(halted + 5).await;
    check_certificates(&network, halted + 5).await;
}

/// `key=value` fields of the "signed vote" lines of a node log (ANSI colours removed).
fn signed_votes(log: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip a CSI sequence: ESC [ … final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .lines()
        .filter(|l| l.contains("signed vote"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|t| t.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn validators_killed_mid_round_never_sign_conflicting_votes() {
    let dir = tempfile::tempdir().unwrap();
    let mut network = Network::start(dir.path(), &VALIDATORS, 0, 300).await;
    network.wait_all(3, Duration::from_secs(60)).await;
    // Kill a validator at an arbitrary moment of a round and restart it from its base path;
    // it replays its write-ahead log and must not vote differently for a step it voted in.
    for i in 0..8usize {
        let victim = i % 4;
        tokio::time::sleep(Duration::from_millis(150 + 97 * i as u64)).await;
        network.nodes[victim].kill9();
        tokio::time::sleep(Duration::from_millis(200)).await;
        network.nodes[victim].start().await;
    }
    let top = network.max_height().await;
    network.wait_all(top + 3, Duration::from_secs(90)).await;
    network.assert_one_chain(top + 3).await;

    let mut seen: std::collections::BTreeMap<(String, String, String, String), String> =
        Default::default();
    let mut votes = 0;
    for node in &network.nodes {
        let log = std::fs::read_to_string(&node.log_path).unwrap();
        for v in signed_votes(&log) {
            votes += 1;
            let step = (
                v["validator"].clone(),
                v["height"].clone(),
                v["round"].clone(),
                v["kind"].clone(),
            );
            let value = v["value"].clone();
            if let Some(earlier) = seen.insert(step.clone(), value.clone()) {
                assert_eq!(earlier, value, "equivocation at {step:?}");
            }
        }
    }
    assert!(votes > 50, "only {votes} signed votes logged");
}

/// The `caught up` line a node logs when its bulk catch-up ends (a last round may still run
/// when RPC already shows the target height).
async fn caught_up_line(log_path: &std::path::Path) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(log_path).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("caught up")) {
            return line.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no bulk catch-up in the log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_full_node_syncs_the_chain_then_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut network = Network::start(dir.path(), &VALIDATORS, 1, 100).await;
    // The full node starts over with an empty database once the chain has some length.
    network.nodes[4].kill9();
    let base = network.nodes[4].base_path.join("chains/local");
    std::fs::remove_dir_all(base.join("db")).unwrap();
    let _ = std::fs::remove_dir_all(base.join("consensus"));
    network.wait_all(150, Duration::from_secs(180)).await;
    let target = network.max_height().await;
    let started = std::time::Instant::now();
    network.nodes[4].start().await;
    loop {
        if network.nodes[4].height().await.unwrap_or(0) >= target {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the full node did not catch up with {target} blocks in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("synced {target} blocks in {:?}", started.elapsed());
    // In bulk, before consensus started (not block by block through Malachite's value sync).
    let caught_up = caught_up_line(&network.nodes[4].log_path).await;
    let imported: u64 = caught_up
        .split("imported=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        imported + 2 >= target,
        "bulk import covered {imported} of {target} blocks"
    );
    // …and then follows live consensus.
    network.wait_all(target + 20, Duration::from_secs(60)).await;
    network.assert_one_chain(target + 20).await;
}

/// The scale: a dev validator makes 10,000 blocks as fast as it can, then a fresh full
/// node catches up in bulk — every block, certificate and state root checked — and follows live.
#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_full_node_catches_up_ten_thousand_blocks_then_follows() {
    const BLOCKS: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let (mut validator, address) = NetworkNode::on_loopback(
        dir.path(),
        "validator",
        "dev",
        &["--validator", "--key", "//Alice", "--block-time-ms", "1"],
    );
    validator.start().await;
    let started = std::time::Instant::now();
    while validator.height().await.unwrap_or(0) < BLOCKS {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the validator made only {:?} blocks in 900 s",
            validator.height().await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("{BLOCKS} blocks made in {:?}", started.elapsed());
    let (mut full, _) =
        NetworkNode::on_loopback(dir.path(), "full", "dev", &["--bootnodes", &address]);
    let started = std::time::Instant::now();
    full.start().await;
    while full.height().await.unwrap_or(0) < BLOCKS {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the full node did not catch up with {BLOCKS} blocks in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("caught up with {BLOCKS} blocks in {:?}", started.elapsed());
    caught_up_line(&full.log_path).await;
    // Then it follows consensus live, on the validator's chain.
    let live = validator.height().await.unwrap() + 20;
    while full.height().await.unwrap_or(0) < live {
        assert!(
            started.elapsed() < Duration::from_secs(400),
            "the full node stopped following"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (a, b) = (validator.client().await, full.client().await);
    for n in [1, BLOCKS / 2, BLOCKS, live] {
        let hash = a.block_hash(Some(n)).await.unwrap();
        assert_eq!(
            hash,
            b.block_hash(Some(n)).await.unwrap(),
            "block {n} differs"
        );
    }
}

/// Each validator in its own network namespace; links cut with iptables inside them.
#[tokio::test(flavor = "multi_thread")]
async fn partitions_two_two_halts_three_one_goes_on_and_healing_gives_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let network = Network::start_isolated(dir.path(), &VALIDATORS, 500).await;
    let ns = network.namespaces.as_ref().unwrap();
    network.wait_all(3, Duration::from_secs(60)).await;

    // 2 | 2: neither side has more than 2/3 of the power.
    ns.partition(&[0, 1], &[2, 3]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let halted = network.max_height().await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        network.max_height().await,
        halted,
        "a 2|2 split finalized blocks"
    );
    network.assert_one_chain(network.min_height().await).await;

    ns.heal();
    network.wait_all(halted + 3, Duration::from_secs(90)).await;

    // 3 | 1: the three go on; the one is stuck, then catches up after healing.
    ns.partition(&[0, 1, 2], &[3]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alone = network.nodes[3].height().await.unwrap();
    let majority_start = network.nodes[0].height().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while network.nodes[0].height().await.unwrap() < majority_start + 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "3 of 4 made no progress"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stuck = network.nodes[3].height().await.unwrap();
    assert!(
        stuck <= alone + 1,
        "the isolated validator finalized alone: {alone} -> {stuck}"
    );

    ns.heal();
    let top = network.max_height().await;
    network.wait_all(top + 3, Duration::from_secs(90)).await;
    network.assert_one_chain(top + 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bonded_validator_joins_the_set_at_the_announced_height_on_all_nodes() {
    use gridchain_rpc_api::AuthorApiClient;
    use gridchain_runtime::{validators, Call};
    const UNIT: u128 = 1_000_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    // Eve runs a validator process from the start but is not in the genesis set.
    let network = Network::start(
        dir.path(),
        &["Alice", "Bob", "Charlie", "Dave", "Eve"],
        0,
        300,
    )
    .await;
    network.wait_all(2, Duration::from_secs(60)).await;
    let eve = Pair::dev("Eve");
    let client = network.nodes[4].client().await;
    let chain = gridchain_tests::chain_context(&client).await;
    let bond = Call::Validators(validators::Call::Bond {
        amount: 300_000 * UNIT,
    });
    let validate = Call::Validators(validators::Call::Validate {
        consensus_key: eve.public(),
        commission: 50_000_000,
    });
    client
        .submit_extrinsic(gridchain_tests::signed(&eve, bond, 0, 1_000_000, 0, chain))
        .await
        .unwrap();
    let validate_hash = client
        .submit_extrinsic(gridchain_tests::signed(
            &eve, validate, 1, 1_000_000, 0, chain,
        ))
        .await
        .unwrap();

    // The change is announced in state: the set of epoch e+2 is chosen at the end of epoch e.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let effective = loop {
        let info = client.validators(None).await.unwrap();
        if let Some(s) = info.scheduled {
            if s.validators.iter().any(|v| v.consensus_key == eve.public()) {
                break s.effective_height;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no change scheduled in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let included = client.extrinsic(validate_hash).await.unwrap().unwrap();
    assert!(included.success, "{:?}", included.error);
    assert!(effective > included.block_number);

    network
        .wait_all(effective + 3, Duration::from_secs(90))
        .await;
    network.assert_one_chain(effective + 3).await;
    let genesis = client.block_hash(Some(0)).await.unwrap().unwrap();
    for node in &network.nodes {
        let c = node.client().await;
        let before = c.validators(Some(effective - 1)).await.unwrap();
        let after = c.validators(Some(effective)).await.unwrap();
        assert!(!before
            .validators
            .iter()
            .any(|v| v.consensus_key == eve.public()));
        let joined = after
            .validators
            .iter()
            .find(|v| v.consensus_key == eve.public())
            .expect("Eve signs from the announced height");
        assert_eq!(joined.power, 300_000);
        assert_eq!(after.validators.len(), 5);
    }
    // Alice..Dave hold 400,000 of 700,000: without Eve nothing is final from `effective` on,
    // so every certificate there carries her signature and checks against the new set.
    for h in effective - 2..=effective + 3 {
        let set: Vec<_> = client
            .validators(Some(h))
            .await
            .unwrap()
            .validators
            .iter()
            .map(|v| (v.consensus_key, v.power))
            .collect();
        let hash = client.block_hash(Some(h)).await.unwrap().unwrap();
        let cert = client.commit_certificate(h).await.unwrap().unwrap();
        cert.verify(genesis, h, hash, &set).unwrap();
        let eve_signed = cert.signatures.iter().any(|(k, _)| *k == eve.public());
        assert_eq!(eve_signed, h >= effective, "Eve's signature at height {h}");
    }
}

/// A validator whose consensus write-ahead log is corrupt must not vote on from a state it
/// cannot trust: the node exits non-zero with a line naming the WAL, instead of staying up
/// without consensus. The chain is halted first (2 of 4 validators down) so that the WAL of a
/// remaining validator holds its votes of the undecided height, which a restart replays.
#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_consensus_wal_stops_the_validator() {
    let dir = tempfile::tempdir().unwrap();
    let mut network = Network::start(dir.path(), &VALIDATORS, 0, 500).await;
    network.wait_all(3, Duration::from_secs(60)).await;
    network.nodes[3].kill9();
    network.nodes[2].kill9();
    let wal = network.nodes[0]
        .base_path
        .join("chains/local/consensus/wal/consensus.wal");
    // WAL: version (4) + height (8), then entries of flag (1) + length (8) + CRC (4) + data.
    let first_data_byte = 4 + 8 + 1 + 8 + 4;
    let client = network.nodes[0].client().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no undecided height in the WAL"
        );
        let best = client.header(None).await.unwrap().unwrap().number;
        let bytes = std::fs::read(&wal).unwrap_or_default();
        let undecided = bytes.len() > first_data_byte
            && u64::from_be_bytes(bytes[4..12].try_into().unwrap()) == best + 1;
        if undecided {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    network.nodes[0].kill9();
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[first_data_byte] ^= 0xff;
    std::fs::write(&wal, &bytes).unwrap();
    network.nodes[0].spawn();
    let status = network.nodes[0]
        .wait_exit(Duration::from_secs(60))
        .await
        .expect("the validator kept running on a corrupt WAL");
    assert!(!status.success());
    let log = std::fs::read_to_string(&network.nodes[0].log_path).unwrap();
    assert!(
        log.contains("write-ahead log") && log.contains("is corrupt"),
        "{log}"
    );
}
