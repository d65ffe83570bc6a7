//! The provisioners against the real Docker daemon, the kernel's netlink and a real zdb server.
//! Every test removes what it created, also when it fails (guards run on drop).

mod common;

use common::{ensure_image, Cleanup, IMAGE};
use std::{collections::BTreeMap, net::Ipv4Addr, process::Command};
use zos_agent::provision::{
    container::{ContainerSpec, ContainerState, Containers, LABEL_RESERVATION},
    network::Networks,
    volume::Volumes,
    zdb::{NamespaceSpec, ZdbAdmin},
};

fn docker() -> bollard::Docker {
    bollard::Docker::connect_with_local_defaults().unwrap()
}

fn spec(name: &str, reservation: u64) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: IMAGE.into(),
        cpu: 1,
        memory: 64 * 1024 * 1024,
        entrypoint: "sleep 3600".into(),
        env: vec!["GREETING=hello".into()],
        mounts: vec![],
        labels: BTreeMap::from([(LABEL_RESERVATION.to_string(), reservation.to_string())]),
        restart: Default::default(),
        health_check: None,
    }
}

fn exec(container: &str, cmd: &str) -> bool {
    Command::new("docker")
        .args(["exec", container, "sh", "-c", cmd])
        .output()
        .unwrap()
        .status
        .success()
}

#[tokio::test]
async fn containers_have_limits_labels_volumes_and_report_docker_errors() {
    ensure_image();
    let node = 900_001;
    let _cleanup = Cleanup {
        agent: None,
        node_tag: Some(node.to_string()),
        bridges: vec![],
    };
    let containers = Containers::new(docker(), &node.to_string());
    let images = tempfile::tempdir().unwrap();
    let volumes = Volumes::new(docker(), &node.to_string(), images.path());

    let vol = volumes
        .ensure("gc-test-vol-900001", 16 << 20, &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(volumes.list().await.unwrap().len(), 1);
    let mut s = spec("gc-test-900001-a", 7);
    s.mounts = vec![(vol.name.clone(), "/data".into())];
    let (id, pid) = containers.create_and_start(&s).await.unwrap();
    assert!(pid > 0);
    assert!(exec(
        &id,
        "echo stored > /data/file && test \"$GREETING\" = hello"
    ));

    let inspect = Command::new("docker")
        .args(["inspect", "-f", "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.NetworkMode}} {{.HostConfig.SecurityOpt}} {{.HostConfig.Privileged}} {{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config \"max-size\"}} {{index .HostConfig.LogConfig.Config \"max-file\"}}", &id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert_eq!(
        text.trim(),
        "1000000000 67108864 none [no-new-privileges] false json-file 10m 3"
    );

    let listed = containers.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].labels.get(LABEL_RESERVATION).map(String::as_str),
        Some("7")
    );
    assert_eq!(listed[0].state, ContainerState::Running);

    containers.pause(&id).await.unwrap();
    assert_eq!(
        containers.list().await.unwrap()[0].state,
        ContainerState::Paused
    );
    containers.resume(&id).await.unwrap();

    // A missing image: Docker's own words come back.
    let mut bad = spec("gc-test-900001-bad", 8);
    bad.image = "gridchain/no-such-image:1".into();
    let err = containers.create_and_start(&bad).await.unwrap_err();
    assert!(err.0.contains("No such image"), "{err}");
    assert_eq!(
        containers.list().await.unwrap().len(),
        1,
        "a failed create leaves nothing behind"
    );

    // Every capability but the documented few is dropped, and IPv6 is off inside.
    assert!(exec(
        &id,
        "grep -q '^CapEff:.*00000000000004fb$' /proc/self/status"
    ));
    assert!(exec(
        &id,
        "grep -q 1 /proc/sys/net/ipv6/conf/all/disable_ipv6"
    ));
    containers.remove(&id).await.unwrap();
    containers.remove(&id).await.unwrap(); // idempotent
    volumes.remove(&vol.name).await.unwrap();
    assert!(containers.list().await.unwrap().is_empty());
    assert!(volumes.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn same_network_connects_other_owners_network_does_not() {
    ensure_image();
    let node = 900_002;
    let (bridge_a, bridge_b) = ("gcbrtest0a", "gcbrtest0b");
    let _cleanup = Cleanup {
        agent: None,
        node_tag: Some(node.to_string()),
        bridges: vec![bridge_a.into(), bridge_b.into()],
    };
    let containers = Containers::new(docker(), &node.to_string());
    let book = tempfile::tempdir().unwrap();
    let networks = Networks::new(&node.to_string(), &book.path().join("interfaces.json")).unwrap();
    networks.ensure_bridge(bridge_a).await.unwrap();
    networks.ensure_bridge(bridge_a).await.unwrap(); // idempotent
    networks.ensure_bridge(bridge_b).await.unwrap();
    // The host drops what a bridge sends to the host itself, and IPv6 is off on the bridge.
    let input_drop = |bridge: &str| {
        Command::new("iptables")
            .args(["-w", "-C", "INPUT", "-i", bridge, "-j", "DROP"])
            .status()
            .unwrap()
            .success()
    };
    assert!(input_drop(bridge_a));
    assert_eq!(
        std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{bridge_a}/disable_ipv6"))
            .unwrap()
            .trim(),
        "1"
    );
    assert!(networks
        .bridges()
        .await
        .unwrap()
        .contains(&bridge_a.to_string()));

    let mut ids = Vec::new();
    // Owner A: two containers on bridge A; owner B: one container on bridge B in the same range.
    for (i, (bridge, ip)) in [
        (bridge_a, [10, 201, 1, 2]),
        (bridge_a, [10, 201, 1, 3]),
        (bridge_b, [10, 201, 1, 4]),
    ]
    .into_iter()
    .enumerate()
    {
        let (id, pid) = containers
            .create_and_start(&spec(&format!("gc-test-900002-{i}"), i as u64))
            .await
            .unwrap();
        networks
            .attach(
                bridge,
                pid,
                &format!("gcvtest{i}"),
                "eth0",
                (Ipv4Addr::from(ip), 24),
                None,
            )
            .await
            .unwrap();
        ids.push(id);
    }
    assert!(exec(&ids[1], "ip addr show eth0 | grep -q 10.201.1.3/24"));
    // A listener in container 1 (owner A, same network as container 0).
    Command::new("docker")
        .args([
            "exec", "-d", &ids[1], "nc", "-ll", "-p", "7000", "-e", "echo", "pong",
        ])
        .output()
        .unwrap();
    Command::new("docker")
        .args([
            "exec", "-d", &ids[2], "nc", "-ll", "-p", "7000", "-e", "echo", "pong",
        ])
        .output()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        exec(&ids[0], "nc -w 2 10.201.1.3 7000 </dev/null | grep -q pong"),
        "same network must connect"
    );
    assert!(
        !exec(&ids[0], "nc -w 2 10.201.1.4 7000 </dev/null | grep -q pong"),
        "other owner's network must not"
    );

    for id in &ids {
        containers.remove(id).await.unwrap();
    }
    networks.remove_bridge(bridge_a).await.unwrap();
    networks.remove_bridge(bridge_b).await.unwrap();
    networks.remove_bridge(bridge_b).await.unwrap(); // idempotent
    assert!(!input_drop(bridge_a), "the bridge's rules go with it");
    assert!(!networks
        .bridges()
        .await
        .unwrap()
        .contains(&bridge_a.to_string()));
}

#[tokio::test]
async fn zdb_namespaces_are_created_protected_locked_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = zdb::ZdbConfig::new(dir.path());
    config.listen = Some("127.0.0.1:0".parse().unwrap());
    config.admin_password = Some("admin-secret".into());
    let server = zdb::Server::start(config).await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let admin = ZdbAdmin::new(&addr, "admin-secret");
    let ns = NamespaceSpec {
        name: "r1-store".into(),
        maxsize: 1 << 20,
        mode: "seq",
        password: Some("ns-pass".into()),
        public: false,
        locked: false,
    };
    admin.ensure(&ns).await.unwrap();
    admin.ensure(&ns).await.unwrap(); // idempotent
    assert_eq!(admin.list().await.unwrap(), vec!["r1-store".to_string()]);
    let info = admin.info("r1-store").await.unwrap().unwrap();
    assert_eq!(info.get("mode").map(String::as_str), Some("sequential"));

    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let denied: Result<(), _> = redis::cmd("SELECT")
        .arg("r1-store")
        .query_async(&mut conn)
        .await;
    assert!(denied.is_err(), "a private namespace needs its password");
    redis::cmd("SELECT")
        .arg("r1-store")
        .arg("ns-pass")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let key: Vec<u8> = redis::cmd("SET")
        .arg("")
        .arg("value")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(key.len(), 8);

    admin.set_locked("r1-store", true).await.unwrap();
    let refused: Result<Vec<u8>, _> = redis::cmd("SET")
        .arg("")
        .arg("more")
        .query_async(&mut conn)
        .await;
    assert!(refused.is_err(), "a locked namespace refuses writes");
    admin.set_locked("r1-store", false).await.unwrap();

    admin.remove("r1-store").await.unwrap();
    admin.remove("r1-store").await.unwrap();
    assert!(admin.list().await.unwrap().is_empty());
    assert!(admin.info("r1-store").await.unwrap().is_none());
    server.shutdown().await.unwrap();
}

/// Interface names are the agent's own allocation: two owners' networks of the same name get
/// different bridges, a key keeps its name across restarts (the book is on disk), and an
/// interface under an allocated name that this agent did not create is refused, never adopted
/// (a tenant grinding network names until a derived name collided with another tenant's bridge
/// would otherwise join that tenant's network).
#[tokio::test]
async fn interface_names_are_allocated_and_foreign_interfaces_never_adopted() {
    let node = 900_003;
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("interfaces.json");
    let networks = Networks::new(&node.to_string(), &book).unwrap();
    let (alice, bob, carol) = (
        gridchain_primitives::AccountId([1; 32]),
        gridchain_primitives::AccountId([2; 32]),
        gridchain_primitives::AccountId([3; 32]),
    );
    let a = networks.bridge_for(&alice, "net").await.unwrap();
    let b = networks.bridge_for(&bob, "net").await.unwrap();
    let c = networks.bridge_for(&carol, "net").await.unwrap();
    let _cleanup = Cleanup {
        agent: None,
        node_tag: Some(node.to_string()),
        bridges: vec![a.clone(), b.clone(), c.clone()],
    };
    assert_ne!(a, b);
    assert!(a.len() <= 15 && a.starts_with("gcbr"), "{a}");
    assert_eq!(networks.bridge_for(&alice, "net").await.unwrap(), a);
    let reopened = Networks::new(&node.to_string(), &book).unwrap();
    assert_eq!(reopened.bridge_for(&bob, "net").await.unwrap(), b);

    // Someone else creates an interface under Carol's allocated name before the agent does.
    assert!(Command::new("ip")
        .args(["link", "add", &c, "type", "bridge"])
        .status()
        .unwrap()
        .success());
    let refused = networks.ensure_bridge(&c).await.unwrap_err();
    assert!(refused.to_string().contains("not this node's"), "{refused}");
    let shown = Command::new("ip")
        .args(["-o", "link", "show", &c])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&shown.stdout).contains("gridchain node"));
    // A fresh allocation skips names that exist on the host.
    let d = networks.bridge_for(&carol, "other").await.unwrap();
    assert!(![&a, &b, &c].contains(&&d));
    networks.ensure_bridge(&a).await.unwrap();
    networks.remove_bridge(&a).await.unwrap();
}

/// A volume is a filesystem of exactly its size: writing past it fails with ENOSPC inside the
/// container, what was written survives the container, and the image goes with the volume.
#[tokio::test]
async fn a_volume_is_full_at_its_size_and_keeps_its_data() {
    ensure_image();
    let node = 900_004;
    let _cleanup = Cleanup {
        agent: None,
        node_tag: Some(node.to_string()),
        bridges: vec![],
    };
    let containers = Containers::new(docker(), &node.to_string());
    let images = tempfile::tempdir().unwrap();
    let volumes = Volumes::new(docker(), &node.to_string(), images.path());
    let name = "gc-test-vol-900004";
    let vol = volumes
        .ensure(name, 8 << 20, &BTreeMap::new())
        .await
        .unwrap();
    let image = images.path().join(format!("{name}.img"));
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 8 << 20);
    // Idempotent: a second ensure neither reformats nor fails.
    volumes
        .ensure(name, 8 << 20, &BTreeMap::new())
        .await
        .unwrap();

    let mut s = spec("gc-test-900004-a", 9);
    s.mounts = vec![(vol.name.clone(), "/data".into())];
    let (id, _) = containers.create_and_start(&s).await.unwrap();
    let out = Command::new("docker")
        .args([
            "exec",
            &id,
            "sh",
            "-c",
            "dd if=/dev/zero of=/data/big bs=1M count=16 2>&1; echo kept > /data/note",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("No space left on device"), "{text}");
    assert!(
        exec(&id, "df -k /data | awk 'NR==2 {exit !($2 < 8192)}'"),
        "the filesystem is 8 MiB"
    );
    containers.remove(&id).await.unwrap();

    // Another container on the same volume sees the data.
    let mut s = spec("gc-test-900004-b", 9);
    s.mounts = vec![(vol.name.clone(), "/data".into())];
    let (id, _) = containers.create_and_start(&s).await.unwrap();
    assert!(exec(&id, "grep -q kept /data/note"));
    containers.remove(&id).await.unwrap();

    volumes.remove(name).await.unwrap();
    assert!(!image.exists(), "the image goes with the volume");
    assert!(volumes
        .ensure("gc-test-vol-900004-tiny", 4096, &BTreeMap::new())
        .await
        .is_err());
}
