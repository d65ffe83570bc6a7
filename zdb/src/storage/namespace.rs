//! One namespace: its data files, its index log and its in-memory key index.
//!
//! Writes append a record to the active data file's in-memory [`Tail`] and
//! update the key index at once; [`Namespace::commit`] hands the unwritten
//! part of the tail to the OS (and fsyncs under `--sync`) before the connection
//! sends its replies, so one write syscall covers a whole pipelined batch.
//! Reads of a record still in the tail (unwritten, or recent enough to be kept
//! within the `--cache` budget) are served from it.
//!
//! The index log is only an accelerator: on open it is replayed, then every
//! data record after the last position it covers is replayed from the data
//! files, so losing its tail (or all of it) costs time, never data.

use hashbrown::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tracing::{error, info, warn};

use crate::config::{Durability, Mode};
use crate::error::{StoreError, StoreResult};
use crate::storage::keys::{BadSeqId, KeyIndex, Meta, SEQ_KEY_LEN};
use crate::storage::meta::{self, NsSettings};
use crate::storage::record::{
    data_file_header, IndexEntry, Loc, NewRecord, RecordHeader, DATA_FILE_HEADER_LEN, DATA_MAGIC,
    FLAG_DELETED, INDEX_MAGIC, MAX_KEY_LEN, RECORD_HEADER_LEN,
};
use crate::storage::tail::{Tail, TailBudget};
use crate::storage::DEFAULT_NAMESPACE;

/// Engine-wide settings every namespace needs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub datasize: u64,
    pub durability: Durability,
    pub forced_mode: Option<Mode>,
    pub default_maxsize: u64,
    /// Applied to the `default` namespace at every open.
    pub default_namespace_maxsize: u64,
    /// The `default` namespace's password, applied at every open (0-db's `--protect`: the
    /// admin password, so writing needs it; `None`: open to all). Clients cannot change it.
    pub default_namespace_password: Option<String>,
}

/// Errors a command can get from a namespace; the text is what the client sees.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("Invalid key")]
    InvalidKey,
    #[error("Key too large")]
    KeyTooLarge,
    #[error("Invalid argument, key needed")]
    KeyNeeded,
    #[error("Invalid key, only update authorized")]
    OnlyUpdate,
    #[error("No space left on this namespace")]
    NoSpace,
    #[error("Namespace is temporarily locked (read-only)")]
    Locked,
    #[error("Namespace is temporarily frozen (read-write disabled)")]
    Frozen,
    #[error("Namespace is protected by worm mode")]
    Worm,
    #[error("Cannot delete a key when namespace is in worm mode")]
    WormDelete,
    #[error("Key not found")]
    KeyNotFound,
    #[error("No more data")]
    NoMoreData,
    #[error("Invalid key format")]
    InvalidCursor,
    #[error("No more history")]
    NoMoreHistory,
    #[error("Data corrupted: {0}")]
    Corrupt(String),
    #[error("Cannot change mode of used namespace")]
    NotEmpty,
    #[error("Your active namespace is not available anymore (probably removed).")]
    Removed,
    #[error("Compaction already running on this namespace")]
    CompactionRunning,
    #[error("Internal error: {0}")]
    Storage(#[from] StoreError),
}

/// Result of `SET`.
#[derive(Debug, PartialEq, Eq)]
pub enum SetOutcome {
    /// Stored; under the id generated for `SET ""` in seq mode, else
    /// (`None`) under the key the client gave.
    Stored(Option<[u8; SEQ_KEY_LEN]>),
    /// Same value as the live one: nothing written.
    Unchanged,
}

/// A value read under a namespace lock.
pub enum Value<'a> {
    /// Still in the active file's tail, borrowed from it.
    Recent(&'a [u8]),
    /// Read from a data file and checked against its CRCs.
    Stored(Bytes),
}

impl Value<'_> {
    pub fn into_bytes(self) -> Bytes {
        match self {
            Value::Recent(v) => Bytes::copy_from_slice(v),
            Value::Stored(v) => v,
        }
    }
}

impl std::ops::Deref for Value<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Value::Recent(v) => v,
            Value::Stored(v) => v,
        }
    }
}

/// One `SCAN`/`RSCAN` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanItem {
    pub key: Vec<u8>,
    pub value_len: u32,
    pub timestamp: u32,
}

/// One `SCAN`/`RSCAN` page: the cursor to continue from and the live keys found.
#[derive(Debug)]
pub struct ScanPage {
    pub cursor: Loc,
    pub items: Vec<ScanItem>,
}

/// One `HISTORY` step.
#[derive(Debug)]
pub struct HistoryItem {
    pub previous: Option<Loc>,
    pub timestamp: u32,
    pub value: Bytes,
}

/// What a compaction did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    pub files_removed: usize,
    pub files_written: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_copied: u64,
}

/// Figures for `NSINFO`.
#[derive(Debug, Clone)]
pub struct NsInfo {
    pub settings: NsSettings,
    pub entries: u64,
    pub live_payload: u64,
    pub data_bytes: u64,
    pub reclaimable_bytes: u64,
    pub data_files: usize,
    pub index_bytes: u64,
    pub next_seq_id: u64,
    pub data_errors: u64,
    pub data_path: PathBuf,
    pub index_path: PathBuf,
}

/// Keys returned per SCAN page, and records examined before a page is cut
/// short so one call never walks a whole namespace while holding its lock.
const SCAN_PAGE_KEYS: usize = 100;
const SCAN_MAX_RECORDS: usize = 10_000;
/// The in-memory tail is written out early past this size.
const PENDING_FLUSH_BYTES: usize = 4 * 1024 * 1024;
const INDEX_FLUSH_BYTES: usize = 1024 * 1024;
/// The index log is read in chunks of this size when a namespace opens.
const INDEX_READ_CHUNK: usize = 4 * 1024 * 1024;

struct DataFile {
    id: u32,
    path: PathBuf,
    file: Arc<File>,
    /// Bytes handed to the OS.
    written: u64,
    /// Offset of the file's last record, found lazily for `RSCAN` on sealed files.
    last_record: OnceLock<u32>,
}

struct IndexLog {
    path: PathBuf,
    file: File,
    pending: Vec<u8>,
    entries: u64,
}

impl IndexLog {
    fn append<K: AsRef<[u8]>>(&mut self, entry: &IndexEntry<K>) {
        entry.encode_into(&mut self.pending);
        self.entries += 1;
    }

    fn flush(&mut self) -> StoreResult<()> {
        if !self.pending.is_empty() {
            self.file
                .write_all(&self.pending)
                .map_err(|e| StoreError::io(&self.path, e))?;
            self.pending.clear();
        }
        Ok(())
    }
}

struct NsState {
    settings: NsSettings,
    /// Incremented by every change of the password (see [`NsAccess`]).
    password_epoch: u64,
    keys: KeyIndex,
    /// Data files in replay order; the last one is the active, appended-to file.
    files: Vec<DataFile>,
    file_pos: HashMap<u32, usize>,
    /// The active file's recent records, among them all not yet handed to the OS.
    tail: Tail,
    active_last_record: u32,
    index: IndexLog,
    next_file_id: u32,
    /// Sum of live value lengths: what `maxsize` limits.
    live_payload: u64,
    /// Sum of live record sizes.
    live_bytes: u64,
    /// Sum of all record sizes in all data files.
    total_bytes: u64,
    /// Monotonic count of bytes handed to the OS, for group fsync.
    written_total: u64,
    /// Records found damaged (counted by readers too, hence atomic).
    data_errors: AtomicU64,
}

/// A namespace and the lock that serialises its writers.
pub struct Namespace {
    name: String,
    data_dir: PathBuf,
    index_dir: PathBuf,
    config: Arc<EngineConfig>,
    state: RwLock<NsState>,
    removed: AtomicBool,
    /// Held for a whole compaction, and by operations that delete files.
    maintenance: Mutex<()>,
    /// Connections about to write queue here, asynchronously, for their turn
    /// (see [`Namespace::write_turn`]).
    write_turns: tokio::sync::Semaphore,
    /// `written_total` value known to be on stable storage.
    synced_total: Mutex<u64>,
    /// Set by every append, cleared by [`Namespace::release_idle_tail`].
    recently_written: AtomicBool,
    /// Records were appended that no commit has handed to the OS yet. Set
    /// and cleared under the write lock, so a commit that finds it clear
    /// knows its own records are already written.
    unwritten: AtomicBool,
    /// Incremented (under the state lock) whenever the password or the
    /// `public` flag changes, so sessions know to re-check their access.
    access_epoch: AtomicU64,
}

/// What decides a client's access to a namespace, read in one snapshot.
#[derive(Debug, Clone)]
pub struct NsAccess {
    pub password: Option<String>,
    pub public: bool,
    /// Changes whenever the password changes: a session granted access by
    /// the password of one epoch loses it in the next.
    pub password_epoch: u64,
    /// [`Namespace::access_epoch`] at the time of the snapshot.
    pub epoch: u64,
}

/// Where `read_at` takes bytes that are both on disk and in the tail from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadFrom {
    /// The tail: no syscall.
    Memory,
    /// The file, to check what is stored (`CHECK`); the tail only for bytes not written yet.
    Disk,
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().min(u32::MAX as u64) as u32)
        .unwrap_or(0)
}

fn data_file_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("d{id:08}.zdb"))
}

fn parse_data_file_name(name: &str) -> Option<u32> {
    name.strip_prefix('d')?.strip_suffix(".zdb")?.parse().ok()
}

impl NsState {
    fn active(&self) -> &DataFile {
        &self.files[self.files.len() - 1]
    }

    fn active_len(&self) -> u64 {
        self.tail.end()
    }

    /// Bytes appended to the active file but not handed to the OS yet.
    fn unwritten_len(&self) -> u64 {
        self.tail.end() - self.active().written
    }

    fn file_len(&self, pos: usize) -> u64 {
        if pos + 1 == self.files.len() {
            self.active_len()
        } else {
            self.files[pos].written
        }
    }

    fn rebuild_file_pos(&mut self) {
        self.file_pos = self
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.id, i))
            .collect();
    }

    /// Reads `buf.len()` bytes at `offset` of data file `id`, including the unwritten tail.
    fn read_at(&self, id: u32, offset: u64, buf: &mut [u8], from: ReadFrom) -> io::Result<()> {
        let pos = *self
            .file_pos
            .get(&id)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "data file gone"))?;
        let f = &self.files[pos];
        let end = offset + buf.len() as u64;
        if end > self.file_len(pos) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past end",
            ));
        }
        // bytes from here on come from the tail
        let in_memory = match (pos + 1 == self.files.len(), from) {
            (false, _) => u64::MAX,
            (true, ReadFrom::Memory) => self.tail.start(),
            (true, ReadFrom::Disk) => f.written,
        };
        if end <= in_memory {
            return f.file.read_exact_at(buf, offset);
        }
        let split = in_memory.saturating_sub(offset) as usize;
        if split > 0 {
            f.file.read_exact_at(&mut buf[..split], offset)?;
        }
        self.tail.read(offset + split as u64, &mut buf[split..]);
        Ok(())
    }

    /// Reads and validates the header and key of the record at `loc`.
    fn read_header(&self, loc: Loc) -> Result<(RecordHeader, Vec<u8>), NsError> {
        let pos = *self.file_pos.get(&loc.file).ok_or(NsError::InvalidCursor)?;
        let len = self.file_len(pos);
        if (loc.offset as u64) < DATA_FILE_HEADER_LEN as u64 {
            return Err(NsError::InvalidCursor);
        }
        let avail = len.saturating_sub(loc.offset as u64);
        let want = (RECORD_HEADER_LEN + MAX_KEY_LEN).min(avail as usize);
        if want < RECORD_HEADER_LEN {
            return Err(NsError::InvalidCursor);
        }
        let mut buf = vec![0u8; want];
        self.read_at(loc.file, loc.offset as u64, &mut buf, ReadFrom::Memory)
            .map_err(|e| StoreError::io(&self.files[pos].path, e))?;
        let raw: [u8; RECORD_HEADER_LEN] = buf[..RECORD_HEADER_LEN]
            .try_into()
            .map_err(|_| NsError::InvalidCursor)?;
        let header = RecordHeader::decode(&raw);
        let key_end = RECORD_HEADER_LEN + header.key_len as usize;
        if key_end > buf.len()
            || !RecordHeader::verify(&raw, &buf[RECORD_HEADER_LEN..key_end])
            || loc.offset as u64 + header.record_len() > len
        {
            return Err(NsError::InvalidCursor);
        }
        buf.truncate(key_end);
        buf.drain(..RECORD_HEADER_LEN);
        Ok((header, buf))
    }

    /// Reads the record of `key` described by `meta`, checking both CRCs.
    fn read_record(
        &self,
        key: &[u8],
        meta: &Meta,
        from: ReadFrom,
    ) -> Result<(RecordHeader, Bytes), NsError> {
        let total = meta.record_len(key.len()) as usize;
        let mut buf = vec![0u8; total];
        let corrupt = |what: &str| {
            NsError::Corrupt(format!(
                "{what} (file {} offset {})",
                meta.loc.file, meta.loc.offset
            ))
        };
        self.read_at(meta.loc.file, meta.loc.offset as u64, &mut buf, from)
            .map_err(|e| corrupt(&format!("cannot read record: {e}")))?;
        let raw: [u8; RECORD_HEADER_LEN] = buf[..RECORD_HEADER_LEN]
            .try_into()
            .map_err(|_| corrupt("short record"))?;
        let header = RecordHeader::decode(&raw);
        let key_end = RECORD_HEADER_LEN + key.len();
        if header.key_len as usize != key.len()
            || header.value_len != meta.value_len
            || !RecordHeader::verify(&raw, &buf[RECORD_HEADER_LEN..key_end])
            || &buf[RECORD_HEADER_LEN..key_end] != key
        {
            return Err(corrupt("record header CRC mismatch"));
        }
        let value = Bytes::from(buf).slice(key_end..);
        if crc32c::crc32c(&value) != header.value_crc {
            return Err(corrupt("value CRC mismatch"));
        }
        Ok((header, value))
    }

    /// The value of the record `meta` describes if it is still in the tail:
    /// bytes this process wrote, borrowed without a copy or a CRC check.
    fn recent_value(&self, key: &[u8], meta: &Meta) -> Option<&[u8]> {
        if meta.loc.file != self.active().id {
            return None;
        }
        let len = meta.record_len(key.len()) as usize;
        let record = self.tail.slice(meta.loc.offset as u64, len)?;
        let key_end = RECORD_HEADER_LEN + key.len();
        // anything unexpected goes the checked way
        (record[8] as usize == key.len() && &record[RECORD_HEADER_LEN..key_end] == key)
            .then(|| &record[key_end..])
    }

    /// The live value of `key`; a record failing its CRC is counted and an error.
    fn value(&self, key: &[u8]) -> Result<Option<Value<'_>>, NsError> {
        let Some(meta) = self.keys.get(key) else {
            return Ok(None);
        };
        if let Some(v) = self.recent_value(key, &meta) {
            return Ok(Some(Value::Recent(v)));
        }
        match self.read_record(key, &meta, ReadFrom::Memory) {
            Ok((_, v)) => Ok(Some(Value::Stored(v))),
            Err(e) => {
                self.data_errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Hands the in-memory tail to the OS.
    fn flush_data(&mut self) -> StoreResult<()> {
        let end = self.tail.end();
        let pos = self.files.len() - 1;
        let f = &mut self.files[pos];
        if f.written == end {
            return Ok(());
        }
        for (offset, bytes) in self.tail.unwritten(f.written) {
            f.file
                .write_all_at(bytes, offset)
                .map_err(|e| StoreError::io(&f.path, e))?;
        }
        self.written_total += end - f.written;
        f.written = end;
        Ok(())
    }

    /// Hands appended records to the OS (what a commit does before fsync),
    /// and the index log once enough of it is buffered.
    fn write_out(&mut self) -> StoreResult<()> {
        self.flush_data()?;
        if self.index.pending.len() >= INDEX_FLUSH_BYTES {
            self.index.flush()?;
        }
        Ok(())
    }

    /// Data first, so the index never points past the data on disk.
    fn flush_all(&mut self) -> StoreResult<()> {
        self.flush_data()?;
        self.index.flush()
    }

    /// Appends a record to the active file (rotating first if it would not
    /// fit) and returns where it went.
    fn append(&mut self, data_dir: &Path, datasize: u64, rec: &mut NewRecord) -> StoreResult<Loc> {
        let len = rec.encoded_len();
        if self.active_len() + len > datasize && self.active_len() > DATA_FILE_HEADER_LEN as u64 {
            self.rotate(data_dir)?;
        }
        let offset = self.active_len() as u32;
        rec.prev_record = self.active_last_record;
        let written = self.active().written;
        rec.encode_into(self.tail.record_buffer(len as usize, written));
        self.active_last_record = offset;
        self.total_bytes += len;
        if self.unwritten_len() >= PENDING_FLUSH_BYTES as u64 {
            self.flush_data()?;
        }
        Ok(Loc {
            file: self.active().id,
            offset,
        })
    }

    /// Seals the active file (fsynced, so only the new active file ever
    /// needs syncing) and starts a new one, committed through the manifest.
    fn rotate(&mut self, data_dir: &Path) -> StoreResult<()> {
        self.flush_data()?;
        let sealed = self.active();
        sealed
            .file
            .sync_data()
            .map_err(|e| StoreError::io(&sealed.path, e))?;
        let _ = sealed.last_record.set(self.active_last_record);
        let id = self.next_file_id;
        let file = create_data_file(data_dir, id)?;
        self.next_file_id += 1;
        self.files.push(file);
        self.rebuild_file_pos();
        self.tail.reset(DATA_FILE_HEADER_LEN as u64);
        self.active_last_record = 0;
        let ids: Vec<u32> = self.files.iter().map(|f| f.id).collect();
        meta::save_manifest(&data_dir.join("manifest"), &ids)
    }

    /// Records `meta` as the live version of `key` and keeps the byte counters right.
    fn apply_live(&mut self, key: &[u8], meta: Meta) -> Result<(), BadSeqId> {
        let old = self.keys.insert(key, meta)?;
        if let Some(old) = old {
            self.live_payload -= old.value_len as u64;
            self.live_bytes -= old.record_len(key.len());
        }
        self.live_payload += meta.value_len as u64;
        self.live_bytes += meta.record_len(key.len());
        Ok(())
    }

    fn apply_delete(&mut self, key: &[u8]) -> Result<(), BadSeqId> {
        if let Some(old) = self.keys.remove(key)? {
            self.live_payload -= old.value_len as u64;
            self.live_bytes -= old.record_len(key.len());
        }
        Ok(())
    }

    /// Offset of the last record of the file at `pos`, or `None` if it has none.
    fn last_record_of(&self, pos: usize) -> Option<u32> {
        if pos + 1 == self.files.len() {
            return (self.active_last_record != 0).then_some(self.active_last_record);
        }
        let f = &self.files[pos];
        let last = *f.last_record.get_or_init(|| {
            let mut last = 0;
            let mut offset = DATA_FILE_HEADER_LEN;
            while let Ok((h, _)) = self.read_header(Loc { file: f.id, offset }) {
                last = offset;
                offset += h.record_len() as u32;
            }
            last
        });
        (last != 0).then_some(last)
    }
}

fn create_data_file(dir: &Path, id: u32) -> StoreResult<DataFile> {
    let path = data_file_path(dir, id);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    file.write_all_at(&data_file_header(id), 0)
        .and_then(|_| file.sync_all())
        .and_then(|_| meta::sync_dir(dir))
        .map_err(|e| StoreError::io(&path, e))?;
    Ok(DataFile {
        id,
        path,
        file: Arc::new(file),
        written: DATA_FILE_HEADER_LEN as u64,
        last_record: OnceLock::new(),
    })
}

/// A record read sequentially during replay or compaction.
struct ScannedRecord {
    offset: u32,
    header: RecordHeader,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// Reads valid records of one data file in order, from `start` to `end`.
/// Stops at the first record that is truncated or fails a CRC and reports its offset.
struct FileScanner<'a> {
    reader: BufReader<&'a File>,
    offset: u64,
    end: u64,
    /// Offset of the first invalid record, once found.
    damaged_at: Option<u64>,
}

impl<'a> FileScanner<'a> {
    fn new(file: &'a File, start: u64, end: u64) -> io::Result<Self> {
        let mut reader = BufReader::with_capacity(1 << 20, file);
        reader.seek(SeekFrom::Start(start))?;
        Ok(FileScanner {
            reader,
            offset: start,
            end,
            damaged_at: None,
        })
    }

    fn next_record(&mut self) -> io::Result<Option<ScannedRecord>> {
        if self.damaged_at.is_some() || self.offset >= self.end {
            return Ok(None);
        }
        let damaged = |s: &mut Self| {
            s.damaged_at = Some(s.offset);
            Ok(None)
        };
        if self.offset + RECORD_HEADER_LEN as u64 > self.end {
            return damaged(self);
        }
        let mut raw = [0u8; RECORD_HEADER_LEN];
        self.reader.read_exact(&mut raw)?;
        let header = RecordHeader::decode(&raw);
        if self.offset + header.record_len() > self.end || header.record_len() > u32::MAX as u64 {
            return damaged(self);
        }
        let mut key = vec![0u8; header.key_len as usize];
        self.reader.read_exact(&mut key)?;
        if !RecordHeader::verify(&raw, &key) {
            return damaged(self);
        }
        let mut value = vec![0u8; header.value_len as usize];
        self.reader.read_exact(&mut value)?;
        if crc32c::crc32c(&value) != header.value_crc {
            return damaged(self);
        }
        let offset = self.offset as u32;
        self.offset += header.record_len();
        Ok(Some(ScannedRecord {
            offset,
            header,
            key,
            value,
        }))
    }
}

/// Position in replay order: (index in the file list, offset).
type Position = (usize, u64);

impl Namespace {
    /// Opens (creating if needed) the namespace `name`, repairing what a crash left behind.
    pub fn open(
        name: &str,
        data_root: &Path,
        index_root: &Path,
        config: Arc<EngineConfig>,
        tail_budget: Arc<TailBudget>,
    ) -> StoreResult<Namespace> {
        let started = Instant::now();
        let data_dir = data_root.join(name);
        let index_dir = index_root.join(name);
        let created = !data_dir.exists();
        for dir in [&data_dir, &index_dir] {
            fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        if created {
            // a new namespace's directory entry must survive a power loss with
            // the writes acknowledged in it (its files are synced as written)
            meta::sync_dir(data_root).map_err(|e| StoreError::io(data_root, e))?;
        }
        let settings_path = data_dir.join("settings");
        let mut settings = match NsSettings::load(&settings_path)? {
            Some(s) => s,
            None => {
                let maxsize = if name == DEFAULT_NAMESPACE {
                    config.default_namespace_maxsize
                } else {
                    config.default_maxsize
                };
                let s = NsSettings::new(config.forced_mode.unwrap_or(Mode::User), maxsize);
                s.save(&settings_path)?;
                s
            }
        };
        if name == DEFAULT_NAMESPACE {
            // Only the server's flags decide what `default` is, as in 0-db: a setting an older
            // zdb let a client persist on it does not outlive a restart.
            let wanted = NsSettings {
                maxsize: config.default_namespace_maxsize,
                password: config.default_namespace_password.clone(),
                public: true,
                worm: false,
                ..settings.clone()
            };
            if wanted != settings {
                settings = wanted;
                settings.save(&settings_path)?;
            }
        }

        let manifest_path = data_dir.join("manifest");
        let listed = meta::load_manifest(&manifest_path)?;
        let on_disk = list_data_files(&data_dir)?;
        let ids = match listed {
            Some(ids) => ids,
            None => {
                // only a namespace from before any write lacks a manifest; if
                // data files are there anyway, id order is their write order
                let mut ids: Vec<u32> = on_disk
                    .iter()
                    .map(|(id, _)| *id)
                    .filter(|&id| id != u32::MAX)
                    .collect();
                ids.sort_unstable();
                if !ids.is_empty() {
                    warn!(
                        namespace = name,
                        files = ids.len(),
                        "no manifest, adopting data files in id order"
                    );
                    meta::save_manifest(&manifest_path, &ids)?;
                }
                ids
            }
        };
        for (id, path) in &on_disk {
            if !ids.contains(id) {
                warn!(namespace = name, file = %path.display(), "removing data file not in manifest (unfinished compaction or rotation)");
                fs::remove_file(path).map_err(|e| StoreError::io(path, e))?;
            }
        }
        let mut files = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            files.push(open_data_file(name, &data_dir, id, i + 1 == ids.len())?);
        }
        let next_file_id = ids.iter().max().map_or(1, |m| m + 1);

        let index_path = index_dir.join("index.zdb");
        let index_file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&index_path)
            .map_err(|e| StoreError::io(&index_path, e))?;
        let mut st = NsState {
            settings: settings.clone(),
            password_epoch: 0,
            keys: KeyIndex::new(settings.mode),
            files,
            file_pos: HashMap::new(),
            tail: Tail::new(DATA_FILE_HEADER_LEN as u64, tail_budget),
            active_last_record: 0,
            index: IndexLog {
                path: index_path,
                file: index_file,
                pending: Vec::new(),
                entries: 0,
            },
            next_file_id,
            live_payload: 0,
            live_bytes: 0,
            total_bytes: 0,
            written_total: 0,
            data_errors: AtomicU64::new(0),
        };
        if st.files.is_empty() {
            st.files.push(create_data_file(&data_dir, st.next_file_id)?);
            st.next_file_id += 1;
            meta::save_manifest(&manifest_path, &[st.files[0].id])?;
        }
        st.rebuild_file_pos();
        let written = st.active().written;
        st.tail.reset(written);
        st.total_bytes = st
            .files
            .iter()
            .map(|f| f.written - DATA_FILE_HEADER_LEN as u64)
            .sum();

        let replay_from = match load_index(name, &mut st)? {
            Some(pos) => pos,
            None => {
                st.keys = KeyIndex::new(st.settings.mode);
                st.index
                    .file
                    .set_len(0)
                    .and_then(|_| st.index.file.write_all(INDEX_MAGIC))
                    .map_err(|e| StoreError::io(&st.index.path, e))?;
                st.index.entries = 0;
                (0, DATA_FILE_HEADER_LEN as u64)
            }
        };
        // counters of what the index knows, so replay can adjust them record by record
        let mut live_payload = 0;
        let mut live_bytes = 0;
        st.keys.for_each(|k, m| {
            live_payload += m.value_len as u64;
            live_bytes += m.record_len(k.len());
        });
        st.live_payload = live_payload;
        st.live_bytes = live_bytes;
        let replayed = replay_data(name, &mut st, replay_from)?;

        if let Some(mode) = config.forced_mode {
            if mode != st.settings.mode {
                if st.total_bytes != 0 {
                    return Err(StoreError::ModeMismatch {
                        namespace: name.to_string(),
                        found: st.settings.mode.as_str(),
                        wanted: mode.as_str(),
                    });
                }
                settings.mode = mode;
                settings.save(&settings_path)?;
                st.settings = settings;
                st.keys = KeyIndex::new(mode);
            }
        }
        if st.index.entries > 2 * st.keys.count() as u64 + 1024 {
            rewrite_index(&mut st)?;
        }
        st.flush_all()?;
        info!(
            namespace = name,
            keys = st.keys.count(),
            files = st.files.len(),
            replayed_records = replayed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "namespace opened"
        );
        Ok(Namespace {
            name: name.to_string(),
            data_dir,
            index_dir,
            config,
            state: RwLock::new(st),
            removed: AtomicBool::new(false),
            maintenance: Mutex::new(()),
            write_turns: tokio::sync::Semaphore::new(1),
            synced_total: Mutex::new(0),
            recently_written: AtomicBool::new(false),
            unwritten: AtomicBool::new(false),
            access_epoch: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    fn write_state(&self) -> Result<RwLockWriteGuard<'_, NsState>, NsError> {
        let st = self.state.write();
        if self.is_removed() {
            return Err(NsError::Removed);
        }
        Ok(st)
    }

    fn read_state(&self) -> Result<RwLockReadGuard<'_, NsState>, NsError> {
        let st = self.state.read();
        if self.is_removed() {
            return Err(NsError::Removed);
        }
        if st.settings.freeze {
            return Err(NsError::Frozen);
        }
        Ok(st)
    }

    pub fn settings(&self) -> NsSettings {
        self.state.read().settings.clone()
    }

    /// The password and `public` flag with their epochs, in one snapshot.
    pub fn access(&self) -> NsAccess {
        let st = self.state.read();
        NsAccess {
            password: st.settings.password.clone(),
            public: st.settings.public,
            password_epoch: st.password_epoch,
            // bumped under the write lock: consistent with the settings read here
            epoch: self.access_epoch.load(Ordering::Acquire),
        }
    }

    /// Changes whenever the password or the `public` flag does: one atomic
    /// load, checked by every session before each batch of requests.
    pub fn access_epoch(&self) -> u64 {
        self.access_epoch.load(Ordering::Acquire)
    }

    /// Applies a settings change and persists it. A changed password (setting
    /// the same one again is no change) or `public` flag moves the access epoch.
    pub fn update_settings(&self, change: impl FnOnce(&mut NsSettings)) -> Result<(), NsError> {
        let mut st = self.write_state()?;
        let mut s = st.settings.clone();
        change(&mut s);
        s.save(&self.data_dir.join("settings"))?;
        let password_changed = s.password != st.settings.password;
        let access_changed = password_changed || s.public != st.settings.public;
        st.settings = s;
        if password_changed {
            st.password_epoch += 1;
        }
        if access_changed {
            self.access_epoch.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Switches the key layout; only allowed while nothing was ever written.
    pub fn set_mode(&self, mode: Mode) -> Result<(), NsError> {
        let mut st = self.write_state()?;
        if st.settings.mode == mode {
            return Ok(());
        }
        if st.total_bytes != 0 {
            return Err(NsError::NotEmpty);
        }
        let mut s = st.settings.clone();
        s.mode = mode;
        s.save(&self.data_dir.join("settings"))?;
        st.settings = s;
        st.keys = KeyIndex::new(mode);
        Ok(())
    }

    /// `GET`: `None` if absent; an error if the stored record fails its CRC.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, NsError> {
        Ok(self.read_state()?.value(key)?.map(Value::into_bytes))
    }

    /// Waits, without blocking the thread, until no other connection is
    /// running writes on this namespace. Writes are serialised by the
    /// namespace lock anyway; queueing for it here lets a worker thread serve
    /// other connections meanwhile instead of sleeping on the lock.
    pub async fn write_turn(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.write_turns
            .acquire()
            .await
            .expect("the write turn semaphore is never closed")
    }

    /// Locks the namespace for a run of writes (and reads) that a pipelined
    /// batch sends, so the run takes the lock once instead of once per request.
    pub fn writer(&self) -> Result<NsWriter<'_>, NsError> {
        Ok(NsWriter {
            ns: self,
            st: self.write_state()?,
            now: now_secs(),
        })
    }

    /// `NSJUMP`: seals the active data file and starts the next one now, as a full file
    /// would. An empty active file is kept (nothing to seal).
    pub fn jump(&self) -> Result<(), NsError> {
        let mut st = self.write_state()?;
        if st.active_len() > DATA_FILE_HEADER_LEN as u64 {
            st.rotate(&self.data_dir)?;
        }
        Ok(())
    }

    /// Like [`Namespace::writer`] for a run of reads, which other readers can share.
    pub fn reader(&self) -> Result<NsReader<'_>, NsError> {
        Ok(NsReader {
            st: self.read_state()?,
        })
    }

    /// `SET`. `timestamp` overrides the record time (replication by an admin).
    pub fn set(
        &self,
        key: &[u8],
        value: &[u8],
        timestamp: Option<u32>,
    ) -> Result<SetOutcome, NsError> {
        self.writer()?.set(key, value, timestamp)
    }

    /// `DEL`: appends a deletion marker.
    pub fn delete(&self, key: &[u8]) -> Result<(), NsError> {
        self.writer()?.delete(key)
    }

    /// Live metadata of `key` (`EXISTS`, `LENGTH`, `KEYTIME`, `KEYCUR`).
    pub fn meta(&self, key: &[u8]) -> Result<Option<Meta>, NsError> {
        Ok(self.read_state()?.keys.get(key))
    }

    /// `CHECK`: whether the live record of `key` passes its CRCs.
    pub fn check(&self, key: &[u8]) -> Result<Option<bool>, NsError> {
        let st = self.read_state()?;
        Ok(st
            .keys
            .get(key)
            .map(|m| st.read_record(key, &m, ReadFrom::Disk).is_ok()))
    }

    pub fn dbsize(&self) -> Result<u64, NsError> {
        Ok(self.read_state()?.keys.count() as u64)
    }

    /// `SCAN`: live keys after `cursor` (from the start without one), oldest first.
    pub fn scan(&self, cursor: Option<Loc>) -> Result<ScanPage, NsError> {
        let st = self.read_state()?;
        let (mut pos, mut offset) = match cursor {
            None => (0, DATA_FILE_HEADER_LEN as u64),
            Some(loc) => {
                let (h, _) = st.read_header(loc)?;
                (st.file_pos[&loc.file], loc.offset as u64 + h.record_len())
            }
        };
        let mut items = Vec::new();
        let mut last = None;
        let mut examined = 0;
        while pos < st.files.len() && items.len() < SCAN_PAGE_KEYS && examined < SCAN_MAX_RECORDS {
            let loc = Loc {
                file: st.files[pos].id,
                offset: offset as u32,
            };
            match st.read_header(loc) {
                Ok((h, key)) => {
                    examined += 1;
                    offset += h.record_len();
                    last = Some(loc);
                    if !h.is_deleted() && st.keys.get(&key).is_some_and(|m| m.loc == loc) {
                        items.push(ScanItem {
                            key,
                            value_len: h.value_len,
                            timestamp: h.timestamp,
                        });
                    }
                }
                // end of this file, or damage that hides the rest of it
                Err(_) => {
                    pos += 1;
                    offset = DATA_FILE_HEADER_LEN as u64;
                }
            }
        }
        match last {
            Some(cursor) if !items.is_empty() || pos < st.files.len() => {
                Ok(ScanPage { cursor, items })
            }
            _ => Err(NsError::NoMoreData),
        }
    }

    /// `RSCAN`: live keys before `cursor` (from the end without one), newest first.
    pub fn rscan(&self, cursor: Option<Loc>) -> Result<ScanPage, NsError> {
        let st = self.read_state()?;
        // the record to look at next, walking backwards
        let mut next: Option<Loc> = match cursor {
            None => (0..st.files.len()).rev().find_map(|pos| {
                st.last_record_of(pos).map(|offset| Loc {
                    file: st.files[pos].id,
                    offset,
                })
            }),
            Some(loc) => {
                let (h, _) = st.read_header(loc)?;
                previous_record(&st, loc, h.prev_record)
            }
        };
        let mut items = Vec::new();
        let mut last = None;
        let mut examined = 0;
        while let Some(loc) = next {
            if items.len() >= SCAN_PAGE_KEYS || examined >= SCAN_MAX_RECORDS {
                break;
            }
            examined += 1;
            let Ok((h, key)) = st.read_header(loc) else {
                break;
            };
            last = Some(loc);
            if !h.is_deleted() && st.keys.get(&key).is_some_and(|m| m.loc == loc) {
                items.push(ScanItem {
                    key,
                    value_len: h.value_len,
                    timestamp: h.timestamp,
                });
            }
            next = previous_record(&st, loc, h.prev_record);
        }
        match last {
            Some(cursor) if !items.is_empty() || next.is_some() => Ok(ScanPage { cursor, items }),
            _ => Err(NsError::NoMoreData),
        }
    }

    /// `HISTORY key [cursor]`: the live version, or the version at `cursor`.
    pub fn history(&self, key: &[u8], cursor: Option<Loc>) -> Result<HistoryItem, NsError> {
        let st = self.read_state()?;
        let meta = st.keys.get(key).ok_or(NsError::KeyNotFound)?;
        let loc = cursor.unwrap_or(meta.loc);
        if !st.file_pos.contains_key(&loc.file) {
            // that version was reclaimed by compaction
            return Err(NsError::NoMoreHistory);
        }
        let (h, stored_key) = st.read_header(loc)?;
        if stored_key != key || h.is_deleted() {
            return Err(NsError::InvalidCursor);
        }
        let (_, value) = st.read_record(
            key,
            &Meta {
                loc,
                value_len: h.value_len,
                timestamp: h.timestamp,
                value_crc: h.value_crc,
            },
            ReadFrom::Memory,
        )?;
        Ok(HistoryItem {
            previous: h.prev_version.filter(|p| st.file_pos.contains_key(&p.file)),
            timestamp: h.timestamp,
            value,
        })
    }

    pub fn info(&self) -> NsInfo {
        let st = self.state.read();
        NsInfo {
            settings: st.settings.clone(),
            entries: st.keys.count() as u64,
            live_payload: st.live_payload,
            data_bytes: st.total_bytes,
            reclaimable_bytes: st.total_bytes - st.live_bytes,
            data_files: st.files.len(),
            index_bytes: st.index.file.metadata().map(|m| m.len()).unwrap_or(0)
                + st.index.pending.len() as u64,
            next_seq_id: st.keys.next_seq_id(),
            data_errors: st.data_errors.load(Ordering::Relaxed),
            data_path: self.data_dir.clone(),
            index_path: self.index_dir.clone(),
        }
    }

    /// True when nothing was ever written (so the mode may still change).
    pub fn is_fresh(&self) -> bool {
        self.state.read().total_bytes == 0
    }

    /// Hands buffered writes to the OS and, under `--sync`, to the disk.
    /// Called before replies to writes are sent.
    pub fn commit(&self) -> Result<(), NsError> {
        let acknowledged_when_written = self.config.durability != Durability::Always;
        if acknowledged_when_written && !self.has_unwritten() {
            // another connection's commit wrote our records out with its own
            return Ok(());
        }
        let target = {
            let mut st = self.state.write();
            st.write_out()?;
            self.unwritten.store(false, Ordering::Release);
            st.written_total
        };
        if self.config.durability == Durability::Always {
            self.sync_to(target)?;
        }
        Ok(())
    }

    /// Whether records were appended that no commit has written out yet.
    pub fn has_unwritten(&self) -> bool {
        self.unwritten.load(Ordering::Acquire)
    }

    /// Makes everything written up to `target` durable. Concurrent callers
    /// share one fsync: whoever syncs covers everything written before it started.
    fn sync_to(&self, target: u64) -> Result<(), NsError> {
        let mut synced = self.synced_total.lock();
        if *synced >= target {
            return Ok(());
        }
        let (file, path, upto) = {
            let st = self.state.read();
            (
                st.active().file.clone(),
                st.active().path.clone(),
                st.written_total,
            )
        };
        file.sync_data().map_err(|e| StoreError::io(&path, e))?;
        *synced = upto;
        Ok(())
    }

    /// Gives the tail's written bytes back to the shared budget if nothing
    /// was appended since the previous call, so idle namespaces do not keep
    /// memory that busy ones could use.
    pub fn release_idle_tail(&self) {
        if self.recently_written.swap(false, Ordering::Relaxed) {
            return;
        }
        let mut st = self.state.write();
        let written = st.active().written;
        st.tail.drop_written(written);
    }

    /// Writes out and fsyncs both data and index (periodic sync and shutdown).
    pub fn sync(&self) -> Result<(), NsError> {
        let target = {
            let mut st = self.state.write();
            st.flush_all()?;
            st.index
                .file
                .sync_data()
                .map_err(|e| StoreError::io(&st.index.path, e))?;
            st.written_total
        };
        self.sync_to(target)
    }

    /// `FLUSH`: drops every key and every data file of the namespace.
    pub fn flush(&self) -> Result<(), NsError> {
        let _maintenance = self.maintenance.lock();
        let mut st = self.write_state()?;
        let id = st.next_file_id;
        let fresh = create_data_file(&self.data_dir, id)?;
        meta::save_manifest(&self.data_dir.join("manifest"), &[id])?;
        let old = std::mem::replace(&mut st.files, vec![fresh]);
        st.next_file_id += 1;
        st.rebuild_file_pos();
        st.tail.reset(DATA_FILE_HEADER_LEN as u64);
        st.active_last_record = 0;
        st.keys = KeyIndex::new(st.settings.mode);
        st.live_payload = 0;
        st.live_bytes = 0;
        st.total_bytes = 0;
        st.index.pending.clear();
        st.index
            .file
            .set_len(0)
            .and_then(|_| st.index.file.write_all(INDEX_MAGIC))
            .map_err(|e| StoreError::io(&st.index.path, e))?;
        st.index.entries = 0;
        for f in old {
            if let Err(e) = fs::remove_file(&f.path) {
                warn!(namespace = %self.name, file = %f.path.display(), "cannot remove flushed data file: {e}");
            }
        }
        Ok(())
    }

    /// Deletes the namespace from disk; clients still holding it get [`NsError::Removed`].
    pub fn destroy(&self) -> StoreResult<()> {
        let _maintenance = self.maintenance.lock();
        let _st = self.state.write();
        self.removed.store(true, Ordering::Release);
        for dir in [&self.data_dir, &self.index_dir] {
            fs::remove_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        Ok(())
    }

    /// Bytes that a compaction would reclaim, and the total size of records.
    pub fn space(&self) -> (u64, u64) {
        let st = self.state.read();
        (st.total_bytes - st.live_bytes, st.total_bytes)
    }

    /// Rewrites the live records of every sealed data file into new files and
    /// drops the old ones, while reads and writes go on. The namespace lock is
    /// only held briefly to seal the active file, to check liveness in batches,
    /// and to swap the files in at the end.
    pub fn compact(&self) -> Result<CompactionReport, NsError> {
        let Some(_maintenance) = self.maintenance.try_lock() else {
            return Err(NsError::CompactionRunning);
        };
        let started = Instant::now();
        let (sealed, bytes_before) = {
            let mut st = self.write_state()?;
            if st.active_len() > DATA_FILE_HEADER_LEN as u64 {
                st.rotate(&self.data_dir)?;
            } else {
                st.flush_data()?;
            }
            let sealed: Vec<(u32, Arc<File>, PathBuf, u64)> = st.files[..st.files.len() - 1]
                .iter()
                .map(|f| (f.id, f.file.clone(), f.path.clone(), f.written))
                .collect();
            (sealed, st.total_bytes)
        };
        if sealed.is_empty() {
            return Ok(CompactionReport {
                bytes_before,
                bytes_after: bytes_before,
                ..CompactionReport::default()
            });
        }
        let mut writer = CompactionWriter::new(self)?;
        // (key, old location, new location) of each copied record
        let mut moved: Vec<(Vec<u8>, Loc, Loc)> = Vec::new();
        let mut batch: Vec<ScannedRecord> = Vec::new();
        let flush_batch = |batch: &mut Vec<ScannedRecord>,
                           file: u32,
                           writer: &mut CompactionWriter,
                           moved: &mut Vec<(Vec<u8>, Loc, Loc)>|
         -> Result<(), NsError> {
            let keep: Vec<bool> = {
                let st = self.read_state_unfrozen()?;
                let last_seq = st.keys.next_seq_id().checked_sub(1);
                batch
                    .iter()
                    .map(|r| {
                        let loc = Loc {
                            file,
                            offset: r.offset,
                        };
                        if r.header.is_deleted() {
                            // the newest seq id's marker keeps ids from being handed out twice
                            st.settings.mode == Mode::Seq
                                && crate::storage::keys::seq_id(&r.key) == last_seq
                                && st.keys.get(&r.key).is_none()
                        } else {
                            st.keys.get(&r.key).is_some_and(|m| m.loc == loc)
                        }
                    })
                    .collect()
            };
            for (r, keep) in batch.drain(..).zip(keep) {
                if keep {
                    let old = Loc {
                        file,
                        offset: r.offset,
                    };
                    let new = writer.copy(&r)?;
                    moved.push((r.key, old, new));
                }
            }
            Ok(())
        };
        for (id, file, path, len) in &sealed {
            let mut scanner = FileScanner::new(file, DATA_FILE_HEADER_LEN as u64, *len)
                .map_err(|e| StoreError::io(path, e))?;
            while let Some(r) = scanner.next_record().map_err(|e| StoreError::io(path, e))? {
                batch.push(r);
                if batch.len() >= 1024 {
                    flush_batch(&mut batch, *id, &mut writer, &mut moved)?;
                }
            }
            flush_batch(&mut batch, *id, &mut writer, &mut moved)?;
            if let Some(at) = scanner.damaged_at {
                error!(namespace = %self.name, file = %path.display(), offset = at, "compaction: damaged record, the rest of this file is dropped");
            }
        }
        let outputs = writer.finish()?;

        let mut st = self.write_state()?;
        let sealed_ids: Vec<u32> = sealed.iter().map(|s| s.0).collect();
        for (key, old, new) in &moved {
            let Some(mut meta) = st.keys.get(key) else {
                continue;
            };
            if meta.loc != *old {
                continue;
            }
            meta.loc = *new;
            // same key, same length: counters are unchanged by the move
            let _ = st.keys.insert(key, meta);
            st.index.append(&IndexEntry {
                key: key.clone(),
                flags: 0,
                value_len: meta.value_len,
                timestamp: meta.timestamp,
                loc: *new,
                value_crc: meta.value_crc,
            });
        }
        let mut new_files: Vec<DataFile> = Vec::new();
        for out in &outputs {
            let path = data_file_path(&self.data_dir, out.id);
            fs::rename(&out.tmp_path, &path).map_err(|e| StoreError::io(&path, e))?;
            new_files.push(DataFile {
                id: out.id,
                path,
                file: out.file.clone(),
                written: out.len,
                last_record: OnceLock::new(),
            });
        }
        if let Some(last) = outputs.last() {
            // everything in the outputs is accounted for in the index up to here,
            // including copies that turned stale during the copy
            st.index.append(&IndexEntry {
                key: Vec::new(),
                flags: FLAG_COVERAGE,
                value_len: 0,
                timestamp: 0,
                loc: Loc {
                    file: last.id,
                    offset: last.len as u32,
                },
                value_crc: 0,
            });
        }
        let old_files: Vec<DataFile> = st
            .files
            .drain(..)
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|f| {
                if sealed_ids.contains(&f.id) {
                    Some(f)
                } else {
                    new_files.push(f);
                    None
                }
            })
            .collect();
        st.files = new_files;
        st.rebuild_file_pos();
        st.flush_all()?;
        let ids: Vec<u32> = st.files.iter().map(|f| f.id).collect();
        meta::sync_dir(&self.data_dir).map_err(|e| StoreError::io(&self.data_dir, e))?;
        meta::save_manifest(&self.data_dir.join("manifest"), &ids)?;
        st.total_bytes = st
            .files
            .iter()
            .map(|f| f.written - DATA_FILE_HEADER_LEN as u64)
            .sum::<u64>()
            + st.unwritten_len();
        let report = CompactionReport {
            files_removed: old_files.len(),
            files_written: outputs.len(),
            bytes_before,
            bytes_after: st.total_bytes,
            records_copied: moved.len() as u64,
        };
        drop(st);
        for f in old_files {
            if let Err(e) = fs::remove_file(&f.path) {
                warn!(namespace = %self.name, file = %f.path.display(), "cannot remove compacted data file: {e}");
            }
        }
        info!(namespace = %self.name, ?report, elapsed_ms = started.elapsed().as_millis() as u64, "compaction done");
        Ok(report)
    }

    /// Like `read_state` but also usable while frozen: compaction is not a client read.
    fn read_state_unfrozen(&self) -> Result<RwLockReadGuard<'_, NsState>, NsError> {
        let st = self.state.read();
        if self.is_removed() {
            return Err(NsError::Removed);
        }
        Ok(st)
    }
}

/// Index log flag of an entry that carries no key and only says "the data
/// files are fully indexed up to this position".
const FLAG_COVERAGE: u8 = 0x80;

/// A namespace locked exclusively, from [`Namespace::writer`].
pub struct NsWriter<'a> {
    ns: &'a Namespace,
    st: RwLockWriteGuard<'a, NsState>,
    /// Record time of the writes made through this lock: read once, not per
    /// record (a run lasts microseconds, timestamps are in seconds).
    now: u32,
}

impl NsWriter<'_> {
    /// `SET`. `timestamp` overrides the record time (replication by an admin).
    pub fn set(
        &mut self,
        key: &[u8],
        value: &[u8],
        timestamp: Option<u32>,
    ) -> Result<SetOutcome, NsError> {
        if key.len() > MAX_KEY_LEN {
            return Err(NsError::KeyTooLarge);
        }
        let value_crc = crc32c::crc32c(value);
        let (ns, st) = (self.ns, &mut *self.st);
        if st.settings.freeze {
            return Err(NsError::Frozen);
        }
        if st.settings.lock {
            return Err(NsError::Locked);
        }
        let generated = match st.settings.mode {
            Mode::Seq if key.is_empty() => Some(st.keys.next_seq_id().to_le_bytes()),
            _ => None,
        };
        let (key, existing): (&[u8], Option<Meta>) = match (st.settings.mode, &generated) {
            (_, Some(id)) => (id, None),
            (Mode::User, None) if key.is_empty() => return Err(NsError::KeyNeeded),
            (Mode::User, None) => (key, st.keys.get(key)),
            (Mode::Seq, None) => match st.keys.get(key) {
                Some(m) => (key, Some(m)),
                None => return Err(NsError::OnlyUpdate),
            },
        };
        if existing.is_some() && st.settings.worm {
            return Err(NsError::Worm);
        }
        if st.settings.maxsize > 0 {
            let floating = existing.map_or(0, |m| m.value_len as u64);
            if st.live_payload - floating + value.len() as u64 > st.settings.maxsize {
                return Err(NsError::NoSpace);
            }
        }
        if let Some(m) = existing {
            if m.value_len as usize == value.len() && m.value_crc == value_crc {
                // a damaged old record just means the new value gets written
                let unchanged = match st.recent_value(key, &m) {
                    Some(old) => old == value,
                    None => st
                        .read_record(key, &m, ReadFrom::Memory)
                        .is_ok_and(|(_, old)| old == value),
                };
                if unchanged {
                    return Ok(SetOutcome::Unchanged);
                }
            }
        }
        let timestamp = timestamp.unwrap_or(self.now);
        let mut rec = NewRecord {
            key,
            value,
            flags: 0,
            timestamp,
            prev_record: 0,
            prev_version: existing.map(|m| m.loc),
            value_crc,
        };
        let loc = st.append(&ns.data_dir, ns.config.datasize, &mut rec)?;
        ns.recently_written.store(true, Ordering::Relaxed);
        ns.unwritten.store(true, Ordering::Release);
        let meta = Meta {
            loc,
            value_len: value.len() as u32,
            timestamp,
            value_crc,
        };
        if st.apply_live(key, meta).is_err() {
            return Err(NsError::InvalidKey);
        }
        st.index.append(&IndexEntry {
            key,
            flags: 0,
            value_len: meta.value_len,
            timestamp,
            loc,
            value_crc,
        });
        Ok(SetOutcome::Stored(generated))
    }

    /// `DEL`: appends a deletion marker.
    pub fn delete(&mut self, key: &[u8]) -> Result<(), NsError> {
        let (ns, st) = (self.ns, &mut *self.st);
        if st.settings.freeze {
            return Err(NsError::Frozen);
        }
        if st.settings.lock {
            return Err(NsError::Locked);
        }
        let existing = st.keys.get(key).ok_or(NsError::KeyNotFound)?;
        if st.settings.worm {
            return Err(NsError::WormDelete);
        }
        let timestamp = self.now;
        let value_crc = crc32c::crc32c(&[]);
        let mut rec = NewRecord {
            key,
            value: &[],
            flags: FLAG_DELETED,
            timestamp,
            prev_record: 0,
            prev_version: Some(existing.loc),
            value_crc,
        };
        let loc = st.append(&ns.data_dir, ns.config.datasize, &mut rec)?;
        ns.recently_written.store(true, Ordering::Relaxed);
        ns.unwritten.store(true, Ordering::Release);
        if st.apply_delete(key).is_err() {
            return Err(NsError::InvalidKey);
        }
        st.index.append(&IndexEntry {
            key,
            flags: FLAG_DELETED,
            value_len: 0,
            timestamp,
            loc,
            value_crc,
        });
        Ok(())
    }

    /// `GET` while holding the write lock.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value<'_>>, NsError> {
        if self.st.settings.freeze {
            return Err(NsError::Frozen);
        }
        self.st.value(key)
    }
}

/// A namespace locked for reading, from [`Namespace::reader`].
pub struct NsReader<'a> {
    st: RwLockReadGuard<'a, NsState>,
}

impl NsReader<'_> {
    /// `GET`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value<'_>>, NsError> {
        self.st.value(key)
    }
}

/// The record before `loc` in replay order, given the header's `prev_record`.
fn previous_record(st: &NsState, loc: Loc, prev_record: u32) -> Option<Loc> {
    if prev_record != 0 {
        return Some(Loc {
            file: loc.file,
            offset: prev_record,
        });
    }
    let pos = *st.file_pos.get(&loc.file)?;
    (0..pos).rev().find_map(|p| {
        st.last_record_of(p).map(|offset| Loc {
            file: st.files[p].id,
            offset,
        })
    })
}

struct CompactionOutput {
    id: u32,
    tmp_path: PathBuf,
    file: Arc<File>,
    len: u64,
}

/// Writes copied records into new data files named `*.compact` until the swap.
struct CompactionWriter<'a> {
    ns: &'a Namespace,
    outputs: Vec<CompactionOutput>,
    buf: Vec<u8>,
    last_record: u32,
}

impl<'a> CompactionWriter<'a> {
    fn new(ns: &'a Namespace) -> Result<Self, NsError> {
        Ok(CompactionWriter {
            ns,
            outputs: Vec::new(),
            buf: Vec::new(),
            last_record: 0,
        })
    }

    fn start_file(&mut self) -> Result<(), NsError> {
        self.flush()?;
        let id = {
            let mut st = self.ns.write_state()?;
            st.next_file_id += 1;
            st.next_file_id - 1
        };
        let tmp_path = self.ns.data_dir.join(format!("d{id:08}.compact"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp_path)
            .map_err(|e| StoreError::io(&tmp_path, e))?;
        file.write_all_at(&data_file_header(id), 0)
            .map_err(|e| StoreError::io(&tmp_path, e))?;
        self.outputs.push(CompactionOutput {
            id,
            tmp_path,
            file: Arc::new(file),
            len: DATA_FILE_HEADER_LEN as u64,
        });
        self.last_record = 0;
        Ok(())
    }

    fn copy(&mut self, r: &ScannedRecord) -> Result<Loc, NsError> {
        let rec_len = r.header.record_len();
        let full = self.outputs.last().is_none_or(|o| {
            let len = o.len + self.buf.len() as u64;
            len + rec_len > self.ns.config.datasize && len > DATA_FILE_HEADER_LEN as u64
        });
        if full {
            self.start_file()?;
        }
        let out = self
            .outputs
            .last()
            .ok_or_else(|| NsError::Corrupt("compaction output file missing".into()))?;
        let offset = (out.len + self.buf.len() as u64) as u32;
        let id = out.id;
        NewRecord {
            key: &r.key,
            value: &r.value,
            flags: r.header.flags,
            timestamp: r.header.timestamp,
            prev_record: self.last_record,
            // history is what compaction reclaims
            prev_version: None,
            value_crc: r.header.value_crc,
        }
        .encode_into(&mut self.buf);
        self.last_record = offset;
        if self.buf.len() >= PENDING_FLUSH_BYTES {
            self.flush()?;
        }
        Ok(Loc { file: id, offset })
    }

    fn flush(&mut self) -> Result<(), NsError> {
        if let Some(out) = self.outputs.last_mut() {
            out.file
                .write_all_at(&self.buf, out.len)
                .map_err(|e| StoreError::io(&out.tmp_path, e))?;
            out.len += self.buf.len() as u64;
        }
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<CompactionOutput>, NsError> {
        self.flush()?;
        for out in &self.outputs {
            out.file
                .sync_all()
                .map_err(|e| StoreError::io(&out.tmp_path, e))?;
        }
        Ok(self.outputs)
    }
}

fn list_data_files(dir: &Path) -> StoreResult<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = parse_data_file_name(&name) {
            out.push((id, entry.path()));
        } else if let Some(stem) = name.strip_suffix(".compact") {
            // an interrupted compaction's output: never committed, never needed
            if stem.starts_with('d') {
                out.push((u32::MAX, entry.path()));
            }
        }
    }
    Ok(out)
}

fn open_data_file(ns: &str, dir: &Path, id: u32, is_last: bool) -> StoreResult<DataFile> {
    let path = data_file_path(dir, id);
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::MissingDataFile {
                namespace: ns.to_string(),
                file: id,
            })
        }
        Err(e) => return Err(StoreError::io(&path, e)),
    };
    let len = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
    let mut header = [0u8; DATA_FILE_HEADER_LEN as usize];
    let header_ok = len >= DATA_FILE_HEADER_LEN as u64
        && file.read_exact_at(&mut header, 0).is_ok()
        && &header[..8] == DATA_MAGIC
        && header[12..16] == id.to_le_bytes();
    let mut written = len;
    if !header_ok {
        if is_last && len < DATA_FILE_HEADER_LEN as u64 {
            // torn while being created
            warn!(namespace = ns, file = %path.display(), "rewriting torn data file header");
            file.set_len(0)
                .and_then(|_| file.write_all_at(&data_file_header(id), 0))
                .map_err(|e| StoreError::io(&path, e))?;
            written = DATA_FILE_HEADER_LEN as u64;
        } else {
            return Err(StoreError::BadMagic { path, what: "data" });
        }
    }
    if written > u32::MAX as u64 {
        return Err(StoreError::Corrupt {
            file: id,
            offset: u32::MAX,
            reason: "data file larger than 4 GiB",
        });
    }
    Ok(DataFile {
        id,
        path,
        file: Arc::new(file),
        written,
        last_record: OnceLock::new(),
    })
}

/// Replays the index log into `st.keys`. Returns where data replay must
/// start, or `None` when the index cannot be trusted and everything must be
/// rebuilt from the data files.
fn load_index(ns: &str, st: &mut NsState) -> StoreResult<Option<Position>> {
    let path = st.index.path.clone();
    let io_err = |e| StoreError::io(&path, e);
    let len = st.index.file.metadata().map_err(io_err)?.len();
    if len == 0 {
        return Ok(None);
    }
    // read in large chunks and decode entries in place: a key is copied
    // once, into the map, and only when it is new there
    let mut file = &st.index.file;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let mut magic = [0u8; 8];
    if read_full(&mut file, &mut magic).map_err(io_err)? != magic.len() || &magic != INDEX_MAGIC {
        warn!(
            namespace = ns,
            "index file has a bad header, rebuilding from data"
        );
        return Ok(None);
    }
    let mut good_len = INDEX_MAGIC.len() as u64;
    let mut entries = 0u64;
    let mut coverage: Option<Position> = None;
    let mut keys = KeyIndex::new(st.settings.mode);
    let mut buf = vec![0u8; INDEX_READ_CHUNK];
    // bytes of `buf` holding data, and where the next entry starts in it
    let (mut filled, mut at) = (0usize, 0usize);
    let mut eof = false;
    loop {
        let (entry, size) = match IndexEntry::decode_ref(&buf[at..filled]) {
            Ok(Some(decoded)) => decoded,
            Ok(None) if eof => {
                if at < filled {
                    warn!(
                        namespace = ns,
                        offset = good_len,
                        "torn index entry, cut off"
                    );
                }
                break;
            }
            Ok(None) => {
                // move the partial entry to the front and read more after it
                buf.copy_within(at..filled, 0);
                filled -= at;
                at = 0;
                let n = read_full(&mut file, &mut buf[filled..]).map_err(io_err)?;
                eof = filled + n < buf.len();
                filled += n;
                continue;
            }
            Err(_) => {
                warn!(
                    namespace = ns,
                    offset = good_len,
                    "damaged index entry, rebuilding from data"
                );
                return Ok(None);
            }
        };
        at += size;
        good_len += size as u64;
        if entries == 0 {
            // size the map once from the file length and the first entry's
            // size (an estimate: keys vary, and the log holds overwrites
            // until it is rewritten), instead of rehashing while it grows
            keys.reserve((len.saturating_sub(good_len) / size as u64 + 1).min(1 << 28) as usize);
        }
        entries += 1;
        if let Some(&pos) = st.file_pos.get(&entry.loc.file) {
            let end = if entry.flags & FLAG_COVERAGE != 0 {
                entry.loc.offset as u64
            } else {
                entry.loc.offset as u64
                    + (RECORD_HEADER_LEN + entry.key.len()) as u64
                    + entry.value_len as u64
            };
            if coverage.is_none_or(|c| (pos, end) > c) {
                coverage = Some((pos, end));
            }
        }
        if entry.flags & FLAG_COVERAGE != 0 {
            continue;
        }
        let applied = if entry.flags & FLAG_DELETED != 0 {
            keys.remove(entry.key).map(|_| ())
        } else {
            keys.insert(
                entry.key,
                Meta {
                    loc: entry.loc,
                    value_len: entry.value_len,
                    timestamp: entry.timestamp,
                    value_crc: entry.value_crc,
                },
            )
            .map(|_| ())
        };
        if applied.is_err() {
            warn!(
                namespace = ns,
                "index entry does not fit the namespace mode, rebuilding from data"
            );
            return Ok(None);
        }
    }
    // every live key must point inside a data file we have, and the index
    // must not claim data that is not on disk
    let mut consistent = coverage.is_none_or(|(pos, end)| end <= st.files[pos].written);
    keys.for_each(|k, m| {
        consistent &= st.file_pos.get(&m.loc.file).is_some_and(|&pos| {
            m.loc.offset as u64 + m.record_len(k.len()) <= st.files[pos].written
        });
    });
    if !consistent {
        warn!(
            namespace = ns,
            "index refers to data that is not there, rebuilding from data"
        );
        return Ok(None);
    }
    if good_len < len {
        st.index.file.set_len(good_len).map_err(io_err)?;
    }
    st.keys = keys;
    st.index.entries = entries;
    Ok(Some(coverage.unwrap_or((0, DATA_FILE_HEADER_LEN as u64))))
}

/// `read_exact` that reports how much it got instead of failing at end of file.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Replays data records from `from` on, verifying each. A damaged record in
/// the active file is a torn tail: the file is cut there so it can be
/// appended to again. Damage in a sealed file hides the rest of that file.
fn replay_data(ns: &str, st: &mut NsState, from: Position) -> StoreResult<u64> {
    let mut replayed = 0u64;
    let (start_pos, mut offset) = from;
    let count = st.files.len();
    for pos in start_pos..count {
        let is_last = pos + 1 == count;
        let (id, file, path, written) = {
            let f = &st.files[pos];
            (f.id, f.file.clone(), f.path.clone(), f.written)
        };
        if pos != start_pos {
            offset = DATA_FILE_HEADER_LEN as u64;
        }
        let mut scanner =
            FileScanner::new(&file, offset, written).map_err(|e| StoreError::io(&path, e))?;
        let mut last_record = None;
        while let Some(r) = scanner
            .next_record()
            .map_err(|e| StoreError::io(&path, e))?
        {
            let loc = Loc {
                file: id,
                offset: r.offset,
            };
            let applied = if r.header.is_deleted() {
                st.apply_delete(&r.key)
            } else {
                st.apply_live(
                    &r.key,
                    Meta {
                        loc,
                        value_len: r.header.value_len,
                        timestamp: r.header.timestamp,
                        value_crc: r.header.value_crc,
                    },
                )
            };
            if applied.is_err() {
                warn!(
                    namespace = ns,
                    file = id,
                    offset = r.offset,
                    "record key does not fit the namespace mode, skipped"
                );
                continue;
            }
            st.index.append(&IndexEntry {
                key: r.key,
                flags: r.header.flags,
                value_len: r.header.value_len,
                timestamp: r.header.timestamp,
                loc,
                value_crc: r.header.value_crc,
            });
            last_record = Some(r.offset);
            replayed += 1;
        }
        if let Some(at) = scanner.damaged_at {
            st.data_errors.fetch_add(1, Ordering::Relaxed);
            if is_last {
                warn!(namespace = ns, file = %path.display(), offset = at, dropped_bytes = written - at, "torn or corrupt tail, truncating");
                file.set_len(at)
                    .and_then(|_| file.sync_all())
                    .map_err(|e| StoreError::io(&path, e))?;
                st.total_bytes -= written - at;
                st.files[pos].written = at;
                st.tail.reset(at);
            } else {
                error!(namespace = ns, file = %path.display(), offset = at, "damaged record in a sealed data file; records after it in this file are not served");
            }
        }
        if is_last {
            st.active_last_record = match last_record {
                Some(o) => o,
                // everything in the active file was already indexed: its last
                // record is the one that ends where the data ends
                None => find_last_record(st, pos),
            };
        }
    }
    Ok(replayed)
}

fn find_last_record(st: &NsState, pos: usize) -> u32 {
    // one sequential buffered pass over the headers and keys (a `pread` per
    // record made this most of the time of reopening a large namespace);
    // accepts exactly the records `read_header` accepts
    let f = &st.files[pos];
    let len = st.file_len(pos);
    let mut reader = BufReader::with_capacity(1 << 20, &*f.file);
    let mut last = 0;
    let mut offset = DATA_FILE_HEADER_LEN as u64;
    if reader.seek(SeekFrom::Start(offset)).is_err() {
        return 0;
    }
    let mut raw = [0u8; RECORD_HEADER_LEN];
    let mut key = [0u8; MAX_KEY_LEN];
    while offset + RECORD_HEADER_LEN as u64 <= len && offset <= u32::MAX as u64 {
        if reader.read_exact(&mut raw).is_err() {
            break;
        }
        let h = RecordHeader::decode(&raw);
        let key_len = h.key_len as usize;
        if key_len > MAX_KEY_LEN
            || offset + (RECORD_HEADER_LEN + key_len) as u64 > len
            || reader.read_exact(&mut key[..key_len]).is_err()
            || !RecordHeader::verify(&raw, &key[..key_len])
            || offset + h.record_len() > len
        {
            break;
        }
        last = offset as u32;
        offset += h.record_len();
        if reader.seek_relative(h.value_len as i64).is_err() {
            break;
        }
    }
    last
}

/// Replaces the index log by a snapshot of the live keys.
fn rewrite_index(st: &mut NsState) -> StoreResult<()> {
    st.flush_all()?;
    let tmp = st.index.path.with_extension("rewrite");
    let mut out = Vec::with_capacity(INDEX_MAGIC.len() + st.keys.count() * 40);
    out.extend_from_slice(INDEX_MAGIC);
    let mut entries = 0;
    st.keys.for_each(|k, m| {
        IndexEntry {
            key: k,
            flags: 0,
            value_len: m.value_len,
            timestamp: m.timestamp,
            loc: m.loc,
            value_crc: m.value_crc,
        }
        .encode_into(&mut out);
        entries += 1;
    });
    // the snapshot covers all data present now
    let last = st.files.len() - 1;
    IndexEntry {
        key: Vec::new(),
        flags: FLAG_COVERAGE,
        value_len: 0,
        timestamp: 0,
        loc: Loc {
            file: st.files[last].id,
            offset: st.files[last].written as u32,
        },
        value_crc: 0,
    }
    .encode_into(&mut out);
    meta::write_atomic(&tmp, &out)?;
    fs::rename(&tmp, &st.index.path).map_err(|e| StoreError::io(&st.index.path, e))?;
    st.index.file = OpenOptions::new()
        .read(true)
        .append(true)
        .open(&st.index.path)
        .map_err(|e| StoreError::io(&st.index.path, e))?;
    st.index.entries = entries + 1;
    Ok(())
}
