//! The owner API of a 3Node: a reservation's owner reads its workloads' logs, runs commands in
//! its containers (with a TTY for a shell) and reads its events, straight from the node that
//! runs them. Nothing of it goes through the chain.
//!
//! ## The flow of one request
//!
//! ```text
//! grid reservation logs 7 web --follow
//!   │ chain (RPC): reservation 7 → node 3 → node 3's account key and its twin's endpoint
//!   ▼
//! TCP to the endpoint ─ Noise XX handshake (libp2p-noise) ─▶ the node proves it holds the
//!   │   node's account key: the remote identity must be exactly that key, or the client stops
//!   ▼   (a DNS or endpoint hijack gets no request)
//! SignedRequest { genesis, node 3, reservation 7, issued_at, random nonce, Logs{…} }
//!   │   signed by the owner's account key over a domain-separated payload
//!   ▼
//! zos-agent: size ≤ 16 KiB · clock within ±60 s · signature · this chain · this node ·
//!   │   reservation on this node in the last verified final snapshot · signer = its owner ·
//!   │   nonce not seen (single use) ─ any failure: one `Refused{code, message}` and close
//!   ▼
//! Accepted, then Output / Event frames … then End, Exited{code} or Failed
//! ```
//!
//! Every frame is a SCALE value behind a 4-byte big-endian length, inside the Noise channel
//! (encrypted and authenticated both ways). Requests are bound to one chain and one node, expire
//! after a minute and are single-use, so a request seen anywhere cannot be replayed to this or
//! any other node. One TCP connection carries one request.
//!
//! The agent's side lives in `zos-agent` (`owner` module); this crate holds what both sides
//! share: [`wire`] (the frames), [`request`] (signing and checking a request), [`channel`] (the
//! Noise handshake keyed by account keys) and [`client`].

pub mod channel;
pub mod client;
pub mod request;
pub mod wire;

pub use client::{connect, ClientError, Session};
pub use request::{Action, ExecQuery, LogsQuery, Request, SignedRequest};
pub use wire::{ClientFrame, EventRecord, OutputStream, RefusalCode, ServerFrame};
