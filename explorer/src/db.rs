//! The SQLite index: schema, integrity checks, the indexer's writes and a small pool of
//! read connections for the web server.
//!
//! One indexed block is written in one transaction (block row, its extrinsics, events and account
//! activity), so the index always ends at a whole block. The schema version lives in
//! `PRAGMA user_version`; a database of another version, one that fails `PRAGMA quick_check`, or
//! one whose block heights have a gap or whose parent hashes do not chain is refused by
//! [`Store::open`] with [`DbError::Inconsistent`] — `grid-explorer reindex` rebuilds it.

use crate::grid_sync::GridSnapshot;
use gridchain_rpc_api::NodeInfo;
use gridchain_runtime::tfgrid::NodeStatus;
use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Bump when the schema changes; an index of another version must be rebuilt.
pub const SCHEMA_VERSION: i64 = 4;

/// Read connections kept open for the web server.
const READ_POOL_SIZE: usize = 8;

const SCHEMA: &str = r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE blocks (
    number          INTEGER PRIMARY KEY,
    hash            TEXT NOT NULL UNIQUE,
    parent_hash     TEXT NOT NULL,
    state_root      TEXT NOT NULL,
    extrinsics_root TEXT NOT NULL,
    proposer        TEXT NOT NULL,
    timestamp_ms    INTEGER NOT NULL,
    extrinsic_count INTEGER NOT NULL,
    event_count     INTEGER NOT NULL
);
CREATE INDEX blocks_by_proposer ON blocks (proposer, number);
-- Kept up to date by insert_block, so the home and validators pages never scan all blocks.
CREATE TABLE counts (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    extrinsics        INTEGER NOT NULL,
    failed_extrinsics INTEGER NOT NULL,
    events            INTEGER NOT NULL
);
INSERT INTO counts VALUES (1, 0, 0, 0);
CREATE TABLE proposers (
    address     TEXT PRIMARY KEY,
    blocks      INTEGER NOT NULL,
    first_block INTEGER NOT NULL,
    last_block  INTEGER NOT NULL
);
CREATE TABLE extrinsics (
    hash         TEXT PRIMARY KEY,
    block_number INTEGER NOT NULL REFERENCES blocks (number),
    idx          INTEGER NOT NULL,
    signer       TEXT NOT NULL,
    nonce        INTEGER NOT NULL,
    valid_until  INTEGER NOT NULL,
    tip          TEXT NOT NULL,
    fee          TEXT NOT NULL,
    success      INTEGER NOT NULL,
    error        TEXT,
    pallet       TEXT NOT NULL,
    call_name    TEXT NOT NULL,
    call         TEXT NOT NULL,
    UNIQUE (block_number, idx)
);
CREATE TABLE events (
    block_number    INTEGER NOT NULL REFERENCES blocks (number),
    idx             INTEGER NOT NULL,
    extrinsic_index INTEGER,
    phase           TEXT NOT NULL,
    pallet          TEXT NOT NULL,
    name            TEXT NOT NULL,
    data            TEXT NOT NULL,
    PRIMARY KEY (block_number, idx)
) WITHOUT ROWID;
CREATE TABLE accounts (
    address      TEXT PRIMARY KEY,
    free         TEXT NOT NULL DEFAULT '0',
    reserved     TEXT NOT NULL DEFAULT '0',
    nonce        INTEGER NOT NULL DEFAULT 0,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    refreshed_at INTEGER
);
CREATE TABLE account_activity (
    address         TEXT NOT NULL,
    block_number    INTEGER NOT NULL,
    extrinsic_index INTEGER NOT NULL,
    PRIMARY KEY (address, block_number, extrinsic_index)
) WITHOUT ROWID;

-- The grid as of the last snapshot (see grid_sync.rs); `data` is the RPC object as JSON.
CREATE TABLE grid_sync (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    block_number INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL
);
CREATE TABLE twins (
    id      INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    name    TEXT NOT NULL,
    data    TEXT NOT NULL
);
CREATE INDEX twins_by_account ON twins (account);
CREATE INDEX twins_by_name ON twins (name);
CREATE TABLE farms (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    twin_id INTEGER NOT NULL,
    data    TEXT NOT NULL
);
CREATE INDEX farms_by_name ON farms (name);
CREATE TABLE nodes (
    id            INTEGER PRIMARY KEY,
    farm_id       INTEGER NOT NULL,
    account       TEXT NOT NULL,
    status        TEXT NOT NULL,
    total_cru     INTEGER NOT NULL,
    total_mru     INTEGER NOT NULL,
    total_sru     INTEGER NOT NULL,
    total_hru     INTEGER NOT NULL,
    reserved_cru  INTEGER NOT NULL,
    reserved_mru  INTEGER NOT NULL,
    reserved_sru  INTEGER NOT NULL,
    reserved_hru  INTEGER NOT NULL,
    free_cru      INTEGER NOT NULL,
    free_mru      INTEGER NOT NULL,
    free_sru      INTEGER NOT NULL,
    free_hru      INTEGER NOT NULL,
    last_proof_ms INTEGER,
    data          TEXT NOT NULL
);
CREATE INDEX nodes_by_farm ON nodes (farm_id);
-- One row per change of a node's status: uptime is integrated over these.
CREATE TABLE node_status_changes (
    node_id      INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    status       TEXT NOT NULL,
    PRIMARY KEY (node_id, timestamp_ms)
) WITHOUT ROWID;
CREATE TABLE reservations (
    id      INTEGER PRIMARY KEY,
    owner   TEXT NOT NULL,
    node_id INTEGER NOT NULL,
    state   TEXT NOT NULL,
    data    TEXT NOT NULL
);
CREATE INDEX reservations_by_owner ON reservations (owner, id);
CREATE INDEX reservations_by_node ON reservations (node_id, id);
-- The validator set that signs the block after the last snapshot, and the scheduled one
-- (`scheduled` = 1, from `effective_height` on), as `gridchain_validators` reports them.
CREATE TABLE validators (
    scheduled        INTEGER NOT NULL,
    consensus_key    TEXT NOT NULL,
    account          TEXT NOT NULL,
    power            INTEGER NOT NULL,
    effective_height INTEGER NOT NULL,
    PRIMARY KEY (scheduled, consensus_key)
) WITHOUT ROWID;
-- Grid capacity totals at each snapshot.
CREATE TABLE capacity_samples (
    block_number INTEGER PRIMARY KEY,
    timestamp_ms INTEGER NOT NULL,
    nodes_up     INTEGER NOT NULL,
    total_cru    INTEGER NOT NULL,
    total_mru    INTEGER NOT NULL,
    total_sru    INTEGER NOT NULL,
    total_hru    INTEGER NOT NULL,
    reserved_cru INTEGER NOT NULL,
    reserved_mru INTEGER NOT NULL,
    reserved_sru INTEGER NOT NULL,
    reserved_hru INTEGER NOT NULL
);
"#;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("index at {path} is inconsistent: {reason}; rebuild it with `grid-explorer reindex`")]
    Inconsistent { path: PathBuf, reason: String },
    #[error("stored JSON does not parse: {0}")]
    Json(#[from] serde_json::Error),
}

/// What the index holds, for checking it against the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTip {
    pub genesis_hash: Option<String>,
    /// Highest indexed block and its hash.
    pub last: Option<(u64, String)>,
}

/// A block ready to be written: everything the pages need, already decoded.
#[derive(Debug, Clone)]
pub struct BlockRecord {
    pub number: u64,
    pub hash: String,
    pub parent_hash: String,
    pub state_root: String,
    pub extrinsics_root: String,
    pub proposer: String,
    pub timestamp_ms: u64,
    pub extrinsics: Vec<ExtrinsicRecord>,
    pub events: Vec<EventRow>,
    /// `(address, extrinsic index)` pairs: who took part in which extrinsic.
    pub activity: Vec<(String, u32)>,
}

#[derive(Debug, Clone)]
pub struct ExtrinsicRecord {
    pub hash: String,
    pub index: u32,
    pub signer: String,
    pub nonce: u64,
    pub valid_until: u64,
    pub tip: u128,
    pub fee: u128,
    pub success: bool,
    pub error: Option<Value>,
    pub pallet: String,
    pub call_name: String,
    pub call: Value,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub index: u32,
    pub extrinsic_index: Option<u32>,
    pub phase: String,
    pub pallet: String,
    pub name: String,
    pub data: Value,
}

/// An account's state as `gridchain_account` reported it after block `at_block`.
#[derive(Debug, Clone)]
pub struct AccountBalance {
    pub address: String,
    pub free: u128,
    pub reserved: u128,
    pub nonce: u64,
    pub at_block: u64,
}

/// The index database: one writer (the indexer) and pooled readers (the web server).
pub struct Store {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
}

impl Store {
    /// Opens the index at `path`, creating it if absent, and refuses an index that is of another
    /// schema version or fails the integrity checks.
    pub fn open(path: &Path) -> Result<Store, DbError> {
        let conn = open_connection(path, false)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let has_tables: bool = conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        let inconsistent = |reason: String| DbError::Inconsistent {
            path: path.to_path_buf(),
            reason,
        };
        if !has_tables {
            conn.execute_batch(SCHEMA)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        } else if version != SCHEMA_VERSION {
            return Err(inconsistent(format!(
                "schema version {version}, this explorer uses {SCHEMA_VERSION}"
            )));
        }
        if let Some(reason) = integrity_problem(&conn)? {
            return Err(inconsistent(reason));
        }
        Ok(Store {
            path: path.to_path_buf(),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Deletes the index at `path` (and its WAL files) and creates an empty one.
    pub fn recreate(path: &Path) -> Result<Store, DbError> {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(DbError::Inconsistent {
                        path: path.to_path_buf(),
                        reason: format!("cannot delete {}: {e}", PathBuf::from(file).display()),
                    })
                }
            }
        }
        Store::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new read-write connection for the indexer.
    pub fn writer(&self) -> Result<Writer, DbError> {
        Ok(Writer {
            conn: open_connection(&self.path, false)?,
        })
    }

    /// Runs `f` on a pooled read-only connection.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, DbError>) -> Result<T, DbError> {
        let pooled = self.readers.lock().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.path, true)?,
        };
        let result = f(&conn);
        let mut readers = self.readers.lock();
        if readers.len() < READ_POOL_SIZE {
            readers.push(conn);
        }
        result
    }

    pub fn tip(&self) -> Result<IndexTip, DbError> {
        self.read(|conn| {
            let genesis_hash = conn
                .query_row(
                    "SELECT value FROM meta WHERE key = 'genesis_hash'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let last = conn
                .query_row(
                    "SELECT number, hash FROM blocks ORDER BY number DESC LIMIT 1",
                    [],
                    |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
                )
                .optional()?;
            Ok(IndexTip { genesis_hash, last })
        })
    }
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, DbError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // WAL with synchronous=NORMAL: a crash may lose the last blocks, never corrupt the index;
        // the indexer simply fetches them again.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    Ok(conn)
}

/// Why the stored blocks cannot be a prefix of one chain, if they cannot.
fn integrity_problem(conn: &Connection) -> Result<Option<String>, DbError> {
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Ok(Some(format!("sqlite quick_check: {check}")));
    }
    let (count, min, max): (i64, Option<i64>, Option<i64>) = conn.query_row(
        "SELECT count(*), min(number), max(number) FROM blocks",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    if let (Some(min), Some(max)) = (min, max) {
        if min != 0 || max - min + 1 != count {
            return Ok(Some(format!(
                "block heights are not contiguous from 0: {count} blocks between {min} and {max}"
            )));
        }
    }
    let broken_links: i64 = conn.query_row(
        "SELECT count(*) FROM blocks b JOIN blocks p ON p.number = b.number - 1
         WHERE b.parent_hash != p.hash",
        [],
        |r| r.get(0),
    )?;
    if broken_links > 0 {
        return Ok(Some(format!(
            "{broken_links} blocks do not link to their parent's hash"
        )));
    }
    let (declared, stored): (i64, i64) = conn.query_row(
        "SELECT (SELECT coalesce(sum(extrinsic_count), 0) FROM blocks),
                (SELECT count(*) FROM extrinsics)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if declared != stored {
        return Ok(Some(format!(
            "blocks declare {declared} extrinsics but {stored} are stored"
        )));
    }
    let counted: i64 = conn.query_row("SELECT extrinsics FROM counts WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    if counted != stored {
        return Ok(Some(format!(
            "the extrinsic counter says {counted} but {stored} are stored"
        )));
    }
    Ok(None)
}

/// The indexer's connection.
pub struct Writer {
    conn: Connection,
}

impl Writer {
    pub fn set_genesis_hash(&mut self, hash: &str) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('genesis_hash', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![hash],
        )?;
        Ok(())
    }

    /// Deletes every indexed row, keeping the schema (readers may hold the file open).
    pub fn clear(&mut self) -> Result<(), DbError> {
        self.conn.execute_batch(
            "BEGIN;
             DELETE FROM account_activity; DELETE FROM accounts; DELETE FROM events;
             DELETE FROM extrinsics; DELETE FROM blocks; DELETE FROM meta;
             DELETE FROM proposers;
             UPDATE counts SET extrinsics = 0, failed_extrinsics = 0, events = 0;
             DELETE FROM grid_sync; DELETE FROM twins; DELETE FROM farms; DELETE FROM nodes;
             DELETE FROM node_status_changes; DELETE FROM reservations;
             DELETE FROM capacity_samples; DELETE FROM validators;
             COMMIT;",
        )?;
        Ok(())
    }

    /// Writes one block and everything in it, atomically.
    pub fn insert_block(&mut self, block: &BlockRecord) -> Result<(), DbError> {
        let tx = self.conn.transaction()?;
        let number = block.number as i64;
        tx.execute(
            "INSERT INTO blocks (number, hash, parent_hash, state_root, extrinsics_root, proposer,
                                 timestamp_ms, extrinsic_count, event_count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                number,
                block.hash,
                block.parent_hash,
                block.state_root,
                block.extrinsics_root,
                block.proposer,
                block.timestamp_ms as i64,
                block.extrinsics.len() as i64,
                block.events.len() as i64,
            ],
        )?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO extrinsics (hash, block_number, idx, signer, nonce, valid_until, tip,
                                         fee, success, error, pallet, call_name, call)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for x in &block.extrinsics {
                insert.execute(params![
                    x.hash,
                    number,
                    x.index,
                    x.signer,
                    x.nonce as i64,
                    x.valid_until as i64,
                    x.tip.to_string(),
                    x.fee.to_string(),
                    x.success,
                    x.error.as_ref().map(Value::to_string),
                    x.pallet,
                    x.call_name,
                    x.call.to_string(),
                ])?;
            }
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (block_number, idx, extrinsic_index, phase, pallet, name, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for e in &block.events {
                insert.execute(params![
                    number,
                    e.index,
                    e.extrinsic_index,
                    e.phase,
                    e.pallet,
                    e.name,
                    e.data.to_string(),
                ])?;
            }
            let mut activity = tx.prepare_cached(
                "INSERT OR IGNORE INTO account_activity (address, block_number, extrinsic_index)
                 VALUES (?1, ?2, ?3)",
            )?;
            let mut account = tx.prepare_cached(
                "INSERT INTO accounts (address, first_seen, last_seen) VALUES (?1, ?2, ?2)
                 ON CONFLICT (address) DO UPDATE SET last_seen = excluded.last_seen",
            )?;
            for (address, extrinsic_index) in &block.activity {
                activity.execute(params![address, number, extrinsic_index])?;
                account.execute(params![address, number])?;
            }
            // Genesis is not proposed by anyone (its proposer field is all zeros).
            if block.number > 0 {
                account.execute(params![block.proposer, number])?;
                tx.prepare_cached(
                    "INSERT INTO proposers (address, blocks, first_block, last_block)
                     VALUES (?1, 1, ?2, ?2)
                     ON CONFLICT (address) DO UPDATE SET blocks = blocks + 1,
                                                         last_block = excluded.last_block",
                )?
                .execute(params![block.proposer, number])?;
            }
            tx.prepare_cached(
                "UPDATE counts SET extrinsics = extrinsics + ?1,
                                   failed_extrinsics = failed_extrinsics + ?2,
                                   events = events + ?3",
            )?
            .execute(params![
                block.extrinsics.len() as i64,
                block.extrinsics.iter().filter(|x| !x.success).count() as i64,
                block.events.len() as i64,
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn update_balances(&mut self, balances: &[AccountBalance]) -> Result<(), DbError> {
        let tx = self.conn.transaction()?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE accounts SET free = ?2, reserved = ?3, nonce = ?4, refreshed_at = ?5
                 WHERE address = ?1",
            )?;
            for b in balances {
                update.execute(params![
                    b.address,
                    b.free.to_string(),
                    b.reserved.to_string(),
                    b.nonce as i64,
                    b.at_block as i64,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces the grid tables with `snapshot` and extends the status and capacity history.
    pub fn replace_grid(&mut self, snapshot: &GridSnapshot) -> Result<(), DbError> {
        let tx = self.conn.transaction()?;
        tx.execute_batch(
            "DELETE FROM twins; DELETE FROM farms; DELETE FROM nodes; DELETE FROM reservations;",
        )?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO twins (id, account, name, data) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for t in &snapshot.twins {
                insert.execute(params![
                    t.id,
                    t.account.to_string(),
                    t.name,
                    serde_json::to_string(t)?
                ])?;
            }
            let mut insert = tx.prepare_cached(
                "INSERT INTO farms (id, name, twin_id, data) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for f in &snapshot.farms {
                insert.execute(params![f.id, f.name, f.twin_id, serde_json::to_string(f)?])?;
            }
            let mut insert = tx.prepare_cached(
                "INSERT INTO nodes (id, farm_id, account, status, total_cru, total_mru, total_sru,
                    total_hru, reserved_cru, reserved_mru, reserved_sru, reserved_hru, free_cru,
                    free_mru, free_sru, free_hru, last_proof_ms, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            )?;
            let mut last_status = tx.prepare_cached(
                "SELECT status FROM node_status_changes WHERE node_id = ?1
                 ORDER BY timestamp_ms DESC LIMIT 1",
            )?;
            let mut status_change = tx.prepare_cached(
                "INSERT OR REPLACE INTO node_status_changes (node_id, timestamp_ms, block_number, status)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for info in &snapshot.nodes {
                let c = &info.capacity;
                let status = variant_name(&serde_json::to_value(info.status)?);
                insert.execute(params![
                    info.node.id,
                    info.node.farm_id,
                    info.node.account.to_string(),
                    status,
                    c.total.cru as i64,
                    c.total.mru as i64,
                    c.total.sru as i64,
                    c.total.hru as i64,
                    c.reserved.cru as i64,
                    c.reserved.mru as i64,
                    c.reserved.sru as i64,
                    c.reserved.hru as i64,
                    c.free.cru as i64,
                    c.free.mru as i64,
                    c.free.sru as i64,
                    c.free.hru as i64,
                    info.health.last_proof_ms.map(|t| t as i64),
                    serde_json::to_string(info)?,
                ])?;
                let previous: Option<String> = last_status
                    .query_row([info.node.id], |r| r.get(0))
                    .optional()?;
                if previous.as_deref() != Some(status.as_str()) {
                    status_change.execute(params![
                        info.node.id,
                        snapshot.timestamp_ms as i64,
                        snapshot.block_number as i64,
                        status
                    ])?;
                }
            }
            let mut insert = tx.prepare_cached(
                "INSERT INTO reservations (id, owner, node_id, state, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for r in &snapshot.reservations {
                insert.execute(params![
                    r.id as i64,
                    r.owner.to_string(),
                    r.node_id,
                    variant_name(&serde_json::to_value(r.state)?),
                    serde_json::to_string(r)?
                ])?;
            }
            let sum = |f: &dyn Fn(&NodeInfo) -> u64| -> i64 {
                snapshot.nodes.iter().map(|n| f(n) as i64).sum()
            };
            tx.execute(
                "INSERT OR REPLACE INTO capacity_samples (block_number, timestamp_ms, nodes_up,
                    total_cru, total_mru, total_sru, total_hru,
                    reserved_cru, reserved_mru, reserved_sru, reserved_hru)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    snapshot.block_number as i64,
                    snapshot.timestamp_ms as i64,
                    snapshot
                        .nodes
                        .iter()
                        .filter(|n| n.status == NodeStatus::Up)
                        .count() as i64,
                    sum(&|n| n.capacity.total.cru),
                    sum(&|n| n.capacity.total.mru),
                    sum(&|n| n.capacity.total.sru),
                    sum(&|n| n.capacity.total.hru),
                    sum(&|n| n.capacity.reserved.cru),
                    sum(&|n| n.capacity.reserved.mru),
                    sum(&|n| n.capacity.reserved.sru),
                    sum(&|n| n.capacity.reserved.hru),
                ],
            )?;
            tx.execute("DELETE FROM validators", [])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO validators (scheduled, consensus_key, account, power, effective_height)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let set = &snapshot.validators;
            let sets = std::iter::once((0, set.height, &set.validators)).chain(
                set.scheduled
                    .iter()
                    .map(|s| (1, s.effective_height, &s.validators)),
            );
            for (scheduled, from, validators) in sets {
                for v in validators {
                    insert.execute(params![
                        scheduled,
                        v.consensus_key.to_string(),
                        v.account.to_string(),
                        v.power as i64,
                        from as i64
                    ])?;
                }
            }
            tx.execute(
                "INSERT INTO grid_sync (id, block_number, timestamp_ms) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET block_number = excluded.block_number,
                                                timestamp_ms = excluded.timestamp_ms",
                params![snapshot.block_number as i64, snapshot.timestamp_ms as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Chain time of the last grid snapshot.
    pub fn last_grid_sync_ms(&self) -> Result<Option<u64>, DbError> {
        Ok(self
            .conn
            .query_row("SELECT timestamp_ms FROM grid_sync WHERE id = 1", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
            .map(|t| t as u64))
    }
}

/// `"up"` for a unit variant, `"gracePeriod"` for `{"gracePeriod": {...}}`.
pub fn variant_name(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(o) => o.keys().next().cloned().unwrap_or_default(),
        other => other.to_string(),
    }
}
