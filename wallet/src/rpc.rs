//! Connecting to a node over WebSocket or HTTP, and calling it with errors that carry exit codes.

use crate::failure::{self, Failure};
use anyhow::{bail, Result};
use jsonrpsee::{
    core::{client::SubscriptionClientT, ClientError},
    http_client::{HttpClient, HttpClientBuilder},
    ws_client::{WsClient, WsClientBuilder},
};
use std::{future::Future, time::Duration};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What the typed `*ApiClient` traits of `gridchain-rpc-api` are implemented for.
pub trait NodeClient: SubscriptionClientT + Send + Sync {}
impl<T: SubscriptionClientT + Send + Sync> NodeClient for T {}

/// An open connection; WebSocket can watch transactions, HTTP can only poll.
pub enum Connection {
    Ws(WsClient),
    Http(HttpClient),
}

/// Connects to `url` (`ws://`, `wss://`, `http://` or `https://`).
pub async fn connect(url: &str) -> Result<Connection> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some("ws" | "wss") => WsClientBuilder::default()
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(REQUEST_TIMEOUT)
            .build(url)
            .await
            .map(Connection::Ws)
            .map_err(|e| {
                Failure::Unreachable {
                    url: url.to_string(),
                    reason: e.to_string(),
                }
                .into()
            }),
        Some("http" | "https") => HttpClientBuilder::default()
            .request_timeout(REQUEST_TIMEOUT)
            .build(url)
            .map(Connection::Http)
            .map_err(|e| anyhow::anyhow!("invalid RPC URL {url}: {e}")),
        _ => bail!("invalid RPC URL {url}: expected ws://, wss://, http:// or https://"),
    }
}

/// A node to call: the client, its URL (for messages) and whether it can watch subscriptions.
pub struct Node<'a, C> {
    pub client: &'a C,
    pub url: &'a str,
    pub can_watch: bool,
}

impl<C: NodeClient> Node<'_, C> {
    /// Awaits a call that reads: transport errors exit 3, JSON-RPC errors are general errors.
    pub async fn read<T>(&self, call: impl Future<Output = Result<T, ClientError>>) -> Result<T> {
        call.await
            .map_err(|e| failure::from_client_error(self.url, e))
    }

    /// Awaits a transaction submission: JSON-RPC errors are rejections (exit 4).
    pub async fn submit<T>(&self, call: impl Future<Output = Result<T, ClientError>>) -> Result<T> {
        call.await
            .map_err(|e| failure::from_submit_error(self.url, e))
    }
}
