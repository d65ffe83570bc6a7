//! A JSON-RPC man-in-the-middle on loopback: forwards WebSocket frames to a real node and, when
//! told to, rewrites what the agent must not trust.

use futures::{SinkExt, StreamExt};
use gridchain_primitives::{Bytes, Hash, Header, ReadProof};
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
    /// Also every header (`chain_getHeader`, final-head notifications) claims another state root.
    ForgedHeaders = 2,
    /// Also every read proof claims the opposite value (absent ↔ present).
    ForgedProofs = 3,
    /// Forged headers, and certificates rewritten to name the forged header's hash.
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

fn forge_header(header: &mut Value) -> Option<Hash> {
    if header.is_null() {
        return None;
    }
    header["stateRoot"] = Value::String(FORGED_ROOT.into());
    let parsed: Header = serde_json::from_value(header.clone()).ok()?;
    Some(parsed.hash())
}

fn rewrite_result(lie: Lie, method: &str, result: &mut Value, forged: &Mutex<HashMap<u64, Hash>>) {
    match method {
        "grid_nodeSnapshot" if !result.is_null() => {
            result["reservations"] = Value::Array(vec![]);
        }
        "chain_getHeader" if matches!(lie, Lie::ForgedHeaders | Lie::ForgedCertificates) => {
            if let Some(hash) = forge_header(result) {
                let number = result["number"].as_u64().unwrap_or_default();
                forged.lock().unwrap().insert(number, hash);
            }
        }
        "state_getReadProof" if lie == Lie::ForgedProofs => {
            let Ok(proofs) = serde_json::from_value::<Vec<Bytes>>(result["proof"].clone()) else {
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
            result["proof"] = serde_json::to_value(proofs).unwrap();
        }
        "gridchain_commitCertificate" if lie == Lie::ForgedCertificates && !result.is_null() => {
            let number = result["height"].as_u64().unwrap_or_default();
            if let Some(hash) = forged.lock().unwrap().get(&number) {
                result["blockHash"] = serde_json::to_value(hash).unwrap();
            }
        }
        _ => {}
    }
}

impl LyingProxy {
    pub async fn start(upstream: u16) -> LyingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
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
                    let (mut to_client, mut from_client) = client.split();
                    let (mut to_server, mut from_server) = server.split();
                    // Request id → method, to know what an answer answers.
                    let methods = Arc::new(Mutex::new(HashMap::<String, String>::new()));
                    // Height → hash of the header forged for it.
                    let forged = Mutex::new(HashMap::<u64, Hash>::new());
                    let up_methods = methods.clone();
                    let up = async move {
                        while let Some(Ok(msg)) = from_client.next().await {
                            if let Message::Text(text) = &msg {
                                if let Ok(v) = serde_json::from_str::<Value>(text) {
                                    let calls = match &v {
                                        Value::Array(a) => a.clone(),
                                        one => vec![one.clone()],
                                    };
                                    let mut m = up_methods.lock().unwrap();
                                    for call in calls {
                                        if let (Some(id), Some(method)) =
                                            (call.get("id"), call["method"].as_str())
                                        {
                                            m.insert(id.to_string(), method.to_string());
                                        }
                                    }
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
                                                let header = &mut answer["params"]["result"];
                                                if let Some(hash) = forge_header(header) {
                                                    let n = header["number"]
                                                        .as_u64()
                                                        .unwrap_or_default();
                                                    forged.lock().unwrap().insert(n, hash);
                                                }
                                            }
                                            continue;
                                        }
                                        let Some(id) = answer.get("id").map(Value::to_string)
                                        else {
                                            continue;
                                        };
                                        let method = methods.lock().unwrap().remove(&id);
                                        if let (Some(method), Some(result)) =
                                            (method, answer.get_mut("result"))
                                        {
                                            rewrite_result(lie, &method, result, &forged);
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
