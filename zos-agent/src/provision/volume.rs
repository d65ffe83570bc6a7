//! Volumes as labelled Docker volumes (local driver).
//!
//! The size a reservation asks for is accounted on chain (it counts against the node's SRU), but
//! the local driver has no quota: on this machine the limit is **not enforced** on disk. Enforcing
//! it needs a filesystem with project quotas (XFS `pquota`) or one loop device per volume; that is
//! left for when nodes run on such a filesystem.

use super::container::{ContainerError, LABEL_NODE};
use bollard::{
    errors::Error as DockerError,
    models::VolumeCreateRequest,
    query_parameters::{ListVolumesOptions, RemoveVolumeOptions},
    Docker,
};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualVolume {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub mountpoint: String,
}

#[derive(Clone)]
pub struct Volumes {
    docker: Docker,
    node_label: String,
}

impl Volumes {
    pub fn new(docker: Docker, node_tag: &str) -> Self {
        Volumes {
            docker,
            node_label: node_tag.to_string(),
        }
    }

    /// Every volume labelled as this node's.
    pub async fn list(&self) -> Result<Vec<ActualVolume>, ContainerError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_NODE}={}", self.node_label)],
        )]);
        let response = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters),
            }))
            .await?;
        Ok(response
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| ActualVolume {
                name: v.name,
                labels: v.labels.into_iter().collect(),
                mountpoint: v.mountpoint,
            })
            .collect())
    }

    /// Creates the volume if it does not exist (Docker's create is idempotent for a name).
    pub async fn ensure(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<ActualVolume, ContainerError> {
        let mut all: HashMap<String, String> = labels.clone().into_iter().collect();
        all.insert(LABEL_NODE.into(), self.node_label.clone());
        let v = self
            .docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(all),
                ..Default::default()
            })
            .await?;
        Ok(ActualVolume {
            name: v.name,
            labels: v.labels.into_iter().collect(),
            mountpoint: v.mountpoint,
        })
    }

    /// Removes a volume; missing is fine. Fails while a container still uses it.
    pub async fn remove(&self, name: &str) -> Result<(), ContainerError> {
        match self
            .docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
            .await
        {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
