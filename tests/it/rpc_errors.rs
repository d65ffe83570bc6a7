//! Bad input over RPC: each gets its stable error code and a clear message, and the pool is
//! unchanged.

use gridchain_primitives::{Bytes, ChainContext, Hash, Pair};
use gridchain_rpc_api::{
    error_codes::*,
    jsonrpsee::{core::client::ClientT, core::ClientError, rpc_params, ws_client::WsClient},
    AuthorApiClient, GridchainApiClient, StateApiClient,
};
use gridchain_runtime::{balances, system, Call};
use gridchain_tests::{chain_context, signed, DevNode};
use std::time::Duration;

fn transfer(amount: u128) -> Call {
    Call::Balances(balances::Call::Transfer {
        dest: Pair::dev("Ferdie").public(),
        amount,
    })
}

fn code_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (i32, String) {
    match result {
        Err(ClientError::Call(e)) => (e.code(), e.message().to_string()),
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

async fn pending(client: &WsClient) -> Vec<Bytes> {
    let mut p = client.pending_extrinsics().await.unwrap();
    p.sort_by(|a, b| a.0.cmp(&b.0));
    p
}

/// Submits `xt`, expects `code`, and checks the pool did not change.
async fn refused(client: &WsClient, xt: Bytes, code: i32, message_part: &str) {
    let before = pending(client).await;
    let (got, message) = code_of(client.submit_extrinsic(xt).await);
    assert_eq!(got, code, "wrong code for {message_part}: {message}");
    assert!(
        message.contains(message_part),
        "message {message:?} should mention {message_part:?}"
    );
    assert_eq!(
        pending(client).await,
        before,
        "pool changed after a refused submission"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_submissions_get_stable_codes_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), 200).await;
    let client = node.client().await;
    let chain = chain_context(&client).await;
    let dave = Pair::dev("Dave");

    refused(
        &client,
        Bytes(vec![1, 2, 3]),
        BAD_FORMAT,
        "cannot decode extrinsic",
    )
    .await;
    let mut trailing = signed(&dave, transfer(1), 0, 1_000, 0, chain);
    trailing.0.push(0);
    refused(&client, trailing, BAD_FORMAT, "cannot decode extrinsic").await;

    let mut forged = signed(&dave, transfer(1), 0, 1_000, 0, chain);
    forged.0[40] ^= 1; // inside the signature
    refused(&client, forged, BAD_SIGNATURE, "bad signature").await;

    let other_chain = ChainContext {
        genesis_hash: Hash::of(b"another chain"),
        ..chain
    };
    refused(
        &client,
        signed(&dave, transfer(1), 0, 1_000, 0, other_chain),
        BAD_SIGNATURE,
        "wrong chain",
    )
    .await;
    let other_version = ChainContext {
        spec_version: chain.spec_version + 1,
        ..chain
    };
    refused(
        &client,
        signed(&dave, transfer(1), 0, 1_000, 0, other_version),
        BAD_SIGNATURE,
        "runtime version",
    )
    .await;

    refused(
        &client,
        signed(&dave, transfer(1), 0, 0, 0, chain),
        EXPIRED,
        "expired",
    )
    .await;

    let big = Call::System(system::Call::Remark {
        data: Bytes(vec![7; 70_000]),
    });
    refused(
        &client,
        signed(&dave, big, 0, 1_000, 0, chain),
        TOO_LARGE,
        "limit",
    )
    .await;

    let pauper = Pair::dev("nobody has funds");
    refused(
        &client,
        signed(&pauper, transfer(1), 0, 1_000, 0, chain),
        INSUFFICIENT_FEE,
        "cannot pay fee",
    )
    .await;

    // Duplicates and replacement, with a future nonce so the transaction stays pooled.
    let waiting = signed(&dave, transfer(1), 50, 1_000, 10, chain);
    client.submit_extrinsic(waiting.clone()).await.unwrap();
    refused(&client, waiting, ALREADY_IMPORTED, "already in the pool").await;
    refused(
        &client,
        signed(&dave, transfer(2), 50, 1_000, 10, chain),
        TOO_LOW_PRIORITY,
        "same nonce",
    )
    .await;

    // Stale: once nonce 0 is final, nonce 0 again is refused.
    let first = client
        .submit_extrinsic(signed(&dave, transfer(1), 0, 1_000, 0, chain))
        .await
        .unwrap();
    for _ in 0..100 {
        if client.extrinsic(first).await.unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    refused(
        &client,
        signed(&dave, transfer(3), 0, 1_000, 0, chain),
        STALE_NONCE,
        "stale",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_get_stable_codes() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), 500).await;
    let client = node.client().await;

    let (code, message) = code_of(client.account("not-an-address".into()).await);
    assert_eq!(code, INVALID_PARAMS);
    assert!(message.contains("invalid address"), "{message}");
    let alice_on_other_net = Pair::dev("Alice").public().to_address(7);
    let (code, message) = code_of(client.account(alice_on_other_net).await);
    assert_eq!(code, INVALID_PARAMS);
    assert!(message.contains("network prefix"), "{message}");

    let nowhere = Hash::of(b"no such block");
    let (code, _) = code_of(
        client
            .storage(Bytes(b"balances/total_issuance".to_vec()), Some(nowhere))
            .await,
    );
    assert_eq!(code, UNKNOWN_BLOCK);
    let (code, _) = code_of(client.read_proof(vec![], Some(nowhere)).await);
    assert_eq!(code, UNKNOWN_BLOCK);

    let raw: Result<serde_json::Value, _> = client
        .request("chain_getBlock", rpc_params!["0xnothex"])
        .await;
    assert_eq!(code_of(raw).0, INVALID_PARAMS);
    let raw: Result<serde_json::Value, _> = client.request("no_suchMethod", rpc_params![]).await;
    assert_eq!(code_of(raw).0, -32601);
    assert_eq!(client.extrinsic(nowhere).await.unwrap(), None);
}

/// A JSON-RPC batch of submissions (pooled together, signatures checked as one batch) answers
/// each entry as a lone call would, in the order of the entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_submissions_is_answered_entry_by_entry_in_order() {
    use gridchain_rpc_api::jsonrpsee::core::params::BatchRequestBuilder;
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), 500).await;
    let client = node.client().await;
    let chain = chain_context(&client).await;
    let (eve, ferdie) = (Pair::dev("Eve"), Pair::dev("Ferdie"));

    let mut forged = signed(&eve, transfer(1), 60, 1_000, 0, chain);
    forged.0[40] ^= 1;
    let good = signed(&eve, transfer(1), 60, 1_000, 0, chain);
    let entries = [
        good.clone(),
        forged,
        Bytes(vec![1, 2, 3]),
        signed(&ferdie, transfer(1), 60, 1_000, 0, chain),
        signed(&ferdie, transfer(1), 61, 0, 0, chain),
    ];
    let mut batch = BatchRequestBuilder::new();
    for xt in &entries {
        batch
            .insert("author_submitExtrinsic", rpc_params![xt])
            .unwrap();
    }
    batch.insert("chain_getHeader", rpc_params![]).unwrap();
    let answers = client
        .batch_request::<serde_json::Value>(batch)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.map_err(|e| e.code()))
        .collect::<Vec<_>>();
    assert_eq!(answers.len(), 6);
    let hash_of = |xt: &Bytes| serde_json::to_value(Hash::of(&xt.0)).unwrap();
    assert_eq!(answers[0], Ok(hash_of(&good)));
    assert_eq!(answers[1], Err(BAD_SIGNATURE));
    assert_eq!(answers[2], Err(BAD_FORMAT));
    assert_eq!(answers[3], Ok(hash_of(&entries[3])));
    assert_eq!(answers[4], Err(EXPIRED));
    assert!(answers[5].as_ref().unwrap()["number"].is_u64());
    assert_eq!(pending(&client).await.len(), 2);
}

/// One raw HTTP/1.1 exchange with the node (the clients of the other tests cannot set an
/// `Origin` header or send an oversized batch): the status code and the body.
async fn raw_http(port: u16, request: String) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("the node answers")
            .unwrap();
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if n == 0 {
            break;
        }
        // Done once the headers and `content-length` bytes of body are in (a 101 has none).
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            });
            if head.starts_with("HTTP/1.1 101") || length.is_some_and(|l| body.len() >= l) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn post(port: u16, origin: Option<&str>, body: &str) -> String {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{origin}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn ws_upgrade(port: u16, origin: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A web page of another origin cannot use the node's RPC from a visitor's browser (HTTP or
/// WebSocket), allowed origins get CORS headers, clients without an Origin are unaffected, and
/// a batch above the limit is refused as a whole.
#[tokio::test]
async fn foreign_origins_and_oversized_batches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start_with(
        &dir.path().join("node"),
        250,
        &["--rpc-cors", "http://localhost:*"],
    )
    .await;
    let port = node.rpc_port;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"system_name","params":[]}"#;

    let (status, body) = raw_http(port, post(port, Some("https://evil.example"), call)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("origin not allowed"), "{body}");
    let (status, _) = raw_http(port, ws_upgrade(port, "https://evil.example")).await;
    assert_eq!(status, 403);

    let (status, body) = raw_http(port, post(port, Some("http://localhost:3000"), call)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("gridnode"), "{body}");
    let (status, _) = raw_http(port, ws_upgrade(port, "http://localhost:3000")).await;
    assert_eq!(status, 101);
    let (status, body) = raw_http(port, post(port, None, call)).await;
    assert_eq!(status, 200, "{body}");

    let calls: Vec<String> = (0..1_025)
        .map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"system_name","params":[]}}"#))
        .collect();
    let (_, body) = raw_http(port, post(port, None, &format!("[{}]", calls.join(",")))).await;
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(answer.get("error").is_some(), "{body}");
    let calls: Vec<String> = (0..1_024)
        .map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"system_name","params":[]}}"#))
        .collect();
    let (_, body) = raw_http(port, post(port, None, &format!("[{}]", calls.join(",")))).await;
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer.as_array().map(Vec::len), Some(1_024), "{body}");
}
