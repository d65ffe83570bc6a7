//! Read queries over the index, returning the views the pages render and the JSON API returns.
//! Every list is bounded; paging is by page number with a fixed page size.

use crate::db::DbError;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::Value;

pub const PAGE_SIZE: u64 = 25;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockSummary {
    pub number: u64,
    pub hash: String,
    pub timestamp_ms: u64,
    pub proposer: String,
    pub extrinsic_count: u64,
    pub event_count: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtrinsicSummary {
    pub hash: String,
    pub block_number: u64,
    pub index: u32,
    pub signer: String,
    pub pallet: String,
    pub call_name: String,
    pub success: bool,
    /// Smallest units, as a decimal string.
    pub fee: String,
    pub timestamp_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub index: u32,
    pub extrinsic_index: Option<u32>,
    pub phase: String,
    pub pallet: String,
    pub name: String,
    pub data: Value,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDetail {
    pub number: u64,
    pub hash: String,
    pub parent_hash: String,
    pub state_root: String,
    pub extrinsics_root: String,
    pub proposer: String,
    pub timestamp_ms: u64,
    /// Milliseconds since the parent block.
    pub block_time_ms: Option<u64>,
    /// Whether the next block is indexed too (for a "next" link).
    pub has_next: bool,
    pub extrinsics: Vec<ExtrinsicSummary>,
    pub events: Vec<EventView>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtrinsicDetail {
    pub hash: String,
    pub block_number: u64,
    pub block_hash: String,
    pub index: u32,
    pub timestamp_ms: u64,
    pub signer: String,
    pub nonce: u64,
    pub valid_until: u64,
    pub tip: String,
    pub fee: String,
    pub success: bool,
    pub error: Option<Value>,
    pub pallet: String,
    pub call_name: String,
    pub call: Value,
    pub events: Vec<EventView>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Paged<T> {
    pub page: u64,
    pub page_size: u64,
    pub pages: u64,
    pub total: u64,
    pub items: Vec<T>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountDetail {
    pub address: String,
    pub free: String,
    pub reserved: String,
    pub nonce: u64,
    /// Block after which the balance was read from the node.
    pub balance_at_block: Option<u64>,
    pub first_seen: u64,
    pub last_seen: u64,
    pub blocks_proposed: u64,
    /// The account's grid identity, as of the last grid snapshot.
    pub twin: Option<gridchain_runtime::twins::Twin>,
    pub history: Paged<ExtrinsicSummary>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorRow {
    pub consensus_key: String,
    /// The staking account (paid fees and rewards).
    pub account: String,
    pub power: u64,
    /// Share of the set's voting power.
    pub power_percent: f64,
    pub blocks_proposed: u64,
    pub last_block: Option<u64>,
}

/// The validator set as of the last grid snapshot.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorsView {
    /// The height the active set signs.
    pub active_from: u64,
    pub active: Vec<ValidatorRow>,
    /// First height of the scheduled set, if a change is announced.
    pub scheduled_from: Option<u64>,
    pub scheduled: Vec<ValidatorRow>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub blocks: u64,
    pub extrinsics: u64,
    pub failed_extrinsics: u64,
    pub events: u64,
    pub accounts: u64,
    pub validators: u64,
}

/// One block in the charts.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartPoint {
    pub number: u64,
    pub block_time_ms: Option<u64>,
    pub extrinsic_count: u64,
}

/// The page `page` (1-based) of `total` items is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageOutOfRange {
    pub page: u64,
    pub pages: u64,
}

/// Offset of 1-based `page`, or why it does not exist. Page 1 always exists, even when empty.
pub fn page_offset(page: u64, total: u64) -> Result<(u64, u64), PageOutOfRange> {
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    if page == 0 || page > pages {
        return Err(PageOutOfRange { page, pages });
    }
    Ok(((page - 1) * PAGE_SIZE, pages))
}

const BLOCK_SUMMARY_COLUMNS: &str =
    "number, hash, timestamp_ms, proposer, extrinsic_count, event_count";

fn block_summary(r: &Row) -> rusqlite::Result<BlockSummary> {
    Ok(BlockSummary {
        number: r.get::<_, i64>(0)? as u64,
        hash: r.get(1)?,
        timestamp_ms: r.get::<_, i64>(2)? as u64,
        proposer: r.get(3)?,
        extrinsic_count: r.get::<_, i64>(4)? as u64,
        event_count: r.get::<_, i64>(5)? as u64,
    })
}

const EXTRINSIC_SUMMARY_COLUMNS: &str =
    "x.hash, x.block_number, x.idx, x.signer, x.pallet, x.call_name, x.success, x.fee, b.timestamp_ms";

fn extrinsic_summary(r: &Row) -> rusqlite::Result<ExtrinsicSummary> {
    Ok(ExtrinsicSummary {
        hash: r.get(0)?,
        block_number: r.get::<_, i64>(1)? as u64,
        index: r.get(2)?,
        signer: r.get(3)?,
        pallet: r.get(4)?,
        call_name: r.get(5)?,
        success: r.get(6)?,
        fee: r.get(7)?,
        timestamp_ms: r.get::<_, i64>(8)? as u64,
    })
}

fn event_view(r: &Row) -> rusqlite::Result<(EventView, String)> {
    Ok((
        EventView {
            index: r.get(0)?,
            extrinsic_index: r.get(1)?,
            phase: r.get(2)?,
            pallet: r.get(3)?,
            name: r.get(4)?,
            data: Value::Null,
        },
        r.get(5)?,
    ))
}

fn events_where(
    conn: &Connection,
    sql_filter: &str,
    args: &[i64],
) -> Result<Vec<EventView>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT idx, extrinsic_index, phase, pallet, name, data FROM events WHERE {sql_filter}
         ORDER BY block_number, idx"
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), event_view)?;
    rows.map(|row| {
        let (mut event, data) = row?;
        event.data = serde_json::from_str(&data)?;
        Ok(event)
    })
    .collect()
}

pub fn latest_blocks(conn: &Connection, limit: u64) -> Result<Vec<BlockSummary>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {BLOCK_SUMMARY_COLUMNS} FROM blocks ORDER BY number DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit as i64], block_summary)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Blocks, newest first, page `page`. Heights are contiguous from 0, so a page is a range of
/// heights and deep pages cost the same as the first.
pub fn blocks_page(
    conn: &Connection,
    page: u64,
) -> Result<Result<Paged<BlockSummary>, PageOutOfRange>, DbError> {
    let top: Option<i64> = conn.query_row("SELECT max(number) FROM blocks", [], |r| r.get(0))?;
    let total = top.map_or(0, |t| t as u64 + 1);
    let (offset, pages) = match page_offset(page, total) {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    let highest = top.unwrap_or(0) - offset as i64;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {BLOCK_SUMMARY_COLUMNS} FROM blocks WHERE number <= ?1
         ORDER BY number DESC LIMIT ?2"
    ))?;
    let items = stmt
        .query_map(params![highest, PAGE_SIZE as i64], block_summary)?
        .collect::<Result<_, _>>()?;
    Ok(Ok(Paged {
        page,
        page_size: PAGE_SIZE,
        pages,
        total,
        items,
    }))
}

/// The newest `limit` blocks above `after`, oldest first, each with its extrinsics.
pub fn live_backlog(
    conn: &Connection,
    after: u64,
    limit: u64,
) -> Result<Vec<(BlockSummary, Vec<ExtrinsicSummary>)>, DbError> {
    let after = after.min(i64::MAX as u64) as i64;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {BLOCK_SUMMARY_COLUMNS} FROM blocks WHERE number > ?1 ORDER BY number DESC LIMIT ?2"
    ))?;
    let mut blocks: Vec<BlockSummary> = stmt
        .query_map(params![after, limit as i64], block_summary)?
        .collect::<Result<_, _>>()?;
    blocks.reverse();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EXTRINSIC_SUMMARY_COLUMNS} FROM extrinsics x JOIN blocks b ON b.number = x.block_number
         WHERE x.block_number = ?1 ORDER BY x.idx"
    ))?;
    blocks
        .into_iter()
        .map(|b| {
            let extrinsics = stmt
                .query_map([b.number as i64], extrinsic_summary)?
                .collect::<Result<_, _>>()?;
            Ok((b, extrinsics))
        })
        .collect()
}

pub fn latest_extrinsics(conn: &Connection, limit: u64) -> Result<Vec<ExtrinsicSummary>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EXTRINSIC_SUMMARY_COLUMNS} FROM extrinsics x JOIN blocks b ON b.number = x.block_number
         ORDER BY x.block_number DESC, x.idx DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit as i64], extrinsic_summary)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn block_number_by_hash(conn: &Connection, hash: &str) -> Result<Option<u64>, DbError> {
    Ok(conn
        .query_row("SELECT number FROM blocks WHERE hash = ?1", [hash], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .map(|n| n as u64))
}

pub fn extrinsic_exists(conn: &Connection, hash: &str) -> Result<bool, DbError> {
    Ok(conn
        .query_row("SELECT 1 FROM extrinsics WHERE hash = ?1", [hash], |_| {
            Ok(())
        })
        .optional()?
        .is_some())
}

pub fn account_exists(conn: &Connection, address: &str) -> Result<bool, DbError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM accounts WHERE address = ?1",
            [address],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub fn block(conn: &Connection, number: u64) -> Result<Option<BlockDetail>, DbError> {
    let n = number as i64;
    let row = conn
        .query_row(
            "SELECT b.hash, b.parent_hash, b.state_root, b.extrinsics_root, b.proposer, b.timestamp_ms,
                    p.timestamp_ms, EXISTS (SELECT 1 FROM blocks WHERE number = ?1 + 1)
             FROM blocks b LEFT JOIN blocks p ON p.number = b.number - 1 AND p.number > 0
             WHERE b.number = ?1",
            [n],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)? as u64,
                    r.get::<_, Option<i64>>(6)?.map(|t| t as u64),
                    r.get::<_, bool>(7)?,
                ))
            },
        )
        .optional()?;
    let Some((
        hash,
        parent_hash,
        state_root,
        extrinsics_root,
        proposer,
        timestamp_ms,
        parent_ts,
        has_next,
    )) = row
    else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EXTRINSIC_SUMMARY_COLUMNS} FROM extrinsics x JOIN blocks b ON b.number = x.block_number
         WHERE x.block_number = ?1 ORDER BY x.idx"
    ))?;
    let extrinsics = stmt
        .query_map([n], extrinsic_summary)?
        .collect::<Result<_, _>>()?;
    Ok(Some(BlockDetail {
        number,
        hash,
        parent_hash,
        state_root,
        extrinsics_root,
        proposer,
        timestamp_ms,
        block_time_ms: parent_ts.map(|p| timestamp_ms.saturating_sub(p)),
        has_next,
        extrinsics,
        events: events_where(conn, "block_number = ?1", &[n])?,
    }))
}

pub fn extrinsic(conn: &Connection, hash: &str) -> Result<Option<ExtrinsicDetail>, DbError> {
    let row = conn
        .query_row(
            "SELECT x.hash, x.block_number, b.hash, x.idx, b.timestamp_ms, x.signer, x.nonce,
                    x.valid_until, x.tip, x.fee, x.success, x.error, x.pallet, x.call_name, x.call
             FROM extrinsics x JOIN blocks b ON b.number = x.block_number WHERE x.hash = ?1",
            [hash],
            |r| {
                Ok((
                    ExtrinsicDetail {
                        hash: r.get(0)?,
                        block_number: r.get::<_, i64>(1)? as u64,
                        block_hash: r.get(2)?,
                        index: r.get(3)?,
                        timestamp_ms: r.get::<_, i64>(4)? as u64,
                        signer: r.get(5)?,
                        nonce: r.get::<_, i64>(6)? as u64,
                        valid_until: r.get::<_, i64>(7)? as u64,
                        tip: r.get(8)?,
                        fee: r.get(9)?,
                        success: r.get(10)?,
                        error: None,
                        pallet: r.get(12)?,
                        call_name: r.get(13)?,
                        call: Value::Null,
                        events: Vec::new(),
                    },
                    r.get::<_, Option<String>>(11)?,
                    r.get::<_, String>(14)?,
                ))
            },
        )
        .optional()?;
    let Some((mut detail, error, call)) = row else {
        return Ok(None);
    };
    detail.error = error.map(|e| serde_json::from_str(&e)).transpose()?;
    detail.call = serde_json::from_str(&call)?;
    detail.events = events_where(
        conn,
        "block_number = ?1 AND extrinsic_index = ?2",
        &[detail.block_number as i64, detail.index as i64],
    )?;
    Ok(Some(detail))
}

pub fn account(
    conn: &Connection,
    address: &str,
    page: u64,
) -> Result<Option<Result<AccountDetail, PageOutOfRange>>, DbError> {
    let row = conn
        .query_row(
            "SELECT free, reserved, nonce, refreshed_at, first_seen, last_seen,
                    (SELECT count(*) FROM account_activity WHERE address = ?1),
                    (SELECT count(*) FROM blocks WHERE proposer = ?1)
             FROM accounts WHERE address = ?1",
            [address],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, Option<i64>>(3)?.map(|n| n as u64),
                    r.get::<_, i64>(4)? as u64,
                    r.get::<_, i64>(5)? as u64,
                    r.get::<_, i64>(6)? as u64,
                    r.get::<_, i64>(7)? as u64,
                ))
            },
        )
        .optional()?;
    let Some((
        free,
        reserved,
        nonce,
        balance_at_block,
        first_seen,
        last_seen,
        total,
        blocks_proposed,
    )) = row
    else {
        return Ok(None);
    };
    let (offset, pages) = match page_offset(page, total) {
        Ok(x) => x,
        Err(e) => return Ok(Some(Err(e))),
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EXTRINSIC_SUMMARY_COLUMNS} FROM account_activity a
         JOIN extrinsics x ON x.block_number = a.block_number AND x.idx = a.extrinsic_index
         JOIN blocks b ON b.number = x.block_number
         WHERE a.address = ?1
         ORDER BY a.block_number DESC, a.extrinsic_index DESC LIMIT ?2 OFFSET ?3"
    ))?;
    let items = stmt
        .query_map(
            params![address, PAGE_SIZE as i64, offset as i64],
            extrinsic_summary,
        )?
        .collect::<Result<_, _>>()?;
    Ok(Some(Ok(AccountDetail {
        address: address.to_string(),
        free,
        reserved,
        nonce,
        balance_at_block,
        first_seen,
        last_seen,
        blocks_proposed,
        twin: crate::grid_query::twin_by_account(conn, address)?,
        history: Paged {
            page,
            page_size: PAGE_SIZE,
            pages,
            total,
            items,
        },
    })))
}

/// The validators of the last snapshot (active set, then the scheduled one), with the blocks
/// each proposed among indexed blocks (fees and rewards go to the staking account, which
/// is what block headers name).
pub fn validators(conn: &Connection) -> Result<ValidatorsView, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.scheduled, v.consensus_key, v.account, v.power, v.effective_height,
                coalesce(p.blocks, 0), p.last_block,
                (SELECT sum(power) FROM validators w WHERE w.scheduled = v.scheduled)
         FROM validators v LEFT JOIN proposers p ON p.address = v.account
         ORDER BY v.scheduled, v.power DESC, v.consensus_key",
    )?;
    let rows = stmt.query_map([], |r| {
        let power = r.get::<_, i64>(3)? as u64;
        let total = r.get::<_, i64>(7)?.max(1) as f64;
        Ok((
            r.get::<_, i64>(0)? == 1,
            r.get::<_, i64>(4)? as u64,
            ValidatorRow {
                consensus_key: r.get(1)?,
                account: r.get(2)?,
                power,
                power_percent: power as f64 * 100.0 / total,
                blocks_proposed: r.get::<_, i64>(5)? as u64,
                last_block: r.get::<_, Option<i64>>(6)?.map(|b| b as u64),
            },
        ))
    })?;
    let mut view = ValidatorsView::default();
    for row in rows {
        let (scheduled, from, row) = row?;
        if scheduled {
            view.scheduled_from = Some(from);
            view.scheduled.push(row);
        } else {
            view.active_from = from;
            view.active.push(row);
        }
    }
    Ok(view)
}

/// Counts from the maintained counters; blocks are contiguous from 0, so max + 1.
pub fn totals(conn: &Connection) -> Result<Totals, DbError> {
    Ok(conn.query_row(
        "SELECT coalesce((SELECT max(number) + 1 FROM blocks), 0), c.extrinsics,
                c.failed_extrinsics, c.events, (SELECT count(*) FROM accounts),
                (SELECT count(*) FROM validators WHERE scheduled = 0)
         FROM counts c WHERE c.id = 1",
        [],
        |r| {
            Ok(Totals {
                blocks: r.get::<_, i64>(0)? as u64,
                extrinsics: r.get::<_, i64>(1)? as u64,
                failed_extrinsics: r.get::<_, i64>(2)? as u64,
                events: r.get::<_, i64>(3)? as u64,
                accounts: r.get::<_, i64>(4)? as u64,
                validators: r.get::<_, i64>(5)? as u64,
            })
        },
    )?)
}

/// Block time and extrinsic count of the last `limit` blocks, oldest first.
pub fn chart_points(conn: &Connection, limit: u64) -> Result<Vec<ChartPoint>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT b.number, b.timestamp_ms - p.timestamp_ms, b.extrinsic_count
         FROM blocks b LEFT JOIN blocks p ON p.number = b.number - 1 AND p.number > 0
         ORDER BY b.number DESC LIMIT ?1",
    )?;
    let mut points: Vec<ChartPoint> = stmt
        .query_map([limit as i64], |r| {
            Ok(ChartPoint {
                number: r.get::<_, i64>(0)? as u64,
                block_time_ms: r.get::<_, Option<i64>>(1)?.map(|t| t.max(0) as u64),
                extrinsic_count: r.get::<_, i64>(2)? as u64,
            })
        })?
        .collect::<Result<_, _>>()?;
    points.reverse();
    Ok(points)
}
