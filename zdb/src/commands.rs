//! Command dispatch: one [`Session`] per connection turns parsed requests
//! into namespace operations and RESP replies.
//!
//! Access rules (0-db's): without `--admin` every client is admin. A
//! namespace without password is readable and writable by all; with a
//! password it is writable only after `SELECT ns password`, and readable
//! without it only when it is public.
//!
//! A change of a namespace's password or `public` flag ends what the old
//! settings gave to the sessions already in it: before each batch a session
//! compares the namespace's access epoch with the one it entered under, and
//! on a change keeps only what `SELECT ns` without password gives now (unless
//! it gave the password and that password is still the current one).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use sha1::{Digest, Sha1};

use crate::auth_limit::{AuthLimiter, Source};
use crate::config::{Mode, ZdbConfig};
use crate::resp::{reply, Limits, Request};
use crate::storage::namespace::{NsReader, NsWriter, ScanPage, SetOutcome, Value};
use crate::storage::record::{Loc, MAX_KEY_LEN};
use crate::storage::{Namespace, NsAccess, NsError, Store, DEFAULT_NAMESPACE};

/// `MGET` takes at most this many keys (0-db's limit).
const MGET_MAX_KEYS: usize = 1023;
/// An `MGET` reply is cut off with an error rather than grow past this.
const MGET_MAX_REPLY: usize = 64 * 1024 * 1024;
const MAX_PASSWORD_LEN: usize = 128;

/// Server-wide counters reported by `INFO`.
#[derive(Default)]
pub struct Stats {
    pub commands: AtomicU64,
    pub failed: AtomicU64,
    pub unauthorized: AtomicU64,
    pub clients_lifetime: AtomicU64,
    pub clients_connected: AtomicUsize,
}

/// State shared by every connection.
pub struct Shared {
    pub store: Store,
    pub config: ZdbConfig,
    pub stats: Stats,
    pub auth_limiter: AuthLimiter,
    pub started: Instant,
    pub boot_time: u64,
}

impl Shared {
    pub fn new(store: Store, config: ZdbConfig) -> Self {
        Shared {
            store,
            auth_limiter: AuthLimiter::new(
                config.auth_max_failures_per_source,
                config.auth_lockout,
            ),
            config,
            stats: Stats::default(),
            started: Instant::now(),
            boot_time: unix_now().0,
        }
    }
}

fn unix_now() -> (u64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_micros())
}

/// Work a command hands back to the connection because it must not run on
/// the async executor.
pub enum Deferred {
    /// `COMPACT`: run a compaction of this namespace and reply with its report.
    Compact(Arc<Namespace>),
    /// Send the replies so far and close the connection (too many failed
    /// password attempts); requests after this one are not run.
    Close,
}

const LOCKED_OUT: &str = "Too many failed authentication attempts, try again later";
const DENIED_CLOSING: &str = "Access denied, too many failed attempts: closing the connection";

/// Per-connection state.
pub struct Session {
    shared: Arc<Shared>,
    ns: Arc<Namespace>,
    admin: bool,
    readable: bool,
    writable: bool,
    /// The namespace's access epoch when `readable`/`writable` were decided.
    access_epoch: u64,
    /// Set when the access came from giving the password of this epoch.
    password_epoch: Option<u64>,
    nonce: Option<String>,
    /// Where the client connects from, for the per-source password limit.
    source: Source,
    /// Failed (or refused) password attempts on this connection.
    auth_failures: u32,
    /// Namespaces written since the last [`Session::take_dirty`].
    dirty: Vec<Arc<Namespace>>,
}

/// The current namespace's lock, held across a run of `SET`/`GET`/`DEL`
/// requests of one batch.
enum Held<'a> {
    Nothing,
    Read(NsReader<'a>),
    Write(NsWriter<'a>),
}

impl<'a> Held<'a> {
    fn writer(&mut self, ns: &'a Namespace) -> Result<&mut NsWriter<'a>, NsError> {
        if !matches!(self, Held::Write(_)) {
            // a read lock must go before the write lock is taken
            *self = Held::Nothing;
            *self = Held::Write(ns.writer()?);
        }
        let Held::Write(w) = self else {
            unreachable!("the write lock was just taken")
        };
        Ok(w)
    }

    fn get(&mut self, ns: &'a Namespace, key: &[u8]) -> Result<Option<Value<'_>>, NsError> {
        if matches!(self, Held::Nothing) {
            *self = Held::Read(ns.reader()?);
        }
        match self {
            Held::Write(w) => w.get(key),
            Held::Read(r) => r.get(key),
            Held::Nothing => unreachable!("a lock was just taken"),
        }
    }
}

/// Command names are upper-cased on the stack: they are short, and this runs per request.
fn upper_name<'b>(raw: &'b [u8], buf: &'b mut [u8; 16]) -> &'b [u8] {
    if raw.len() <= buf.len() {
        buf[..raw.len()].copy_from_slice(raw);
        buf[..raw.len()].make_ascii_uppercase();
        &buf[..raw.len()]
    } else {
        raw
    }
}

/// Replies with `-<message>` and returns from the command handler.
macro_rules! fail {
    ($out:expr, $($msg:tt)*) => {{
        reply::error($out, &format!($($msg)*));
        return false;
    }};
}

impl Session {
    /// A new client from `source`, attached to the default namespace.
    pub fn new(shared: Arc<Shared>, source: Source) -> Option<Session> {
        let ns = shared.store.get(DEFAULT_NAMESPACE)?;
        let admin = shared.config.admin_password.is_none();
        let access = ns.access();
        let (readable, writable) = access_without_password(&access);
        Some(Session {
            shared,
            ns,
            admin,
            readable,
            writable,
            access_epoch: access.epoch,
            password_epoch: None,
            nonce: None,
            source,
            auth_failures: 0,
            dirty: Vec::new(),
        })
    }

    /// Re-decides access after the namespace's password or `public` flag
    /// changed: what the current password gave stays, the rest is what
    /// `SELECT ns` without password gives now.
    fn refresh_access(&mut self) {
        let access = self.ns.access();
        self.access_epoch = access.epoch;
        let password_still_valid =
            access.password.is_some() && self.password_epoch == Some(access.password_epoch);
        if !password_still_valid {
            self.password_epoch = None;
            (self.readable, self.writable) = access_without_password(&access);
        }
    }

    /// Namespaces with writes that must be committed before replies go out.
    pub fn take_dirty(&mut self) -> Vec<Arc<Namespace>> {
        std::mem::take(&mut self.dirty)
    }

    fn mark_dirty(&mut self) {
        if !self.dirty.iter().any(|n| Arc::ptr_eq(n, &self.ns)) {
            self.dirty.push(self.ns.clone());
        }
    }

    /// Runs requests from the front of `requests`, appending their replies to
    /// `out`, and returns how many ran and the work the last one deferred.
    /// Consecutive `SET`, `GET` and `DEL` requests share one lock of the
    /// namespace; the run ends after any other command (which takes its own
    /// locks, and may switch namespace), or once `out` holds `flush_at` bytes.
    pub fn execute_batch(
        &mut self,
        requests: &[Request],
        out: &mut BytesMut,
        flush_at: usize,
    ) -> (usize, Option<Deferred>) {
        if self.ns.access_epoch() != self.access_epoch {
            self.refresh_access();
        }
        let ns = self.ns.clone();
        let mut held = Held::Nothing;
        let (mut commands, mut failed) = (0, 0);
        let mut ran = 0;
        let mut other = None;
        for request in requests {
            ran += 1;
            let args = match request {
                Request::Command(args) if !args.is_empty() => args,
                Request::Command(_) => continue,
                Request::Empty => {
                    reply::error(out, "Missing arguments");
                    continue;
                }
                Request::TooLarge => {
                    reply::error(
                        out,
                        &format!(
                            "Payload too large: an argument exceeds {} bytes",
                            Limits::default().max_arg_len
                        ),
                    );
                    continue;
                }
            };
            let mut upper = [0u8; 16];
            let ok = match upper_name(&args[0], &mut upper) {
                b"SET" => self.set(args, out, &ns, &mut held),
                b"GET" => self.get(args, out, &ns, &mut held),
                b"DEL" => self.del(args, out, &ns, &mut held),
                _ => {
                    other = Some(args);
                    break;
                }
            };
            commands += 1;
            if !ok {
                failed += 1;
            }
            if out.len() >= flush_at {
                break;
            }
        }
        drop(held);
        let stats = &self.shared.stats;
        stats.commands.fetch_add(commands, Ordering::Relaxed);
        if failed > 0 {
            stats.failed.fetch_add(failed, Ordering::Relaxed);
        }
        // any other command runs without the run's lock: it takes its own
        let deferred = other.and_then(|args| self.execute(args, out));
        (ran, deferred)
    }

    /// The namespace that [`Session::execute_batch`] would write to for the
    /// front of `requests`, if that run has a `SET` or `DEL`.
    pub fn writes_ahead(&self, requests: &[Request]) -> Option<Arc<Namespace>> {
        for request in requests {
            let Request::Command(args) = request else {
                continue;
            };
            let Some(name) = args.first() else { continue };
            let mut upper = [0u8; 16];
            match upper_name(name, &mut upper) {
                b"SET" | b"DEL" => return Some(self.ns.clone()),
                b"GET" => {}
                _ => return None,
            }
        }
        None
    }

    /// Runs one command, appending its reply to `out`.
    fn execute(&mut self, args: &[Bytes], out: &mut BytesMut) -> Option<Deferred> {
        self.shared.stats.commands.fetch_add(1, Ordering::Relaxed);
        let raw_name = args.first()?;
        let mut upper = [0u8; 16];
        let name = upper_name(raw_name, &mut upper);
        let mut deferred = None;
        let ok = match name {
            b"PING" => self.ping(args, out),
            b"TIME" => self.time(args, out),
            b"INFO" => self.info(args, out),
            b"AUTH" => self.auth(args, out),
            b"MGET" => self.mget(args, out),
            b"EXISTS" | b"CHECK" | b"LENGTH" | b"KEYTIME" | b"KEYCUR" => {
                self.key_query(name, args, out)
            }
            b"SCAN" | b"SCANX" | b"RSCAN" => self.scan(name, args, out),
            b"HISTORY" => self.history(args, out),
            b"DBSIZE" => self.dbsize(args, out),
            b"NSNEW" => self.nsnew(args, out),
            b"NSDEL" => self.nsdel(args, out),
            b"NSINFO" => self.nsinfo(args, out),
            b"NSJUMP" => self.nsjump(args, out),
            b"NSLIST" => self.nslist(args, out),
            b"NSSET" => self.nsset(args, out),
            b"SELECT" => self.select(args, out),
            b"FLUSH" => self.flush(args, out),
            b"COMPACT" => {
                if self.arity(args, 1, 1, out) && self.require_admin(out) {
                    deferred = Some(Deferred::Compact(self.ns.clone()));
                    true
                } else {
                    false
                }
            }
            _ => {
                reply::error(out, "Command not supported");
                false
            }
        };
        if !ok {
            self.shared.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        if self.auth_failures >= self.shared.config.auth_max_failures_per_connection {
            deferred = Some(Deferred::Close);
        }
        deferred
    }

    /// Starts a password check: `false` (with the reply written) if this
    /// client's source is locked out, in which case the password must not be
    /// compared.
    fn password_check_allowed(&mut self, out: &mut BytesMut) -> bool {
        if self.shared.auth_limiter.try_attempt(self.source) {
            return true;
        }
        self.shared
            .stats
            .unauthorized
            .fetch_add(1, Ordering::Relaxed);
        self.auth_failures += 1;
        reply::error(out, LOCKED_OUT);
        false
    }

    /// Ends a password check started by [`Session::password_check_allowed`];
    /// on a wrong password, replies `Access denied`.
    fn password_checked(&mut self, right: bool, out: &mut BytesMut) -> bool {
        if right {
            self.shared.auth_limiter.succeeded(self.source);
            return true;
        }
        self.shared
            .stats
            .unauthorized
            .fetch_add(1, Ordering::Relaxed);
        self.auth_failures += 1;
        if self.auth_failures >= self.shared.config.auth_max_failures_per_connection {
            reply::error(out, DENIED_CLOSING);
        } else {
            reply::error(out, "Access denied");
        }
        false
    }

    fn arity(&self, args: &[Bytes], min: usize, max: usize, out: &mut BytesMut) -> bool {
        // 0-db's words: a command with a fixed count says `Unexpected arguments` either way,
        // one with a minimum says `Missing arguments` below it.
        if args.len() < min && min != max {
            reply::error(out, "Missing arguments");
            return false;
        }
        if args.len() < min || args.len() > max {
            reply::error(out, "Unexpected arguments");
            return false;
        }
        true
    }

    fn require_admin(&self, out: &mut BytesMut) -> bool {
        if !self.admin {
            self.shared
                .stats
                .unauthorized
                .fetch_add(1, Ordering::Relaxed);
            reply::error(out, "Permission denied");
            return false;
        }
        true
    }

    fn require_read(&self, out: &mut BytesMut) -> bool {
        if self.ns.is_removed() {
            reply::error(out, &NsError::Removed.to_string());
            return false;
        }
        if !self.readable {
            reply::error(out, "Namespace protected and private");
            return false;
        }
        true
    }

    fn require_write(&self, out: &mut BytesMut) -> bool {
        if !self.require_read(out) {
            return false;
        }
        if !self.writable {
            reply::error(out, "Namespace is in read-only mode");
            return false;
        }
        true
    }

    fn ns_error(out: &mut BytesMut, e: NsError) -> bool {
        reply::error(out, &e.to_string());
        false
    }

    fn ping(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 1, 2, out) {
            return false;
        }
        match args.get(1) {
            Some(msg) => reply::bulk(out, msg),
            None => reply::simple(out, "PONG"),
        }
        true
    }

    fn time(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 1, 1, out) {
            return false;
        }
        let (secs, micros) = unix_now();
        reply::array(out, 2);
        reply::bulk(out, secs.to_string().as_bytes());
        reply::bulk(out, micros.to_string().as_bytes());
        true
    }

    fn info(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 1, 2, out) {
            return false;
        }
        let s = &self.shared;
        let st = &s.stats;
        let cfg = &s.config;
        let text = format!(
            "# server\nserver_name: zdb (gridchain, 0-db compatible)\nserver_version: {}\nboot_time: {}\nuptime: {}\n\
             mode: {}\nsync: {:?}\ndatasize: {}\n\n# clients\nclients_lifetime: {}\nclients_connected: {}\n\n\
             # stats\ncommands_executed: {}\ncommands_failed: {}\ncommands_unauthorized: {}\n\n# namespaces\nnamespaces: {}\n",
            env!("CARGO_PKG_VERSION"),
            s.boot_time,
            s.started.elapsed().as_secs(),
            cfg.mode.map_or("mixed", Mode::as_str),
            cfg.durability,
            cfg.datasize,
            st.clients_lifetime.load(Ordering::Relaxed),
            st.clients_connected.load(Ordering::Relaxed),
            st.commands.load(Ordering::Relaxed),
            st.failed.load(Ordering::Relaxed),
            st.unauthorized.load(Ordering::Relaxed),
            s.store.names().len(),
        );
        reply::bulk(out, text.as_bytes());
        true
    }

    /// `AUTH password` and `AUTH SECURE CHALLENGE|hash`, in 0-db's order: a challenge is
    /// issued whether or not the server has an admin password (`SELECT ns SECURE` needs one
    /// too), the rest needs it.
    fn auth(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 2, 3, out) {
            return false;
        }
        if args.len() == 3 {
            if !args[1].eq_ignore_ascii_case(b"SECURE") {
                fail!(out, "Only SECURE extra method supported");
            }
            if args[2].eq_ignore_ascii_case(b"CHALLENGE") {
                let nonce = hex::encode(rand::random::<[u8; 8]>());
                reply::simple(out, &nonce);
                self.nonce = Some(nonce);
                return true;
            }
        }
        let Some(password) = self.shared.config.admin_password.clone() else {
            fail!(out, "Authentication disabled");
        };
        if args.len() == 3 {
            let Some(nonce) = self.nonce.take() else {
                fail!(
                    out,
                    "No CHALLENGE requested, secure authentication not available"
                );
            };
            if args[2].len() != 40 {
                fail!(out, "Invalid hash length");
            }
            if !self.password_check_allowed(out) {
                return false;
            }
            let right = secure_match(&nonce, &password, &args[2]);
            if !self.password_checked(right, out) {
                return false;
            }
        } else {
            if args[1].len() > 128 {
                fail!(out, "Password too long");
            }
            if !self.password_check_allowed(out) {
                return false;
            }
            let right = constant_time_eq(args[1].as_ref(), password.as_bytes());
            if !self.password_checked(right, out) {
                return false;
            }
        }
        self.admin = true;
        reply::simple(out, "OK");
        true
    }

    fn set<'a>(
        &mut self,
        args: &[Bytes],
        out: &mut BytesMut,
        ns: &'a Namespace,
        held: &mut Held<'a>,
    ) -> bool {
        if !self.arity(args, 3, 4, out) || !self.require_write(out) {
            return false;
        }
        let timestamp = match args.get(3) {
            None => None,
            Some(t) => {
                if !self.require_admin(out) {
                    return false;
                }
                match std::str::from_utf8(t)
                    .ok()
                    .and_then(|t| t.parse::<u32>().ok())
                {
                    Some(t) => Some(t),
                    None => fail!(out, "Invalid timestamp"),
                }
            }
        };
        let stored = held
            .writer(ns)
            .and_then(|w| w.set(&args[1], &args[2], timestamp));
        match stored {
            Ok(SetOutcome::Stored(generated)) => {
                self.mark_dirty();
                reply::bulk(out, generated.as_ref().map_or(&args[1][..], |id| &id[..]));
                true
            }
            Ok(SetOutcome::Unchanged) => {
                reply::nil(out);
                true
            }
            Err(e) => Self::ns_error(out, e),
        }
    }

    fn check_key(key: &[u8], out: &mut BytesMut) -> bool {
        if key.is_empty() {
            fail!(out, "Invalid key");
        }
        if key.len() > MAX_KEY_LEN {
            fail!(out, "Key too large");
        }
        true
    }

    fn get<'a>(
        &mut self,
        args: &[Bytes],
        out: &mut BytesMut,
        ns: &'a Namespace,
        held: &mut Held<'a>,
    ) -> bool {
        if !self.arity(args, 2, 2, out)
            || !self.require_read(out)
            || !Self::check_key(&args[1], out)
        {
            return false;
        }
        match held.get(ns, &args[1]) {
            Ok(Some(v)) => reply::bulk(out, &v),
            Ok(None) => reply::nil(out),
            Err(e) => return Self::ns_error(out, e),
        }
        true
    }

    fn mget(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 2, MGET_MAX_KEYS + 1, out) || !self.require_read(out) {
            return false;
        }
        let mut values = Vec::with_capacity(args.len() - 1);
        let mut size = 0;
        for key in &args[1..] {
            if !Self::check_key(key, out) {
                return false;
            }
            match self.ns.get(key) {
                Ok(v) => {
                    size += v.as_ref().map_or(0, |v| v.len());
                    if size > MGET_MAX_REPLY {
                        fail!(
                            out,
                            "MGET reply would exceed {MGET_MAX_REPLY} bytes, ask for fewer keys"
                        );
                    }
                    values.push(v);
                }
                Err(e) => return Self::ns_error(out, e),
            }
        }
        reply::array(out, values.len());
        for v in values {
            match v {
                Some(v) => reply::bulk(out, &v),
                None => reply::nil(out),
            }
        }
        true
    }

    fn del<'a>(
        &mut self,
        args: &[Bytes],
        out: &mut BytesMut,
        ns: &'a Namespace,
        held: &mut Held<'a>,
    ) -> bool {
        if !self.arity(args, 2, 2, out)
            || !self.require_write(out)
            || !Self::check_key(&args[1], out)
        {
            return false;
        }
        match held.writer(ns).and_then(|w| w.delete(&args[1])) {
            Ok(()) => {
                self.mark_dirty();
                reply::simple(out, "OK");
                true
            }
            Err(e) => Self::ns_error(out, e),
        }
    }

    /// `EXISTS`, `CHECK`, `LENGTH`, `KEYTIME`, `KEYCUR`: questions about one key.
    fn key_query(&mut self, name: &[u8], args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 2, 2, out)
            || !self.require_read(out)
            || !Self::check_key(&args[1], out)
        {
            return false;
        }
        let key = &args[1];
        if name == b"CHECK" {
            match self.ns.check(key) {
                Ok(Some(ok)) => reply::int(out, i64::from(ok)),
                Ok(None) => reply::nil(out),
                Err(e) => return Self::ns_error(out, e),
            }
            return true;
        }
        let meta = match self.ns.meta(key) {
            Ok(m) => m,
            Err(e) => return Self::ns_error(out, e),
        };
        match (name, meta) {
            (b"EXISTS", m) => reply::int(out, i64::from(m.is_some())),
            (b"LENGTH", Some(m)) => reply::int(out, m.value_len as i64),
            (b"KEYTIME", Some(m)) => reply::int(out, m.timestamp as i64),
            (b"KEYCUR", Some(m)) => reply::bulk(out, &m.loc.to_cursor()),
            (b"KEYCUR", None) => fail!(out, "Key not found"),
            _ => reply::nil(out),
        }
        true
    }

    fn scan(&mut self, name: &[u8], args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 1, 2, out) || !self.require_read(out) {
            return false;
        }
        let cursor = match args.get(1) {
            None => None,
            Some(c) => match Loc::from_cursor(c) {
                Some(loc) => Some(loc),
                None => fail!(out, "Invalid key format"),
            },
        };
        let page = if name == b"RSCAN" {
            self.ns.rscan(cursor)
        } else {
            self.ns.scan(cursor)
        };
        match page {
            Ok(ScanPage { cursor, items }) => {
                reply::array(out, 2);
                reply::bulk(out, &cursor.to_cursor());
                reply::array(out, items.len());
                for item in items {
                    reply::array(out, 3);
                    reply::bulk(out, &item.key);
                    reply::int(out, item.value_len as i64);
                    reply::int(out, item.timestamp as i64);
                }
                true
            }
            Err(e) => Self::ns_error(out, e),
        }
    }

    fn history(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 2, 3, out)
            || !self.require_read(out)
            || !Self::check_key(&args[1], out)
        {
            return false;
        }
        let cursor = match args.get(2) {
            None => None,
            Some(c) => match Loc::from_cursor(c) {
                Some(loc) => Some(loc),
                None => fail!(out, "Invalid arguments (invalid key)"),
            },
        };
        match self.ns.history(&args[1], cursor) {
            Ok(item) => {
                reply::array(out, 3);
                match item.previous {
                    Some(p) => reply::bulk(out, &p.to_cursor()),
                    None => reply::nil(out),
                }
                reply::bulk(out, item.timestamp.to_string().as_bytes());
                reply::bulk(out, &item.value);
                true
            }
            Err(e) => Self::ns_error(out, e),
        }
    }

    fn dbsize(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 1, 1, out) || !self.require_read(out) {
            return false;
        }
        match self.ns.dbsize() {
            Ok(n) => reply::int(out, n as i64),
            Err(e) => return Self::ns_error(out, e),
        }
        true
    }

    fn ns_name<'a>(arg: &'a [u8], out: &mut BytesMut) -> Option<&'a str> {
        match std::str::from_utf8(arg) {
            Ok(s) if s.len() <= 128 => Some(s),
            Ok(_) => {
                reply::error(out, "Namespace too long");
                None
            }
            Err(_) => {
                reply::error(out, "This name is not allowed");
                None
            }
        }
    }

    fn nsnew(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 2, 2, out) || !self.require_admin(out) {
            return false;
        }
        let Some(name) = Self::ns_name(&args[1], out) else {
            return false;
        };
        match self.shared.store.create(name) {
            Ok(_) => {
                reply::simple(out, "OK");
                true
            }
            Err(e) => fail!(out, "{e}"),
        }
    }

    fn nsdel(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 2, 2, out) || !self.require_admin(out) {
            return false;
        }
        let Some(name) = Self::ns_name(&args[1], out) else {
            return false;
        };
        // 0-db's order: default, then existence, then the caller's own.
        if name == DEFAULT_NAMESPACE {
            fail!(out, "Cannot remove default namespace");
        }
        if self.shared.store.get(name).is_none() {
            fail!(out, "This namespace doesn't exists");
        }
        if name == self.ns.name() {
            fail!(out, "Cannot remove namespace you're currently using.");
        }
        match self.shared.store.remove(name) {
            Ok(()) => {
                reply::simple(out, "OK");
                true
            }
            Err(e) => fail!(out, "{e}"),
        }
    }

    /// `NSJUMP` (admin): the current namespace starts a new data file now.
    fn nsjump(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.require_admin(out) || !self.arity(args, 1, 1, out) {
            return false;
        }
        match self.ns.jump() {
            Ok(()) => {
                reply::simple(out, "OK");
                true
            }
            Err(e) => fail!(out, "{e}"),
        }
    }

    fn nsinfo(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 2, 2, out) {
            return false;
        }
        let Some(name) = Self::ns_name(&args[1], out) else {
            return false;
        };
        let Some(ns) = self.shared.store.get(name) else {
            fail!(out, "Namespace not found");
        };
        let i = ns.info();
        let s = &i.settings;
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let mut text = format!(
            "# namespace\nname: {}\nentries: {}\npublic: {}\npassword: {}\ndata_size_bytes: {}\n\
             data_size_mb: {:.2}\ndata_limits_bytes: {}\nindex_size_bytes: {}\nindex_size_kb: {:.2}\n\
             mode: {}\nworm: {}\nlocked: {}\nfrozen: {}\nnext_internal_id: 0x{:08x}\n\
             data_files: {}\ndata_disk_bytes: {}\nreclaimable_bytes: {}\nstats_data_errors: {}\n",
            ns.name(),
            i.entries,
            yes_no(s.public),
            yes_no(s.password.is_some()),
            i.live_payload,
            i.live_payload as f64 / (1024.0 * 1024.0),
            s.maxsize,
            i.index_bytes,
            i.index_bytes as f64 / 1024.0,
            match s.mode {
                Mode::User => "userkey",
                Mode::Seq => "sequential",
            },
            yes_no(s.worm),
            yes_no(s.lock),
            yes_no(s.freeze),
            i.next_seq_id,
            i.data_files,
            i.data_bytes,
            i.reclaimable_bytes,
            i.data_errors,
        );
        if self.admin {
            text.push_str(&format!(
                "data_path: {}\nindex_path: {}\n",
                i.data_path.display(),
                i.index_path.display()
            ));
        }
        reply::bulk(out, text.as_bytes());
        true
    }

    fn nslist(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 1, 1, out) {
            return false;
        }
        let names = self.shared.store.names();
        reply::array(out, names.len());
        for n in names {
            reply::bulk(out, n.as_bytes());
        }
        true
    }

    fn nsset(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 4, 4, out) || !self.require_admin(out) {
            return false;
        }
        let Some(name) = Self::ns_name(&args[1], out) else {
            return false;
        };
        let Some(ns) = self.shared.store.get(name) else {
            fail!(out, "Namespace not found");
        };
        let property = args[2].to_ascii_lowercase();
        let value = &args[3];
        // As 0-db: `default` takes mode, lock and freeze; its size and access are the server's
        // flags (`--maxsize`, `--protect`), not a client's to change.
        if name == DEFAULT_NAMESPACE
            && !matches!(property.as_slice(), b"mode" | b"lock" | b"freeze")
        {
            fail!(out, "Cannot update default namespace");
        }
        let flag = match value.as_ref() {
            b"1" => Some(true),
            b"0" => Some(false),
            _ => None,
        };
        let result = match property.as_slice() {
            b"maxsize" => {
                match std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    Some(v) => ns.update_settings(|s| s.maxsize = v),
                    None => fail!(out, "Invalid value for maxsize (expected bytes)"),
                }
            }
            b"password" => {
                let Some(pw) = std::str::from_utf8(value)
                    .ok()
                    .filter(|p| !p.is_empty() && p.len() <= MAX_PASSWORD_LEN)
                else {
                    fail!(
                        out,
                        "Invalid password (1 to {MAX_PASSWORD_LEN} bytes of UTF-8)"
                    );
                };
                let pw = (pw != "*").then(|| pw.to_string());
                ns.update_settings(|s| s.password = pw)
            }
            b"mode" => {
                let Some(mode) = std::str::from_utf8(value).ok().and_then(Mode::parse) else {
                    fail!(out, "Invalid property value (expected: user, seq)");
                };
                if self.shared.config.mode.is_some() {
                    fail!(
                        out,
                        "This server instance is configured to use a single runtime mode"
                    );
                }
                ns.set_mode(mode)
            }
            b"public" | b"worm" | b"lock" | b"freeze" => {
                let Some(v) = flag else {
                    fail!(
                        out,
                        "Invalid value for {} (expected 0 or 1)",
                        String::from_utf8_lossy(&property)
                    );
                };
                ns.update_settings(|s| match property.as_slice() {
                    b"public" => s.public = v,
                    b"worm" => s.worm = v,
                    b"lock" => s.lock = v,
                    _ => s.freeze = v,
                })
            }
            _ => fail!(out, "Invalid property"),
        };
        match result {
            Ok(()) => {
                reply::simple(out, "OK");
                true
            }
            Err(e) => Self::ns_error(out, e),
        }
    }

    fn select(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 2, 4, out) {
            return false;
        }
        let Some(name) = Self::ns_name(&args[1], out) else {
            return false;
        };
        let Some(ns) = self.shared.store.get(name) else {
            fail!(out, "Namespace not found");
        };
        let access = ns.access();
        let mut by_password = false;
        let (readable, writable) = match (&access.password, args.len()) {
            (None, _) => (true, true),
            (Some(_), 2) if access.public => (true, false),
            (Some(_), 2) => fail!(out, "Namespace protected and private"),
            (Some(pw), 3) => {
                if !self.password_check_allowed(out) {
                    return false;
                }
                let right = constant_time_eq(&args[2], pw.as_bytes());
                if !self.password_checked(right, out) {
                    return false;
                }
                by_password = true;
                (true, true)
            }
            (Some(pw), _) => {
                if !args[2].eq_ignore_ascii_case(b"SECURE") {
                    fail!(out, "Only SECURE extra method supported");
                }
                let Some(nonce) = self.nonce.take() else {
                    fail!(
                        out,
                        "No CHALLENGE requested, secure authentication not available"
                    );
                };
                if !self.password_check_allowed(out) {
                    return false;
                }
                let right = secure_match(&nonce, pw, &args[3]);
                if !self.password_checked(right, out) {
                    return false;
                }
                by_password = true;
                (true, true)
            }
        };
        self.ns = ns;
        self.readable = readable;
        self.writable = writable;
        self.access_epoch = access.epoch;
        self.password_epoch = by_password.then_some(access.password_epoch);
        reply::simple(out, "OK");
        true
    }

    fn flush(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if !self.arity(args, 1, 1, out) || !self.require_write(out) {
            return false;
        }
        if self.ns.settings().public {
            fail!(out, "Flushing public namespace denied");
        }
        match self.ns.flush() {
            Ok(()) => {
                reply::simple(out, "OK");
                true
            }
            Err(e) => Self::ns_error(out, e),
        }
    }
}

/// (readable, writable) for a client that gives no password.
fn access_without_password(access: &NsAccess) -> (bool, bool) {
    match access.password {
        None => (true, true),
        Some(_) => (access.public, false),
    }
}

/// Checks `hash` against hex(sha1("<nonce>:<password>")).
fn secure_match(nonce: &str, password: &str, hash: &[u8]) -> bool {
    let expected = hex::encode(Sha1::digest(format!("{nonce}:{password}").as_bytes()));
    hash.len() == expected.len()
        && constant_time_eq(&hash.to_ascii_lowercase(), expected.as_bytes())
}

/// Password comparison whose time does not depend on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_hash_matches_0db_scheme() {
        // sha1("abc:pw")
        let hash = hex::encode(Sha1::digest(b"abc:pw"));
        assert!(secure_match("abc", "pw", hash.as_bytes()));
        assert!(secure_match("abc", "pw", hash.to_uppercase().as_bytes()));
        assert!(!secure_match("abc", "px", hash.as_bytes()));
        assert!(!secure_match("abc", "pw", b"short"));
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
