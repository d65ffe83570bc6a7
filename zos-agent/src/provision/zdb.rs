//! zdb namespaces on the node's own zdb server, managed over RESP with the admin password.

use redis::{aio::MultiplexedConnection, Value};
use std::collections::BTreeMap;

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
}

/// zdb's answer for an unknown namespace ("This namespace doesn't exists").
fn is_missing(e: &redis::RedisError) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("doesn't exist") || text.contains("not found")
}

#[derive(Clone)]
pub struct ZdbAdmin {
    url: String,
    admin_password: String,
}

impl ZdbAdmin {
    /// The zdb server at `addr` (`host:port`), administered with `admin_password`.
    pub fn new(addr: &str, admin_password: &str) -> Self {
        ZdbAdmin {
            url: format!("redis://{addr}/"),
            admin_password: admin_password.to_string(),
        }
    }

    async fn connect(&self) -> Result<MultiplexedConnection, ZdbError> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("AUTH")
            .arg(&self.admin_password)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(conn)
    }

    /// Namespaces on the server (without the always-present `default`).
    pub async fn list(&self) -> Result<Vec<String>, ZdbError> {
        let mut conn = self.connect().await?;
        let names: Vec<String> = redis::cmd("NSLIST").query_async(&mut conn).await?;
        Ok(names.into_iter().filter(|n| n != "default").collect())
    }

    /// `NSINFO` as key → value.
    pub async fn info(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, ZdbError> {
        let mut conn = self.connect().await?;
        let raw: Result<String, _> = redis::cmd("NSINFO").arg(name).query_async(&mut conn).await;
        match raw {
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

    /// Creates the namespace if missing and applies every setting (idempotent).
    pub async fn ensure(&self, spec: &NamespaceSpec) -> Result<(), ZdbError> {
        let mut conn = self.connect().await?;
        let exists: Vec<String> = redis::cmd("NSLIST").query_async(&mut conn).await?;
        if !exists.contains(&spec.name) {
            redis::cmd("NSNEW")
                .arg(&spec.name)
                .query_async::<Value>(&mut conn)
                .await?;
        }
        let info = self.info(&spec.name).await?.unwrap_or_default();
        // NSINFO names the modes `userkey` and `sequential`; NSSET takes `user` and `seq`.
        let shown = if spec.mode == "seq" {
            "sequential"
        } else {
            "userkey"
        };
        if info.get("mode").map(String::as_str) != Some(shown) {
            // zdb allows a mode change only while the namespace is empty.
            redis::cmd("NSSET")
                .arg(&spec.name)
                .arg("mode")
                .arg(spec.mode)
                .query_async::<Value>(&mut conn)
                .await?;
        }
        redis::cmd("NSSET")
            .arg(&spec.name)
            .arg("maxsize")
            .arg(spec.maxsize)
            .query_async::<Value>(&mut conn)
            .await?;
        redis::cmd("NSSET")
            .arg(&spec.name)
            .arg("password")
            .arg(spec.password.as_deref().unwrap_or("*"))
            .query_async::<Value>(&mut conn)
            .await?;
        redis::cmd("NSSET")
            .arg(&spec.name)
            .arg("public")
            .arg(if spec.public { "1" } else { "0" })
            .query_async::<Value>(&mut conn)
            .await?;
        Ok(())
    }

    /// Locks (paused) or unlocks a namespace: a locked namespace refuses writes.
    pub async fn set_locked(&self, name: &str, locked: bool) -> Result<(), ZdbError> {
        let mut conn = self.connect().await?;
        redis::cmd("NSSET")
            .arg(name)
            .arg("lock")
            .arg(if locked { "1" } else { "0" })
            .query_async::<Value>(&mut conn)
            .await?;
        Ok(())
    }

    /// Deletes a namespace and its data; missing is fine.
    pub async fn remove(&self, name: &str) -> Result<(), ZdbError> {
        let mut conn = self.connect().await?;
        match redis::cmd("NSDEL")
            .arg(name)
            .query_async::<Value>(&mut conn)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
