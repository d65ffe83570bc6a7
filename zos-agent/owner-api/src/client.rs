//! The client: opens a channel to a node, sends one signed request, and hands back the answer
//! as frames.

use crate::{
    channel::{self, Channel, ChannelError},
    request::SignedRequest,
    wire::{self, ClientFrame, FrameError, RefusalCode, ServerFrame, MAX_DATA_FRAME},
};
use futures::io::{ReadHalf, WriteHalf};
use futures::AsyncReadExt;
use gridchain_primitives::AccountId;
use std::time::Duration;

/// How long connecting and the handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the node at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The node refused the request.
    #[error("the node refused ({}): {message}", code.number())]
    Refused { code: RefusalCode, message: String },
    #[error("the node broke the protocol: {0}")]
    Protocol(String),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// An accepted request: read the answer with [`Session::recv`]; `Exec` input goes the other way
/// with [`Session::send`].
pub struct Session {
    reader: SessionReader,
    writer: SessionWriter,
}

/// Opens a channel to the node of account `node` at `endpoint` (`host:port`), sends `request`,
/// and waits for the node's verdict.
pub async fn connect(
    endpoint: &str,
    node: &AccountId,
    request: &SignedRequest,
) -> Result<Session, ClientError> {
    let unreachable = |reason: String| ClientError::Unreachable {
        endpoint: endpoint.to_string(),
        reason,
    };
    let mut channel = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let socket = tokio::net::TcpStream::connect(endpoint)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        socket.set_nodelay(true).ok();
        Ok::<_, ClientError>(channel::open(socket, node).await?)
    })
    .await
    .map_err(|_| unreachable(format!("no answer in {} s", CONNECT_TIMEOUT.as_secs())))??;
    wire::write_frame(&mut channel, request).await?;
    match wire::read_frame(&mut channel, MAX_DATA_FRAME).await? {
        ServerFrame::Accepted => {
            let (reader, writer) = channel.split();
            Ok(Session {
                reader: SessionReader { reader },
                writer: SessionWriter { writer },
            })
        }
        ServerFrame::Refused { code, message } => Err(ClientError::Refused { code, message }),
        other => Err(ClientError::Protocol(format!(
            "expected a verdict, got {other:?}"
        ))),
    }
}

impl Session {
    /// The next frame of the answer; [`FrameError::Closed`] once the node hung up.
    pub async fn recv(&mut self) -> Result<ServerFrame, ClientError> {
        self.reader.recv().await
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        self.writer.send(frame).await
    }

    /// The two directions apart, to read output while sending input.
    pub fn split(self) -> (SessionReader, SessionWriter) {
        (self.reader, self.writer)
    }
}

pub struct SessionReader {
    reader: ReadHalf<Channel>,
}

impl SessionReader {
    pub async fn recv(&mut self) -> Result<ServerFrame, ClientError> {
        Ok(wire::read_frame(&mut self.reader, MAX_DATA_FRAME).await?)
    }
}

pub struct SessionWriter {
    writer: WriteHalf<Channel>,
}

impl SessionWriter {
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        Ok(wire::write_frame(&mut self.writer, frame).await?)
    }
}
