//! A JSON-RPC man-in-the-middle on loopback: forwards WebSocket frames to a real node and, when
//! told to, rewrites what the agent must not trust.

use futures::{SinkExt, StreamExt};
use gridchain_primitives::{Bytes, Hash, Header, ReadProof};
use gridchain_rpc_api::{
    jsonrpsee::ws_client::{WsClient, WsClientBuilder},
    ChainApiClient,
};
use parity_scale_codec::{Decode, Encode};
use serde_json::Value;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc, Mutex,
    },
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_tungstenite::tungstenite::Message;

/// What the proxy lies about. Every lie empties the node's snapshot (the agent would remove every
/// workload of the node if it believed it); the later ones also forge what would back it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Lie {
    /// An honest forwarder.
    Nothing = 0,
    /// `grid_nodeSnapshot` answers with no reservations.
    EmptySnapshot = 1,
    /// Also a forged chain view: every header claims another state root, and block hashes, the
    /// final head and final-head notifications name the forged headers (whose hashes the proxy
    /// maps back to the real ones when the agent asks about them), consistently. Certificates stay
    /// real, so they certify other hashes.
    ForgedHeaders = 2,
    /// Also every read proof claims the opposite value (absent ↔ present).
    ForgedProofs = 3,
    /// The forged chain view, and certificates rewritten to name the forged headers' hashes (their
    /// signatures, over the real hashes, no longer match).
    ForgedCertificates = 4,
}

impl Lie {
    fn from_u8(v: u8) -> Lie {
        match v {
            1 => Lie::EmptySnapshot,
            2 => Lie::ForgedHeaders,
            3 => Lie::ForgedProofs,
            4 => Lie::ForgedCertificates,
            _ => Lie::Nothing,
        }
    }
}

pub struct LyingProxy {
    pub port: u16,
    lie: Arc<AtomicU8>,
    task: JoinHandle<()>,
}

impl Drop for LyingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The state root a forged header claims.
const FORGED_ROOT: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

/// The forged chain view of one connection: forged hash → real hash.
struct Forger {
    upstream: WsClient,
    real_of: Mutex<HashMap<Hash, Hash>>,
}

impl Forger {
    /// Forges `header` (JSON) in place; returns the forged hash.
    fn forge(&self, header: &mut Value) -> Option<Hash> {
        if header.is_null() {
            return None;
        }
        let real: Header = serde_json::from_value(header.clone()).ok()?;
        header["stateRoot"] = Value::String(FORGED_ROOT.into());
        let forged: Header = serde_json::from_value(header.clone()).ok()?;
        self.real_of
            .lock()
            .expect("not poisoned")
            .insert(forged.hash(), real.hash());
        Some(forged.hash())
    }

    /// The forged hash standing for real block `hash`.
    async fn forged_hash(&self, hash: Hash) -> Option<Hash> {
        let header = self.upstream.header(Some(hash)).await.ok()??;
        let mut json = serde_json::to_value(header).ok()?;
        self.forge(&mut json)
    }

    /// Real hashes for forged ones in a request's parameters.
    fn unforge_params(&self, params: &mut Value) {
        let real_of = self.real_of.lock().expect("not poisoned");
        if let Value::Array(items) = params {
            for item in items {
                if let Some(real) = item
                    .as_str()
                    .and_then(|s| s.parse::<Hash>().ok())
                    .and_then(|h| real_of.get(&h))
                {
                    *item = serde_json::to_value(real).expect("serialisable");
                }
            }
        }
    }

    async fn rewrite_result(&self, lie: Lie, method: &str, result: &mut Value) {
        let forging = matches!(lie, Lie::ForgedHeaders | Lie::ForgedCertificates);
        match method {
            "grid_nodeSnapshot" if !result.is_null() => {
                result["reservations"] = Value::Array(vec![]);
            }
            "chain_getHeader" if forging => {
                self.forge(result);
            }
            "chain_getBlockHash" | "chain_getFinalizedHead" if forging && !result.is_null() => {
                let Ok(real) = serde_json::from_value::<Hash>(result.clone()) else {
                    return;
                };
                if let Some(forged) = self.forged_hash(real).await {
                    *result = serde_json::to_value(forged).expect("serialisable");
                }
            }
            "state_getReadProof" if lie == Lie::ForgedProofs => {
                let Ok(proofs) = serde_json::from_value::<Vec<Bytes>>(result["proof"].clone())
                else {
                    return;
                };
                let proofs: Vec<Bytes> = proofs
                    .into_iter()
                    .map(|p| {
                        let mut proof = ReadProof::decode(&mut &p.0[..]).expect("a read proof");
                        proof.value = match proof.value {
                            Some(_) => None,
                            None => Some(vec![0]),
                        };
                        Bytes(proof.encode())
                    })
                    .collect();
                result["proof"] = serde_json::to_value(proofs).expect("serialisable");
            }
            "gridchain_commitCertificate"
                if lie == Lie::ForgedCertificates && !result.is_null() =>
            {
                let Ok(real) = serde_json::from_value::<Hash>(result["blockHash"].clone()) else {
                    return;
                };
                if let Some(forged) = self.forged_hash(real).await {
                    result["blockHash"] = serde_json::to_value(forged).expect("serialisable");
                }
            }
            _ => {}
        }
    }
}

impl LyingProxy {
    pub async fn start(upstream: u16) -> LyingProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port");
        let port = listener.local_addr().expect("bound").port();
        let lie = Arc::new(AtomicU8::new(Lie::Nothing as u8));
        let lie_in_task = lie.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let lie = lie_in_task.clone();
                connections.spawn(async move {
                    let Ok(client) = tokio_tungstenite::accept_async(inbound).await else {
                        return;
                    };
                    let Ok((server, _)) =
                        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{upstream}"))
                            .await
                    else {
                        return;
                    };
                    let Ok(upstream) = WsClientBuilder::default()
                        .build(format!("ws://127.0.0.1:{upstream}"))
                        .await
                    else {
                        return;
                    };
                    let forger = Arc::new(Forger {
                        upstream,
                        real_of: Mutex::new(HashMap::new()),
                    });
                    let (mut to_client, mut from_client) = client.split();
                    let (mut to_server, mut from_server) = server.split();
                    // Request id → method, to know what an answer answers.
                    let methods = Arc::new(Mutex::new(HashMap::<String, String>::new()));
                    let up_methods = methods.clone();
                    let up_forger = forger.clone();
                    let up = async move {
                        while let Some(Ok(mut msg)) = from_client.next().await {
                            if let Message::Text(text) = &msg {
                                if let Ok(mut v) = serde_json::from_str::<Value>(text) {
                                    let calls = match &mut v {
                                        Value::Array(a) => a.iter_mut().collect::<Vec<_>>(),
                                        one => vec![one],
                                    };
                                    for call in calls {
                                        if let (Some(id), Some(method)) =
                                            (call.get("id"), call["method"].as_str())
                                        {
                                            up_methods
                                                .lock()
                                                .expect("not poisoned")
                                                .insert(id.to_string(), method.to_string());
                                        }
                                        if let Some(params) = call.get_mut("params") {
                                            up_forger.unforge_params(params);
                                        }
                                    }
                                    msg = Message::Text(v.to_string().into());
                                }
                            }
                            if to_server.send(msg).await.is_err() {
                                break;
                            }
                        }
                    };
                    let down = async move {
                        while let Some(Ok(msg)) = from_server.next().await {
                            let lie = Lie::from_u8(lie.load(Ordering::SeqCst));
                            let msg = match msg {
                                Message::Text(text) if lie != Lie::Nothing => {
                                    let Ok(mut v) = serde_json::from_str::<Value>(&text) else {
                                        continue;
                                    };
                                    let answers = match &mut v {
                                        Value::Array(a) => a.iter_mut().collect::<Vec<_>>(),
                                        one => vec![one],
                                    };
                                    for answer in answers {
                                        if answer["method"] == "chain_finalizedHead" {
                                            if matches!(
                                                lie,
                                                Lie::ForgedHeaders | Lie::ForgedCertificates
                                            ) {
                                                forger.forge(&mut answer["params"]["result"]);
                                            }
                                            continue;
                                        }
                                        let Some(id) = answer.get("id").map(Value::to_string)
                                        else {
                                            continue;
                                        };
                                        let method =
                                            methods.lock().expect("not poisoned").remove(&id);
                                        if let (Some(method), Some(result)) =
                                            (method, answer.get_mut("result"))
                                        {
                                            forger.rewrite_result(lie, &method, result).await;
                                        }
                                    }
                                    Message::Text(v.to_string().into())
                                }
                                other => other,
                            };
                            if to_client.send(msg).await.is_err() {
                                break;
                            }
                        }
                    };
                    tokio::select! {
                        () = up => {},
                        () = down => {},
                    }
                });
            }
        });
        LyingProxy { port, lie, task }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// From now on, lie like this (on every connection, open or new).
    pub fn lie(&self, lie: Lie) {
        self.lie.store(lie as u8, Ordering::SeqCst);
    }
}
