//! `gridnode --dev --registry`: a container registry for the local grid, so deployments can pull
//! an image as they would from a public registry. Debian's `docker-registry` on 127.0.0.1 (Docker
//! pulls from loopback registries over plain HTTP), its data under the base path, holding the
//! locally built test image as `127.0.0.1:<port>/gridchain/busybox:latest`.

use anyhow::{bail, Context as _};
use futures::StreamExt;
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The image the registry is seeded with (built by `zos-agent/images/build-busybox-image.sh`).
const SEED_IMAGE: &str = "gridchain/busybox:latest";

/// A running registry; stopped on drop.
pub struct DevRegistry {
    child: Child,
}

impl Drop for DevRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the registry on 127.0.0.1:`port` with its data in `dir`, and pushes the test image.
pub async fn start(dir: &Path, port: u16) -> anyhow::Result<DevRegistry> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let addr = format!("127.0.0.1:{port}");
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        ),
    )?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("registry.log"))?)
        .spawn()
        .context("cannot start docker-registry (apt-get install docker-registry)")?;
    let mut registry = DevRegistry { child };
    // From here a failure drops the guard, which stops the registry.
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(&addr).await.is_err() {
        if let Some(status) = registry.child.try_wait()? {
            bail!(
                "docker-registry exited ({status}); see {}",
                dir.join("registry.log").display()
            );
        }
        if Instant::now() > deadline {
            bail!("docker-registry did not listen on {addr} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    push_seed(&addr).await.with_context(|| {
        format!("cannot push {SEED_IMAGE} (zos-agent/images/build-busybox-image.sh builds it)")
    })?;
    tracing::info!(
        registry = %addr,
        image = %format!("{addr}/{SEED_IMAGE}"),
        "local container registry"
    );
    Ok(registry)
}

async fn push_seed(addr: &str) -> anyhow::Result<()> {
    let docker = bollard::Docker::connect_with_local_defaults()?;
    let repository = format!("{addr}/gridchain/busybox");
    docker
        .tag_image(
            SEED_IMAGE,
            Some(bollard::query_parameters::TagImageOptions {
                repo: Some(repository.clone()),
                tag: Some("latest".into()),
            }),
        )
        .await?;
    let mut push = docker.push_image(
        &repository,
        Some(bollard::query_parameters::PushImageOptions {
            tag: Some("latest".into()),
            ..Default::default()
        }),
        None,
    );
    while let Some(info) = push.next().await {
        if let Some(message) = info?.error_detail.and_then(|d| d.message) {
            bail!("{message}");
        }
    }
    // Forget the local name, so a deployment naming it is pulled from the registry.
    docker
        .remove_image(
            &format!("{repository}:latest"),
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await?;
    Ok(())
}
