//! `grid twin create|show`: the grid's phone book of digital selves.

use crate::{
    accounts::{resolve_signer, KeystoreLocation},
    commands::submit::{find_event, submit_call, transaction_json},
    keystore,
    output::{Progress, Rendered},
    rpc::{Node, NodeClient},
};
use anyhow::{bail, Result};
use clap::Subcommand;
use gridchain_primitives::{AccountId, Pair};
use gridchain_rpc_api::GridApiClient;
use gridchain_runtime::{
    twins::{self, Twin, TwinId},
    Call, Event,
};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum TwinCommand {
    /// Create the signer's twin (an account has at most one); prints its id.
    Create {
        /// Unique name: 1 to 64 letters, digits, '-', '_' or '.'.
        name: String,
        /// Where the twin can be reached (a URL or relay address).
        #[arg(long, default_value = "")]
        endpoint: String,
        /// Signing key: name of a key in the keystore, or a secret URI.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
    },
    /// Show a twin by id, address, twin name or keystore key name; without one, list all twins.
    Show {
        /// Twin id, address, twin name, or the name of a key in the keystore.
        twin: Option<String>,
    },
}

#[allow(clippy::large_enum_variant)] // one per run
pub enum TwinRequest {
    Create {
        signer: Pair,
        name: String,
        endpoint: String,
    },
    Show(TwinRef),
}

pub enum TwinRef {
    All,
    Id(TwinId),
    Account(AccountId),
    /// A twin name, or failing that a keystore key's account.
    Name(String, Option<AccountId>),
}

impl TwinRequest {
    pub fn prepare(command: TwinCommand, keystore: &KeystoreLocation) -> Result<Self> {
        Ok(match command {
            TwinCommand::Create {
                name,
                endpoint,
                from,
            } => TwinRequest::Create {
                signer: resolve_signer(from.as_deref(), keystore)?,
                name,
                endpoint,
            },
            TwinCommand::Show { twin: None } => TwinRequest::Show(TwinRef::All),
            TwinCommand::Show { twin: Some(text) } => {
                let text = text.trim().to_string();
                if let Ok(id) = text.parse::<TwinId>() {
                    TwinRequest::Show(TwinRef::Id(id))
                } else if let Ok(account) = text.parse::<AccountId>() {
                    TwinRequest::Show(TwinRef::Account(account))
                } else {
                    // A key of the keystore, if there is one by that name (a missing or
                    // unreadable keystore just means there is none).
                    let key_account = if keystore::looks_like_secret_uri(&text) {
                        None
                    } else {
                        keystore
                            .open()
                            .ok()
                            .and_then(|store| store.account(&text).ok().flatten())
                    };
                    TwinRequest::Show(TwinRef::Name(text, key_account))
                }
            }
        })
    }

    pub async fn execute<C: NodeClient>(
        self,
        node: &Node<'_, C>,
        mut progress: Progress,
    ) -> Result<Rendered> {
        match self {
            TwinRequest::Create {
                signer,
                name,
                endpoint,
            } => {
                let call = Call::Twins(twins::Call::CreateTwin { name, endpoint });
                let info = submit_call(node, &signer, call, &mut progress).await?;
                let id = find_event(&info, |e| match e {
                    Event::Twins(twins::Event::TwinCreated { id, .. }) => Some(*id),
                    _ => None,
                });
                let twin = match id {
                    Some(id) => {
                        node.read(GridApiClient::twin(node.client, id, None))
                            .await?
                    }
                    None => None,
                };
                let Some(twin) = twin else {
                    bail!("transaction {} succeeded but created no twin", info.hash);
                };
                let text = format!(
                    "twin {} created\n{}\ntransaction {} in block #{}",
                    twin.id,
                    twin_text(&twin),
                    info.hash,
                    info.block_number
                );
                let json = json!({
                    "id": twin.id,
                    "twin": twin,
                    "transaction": transaction_json(&info),
                });
                Ok(Rendered::new(json, text))
            }
            TwinRequest::Show(TwinRef::All) => {
                let twins = list_all(node).await?;
                let mut text = format!("{} twins", twins.len());
                for twin in &twins {
                    text.push_str(&format!(
                        "\n  {:>5}  {:<24} {}{}",
                        twin.id,
                        twin.name,
                        twin.account,
                        if twin.endpoint.is_empty() {
                            String::new()
                        } else {
                            format!("  {}", twin.endpoint)
                        }
                    ));
                }
                Ok(Rendered::new(serde_json::to_value(&twins)?, text))
            }
            TwinRequest::Show(which) => {
                let client = node.client;
                let (twin, what) = match which {
                    TwinRef::Id(id) => (
                        node.read(GridApiClient::twin(client, id, None)).await?,
                        format!("id {id}"),
                    ),
                    TwinRef::Account(account) => (
                        node.read(client.twin_by_account(account.to_string(), None))
                            .await?,
                        format!("account {account}"),
                    ),
                    TwinRef::Name(name, key_account) => {
                        let mut twin = node.read(client.twin_by_name(name.clone(), None)).await?;
                        if twin.is_none() {
                            if let Some(account) = key_account {
                                twin = node
                                    .read(client.twin_by_account(account.to_string(), None))
                                    .await?;
                            }
                        }
                        (twin, format!("name or key {name:?}"))
                    }
                    TwinRef::All => unreachable!("handled above"),
                };
                let Some(twin) = twin else {
                    bail!("no twin with {what}");
                };
                Ok(Rendered::new(
                    serde_json::to_value(&twin)?,
                    twin_text(&twin),
                ))
            }
        }
    }
}

fn twin_text(twin: &Twin) -> String {
    format!(
        "id:         {}\nname:       {}\naccount:    {}\nendpoint:   {}\nreferences: {} (farms, nodes, reservations)",
        twin.id,
        twin.name,
        twin.account,
        if twin.endpoint.is_empty() {
            "-"
        } else {
            &twin.endpoint
        },
        twin.references
    )
}

async fn list_all<C: NodeClient>(node: &Node<'_, C>) -> Result<Vec<Twin>> {
    let mut all = Vec::new();
    let mut start = None;
    loop {
        let page = node
            .read(
                node.client
                    .list_twins(start, Some(gridchain_rpc_api::grid::MAX_PAGE), None),
            )
            .await?;
        let Some(last) = page.last().map(|t| t.id) else {
            return Ok(all);
        };
        let full = page.len() as u32 == gridchain_rpc_api::grid::MAX_PAGE;
        all.extend(page);
        if !full {
            return Ok(all);
        }
        start = Some(last + 1);
    }
}
