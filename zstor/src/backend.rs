//! Talking to zdb namespaces: a RESP client on the `redis` crate ([`ZdbNamespace`]) and one
//! worker thread per backend ([`BackendPool`]) so that all backends are read and written in
//! parallel while the caller encodes or decodes the next chunk.
//!
//! Each worker owns its connection. Job queues are bounded, so a slow backend slows the
//! producer down instead of letting shards pile up in memory.

use crate::config::BackendSpec;
use crate::error::ZstorError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Jobs waiting per worker before `submit` blocks.
const QUEUE_DEPTH: usize = 2;

/// A connection to one zdb namespace in seq mode.
pub struct ZdbNamespace {
    conn: redis::Connection,
    label: String,
    broken: bool,
}

impl ZdbNamespace {
    /// Connects, selects the namespace (with its password, if any) and checks that it is in
    /// seq mode.
    pub fn connect(spec: &BackendSpec) -> Result<ZdbNamespace, ZstorError> {
        let label = spec.label();
        let fail = |reason: String| ZstorError::Backend {
            backend: label.clone(),
            reason,
        };
        let client = redis::Client::open(format!("redis://{}/", spec.address))
            .map_err(|e| fail(format!("bad address: {e}")))?;
        let conn = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| fail(format!("cannot connect: {e}")))?;
        conn.set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| conn.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|e| fail(e.to_string()))?;
        let mut namespace = ZdbNamespace {
            conn,
            label: label.clone(),
            broken: false,
        };
        let mut select = redis::cmd("SELECT");
        select.arg(&spec.namespace);
        if let Some(password) = &spec.password {
            select.arg(password);
        }
        namespace.query::<()>(&select)?;
        let info: String = namespace.query(redis::cmd("NSINFO").arg(&spec.namespace))?;
        if !info.lines().any(|line| line.trim() == "mode: sequential") {
            return Err(fail("namespace is not in seq mode".into()));
        }
        Ok(namespace)
    }

    fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, ZstorError> {
        if self.broken {
            return Err(ZstorError::Backend {
                backend: self.label.clone(),
                reason: "connection lost earlier".into(),
            });
        }
        cmd.query(&mut self.conn).map_err(|e| {
            // a server error reply leaves the connection usable; anything else does not
            if e.kind() != redis::ErrorKind::ResponseError {
                self.broken = true;
            }
            ZstorError::Backend {
                backend: self.label.clone(),
                reason: e.to_string(),
            }
        })
    }

    /// Appends a value; returns the key zdb assigned to it.
    pub fn append(&mut self, value: &[u8]) -> Result<u64, ZstorError> {
        let key: Option<Vec<u8>> = self.query(redis::cmd("SET").arg(b"").arg(value))?;
        let key = key.and_then(|k| <[u8; 8]>::try_from(k.as_slice()).ok());
        key.map(u64::from_le_bytes)
            .ok_or_else(|| ZstorError::Backend {
                backend: self.label.clone(),
                reason: "SET did not return an 8-byte sequential key".into(),
            })
    }

    /// Reads a value; `None` when the key does not exist.
    pub fn get(&mut self, key: u64) -> Result<Option<Vec<u8>>, ZstorError> {
        self.query(redis::cmd("GET").arg(&key.to_le_bytes()[..]))
    }

    pub fn is_usable(&self) -> bool {
        !self.broken
    }
}

/// Work for a worker: runs on its thread with its connection, or with the reason it has none.
pub type Job = Box<dyn FnOnce(Result<&mut ZdbNamespace, ZstorError>) + Send>;

struct Worker {
    label: String,
    jobs: Option<SyncSender<Job>>,
    usable: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One worker thread per backend.
pub struct BackendPool {
    workers: Vec<Worker>,
}

impl BackendPool {
    /// Starts a worker per backend; each connects right away.
    pub fn start(specs: &[BackendSpec]) -> BackendPool {
        let workers = specs
            .iter()
            .map(|spec| {
                let (jobs, queue) = sync_channel::<Job>(QUEUE_DEPTH);
                let usable = Arc::new(AtomicBool::new(true));
                let spec = spec.clone();
                let label = spec.label();
                let flag = usable.clone();
                let thread = std::thread::Builder::new()
                    .name(format!("zstor {label}"))
                    .spawn(move || run_worker(&spec, &queue, &flag))
                    .ok();
                if thread.is_none() {
                    usable.store(false, Ordering::Relaxed);
                }
                Worker {
                    label,
                    jobs: thread.as_ref().map(|_| jobs),
                    usable,
                    thread,
                }
            })
            .collect();
        BackendPool { workers }
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    pub fn label(&self, worker: usize) -> &str {
        &self.workers[worker].label
    }

    /// False once the worker could not connect or lost its connection.
    pub fn is_usable(&self, worker: usize) -> bool {
        self.workers[worker].usable.load(Ordering::Relaxed)
    }

    /// Queues a job, blocking while the worker's queue is full. A job that cannot be queued
    /// (worker gone) runs right here with an error.
    pub fn submit(&self, worker: usize, job: Job) {
        let w = &self.workers[worker];
        let rejected = match &w.jobs {
            Some(jobs) => match jobs.send(job) {
                Ok(()) => return,
                Err(e) => e.0,
            },
            None => job,
        };
        rejected(Err(ZstorError::Backend {
            backend: w.label.clone(),
            reason: "worker thread is not running".into(),
        }));
    }

    /// Runs `job` on the worker and waits for its result.
    pub fn call<T: Send + 'static>(
        &self,
        worker: usize,
        job: impl FnOnce(&mut ZdbNamespace) -> Result<T, ZstorError> + Send + 'static,
    ) -> Result<T, ZstorError> {
        let (reply, answer) = sync_channel(1);
        self.submit(
            worker,
            Box::new(move |conn| {
                let result = conn.and_then(job);
                let _ = reply.send(result);
            }),
        );
        answer.recv().unwrap_or_else(|_| {
            Err(ZstorError::Backend {
                backend: self.label(worker).to_string(),
                reason: "worker stopped".into(),
            })
        })
    }

    /// Connects-and-probes every backend; returns which ones are usable.
    pub fn probe(&self) -> Vec<Result<(), ZstorError>> {
        let answers: Vec<_> = (0..self.len())
            .map(|worker| {
                let (reply, answer) = sync_channel(1);
                self.submit(
                    worker,
                    Box::new(move |conn| {
                        let _ = reply.send(conn.map(|_| ()).map_err(|e| failure_reason(&e)));
                    }),
                );
                answer
            })
            .collect();
        answers
            .into_iter()
            .enumerate()
            .map(|(worker, answer)| {
                let reason = match answer.recv() {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(reason)) => reason,
                    Err(_) => "worker stopped".into(),
                };
                Err(ZstorError::Backend {
                    backend: self.label(worker).to_string(),
                    reason,
                })
            })
            .collect()
    }
}

/// The reason part of a backend error (the label is added again by whoever reports it).
pub fn failure_reason(error: &ZstorError) -> String {
    match error {
        ZstorError::Backend { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

fn run_worker(spec: &BackendSpec, queue: &Receiver<Job>, usable: &AtomicBool) {
    let mut conn = ZdbNamespace::connect(spec);
    usable.store(conn.is_ok(), Ordering::Relaxed);
    for job in queue {
        match &mut conn {
            Ok(namespace) => {
                job(Ok(namespace));
                usable.store(namespace.is_usable(), Ordering::Relaxed);
            }
            Err(e) => job(Err(ZstorError::Backend {
                backend: spec.label(),
                reason: failure_reason(e),
            })),
        }
    }
}

impl Drop for BackendPool {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            worker.jobs = None;
        }
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}
