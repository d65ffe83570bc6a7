//! Volumes as labelled Docker volumes of exactly the size the reservation asked for.
//!
//! Docker's local driver has no quota, so each volume is its own filesystem: an ext4 image file of
//! the requested size in the agent's data dir (`volumes/<name>.img`, sparse: it takes disk only as
//! it fills), loop-mounted by the agent at `volumes/<name>.mnt` (again after a reboot, on the
//! next pass) and bound into the Docker volume (local driver, `o=bind`; the driver cannot set up
//! a loop device itself). Writing past the size fails with ENOSPC inside the container; the
//! host's disk is untouched.
//! The image is formatted under a temporary name and renamed when complete, so an agent killed
//! mid-creation leaves either nothing or a whole filesystem; a volume keeps its data across
//! container replacements and agent restarts, and its image is deleted only after Docker let go
//! of the volume (with its reservation).

use super::container::{ContainerError, LABEL_NODE};
use bollard::{
    errors::Error as DockerError,
    models::VolumeCreateRequest,
    query_parameters::{ListVolumesOptions, RemoveVolumeOptions},
    Docker,
};
use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

/// Smallest volume: ext4 needs room for its own metadata.
pub const MIN_VOLUME_BYTES: u64 = 1 << 20;

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
    /// Where the volumes' filesystem images live.
    images: PathBuf,
}

impl Volumes {
    /// Volumes of the node tagged `node_tag`, their images kept in `images`.
    pub fn new(docker: Docker, node_tag: &str, images: &Path) -> Self {
        Volumes {
            docker,
            node_label: node_tag.to_string(),
            images: images.to_path_buf(),
        }
    }

    fn image_path(&self, name: &str) -> PathBuf {
        self.images.join(format!("{name}.img"))
    }

    fn mount_path(&self, name: &str) -> PathBuf {
        self.images.join(format!("{name}.mnt"))
    }

    /// Loop-mounts volume `name`'s image at its mount path unless it is mounted already (a
    /// volume made before images existed has none: nothing to do).
    pub async fn ensure_mounted(&self, name: &str) -> Result<(), ContainerError> {
        let (image, dir) = (self.image_path(name), self.mount_path(name));
        if !image.exists() || is_mounted(&dir) {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            run(
                "mount",
                &[
                    "-o",
                    "loop",
                    &image.display().to_string(),
                    &dir.display().to_string(),
                ],
            )
        })
        .await
        .map_err(|e| ContainerError(e.to_string()))?
        .map_err(|e| ContainerError(format!("volume {name}: {e}")))
    }

    /// Makes the ext4 image of `size` bytes for volume `name`, unless a complete one exists.
    async fn ensure_image(&self, name: &str, size: u64) -> Result<PathBuf, ContainerError> {
        let image = self.image_path(name);
        if image.exists() {
            return Ok(image);
        }
        if size < MIN_VOLUME_BYTES {
            return Err(ContainerError(format!(
                "volume {name}: {size} bytes is below the smallest volume ({MIN_VOLUME_BYTES})"
            )));
        }
        let tmp = image.with_extension("img.tmp");
        let (images, done) = (self.images.clone(), image.clone());
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            std::fs::create_dir_all(&images).map_err(|e| e.to_string())?;
            let _ = std::fs::remove_file(&tmp);
            std::fs::File::create(&tmp)
                .and_then(|f| f.set_len(size))
                .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
            let out = std::process::Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0"])
                .args(["-E", "lazy_itable_init=1,lazy_journal_init=1"])
                .arg(&tmp)
                .output()
                .map_err(|e| format!("cannot run mkfs.ext4: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "mkfs.ext4: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .and_then(|()| std::fs::rename(&tmp, &done))
                .and_then(|()| std::fs::File::open(&images)?.sync_all())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| ContainerError(e.to_string()))?
        .map_err(|e| ContainerError(format!("volume {name}: {e}")))?;
        Ok(image)
    }

    /// Volumes of this node that have files in the images dir (image, unfinished image, mount
    /// point), whether or not Docker has them: an agent killed between formatting an image and
    /// creating its Docker volume leaves files only.
    pub fn names_on_disk(&self) -> Vec<String> {
        let prefix = format!("gc-{}-", self.node_label);
        let Ok(entries) = std::fs::read_dir(&self.images) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|f| f.starts_with(&prefix))
            .filter_map(|f| {
                [".img.tmp", ".img", ".mnt"]
                    .iter()
                    .find_map(|ext| f.strip_suffix(ext).map(str::to_string))
            })
            .collect();
        names.sort();
        names.dedup();
        names
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

    /// Creates the volume of `size` bytes if it does not exist (its image first; Docker's
    /// create is idempotent for a name).
    pub async fn ensure(
        &self,
        name: &str,
        size: u64,
        labels: &BTreeMap<String, String>,
    ) -> Result<ActualVolume, ContainerError> {
        self.ensure_image(name, size).await?;
        self.ensure_mounted(name).await?;
        let mut all: HashMap<String, String> = labels.clone().into_iter().collect();
        all.insert(LABEL_NODE.into(), self.node_label.clone());
        let options = HashMap::from([
            ("type".to_string(), "none".to_string()),
            (
                "device".to_string(),
                self.mount_path(name).display().to_string(),
            ),
            ("o".to_string(), "bind".to_string()),
        ]);
        let v = self
            .docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(all),
                driver: Some("local".into()),
                driver_opts: Some(options),
                ..Default::default()
            })
            .await?;
        Ok(ActualVolume {
            name: v.name,
            labels: v.labels.into_iter().collect(),
            mountpoint: v.mountpoint,
        })
    }

    /// Removes a volume and then its image; missing is fine. Fails while a container still
    /// uses it (and then keeps the image).
    pub async fn remove(&self, name: &str) -> Result<(), ContainerError> {
        match self
            .docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
            .await
        {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(e.into()),
        }
        let (image, dir) = (self.image_path(name), self.mount_path(name));
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            if is_mounted(&dir) {
                // -d frees the loop device too.
                run("umount", &["-d", &dir.display().to_string()])?;
            }
            let _ = std::fs::remove_dir(&dir);
            let _ = std::fs::remove_file(image.with_extension("img.tmp"));
            match std::fs::remove_file(&image) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("cannot delete its image: {e}"))
                }
                _ => Ok(()),
            }
        })
        .await
        .map_err(|e| ContainerError(e.to_string()))?
        .map_err(|e| ContainerError(format!("volume {name}: {e}")))
    }
}

/// Whether `dir` is a mount point (listed in this process's mount table).
fn is_mounted(dir: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let dir = dir.display().to_string();
    table
        .lines()
        .any(|line| line.split_whitespace().nth(4) == Some(dir.as_str()))
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
