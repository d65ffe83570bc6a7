//! Network side: listeners, per-connection loops, background maintenance
//! and graceful shutdown.
//!
//! A connection loop reads what the socket has, runs every complete request
//! in the buffer (consecutive `SET`/`GET`/`DEL` under one namespace lock,
//! writers of a namespace taking turns asynchronously), commits the
//! namespaces those requests wrote to, then sends all replies at once. A
//! commit first lets the other ready connections run, so one write syscall
//! (plus one fsync under `--sync`) covers the records of all of them.
//! Storage calls are short and synchronous; compaction and fsync under
//! `--sync` run on the blocking pool.
//!
//! Timeouts: a connection is closed when no request completed for the idle
//! timeout, when a partially received request is not complete within the
//! frame timeout, or when a reply is not taken by the client within the idle
//! timeout. Both input timers count from complete requests, never from
//! bytes, so trickling a request in byte by byte keeps nothing alive.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::auth_limit::Source;
use crate::commands::{Deferred, Session, Shared};
use crate::config::{Durability, ZdbConfig, MAX_DATASIZE};
use crate::error::StoreError;
use crate::resp::{reply, Limits, ProtocolError, RequestParser};
use crate::storage::{EngineConfig, Namespace, Store};

/// Replies are sent once this much is queued, even mid-batch, so a pipeline
/// of large GETs cannot pile up unbounded output.
const OUTPUT_FLUSH_BYTES: usize = 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// Requests parsed ahead of running them: bounds what a connection's parsed
/// requests take (a 6-byte inline `PING` becomes a ~70-byte request).
const MAX_PARSED_REQUESTS: usize = 1024;
/// Connections get this long to finish their current batch on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why a server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {what}: {source}")]
    Listen {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("storage task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// A running zdb server. Dropping it without [`Server::shutdown`] also stops
/// the listeners and connections, but skips the final write-out and fsync.
pub struct Server {
    shared: Arc<Shared>,
    local_addr: Option<SocketAddr>,
    socket: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// Opens (and repairs) the storage, binds the listeners and starts serving.
    pub async fn start(config: ZdbConfig) -> Result<Server, ServerError> {
        if config.datasize == 0 || config.datasize > MAX_DATASIZE {
            return Err(ServerError::Config(format!(
                "datasize must be between 1 and {MAX_DATASIZE} bytes"
            )));
        }
        if config.auth_max_failures_per_connection == 0 || config.auth_max_failures_per_source == 0
        {
            return Err(ServerError::Config(
                "the limits on failed password attempts must be at least 1".into(),
            ));
        }
        if config.listen.is_none() && config.socket.is_none() {
            return Err(ServerError::Config(
                "neither a TCP address nor a Unix socket to listen on".into(),
            ));
        }
        let engine = EngineConfig {
            datasize: config.datasize,
            durability: config.durability,
            forced_mode: config.mode,
            default_maxsize: config.default_maxsize,
            default_namespace_maxsize: config.default_namespace_maxsize,
            default_namespace_password: match (config.protect, &config.admin_password) {
                (false, _) => None,
                (true, Some(password)) => Some(password.clone()),
                (true, None) => {
                    return Err(ServerError::Config(
                        "protected mode only works with an admin password".into(),
                    ))
                }
            },
        };
        let (data, index) = (config.data_dir.clone(), config.index_dir.clone());
        let cache_bytes = config.cache_bytes;
        let store =
            tokio::task::spawn_blocking(move || Store::open(&data, &index, engine, cache_bytes))
                .await??;
        let shared = Arc::new(Shared::new(store, config.clone()));
        let (shutdown, _) = watch::channel(false);
        let mut tasks = JoinSet::new();

        let mut local_addr = None;
        if let Some(addr) = config.listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Listen {
                    what: addr.to_string(),
                    source,
                })?;
            local_addr = listener.local_addr().ok();
            info!(addr = ?local_addr, "listening on TCP");
            tasks.spawn(accept_tcp(listener, shared.clone(), shutdown.subscribe()));
        }
        if let Some(path) = &config.socket {
            // a socket file left by a previous run would make bind fail
            if path.exists() {
                let _ = std::fs::remove_file(path);
            }
            let listener = UnixListener::bind(path).map_err(|source| ServerError::Listen {
                what: path.display().to_string(),
                source,
            })?;
            info!(path = %path.display(), "listening on Unix socket");
            tasks.spawn(accept_unix(listener, shared.clone(), shutdown.subscribe()));
        }
        if let Durability::Periodic(every) = config.durability {
            tasks.spawn(periodic_sync(shared.clone(), every, shutdown.subscribe()));
        }
        tasks.spawn(background_compaction(shared.clone(), shutdown.subscribe()));
        Ok(Server {
            shared,
            local_addr,
            socket: config.socket,
            shutdown,
            tasks,
        })
    }

    /// The bound TCP address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Stops accepting, lets connections finish their current batch, then
    /// writes and fsyncs every namespace.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            for ns in shared.store.all() {
                if ns.is_removed() {
                    continue;
                }
                if let Err(e) = ns.sync() {
                    error!(namespace = ns.name(), "final sync failed: {e}");
                }
            }
        })
        .await?;
        if let Some(path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
        info!("server stopped");
        Ok(())
    }
}

async fn accept_tcp(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    debug!(%peer, "client connected");
                    let source = Source::of(Some(peer.ip()));
                    conns.spawn(serve(stream, source, shared.clone(), stop.clone()));
                }
                Err(e) => {
                    // out of file descriptors and the like: back off instead of spinning
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drain(conns).await;
}

async fn accept_unix(listener: UnixListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve(stream, Source::of(None), shared.clone(), stop.clone()));
                }
                Err(e) => {
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drain(conns).await;
}

async fn drain(mut conns: JoinSet<()>) {
    let deadline = tokio::time::sleep(SHUTDOWN_GRACE);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = conns.join_next() => if next.is_none() { return },
            _ = &mut deadline => {
                warn!(connections = conns.len(), "connections still busy at shutdown, aborting them");
                conns.shutdown().await;
                return;
            }
        }
    }
}

/// Runs one client connection to completion.
async fn serve<S>(
    mut stream: S,
    source: Source,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let stats = &shared.stats;
    stats.clients_lifetime.fetch_add(1, Ordering::Relaxed);
    let connected = stats.clients_connected.fetch_add(1, Ordering::AcqRel) + 1;
    if connected > shared.config.max_clients {
        let _ = stream
            .write_all(b"-Max number of clients reached\r\n")
            .await;
    } else if let Err(e) = connection_loop(&mut stream, source, &shared, &mut stop).await {
        debug!("connection closed: {e}");
    }
    stats.clients_connected.fetch_sub(1, Ordering::AcqRel);
}

/// When a connection's wait for input ends: the idle deadline (from the last
/// complete request) or, while a request is partially received, its frame
/// deadline (from when that request began), whichever is first. Bytes that
/// do not complete a request move neither.
#[derive(Clone, Copy)]
struct Deadlines {
    idle: Duration,
    frame: Duration,
    last_request: Instant,
    frame_started: Option<Instant>,
}

impl Deadlines {
    fn due(&self) -> Option<Instant> {
        let idle = (!self.idle.is_zero()).then(|| self.last_request + self.idle);
        let frame = self.frame_started.map(|started| started + self.frame);
        match (idle, frame) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A deadline that never comes (tokio's own "far future" is 30 years too).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

/// Writes `bytes`, giving up (`TimedOut`) if the client does not take them
/// within `limit` (zero: no limit). The timer only registers when the write
/// has to wait, so a write the socket takes at once costs no timer work.
async fn send<S>(stream: &mut S, bytes: &[u8], limit: Duration) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    if limit.is_zero() {
        return stream.write_all(bytes).await;
    }
    match tokio::time::timeout(limit, stream.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client did not read its replies",
        )),
    }
}

async fn connection_loop<S>(
    stream: &mut S,
    source: Source,
    shared: &Arc<Shared>,
    stop: &mut watch::Receiver<bool>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(mut session) = Session::new(shared.clone(), source) else {
        stream.write_all(b"-Default namespace missing\r\n").await?;
        return Ok(());
    };
    let write_limit = shared.config.idle_timeout;
    let mut parser = RequestParser::new(Limits::default());
    let mut requests = Vec::new();
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    let mut deadlines = Deadlines {
        idle: shared.config.idle_timeout,
        frame: shared.config.frame_timeout,
        last_request: Instant::now(),
        frame_started: None,
    };
    // One timer for the connection's life. It is moved earlier only when a
    // deadline comes before it (a request starts arriving in pieces); when it
    // fires early it is moved to the current deadline. So a busy connection
    // touches the timer about once per idle timeout, not once per read.
    let timer = tokio::time::sleep_until(deadlines.due().unwrap_or_else(far_future));
    tokio::pin!(timer);
    loop {
        // run everything already received, parsed a bounded number of requests at a time
        let mut closing = None;
        let mut parsed_any = false;
        loop {
            while requests.len() < MAX_PARSED_REQUESTS {
                match parser.next(&mut input) {
                    Ok(Some(request)) => requests.push(request),
                    Ok(None) => break,
                    Err(e) => {
                        closing = Some(e);
                        break;
                    }
                }
            }
            parsed_any |= !requests.is_empty();
            let parsed_all = requests.len() < MAX_PARSED_REQUESTS;
            let mut done = 0;
            while done < requests.len() {
                let writes_to = session.writes_ahead(&requests[done..]);
                let turn = match &writes_to {
                    Some(ns) => Some(ns.write_turn().await),
                    None => None,
                };
                let (ran, deferred) =
                    session.execute_batch(&requests[done..], &mut output, OUTPUT_FLUSH_BYTES);
                drop(turn);
                done += ran;
                match deferred {
                    Some(Deferred::Compact(ns)) => run_compaction(ns, &mut output).await,
                    Some(Deferred::Close) => {
                        commit_and_send(stream, &mut session, &mut output, shared).await?;
                        debug!(?source, "closing after too many failed password attempts");
                        return Ok(());
                    }
                    None => {}
                }
                if output.len() >= OUTPUT_FLUSH_BYTES {
                    commit_and_send(stream, &mut session, &mut output, shared).await?;
                }
            }
            requests.clear();
            if parsed_all || closing.is_some() {
                break;
            }
        }
        if let Some(e) = closing {
            commit_and_send(stream, &mut session, &mut output, shared).await?;
            match e {
                ProtocolError::TooManyArgs(_) => reply::error(&mut output, &e.to_string()),
                e => reply::error(&mut output, &format!("Protocol error: {e}")),
            }
            send(stream, &output, write_limit).await?;
            return Ok(());
        }
        commit_and_send(stream, &mut session, &mut output, shared).await?;

        // one clock read per batch of requests, none per partial read
        let now = parsed_any.then(Instant::now);
        if let Some(now) = now {
            deadlines.last_request = now;
        }
        if parser.in_progress(&input) {
            if deadlines.frame_started.is_none() || parsed_any {
                deadlines.frame_started = Some(now.unwrap_or_else(Instant::now));
            }
        } else {
            deadlines.frame_started = None;
            // give back the memory of a large request once it is done
            if input.capacity() > 4 * READ_CHUNK {
                input = BytesMut::with_capacity(16 * 1024);
            }
        }
        if let Some(due) = deadlines.due() {
            if due < timer.deadline() {
                timer.as_mut().reset(due);
            }
        }
        if input.capacity() - input.len() < READ_CHUNK / 4 {
            input.reserve(READ_CHUNK.max(parser.bulk_bytes_missing(&input).min(1 << 20)));
        }
        loop {
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                r = stream.read_buf(&mut input) => {
                    if r? == 0 {
                        return Ok(());
                    }
                    break;
                }
                () = &mut timer => match deadlines.due() {
                    Some(due) if due <= Instant::now() => {
                        if deadlines.frame_started.is_some() {
                            output.clear();
                            reply::error(&mut output, "Timeout: request not completed in time, closing");
                            send(stream, &output, write_limit).await?;
                        }
                        // an idle client is closed silently, as redis does
                        debug!("closing a connection that timed out");
                        return Ok(());
                    }
                    Some(due) => timer.as_mut().reset(due),
                    None => timer.as_mut().reset(far_future()),
                },
            }
        }
    }
}

/// Makes the batch's writes as durable as configured, then sends its replies.
async fn commit_and_send<S>(
    stream: &mut S,
    session: &mut Session,
    output: &mut BytesMut,
    shared: &Arc<Shared>,
) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let dirty = session.take_dirty();
    if dirty.iter().any(|ns| ns.has_unwritten()) {
        // group commit: other connections that are ready run their requests
        // first, so one write (and fsync) covers all their records
        tokio::task::yield_now().await;
    }
    if !dirty.is_empty() {
        let failures = if shared.config.durability == Durability::Always {
            tokio::task::spawn_blocking(move || commit_all(&dirty))
                .await
                .unwrap_or_else(|e| vec![e.to_string()])
        } else {
            commit_all(&dirty)
        };
        if !failures.is_empty() {
            // the writes of this batch may be lost: say so instead of confirming them
            output.clear();
            reply::error(
                output,
                &format!("Cannot write data right now: {}", failures.join("; ")),
            );
            send(stream, output, shared.config.idle_timeout).await?;
            return Err(io::Error::other("commit failed"));
        }
    }
    if !output.is_empty() {
        // a client that does not take its replies for the idle timeout is gone
        send(stream, output, shared.config.idle_timeout).await?;
        output.clear();
        if output.capacity() > 4 * OUTPUT_FLUSH_BYTES {
            *output = BytesMut::with_capacity(16 * 1024);
        }
    }
    Ok(())
}

fn commit_all(namespaces: &[Arc<Namespace>]) -> Vec<String> {
    namespaces
        .iter()
        .filter_map(|ns| {
            ns.commit().err().map(|e| {
                error!(namespace = ns.name(), "commit failed: {e}");
                e.to_string()
            })
        })
        .collect()
}

async fn run_compaction(ns: Arc<Namespace>, output: &mut BytesMut) {
    match tokio::task::spawn_blocking(move || ns.compact()).await {
        Ok(Ok(r)) => reply::simple(
            output,
            &format!(
                "OK files_removed={} files_written={} bytes_before={} bytes_after={} records_copied={}",
                r.files_removed, r.files_written, r.bytes_before, r.bytes_after, r.records_copied
            ),
        ),
        Ok(Err(e)) => reply::error(output, &e.to_string()),
        Err(e) => reply::error(output, &format!("compaction task failed: {e}")),
    }
}

async fn periodic_sync(shared: Arc<Shared>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let shared = shared.clone();
        let synced = tokio::task::spawn_blocking(move || {
            for ns in shared.store.all() {
                if !ns.is_removed() {
                    if let Err(e) = ns.sync() {
                        error!(namespace = ns.name(), "periodic sync failed: {e}");
                    }
                }
            }
        });
        if let Err(e) = synced.await {
            error!("periodic sync task failed: {e}");
        }
    }
}

/// Compacts namespaces whose reclaimable bytes pass the configured threshold,
/// and takes the kept tails of idle namespaces back.
async fn background_compaction(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(shared.config.compaction_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        for ns in shared.store.all() {
            ns.release_idle_tail();
            let (dead, total) = ns.space();
            if ns.is_removed() || dead < shared.config.compaction_min_dead_bytes || dead * 2 < total
            {
                continue;
            }
            info!(
                namespace = ns.name(),
                dead, total, "starting background compaction"
            );
            match tokio::task::spawn_blocking(move || ns.compact()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!("background compaction failed: {e}"),
                Err(e) => error!("background compaction task failed: {e}"),
            }
        }
    }
}
