//! Many validators: real `gridnode` processes of the `local` chain (4 validators) on loopback.

use gridchain_primitives::{finality::CommitCertificate, Pair};
use gridchain_rpc_api::{ChainApiClient, GridchainApiClient};
use gridchain_tests::Network;
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
        assert!(std::time::Instant::now() < deadline, "transfer not final in 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(included.success);
    for node in &network.nodes[..4] {
        let info = node.client().await.extrinsic(hash).await.unwrap().unwrap();
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
