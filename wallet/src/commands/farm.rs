//! `grid farm create|show|list|allow-node|disallow-node|add-ip|remove-ip`: farms, which group 3Nodes under a
//! pricing policy and a payout account. A node registers on a farm only after the farm's owner
//! allowed its key (`allow-node`).

use crate::{
    accounts::{resolve_account, resolve_signer, KeystoreLocation},
    commands::submit::{find_event, submit_call, transaction_json},
    output::{Progress, Rendered},
    rpc::{Node, NodeClient},
};
use anyhow::{bail, Result};
use clap::Subcommand;
use gridchain_primitives::{AccountId, Pair};
use gridchain_rpc_api::{grid::MAX_PAGE, GridApiClient};
use gridchain_runtime::{
    tfgrid::{self, Farm, FarmId, PricingPolicyId},
    Call, Event,
};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum FarmCommand {
    /// Create a farm owned by the signer (who needs a twin); prints its id.
    Create {
        /// Unique name: 1 to 64 letters, digits, '-', '_' or '.'.
        name: String,
        /// Pricing policy id (see the chain spec; the dev chain has policy 1).
        #[arg(long, value_name = "ID", default_value_t = 1)]
        pricing_policy: PricingPolicyId,
        /// Signing key: name of a key in the keystore, or a secret URI.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
    },
    /// Show a farm by id or name, with its nodes.
    Show {
        /// Farm id or name.
        farm: String,
    },
    /// List every farm.
    List,
    /// Farm owner: let the node whose key is ACCOUNT register on the farm (once).
    AllowNode(NodeConsent),
    /// Farm owner: withdraw an allowance the node has not used yet.
    DisallowNode(NodeConsent),
    /// Farm owner: list a public IPv4 address the farm's nodes may give to `publicIp`
    /// workloads (the chain assigns it at reserve).
    AddIp {
        farm: FarmId,
        /// `a.b.c.d/prefix`: the address and its network's length.
        ip: String,
        /// The farm's router for it, inside that network.
        #[arg(long)]
        gateway: String,
        /// Signing key (the farm's owner): name of a key in the keystore, or a secret URI.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
    },
    /// Farm owner: take a public IP off the list (refused while a reservation holds it).
    RemoveIp {
        farm: FarmId,
        /// As listed: `a.b.c.d/prefix`.
        ip: String,
        /// Signing key (the farm's owner): name of a key in the keystore, or a secret URI.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
    },
}

/// Which farm, which node key, signed by whom.
#[derive(Debug, clap::Args)]
pub struct NodeConsent {
    farm: FarmId,
    /// The node's account: address or keystore name.
    account: String,
    /// Signing key (the farm's owner): name of a key in the keystore, or a secret URI.
    #[arg(long, value_name = "NAME|SECRET_URI")]
    from: Option<String>,
}

#[allow(clippy::large_enum_variant)] // one per run
pub enum FarmRequest {
    Create {
        signer: Pair,
        name: String,
        pricing_policy: PricingPolicyId,
    },
    Show(String),
    List,
    Consent {
        signer: Pair,
        farm: FarmId,
        account: AccountId,
        allow: bool,
    },
    /// Adds (`gateway` given) or removes a public IP.
    Ip {
        signer: Pair,
        farm: FarmId,
        ip: String,
        gateway: Option<String>,
    },
}

impl FarmRequest {
    pub fn prepare(command: FarmCommand, keystore: &KeystoreLocation) -> Result<Self> {
        Ok(match command {
            FarmCommand::Create {
                name,
                pricing_policy,
                from,
            } => FarmRequest::Create {
                signer: resolve_signer(from.as_deref(), keystore)?,
                name,
                pricing_policy,
            },
            FarmCommand::Show { farm } => FarmRequest::Show(farm.trim().to_string()),
            FarmCommand::List => FarmRequest::List,
            FarmCommand::AllowNode(consent) => Self::consent(consent, true, keystore)?,
            FarmCommand::DisallowNode(consent) => Self::consent(consent, false, keystore)?,
            FarmCommand::AddIp {
                farm,
                ip,
                gateway,
                from,
            } => FarmRequest::Ip {
                signer: resolve_signer(from.as_deref(), keystore)?,
                farm,
                ip,
                gateway: Some(gateway),
            },
            FarmCommand::RemoveIp { farm, ip, from } => FarmRequest::Ip {
                signer: resolve_signer(from.as_deref(), keystore)?,
                farm,
                ip,
                gateway: None,
            },
        })
    }

    fn consent(consent: NodeConsent, allow: bool, keystore: &KeystoreLocation) -> Result<Self> {
        Ok(FarmRequest::Consent {
            signer: resolve_signer(consent.from.as_deref(), keystore)?,
            farm: consent.farm,
            account: resolve_account(&consent.account, keystore)?,
            allow,
        })
    }

    pub async fn execute<C: NodeClient>(
        self,
        node: &Node<'_, C>,
        mut progress: Progress,
    ) -> Result<Rendered> {
        match self {
            FarmRequest::Create {
                signer,
                name,
                pricing_policy,
            } => {
                let call = Call::Tfgrid(tfgrid::Call::CreateFarm {
                    name,
                    pricing_policy_id: pricing_policy,
                });
                let info = submit_call(node, &signer, call, &mut progress).await?;
                let id = find_event(&info, |e| match e {
                    Event::Tfgrid(tfgrid::Event::FarmCreated { id, .. }) => Some(*id),
                    _ => None,
                });
                let farm = match id {
                    Some(id) => node.read(node.client.farm(id, None)).await?,
                    None => None,
                };
                let Some(farm) = farm else {
                    bail!("transaction {} succeeded but created no farm", info.hash);
                };
                let text = format!(
                    "farm {} created\n{}\ntransaction {} in block #{}",
                    farm.id,
                    farm_text(&farm, None),
                    info.hash,
                    info.block_number
                );
                let json = json!({
                    "id": farm.id,
                    "farm": farm,
                    "transaction": transaction_json(&info),
                });
                Ok(Rendered::new(json, text))
            }
            FarmRequest::Show(which) => {
                let farm = match which.parse::<FarmId>() {
                    Ok(id) => node.read(node.client.farm(id, None)).await?,
                    Err(_) => list_all(node)
                        .await?
                        .into_iter()
                        .find(|f| f.name.eq_ignore_ascii_case(&which)),
                };
                let Some(farm) = farm else {
                    bail!("no farm {which:?}");
                };
                let filter = gridchain_rpc_api::NodeFilter {
                    farm_id: Some(farm.id),
                    limit: Some(MAX_PAGE),
                    ..Default::default()
                };
                let nodes: Vec<_> = node
                    .read(node.client.list_nodes(filter, None))
                    .await?
                    .into_iter()
                    .map(|n| n.node.id)
                    .collect();
                let text = farm_text(&farm, Some(&nodes));
                let mut json = serde_json::to_value(&farm)?;
                json["nodes"] = json!(nodes);
                Ok(Rendered::new(json, text))
            }
            FarmRequest::Ip {
                signer,
                farm,
                ip,
                gateway,
            } => {
                let (call, verb) = match gateway {
                    Some(gateway) => (
                        tfgrid::Call::AddFarmIp {
                            farm_id: farm,
                            ip: ip.clone(),
                            gateway,
                        },
                        "listed on",
                    ),
                    None => (
                        tfgrid::Call::RemoveFarmIp {
                            farm_id: farm,
                            ip: ip.clone(),
                        },
                        "removed from",
                    ),
                };
                let info = submit_call(node, &signer, Call::Tfgrid(call), &mut progress).await?;
                let text = format!(
                    "public IP {ip} {verb} farm {farm}\ntransaction {} in block #{}",
                    info.hash, info.block_number
                );
                let json = json!({
                    "farm": farm,
                    "ip": ip,
                    "transaction": transaction_json(&info),
                });
                Ok(Rendered::new(json, text))
            }
            FarmRequest::Consent {
                signer,
                farm,
                account,
                allow,
            } => {
                let call = Call::Tfgrid(if allow {
                    tfgrid::Call::AllowNode {
                        farm_id: farm,
                        account,
                    }
                } else {
                    tfgrid::Call::DisallowNode {
                        farm_id: farm,
                        account,
                    }
                });
                let info = submit_call(node, &signer, call, &mut progress).await?;
                let verb = if allow {
                    "may now register on"
                } else {
                    "may no longer register on"
                };
                let text = format!(
                    "node key {account} {verb} farm {farm}\ntransaction {} in block #{}",
                    info.hash, info.block_number
                );
                let json = json!({
                    "farm": farm,
                    "account": account,
                    "allowed": allow,
                    "transaction": transaction_json(&info),
                });
                Ok(Rendered::new(json, text))
            }
            FarmRequest::List => {
                let farms = list_all(node).await?;
                let mut text = format!("{} farms", farms.len());
                for farm in &farms {
                    text.push_str(&format!(
                        "\n  {:>5}  {:<24} twin {:<5} policy {:<3} {} public IPs",
                        farm.id,
                        farm.name,
                        farm.twin_id,
                        farm.pricing_policy_id,
                        farm.public_ips.len()
                    ));
                }
                Ok(Rendered::new(serde_json::to_value(&farms)?, text))
            }
        }
    }
}

fn farm_text(farm: &Farm, nodes: Option<&[u32]>) -> String {
    let mut text = format!(
        "id:             {}\nname:           {}\ntwin:           {}\nowner:          {}\npayout:         {}\npricing policy: {}\npublic IPs:     {}",
        farm.id,
        farm.name,
        farm.twin_id,
        farm.owner,
        farm.payout,
        farm.pricing_policy_id,
        if farm.public_ips.is_empty() {
            "-".to_string()
        } else {
            farm.public_ips
                .iter()
                .map(|ip| match ip.reservation {
                    Some(id) => format!("{} (gw {}, reservation {id})", ip.ip, ip.gateway),
                    None => format!("{} (gw {}, free)", ip.ip, ip.gateway),
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if let Some(nodes) = nodes {
        let list = nodes
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        text.push_str(&format!(
            "\nnodes:          {}",
            if list.is_empty() { "-" } else { &list }
        ));
    }
    text
}

async fn list_all<C: NodeClient>(node: &Node<'_, C>) -> Result<Vec<Farm>> {
    let mut all = Vec::new();
    let mut start = None;
    loop {
        let page = node
            .read(node.client.list_farms(start, Some(MAX_PAGE), None))
            .await?;
        let Some(last) = page.last().map(|f| f.id) else {
            return Ok(all);
        };
        let full = page.len() as u32 == MAX_PAGE;
        all.extend(page);
        if !full {
            return Ok(all);
        }
        start = Some(last + 1);
    }
}
