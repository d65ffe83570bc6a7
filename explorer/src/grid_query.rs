//! Read queries over the grid tables (see [`crate::grid_sync`]): farms, nodes with filters and
//! sorting, node detail with capacity and uptime, reservations, twins.

use crate::{
    db::DbError,
    query::{page_offset, PageOutOfRange, Paged, PAGE_SIZE},
};
use gridchain_rpc_api::NodeInfo;
use gridchain_runtime::{
    reservations::{self, Reservation, ResultData, WorkloadSpec},
    tfgrid::{Farm, Resources},
    twins::Twin,
};
use rusqlite::{params, types::Value as SqlValue, Connection, OptionalExtension};
use serde::Serialize;

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GridTotals {
    /// The block of the last grid snapshot, if any.
    pub synced_at_block: Option<u64>,
    pub twins: u64,
    pub farms: u64,
    pub nodes: u64,
    pub nodes_up: u64,
    /// Reservations that are not deleted.
    pub active_reservations: u64,
    pub total: Resources,
    pub reserved: Resources,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FarmRow {
    pub farm: Farm,
    pub nodes: u64,
    pub nodes_up: u64,
}

/// A row of the nodes table.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    pub id: u32,
    pub farm_id: u32,
    pub farm_name: Option<String>,
    pub account: String,
    pub status: String,
    pub total: Resources,
    pub free: Resources,
    pub last_proof_ms: Option<u64>,
}

/// Filters and order of the nodes table, as given in the query string.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeQuery {
    pub farm: Option<u32>,
    pub status: Option<NodeStatusFilter>,
    /// Minimum free resources: cores, then bytes.
    pub min_free: Resources,
    pub sort: NodeSort,
    pub descending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeStatusFilter {
    Up,
    Down,
    Standby,
}

impl NodeStatusFilter {
    pub const ALL: [NodeStatusFilter; 3] = [Self::Up, Self::Down, Self::Standby];

    pub fn name(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Standby => "standby",
        }
    }
}

/// Columns the nodes table sorts by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeSort {
    #[default]
    Id,
    Farm,
    Status,
    FreeCru,
    FreeMru,
    FreeSru,
    FreeHru,
    LastProof,
}

impl NodeSort {
    pub const ALL: [NodeSort; 8] = [
        Self::Id,
        Self::Farm,
        Self::Status,
        Self::FreeCru,
        Self::FreeMru,
        Self::FreeSru,
        Self::FreeHru,
        Self::LastProof,
    ];

    /// The query-string name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Farm => "farm",
            Self::Status => "status",
            Self::FreeCru => "freeCru",
            Self::FreeMru => "freeMru",
            Self::FreeSru => "freeSru",
            Self::FreeHru => "freeHru",
            Self::LastProof => "lastProof",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Self::Id => "n.id",
            Self::Farm => "n.farm_id",
            Self::Status => "n.status",
            Self::FreeCru => "n.free_cru",
            Self::FreeMru => "n.free_mru",
            Self::FreeSru => "n.free_sru",
            Self::FreeHru => "n.free_hru",
            Self::LastProof => "n.last_proof_ms",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeDetail {
    pub info: NodeInfo,
    pub farm_name: Option<String>,
    /// Share of time Up, over the window or since the node's first recorded status.
    pub uptime_24h_percent: Option<f64>,
    pub uptime_30d_percent: Option<f64>,
    /// Percent Up per hour, oldest first, for the last 24 hours (`None`: not known yet).
    pub uptime_hourly_percent: Vec<Option<f64>>,
    /// Chain time the uptime is measured up to (the last grid snapshot).
    pub measured_until_ms: u64,
    pub reservations: Vec<Reservation>,
}

/// Capacity totals at one snapshot, for the capacity chart.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacitySample {
    pub block_number: u64,
    pub nodes_up: u64,
    pub total: Resources,
    pub reserved: Resources,
}

fn resources(cru: i64, mru: i64, sru: i64, hru: i64) -> Resources {
    Resources {
        cru: cru as u64,
        mru: mru as u64,
        sru: sru as u64,
        hru: hru as u64,
    }
}

pub fn totals(conn: &Connection) -> Result<GridTotals, DbError> {
    let synced_at_block = conn
        .query_row("SELECT block_number FROM grid_sync WHERE id = 1", [], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .map(|n| n as u64);
    Ok(conn.query_row(
        "SELECT (SELECT count(*) FROM twins), (SELECT count(*) FROM farms),
                (SELECT count(*) FROM nodes), (SELECT count(*) FROM nodes WHERE status = 'up'),
                (SELECT count(*) FROM reservations WHERE state != 'deleted'),
                coalesce(sum(total_cru), 0), coalesce(sum(total_mru), 0),
                coalesce(sum(total_sru), 0), coalesce(sum(total_hru), 0),
                coalesce(sum(reserved_cru), 0), coalesce(sum(reserved_mru), 0),
                coalesce(sum(reserved_sru), 0), coalesce(sum(reserved_hru), 0)
         FROM nodes",
        [],
        |r| {
            Ok(GridTotals {
                synced_at_block,
                twins: r.get::<_, i64>(0)? as u64,
                farms: r.get::<_, i64>(1)? as u64,
                nodes: r.get::<_, i64>(2)? as u64,
                nodes_up: r.get::<_, i64>(3)? as u64,
                active_reservations: r.get::<_, i64>(4)? as u64,
                total: resources(r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?),
                reserved: resources(r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?),
            })
        },
    )?)
}

pub fn farms(conn: &Connection) -> Result<Vec<FarmRow>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT f.data, count(n.id), coalesce(sum(n.status = 'up'), 0)
         FROM farms f LEFT JOIN nodes n ON n.farm_id = f.id GROUP BY f.id ORDER BY f.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)? as u64,
            r.get::<_, i64>(2)? as u64,
        ))
    })?;
    rows.map(|row| {
        let (data, nodes, nodes_up) = row?;
        Ok(FarmRow {
            farm: serde_json::from_str(&data)?,
            nodes,
            nodes_up,
        })
    })
    .collect()
}

pub fn farm_id_by_name(conn: &Connection, name: &str) -> Result<Option<u32>, DbError> {
    Ok(conn
        .query_row("SELECT id FROM farms WHERE name = ?1", [name], |r| r.get(0))
        .optional()?)
}

pub fn nodes(
    conn: &Connection,
    q: &NodeQuery,
    page: u64,
) -> Result<Result<Paged<NodeRow>, PageOutOfRange>, DbError> {
    let mut filter = String::from(
        "n.free_cru >= ?1 AND n.free_mru >= ?2 AND n.free_sru >= ?3 AND n.free_hru >= ?4",
    );
    let mut args: Vec<SqlValue> = vec![
        SqlValue::Integer(q.min_free.cru.min(i64::MAX as u64) as i64),
        SqlValue::Integer(q.min_free.mru.min(i64::MAX as u64) as i64),
        SqlValue::Integer(q.min_free.sru.min(i64::MAX as u64) as i64),
        SqlValue::Integer(q.min_free.hru.min(i64::MAX as u64) as i64),
    ];
    if let Some(farm) = q.farm {
        args.push(SqlValue::Integer(farm.into()));
        filter.push_str(&format!(" AND n.farm_id = ?{}", args.len()));
    }
    if let Some(status) = q.status {
        args.push(SqlValue::Text(status.name().into()));
        filter.push_str(&format!(" AND n.status = ?{}", args.len()));
    }
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) FROM nodes n WHERE {filter}"),
        rusqlite::params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    let (offset, pages) = match page_offset(page, total as u64) {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    let direction = if q.descending { "DESC" } else { "ASC" };
    args.push(SqlValue::Integer(PAGE_SIZE as i64));
    args.push(SqlValue::Integer(offset as i64));
    let sql = format!(
        "SELECT n.id, n.farm_id, f.name, n.account, n.status, n.total_cru, n.total_mru,
                n.total_sru, n.total_hru, n.free_cru, n.free_mru, n.free_sru, n.free_hru,
                n.last_proof_ms
         FROM nodes n LEFT JOIN farms f ON f.id = n.farm_id
         WHERE {filter} ORDER BY {} {direction}, n.id {direction} LIMIT ?{} OFFSET ?{}",
        q.sort.column(),
        args.len() - 1,
        args.len()
    );
    let mut stmt = conn.prepare(&sql)?;
    let items = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok(NodeRow {
                id: r.get(0)?,
                farm_id: r.get(1)?,
                farm_name: r.get(2)?,
                account: r.get(3)?,
                status: r.get(4)?,
                total: resources(r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?),
                free: resources(r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?),
                last_proof_ms: r.get::<_, Option<i64>>(13)?.map(|t| t as u64),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Ok(Paged {
        page,
        page_size: PAGE_SIZE,
        pages,
        total: total as u64,
        items,
    }))
}

pub fn node(conn: &Connection, id: u32) -> Result<Option<NodeDetail>, DbError> {
    let row = conn
        .query_row(
            "SELECT n.data, f.name FROM nodes n LEFT JOIN farms f ON f.id = n.farm_id
             WHERE n.id = ?1",
            [id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
        )
        .optional()?;
    let Some((data, farm_name)) = row else {
        return Ok(None);
    };
    let info: NodeInfo = serde_json::from_str(&data)?;
    let until: u64 = conn
        .query_row("SELECT timestamp_ms FROM grid_sync WHERE id = 1", [], |r| {
            r.get::<_, i64>(0)
        })?
        .max(0) as u64;
    let mut stmt = conn.prepare_cached(
        "SELECT timestamp_ms, status FROM node_status_changes WHERE node_id = ?1
         ORDER BY timestamp_ms",
    )?;
    let changes: Vec<(u64, bool)> = stmt
        .query_map([id], |r| {
            Ok((
                r.get::<_, i64>(0)?.max(0) as u64,
                r.get::<_, String>(1)? == "up",
            ))
        })?
        .collect::<Result<_, _>>()?;
    let hourly = (0..24u64)
        .map(|h| {
            let from = until.saturating_sub((24 - h) * HOUR_MS);
            uptime_percent(&changes, from, from + HOUR_MS)
        })
        .collect();
    Ok(Some(NodeDetail {
        farm_name,
        uptime_24h_percent: uptime_percent(&changes, until.saturating_sub(DAY_MS), until),
        uptime_30d_percent: uptime_percent(&changes, until.saturating_sub(30 * DAY_MS), until),
        uptime_hourly_percent: hourly,
        measured_until_ms: until,
        reservations: reservations_where(conn, "node_id = ?1", &[id.into()], 0, u64::MAX)?,
        info,
    }))
}

/// Percent of `[from, to)` that a node whose status changed as `changes` (time, is up) was Up,
/// counted from its first known status; `None` if nothing is known about that window.
pub fn uptime_percent(changes: &[(u64, bool)], from: u64, to: u64) -> Option<f64> {
    let start = from.max(changes.first()?.0);
    if to <= start {
        return None;
    }
    let mut up_ms = 0u64;
    for (i, (since, up)) in changes.iter().enumerate() {
        let until = changes.get(i + 1).map_or(to, |(next, _)| *next);
        let (a, b) = ((*since).max(start), until.min(to));
        if *up && b > a {
            up_ms += b - a;
        }
    }
    Some(up_ms as f64 * 100.0 / (to - start) as f64)
}

fn reservations_where(
    conn: &Connection,
    filter: &str,
    args: &[SqlValue],
    offset: u64,
    limit: u64,
) -> Result<Vec<Reservation>, DbError> {
    let mut all = args.to_vec();
    all.push(SqlValue::Integer(limit.min(i64::MAX as u64) as i64));
    all.push(SqlValue::Integer(offset as i64));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT data FROM reservations WHERE {filter} ORDER BY id DESC LIMIT ?{} OFFSET ?{}",
        all.len() - 1,
        all.len()
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(all.iter()), |r| {
        r.get::<_, String>(0)
    })?;
    rows.map(|data| Ok(serde_json::from_str(&data?)?)).collect()
}

/// Reservations, newest first, optionally of one owner and/or on one node.
pub fn reservations(
    conn: &Connection,
    owner: Option<&str>,
    node: Option<u32>,
    page: u64,
) -> Result<Result<Paged<Reservation>, PageOutOfRange>, DbError> {
    let mut filter = String::from("1 = 1");
    let mut args = Vec::new();
    if let Some(owner) = owner {
        args.push(SqlValue::Text(owner.to_string()));
        filter.push_str(&format!(" AND owner = ?{}", args.len()));
    }
    if let Some(node) = node {
        args.push(SqlValue::Integer(node.into()));
        filter.push_str(&format!(" AND node_id = ?{}", args.len()));
    }
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) FROM reservations WHERE {filter}"),
        rusqlite::params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    let (offset, pages) = match page_offset(page, total as u64) {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(Paged {
        page,
        page_size: PAGE_SIZE,
        pages,
        total: total as u64,
        items: reservations_where(conn, &filter, &args, offset, PAGE_SIZE)?,
    }))
}

pub fn reservation(conn: &Connection, id: u64) -> Result<Option<Reservation>, DbError> {
    let data = conn
        .query_row(
            "SELECT data FROM reservations WHERE id = ?1",
            [id.min(i64::MAX as u64) as i64],
            |r| r.get::<_, String>(0),
        )
        .optional()?;
    Ok(data.map(|d| serde_json::from_str(&d)).transpose()?)
}

/// One private network across nodes as the indexed reservations show it: the live reservations
/// of `owner` whose network `network` is in a mesh, oldest first (the chain's members), with
/// what each node reported.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshView {
    pub owner: String,
    pub network: String,
    pub range: Option<String>,
    pub members: Vec<MeshMemberView>,
    /// The owner's WireGuard peers (address, base64 key), once each.
    pub peers: Vec<(String, String)>,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshMemberView {
    pub reservation: u64,
    pub node_id: u32,
    pub subnet: String,
    /// The node's WireGuard key and endpoint, once it reported them.
    pub wireguard: Option<reservations::WireguardEndpoint>,
}

pub fn mesh(conn: &Connection, owner: &str, network: &str) -> Result<MeshView, DbError> {
    // Live ones only, in SQL: an owner's history of deleted reservations grows without bound,
    // and anyone may ask for this page.
    let mut stmt = conn.prepare(
        "SELECT data FROM reservations WHERE owner = ?1 AND state != 'deleted' ORDER BY id",
    )?;
    let rows = stmt.query_map([owner], |r| r.get::<_, String>(0))?;
    let mut view = MeshView {
        owner: owner.to_string(),
        network: network.to_string(),
        range: None,
        members: vec![],
        peers: vec![],
    };
    for data in rows {
        let r: Reservation = serde_json::from_str(&data?)?;
        for w in r.deployment.workloads.iter().filter(|w| w.name == network) {
            let WorkloadSpec::Network {
                ip_range,
                mesh: Some(mesh),
                ..
            } = &w.spec
            else {
                continue;
            };
            view.range.get_or_insert_with(|| mesh.range.clone());
            for p in &mesh.peers {
                let key = p.public_key.to_base64();
                if !view.peers.iter().any(|(_, k)| *k == key) {
                    view.peers.push((p.ip.clone(), key));
                }
            }
            let wireguard = r.results.iter().find_map(|x| match &x.data {
                ResultData::Network { wireguard, .. } if x.name == network => wireguard.clone(),
                _ => None,
            });
            view.members.push(MeshMemberView {
                reservation: r.id,
                node_id: r.node_id,
                subnet: ip_range.clone(),
                wireguard,
            });
        }
    }
    Ok(view)
}

/// Twins whose name contains `search` (all twins if empty), by id.
pub fn twins(
    conn: &Connection,
    search: &str,
    page: u64,
) -> Result<Result<Paged<Twin>, PageOutOfRange>, DbError> {
    let pattern = format!(
        "%{}%",
        search
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let total: i64 = conn.query_row(
        "SELECT count(*) FROM twins WHERE name LIKE ?1 ESCAPE '\\'",
        [&pattern],
        |r| r.get(0),
    )?;
    let (offset, pages) = match page_offset(page, total as u64) {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    let mut stmt = conn.prepare_cached(
        "SELECT data FROM twins WHERE name LIKE ?1 ESCAPE '\\' ORDER BY id LIMIT ?2 OFFSET ?3",
    )?;
    let items = stmt
        .query_map(params![pattern, PAGE_SIZE as i64, offset as i64], |r| {
            r.get::<_, String>(0)
        })?
        .map(|data| Ok(serde_json::from_str(&data?)?))
        .collect::<Result<_, DbError>>()?;
    Ok(Ok(Paged {
        page,
        page_size: PAGE_SIZE,
        pages,
        total: total as u64,
        items,
    }))
}

pub fn twin_by_account(conn: &Connection, address: &str) -> Result<Option<Twin>, DbError> {
    let data = conn
        .query_row(
            "SELECT data FROM twins WHERE account = ?1",
            [address],
            |r| r.get::<_, String>(0),
        )
        .optional()?;
    Ok(data.map(|d| serde_json::from_str(&d)).transpose()?)
}

pub fn twin_exists_by_name(conn: &Connection, name: &str) -> Result<bool, DbError> {
    Ok(conn
        .query_row("SELECT 1 FROM twins WHERE name = ?1", [name], |_| Ok(()))
        .optional()?
        .is_some())
}

pub fn node_exists(conn: &Connection, id: u32) -> Result<bool, DbError> {
    Ok(conn
        .query_row("SELECT 1 FROM nodes WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The last `limit` capacity samples, oldest first.
pub fn capacity_history(conn: &Connection, limit: u64) -> Result<Vec<CapacitySample>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT block_number, nodes_up, total_cru, total_mru, total_sru, total_hru,
                reserved_cru, reserved_mru, reserved_sru, reserved_hru
         FROM capacity_samples ORDER BY block_number DESC LIMIT ?1",
    )?;
    let mut samples: Vec<CapacitySample> = stmt
        .query_map([limit as i64], |r| {
            Ok(CapacitySample {
                block_number: r.get::<_, i64>(0)? as u64,
                nodes_up: r.get::<_, i64>(1)? as u64,
                total: resources(r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
                reserved: resources(r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?),
            })
        })?
        .collect::<Result<_, _>>()?;
    samples.reverse();
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::uptime_percent;

    #[test]
    fn uptime_integrates_status_changes() {
        // standby at 0, up at 100, down at 300, up at 350
        let changes = [(0, false), (100, true), (300, false), (350, true)];
        assert_eq!(uptime_percent(&changes, 0, 400), Some(62.5));
        assert_eq!(uptime_percent(&changes, 100, 300), Some(100.0));
        // window starting before the first status counts from the first status
        assert_eq!(uptime_percent(&[(200, true)], 0, 400), Some(100.0));
        assert_eq!(uptime_percent(&[(500, true)], 0, 400), None);
        assert_eq!(uptime_percent(&[], 0, 400), None);
    }
}
