//! `grid node list|show`: 3Nodes with their live status, health and capacity.

use crate::{
    deployment::{format_resources, format_size, parse_size},
    output::Rendered,
    rpc::{Node, NodeClient},
};
use anyhow::{anyhow, Result};
use clap::{Subcommand, ValueEnum};
use gridchain_rpc_api::{grid::MAX_PAGE, ChainApiClient, GridApiClient, NodeFilter, NodeInfo};
use gridchain_runtime::tfgrid::{FarmId, NodeId, NodeStatus, Resources};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Up,
    Down,
    Standby,
}

/// A size with a unit (`64MiB`, `1GiB`) or bytes, for clap.
fn size_arg(text: &str) -> Result<u64, String> {
    parse_size(text)
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes, optionally only those of a farm, in a status, or with enough free capacity.
    List {
        /// Only nodes of this farm.
        #[arg(long, value_name = "ID")]
        farm: Option<FarmId>,
        /// Only nodes in this status (live, at the best block's time).
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only nodes with at least this many free logical cores.
        #[arg(long, value_name = "N")]
        min_free_cru: Option<u64>,
        /// Only nodes with at least this much free memory (bytes, or with a unit: 4GiB).
        #[arg(long, value_name = "SIZE", value_parser = size_arg)]
        min_free_mru: Option<u64>,
        /// Only nodes with at least this much free SSD (bytes, or with a unit).
        #[arg(long, value_name = "SIZE", value_parser = size_arg)]
        min_free_sru: Option<u64>,
        /// Only nodes with at least this much free HDD (bytes, or with a unit).
        #[arg(long, value_name = "SIZE", value_parser = size_arg)]
        min_free_hru: Option<u64>,
    },
    /// Show a node: status, health, and capacity (total, system reserve, reserved, free).
    Show {
        /// Node id.
        id: NodeId,
    },
}

pub enum NodeRequest {
    List(NodeFilter),
    Show(NodeId),
}

impl NodeRequest {
    pub fn prepare(command: NodeCommand) -> Self {
        match command {
            NodeCommand::List {
                farm,
                status,
                min_free_cru,
                min_free_mru,
                min_free_sru,
                min_free_hru,
            } => {
                let any_min = min_free_cru.is_some()
                    || min_free_mru.is_some()
                    || min_free_sru.is_some()
                    || min_free_hru.is_some();
                NodeRequest::List(NodeFilter {
                    farm_id: farm,
                    status: status.map(|s| match s {
                        StatusArg::Up => NodeStatus::Up,
                        StatusArg::Down => NodeStatus::Down,
                        StatusArg::Standby => NodeStatus::Standby,
                    }),
                    min_free: any_min.then(|| Resources {
                        cru: min_free_cru.unwrap_or(0),
                        mru: min_free_mru.unwrap_or(0),
                        sru: min_free_sru.unwrap_or(0),
                        hru: min_free_hru.unwrap_or(0),
                    }),
                    start: None,
                    limit: None,
                })
            }
            NodeCommand::Show { id } => NodeRequest::Show(id),
        }
    }

    pub async fn execute<C: NodeClient>(self, node: &Node<'_, C>) -> Result<Rendered> {
        match self {
            NodeRequest::List(filter) => {
                let nodes = list_all(node, filter).await?;
                let mut text = format!("{} nodes", nodes.len());
                for info in &nodes {
                    text.push_str(&format!(
                        "\n  {:>5}  farm {:<5} {:<8} free: {}",
                        info.node.id,
                        info.node.farm_id,
                        status_text(info.status),
                        format_resources(&info.capacity.free)
                    ));
                }
                Ok(Rendered::new(serde_json::to_value(&nodes)?, text))
            }
            NodeRequest::Show(id) => {
                let info = node
                    .read(GridApiClient::node(node.client, id, None))
                    .await?
                    .ok_or_else(|| anyhow!("no node {id}"))?;
                let now_ms = node
                    .read(node.client.header(None))
                    .await?
                    .map(|h| h.timestamp_ms);
                Ok(Rendered::new(
                    serde_json::to_value(&info)?,
                    node_text(&info, now_ms),
                ))
            }
        }
    }
}

pub fn status_text(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Up => "up",
        NodeStatus::Down => "down",
        NodeStatus::Standby => "standby",
    }
}

fn node_text(info: &NodeInfo, now_ms: Option<u64>) -> String {
    let n = &info.node;
    let h = &info.health;
    let c = &info.capacity;
    let location = [&n.location.city, &n.location.country]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let last_proof = match (h.last_proof_ms, now_ms) {
        (None, _) => "never".to_string(),
        (Some(at), Some(now)) => format!(
            "{at} ms ({} s before the best block)",
            now.saturating_sub(at) / 1000
        ),
        (Some(at), None) => format!("{at} ms"),
    };
    let mut text = format!(
        "node {} on farm {} (twin {})\naccount:     {}\nstatus:      {}\nlocation:    {}\npublic:      {}\n\nhealth\n  last proof:  {}\n  up time:     {} s\n  measured:    {}\n  used:        {}\n  below reserved capacity: {}\n\ncapacity     {:>12} {:>12} {:>12} {:>12}",
        n.id,
        n.farm_id,
        n.twin_id,
        n.account,
        status_text(info.status),
        if location.is_empty() { "-" } else { &location },
        n.public_config
            .as_ref()
            .map_or("-".to_string(), |p| format!("{} (gw {})", p.ipv4, p.gw4)),
        last_proof,
        h.up_clock_ms / 1000,
        format_resources(&h.measured),
        format_resources(&h.used_reported),
        if h.below_reserved { "yes: takes no new reservations" } else { "no" },
        "total",
        "system",
        "reserved",
        "free",
    );
    type Column = fn(&Resources) -> String;
    let rows: [(&str, Column); 4] = [
        ("cores", |r| r.cru.to_string()),
        ("memory", |r| format_size(r.mru)),
        ("ssd", |r| format_size(r.sru)),
        ("hdd", |r| format_size(r.hru)),
    ];
    for (label, value) in rows {
        text.push_str(&format!(
            "\n  {label:<10} {:>12} {:>12} {:>12} {:>12}",
            value(&c.total),
            value(&c.system_reserve),
            value(&c.reserved),
            value(&c.free)
        ));
    }
    text
}

async fn list_all<C: NodeClient>(node: &Node<'_, C>, filter: NodeFilter) -> Result<Vec<NodeInfo>> {
    let mut all = Vec::new();
    let mut filter = NodeFilter {
        limit: Some(MAX_PAGE),
        ..filter
    };
    loop {
        let page = node
            .read(node.client.list_nodes(filter.clone(), None))
            .await?;
        let Some(last) = page.last().map(|n| n.node.id) else {
            return Ok(all);
        };
        let full = page.len() as u32 == MAX_PAGE;
        all.extend(page);
        if !full {
            return Ok(all);
        }
        filter.start = Some(last + 1);
    }
}
