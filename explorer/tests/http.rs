//! Every page and API route against an index built from a real `gridnode --dev` with transfers
//! (one of them failing), hostile input, and an indexer restart plus a node outage.
//!
//! Build the binaries first: `cargo build -p gridnode -p explorer`.

mod common;

use common::{get, make_activity, start_explorer, wait_indexed};
use gridchain_tests::DevNode;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_api_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = DevNode::start(&dir.path().join("node"), 200).await;
    let activity = make_activity(&node).await;
    let explorer = start_explorer(&node, &dir.path().join("index.sqlite")).await;
    let addr = explorer.local_addr();
    wait_indexed(addr, activity.failed.block_number).await;

    let transfer = &activity.transfer;
    let tx_hash = transfer.hash.to_string();
    let block_hash = transfer.block_hash.to_string();

    // Home: cards, charts, latest tables, live script; and its JSON twin.
    let home = get(addr, "/").await;
    assert_eq!(home.status, 200);
    assert!(home
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/html"));
    for needle in [
        "Final height",
        "Block time",
        "Validators",
        "<svg",
        "latest-blocks",
        "latest-extrinsics",
        "/static/live.js",
    ] {
        assert!(home.body.contains(needle), "home lacks {needle}");
    }
    let api = get(addr, "/api/").await.json();
    assert!(api["totals"]["extrinsics"].as_u64() >= Some(3), "{api}");
    assert_eq!(api["totals"]["failedExtrinsics"].as_u64(), Some(1));
    assert_eq!(api["totals"]["validators"].as_u64(), Some(1));
    assert!(api["chain"]["connected"].as_bool().unwrap_or(false));
    assert!(api["averageBlockTimeMs"].as_u64().is_some());
    assert!(!api["chart"].as_array().expect("chart").is_empty());
    assert_eq!(get(addr, "/api").await.status, 200);

    // Blocks list.
    let blocks = get(addr, "/api/blocks?page=1").await.json();
    assert_eq!(blocks["page"].as_u64(), Some(1));
    assert!(blocks["total"].as_u64() > Some(transfer.block_number));
    assert_eq!(get(addr, "/blocks").await.status, 200);

    // Block by height and by hash, HTML and JSON.
    let by_height = get(addr, &format!("/api/block/{}", transfer.block_number))
        .await
        .json();
    assert_eq!(by_height["hash"].as_str(), Some(block_hash.as_str()));
    assert_eq!(
        by_height["extrinsics"][0]["hash"].as_str(),
        Some(tx_hash.as_str())
    );
    assert!(by_height["events"].as_array().expect("events").len() >= 3);
    let by_hash = get(addr, &format!("/api/block/{block_hash}")).await.json();
    assert_eq!(by_hash["number"].as_u64(), Some(transfer.block_number));
    let page = get(addr, &format!("/block/{block_hash}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&tx_hash) && page.body.contains("balances.transfer"));

    // Extrinsic: decoded call, signer, nonce, fee, result, events.
    let x = get(addr, &format!("/api/extrinsic/{tx_hash}")).await.json();
    assert_eq!(x["signer"].as_str(), Some(activity.alice.as_str()));
    assert_eq!(x["call"]["dest"].as_str(), Some(activity.bob.as_str()));
    assert_eq!(x["call"]["amount"].as_str(), Some("7000000000000"));
    assert_eq!(x["fee"].as_str(), Some(transfer.fee.to_string().as_str()));
    assert_eq!(x["nonce"].as_u64(), Some(transfer.nonce));
    assert_eq!(x["success"].as_bool(), Some(true));
    assert_eq!(
        x["events"].as_array().expect("events").len(),
        transfer.events.len()
    );
    let page = get(addr, &format!("/extrinsic/{tx_hash}")).await;
    assert!(page.status == 200 && page.body.contains("7 GRID") && page.body.contains("success"));

    let failed_hash = activity.failed.hash.to_string();
    let failed = get(addr, &format!("/api/extrinsic/{failed_hash}"))
        .await
        .json();
    assert_eq!(failed["success"].as_bool(), Some(false));
    assert_eq!(
        failed["error"]["error"].as_str(),
        Some("InsufficientBalance")
    );
    let page = get(addr, &format!("/extrinsic/{failed_hash}")).await;
    assert!(page.body.contains("failed") && page.body.contains("InsufficientBalance"));

    // Account: balance from the node, nonce, history.
    let bob = get(addr, &format!("/api/account/{}", activity.bob))
        .await
        .json();
    assert_eq!(bob["nonce"].as_u64(), Some(1));
    assert!(bob["free"].as_str().expect("free").parse::<u128>().is_ok());
    let history = bob["history"]["items"].as_array().expect("history");
    assert!(history
        .iter()
        .any(|h| h["hash"].as_str() == Some(tx_hash.as_str())));
    assert!(history
        .iter()
        .any(|h| h["hash"].as_str() == Some(failed_hash.as_str())));
    let page = get(addr, &format!("/account/{}", activity.bob)).await;
    assert!(page.status == 200 && page.body.contains(&activity.bob));

    // Validators: the dev chain's set is //Alice alone (100,000 GRID bonded), and she proposed
    // every indexed block.
    let validators = get(addr, "/api/validators").await.json();
    let alice = &validators["active"][0];
    assert_eq!(alice["account"].as_str(), Some(activity.alice.as_str()));
    assert_eq!(alice["power"].as_u64(), Some(100_000));
    assert!(alice["blocksProposed"].as_u64() >= Some(1), "{validators}");
    assert_eq!(validators["active"].as_array().map(Vec::len), Some(1));
    let page = get(addr, "/validators").await.body;
    assert!(
        page.contains("Validators") && page.contains("100000"),
        "{page}"
    );

    // Search: height, block hash, extrinsic hash, address → redirect (HTML) or target (JSON).
    for (q, kind, path) in [
        (
            transfer.block_number.to_string(),
            "block",
            format!("/block/{}", transfer.block_number),
        ),
        (block_hash.clone(), "block", format!("/block/{block_hash}")),
        (
            tx_hash.clone(),
            "extrinsic",
            format!("/extrinsic/{tx_hash}"),
        ),
        (
            activity.bob.clone(),
            "account",
            format!("/account/{}", activity.bob),
        ),
    ] {
        let hit = get(addr, &format!("/api/search?q={q}")).await.json();
        assert_eq!(hit["kind"].as_str(), Some(kind), "{q}");
        assert_eq!(hit["path"].as_str(), Some(path.as_str()));
        let redirect = get(addr, &format!("/search?q=%20{q}%20")).await;
        assert_eq!(redirect.status, 303, "{q}");
        assert_eq!(redirect.header("location"), Some(path.as_str()));
    }

    // Static assets.
    let css = get(addr, "/static/style.css").await;
    assert!(
        css.status == 200
            && css
                .header("content-type")
                .unwrap_or_default()
                .starts_with("text/css")
    );
    assert_eq!(get(addr, "/static/live.js").await.status, 200);

    explorer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_clear_4xx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = DevNode::start(&dir.path().join("node"), 200).await;
    let explorer = start_explorer(&node, &dir.path().join("index.sqlite")).await;
    let addr = explorer.local_addr();
    wait_indexed(addr, 2).await;

    let unknown_hash = format!("0x{}", "ab".repeat(32));
    let unknown_address = gridchain_primitives::Pair::dev("Nobody")
        .public()
        .to_string();
    let cases: Vec<(String, u16)> = vec![
        ("/block/abc".into(), 400),
        ("/block/-1".into(), 400),
        ("/block/99999999999999999999999".into(), 400),
        ("/block/18446744073709551615".into(), 404),
        ("/block/0xdead".into(), 400),
        (format!("/block/{unknown_hash}"), 404),
        ("/extrinsic/nothex".into(), 400),
        (format!("/extrinsic/0x{}", "zz".repeat(32)), 400),
        (format!("/extrinsic/{unknown_hash}"), 404),
        ("/account/notanaddress".into(), 400),
        (
            "/account/5FamdMFnuiZBJy93HRHrGtumtBa7NrFGY7G9KwTtNpwL8Fdx".into(),
            400,
        ),
        (format!("/account/{unknown_address}"), 404),
        ("/blocks?page=0".into(), 400),
        ("/blocks?page=abc".into(), 400),
        ("/blocks?page=-3".into(), 400),
        ("/blocks?page=99999999999999999999999999".into(), 400),
        ("/blocks?page=18446744073709551615".into(), 404),
        ("/blocks?page=%FF".into(), 400),
        ("/search?q=".into(), 400),
        ("/search?q=%27%3B%20DROP%20TABLE%20blocks%3B--".into(), 400),
        ("/search?q=%F0%9F%92%A9".into(), 400),
        (format!("/search?q={}", "9".repeat(40)), 400),
        (format!("/search?q={}", "x".repeat(500)), 400),
        ("/search?q=0x".into(), 400),
        (format!("/search?q={unknown_hash}"), 404),
        ("/block/%E2%82%AC".into(), 400),
        ("/no/such/page".into(), 404),
    ];
    for (path, status) in &cases {
        let html = get(addr, path).await;
        assert_eq!(html.status, *status, "GET {path}: {}", html.body);
        assert!(
            html.body.contains("<h1>"),
            "GET {path} is not an error page"
        );
        let api_path = format!("/api{path}");
        let json = get(addr, &api_path).await;
        assert_eq!(json.status, *status, "GET {api_path}: {}", json.body);
        let body = json.json();
        assert_eq!(body["error"]["status"].as_u64(), Some(u64::from(*status)));
        assert!(!body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty());
    }
    // The index is still fine after all that.
    assert_eq!(get(addr, "/api/").await.status, 200);
    explorer.stop().await;
}

/// Stop the explorer mid-chain and start it again; then take the node down and bring it back.
/// Afterwards the index holds every block exactly once, linked by parent hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_outage_leave_no_gap_or_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("index.sqlite");
    let mut node = DevNode::start(&dir.path().join("node"), 200).await;
    let explorer = start_explorer(&node, &db).await;
    wait_indexed(explorer.local_addr(), 5).await;
    explorer.stop().await;

    // The chain moves on while the explorer is down.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let explorer = start_explorer(&node, &db).await;
    let addr = explorer.local_addr();
    let client = node.client().await;
    let final_now = {
        use gridchain_rpc_api::ChainApiClient;
        let hash = client.finalized_head().await.expect("rpc");
        client
            .header(Some(hash))
            .await
            .expect("rpc")
            .expect("header")
            .number
    };
    wait_indexed(addr, final_now).await;

    // Node outage: the indexer reconnects with backoff and resumes.
    node.restart().await;
    let after_outage = final_now + 10;
    wait_indexed(addr, after_outage).await;
    explorer.stop().await;

    // Store::open checks contiguous heights from 0 and parent-hash links.
    let store = explorer::db::Store::open(&db).expect("index is consistent");
    let (count, max): (i64, i64) = store
        .read(|conn| {
            Ok(
                conn.query_row("SELECT count(*), max(number) FROM blocks", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?,
            )
        })
        .expect("query");
    assert_eq!(count, max + 1, "every height exactly once");
    assert!(max as u64 >= after_outage);
}

/// A damaged index is refused on start and `reindex` rebuilds it; an index of another chain
/// stops the indexer with a clear error, or is rebuilt when `rebuild_on_mismatch` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_foreign_index_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("index.sqlite");
    let node = DevNode::start(&dir.path().join("node"), 200).await;
    let explorer = start_explorer(&node, &db).await;
    wait_indexed(explorer.local_addr(), 6).await;
    explorer.stop().await;

    // A block vanishes from the middle: heights are no longer contiguous.
    {
        let conn = rusqlite::Connection::open(&db).expect("open index");
        conn.execute("DELETE FROM blocks WHERE number = 3", [])
            .expect("delete");
    }
    let mut config = explorer::Config::new(node.ws_url(), &db);
    config.listen = "127.0.0.1:0".parse().expect("addr");
    match explorer::serve(config.clone()).await {
        Err(explorer::ExplorerError::Db(explorer::db::DbError::Inconsistent {
            reason, ..
        })) => {
            assert!(reason.contains("not contiguous"), "{reason}")
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a damaged index was accepted"),
    }
    let report = explorer::reindex(&node.ws_url(), db.clone())
        .await
        .expect("reindex");
    assert!(report.blocks > 6);
    explorer::db::Store::open(&db).expect("rebuilt index is consistent");

    // The same index against another chain (another dev node: same genesis, other blocks).
    let other = DevNode::start(&dir.path().join("other"), 200).await;
    let mut foreign = explorer::Config::new(other.ws_url(), &db);
    foreign.listen = "127.0.0.1:0".parse().expect("addr");
    let explorer = explorer::serve(foreign.clone()).await.expect("serves");
    let addr = explorer.local_addr();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let home = get(addr, "/api/").await.json();
        let error = home["chain"]["lastError"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if error.contains("another chain") {
            assert_eq!(home["chain"]["connected"].as_bool(), Some(false));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no mismatch reported: {home}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    explorer.stop().await;

    foreign.rebuild_on_mismatch = true;
    let explorer = explorer::serve(foreign).await.expect("serves");
    // Dev chains share their genesis; block 3 tells them apart (its timestamp).
    let other_block_3 = {
        use gridchain_rpc_api::ChainApiClient;
        let client = other.client().await;
        loop {
            if let Some(hash) = client.block_hash(Some(3)).await.expect("rpc") {
                break hash.to_string();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let block = get(explorer.local_addr(), "/api/block/3").await;
        if block.status == 200 && block.json()["hash"].as_str() == Some(other_block_3.as_str()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "index was not rebuilt for the other chain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    explorer.stop().await;
}

/// Reads the ids of the first `count` SSE events of `GET path` (the stream never ends).
async fn sse_ids(
    addr: std::net::SocketAddr,
    path: &str,
    extra_header: &str,
    count: usize,
) -> Vec<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra_header}\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut text = String::new();
    let mut buf = [0u8; 8192];
    let ids = |text: &str| -> Vec<u64> {
        text.lines()
            .filter_map(|l| l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")))
            .filter_map(|id| id.trim().parse().ok())
            .collect()
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        while ids(&text).len() < count {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "stream closed: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .expect("SSE events in 30 s");
    ids(&text).into_iter().take(count).collect()
}

/// The live stream replays what a page missed (`?after=` or `Last-Event-ID`), then follows,
/// with every height exactly once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stream_replays_then_follows_without_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = DevNode::start(&dir.path().join("node"), 200).await;
    let explorer = start_explorer(&node, &dir.path().join("index.sqlite")).await;
    let addr = explorer.local_addr();
    wait_indexed(addr, 8).await;

    let ids = sse_ids(addr, "/api/live?after=3", "", 12).await;
    assert_eq!(ids[0], 4, "{ids:?}");
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "gap or duplicate: {ids:?}"
    );

    let ids = sse_ids(addr, "/api/live", "Last-Event-ID: 5\r\n", 4).await;
    assert_eq!(ids[0], 6, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");

    assert_eq!(get(addr, "/api/live?after=soon").await.status, 400);
    explorer.stop().await;
}
