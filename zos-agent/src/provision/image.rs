//! Images: pulled from their registry when a container needs one, shared, bounded, retried, and
//! removed once nothing uses them.
//!
//! - [`Images::ensure`] answers at once: `Ready` (with the digest that runs), `Pulling` (a pull
//!   runs in the background; the reconciler reports `Pulling` and the agent runs another pass as
//!   soon as it ends, see [`Images::take_settled`]), or `Failed` with the registry's own words.
//! - A pull is keyed by (image, access): the credentials it runs with, or none. Workloads asking
//!   for the same image with the same access share one pull; at most [`MAX_CONCURRENT_PULLS`]
//!   run at once; a failed one is retried after 5 s, 10 s, 20 s … up to 5 minutes, and reported
//!   as failed meanwhile.
//! - **Who may run a pulled image.** An image on the node is a copy of something a registry let
//!   *someone* read. The agent's image book (`images.json` in its data dir) records, per image it
//!   pulled, which accesses the registry accepted. A workload runs such an image only if its own
//!   access is among them; otherwise the agent pulls again with the workload's credentials (or
//!   none), so the registry decides. Without this, any tenant could run another tenant's private
//!   image by naming it. Images the agent did not pull (loaded by the farmer) are used as they
//!   are; an image enters the book *before* its pull starts, so one whose pull the agent did not
//!   see end (killed, Docker finished it) is never taken for the farmer's.
//! - **Sizes.** An image counts against its workload's `rootfsSize` (what the tenant pays for):
//!   a pull stops as soon as the layers announced so far exceed it, and whatever Docker still
//!   brings in is removed once the stream ends; an image on the node that is larger does not
//!   run. Layer sizes are compressed sizes: an image that grows when unpacked is caught by the
//!   size check after the pull and by the root filesystem guard, not during the pull.
//! - **Where a pull may go.** The registry host is the tenant's choice, and its answer (or the
//!   connection error) ends up on chain. Pulling from any host would let a tenant make every
//!   node probe its own LAN (`10.0.0.5:22/x` → "connection refused" vs "timeout" in a public
//!   result) or reach services on its loopback. So before a pull the host is resolved and the
//!   pull is refused when any address is loopback, private, link-local, shared (CGNAT),
//!   unspecified, multicast or reserved for documentation, unless the agent runs with
//!   `--allow-private-registries` (dev grids and tests, whose registry is on loopback). What
//!   this does not stop: Docker resolves the name again itself (a DNS answer that changes in
//!   between), and a public registry may redirect blob downloads elsewhere; both would need the
//!   daemon's own traffic confined, which is the farmer's firewall's job.
//! - [`Images::collect_garbage`] removes pulled images that no live workload has used for a
//!   grace time, and sooner (least recently used first) while the pulled images together take
//!   more than the disk budget.

use crate::persist;
use bollard::{
    auth::DockerCredentials,
    errors::Error as DockerError,
    query_parameters::{CreateImageOptions, RemoveImageOptions},
    Docker,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::sync::Semaphore;

/// Pulls running at once; more wait for a permit.
pub const MAX_CONCURRENT_PULLS: usize = 2;
const FIRST_RETRY: Duration = Duration::from_secs(5);
const MAX_RETRY: Duration = Duration::from_secs(300);
/// Access key of a pull without credentials.
const PUBLIC: &str = "public";

/// Registry credentials of a workload (opened from its sealed `registryAuth`).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryAuth({}, <password>)", self.username)
    }
}

impl RegistryAuth {
    /// `username:password`, as the wallet seals it.
    pub fn parse(text: &str) -> Option<RegistryAuth> {
        let (username, password) = text.split_once(':')?;
        (!username.is_empty()).then(|| RegistryAuth {
            username: username.into(),
            password: password.into(),
        })
    }

    /// What the image book records for these credentials: a keyed hash, never the password.
    fn access_key(&self, image: &str) -> String {
        let material = format!("{image}\0{}:{}", self.username, self.password);
        gridchain_primitives::hash::encode_hex(&gridchain_primitives::hash::blake2_256(
            material.as_bytes(),
        ))
    }
}

/// Where an image stands for one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageStatus {
    /// On the node and allowed: `digest` is `repository@sha256:…` (or the image id for an
    /// image built on the node); `size` is what its layers take on disk, which counts against
    /// the workload's `rootfsSize`.
    Ready { digest: String, size: u64 },
    /// Being pulled; ask again later.
    Pulling,
    /// The last pull failed (the registry's or Docker's words); retried after a back-off.
    Failed(String),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Book {
    /// Per image the agent pulled: the accesses the registry accepted, and when a live workload
    /// last used it (unix ms).
    images: BTreeMap<String, BookEntry>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct BookEntry {
    accesses: BTreeSet<String>,
    last_used_ms: u64,
}

enum Pull {
    Running,
    Failed {
        message: String,
        attempts: u32,
        retry_at: Instant,
    },
}

#[derive(Default)]
struct State {
    pulls: HashMap<(String, String), Pull>,
    book: Book,
}

#[derive(Clone)]
pub struct Images {
    docker: Docker,
    state: Arc<Mutex<State>>,
    permits: Arc<Semaphore>,
    settled: Arc<AtomicBool>,
    book_path: Option<PathBuf>,
    registries: RegistryPolicy,
}

/// Which registry addresses pulls may reach (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryPolicy {
    /// Only hosts whose every address is public: a real node.
    PublicOnly,
    /// Any host, loopback and LAN included: dev grids and tests.
    AllowPrivate,
}

/// Whether `ip` is an address a tenant's registry must not have: not globally routable.
pub fn is_private_address(ip: IpAddr) -> bool {
    fn v4(ip: Ipv4Addr) -> bool {
        let [a, b, ..] = ip.octets();
        ip.is_private()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_multicast()
            || ip.is_documentation()
            || a == 0
            // Shared address space (RFC 6598), benchmarking (RFC 2544), reserved (240/4).
            || (a == 100 && (64..128).contains(&b))
            || (a == 198 && (b == 18 || b == 19))
            || a >= 240
    }
    fn v6(ip: Ipv6Addr) -> bool {
        if let Some(mapped) = ip.to_ipv4_mapped() {
            return v4(mapped);
        }
        let first = ip.segments()[0];
        ip.is_loopback()
            || ip.is_unspecified()
            || ip.is_multicast()
            // Unique local fc00::/7, link local fe80::/10, documentation 2001:db8::/32.
            || (first & 0xfe00) == 0xfc00
            || (first & 0xffc0) == 0xfe80
            || (first == 0x2001 && ip.segments()[1] == 0x0db8)
    }
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => v6(ip),
    }
}

/// Resolves the registry `host` (`name[:port]`, `[v6]:port`) and refuses it when any address is
/// private. `docker.io` (the default registry) is public by definition and not resolved.
pub async fn check_registry(host: &str, policy: RegistryPolicy) -> Result<(), String> {
    if policy == RegistryPolicy::AllowPrivate || host == "docker.io" {
        return Ok(());
    }
    // Docker's own default port for a registry named without one.
    let target = match host.rsplit_once(':') {
        Some((_, port)) if !host.ends_with(']') && port.parse::<u16>().is_ok() => host.to_string(),
        _ => format!("{host}:443"),
    };
    let addresses: Vec<_> = tokio::net::lookup_host(&target)
        .await
        .map_err(|e| format!("registry {host} does not resolve: {e}"))?
        .collect();
    if addresses.is_empty() {
        return Err(format!("registry {host} does not resolve"));
    }
    if let Some(private) = addresses.iter().find(|a| is_private_address(a.ip())) {
        return Err(format!(
            "registry {host} resolves to a non-public address ({}): this node pulls only from public registries",
            private.ip()
        ));
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The registry host of an image reference, as Docker reads it (`docker.io` when the first
/// component is not a host).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// The repository of an image reference: without its digest or tag.
fn repository_of(image: &str) -> &str {
    let without_digest = image.split_once('@').map_or(image, |(r, _)| r);
    match without_digest.rsplit_once(':') {
        // A colon after the last slash is a tag; before it, a registry port.
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => without_digest,
    }
}

impl Images {
    /// Images on `docker`; the book is kept in `book_path` (none: in memory only); pulls reach
    /// the registries `registries` allows.
    pub fn new(docker: Docker, book_path: Option<PathBuf>, registries: RegistryPolicy) -> Images {
        let book = book_path
            .as_deref()
            .and_then(|p| persist::read_json::<Book>(p).ok().flatten())
            .unwrap_or_default();
        Images {
            docker,
            state: Arc::new(Mutex::new(State {
                pulls: HashMap::new(),
                book,
            })),
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_PULLS)),
            settled: Arc::new(AtomicBool::new(false)),
            book_path,
            registries,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a pull ended (either way) since the last call: the agent then runs a pass.
    pub fn take_settled(&self) -> bool {
        self.settled.swap(false, Ordering::AcqRel)
    }

    /// `image` for a workload with `auth` (none for a public image) that may take `max_bytes`:
    /// ready, pulling or failed. A pull stops as soon as the image's layers are known to exceed
    /// `max_bytes` (their compressed sizes as the registry announces them: a tenant cannot fill
    /// the node's disk with an image larger than the root filesystem it pays for).
    pub async fn ensure(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        max_bytes: u64,
    ) -> ImageStatus {
        let access = auth.map_or_else(|| PUBLIC.to_string(), |a| a.access_key(image));
        let local = match self.docker.inspect_image(image).await {
            Ok(info) => Some(info),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => None,
            Err(e) => return ImageStatus::Failed(format!("cannot inspect image {image}: {e}")),
        };
        let key = (image.to_string(), access.clone());
        let mut state = self.lock();
        if let Some(info) = local {
            let allowed = match state.book.images.get_mut(image) {
                // Loaded on the node by its farmer, not pulled by the agent.
                None => true,
                Some(entry) if entry.accesses.contains(&access) => {
                    entry.last_used_ms = now_ms();
                    true
                }
                Some(_) => false,
            };
            if allowed {
                let repository = repository_of(image);
                let digest = info
                    .repo_digests
                    .unwrap_or_default()
                    .into_iter()
                    .find(|d| d.split_once('@').is_some_and(|(r, _)| r == repository))
                    .or(info.id)
                    .unwrap_or_default();
                let size = info.size.unwrap_or(0).max(0) as u64;
                return ImageStatus::Ready { digest, size };
            }
        }
        let attempts = match state.pulls.get(&key) {
            Some(Pull::Running) => return ImageStatus::Pulling,
            Some(Pull::Failed {
                message, retry_at, ..
            }) if Instant::now() < *retry_at => return ImageStatus::Failed(message.clone()),
            Some(Pull::Failed { attempts, .. }) => *attempts,
            None => 0,
        };
        state.pulls.insert(key.clone(), Pull::Running);
        // In the book before the pull starts: if the agent dies mid-pull and Docker finishes it,
        // the image is not taken for one the farmer loaded (which anyone may run); only the
        // accesses a finished pull proves are added.
        if !state.book.images.contains_key(image) {
            state.book.images.insert(
                image.to_string(),
                BookEntry {
                    accesses: BTreeSet::new(),
                    last_used_ms: now_ms(),
                },
            );
            self.save(&state.book);
        }
        drop(state);
        let this = self.clone();
        let credentials = auth.map(|a| DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(registry_of(image).to_string()),
            ..Default::default()
        });
        tokio::spawn(async move {
            let outcome = this.pull(&key.0, credentials, max_bytes).await;
            let mut state = this.lock();
            match outcome {
                Ok(()) => {
                    state.pulls.remove(&key);
                    let entry = state.book.images.entry(key.0.clone()).or_default();
                    entry.accesses.insert(key.1.clone());
                    entry.last_used_ms = now_ms();
                    this.save(&state.book);
                    tracing::info!(image = %key.0, "image pulled");
                }
                Err(message) => {
                    let attempts = attempts + 1;
                    let wait = FIRST_RETRY
                        .saturating_mul(1 << (attempts - 1).min(10))
                        .min(MAX_RETRY);
                    tracing::warn!(image = %key.0, %message, retry_in_s = wait.as_secs(), "image pull failed");
                    state.pulls.insert(
                        key,
                        Pull::Failed {
                            message,
                            attempts,
                            retry_at: Instant::now() + wait,
                        },
                    );
                }
            }
            this.settled.store(true, Ordering::Release);
        });
        ImageStatus::Pulling
    }

    /// Pulls `image`, logging progress now and then; the error is the registry's or Docker's.
    /// Stops (dropping the stream cancels Docker's pull) once the layers known so far add up to
    /// more than `max_bytes`.
    async fn pull(
        &self,
        image: &str,
        credentials: Option<DockerCredentials>,
        max_bytes: u64,
    ) -> Result<(), String> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| "the agent is stopping".to_string())?;
        check_registry(registry_of(image), self.registries).await?;
        tracing::info!(image, "pulling image");
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        let mut last_log = Instant::now();
        // Layer id → its size, as each layer's download starts.
        let mut layers: HashMap<String, u64> = HashMap::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(error) = info.error_detail.and_then(|d| d.message) {
                        return Err(format!("pulling {image}: {error}"));
                    }
                    if let (Some(layer), Some(total)) = (
                        info.id.as_ref(),
                        info.progress_detail.as_ref().and_then(|d| d.total),
                    ) {
                        if info.status.as_deref() == Some("Downloading") {
                            layers.insert(layer.clone(), total.max(0) as u64);
                            let known: u64 = layers.values().sum();
                            if known > max_bytes {
                                self.discard(image, stream);
                                return Err(format!(
                                    "{image} is larger than the workload's rootfsSize of {max_bytes} bytes (its layers take at least {known}); the image counts against it"
                                ));
                            }
                        }
                    }
                    if last_log.elapsed() >= Duration::from_secs(2) {
                        last_log = Instant::now();
                        let (current, total) = info
                            .progress_detail
                            .map_or((None, None), |d| (d.current, d.total));
                        tracing::info!(
                            image,
                            status = info.status.as_deref().unwrap_or(""),
                            layer = info.id.as_deref().unwrap_or(""),
                            ?current,
                            ?total,
                            "pulling image"
                        );
                    }
                }
                Err(DockerError::DockerResponseServerError { message, .. }) => {
                    return Err(format!("pulling {image}: {message}"))
                }
                Err(e) => return Err(format!("pulling {image}: {e}")),
            }
        }
        Ok(())
    }

    /// After a pull stopped for size: Docker may finish it anyway (closing the stream does not
    /// always cancel it), so the rest of the stream is read in the background and whatever
    /// arrived is removed. The pull's permit is free meanwhile.
    fn discard(&self, image: &str, mut stream: impl futures::Stream + Send + Unpin + 'static) {
        let (docker, image) = (self.docker.clone(), image.to_string());
        tokio::spawn(async move {
            while stream.next().await.is_some() {}
            match docker
                .remove_image(&image, None::<RemoveImageOptions>, None)
                .await
            {
                Ok(_) => tracing::info!(image, "removed an image pulled past its size limit"),
                Err(e) => {
                    tracing::debug!(image, error = %e, "nothing to remove after a stopped pull")
                }
            }
        });
    }

    fn save(&self, book: &Book) {
        if let Some(path) = &self.book_path {
            if let Err(e) = persist::write_json(path, book) {
                tracing::warn!(path = %path.display(), error = %e, "cannot save the image book");
            }
        }
    }

    /// Removes pulled images no live workload uses (`in_use`): those unused for `grace`, and
    /// more, least recently used first, while the pulled images take more than `budget` bytes.
    /// Returns the images removed. An image a container still holds is left (Docker refuses).
    pub async fn collect_garbage(
        &self,
        in_use: &BTreeSet<String>,
        grace: Duration,
        budget: u64,
    ) -> Vec<String> {
        let now = now_ms();
        let mut candidates: Vec<(u64, String)> = {
            let mut state = self.lock();
            // Failed pulls of images no live workload names any more are forgotten, so
            // reservations that come and go cannot grow this map.
            state
                .pulls
                .retain(|(image, _), pull| matches!(pull, Pull::Running) || in_use.contains(image));
            for image in in_use {
                if let Some(entry) = state.book.images.get_mut(image) {
                    entry.last_used_ms = now;
                }
            }
            state
                .book
                .images
                .iter()
                .filter(|(image, _)| !in_use.contains(*image))
                .map(|(image, e)| (e.last_used_ms, image.clone()))
                .collect()
        };
        candidates.sort();
        let mut total: u64 = 0;
        let pulled: Vec<String> = self.lock().book.images.keys().cloned().collect();
        for image in &pulled {
            if let Ok(info) = self.docker.inspect_image(image).await {
                total += info.size.unwrap_or(0).max(0) as u64;
            }
        }
        let mut removed = Vec::new();
        for (last_used_ms, image) in candidates {
            let expired = now.saturating_sub(last_used_ms) >= grace.as_millis() as u64;
            if !expired && total <= budget {
                continue;
            }
            let size = match self.docker.inspect_image(&image).await {
                Ok(info) => info.size.unwrap_or(0).max(0) as u64,
                Err(_) => 0,
            };
            let options = RemoveImageOptions {
                force: false,
                ..Default::default()
            };
            match self.docker.remove_image(&image, Some(options), None).await {
                Ok(_)
                | Err(DockerError::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    total = total.saturating_sub(size);
                    let mut state = self.lock();
                    state.book.images.remove(&image);
                    self.save(&state.book);
                    tracing::info!(%image, "removed an unused image");
                    removed.push(image);
                }
                Err(e) => tracing::debug!(%image, error = %e, "image not removed"),
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_registry_and_repository() {
        assert_eq!(
            registry_of("127.0.0.1:5000/grid/busybox:1"),
            "127.0.0.1:5000"
        );
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(registry_of("library/nginx:1"), "docker.io");
        assert_eq!(registry_of("nginx"), "docker.io");
        assert_eq!(
            repository_of("127.0.0.1:5000/grid/busybox:1"),
            "127.0.0.1:5000/grid/busybox"
        );
        assert_eq!(
            repository_of("127.0.0.1:5000/grid/busybox@sha256:ab"),
            "127.0.0.1:5000/grid/busybox"
        );
        assert_eq!(
            repository_of("127.0.0.1:5000/busybox"),
            "127.0.0.1:5000/busybox"
        );
        assert_eq!(repository_of("busybox:1.36"), "busybox");
    }

    #[test]
    fn only_globally_routable_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private_address(private.parse().unwrap()), "{private}");
        }
        for public in [
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_private_address(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn registries_on_private_addresses_are_refused_without_contact() {
        // Literal addresses resolve without DNS: nothing leaves the machine.
        for host in [
            "127.0.0.1:5000",
            "10.0.0.5:22",
            "[::1]:5000",
            "localhost:5000",
            "192.168.1.1",
        ] {
            let refused = check_registry(host, RegistryPolicy::PublicOnly)
                .await
                .unwrap_err();
            assert!(refused.contains("non-public"), "{host}: {refused}");
            check_registry(host, RegistryPolicy::AllowPrivate)
                .await
                .unwrap();
        }
        check_registry("docker.io", RegistryPolicy::PublicOnly)
            .await
            .unwrap();
    }

    #[test]
    fn credentials_parse_and_never_show_the_password() {
        let auth = RegistryAuth::parse("alice:s3cret:with:colons").unwrap();
        assert_eq!(auth.password, "s3cret:with:colons");
        assert!(!format!("{auth:?}").contains("s3cret"));
        assert!(RegistryAuth::parse(":x").is_none());
        assert!(RegistryAuth::parse("nocolon").is_none());
        // Distinct per image and per credentials.
        let other = RegistryAuth::parse("alice:other").unwrap();
        assert_ne!(auth.access_key("a"), auth.access_key("b"));
        assert_ne!(auth.access_key("a"), other.access_key("a"));
    }
}
