//! zdb namespaces on the node's own zdb server, managed over RESP with the admin password.

use redis::{aio::MultiplexedConnection, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[error("zdb: {0}")]
pub struct ZdbError(pub String);

impl From<redis::RedisError> for ZdbError {
    fn from(e: redis::RedisError) -> Self {
        // zdb's own words, e.g. "Namespace not found".
        ZdbError(
            e.detail()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string()),
        )
    }
}

/// The settings of a namespace, as the reservation wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceSpec {
    pub name: String,
    pub maxsize: u64,
    /// `seq` or `user`.
    pub mode: &'static str,
    /// Opened secret; `None` leaves the namespace without password.
    pub password: Option<String>,
    pub public: bool,
    /// Locked namespaces refuse writes (a reservation in its grace period).
    pub locked: bool,
}

/// zdb's answer for an unknown namespace ("This namespace doesn't exists").
fn is_missing(e: &redis::RedisError) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("doesn't exist") || text.contains("not found")
}

/// One admin connection to the node's zdb, opened on first use and reopened after it breaks,
/// so a reconciliation pass over hundreds of namespaces does not open hundreds of connections.
#[derive(Clone)]
pub struct ZdbAdmin {
    url: String,
    admin_password: String,
    connection: Arc<Mutex<Option<MultiplexedConnection>>>,
}

impl ZdbAdmin {
    /// The zdb server at `addr` (`host:port`), administered with `admin_password`.
    pub fn new(addr: &str, admin_password: &str) -> Self {
        ZdbAdmin {
            url: format!("redis://{addr}/"),
            admin_password: admin_password.to_string(),
            connection: Arc::default(),
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        let mut cached = self.connection.lock().await;
        if let Some(conn) = cached.as_ref() {
            return Ok(conn.clone());
        }
        let client = redis::Client::open(self.url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("AUTH")
            .arg(&self.admin_password)
            .query_async::<()>(&mut conn)
            .await?;
        *cached = Some(conn.clone());
        Ok(conn)
    }

    /// Runs one command; a broken connection is dropped so the next command reconnects.
    async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, redis::RedisError> {
        let mut conn = self.connection().await?;
        let result = cmd.query_async(&mut conn).await;
        if let Err(e) = &result {
            if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
                *self.connection.lock().await = None;
            }
        }
        result
    }

    /// Namespaces on the server (without the always-present `default`).
    pub async fn list(&self) -> Result<Vec<String>, ZdbError> {
        let names: Vec<String> = self.query(&redis::cmd("NSLIST")).await?;
        Ok(names.into_iter().filter(|n| n != "default").collect())
    }

    /// `NSINFO` as key → value.
    pub async fn info(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, ZdbError> {
        match self.query::<String>(redis::cmd("NSINFO").arg(name)).await {
            Ok(text) => Ok(Some(
                text.lines()
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect(),
            )),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the namespace if missing and brings every setting to `spec` (idempotent). Only
    /// what differs is set, so a pass over many namespaces costs about two commands each (the
    /// password, which NSINFO does not show, is always set).
    pub async fn ensure(&self, spec: &NamespaceSpec) -> Result<(), ZdbError> {
        let info = match self.info(&spec.name).await? {
            Some(info) => info,
            None => {
                self.query::<Value>(redis::cmd("NSNEW").arg(&spec.name))
                    .await?;
                BTreeMap::new()
            }
        };
        let shows = |key: &str, value: &str| info.get(key).map(String::as_str) == Some(value);
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        // NSINFO names the modes `userkey` and `sequential`; NSSET takes `user` and `seq`.
        let shown_mode = if spec.mode == "seq" {
            "sequential"
        } else {
            "userkey"
        };
        if !shows("mode", shown_mode) {
            // zdb allows a mode change only while the namespace is empty.
            self.query::<Value>(
                redis::cmd("NSSET")
                    .arg(&spec.name)
                    .arg("mode")
                    .arg(spec.mode),
            )
            .await?;
        }
        if !shows("data_limits_bytes", &spec.maxsize.to_string()) {
            self.query::<Value>(
                redis::cmd("NSSET")
                    .arg(&spec.name)
                    .arg("maxsize")
                    .arg(spec.maxsize),
            )
            .await?;
        }
        let password = spec.password.as_deref().unwrap_or("*");
        self.query::<Value>(
            redis::cmd("NSSET")
                .arg(&spec.name)
                .arg("password")
                .arg(password),
        )
        .await?;
        if !shows("public", yes_no(spec.public)) {
            let public = if spec.public { "1" } else { "0" };
            self.query::<Value>(
                redis::cmd("NSSET")
                    .arg(&spec.name)
                    .arg("public")
                    .arg(public),
            )
            .await?;
        }
        if !shows("locked", yes_no(spec.locked)) {
            self.set_locked(&spec.name, spec.locked).await?;
        }
        Ok(())
    }

    /// Locks (paused) or unlocks a namespace: a locked namespace refuses writes.
    pub async fn set_locked(&self, name: &str, locked: bool) -> Result<(), ZdbError> {
        let flag = if locked { "1" } else { "0" };
        self.query::<Value>(redis::cmd("NSSET").arg(name).arg("lock").arg(flag))
            .await?;
        Ok(())
    }

    /// Deletes a namespace and its data; missing is fine.
    pub async fn remove(&self, name: &str) -> Result<(), ZdbError> {
        match self.query::<Value>(redis::cmd("NSDEL").arg(name)).await {
            Ok(_) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
