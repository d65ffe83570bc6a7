//! Frames on the channel: SCALE values behind a 4-byte big-endian length.
//!
//! A peer's length prefix is checked against the frame kind's limit before a byte of the body is
//! read or allocated, so a forged length costs the reader nothing.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use parity_scale_codec::{Decode, DecodeAll, Encode};
use serde::{Deserialize, Serialize};

/// Largest request frame: a request is a few hundred bytes; a command line fits easily.
pub const MAX_REQUEST_FRAME: u32 = 16 * 1024;
/// Largest frame after the request (output chunks, stdin chunks).
pub const MAX_DATA_FRAME: u32 = 256 * 1024;
/// Output and stdin are sent in chunks of at most this many bytes.
pub const CHUNK: usize = 64 * 1024;

/// Why the node refused a request. The number is stable (the CLI shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum RefusalCode {
    /// Not a request (undecodable, too large, too slow to arrive).
    BadRequest = 1,
    /// `issued_at` is more than a minute away from the node's clock.
    Expired = 2,
    /// The signature does not verify for the named signer.
    BadSignature = 3,
    /// This exact request (signer, nonce) was already used.
    Replayed = 4,
    /// Signed for another chain.
    WrongChain = 5,
    /// Signed for another node, or the reservation runs on another node.
    WrongNode = 6,
    /// No live reservation with this id on this node.
    NoSuchReservation = 7,
    /// The signer does not own the reservation.
    NotOwner = 8,
    /// The reservation has no container workload of that name.
    NoSuchWorkload = 9,
    /// Too many requests or open streams right now; try again later.
    Busy = 10,
    /// The workload exists but cannot serve this now (not running, Docker failed).
    Unavailable = 11,
}

impl RefusalCode {
    pub fn number(self) -> u8 {
        self as u8
    }
}

/// Which stream of a process a chunk of output comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Something that happened to a workload, as the node saw it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    /// Unix milliseconds.
    pub at_ms: u64,
    pub workload: String,
    /// Short and stable: `pulling`, `started`, `exited`, `oom`, `restarted`, `health`, `state`.
    pub kind: String,
    pub message: String,
}

/// Node → client.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ServerFrame {
    /// The request passed every check; the answer follows.
    Accepted,
    /// The request was refused; nothing was done. The node closes the channel.
    Refused {
        code: RefusalCode,
        message: String,
    },
    /// A chunk of a workload's output (logs) or of the command's (exec).
    Output {
        workload: String,
        stream: OutputStream,
        data: Vec<u8>,
    },
    Event(EventRecord),
    /// The command run by `Exec` ended with this code.
    Exited {
        code: i64,
    },
    /// Everything asked for was sent (logs without follow, events).
    End,
    /// The answer broke off (e.g. Docker failed mid-stream).
    Failed {
        message: String,
    },
}

/// Client → node, after the request (`Exec` only).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ClientFrame {
    Stdin(Vec<u8>),
    /// No more input (end of file on the client's stdin).
    CloseStdin,
    /// The client's terminal changed size (TTY only).
    Resize {
        cols: u16,
        rows: u16,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the peer closed the channel")]
    Closed,
    #[error("frame of {len} bytes is over the limit of {limit}")]
    TooLarge { len: u32, limit: u32 },
    #[error("undecodable frame: {0}")]
    Decode(#[from] parity_scale_codec::Error),
    #[error("channel: {0}")]
    Io(std::io::Error),
}

/// Writes `value` as one frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Encode>(
    writer: &mut W,
    value: &T,
) -> Result<(), FrameError> {
    let body = value.encode();
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
        len: u32::MAX,
        limit: MAX_DATA_FRAME,
    })?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    writer.write_all(&frame).await.map_err(FrameError::Io)?;
    writer.flush().await.map_err(FrameError::Io)
}

/// Reads one frame of at most `limit` bytes and decodes all of it as `T`.
pub async fn read_frame<R: AsyncRead + Unpin, T: Decode>(
    reader: &mut R,
    limit: u32,
) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    reader
        .read_exact(&mut len)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Closed,
            _ => FrameError::Io(e),
        })?;
    let len = u32::from_be_bytes(len);
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    let mut body = vec![0u8; len as usize];
    reader.read_exact(&mut body).await.map_err(FrameError::Io)?;
    Ok(T::decode_all(&mut &body[..])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_lengths_are_refused_before_reading() {
        let frame = ServerFrame::Output {
            workload: "web".into(),
            stream: OutputStream::Stderr,
            data: b"hello\n".to_vec(),
        };
        let mut buffer = Vec::new();
        write_frame(&mut buffer, &frame).await.unwrap();
        let read: ServerFrame = read_frame(&mut &buffer[..], MAX_DATA_FRAME).await.unwrap();
        assert_eq!(read, frame);

        // A length past the limit: refused without the body (none follows here).
        let forged = (MAX_REQUEST_FRAME + 1).to_be_bytes();
        let refused = read_frame::<_, ServerFrame>(&mut &forged[..], MAX_REQUEST_FRAME).await;
        assert!(matches!(refused, Err(FrameError::TooLarge { .. })));
        // Trailing bytes inside a frame are an error, not ignored.
        let mut padded = Vec::new();
        write_frame(&mut padded, &(ServerFrame::End, 0u8))
            .await
            .unwrap();
        let refused = read_frame::<_, ServerFrame>(&mut &padded[..], MAX_DATA_FRAME).await;
        assert!(matches!(refused, Err(FrameError::Decode(_))));
        // An empty stream is a closed channel.
        let closed = read_frame::<_, ServerFrame>(&mut &[][..], MAX_DATA_FRAME).await;
        assert!(matches!(closed, Err(FrameError::Closed)));
    }
}
