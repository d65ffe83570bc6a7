//! `grid store reserve` end to end on a local grid: a real `gridnode --dev --no-agent` and three
//! real `zos-agent` processes (each with its own funded node key, data dir and zdb port, all in
//! farm 1). The wallet reserves 2 + 1 namespaces in one transaction, waits until the agents
//! report them Ok, writes the backend config; then `grid store put`/`get` go through the
//! namespaces the agents provisioned. Also: more shards than nodes is refused (exit 1).
//!
//! Needs `CARGO_TARGET_DIR=/work/target cargo build -p gridnode -p zos-agent` first (the binaries
//! are looked up next to `grid`). No Docker containers are created for zdb-only reservations;
//! each agent's zdb lives in its data dir, a temporary directory removed at the end.

#![allow(clippy::unwrap_used)]

mod common;

use common::{grid, DevNode, GridRun};
use gridchain_primitives::Pair;
use std::{
    net::TcpListener,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const AGENTS: usize = 3;

/// The agents, killed when the test ends (pass or fail); their data dirs go with the tempdir.
struct Agents(Vec<Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn zos_agent_path() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_grid"))
        .parent()
        .unwrap()
        .join("zos-agent");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p zos-agent` (same CARGO_TARGET_DIR) first",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a zos-agent for `node_uri` with its own key file, data dir and zdb port (flags as in
/// zos-agent/tests/common/mod.rs `spawn_agent`).
fn spawn_agent(dir: &Path, node_uri: &str, rpc: &str) -> Child {
    std::fs::create_dir_all(dir).unwrap();
    let key_file = dir.join("node.key");
    std::fs::write(&key_file, node_uri).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    Command::new(zos_agent_path())
        .arg("--key-file")
        .arg(&key_file)
        .args(["--farm-id", "1", "--rpc", rpc])
        .arg("--data-dir")
        .arg(dir.join("agent"))
        .args([
            "--zdb-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--zdb-admin-password",
            "admin-pass",
            "--capacity-period-secs",
            "3",
            "--reconcile-interval-secs",
            "5",
            "--log",
            "info,zos_agent=debug",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn zos-agent")
}

fn ok(run: GridRun) -> GridRun {
    run.assert_code(0);
    run
}

/// Ids of the nodes that are Up among those registered by `accounts`.
fn up_nodes(keystore: &Path, rpc: &str, accounts: &[String]) -> Vec<u64> {
    let run = grid(
        keystore,
        &[
            "node", "list", "--status", "up", "--output", "json", "--rpc", rpc,
        ],
    );
    if run.code != 0 {
        return vec![];
    }
    run.json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            n["node"]["account"]
                .as_str()
                .is_some_and(|a| accounts.iter().any(|x| x == a))
        })
        .filter_map(|n| n["node"]["id"].as_u64())
        .collect()
}

#[test]
fn reserve_put_get_through_agents() {
    let dir = tempfile::tempdir().unwrap();
    let keystore = dir.path().join("keystore.json");
    let chain = DevNode::start(&keystore);
    let rpc = chain.ws_url.clone();

    // funded node keys, and a twin for the owner
    let pid = std::process::id();
    let uris: Vec<String> = (0..AGENTS)
        .map(|i| format!("//zstor-e2e-{pid}-{i}"))
        .collect();
    let accounts: Vec<String> = uris
        .iter()
        .map(|u| Pair::from_uri(u).unwrap().public().to_string())
        .collect();
    for account in &accounts {
        ok(grid(
            &keystore,
            &[
                "transfer", account, "1000", "--from", "//Alice", "--rpc", &rpc,
            ],
        ));
        // Alice owns the dev farm: each agent's node may join it.
        ok(grid(
            &keystore,
            &[
                "farm",
                "allow-node",
                "1",
                account,
                "--from",
                "//Alice",
                "--rpc",
                &rpc,
            ],
        ));
    }
    ok(grid(
        &keystore,
        &["twin", "create", "bob", "--from", "//Bob", "--rpc", &rpc],
    ));

    let _agents = Agents(
        uris.iter()
            .enumerate()
            .map(|(i, uri)| spawn_agent(&dir.path().join(format!("agent{i}")), uri, &rpc))
            .collect(),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let nodes = loop {
        let up = up_nodes(&keystore, &rpc, &accounts);
        if up.len() == AGENTS {
            break up;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {AGENTS} agents' nodes Up in 90 s; see {}/agent*/agent.log",
            up.len(),
            dir.path().display()
        );
        std::thread::sleep(Duration::from_millis(300));
    };

    // refused: more shards than Up nodes (anything else on the dev chain counted too)
    let all_up = grid(
        &keystore,
        &[
            "node", "list", "--status", "up", "--output", "json", "--rpc", &rpc,
        ],
    );
    let up_count = ok(all_up).json().as_array().unwrap().len();
    let config = dir.path().join("cfg/store.json");
    let config_s = config.display().to_string();
    let too_many = up_count.to_string(); // + 1 parity
    let refused = grid(
        &keystore,
        &[
            "store", "reserve", "--data", &too_many, "--parity", "1", "--size", "16MiB", "--from",
            "//Bob", "--config", &config_s, "--rpc", &rpc,
        ],
    );
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("distinct nodes")
            && refused.stderr.contains("--allow-shared-nodes"),
        "{}",
        refused.stderr
    );
    assert!(!config.exists(), "nothing written on refusal");

    // reserve 2 + 1 namespaces: one transaction, all Ok, config written 0600
    let reserved = grid(
        &keystore,
        &[
            "store",
            "reserve",
            "--data",
            "2",
            "--parity",
            "1",
            "--size",
            "16MiB",
            "--from",
            "//Bob",
            "--config",
            &config_s,
            "--timeout",
            "120",
            "--output",
            "json",
            "--rpc",
            &rpc,
        ],
    );
    let reserved = ok(reserved).json();
    assert_eq!(reserved["dataShards"], 2);
    assert_eq!(reserved["parityShards"], 1);
    assert_eq!(reserved["distinctNodes"], 3);
    let backends = reserved["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 3);
    let mut used: Vec<u64> = backends
        .iter()
        .map(|b| b["nodeId"].as_u64().unwrap())
        .collect();
    used.sort();
    let mut expected = nodes.clone();
    expected.sort();
    assert_eq!(used, expected, "one namespace on each agent's node");
    assert!(
        reserved.to_string().find("password").is_none(),
        "passwords stay out of stdout"
    );
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "config mode");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(written["version"], 1);
    assert_eq!(written["dataShards"], 2);
    assert_eq!(written["parityShards"], 1);
    let written_backends = written["backends"].as_array().unwrap();
    let mut passwords = Vec::new();
    for (b, r) in written_backends.iter().zip(backends) {
        assert_eq!(b["namespace"], r["namespace"]);
        assert_eq!(b["address"], r["address"]);
        assert_eq!(b["reservationId"], r["reservationId"]);
        let password = b["password"].as_str().unwrap();
        assert!(password.len() >= 32);
        passwords.push(password.to_string());
        // the reservation is really on chain, with a sealed password (never the clear one)
        let id = b["reservationId"].as_u64().unwrap().to_string();
        let shown = ok(grid(
            &keystore,
            &[
                "reservation",
                "show",
                &id,
                "--output",
                "json",
                "--rpc",
                &rpc,
            ],
        ))
        .json();
        assert!(!shown.to_string().contains(password));
        assert_eq!(shown["results"][0]["state"], "ok");
    }
    passwords.dedup();
    assert_eq!(passwords.len(), 3, "one password per namespace");

    // refused: the config exists (no --force), before anything is reserved
    let again = grid(
        &keystore,
        &[
            "store", "reserve", "--data", "2", "--parity", "1", "--size", "16MiB", "--from",
            "//Bob", "--config", &config_s, "--rpc", &rpc,
        ],
    );
    again.assert_code(1);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);

    // put / get through the namespaces the agents provisioned
    let key_file = dir.path().join("key.hex");
    std::fs::write(&key_file, "11".repeat(32)).unwrap();
    let index = dir.path().join("index.json");
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let input = dir.path().join("input.bin");
    std::fs::write(&input, &data).unwrap();
    let store_args = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = vec!["store".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(
            [
                "--config",
                &config_s,
                "--index",
                &index.display().to_string(),
                "--key-file",
                &key_file.display().to_string(),
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        args
    };
    let put_args = store_args(&["put", &input.display().to_string(), "--output", "json"]);
    let put = ok(grid(
        &keystore,
        &put_args.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
    .json();
    let location = put["location"].as_str().unwrap().to_string();
    assert!(location.starts_with("zs1"), "{put}");
    let output = dir.path().join("output.bin");
    let get_args = store_args(&["get", &location, &output.display().to_string()]);
    ok(grid(
        &keystore,
        &get_args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert_eq!(std::fs::read(&output).unwrap(), data, "identical file back");
    let check_args = store_args(&["check", &location]);
    ok(grid(
        &keystore,
        &check_args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
}

#[test]
fn bad_input_is_refused_before_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let keystore = dir.path().join("keystore.json");
    let config = dir.path().join("store.json").display().to_string();
    // no node listens on this port: every refusal below happens first
    let rpc = format!("ws://127.0.0.1:{}", free_port());
    let base = |extra: &[&str]| -> GridRun {
        let mut args = vec!["store", "reserve", "--config", &config, "--rpc", &rpc];
        args.extend_from_slice(extra);
        grid(&keystore, &args)
    };
    let run = base(&[
        "--data", "0", "--parity", "1", "--size", "1MiB", "--from", "//Bob",
    ]);
    run.assert_code(1);
    assert!(run.stderr.contains("--data"), "{}", run.stderr);
    let run = base(&[
        "--data", "10", "--parity", "7", "--size", "1MiB", "--from", "//Bob",
    ]);
    run.assert_code(1);
    assert!(run.stderr.contains("at most 16"), "{}", run.stderr);
    let run = base(&[
        "--data", "2", "--parity", "1", "--size", "0", "--from", "//Bob",
    ]);
    run.assert_code(1);
    let run = base(&["--data", "2", "--parity", "1", "--size", "1MiB"]);
    run.assert_code(1);
    assert!(run.stderr.contains("--from"), "{}", run.stderr);
    let run = base(&[
        "--data", "2", "--parity", "1", "--size", "lots", "--from", "//Bob",
    ]);
    assert_eq!(run.code, 2, "usage error: {}", run.stderr);
    // valid input: the node is unreachable (exit 3)
    let run = base(&[
        "--data", "2", "--parity", "1", "--size", "1MiB", "--from", "//Bob",
    ]);
    run.assert_code(3);
}
