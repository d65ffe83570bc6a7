//! Failures that have their own exit code, and the exit codes themselves.
//!
//! Any other error is a general error (exit 1); clap exits 2 on a usage error by itself.

use crate::output::Rendered;
use gridchain_runtime::system::DispatchError;
use jsonrpsee::core::ClientError;

pub const EXIT_GENERAL: u8 = 1;
pub const EXIT_UNREACHABLE: u8 = 3;
pub const EXIT_REJECTED: u8 = 4;
pub const EXIT_CALL_FAILED: u8 = 5;
pub const EXIT_STORE_UNHEALTHY: u8 = 6;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The node could not be reached, or the connection broke.
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The node refused the transaction; `code` is the JSON-RPC error code.
    #[error("rejected ({code}): {message}")]
    Rejected { code: i32, message: String },
    /// The node accepted the transaction, but it left the pool without being included.
    #[error("transaction {hash} left the pool without being included ({status})")]
    Dropped { hash: String, status: &'static str },
    /// The transaction is in a final block but its call failed; `report` describes it.
    #[error("transaction {hash} failed in block #{block}: {error}")]
    CallFailed {
        hash: String,
        block: u64,
        error: DispatchError,
        report: Box<Rendered>,
    },
    /// `grid reservation watch`: a workload failed (or the reservation was deleted); `report`
    /// is the reservation.
    #[error("{summary}")]
    WorkloadFailed {
        summary: String,
        report: Box<Rendered>,
    },
    /// A node's owner API refused the request (`code` is its refusal code).
    #[error("node {node} refused ({code}): {message}")]
    NodeRefused {
        node: u32,
        code: u8,
        message: String,
    },
    /// `grid reservation exec`: the command ran and exited with this (non-zero) code, which is
    /// `grid`'s own; nothing more is printed.
    #[error("the command exited with code {code}")]
    CommandExited { code: u8 },
    /// `grid store check` found lost or corrupt shards; `report` describes them.
    #[error("{summary}")]
    StoreUnhealthy {
        summary: String,
        report: Box<Rendered>,
    },
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Unreachable { .. } => EXIT_UNREACHABLE,
            Failure::Rejected { .. } | Failure::Dropped { .. } | Failure::NodeRefused { .. } => {
                EXIT_REJECTED
            }
            Failure::CommandExited { code } => *code,
            Failure::CallFailed { .. } | Failure::WorkloadFailed { .. } => EXIT_CALL_FAILED,
            Failure::StoreUnhealthy { .. } => EXIT_STORE_UNHEALTHY,
        }
    }
}

/// Turns a client error of any non-submitting call into an error: transport trouble is
/// [`Failure::Unreachable`], a JSON-RPC error is a general error showing the node's code and
/// message.
pub fn from_client_error(url: &str, error: ClientError) -> anyhow::Error {
    match error {
        ClientError::Call(object) => {
            anyhow::anyhow!("node error ({}): {}", object.code(), object.message())
        }
        other => transport_failure(url, other),
    }
}

/// Turns a client error of a transaction submission into an error: a JSON-RPC error is
/// [`Failure::Rejected`].
pub fn from_submit_error(url: &str, error: ClientError) -> anyhow::Error {
    match error {
        ClientError::Call(object) => Failure::Rejected {
            code: object.code(),
            message: object.message().to_string(),
        }
        .into(),
        other => transport_failure(url, other),
    }
}

fn transport_failure(url: &str, error: ClientError) -> anyhow::Error {
    match error {
        ClientError::Transport(_)
        | ClientError::RestartNeeded(_)
        | ClientError::RequestTimeout
        | ClientError::ServiceDisconnect => Failure::Unreachable {
            url: url.to_string(),
            reason: error.to_string(),
        }
        .into(),
        other => anyhow::anyhow!("unexpected answer from the node at {url}: {other}"),
    }
}
