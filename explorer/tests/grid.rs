//! The grid pages against a real dev chain with grid activity made through the typed client
//! (see `common::make_grid_activity`).
//!
//! Build the binaries first: `cargo build -p gridnode -p explorer`.

mod common;

use common::{get, make_grid_activity, start_explorer, wait_indexed, GridActivity};
use gridchain_tests::DevNode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grid_pages_and_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = DevNode::start(&dir.path().join("node"), 250).await;
    let GridActivity {
        last_block: last,
        user,
    } = make_grid_activity(&node).await;

    let explorer = start_explorer(&node, &dir.path().join("index.sqlite")).await;
    let addr = explorer.local_addr();
    wait_indexed(addr, last).await;

    // Home cards.
    let home = get(addr, "/api/").await.json();
    let grid = &home["grid"];
    assert!(grid["twins"].as_u64() >= Some(3), "{grid}");
    assert_eq!(grid["farms"].as_u64(), Some(2), "{grid}");
    assert_eq!(grid["nodes"].as_u64(), Some(1));
    assert_eq!(grid["nodesUp"].as_u64(), Some(1));
    assert_eq!(grid["activeReservations"].as_u64(), Some(1));
    assert_eq!(grid["total"]["cru"].as_u64(), Some(8));
    assert!(grid["reserved"]["cru"].as_u64() >= Some(2));
    let html = get(addr, "/").await.body;
    assert!(html.contains("Nodes up") && html.contains("Memory used"));

    // Farms.
    let farms = get(addr, "/api/farms").await.json();
    let charlie = farms
        .as_array()
        .expect("farms")
        .iter()
        .find(|f| f["farm"]["name"] == "charlie-farm")
        .expect("charlie-farm listed");
    assert_eq!(
        (charlie["nodes"].as_u64(), charlie["nodesUp"].as_u64()),
        (Some(1), Some(1))
    );
    let farms_page = get(addr, "/farms").await.body;
    assert!(farms_page.contains("charlie-farm"));
    // Its one public IP is taken by the reservation below.
    assert_eq!(
        charlie["farm"]["publicIps"][0]["reservation"].as_u64(),
        Some(1),
        "{charlie}"
    );
    assert!(farms_page.contains("0<span class=\"muted\"> free / 1</span>"));

    // Nodes: filters and sorting.
    for (query, expected) in [
        ("", 1),
        ("?farm=2&status=up", 1),
        ("?farm=1", 0),
        ("?status=down", 0),
        ("?minCru=6", 1),
        ("?minCru=7", 0),
        ("?minMruGib=20&sort=freeMru&order=desc", 1),
        ("?sort=lastProof", 1),
    ] {
        let nodes = get(addr, &format!("/api/nodes{query}")).await.json();
        assert_eq!(
            nodes["nodes"]["total"].as_u64(),
            Some(expected),
            "/api/nodes{query}"
        );
        assert_eq!(get(addr, &format!("/nodes{query}")).await.status, 200);
    }
    let nodes = get(addr, "/api/nodes").await.json();
    assert_eq!(nodes["nodes"]["items"][0]["free"]["cru"].as_u64(), Some(6));
    assert!(!nodes["capacity"]
        .as_array()
        .expect("capacity history")
        .is_empty());
    for bad in [
        "?status=sideways",
        "?sort=color",
        "?order=up",
        "?farm=x",
        "?minCru=-1",
    ] {
        assert_eq!(
            get(addr, &format!("/api/nodes{bad}")).await.status,
            400,
            "{bad}"
        );
        assert_eq!(
            get(addr, &format!("/nodes{bad}")).await.status,
            400,
            "{bad}"
        );
    }

    // Node detail: capacity, uptime, last proof, workloads with the node's error message.
    let detail = get(addr, "/api/node/1").await.json();
    assert_eq!(detail["info"]["node"]["farmId"].as_u64(), Some(2));
    assert_eq!(detail["info"]["capacity"]["total"]["cru"].as_u64(), Some(8));
    assert!(detail["uptime24hPercent"].as_f64().is_some(), "{detail}");
    assert!(detail["info"]["health"]["lastProofMs"].as_u64().is_some());
    assert_eq!(detail["reservations"].as_array().map(Vec::len), Some(1));
    let page = get(addr, "/node/1").await;
    assert_eq!(page.status, 200);
    for needle in ["Uptime 24 h", "Ghent", "Capacity", "<svg", "/reservation/1"] {
        assert!(page.body.contains(needle), "node page lacks {needle}");
    }
    assert_eq!(get(addr, "/node/7").await.status, 404);
    assert_eq!(get(addr, "/api/node/seven").await.status, 400);

    // Reservations by owner and node; detail with workload states and messages.
    let user_address = user.public().to_string();
    let mine = get(addr, &format!("/api/reservations?owner={user_address}"))
        .await
        .json();
    assert_eq!(mine["total"].as_u64(), Some(1));
    assert_eq!(
        get(addr, "/api/reservations?node=1").await.json()["total"].as_u64(),
        Some(1)
    );
    assert_eq!(
        get(addr, "/api/reservations?node=9").await.json()["total"].as_u64(),
        Some(0)
    );
    assert_eq!(
        get(addr, "/api/reservations?owner=nobody").await.status,
        400
    );
    let r = get(addr, "/api/reservation/1").await.json();
    assert_eq!(r["state"].as_str(), Some("failed"), "{r}");
    assert_eq!(r["results"][1]["state"].as_str(), Some("error"));
    let page = get(addr, "/reservation/1").await.body;
    assert!(page.contains("image pull failed: manifest unknown") && page.contains("bridge up"));
    assert!(page.contains("198.51.100.70/26") && page.contains("web-ip, gateway 198.51.100.65"));
    assert!(get(addr, "/reservations")
        .await
        .body
        .contains("/reservation/1"));
    assert_eq!(get(addr, "/reservation/99").await.status, 404);
    assert_eq!(get(addr, "/api/reservation/-1").await.status, 400);

    // The reservation's network is in a mesh: its page lists members and the owner's peers.
    let owner = r["owner"].as_str().unwrap().to_string();
    assert!(page.contains(&format!("/mesh/{owner}/net")));
    let mesh = get(addr, &format!("/api/mesh/{owner}/net")).await.json();
    assert_eq!(mesh["range"].as_str(), Some("10.9.0.0/16"), "{mesh}");
    assert_eq!(mesh["members"][0]["subnet"].as_str(), Some("10.9.1.0/24"));
    assert_eq!(
        mesh["members"][0]["wireguard"]["endpoint"].as_str(),
        Some("198.51.100.9:51820")
    );
    let page = get(addr, &format!("/mesh/{owner}/net")).await.body;
    let node_key = gridchain_primitives::wireguard::WireguardKey([8; 32]).to_base64();
    assert!(
        page.contains(&node_key) && page.contains("10.9.255.2"),
        "{page}"
    );
    assert_eq!(get(addr, &format!("/mesh/{owner}/other")).await.status, 404);
    assert_eq!(get(addr, "/api/mesh/nobody/net").await.status, 400);

    // Twins: search by name; the account page shows the twin.
    let twins = get(addr, "/api/twins?q=charl").await.json();
    assert_eq!(twins["twins"]["total"].as_u64(), Some(1));
    assert_eq!(twins["twins"]["items"][0]["name"].as_str(), Some("charlie"));
    assert!(get(addr, "/twins?q=charl").await.body.contains("charlie"));
    assert_eq!(
        get(addr, "/api/twins?q=%25").await.json()["twins"]["total"].as_u64(),
        Some(0)
    );
    let account = get(addr, &format!("/api/account/{user_address}"))
        .await
        .json();
    assert_eq!(account["twin"]["name"].as_str(), Some("explorer-user"));

    // Search: node id, farm name, twin name.
    for (q, path) in [
        ("node%201", "/node/1"),
        ("node:1", "/node/1"),
        ("charlie-farm", "/nodes?farm=2"),
        ("explorer-user", "/twins?q=explorer-user"),
    ] {
        let hit = get(addr, &format!("/api/search?q={q}")).await.json();
        assert_eq!(hit["path"].as_str(), Some(path), "{q}");
    }
    assert_eq!(get(addr, "/api/search?q=node%2099").await.status, 404);
    assert_eq!(get(addr, "/api/search?q=no-such-name").await.status, 404);

    explorer.stop().await;
}
