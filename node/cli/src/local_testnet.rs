//! `gridnode local-testnet`: N validator processes and one RPC node on loopback.

use anyhow::Context;
use gridchain_chain_spec::{ChainSpec, DEV_ACCOUNTS};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

#[derive(clap::Args)]
pub struct Args {
    /// Validators to start: //Alice, //Bob, … in the chain spec's order (at most as many as the
    /// spec has).
    #[arg(long, default_value_t = 4)]
    validators: usize,

    /// Chain spec (`local` has 4 validators).
    #[arg(long, default_value = "local")]
    chain: String,

    /// Parent directory of the nodes' base paths (`node-0`, … and their logs); a temporary
    /// directory, removed on exit, when absent.
    #[arg(long)]
    base_path: Option<PathBuf>,

    /// RPC port of the first node; node i uses this + i (the RPC node comes last).
    #[arg(long, default_value_t = 9944)]
    rpc_port: u16,

    /// p2p port of the first node; node i uses this + 2i (each node's transaction gossip takes
    /// the port after its own).
    #[arg(long, default_value_t = 30333)]
    port: u16,

    /// Prometheus port of the first node; node i uses this + i.
    #[arg(long, default_value_t = 9615)]
    prometheus_port: u16,

    /// Time between blocks (default: the chain spec's).
    #[arg(long)]
    block_time_ms: Option<u64>,

    /// Log filter passed to every node.
    #[arg(long, default_value = "info")]
    log: String,
}

struct NodeProcess {
    name: String,
    child: Child,
    rpc_port: u16,
    p2p: String,
    log: PathBuf,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let spec = ChainSpec::load(&args.chain)?;
    let spec_validators = spec.genesis.validators.len();
    anyhow::ensure!(
        (1..=spec_validators).contains(&args.validators),
        "chain {} has {spec_validators} validators; --validators must be 1..={spec_validators}",
        spec.id
    );
    // Validator keys are the dev accounts whose public keys the spec lists, in its order.
    let mut keys = Vec::new();
    for v in spec.genesis.validators.iter().take(args.validators) {
        let name = DEV_ACCOUNTS
            .iter()
            .find(|n| gridchain_primitives::Pair::dev(n).public() == v.address)
            .with_context(|| {
                format!(
                    "validator {} of chain {} is not a dev account; start it by hand with --key",
                    v.address, spec.id
                )
            })?;
        keys.push(*name);
    }
    let tmp = match &args.base_path {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("gridnode-testnet-")
                .tempdir()?,
        ),
    };
    let root = match (&tmp, &args.base_path) {
        (Some(t), _) => t.path().to_path_buf(),
        (None, Some(p)) => p.clone(),
        (None, None) => unreachable!("one of them is set"),
    };
    std::fs::create_dir_all(&root)?;

    // Node keys first, so every node can be given every validator's address.
    let count = args.validators + 1;
    let mut peers = Vec::new();
    for i in 0..count {
        let chain_dir = root.join(format!("node-{i}")).join("chains").join(&spec.id);
        let key = gridchain_service::load_or_create_node_key(&chain_dir)?;
        let peer_id = gridchain_consensus::peer_id_of(&key)?;
        peers.push(format!(
            "/ip4/127.0.0.1/tcp/{}/p2p/{peer_id}",
            args.port + 2 * i as u16
        ));
    }

    let exe = std::env::current_exe()?;
    let mut nodes = Vec::new();
    for i in 0..count {
        let validator = keys.get(i);
        let name = match validator {
            Some(k) => format!("validator-{}", k.to_lowercase()),
            None => "rpc".to_string(),
        };
        let log = root.join(format!("node-{i}.log"));
        let mut cmd = Command::new(&exe);
        cmd.args(["--chain", &args.chain, "--name", &name, "--log", &args.log])
            .arg("--base-path")
            .arg(root.join(format!("node-{i}")))
            .args(["--port", &(args.port + 2 * i as u16).to_string()])
            .args(["--rpc-port", &(args.rpc_port + i as u16).to_string()])
            .args([
                "--prometheus-port",
                &(args.prometheus_port + i as u16).to_string(),
            ]);
        if let Some(ms) = args.block_time_ms {
            cmd.args(["--block-time-ms", &ms.to_string()]);
        }
        if let Some(k) = validator {
            // Through the environment: a key on the command line is visible to every user.
            cmd.arg("--validator").env("GRIDNODE_KEY", format!("//{k}"));
        }
        let others: Vec<&String> = peers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p)
            .collect();
        cmd.arg("--bootnodes").args(others);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        nodes.push(NodeProcess {
            name,
            child,
            rpc_port: args.rpc_port + i as u16,
            p2p: peers[i].clone(),
            log,
        });
    }

    println!("{:<20} {:>8}  {:<24} p2p / log", "node", "pid", "rpc");
    for n in &nodes {
        println!(
            "{:<20} {:>8}  ws://127.0.0.1:{:<10} {}\n{:<56}{}",
            n.name,
            n.child.id(),
            n.rpc_port,
            n.p2p,
            "",
            n.log.display()
        );
    }
    println!("Ctrl-C stops all nodes.");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let exited = runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = crate::shutdown_signal() => return None,
                _ = tick.tick() => {
                    for n in nodes.iter_mut() {
                        if let Ok(Some(status)) = n.child.try_wait() {
                            return Some(format!("{} exited ({status}); see {}", n.name, n.log.display()));
                        }
                    }
                }
            }
        }
    });
    for n in &nodes {
        // SIGTERM lets each node finish the block it is committing.
        let _ = Command::new("kill")
            .args(["-TERM", &n.child.id().to_string()])
            .status();
    }
    for n in nodes.iter_mut() {
        let _ = n.child.wait();
    }
    drop(tmp);
    match exited {
        Some(reason) => anyhow::bail!(reason),
        None => Ok(()),
    }
}
