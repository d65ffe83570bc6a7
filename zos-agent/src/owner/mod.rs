//! The owner API's server: logs, exec and events of a reservation, for its owner only.
//!
//! The protocol, the signed request and the Noise channel are in `zos-owner-api`; here:
//! - [`OwnerApi::serve`]: accepts TCP connections (at most [`MAX_CONNECTIONS`] at once and
//!   [`MAX_CONNECTIONS_PER_SOURCE`] per source address; the rest are closed at once), runs the Noise handshake as the node's account key, reads one
//!   request (handshake and request within [`REQUEST_DEADLINE`], ≤ 16 KiB), checks it
//!   ([`check`]), and answers.
//! - Logs and exec streams count against the owner ([`MAX_STREAMS_PER_OWNER`] at once), so one
//!   tenant cannot hold every Docker stream of the node.
//! - Logs: Docker's log stream of each named container (tail, since, follow), chunk by chunk; a
//!   follow ends when the client hangs up or the container goes.
//! - Exec: a Docker exec in the named container (never privileged, the container's own user),
//!   stdin attached, a TTY on request with resizes; the exit code ends the answer. A command the
//!   client leaves behind (it hung up) runs on inside the container, as with `docker exec`.
//! - Events: the reservation's [`events::EventLog`].

pub mod check;
pub mod events;

use bollard::{
    container::LogOutput,
    exec::{StartExecOptions, StartExecResults},
    models::ExecConfig,
    query_parameters::{LogsOptions, ResizeExecOptions},
    Docker,
};
use check::{ReplayGuard, Target};
use events::EventLog;
use futures::{AsyncReadExt, FutureExt, StreamExt};
use gridchain_primitives::{AccountId, Hash, Pair};
use gridchain_rpc_api::grid::NodeSnapshot;
use std::{
    collections::HashMap,
    hash::Hash as StdHash,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{io::AsyncWriteExt as _, net::TcpListener, sync::watch, sync::Semaphore};
use zos_owner_api::{
    channel::{self, Channel},
    request::now_ms,
    wire::{self, FrameError, CHUNK, MAX_DATA_FRAME, MAX_REQUEST_FRAME},
    Action, ClientFrame, ExecQuery, LogsQuery, OutputStream, RefusalCode, ServerFrame,
    SignedRequest,
};

/// Connections served at once; more are closed on arrival.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections one source address may hold at once (of [`MAX_CONNECTIONS`]): one address
/// cannot take every slot with connections that never finish their handshake.
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 16;
/// Logs and exec streams one owner may hold open at once.
pub const MAX_STREAMS_PER_OWNER: usize = 8;
/// From accept to a complete request.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

type Reader = futures::io::ReadHalf<Channel>;
type Writer = futures::io::WriteHalf<Channel>;

pub struct OwnerApi {
    identity: channel::Identity,
    genesis: Hash,
    node_id: u32,
    node_tag: String,
    docker: Docker,
    /// The last verified final snapshot of this node (published by the follow loop).
    snapshot: watch::Receiver<Option<Arc<NodeSnapshot>>>,
    events: EventLog,
    replay: ReplayGuard,
    connections: Arc<Semaphore>,
    /// Connections per source address (held for the connection's life).
    sources: Arc<Counted<IpAddr>>,
    /// Logs and exec streams per owner.
    streams: Arc<Counted<AccountId>>,
}

/// At most `max` holders per key at once; a [`Slot`] is released when dropped.
struct Counted<K: Eq + StdHash + Clone> {
    max: usize,
    held: Mutex<HashMap<K, usize>>,
}

struct Slot<K: Eq + StdHash + Clone> {
    counted: Arc<Counted<K>>,
    key: K,
}

impl<K: Eq + StdHash + Clone> Counted<K> {
    fn new(max: usize) -> Arc<Counted<K>> {
        Arc::new(Counted {
            max,
            held: Mutex::new(HashMap::new()),
        })
    }

    fn take(self: &Arc<Self>, key: K) -> Option<Slot<K>> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(key.clone()).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            counted: self.clone(),
            key,
        })
    }
}

impl<K: Eq + StdHash + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut held = self.counted.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

impl OwnerApi {
    pub fn new(
        node_key: &Pair,
        genesis: Hash,
        node_id: u32,
        node_tag: String,
        docker: Docker,
        snapshot: watch::Receiver<Option<Arc<NodeSnapshot>>>,
        events: EventLog,
    ) -> OwnerApi {
        OwnerApi {
            identity: channel::keypair_of(node_key),
            genesis,
            node_id,
            node_tag,
            docker,
            snapshot,
            events,
            replay: ReplayGuard::default(),
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            sources: Counted::new(MAX_CONNECTIONS_PER_SOURCE),
            streams: Counted::new(MAX_STREAMS_PER_OWNER),
        }
    }

    /// Serves connections on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (socket, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "owner API: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                tracing::debug!(%peer, "owner API: too many connections; closed");
                continue;
            };
            let Some(source) = self.sources.take(peer.ip()) else {
                tracing::debug!(%peer, "owner API: too many connections from this address; closed");
                continue;
            };
            socket.set_nodelay(true).ok();
            let api = self.clone();
            tokio::spawn(async move {
                let _held = (permit, source);
                api.connection(socket, peer).await;
            });
        }
    }

    async fn connection(&self, socket: tokio::net::TcpStream, peer: std::net::SocketAddr) {
        let opened = tokio::time::timeout(REQUEST_DEADLINE, async {
            let mut channel = channel::accept(socket, &self.identity)
                .await
                .map_err(|e| e.to_string())?;
            let request =
                wire::read_frame::<_, SignedRequest>(&mut channel, MAX_REQUEST_FRAME).await;
            Ok::<_, String>((channel, request))
        })
        .await;
        let (mut channel, request) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "owner API: handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "owner API: no request in time");
                return;
            }
        };
        let request = match request {
            Ok(request) => request,
            Err(e) => {
                let _ = refuse(&mut channel, RefusalCode::BadRequest, e.to_string()).await;
                return;
            }
        };
        let snapshot = self.snapshot.borrow().clone();
        let target = match check::check(
            &request,
            &self.genesis,
            self.node_id,
            snapshot.as_deref(),
            &self.replay,
            now_ms(),
        ) {
            Ok(target) => target,
            Err(refusal) => {
                // Debug, not info: anyone who completes a handshake can cause one.
                tracing::debug!(%peer, signer = %request.signer, reservation = request.request.reservation, code = ?refusal.code, message = %refusal.message, "owner API: refused");
                let _ = refuse(&mut channel, refusal.code, refusal.message).await;
                return;
            }
        };
        let action = request.request.action;
        let _slot = match &action {
            Action::Events => None,
            Action::Logs(_) | Action::Exec(_) => match self.streams.take(target.owner) {
                Some(slot) => Some(slot),
                None => {
                    let _ = refuse(
                        &mut channel,
                        RefusalCode::Busy,
                        format!("at most {MAX_STREAMS_PER_OWNER} logs or exec streams per owner at once"),
                    )
                    .await;
                    return;
                }
            },
        };
        tracing::info!(%peer, reservation = target.reservation, action = action_name(&action), "owner API: accepted");
        if wire::write_frame(&mut channel, &ServerFrame::Accepted)
            .await
            .is_err()
        {
            return;
        }
        let (reader, mut writer) = channel.split();
        let outcome = match action {
            Action::Logs(query) => self.logs(&target, query, reader, &mut writer).await,
            Action::Exec(query) => self.exec(&target, query, reader, &mut writer).await,
            Action::Events => self.send_events(&target, &mut writer).await,
        };
        match outcome {
            Ok(()) => {}
            // The client hung up: nothing to tell anyone.
            Err(Ended::ClientGone) => {}
            Err(Ended::Failed(message)) => {
                let _ = wire::write_frame(&mut writer, &ServerFrame::Failed { message }).await;
            }
        }
    }

    fn container(&self, target: &Target, workload: &str) -> String {
        crate::kinds::container_name(&self.node_tag, target.reservation, workload)
    }

    async fn logs(
        &self,
        target: &Target,
        query: LogsQuery,
        mut reader: Reader,
        writer: &mut Writer,
    ) -> Result<(), Ended> {
        let options = LogsOptions {
            follow: query.follow,
            stdout: true,
            stderr: true,
            since: query
                .since_secs
                .map_or(0, |s| i32::try_from(s).unwrap_or(i32::MAX)),
            until: 0,
            timestamps: false,
            tail: query
                .tail
                .map_or_else(|| "all".to_string(), |n| n.to_string()),
        };
        let streams = target.containers.iter().map(|workload| {
            let name = self.container(target, workload);
            let workload = workload.clone();
            self.docker
                .logs(&name, Some(options.clone()))
                .map(move |item| (workload.clone(), item))
                .boxed()
        });
        let mut merged = futures::stream::select_all(streams);
        // The client sends nothing after its request: a read that ends means it hung up.
        let mut hung_up = Box::pin(async move {
            let mut byte = [0u8; 1];
            let _ = reader.read(&mut byte).await;
        });
        // Output that is ready at once goes out together, up to a chunk per frame (Docker
        // hands over one line at a time; a frame and a flush per line would cost more than the
        // line). Nothing waits: the batch is sent as soon as nothing more is ready.
        let mut batch: Option<(String, OutputStream, Vec<u8>)> = None;
        loop {
            let next = match merged.next().now_or_never() {
                Some(next) => next,
                None => {
                    if let Some((workload, stream, data)) = batch.take() {
                        send_output(writer, &workload, stream, &data).await?;
                    }
                    tokio::select! {
                        next = merged.next() => next,
                        () = &mut hung_up => return Err(Ended::ClientGone),
                    }
                }
            };
            let Some((workload, item)) = next else { break };
            let output = match item {
                Ok(output) => output,
                Err(e) => {
                    if let Some((workload, stream, data)) = batch.take() {
                        send_output(writer, &workload, stream, &data).await?;
                    }
                    return Err(Ended::Failed(format!(
                        "logs of {workload}: {}",
                        docker_words(&e)
                    )));
                }
            };
            let (stream, data) = split_output(output);
            match &mut batch {
                Some((w, s, buffer))
                    if *w == workload && *s == stream && buffer.len() + data.len() <= CHUNK =>
                {
                    buffer.extend_from_slice(&data)
                }
                _ => {
                    if let Some((w, s, buffer)) = batch.replace((workload, stream, data.to_vec())) {
                        send_output(writer, &w, s, &buffer).await?;
                    }
                }
            }
        }
        if let Some((workload, stream, data)) = batch.take() {
            send_output(writer, &workload, stream, &data).await?;
        }
        send(writer, &ServerFrame::End).await
    }

    async fn exec(
        &self,
        target: &Target,
        query: ExecQuery,
        mut reader: Reader,
        writer: &mut Writer,
    ) -> Result<(), Ended> {
        let name = self.container(target, &query.workload);
        let config = ExecConfig {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(query.tty),
            cmd: Some(query.cmd.clone()),
            privileged: Some(false),
            console_size: query
                .size
                .filter(|_| query.tty)
                .map(|(cols, rows)| vec![usize::from(rows), usize::from(cols)]),
            ..Default::default()
        };
        let exec_id = match self.docker.create_exec(&name, config).await {
            Ok(created) => created.id,
            Err(e) => {
                let _ = send(
                    writer,
                    &ServerFrame::Refused {
                        code: RefusalCode::Unavailable,
                        message: format!("cannot run in {}: {}", query.workload, docker_words(&e)),
                    },
                )
                .await;
                return Ok(());
            }
        };
        let started = self
            .docker
            .start_exec(
                &exec_id,
                Some(StartExecOptions {
                    detach: false,
                    tty: query.tty,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(|e| {
                Ended::Failed(format!("cannot start the command: {}", docker_words(&e)))
            })?;
        let StartExecResults::Attached {
            mut output,
            mut input,
        } = started
        else {
            return Err(Ended::Failed("Docker detached the command".into()));
        };
        // The size asked for, once the TTY exists (Docker applies `console_size` only on some API
        // versions; a resize works on all).
        if let (true, Some((cols, rows))) = (query.tty, query.size) {
            let size = ResizeExecOptions {
                h: i32::from(rows),
                w: i32::from(cols),
            };
            let _ = self.docker.resize_exec(&exec_id, size).await;
        }
        self.events.record(
            target.reservation,
            &query.workload,
            "exec",
            &format!("{} (tty: {})", query.cmd.join(" "), query.tty),
        );
        // Input: the client's frames to the command's stdin (and resizes).
        let docker = self.docker.clone();
        let input_exec_id = exec_id.clone();
        let pump_input = async move {
            loop {
                match wire::read_frame::<_, ClientFrame>(&mut reader, MAX_DATA_FRAME).await {
                    Ok(ClientFrame::Stdin(data)) => {
                        if input.write_all(&data).await.is_err() || input.flush().await.is_err() {
                            return Input::CommandClosed;
                        }
                    }
                    Ok(ClientFrame::CloseStdin) => {
                        let _ = input.shutdown().await;
                    }
                    Ok(ClientFrame::Resize { cols, rows }) => {
                        let _ = docker
                            .resize_exec(
                                &input_exec_id,
                                ResizeExecOptions {
                                    h: i32::from(rows),
                                    w: i32::from(cols),
                                },
                            )
                            .await;
                    }
                    Err(_) => return Input::ClientGone,
                }
            }
        };
        let pump_output = async {
            while let Some(item) = output.next().await {
                match item {
                    Ok(chunk) => {
                        let (stream, data) = split_output(chunk);
                        send_output(writer, &query.workload, stream, &data).await?;
                    }
                    Err(e) => return Err(Ended::Failed(docker_words(&e))),
                }
            }
            Ok(())
        };
        // The command's output ending (it exited) ends the answer. The client hanging up ends
        // it too (the command runs on, as with `docker exec`); the command closing its stdin
        // does not.
        {
            tokio::pin!(pump_input, pump_output);
            tokio::select! {
                done = &mut pump_output => done?,
                input = &mut pump_input => match input {
                    Input::ClientGone => return Err(Ended::ClientGone),
                    Input::CommandClosed => pump_output.await?,
                },
            }
        }
        let code = self
            .docker
            .inspect_exec(&exec_id)
            .await
            .ok()
            .and_then(|i| i.exit_code)
            .unwrap_or(-1);
        send(writer, &ServerFrame::Exited { code }).await
    }

    async fn send_events(&self, target: &Target, writer: &mut Writer) -> Result<(), Ended> {
        for event in self.events.read(target.reservation) {
            send(writer, &ServerFrame::Event(event)).await?;
        }
        send(writer, &ServerFrame::End).await
    }
}

/// How the input side of an exec ended.
enum Input {
    ClientGone,
    CommandClosed,
}

/// Why an answer ended early.
enum Ended {
    ClientGone,
    Failed(String),
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Logs(_) => "logs",
        Action::Exec(_) => "exec",
        Action::Events => "events",
    }
}

fn split_output(output: LogOutput) -> (OutputStream, bytes::Bytes) {
    match output {
        LogOutput::StdErr { message } => (OutputStream::Stderr, message),
        LogOutput::StdOut { message }
        | LogOutput::Console { message }
        | LogOutput::StdIn { message } => (OutputStream::Stdout, message),
    }
}

/// Docker's own words for an error (its message, not the HTTP wrapping).
fn docker_words(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

async fn send(writer: &mut Writer, frame: &ServerFrame) -> Result<(), Ended> {
    wire::write_frame(writer, frame)
        .await
        .map_err(|_| Ended::ClientGone)
}

async fn send_output(
    writer: &mut Writer,
    workload: &str,
    stream: OutputStream,
    data: &[u8],
) -> Result<(), Ended> {
    for chunk in data.chunks(CHUNK) {
        send(
            writer,
            &ServerFrame::Output {
                workload: workload.to_string(),
                stream,
                data: chunk.to_vec(),
            },
        )
        .await?;
    }
    Ok(())
}

async fn refuse(
    channel: &mut Channel,
    code: RefusalCode,
    message: String,
) -> Result<(), FrameError> {
    wire::write_frame(channel, &ServerFrame::Refused { code, message }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_max_slots_and_gets_them_back_when_dropped() {
        let sources = Counted::<IpAddr>::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = sources.take(a).unwrap();
        let _second = sources.take(a).unwrap();
        assert!(sources.take(a).is_none(), "a third slot for one key");
        let _other = sources.take(b).unwrap();
        drop(first);
        let _again = sources.take(a).expect("a dropped slot comes back");
        drop((_second, _other, _again));
        assert!(
            sources.held.lock().unwrap().is_empty(),
            "no key left behind"
        );
    }
}
