//! `grid reservation logs|exec|events`: a reservation's workloads, straight from the node that
//! runs them, through its owner API (`zos-owner-api`).
//!
//! The chain says where to go and whom to expect: the reservation names its node, the node its
//! account key and its twin, the twin the endpoint. The channel is refused unless the endpoint
//! proves that account key; the request is signed by the owner's key, for this chain, this node
//! and this reservation, once.

use crate::{
    accounts::{resolve_signer, KeystoreLocation},
    failure::Failure,
    output::Rendered,
    rpc::{Node, NodeClient},
};
use anyhow::{anyhow, bail, Result};
use gridchain_primitives::Pair;
use gridchain_rpc_api::GridApiClient;
use gridchain_runtime::reservations::{ReservationId, WorkloadSpec};
use std::{
    io::{IsTerminal, Read, Write},
    time::{Duration, UNIX_EPOCH},
};
use zos_owner_api::{
    Action, ClientError, ClientFrame, EventRecord, ExecQuery, LogsQuery, OutputStream, Request,
    ServerFrame, Session,
};

/// What to ask the node, with the owner's key.
pub struct OwnerRequest {
    signer: Pair,
    id: ReservationId,
    what: What,
}

pub enum What {
    Logs {
        workload: Option<String>,
        follow: bool,
        tail: Option<u32>,
        since_secs: Option<u64>,
    },
    Exec {
        workload: String,
        cmd: Vec<String>,
        tty: bool,
    },
    Events,
}

impl OwnerRequest {
    pub fn prepare(
        id: ReservationId,
        what: What,
        from: Option<&str>,
        keystore: &KeystoreLocation,
    ) -> Result<Self> {
        if let What::Exec { cmd, tty, .. } = &what {
            if cmd.is_empty() {
                bail!("give the command after `--` (e.g. `-- sh`)");
            }
            if *tty && !std::io::stdin().is_terminal() {
                bail!("-t needs a terminal on stdin");
            }
        }
        Ok(OwnerRequest {
            signer: resolve_signer(from, keystore)?,
            id,
            what,
        })
    }

    pub async fn execute<C: NodeClient>(self, node: &Node<'_, C>) -> Result<Rendered> {
        let reservation = node
            .read(GridApiClient::reservation(node.client, self.id, None))
            .await?
            .ok_or_else(|| anyhow!("no reservation {}", self.id))?;
        let node_id = reservation.node_id;
        let info = node
            .read(GridApiClient::node(node.client, node_id, None))
            .await?
            .ok_or_else(|| {
                anyhow!(
                    "reservation {} is on node {node_id}, which is gone",
                    self.id
                )
            })?;
        let twin = node
            .read(GridApiClient::twin(node.client, info.node.twin_id, None))
            .await?
            .ok_or_else(|| anyhow!("node {node_id} has no twin"))?;
        if twin.endpoint.is_empty() {
            bail!("node {node_id} publishes no owner API endpoint (its agent runs without --owner-api-listen)");
        }
        let genesis = super::submit::genesis_hash(node).await?;
        let containers: Vec<String> = reservation
            .deployment
            .workloads
            .iter()
            .filter(|w| matches!(w.spec, WorkloadSpec::Container { .. }))
            .map(|w| w.name.clone())
            .collect();
        let action = match &self.what {
            What::Logs {
                workload,
                follow,
                tail,
                since_secs,
            } => Action::Logs(LogsQuery {
                // One container: named, so its lines come without a prefix.
                workload: workload.clone().or_else(|| match containers.as_slice() {
                    [only] => Some(only.clone()),
                    _ => None,
                }),
                follow: *follow,
                tail: *tail,
                since_secs: *since_secs,
            }),
            What::Exec { workload, cmd, tty } => Action::Exec(ExecQuery {
                workload: workload.clone(),
                cmd: cmd.clone(),
                tty: *tty,
                size: if *tty { terminal::size() } else { None },
            }),
            What::Events => Action::Events,
        };
        let prefixed = matches!(&action, Action::Logs(q) if q.workload.is_none());
        let request = Request::new(genesis, node_id, self.id, action).sign(&self.signer);
        let session = zos_owner_api::connect(&twin.endpoint, &info.node.account, &request)
            .await
            .map_err(|e| failure(node_id, e))?;
        match self.what {
            What::Logs { .. } => {
                print_logs(session, prefixed, node_id).await?;
                Ok(Rendered::streamed())
            }
            What::Exec { tty, .. } => {
                let code = exec(session, tty, node_id).await?;
                if code != 0 {
                    return Err(Failure::CommandExited {
                        code: u8::try_from(code).unwrap_or(1).max(1),
                    }
                    .into());
                }
                Ok(Rendered::streamed())
            }
            What::Events => render_events(session, node_id).await,
        }
    }
}

fn failure(node_id: u32, error: ClientError) -> anyhow::Error {
    match error {
        ClientError::Unreachable { endpoint, reason } => Failure::Unreachable {
            url: endpoint,
            reason,
        }
        .into(),
        ClientError::Refused { code, message } => Failure::NodeRefused {
            node: node_id,
            code: code.number(),
            message,
        }
        .into(),
        other => anyhow!("node {node_id}: {other}"),
    }
}

/// A frame the answer should not carry at this point, or the end of the channel.
fn unexpected(node_id: u32, frame: Result<ServerFrame, ClientError>) -> anyhow::Error {
    match frame {
        Ok(ServerFrame::Failed { message }) => anyhow!("node {node_id}: {message}"),
        Ok(ServerFrame::Refused { code, message }) => Failure::NodeRefused {
            node: node_id,
            code: code.number(),
            message,
        }
        .into(),
        Ok(other) => anyhow!("node {node_id} sent an unexpected frame: {other:?}"),
        Err(e) => failure(node_id, e),
    }
}

/// Writes a chunk of output where it came from; false once stdout is closed
/// (`grid reservation logs 7 --follow | head -1`): there is no one left to read.
fn write_output(stream: OutputStream, data: &[u8]) -> bool {
    let written = match stream {
        OutputStream::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(data).and_then(|()| out.flush())
        }
        OutputStream::Stderr => {
            let mut err = std::io::stderr().lock();
            err.write_all(data).and_then(|()| err.flush())
        }
    };
    !matches!(written, Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn print_logs(mut session: Session, prefixed: bool, node_id: u32) -> Result<()> {
    loop {
        match session.recv().await {
            Ok(ServerFrame::Output {
                workload,
                stream,
                data,
            }) => {
                let open = if prefixed {
                    let mut line = format!("{workload} | ").into_bytes();
                    line.extend_from_slice(&data);
                    write_output(stream, &line)
                } else {
                    write_output(stream, &data)
                };
                if !open {
                    return Ok(());
                }
            }
            Ok(ServerFrame::End) => return Ok(()),
            other => return Err(unexpected(node_id, other)),
        }
    }
}

/// Runs the command; returns its exit code.
async fn exec(session: Session, tty: bool, node_id: u32) -> Result<i64> {
    let (mut reader, mut writer) = session.split();
    // Raw mode for as long as the command runs: keys go to it as typed (Ctrl-C included).
    let _raw = if tty {
        Some(terminal::RawMode::enter()?)
    } else {
        None
    };
    // Stdin on its own thread: a blocking read must not keep the process alive at the end.
    let (input_tx, mut input_rx) = tokio::sync::mpsc::channel::<Option<Vec<u8>>>(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) | Err(_) => {
                    let _ = input_tx.blocking_send(None);
                    return;
                }
                Ok(n) => {
                    if input_tx.blocking_send(Some(buffer[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut resized = terminal::resizes(tty)?;
    let send_input = async move {
        loop {
            tokio::select! {
                chunk = input_rx.recv() => match chunk {
                    Some(Some(data)) => {
                        if writer.send(&ClientFrame::Stdin(data)).await.is_err() {
                            return;
                        }
                    }
                    // End of input: the command sees end of file, the output goes on.
                    Some(None) | None => {
                        let _ = writer.send(&ClientFrame::CloseStdin).await;
                        // Keep the writer (and resizes) alive until the answer ends.
                        loop {
                            resized.recv().await;
                            if let Some((cols, rows)) = terminal::size() {
                                let _ = writer.send(&ClientFrame::Resize { cols, rows }).await;
                            }
                        }
                    }
                },
                () = resized.recv() => {
                    if let Some((cols, rows)) = terminal::size() {
                        let _ = writer.send(&ClientFrame::Resize { cols, rows }).await;
                    }
                }
            }
        }
    };
    let receive = async {
        loop {
            match reader.recv().await {
                Ok(ServerFrame::Output { stream, data, .. }) => {
                    write_output(stream, &data);
                }
                Ok(ServerFrame::Exited { code }) => return Ok(code),
                other => return Err(unexpected(node_id, other)),
            }
        }
    };
    tokio::pin!(send_input);
    tokio::select! {
        code = receive => code,
        () = &mut send_input => Err(anyhow!("node {node_id}: the channel closed")),
    }
}

async fn render_events(mut session: Session, node_id: u32) -> Result<Rendered> {
    let mut events: Vec<EventRecord> = Vec::new();
    loop {
        match session.recv().await {
            Ok(ServerFrame::Event(event)) => events.push(event),
            Ok(ServerFrame::End) => break,
            other => return Err(unexpected(node_id, other)),
        }
    }
    let mut text = String::new();
    for e in &events {
        let at = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(e.at_ms));
        text.push_str(&format!(
            "{at}  {:<16} {:<10} {}\n",
            e.workload, e.kind, e.message
        ));
    }
    if events.is_empty() {
        text.push_str("no events\n");
    }
    Ok(Rendered::new(serde_json::to_value(&events)?, text))
}

/// The local terminal: raw mode, size, resizes (TTY exec only).
mod terminal {
    use anyhow::{Context, Result};
    use rustix::termios::{self, OptionalActions, Termios};

    /// The terminal's (cols, rows), if stdout is one.
    pub fn size() -> Option<(u16, u16)> {
        termios::tcgetwinsize(std::io::stdout())
            .ok()
            .filter(|size| size.ws_col > 0)
            .map(|size| (size.ws_col, size.ws_row))
    }

    /// Stdin in raw mode until dropped (restored even when the command fails).
    pub struct RawMode(Termios);

    impl RawMode {
        pub fn enter() -> Result<RawMode> {
            let saved =
                termios::tcgetattr(std::io::stdin()).context("cannot read the terminal's mode")?;
            let mut raw = saved.clone();
            raw.make_raw();
            termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &raw)
                .context("cannot set the terminal to raw mode")?;
            Ok(RawMode(saved))
        }
    }

    impl Drop for RawMode {
        fn drop(&mut self) {
            let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.0);
        }
    }

    /// Terminal size changes (SIGWINCH); never fires without a TTY.
    pub struct Resizes(Option<tokio::signal::unix::Signal>);

    impl Resizes {
        pub async fn recv(&mut self) {
            match &mut self.0 {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
    }

    pub fn resizes(tty: bool) -> Result<Resizes> {
        Ok(Resizes(if tty {
            Some(tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::window_change(),
            )?)
        } else {
            None
        }))
    }
}
