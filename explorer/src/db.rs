//! The SQLite index: schema, integrity checks, the indexer's writes and a small pool of
//! read connections for the web server.
//!
//! One indexed block is written in one transaction (block row, its extrinsics, events and account
//! activity), so the index always ends at a whole block. The schema version lives in
//! `PRAGMA user_version`; a database of another version, one that fails `PRAGMA quick_check`, or
//! one whose block heights have a gap or whose parent hashes do not chain is refused by
//! [`Store::open`] with [`DbError::Inconsistent`] — `grid-explorer reindex` rebuilds it.

use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Bump when the schema changes; an index of another version must be rebuilt.
pub const SCHEMA_VERSION: i64 = 1;

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
            }
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
}
