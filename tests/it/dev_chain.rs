//! 1,000 transfers from several accounts, exact balances and issuance, then `kill -9` and a
//! restart on the same base path: the chain and state must be identical. And a clean stop
//! (SIGTERM) while submissions are in flight exits 0.

use futures::future::join_all;
use gridchain_primitives::{AccountId, Hash, Pair};
use gridchain_rpc_api::{
    jsonrpsee::ws_client::WsClient, AuthorApiClient, ChainApiClient, GridchainApiClient,
    StateApiClient,
};
use gridchain_runtime::{balances, Call};
use gridchain_tests::{chain_context, signed, DevNode};
use parity_scale_codec::Decode;
use std::{collections::BTreeMap, time::Duration};

const UNIT: u128 = 1_000_000_000_000;
const SENDERS: [&str; 5] = ["Alice", "Bob", "Charlie", "Dave", "Eve"];
const PER_SENDER: u64 = 200;

async fn free(client: &WsClient, who: &AccountId) -> u128 {
    client
        .account(who.to_string())
        .await
        .expect("gridchain_account")
        .free
}

async fn total_issuance(client: &WsClient, at: Option<Hash>) -> u128 {
    let raw = client
        .storage(balances::total_issuance_key().into(), at)
        .await
        .expect("rpc")
        .expect("issuance set");
    u128::decode(&mut &raw.0[..]).expect("u128")
}

/// Waits until every hash in `hashes` is in a final block.
async fn wait_final(client: &WsClient, hashes: &[Hash]) {
    for _ in 0..600 {
        let infos = join_all(hashes.iter().map(|h| client.extrinsic(*h))).await;
        if infos.iter().all(|i| matches!(i, Ok(Some(_)))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("transactions not final after 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_transfers_exact_balances_then_kill9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start(&dir.path().join("node"), 250).await;
    let client = node.client().await;
    let chain = chain_context(&client).await;
    let initial_issuance = total_issuance(&client, None).await;
    let recipients: Vec<AccountId> = (0..40)
        .map(|i| Pair::dev(&format!("recipient{i}")).public())
        .collect();
    let everyone: Vec<AccountId> = SENDERS
        .iter()
        .map(|s| Pair::dev(s).public())
        .chain(recipients.iter().copied())
        .collect();
    let mut before = BTreeMap::new();
    for who in &everyone {
        before.insert(*who, free(&client, who).await);
    }

    // 5 senders × 200 transfers, submitted concurrently; amounts vary so mistakes show.
    let mut plan = Vec::new();
    for (s, name) in SENDERS.iter().enumerate() {
        let pair = Pair::dev(name);
        for nonce in 0..PER_SENDER {
            let to = recipients[(nonce as usize * 7 + s) % recipients.len()];
            let amount = UNIT + nonce as u128 * 1_000 + s as u128;
            let call = Call::Balances(balances::Call::Transfer { dest: to, amount });
            plan.push((
                pair.public(),
                to,
                amount,
                signed(&pair, call, nonce, 10_000, 0, chain),
            ));
        }
    }
    let submissions = join_all(
        plan.iter()
            .map(|(_, _, _, xt)| client.submit_extrinsic(xt.clone())),
    )
    .await;
    let hashes: Vec<Hash> = submissions
        .into_iter()
        .map(|r| r.expect("submission accepted"))
        .collect();
    assert_eq!(hashes.len(), 1_000);
    wait_final(&client, &hashes).await;

    // Exact accounting: every amount and every fee (paid to Alice, the dev chain's proposer).
    let mut expected = before.clone();
    let mut fees = 0u128;
    for ((from, to, amount, _), hash) in plan.iter().zip(&hashes) {
        let info = client.extrinsic(*hash).await.unwrap().unwrap();
        assert!(info.success, "transfer {hash} failed: {:?}", info.error);
        assert_eq!(info.signer, *from);
        *expected.get_mut(from).unwrap() -= amount + info.fee;
        *expected.get_mut(to).unwrap() += amount;
        fees += info.fee;
    }
    *expected.get_mut(&Pair::dev("Alice").public()).unwrap() += fees;
    for who in &everyone {
        assert_eq!(free(&client, who).await, expected[who], "balance of {who}");
    }
    assert_eq!(total_issuance(&client, None).await, initial_issuance);
    // Alice's validator stake is reserved, not free.
    let alice = client
        .account(Pair::dev("Alice").public().to_string())
        .await
        .unwrap();
    let all_funds: u128 = expected.values().sum::<u128>()
        + alice.reserved
        + free(&client, &Pair::dev("Ferdie").public()).await;
    assert_eq!(all_funds, initial_issuance, "every unit is accounted for");

    // Snapshot, kill -9, restart on the same base path.
    let best = client.header(None).await.unwrap().unwrap();
    let mut chain_before = Vec::new();
    for n in 0..=best.number {
        let hash = client.block_hash(Some(n)).await.unwrap().unwrap();
        chain_before.push(client.block(Some(hash)).await.unwrap().unwrap());
    }
    drop(client);
    node.kill9();
    node.restart().await;
    let client = node.client().await;
    for (n, block) in chain_before.iter().enumerate() {
        let hash = client.block_hash(Some(n as u64)).await.unwrap().unwrap();
        assert_eq!(
            client.block(Some(hash)).await.unwrap().as_ref(),
            Some(block),
            "block {n} after restart"
        );
    }
    let best_hash = best.hash();
    for who in &everyone {
        let key = balances::account_key(who);
        let now = client.storage(key.clone().into(), None).await.unwrap();
        let then = client.storage(key.into(), Some(best_hash)).await.unwrap();
        assert_eq!(now, then, "state of {who} after restart");
        assert_eq!(free(&client, who).await, expected[who]);
    }
    assert_eq!(
        total_issuance(&client, Some(best_hash)).await,
        initial_issuance
    );
    for hash in &hashes {
        assert!(
            client.extrinsic(*hash).await.unwrap().is_some(),
            "{hash} survived the restart"
        );
    }
    // And the chain goes on from where it was.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let after = client.header(None).await.unwrap().unwrap();
    assert!(after.number > best.number, "no block after restart");
    assert_eq!(
        client.block_hash(Some(best.number)).await.unwrap(),
        Some(best_hash)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_keeps_every_final_block_and_conserves_issuance() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start(&dir.path().join("node"), 100).await;
    let client = node.client().await;
    let chain = chain_context(&client).await;
    let issuance = total_issuance(&client, None).await;
    let bob = Pair::dev("Bob").public();
    let mut hashes = Vec::new();
    for nonce in 0..300u64 {
        let call = Call::Balances(balances::Call::Transfer {
            dest: bob,
            amount: UNIT,
        });
        let xt = signed(&Pair::dev("Charlie"), call, nonce, 10_000, 0, chain);
        hashes.push(client.submit_extrinsic(xt).await.unwrap());
    }
    // Kill as soon as some, but not all, are final.
    let mut final_before_kill = Vec::new();
    for _ in 0..200 {
        final_before_kill.clear();
        for h in &hashes {
            if client.extrinsic(*h).await.unwrap().is_some() {
                final_before_kill.push(*h);
            }
        }
        if !final_before_kill.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let best_before = client.header(None).await.unwrap().unwrap();
    drop(client);
    node.kill9();
    assert!(!final_before_kill.is_empty());

    node.restart().await;
    let client = node.client().await;
    let best_after = client.header(None).await.unwrap().unwrap();
    assert!(best_after.number >= best_before.number);
    assert_eq!(
        client.block_hash(Some(best_before.number)).await.unwrap(),
        Some(best_before.hash())
    );
    for h in &final_before_kill {
        assert!(
            client.extrinsic(*h).await.unwrap().is_some(),
            "final transaction {h} lost"
        );
    }
    assert_eq!(total_issuance(&client, None).await, issuance);
    // State and blocks agree: Charlie's nonce is exactly the number of his included transfers.
    let mut included = 0;
    for h in &hashes {
        if client.extrinsic(*h).await.unwrap().is_some() {
            included += 1;
        }
    }
    let charlie = client
        .account(Pair::dev("Charlie").public().to_string())
        .await
        .unwrap();
    assert_eq!(charlie.nonce, included);
}

/// SIGTERM while clients are still submitting: the node stops cleanly (exit 0, no crash in
/// RocksDB at exit) and restarts with every final block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_submissions_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start(&dir.path().join("node"), 100).await;
    let client = node.client().await;
    let chain = chain_context(&client).await;
    let alice = Pair::dev("Alice");
    let call = || {
        Call::Balances(balances::Call::Transfer {
            dest: Pair::dev("Ferdie").public(),
            amount: UNIT,
        })
    };
    let first = client
        .submit_extrinsic(signed(&alice, call(), 0, 1_000, 0, chain))
        .await
        .unwrap();
    wait_final(&client, &[first]).await;
    let flood = tokio::spawn(async move {
        for nonce in 1..2_000 {
            let xt = signed(&alice, call(), nonce, 1_000, 0, chain);
            if client.submit_extrinsic(xt).await.is_err() {
                break; // the node is gone
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = node.terminate();
        (node, status)
    });
    let (mut node, status) = status.await.unwrap();
    assert!(status.success(), "gridnode exited with {status} on SIGTERM");
    let _ = flood.await;
    node.restart().await;
    let client = node.client().await;
    assert!(client.extrinsic(first).await.unwrap().is_some());
}

/// A validator key file that other local users may read is refused before anything starts,
/// with one line saying how to fix it.
#[test]
fn a_key_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("validator.key");
    std::fs::write(&key, "//Alice\n").expect("write key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = std::process::Command::new(gridchain_tests::binary("gridnode"))
        .args([
            "--dev",
            "--no-agent",
            "--no-explorer",
            "--tmp",
            "--key-file",
        ])
        .arg(&key)
        .output()
        .expect("run gridnode");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
}
