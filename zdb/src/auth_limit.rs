//! Limits on password guessing (`AUTH`, `AUTH SECURE`, `SELECT ns password`,
//! `SELECT ns SECURE`).
//!
//! Per connection, the session counts its failures and the connection is
//! closed at [`crate::ZdbConfig::auth_max_failures_per_connection`]. Per
//! source ([`Source`]: an IPv4 address, an IPv6 /64, or all Unix socket
//! clients together), this module allows at most
//! [`crate::ZdbConfig::auth_max_failures_per_source`] password checks per
//! window of [`crate::ZdbConfig::auth_lockout`]; the attempt after that locks
//! the source out, and its attempts are refused without being checked, until
//! the lockout has passed.
//!
//! Every check is counted when it starts and given back when the password was
//! right, so concurrent connections of one source cannot get more checks than
//! the limit between them, and a client that knows one password (a tenant
//! knows its own namespace's) cannot reset the count while guessing another.
//! Only failures touch the lock: the hot path never sees this module.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// At most this many sources are tracked; past it (after dropping stale
/// entries), new sources share one entry, so many addresses cannot grow
/// the table nor escape the limit.
const MAX_TRACKED_SOURCES: usize = 65_536;
/// Stale entries are looked for at most this often when the table is full.
const PRUNE_INTERVAL: Duration = Duration::from_secs(1);

/// Where password attempts come from, as far as the limit is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4([u8; 4]),
    /// The upper 64 bits: one host or LAN usually holds a whole /64.
    V6Prefix(u64),
    /// Unix socket clients (no address).
    Local,
    /// Every new source while the table is full.
    Overflow,
}

impl Source {
    /// The source of a connection from `peer` (`None`: a Unix socket).
    pub fn of(peer: Option<IpAddr>) -> Source {
        match peer.map(|ip| ip.to_canonical()) {
            None => Source::Local,
            Some(IpAddr::V4(v4)) => Source::V4(v4.octets()),
            Some(IpAddr::V6(v6)) => Source::V6Prefix((u128::from(v6) >> 64) as u64),
        }
    }
}

#[derive(Debug)]
struct Entry {
    window_start: Instant,
    /// Checks started in the window, minus those that succeeded.
    failures: u32,
    locked_until: Option<Instant>,
}

impl Entry {
    fn is_stale(&self, now: Instant, window: Duration) -> bool {
        self.locked_until.is_none_or(|t| t <= now) && now >= self.window_start + window
    }
}

struct Table {
    sources: HashMap<Source, Entry>,
    last_prune: Option<Instant>,
}

/// Per-source limit on password checks, shared by all connections.
pub struct AuthLimiter {
    max_failures: u32,
    window: Duration,
    table: Mutex<Table>,
}

impl AuthLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        AuthLimiter {
            max_failures,
            window,
            table: Mutex::new(Table {
                sources: HashMap::new(),
                last_prune: None,
            }),
        }
    }

    /// Starts a password check for `source`: `false` if the source is locked
    /// out (the password must not be checked). A started check counts as a
    /// failure until [`AuthLimiter::succeeded`] gives it back.
    pub fn try_attempt(&self, source: Source) -> bool {
        let now = Instant::now();
        let mut table = self.table.lock();
        let key = if table.sources.contains_key(&source)
            || table.sources.len() < MAX_TRACKED_SOURCES
            || self.prune(&mut table, now)
        {
            source
        } else {
            Source::Overflow
        };
        let window = self.window;
        let entry = table.sources.entry(key).or_insert(Entry {
            window_start: now,
            failures: 0,
            locked_until: None,
        });
        if entry.locked_until.is_some_and(|t| t > now) {
            return false;
        }
        if entry.is_stale(now, window) {
            *entry = Entry {
                window_start: now,
                failures: 0,
                locked_until: None,
            };
        }
        if entry.failures >= self.max_failures {
            entry.locked_until = Some(now + window);
            entry.failures = 0;
            entry.window_start = now;
            return false;
        }
        entry.failures += 1;
        true
    }

    /// The check started by [`AuthLimiter::try_attempt`] found the right password.
    pub fn succeeded(&self, source: Source) {
        let mut table = self.table.lock();
        let key = if table.sources.contains_key(&source) {
            source
        } else {
            Source::Overflow
        };
        if let Some(entry) = table.sources.get_mut(&key) {
            entry.failures = entry.failures.saturating_sub(1);
        }
    }

    /// Drops stale entries if the table is full and the last attempt was a
    /// while ago; true if there is room now.
    fn prune(&self, table: &mut Table, now: Instant) -> bool {
        if table.last_prune.is_some_and(|t| now < t + PRUNE_INTERVAL) {
            return false;
        }
        table.last_prune = Some(now);
        let window = self.window;
        table.sources.retain(|_, e| !e.is_stale(now, window));
        table.sources.len() < MAX_TRACKED_SOURCES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn sources() {
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(Source::of(Some(v4)), Source::V4([10, 1, 2, 3]));
        // IPv4-mapped IPv6 (a dual-stack listener) is the IPv4 address
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped());
        assert_eq!(Source::of(Some(mapped)), Source::V4([10, 1, 2, 3]));
        // one /64
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().expect("v6");
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().expect("v6");
        assert_eq!(
            Source::of(Some(IpAddr::V6(a))),
            Source::of(Some(IpAddr::V6(b)))
        );
        assert_ne!(
            Source::of(Some(IpAddr::V6(a))),
            Source::of(Some(IpAddr::V6(c)))
        );
        assert_eq!(Source::of(None), Source::Local);
    }

    #[test]
    fn limit_lockout_and_refunds() {
        let limiter = AuthLimiter::new(3, Duration::from_secs(3600));
        let (a, b) = (Source::V4([1, 1, 1, 1]), Source::V4([2, 2, 2, 2]));
        // a success gives its check back: a known password does not use up the limit
        for _ in 0..10 {
            assert!(limiter.try_attempt(a));
            limiter.succeeded(a);
        }
        for _ in 0..3 {
            assert!(limiter.try_attempt(a));
        }
        assert!(!limiter.try_attempt(a), "the 4th check is refused");
        // locked: a success elsewhere or a refund does not unlock
        limiter.succeeded(a);
        assert!(!limiter.try_attempt(a));
        assert!(limiter.try_attempt(b), "other sources are not affected");
    }

    #[test]
    fn lockout_ends() {
        let limiter = AuthLimiter::new(1, Duration::from_millis(50));
        let a = Source::V4([1, 1, 1, 1]);
        assert!(limiter.try_attempt(a));
        assert!(!limiter.try_attempt(a));
        let started = Instant::now();
        while !limiter.try_attempt(a) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never unlocked"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_full_table_sends_new_sources_to_one_shared_entry() {
        let limiter = AuthLimiter::new(2, Duration::from_secs(3600));
        for i in 0..MAX_TRACKED_SOURCES as u32 {
            assert!(limiter.try_attempt(Source::V4(i.to_be_bytes())));
        }
        // nothing is stale: every new source lands in the overflow entry
        let fresh = |i: u32| Source::V6Prefix(u64::from(i));
        assert!(limiter.try_attempt(fresh(1)));
        assert!(limiter.try_attempt(fresh(2)));
        assert!(!limiter.try_attempt(fresh(3)));
        assert_eq!(limiter.table.lock().sources.len(), MAX_TRACKED_SOURCES + 1);
    }
}
