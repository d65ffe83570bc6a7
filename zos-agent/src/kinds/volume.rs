//! `volume`: a filesystem of exactly the size asked for, kept across container replacements
//! and agent restarts and removed only with its reservation (see [`crate::provision::volume`]).
//! Containers mount it by naming it.

use super::{container_name, wanted_names, Outcome, ReservationPass, WorkloadKind};
use crate::provision::{container::LABEL_RESERVATION, volume::Volumes};
use async_trait::async_trait;
use gridchain_runtime::reservations::{Reservation, ResultData, Workload, WorkloadSpec};
use std::{collections::BTreeMap, sync::Mutex};

pub struct VolumeKind {
    volumes: Volumes,
    node_tag: String,
    /// Volumes that exist and are wanted, as the last [`WorkloadKind::remove_unwanted`] found
    /// them: name → mount point.
    kept: Mutex<BTreeMap<String, String>>,
}

impl VolumeKind {
    pub fn new(volumes: Volumes, node_tag: &str) -> VolumeKind {
        VolumeKind {
            volumes,
            node_tag: node_tag.to_string(),
            kept: Mutex::default(),
        }
    }

    async fn ensure_volume(&self, r: &Reservation, w: &Workload) -> Result<ResultData, String> {
        let WorkloadSpec::Volume { size } = w.spec else {
            return Err(format!("workload {} is not a volume", w.name));
        };
        let name = container_name(&self.node_tag, r.id, &w.name);
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name)
            .cloned();
        if let Some(mountpoint) = kept {
            // After a reboot the image is no longer mounted: mount it before any container
            // binds the volume.
            self.volumes
                .ensure_mounted(&name)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(ResultData::Volume { path: mountpoint });
        }
        let labels = BTreeMap::from([(LABEL_RESERVATION.to_string(), r.id.to_string())]);
        let v = self
            .volumes
            .ensure(&name, size, &labels)
            .await
            .map_err(|e| e.to_string())?;
        Ok(ResultData::Volume { path: v.mountpoint })
    }
}

#[async_trait]
impl WorkloadKind for VolumeKind {
    fn kind(&self) -> &'static str {
        "volume"
    }

    async fn remove_unwanted(&self, live: &[&Reservation]) -> anyhow::Result<usize> {
        let wanted = wanted_names(live, self.kind(), |r, w| {
            container_name(&self.node_tag, r.id, &w.name)
        });
        let mut kept = BTreeMap::new();
        let mut removed = 0;
        for v in self.volumes.list().await? {
            if wanted.contains(&v.name) {
                kept.insert(v.name, v.mountpoint);
            } else {
                self.volumes.remove(&v.name).await?;
                removed += 1;
            }
        }
        // Files of volumes Docker never got (an agent killed half-way through a creation).
        for name in self.volumes.names_on_disk() {
            if !wanted.contains(&name) {
                self.volumes.remove(&name).await?;
                removed += 1;
            }
        }
        *self.kept.lock().unwrap_or_else(|e| e.into_inner()) = kept;
        Ok(removed)
    }

    async fn ensure(&self, w: &Workload, pass: &mut ReservationPass<'_>) -> Outcome {
        self.ensure_volume(pass.reservation, w).await.into()
    }
}
