//! `grid`, the gridchain wallet.
//!
//! Keys are secret URIs (derived as documented in `gridchain_primitives::account`), kept by name
//! in a 0600 JSON keystore, encrypted with a passphrase ([`keystore`], [`passphrase`]). Everything that reads the chain or sends a transaction
//! goes through the typed JSON-RPC clients of `gridchain-rpc-api`, over WebSocket (transactions
//! are watched until final) or HTTP (polled).
//!
//! Every command prints one result on stdout: human text, or exactly one JSON document with
//! `--output json`. Errors are one line on stderr with an exit code of their own
//! ([`failure`]): 1 general, 2 usage, 3 node unreachable, 4 transaction rejected (or a node's
//! owner API refused the request), 5 call failed on chain, 6 `store check` found lost or corrupt
//! shards; `grid reservation exec` exits with the command's own code.
//!
//! `grid store …` ([`commands::store`]) stores files on zdb namespaces through the `zstor`
//! library; it needs a backend config, not a node — except `grid store reserve`
//! ([`commands::store_reserve`]), which reserves the namespaces on the grid and writes that config.

mod accounts;
mod amount;
mod cli;
mod commands;
mod deployment;
mod describe;
mod failure;
mod keystore;
mod output;
mod passphrase;
mod rpc;

use accounts::{resolve_account, KeystoreLocation};
use anyhow::Result;
use clap::Parser;
use cli::{Cli, Command};
use commands::{
    grid::{GridCommand, GridRequest},
    query::{self, BlockRef},
    staking::StakingRequest,
    transfer::Transfer,
};
use failure::{Failure, EXIT_GENERAL};
use gridchain_primitives::{AccountId, Hash};
use output::{OutputFormat, Progress, Rendered};
use rpc::{Connection, Node, NodeClient};
use std::process::ExitCode;

/// A command that needs the node, with its input already checked.
enum NodeRequest {
    Balance(AccountId),
    Transfer(Box<Transfer>),
    Block(BlockRef),
    Tx(Hash),
    Grid(Box<commands::grid::GridRequest>),
    StoreReserve(Box<commands::store_reserve::StoreReserve>),
    Staking(Box<StakingRequest>),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.output_format();
    match run(cli).await {
        Ok(rendered) => {
            rendered.print(format);
            ExitCode::SUCCESS
        }
        Err(error) => ExitCode::from(report_error(&error, format)),
    }
}

async fn run(cli: Cli) -> Result<Rendered> {
    let format = cli.output_format();
    let keystore = KeystoreLocation::new(cli.keystore);
    let request = match cli.command {
        Command::Key(command) => return commands::key::run(command, &keystore),
        Command::Store(cli::StoreArgs {
            command: cli::StoreCommand::Reserve(args),
            config,
            ..
        }) => NodeRequest::StoreReserve(Box::new(commands::store_reserve::StoreReserve::prepare(
            args,
            commands::store::config_path(config)?,
            &keystore,
        )?)),
        Command::Store(args) => return commands::store::run(args, cli.output),
        Command::Balance { account } => NodeRequest::Balance(resolve_account(&account, &keystore)?),
        Command::Transfer(args) => {
            NodeRequest::Transfer(Box::new(Transfer::prepare(&args, &keystore)?))
        }
        Command::Block { block } => NodeRequest::Block(BlockRef::parse(block.as_deref())?),
        Command::Tx { hash } => NodeRequest::Tx(query::parse_tx_hash(&hash)?),
        Command::Twin(c) => grid_request(GridCommand::Twin(c), &keystore)?,
        Command::Farm(c) => grid_request(GridCommand::Farm(c), &keystore)?,
        Command::Node(c) => grid_request(GridCommand::Node(c), &keystore)?,
        Command::Reserve(args) => grid_request(GridCommand::Reserve(args), &keystore)?,
        Command::Reservation(c) => grid_request(GridCommand::Reservation(c), &keystore)?,
        Command::Staking(c) => {
            NodeRequest::Staking(Box::new(StakingRequest::prepare(c, &keystore)?))
        }
    };
    let url = cli.rpc.as_str();
    match rpc::connect(url).await? {
        Connection::Ws(client) => {
            let node = Node {
                client: &client,
                url,
                can_watch: true,
            };
            execute(&node, request, format).await
        }
        Connection::Http(client) => {
            let node = Node {
                client: &client,
                url,
                can_watch: false,
            };
            execute(&node, request, format).await
        }
    }
}

async fn execute<C: NodeClient>(
    node: &Node<'_, C>,
    request: NodeRequest,
    format: OutputFormat,
) -> Result<Rendered> {
    match request {
        NodeRequest::Balance(account) => query::balance(node, account).await,
        NodeRequest::Transfer(transfer) => transfer.execute(node, Progress::new(format)).await,
        NodeRequest::Block(which) => query::block(node, which).await,
        NodeRequest::Tx(hash) => query::tx(node, hash).await,
        NodeRequest::Grid(request) => request.execute(node, format).await,
        NodeRequest::StoreReserve(request) => request.execute(node, format).await,
        NodeRequest::Staking(request) => request.execute(node, Progress::new(format)).await,
    }
}

fn grid_request(command: GridCommand, keystore: &KeystoreLocation) -> Result<NodeRequest> {
    GridRequest::prepare(command, keystore).map(|r| NodeRequest::Grid(Box::new(r)))
}

/// Prints `error` as one line on stderr (and, in JSON mode, as the one JSON document on stdout
/// unless the failure carries its own report); returns the exit code.
fn report_error(error: &anyhow::Error, format: OutputFormat) -> u8 {
    let failure = error.downcast_ref::<Failure>();
    let code = failure.map_or(EXIT_GENERAL, Failure::exit_code);
    if let Some(Failure::CommandExited { code }) = failure {
        return *code;
    }
    let message = format!("{error:#}").replace('\n', " ");
    match failure {
        Some(
            Failure::CallFailed { report, .. }
            | Failure::StoreUnhealthy { report, .. }
            | Failure::WorkloadFailed { report, .. },
        ) => report.print(format),
        _ if format == OutputFormat::Json => {
            let mut document =
                serde_json::json!({ "error": { "message": message, "exitCode": code } });
            if let Some(Failure::Rejected { code: rpc_code, .. }) = failure {
                document["error"]["rpcCode"] = serde_json::json!(rpc_code);
            }
            Rendered::new(document, "").print(format);
        }
        _ => {}
    }
    eprintln!("error: {message}");
    code
}
