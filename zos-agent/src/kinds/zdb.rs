//! `zdbNamespace`: a namespace on the node's zdb, named `r<id>-<workload>`, with its password
//! opened from the deployment only in its own context; locked while the reservation is in its
//! grace period (see [`crate::provision::zdb`]).

use super::{wanted_names, Outcome, ReservationPass, Secrets, WorkloadKind};
use crate::provision::zdb::{NamespaceSpec, ZdbAdmin};
use async_trait::async_trait;
use gridchain_primitives::seal::SealPurpose;
use gridchain_runtime::reservations::{Reservation, ResultData, Workload, WorkloadSpec, ZdbMode};

pub struct ZdbKind {
    zdb: ZdbAdmin,
    /// How clients reach this node's zdb (`host:port`), reported in results.
    endpoint: String,
    secrets: Secrets,
}

impl ZdbKind {
    pub fn new(zdb: ZdbAdmin, endpoint: String, secrets: Secrets) -> ZdbKind {
        ZdbKind {
            zdb,
            endpoint,
            secrets,
        }
    }

    pub fn namespace_name(id: u64, workload: &str) -> String {
        format!("r{id}-{workload}")
    }

    async fn ensure_namespace(
        &self,
        r: &Reservation,
        w: &Workload,
        paused: bool,
    ) -> Result<ResultData, String> {
        let WorkloadSpec::ZdbNamespace {
            size,
            mode,
            password,
            public,
        } = &w.spec
        else {
            return Err(format!("workload {} is not a zdb namespace", w.name));
        };
        let password = password
            .as_ref()
            .map(|sealed| self.secrets.open(r, w, SealPurpose::ZdbPassword, &sealed.0))
            .transpose()?;
        let name = Self::namespace_name(r.id, &w.name);
        let spec = NamespaceSpec {
            name: name.clone(),
            maxsize: *size,
            mode: match mode {
                ZdbMode::Seq => "seq",
                ZdbMode::User => "user",
            },
            password,
            public: *public,
            locked: paused,
        };
        self.zdb.ensure(&spec).await.map_err(|e| e.to_string())?;
        Ok(ResultData::Zdb {
            namespace: name,
            endpoints: vec![self.endpoint.clone()],
        })
    }
}

/// Namespaces this agent manages are named `r<id>-<workload>`.
fn is_ours(namespace: &str) -> bool {
    namespace
        .strip_prefix('r')
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(id, _)| id.parse::<u64>().is_ok())
}

#[async_trait]
impl WorkloadKind for ZdbKind {
    fn kind(&self) -> &'static str {
        "zdbNamespace"
    }

    async fn remove_unwanted(&self, live: &[&Reservation]) -> anyhow::Result<usize> {
        let wanted = wanted_names(live, self.kind(), |r, w| {
            Self::namespace_name(r.id, &w.name)
        });
        let mut removed = 0;
        for ns in self.zdb.list().await? {
            if is_ours(&ns) && !wanted.contains(&ns) {
                self.zdb.remove(&ns).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn ensure(&self, w: &Workload, pass: &mut ReservationPass<'_>) -> Outcome {
        self.ensure_namespace(pass.reservation, w, pass.paused)
            .await
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reservation_namespaces_are_ours() {
        assert!(is_ours("r12-store"));
        assert!(!is_ours("default"));
        assert!(!is_ours("rogue"));
        assert!(!is_ours("r-x"));
    }
}
