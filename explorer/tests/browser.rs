//! The home page in a real browser: Debian's headless `chromium`, driven over the Chrome
//! DevTools protocol. The indexed height must advance without a reload (server-sent events),
//! a click goes block → extrinsic → account, the search box finds a block, and the grid pages
//! lead from the nodes table to a node and its failed reservation. Screenshots
//! (laptop and phone) are saved to `<target>/explorer-screenshots/`.
//!
//! Needs `chromium` (apt) and the binaries: `cargo build -p gridnode -p explorer`.

mod common;

use base64::Engine;
use common::{make_activity, make_grid_activity, start_explorer, wait_indexed};
use futures::{SinkExt, StreamExt};
use gridchain_tests::DevNode;
use serde_json::{json, Value};
use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use tokio::net::TcpStream;
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

/// A headless Chromium child process; killed on drop.
struct Browser {
    child: Child,
    devtools_url: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--window-size=1280,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium is installed (apt-get install -y chromium)");
        let stderr = child.stderr.take().expect("stderr");
        let mut devtools_url = None;
        for line in BufReader::new(stderr).lines() {
            let line = line.expect("chromium stderr");
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                devtools_url = Some(url.trim().to_string());
                break;
            }
        }
        Browser {
            child,
            devtools_url: devtools_url.expect("chromium printed its DevTools address"),
            _profile: profile,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page (target) of the browser, attached with a flat session.
struct Page {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
}

impl Page {
    async fn open(browser: &Browser) -> Page {
        let (ws, _) = tokio_tungstenite::connect_async(&browser.devtools_url)
            .await
            .expect("DevTools websocket");
        let mut page = Page {
            ws,
            session: String::new(),
            next_id: 0,
        };
        let target = page
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = page
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        page.session = attached["sessionId"].as_str().expect("session").to_string();
        page.call("Page.enable", json!({})).await;
        page
    }

    /// Sends a DevTools command and returns its result, skipping events.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        match self.try_call(method, params).await {
            Ok(result) => result,
            Err(error) => panic!("{method}: {error}"),
        }
    }

    /// [`Self::call`], with DevTools' error reply as `Err`.
    async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .expect("send");
        loop {
            let reply = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no reply in 30 s"))
                .expect("websocket open")
                .expect("websocket message");
            let Message::Text(text) = reply else { continue };
            let value: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if value["id"].as_u64() == Some(id) {
                return match value.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(value["result"].clone()),
                };
            }
        }
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Polls `condition` (a JS expression) until it is true. An evaluation the page cuts short
    /// by navigating away (DevTools: "Inspected target navigated or closed") counts as not yet:
    /// this is how the page being waited for arrives.
    async fn wait_for(&mut self, condition: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let evaluated = self
                .try_call(
                    "Runtime.evaluate",
                    json!({ "expression": condition, "returnByValue": true }),
                )
                .await;
            match evaluated {
                Ok(result) if result["result"]["value"] == json!(true) => return,
                Ok(_) => {}
                Err(error) if error.to_string().contains("navigated or closed") => {}
                Err(error) => panic!("{condition}: {error}"),
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
        self.wait_for(
            &format!("location.href === {url:?} && document.readyState === 'complete'"),
            url,
        )
        .await;
    }

    /// Clicks the first element matching `selector` and waits for the next page to load.
    async fn click_and_load(&mut self, selector: &str, expected_path_prefix: &str) {
        let clicked = self
            .eval(&format!(
                "(() => {{ const a = document.querySelector({selector:?}); if (!a) return false; a.click(); return true; }})()"
            ))
            .await;
        assert_eq!(clicked, json!(true), "nothing matches {selector}");
        self.wait_for(
            &format!(
                "location.pathname.startsWith({expected_path_prefix:?}) && document.readyState === 'complete'"
            ),
            expected_path_prefix,
        )
        .await;
    }

    async fn screenshot(&mut self, name: &str) {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }
}

/// `<target>/explorer-screenshots`, beside the profile directory of the test binaries.
fn screenshot_dir() -> PathBuf {
    let gridnode = gridchain_tests::binary("gridnode");
    gridnode
        .parent()
        .and_then(|profile| profile.parent())
        .expect("target dir")
        .join("explorer-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_updates_live_and_links_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = DevNode::start(&dir.path().join("node"), 500).await;
    let grid = make_grid_activity(&node).await;
    let activity = make_activity(&node).await;
    let explorer = start_explorer(&node, &dir.path().join("index.sqlite")).await;
    let base = format!("http://{}", explorer.local_addr());
    wait_indexed(
        explorer.local_addr(),
        activity.failed.block_number.max(grid.last_block),
    )
    .await;

    let browser = Browser::launch();
    let mut page = Page::open(&browser).await;
    page.goto(&format!("{base}/")).await;

    // Live: mark this document, then see a newer block arrive in it without a reload.
    let first_row = "document.querySelector('#latest-blocks tr td a').textContent";
    let before = page.eval(first_row).await;
    page.eval("window.loadedOnce = true").await;
    page.wait_for(
        &format!("{first_row} !== {before}"),
        "a new block in the latest-blocks table",
    )
    .await;
    assert_eq!(
        page.eval("window.loadedOnce === true").await,
        json!(true),
        "page reloaded"
    );
    let height = |v: &Value| -> u64 {
        v.as_str()
            .and_then(|s| s.trim_start_matches('#').parse().ok())
            .expect("a #height")
    };
    let after = page.eval(first_row).await;
    assert!(height(&after) > height(&before), "{before} → {after}");
    // Every height once, newest first, no gap between what was rendered and what streamed in.
    let rows = page
        .eval("Array.from(document.querySelectorAll('#latest-blocks tr td:first-child a')).map(a => Number(a.textContent.slice(1)))")
        .await;
    let rows: Vec<u64> = serde_json::from_value(rows).expect("heights");
    assert!(
        rows.windows(2).all(|w| w[0] == w[1] + 1),
        "latest blocks: {rows:?}"
    );
    let indexed_card = page
        .eval("document.querySelector('[data-live=\"indexed-height\"]').textContent")
        .await;
    assert!(height(&indexed_card) >= height(&after));
    page.screenshot("home").await;

    // Click through: block (of the latest extrinsic) → extrinsic → signer's account.
    page.click_and_load("#latest-extrinsics a[href^='/block/']", "/block/")
        .await;
    page.screenshot("block").await;
    page.click_and_load("main a[href^='/extrinsic/']", "/extrinsic/")
        .await;
    assert_eq!(
        page.eval("document.querySelector('h1').textContent.includes('balances.transfer')")
            .await,
        json!(true)
    );
    page.screenshot("extrinsic").await;
    page.click_and_load("dl.facts a[href^='/account/']", "/account/")
        .await;
    assert_eq!(
        page.eval("document.querySelector('h1').textContent").await,
        json!("Account")
    );
    page.screenshot("account").await;

    // Search box: a block height leads to that block.
    let target = activity.transfer.block_number;
    page.eval(&format!(
        "document.querySelector('form.search input').value = '{target}'; document.querySelector('form.search').submit()"
    ))
    .await;
    page.wait_for(
        &format!("location.pathname === '/block/{target}' && document.readyState === 'complete'"),
        "search result",
    )
    .await;
    assert_eq!(
        page.eval("document.querySelector('h1').textContent").await,
        json!(format!("Block #{target}"))
    );

    // Grid: nodes table → node detail (capacity, uptime, workloads) → reservation.
    page.goto(&format!("{base}/nodes")).await;
    page.screenshot("nodes").await;
    page.click_and_load("tbody a[href='/node/1']", "/node/1")
        .await;
    page.screenshot("node").await;
    page.click_and_load("a[href='/reservation/1']", "/reservation/1")
        .await;
    assert_eq!(
        page.eval("document.body.textContent.includes('image pull failed')")
            .await,
        json!(true)
    );
    page.screenshot("reservation").await;
    // Its network spans nodes: the mesh page lists the member and the owner's peer.
    page.click_and_load("a[href^='/mesh/']", "/mesh/").await;
    assert_eq!(
        page.eval("document.querySelector('h1').textContent").await,
        json!("Mesh net")
    );
    assert_eq!(
        page.eval("document.body.textContent.includes('10.9.255.2') && document.body.textContent.includes('198.51.100.9:51820')")
            .await,
        json!(true)
    );
    page.screenshot("mesh").await;

    // A phone-sized viewport of the home page and a node.
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true }),
    )
    .await;
    page.goto(&format!("{base}/")).await;
    page.screenshot("home-phone").await;
    page.goto(&format!("{base}/node/1")).await;
    page.screenshot("node-phone").await;

    // The page's live stream is still open: stopping must not wait for it.
    tokio::time::timeout(Duration::from_secs(10), explorer.stop())
        .await
        .expect("stop ends open live streams");
    drop(browser);
}
