//! `grid` against a real `gridnode --dev` (build it first: `cargo build -p gridnode`).

mod common;

use common::{grid, DevNode};
use gridchain_primitives::Pair;
use std::time::{Duration, Instant};

fn fresh_address() -> String {
    Pair::from_uri(&Pair::generate_mnemonic())
        .expect("fresh key")
        .public()
        .to_string()
}

#[test]
fn transfers_reach_final_blocks_over_ws_and_http() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keystore = dir.path().join("keystore.json");
    let node = DevNode::start(&keystore);
    let ws = node.ws_url.as_str();
    let dest = fresh_address();

    let sent = grid(
        &keystore,
        &[
            "transfer", &dest, "1.5", "--from", "//Alice", "--rpc", ws, "--output", "json",
        ],
    );
    sent.assert_code(0);
    let report = sent.json();
    assert_eq!(report["success"], true);
    assert_eq!(report["signer"], Pair::dev("Alice").public().to_string());
    assert_eq!(report["call"]["dest"], dest);
    assert_eq!(report["call"]["amount"], "1500000000000");
    let block_number = report["blockNumber"].as_u64().expect("block number");
    let hash = report["hash"].as_str().expect("hash").to_string();

    let balance = grid(
        &keystore,
        &["balance", &dest, "--rpc", ws, "--output", "json"],
    );
    balance.assert_code(0);
    assert_eq!(balance.json()["free"], "1500000000000");

    let tx = grid(&keystore, &["tx", &hash, "--rpc", ws, "--output", "json"]);
    tx.assert_code(0);
    let tx = tx.json();
    assert_eq!(tx["blockNumber"], block_number);
    assert_eq!(tx["success"], true);
    assert!(tx["fee"].as_str().is_some());
    assert!(!tx["events"].as_array().expect("events").is_empty());

    let block = grid(
        &keystore,
        &[
            "block",
            &block_number.to_string(),
            "--rpc",
            ws,
            "--output",
            "json",
        ],
    );
    block.assert_code(0);
    let block = block.json();
    assert_eq!(block["number"], block_number);
    let hashes: Vec<&str> = block["extrinsics"]
        .as_array()
        .expect("extrinsics")
        .iter()
        .filter_map(|x| x["hash"].as_str())
        .collect();
    assert!(hashes.contains(&hash.as_str()));
    let block_hash = block["hash"].as_str().expect("block hash");
    let by_hash = grid(
        &keystore,
        &["block", block_hash, "--rpc", ws, "--output", "json"],
    );
    by_hash.assert_code(0);
    assert_eq!(by_hash.json()["number"], block_number);

    // HTTP cannot watch: grid polls until final.
    grid(
        &keystore,
        &["key", "add", "dest", &format!("0x{}", "11".repeat(32))],
    )
    .assert_code(0);
    let dest_key = Pair::from_uri(&format!("0x{}", "11".repeat(32))).expect("seed key");
    let http = grid(
        &keystore,
        &[
            "transfer",
            "dest",
            "250000000000",
            "--units",
            "--from",
            "//Alice",
            "--rpc",
            &node.http_url,
        ],
    );
    http.assert_code(0);
    assert!(http.stdout.contains("result: success"), "{}", http.stdout);
    let balance = grid(
        &keystore,
        &[
            "balance",
            "dest",
            "--rpc",
            &node.http_url,
            "--output",
            "json",
        ],
    );
    assert_eq!(balance.json()["address"], dest_key.public().to_string());
    assert_eq!(balance.json()["free"], "250000000000");

    // --no-wait returns the hash at once; the transaction still lands.
    let quick = grid(
        &keystore,
        &[
            "transfer",
            &dest,
            "1",
            "--from",
            "//Alice",
            "--no-wait",
            "--rpc",
            ws,
            "--output",
            "json",
        ],
    );
    quick.assert_code(0);
    let quick_hash = quick.json()["hash"].as_str().expect("hash").to_string();
    assert_eq!(quick.json()["status"], "submitted");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tx = grid(
            &keystore,
            &["tx", &quick_hash, "--rpc", ws, "--output", "json"],
        );
        if tx.code == 0 {
            assert_eq!(tx.json()["success"], true);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no-wait transfer never final: {}",
            tx.stderr
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn failed_calls_exit_5_and_rejections_exit_4() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keystore = dir.path().join("keystore.json");
    let node = DevNode::start(&keystore);
    let ws = node.ws_url.as_str();
    let dest = fresh_address();

    // Included, but the call fails on chain: the pallet error is shown.
    let failed = grid(
        &keystore,
        &[
            "transfer",
            &dest,
            "100000000000",
            "--from",
            "//Bob",
            "--rpc",
            ws,
            "--output",
            "json",
        ],
    );
    failed.assert_code(5);
    assert!(
        failed.stderr.contains("balances::InsufficientBalance"),
        "{}",
        failed.stderr
    );
    let report = failed.json();
    assert_eq!(report["success"], false);
    assert_eq!(report["error"]["error"], "InsufficientBalance");
    let text = grid(
        &keystore,
        &[
            "transfer",
            &dest,
            "100000000000",
            "--from",
            "//Bob",
            "--rpc",
            ws,
        ],
    );
    text.assert_code(5);
    assert!(text.stdout.contains("result: failed"), "{}", text.stdout);

    // Rejected by the node: an unfunded signer cannot pay the fee.
    let unfunded = Pair::generate_mnemonic();
    let rejected = grid(
        &keystore,
        &["transfer", &dest, "1", "--from", &unfunded, "--rpc", ws],
    );
    rejected.assert_code(4);
    assert!(
        rejected.stderr.contains("rejected (1006)"),
        "{}",
        rejected.stderr
    );
    let rejected_json = grid(
        &keystore,
        &[
            "transfer",
            &dest,
            "1",
            "--from",
            &unfunded,
            "--rpc",
            &node.http_url,
            "--output",
            "json",
        ],
    );
    rejected_json.assert_code(4);
    assert_eq!(rejected_json.json()["error"]["rpcCode"], 1006);

    // Unknown transaction and block: general errors.
    let unknown = format!("0x{}", "ab".repeat(32));
    grid(&keystore, &["tx", &unknown, "--rpc", ws]).assert_code(1);
    grid(&keystore, &["block", "999999", "--rpc", ws]).assert_code(1);
}

#[test]
fn bad_input_exits_1_and_unreachable_node_exits_3() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keystore = dir.path().join("keystore.json");
    let alice = Pair::dev("Alice").public().to_string();
    let mut typo: Vec<char> = alice.chars().collect();
    typo[10] = if typo[10] == 'a' { 'b' } else { 'a' };
    let typo: String = typo.into_iter().collect();

    let bad = grid(&keystore, &["transfer", &typo, "1", "--from", "//Alice"]);
    bad.assert_code(1);
    assert!(bad.stderr.contains("checksum"), "{}", bad.stderr);
    grid(&keystore, &["balance", "0xnot-an-address"]).assert_code(1);
    for amount in ["-1", "1.0000000000001", "abc", &format!("{}", u128::MAX)] {
        grid(
            &keystore,
            &["transfer", &alice, amount, "--from", "//Alice"],
        )
        .assert_code(1);
    }
    let no_signer = grid(&keystore, &["transfer", &alice, "1"]);
    no_signer.assert_code(1);
    assert!(
        no_signer.stderr.contains("no signer"),
        "{}",
        no_signer.stderr
    );
    grid(&keystore, &["block", "--rpc", "ftp://example"]).assert_code(1);

    // Nothing listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    for url in [
        format!("ws://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}"),
    ] {
        let down = grid(&keystore, &["balance", &alice, "--rpc", &url]);
        down.assert_code(3);
        assert!(
            down.stderr.contains("cannot reach the node"),
            "{}",
            down.stderr
        );
        let down_json = grid(
            &keystore,
            &[
                "transfer", &alice, "1", "--from", "//Alice", "--rpc", &url, "--output", "json",
            ],
        );
        down_json.assert_code(3);
        assert_eq!(down_json.json()["error"]["exitCode"], 3);
    }
}
