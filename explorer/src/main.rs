//! `grid-explorer`: indexes a gridchain node's final blocks and serves the explorer.
//!
//! ```text
//! grid-explorer --rpc ws://127.0.0.1:9944 --db explorer.sqlite        # index and serve on :8080
//! grid-explorer reindex --rpc ws://127.0.0.1:9944 --db explorer.sqlite # rebuild from genesis
//! ```

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::{net::SocketAddr, path::PathBuf};

#[derive(Parser)]
#[command(name = "grid-explorer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Follow the node and serve the web UI (the default).
    Serve(ServeArgs),
    /// Delete the index and rebuild it from genesis up to the node's final block, then exit.
    Reindex(NodeArgs),
}

#[derive(Args, Clone)]
struct NodeArgs {
    /// The node's WebSocket JSON-RPC endpoint.
    #[arg(long, env = "GRID_RPC", default_value = "ws://127.0.0.1:9944")]
    rpc: String,
    /// The SQLite index file.
    #[arg(long, env = "GRID_EXPLORER_DB", default_value = "grid-explorer.sqlite")]
    db: PathBuf,
}

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Address of the web server.
    #[arg(long, default_value_t = explorer::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// If the index belongs to another chain, rebuild it instead of stopping the indexer.
    #[arg(long)]
    rebuild_on_mismatch: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Reindex(node)) => {
            let report = explorer::reindex(&node.rpc, node.db.clone())
                .await
                .with_context(|| format!("reindexing {} from {}", node.db.display(), node.rpc))?;
            let secs = report.elapsed.as_secs_f64();
            println!(
                "indexed {} blocks in {:.1} s ({:.0} blocks/s) into {}",
                report.blocks,
                secs,
                report.blocks as f64 / secs.max(1e-9),
                node.db.display()
            );
            Ok(())
        }
        Some(Command::Serve(args)) => run(args).await,
        None => run(cli.serve).await,
    }
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = explorer::Config {
        rpc_url: args.node.rpc,
        db_path: args.node.db,
        listen: args.listen,
        rebuild_on_mismatch: args.rebuild_on_mismatch,
    };
    let handle = explorer::serve(config).await?;
    println!("explorer on http://{}", handle.local_addr());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    handle.stop().await;
    Ok(())
}
