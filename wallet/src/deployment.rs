//! The deployment file of `grid reserve` and `grid reservation update`: YAML (or JSON when the
//! file name ends in `.json`), friendlier than the chain's SCALE types.
//!
//! - Sizes take units: `64MiB`, `1GiB`, `1.5GiB`, `500MB`, or a plain number of bytes.
//! - Environment values are plain strings (numbers and booleans are taken as their text), or
//!   `{value: …, secret: true}`; secret values and zdb passwords are written in clear in the file
//!   and **sealed** to the target node's account key (`gridchain_primitives::seal`) before the
//!   transaction is built: the chain, and everyone reading it, only ever sees the sealed bytes.
//!   Each is sealed for its context ([`SealTarget`]: this chain, the signing owner, that node,
//!   the workload, and the env var's name or "zdb password"); the node's agent opens it in that
//!   reservation only, so copying it into another owner's reservation gains nothing.
//! - Unknown fields, fields that do not belong to a workload's type and missing required fields
//!   are refused with the workload's name; syntax and type errors carry the line and column.
//!
//! The format is documented with examples in `wallet/README.md` and `examples/`.

use anyhow::{anyhow, bail, Context, Result};
use gridchain_primitives::{
    seal::{self, SealContext, SealError, SealPurpose},
    wireguard::WireguardKey,
    AccountId, Bytes, Hash,
};
use gridchain_runtime::{
    reservations::{
        self, Deployment, EnvValue, EnvVar, HealthCheck, HealthProbe, MeshPeer, MeshSpec, Mount,
        NetworkAttachment, RestartPolicy, Workload, WorkloadSpec, ZdbMode,
    },
    tfgrid::Resources,
};
use serde::{
    de::{self, value::MapAccessDeserializer, MapAccess, Visitor},
    Deserialize, Deserializer,
};
use std::{fmt, path::Path};

/// Root file system of a container when `rootfsSize` is not given.
pub const DEFAULT_ROOTFS: u64 = 1 << 30;
/// Largest deployment file read, in bytes.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Whom a reservation's secrets are sealed for: the chain, the reservation's owner (the signer)
/// and the node hosting it. Each secret adds its workload and purpose ([`SealContext`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealTarget {
    /// Genesis hash of the chain the reservation goes to.
    pub genesis: Hash,
    /// The account that signs `reserve` (or the update): the reservation's owner.
    pub owner: AccountId,
    /// The node's account key.
    pub node: AccountId,
}

impl SealTarget {
    /// The full context of a secret of `workload`.
    pub fn context(&self, workload: &str, purpose: SealPurpose) -> SealContext {
        SealContext {
            genesis: self.genesis,
            owner: self.owner,
            node: self.node,
            workload: workload.to_string(),
            purpose,
        }
    }

    /// Seals `plaintext` to the node, for `purpose` in `workload`.
    pub fn seal(
        &self,
        workload: &str,
        purpose: SealPurpose,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        seal::seal(&self.node, &self.context(workload, purpose), plaintext)
    }
}

/// A deployment as written in the file, secrets still in clear.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeploymentFile {
    #[serde(default)]
    pub metadata: String,
    pub workloads: Vec<WorkloadFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Container,
    Zdb,
    Network,
    Volume,
    #[serde(rename = "publicIp")]
    PublicIp,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Container => "container",
            Kind::Zdb => "zdb",
            Kind::Network => "network",
            Kind::Volume => "volume",
            Kind::PublicIp => "publicIp",
        })
    }
}

/// One workload: `name`, `type`, and the fields of that type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadFile {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    // container
    image: Option<String>,
    cpu: Option<u32>,
    memory: Option<Size>,
    rootfs_size: Option<Size>,
    entrypoint: Option<String>,
    #[serde(default, deserialize_with = "env_map")]
    env: Option<Vec<(String, EnvEntry)>>,
    mounts: Option<Vec<MountFile>>,
    networks: Option<Vec<NetworkFile>>,
    registry_auth: Option<RegistryAuthFile>,
    restart: Option<String>,
    health_check: Option<HealthCheckFile>,
    // zdb and volume
    size: Option<Size>,
    // zdb
    mode: Option<ZdbModeFile>,
    password: Option<Scalar>,
    public: Option<bool>,
    // network
    ip_range: Option<String>,
    egress: Option<bool>,
    mesh: Option<MeshFile>,
    // publicIp
    container: Option<String>,
}

/// `mesh: {range, peers: [{ip, publicKey}]}`: the network spans nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MeshFile {
    range: String,
    #[serde(default)]
    peers: Vec<MeshPeerFile>,
}

/// An owner's WireGuard peer; without `publicKey`, the signer's own key for this network
/// (derived by `grid` from the signing key; `grid reservation vpn` prints its config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MeshPeerFile {
    ip: String,
    public_key: Option<String>,
}

/// The signer's own WireGuard key for network `name` of the deployment.
pub type OwnPeerKey<'a> = &'a dyn Fn(&str) -> WireguardKey;

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ZdbModeFile {
    User,
    Seq,
}

/// `{command: …}`, `{http: {port, path}}` or `{tcp: port}`, with optional timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HealthCheckFile {
    command: Option<String>,
    http: Option<HttpProbeFile>,
    tcp: Option<u16>,
    #[serde(default = "default_interval")]
    interval_secs: u32,
    #[serde(default = "default_timeout")]
    timeout_secs: u32,
    #[serde(default = "default_retries")]
    retries: u32,
}

fn default_interval() -> u32 {
    10
}
fn default_timeout() -> u32 {
    5
}
fn default_retries() -> u32 {
    3
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpProbeFile {
    port: u16,
    #[serde(default = "default_path")]
    path: String,
}

fn default_path() -> String {
    "/".into()
}

/// Credentials for a private image's registry; sealed to the node, never sent in the clear.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryAuthFile {
    username: String,
    password: Scalar,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MountFile {
    volume: String,
    path: String,
}

/// `net`, or `{network: net, ip: 10.1.0.10}`.
#[derive(Debug, Clone)]
struct NetworkFile {
    network: String,
    ip: Option<String>,
}

/// A plain value, or `{value, secret}`.
#[derive(Debug, Clone)]
struct EnvEntry {
    value: String,
    secret: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvEntryMap {
    value: Scalar,
    #[serde(default)]
    secret: bool,
}

/// A string; numbers and booleans are taken as their text (`PORT: 8080`).
#[derive(Debug, Clone)]
struct Scalar(String);

/// A size in bytes: a number, or a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

impl<'de> Deserialize<'de> for EnvEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = EnvEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value, or {value: …, secret: true}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvEntry, E> {
                Ok(plain(ScalarVisitor.visit_str(v)?))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvEntry, E> {
                Ok(plain(ScalarVisitor.visit_bool(v)?))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvEntry, E> {
                Ok(plain(ScalarVisitor.visit_i64(v)?))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvEntry, E> {
                Ok(plain(ScalarVisitor.visit_u64(v)?))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EnvEntry, E> {
                Ok(plain(ScalarVisitor.visit_f64(v)?))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EnvEntry, A::Error> {
                let entry = EnvEntryMap::deserialize(MapAccessDeserializer::new(map))?;
                Ok(EnvEntry {
                    value: entry.value.0,
                    secret: entry.secret,
                })
            }
        }
        fn plain(value: Scalar) -> EnvEntry {
            EnvEntry {
                value: value.0,
                secret: false,
            }
        }
        d.deserialize_any(EntryVisitor)
    }
}

/// The `env` map, in file order, refusing a name given twice.
fn env_map<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<(String, EnvEntry)>>, D::Error> {
    struct EnvVisitor;
    impl<'de> Visitor<'de> for EnvVisitor {
        type Value = Vec<(String, EnvEntry)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of environment variable names to values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries: Vec<(String, EnvEntry)> = Vec::new();
            while let Some(name) = map.next_key::<String>()? {
                if entries.iter().any(|(n, _)| *n == name) {
                    return Err(de::Error::custom(format!(
                        "environment variable {name:?} is given twice"
                    )));
                }
                let value = map.next_value::<EnvEntry>()?;
                entries.push((name, value));
            }
            Ok(entries)
        }
    }
    d.deserialize_map(EnvVisitor).map(Some)
}

impl<'de> Deserialize<'de> for NetworkFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            network: String,
            #[serde(default)]
            ip: Option<String>,
        }
        struct NetVisitor;
        impl<'de> Visitor<'de> for NetVisitor {
            type Value = NetworkFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a network name, or {network: …, ip: …}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NetworkFile, E> {
                Ok(NetworkFile {
                    network: v.to_string(),
                    ip: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<NetworkFile, A::Error> {
                let full = Full::deserialize(MapAccessDeserializer::new(map))?;
                Ok(NetworkFile {
                    network: full.network,
                    ip: full.ip,
                })
            }
        }
        d.deserialize_any(NetVisitor)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: bytes, or a number with a unit (64MiB, 1GiB, 500MB)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("size {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

/// Parses `64MiB`, `1.5 GiB`, `500MB`, `4096` (bytes). Binary units (KiB, MiB, GiB, TiB) are
/// powers of 1024, decimal ones (KB/K, MB/M, GB/G, TB/T) powers of 1000; units ignore case.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim();
    let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"
            ))
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits_ok(whole) || !digits_ok(fraction) || fraction.len() > 12 {
        return Err(format!(
            "invalid size {text:?}: expected a number with an optional unit, like 64MiB or 1.5GiB"
        ));
    }
    let too_large = || format!("size {text:?} is too large");
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let mut bytes = whole.checked_mul(multiplier).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        let scale = 10u128.pow(fraction.len() as u32);
        let fraction: u128 = fraction.parse().map_err(|_| too_large())?;
        let part = fraction.checked_mul(multiplier).ok_or_else(too_large)?;
        if part % scale != 0 {
            return Err(format!(
                "invalid size {text:?}: not a whole number of bytes"
            ));
        }
        bytes = bytes.checked_add(part / scale).ok_or_else(too_large)?;
    }
    u64::try_from(bytes).map_err(|_| too_large())
}

/// `1073741824` → `1GiB`, `1536` → `1.5KiB`, `1000` → `1000B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, unit) in UNITS {
        if bytes >= size {
            let whole = bytes / size;
            let tenths = (bytes % size) * 10 / size;
            return if bytes.is_multiple_of(size) {
                format!("{whole}{unit}")
            } else if tenths == 0 {
                format!("~{whole}{unit}")
            } else {
                format!("~{whole}.{tenths}{unit}")
            };
        }
    }
    format!("{bytes}B")
}

/// `8 cores, 32GiB memory, 1000GiB SSD, 4TiB HDD`
pub fn format_resources(r: &Resources) -> String {
    format!(
        "{} cores, {} memory, {} SSD, {} HDD",
        r.cru,
        format_size(r.mru),
        format_size(r.sru),
        format_size(r.hru)
    )
}

impl DeploymentFile {
    /// Reads and parses a deployment file: JSON if its name ends in `.json`, YAML otherwise.
    pub fn load(path: &Path) -> Result<Self> {
        let shown = path.display();
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
        if meta.len() > MAX_FILE_BYTES {
            bail!("{shown} is larger than {MAX_FILE_BYTES} bytes");
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {shown}"))?;
        let json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        Self::parse(&text, json).with_context(|| format!("invalid deployment file {shown}"))
    }

    /// Parses the text of a deployment file.
    pub fn parse(text: &str, json: bool) -> Result<Self> {
        if json {
            serde_json::from_str(text).map_err(|e| anyhow!("{e}"))
        } else {
            serde_norway::from_str(text).map_err(|e| anyhow!("{e}"))
        }
    }

    /// The chain's deployment, secrets sealed for `to` (the chain, the owner and the target
    /// node), checked with the chain's own rules.
    /// `own` gives the signer's WireGuard key for mesh peers written without a `publicKey`
    /// (`None`: such a peer is an error).
    pub fn to_deployment_with(
        &self,
        to: &SealTarget,
        own: Option<OwnPeerKey>,
    ) -> Result<Deployment> {
        let workloads = self
            .workloads
            .iter()
            .map(|w| w.to_workload(to, own))
            .collect::<Result<Vec<_>>>()?;
        let deployment = Deployment {
            metadata: self.metadata.clone(),
            workloads,
        };
        reservations::validate(&deployment).map_err(|e| anyhow!("invalid deployment: {e}"))?;
        Ok(deployment)
    }
}

impl WorkloadFile {
    fn to_workload(&self, to: &SealTarget, own: Option<OwnPeerKey>) -> Result<Workload> {
        let name = &self.name;
        let kind = self.kind;
        let context = || format!("workload {name:?} ({kind})");
        let given: [(&str, bool, &[Kind]); 20] = [
            (
                "healthCheck",
                self.health_check.is_some(),
                &[Kind::Container],
            ),
            ("restart", self.restart.is_some(), &[Kind::Container]),
            (
                "registryAuth",
                self.registry_auth.is_some(),
                &[Kind::Container],
            ),
            ("image", self.image.is_some(), &[Kind::Container]),
            ("cpu", self.cpu.is_some(), &[Kind::Container]),
            ("memory", self.memory.is_some(), &[Kind::Container]),
            ("rootfsSize", self.rootfs_size.is_some(), &[Kind::Container]),
            ("entrypoint", self.entrypoint.is_some(), &[Kind::Container]),
            ("env", self.env.is_some(), &[Kind::Container]),
            ("mounts", self.mounts.is_some(), &[Kind::Container]),
            ("networks", self.networks.is_some(), &[Kind::Container]),
            ("size", self.size.is_some(), &[Kind::Zdb, Kind::Volume]),
            ("mode", self.mode.is_some(), &[Kind::Zdb]),
            ("password", self.password.is_some(), &[Kind::Zdb]),
            ("public", self.public.is_some(), &[Kind::Zdb]),
            ("ipRange", self.ip_range.is_some(), &[Kind::Network]),
            ("egress", self.egress.is_some(), &[Kind::Network]),
            ("mesh", self.mesh.is_some(), &[Kind::Network]),
            ("container", self.container.is_some(), &[Kind::PublicIp]),
            (
                "name",
                true,
                &[
                    Kind::Container,
                    Kind::Zdb,
                    Kind::Network,
                    Kind::Volume,
                    Kind::PublicIp,
                ],
            ),
        ];
        for (field, present, kinds) in given {
            if present && !kinds.contains(&kind) {
                bail!("{}: a {kind} has no field '{field}'", context());
            }
        }
        let required = |field: &str| anyhow!("{}: '{field}' is required", context());
        let sealed = |purpose: SealPurpose, plaintext: &str| -> Result<Bytes> {
            let what = match &purpose {
                SealPurpose::Env { name } => format!("env {name}"),
                SealPurpose::ZdbPassword => "the password".into(),
                SealPurpose::RegistryAuth => "the registry credentials".into(),
            };
            to.seal(name, purpose, plaintext.as_bytes())
                .map(Bytes)
                .map_err(|e| anyhow!("{}: cannot seal {what} to the node: {e}", context()))
        };
        let spec = match kind {
            Kind::Container => WorkloadSpec::Container {
                image: self.image.clone().ok_or_else(|| required("image"))?,
                cpu: self.cpu.ok_or_else(|| required("cpu"))?,
                memory: self.memory.ok_or_else(|| required("memory"))?.0,
                rootfs_size: self.rootfs_size.map_or(DEFAULT_ROOTFS, |s| s.0),
                entrypoint: self.entrypoint.clone().unwrap_or_default(),
                env: self
                    .env
                    .iter()
                    .flatten()
                    .map(|(var, entry)| {
                        let value = if entry.secret {
                            EnvValue::Sealed(sealed(
                                SealPurpose::Env { name: var.clone() },
                                &entry.value,
                            )?)
                        } else {
                            EnvValue::Plain(entry.value.clone())
                        };
                        Ok(EnvVar {
                            name: var.clone(),
                            value,
                        })
                    })
                    .collect::<Result<_>>()?,
                mounts: self
                    .mounts
                    .iter()
                    .flatten()
                    .map(|m| Mount {
                        volume: m.volume.clone(),
                        path: m.path.clone(),
                    })
                    .collect(),
                networks: self
                    .networks
                    .iter()
                    .flatten()
                    .map(|n| NetworkAttachment {
                        network: n.network.clone(),
                        ip: n.ip.clone(),
                    })
                    .collect(),
                health_check: match &self.health_check {
                    None => None,
                    Some(h) => {
                        let probe = match (&h.command, &h.http, h.tcp) {
                            (Some(command), None, None) => HealthProbe::Command {
                                command: command.clone(),
                            },
                            (None, Some(http), None) => HealthProbe::Http {
                                port: http.port,
                                path: http.path.clone(),
                            },
                            (None, None, Some(port)) => HealthProbe::Tcp { port },
                            _ => bail!(
                                "{}: healthCheck has exactly one of command, http, tcp",
                                context()
                            ),
                        };
                        Some(HealthCheck {
                            probe,
                            interval_secs: h.interval_secs,
                            timeout_secs: h.timeout_secs,
                            retries: h.retries,
                        })
                    }
                },
                restart: match self.restart.as_deref() {
                    None | Some("always") => RestartPolicy::Always,
                    Some("never") => RestartPolicy::Never,
                    Some("on-failure") => RestartPolicy::OnFailure { max_retries: 0 },
                    Some(other) => match other
                        .strip_prefix("on-failure:")
                        .and_then(|n| n.parse::<u32>().ok())
                    {
                        Some(max_retries) if max_retries > 0 => {
                            RestartPolicy::OnFailure { max_retries }
                        }
                        _ => bail!(
                            "{}: restart is always, never, on-failure or on-failure:N (N ≥ 1), not {other:?}",
                            context()
                        ),
                    },
                },
                registry_auth: match &self.registry_auth {
                    None => None,
                    Some(auth) if auth.username.is_empty() || auth.username.contains(':') => {
                        bail!(
                            "{}: registryAuth.username must be non-empty, without ':'",
                            context()
                        )
                    }
                    Some(auth) => Some(sealed(
                        SealPurpose::RegistryAuth,
                        &format!("{}:{}", auth.username, auth.password.0),
                    )?),
                },
            },
            Kind::Zdb => WorkloadSpec::ZdbNamespace {
                size: self.size.ok_or_else(|| required("size"))?.0,
                mode: match self.mode {
                    None | Some(ZdbModeFile::User) => ZdbMode::User,
                    Some(ZdbModeFile::Seq) => ZdbMode::Seq,
                },
                password: self
                    .password
                    .as_ref()
                    .map(|p| sealed(SealPurpose::ZdbPassword, &p.0))
                    .transpose()?,
                public: self.public.unwrap_or(false),
            },
            Kind::Network => WorkloadSpec::Network {
                ip_range: self.ip_range.clone().ok_or_else(|| required("ipRange"))?,
                egress: self.egress.unwrap_or(false),
                mesh: match &self.mesh {
                    None => None,
                    Some(mesh) => Some(MeshSpec {
                        range: mesh.range.clone(),
                        peers: mesh
                            .peers
                            .iter()
                            .map(|p| {
                                let public_key = match (&p.public_key, own) {
                                    (Some(text), _) => WireguardKey::parse(text).map_err(|e| {
                                        anyhow!("{}: mesh peer {}: {e}", context(), p.ip)
                                    })?,
                                    (None, Some(own)) => own(name),
                                    (None, None) => bail!(
                                        "{}: mesh peer {} needs a publicKey",
                                        context(),
                                        p.ip
                                    ),
                                };
                                Ok(MeshPeer {
                                    public_key,
                                    ip: p.ip.clone(),
                                })
                            })
                            .collect::<Result<_>>()?,
                    }),
                },
            },
            Kind::PublicIp => WorkloadSpec::PublicIp {
                container: self.container.clone().ok_or_else(|| required("container"))?,
            },
            Kind::Volume => WorkloadSpec::Volume {
                size: self.size.ok_or_else(|| required("size"))?.0,
            },
        };
        Ok(Workload {
            name: name.clone(),
            spec,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gridchain_primitives::Pair;
    use gridchain_runtime::tfgrid::GIB;

    const MIB: u64 = 1 << 20;

    /// Bob's reservation on node `node` of a test chain.
    fn target(node: &Pair) -> SealTarget {
        SealTarget {
            genesis: Hash([3; 32]),
            owner: Pair::dev("Bob").public(),
            node: node.public(),
        }
    }

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("64MiB"), Ok(64 * MIB));
        assert_eq!(parse_size("1GiB"), Ok(GIB));
        assert_eq!(parse_size("1.5GiB"), Ok(3 * GIB / 2));
        assert_eq!(parse_size(" 2 gib "), Ok(2 * GIB));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1T"), Ok(1_000_000_000_000));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10B"), Ok(10));
        assert_eq!(parse_size("0.5KiB"), Ok(512));
        for bad in [
            "",
            "GiB",
            "1.5.5GiB",
            "-1GiB",
            "1 XB",
            "1.0000001KiB",
            "1e3",
            "17179869184GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(format_size(GIB), "1GiB");
        assert_eq!(format_size(3 * GIB / 2), "~1.5GiB");
        assert_eq!(format_size(1000), "1000B");
    }

    const FULL: &str = r#"
metadata: web app
workloads:
  - name: net
    type: network
    ipRange: 10.1.0.0/16
  - name: data
    type: volume
    size: 10GiB
  - name: db
    type: zdb
    size: 100GiB
    mode: seq
    password: zdb-secret
    public: true
  - name: web
    type: container
    image: docker.io/library/nginx:1
    cpu: 2
    memory: 512MiB
    rootfsSize: 2GiB
    env:
      MODE: production
      PORT: 8080
      API_KEY: { value: s3cret, secret: true }
    mounts:
      - volume: data
        path: /data
    networks:
      - network: net
        ip: 10.1.0.10
"#;

    #[test]
    fn converts_with_units_and_seals_secrets_to_the_node() {
        let node = Pair::dev("GridNode1");
        let to = target(&node);
        let file = DeploymentFile::parse(FULL, false).unwrap();
        let d = file.to_deployment_with(&to, None).unwrap();
        assert_eq!(d.metadata, "web app");
        assert_eq!(d.workloads.len(), 4);
        assert_eq!(d.workloads[1].spec, WorkloadSpec::Volume { size: 10 * GIB });
        let WorkloadSpec::ZdbNamespace {
            size,
            mode,
            password: Some(password),
            public,
        } = &d.workloads[2].spec
        else {
            panic!("zdb expected: {:?}", d.workloads[2]);
        };
        assert_eq!((*size, *mode, *public), (100 * GIB, ZdbMode::Seq, true));
        assert_ne!(password.0, b"zdb-secret");
        let zdb_context = to.context(&d.workloads[2].name, SealPurpose::ZdbPassword);
        assert_eq!(
            seal::open(&node.seed(), &zdb_context, &password.0).unwrap(),
            b"zdb-secret"
        );
        // Another node cannot open it, nor can this node for another owner.
        let node2 = Pair::dev("GridNode2");
        let mut elsewhere = zdb_context.clone();
        elsewhere.node = node2.public();
        assert!(seal::open(&node2.seed(), &elsewhere, &password.0).is_err());
        let mut stolen = zdb_context.clone();
        stolen.owner = Pair::dev("Charlie").public();
        assert!(seal::open(&node.seed(), &stolen, &password.0).is_err());

        let WorkloadSpec::Container {
            image,
            cpu,
            memory,
            rootfs_size,
            env,
            mounts,
            networks,
            ..
        } = &d.workloads[3].spec
        else {
            panic!("container expected");
        };
        assert_eq!(image, "docker.io/library/nginx:1");
        assert_eq!((*cpu, *memory, *rootfs_size), (2, 512 * MIB, 2 * GIB));
        assert_eq!(env[0].value, EnvValue::Plain("production".into()));
        assert_eq!(env[1].value, EnvValue::Plain("8080".into()));
        assert_eq!(env[2].name, "API_KEY");
        let EnvValue::Sealed(sealed) = &env[2].value else {
            panic!("API_KEY must be sealed");
        };
        let env_context = to.context(
            &d.workloads[3].name,
            SealPurpose::Env {
                name: "API_KEY".into(),
            },
        );
        assert_eq!(
            seal::open(&node.seed(), &env_context, &sealed.0).unwrap(),
            b"s3cret"
        );
        // Sealed for API_KEY of this workload: not as another variable, nor as the password.
        let mut other_var = env_context.clone();
        other_var.purpose = SealPurpose::Env {
            name: "MODE".into(),
        };
        assert!(seal::open(&node.seed(), &other_var, &sealed.0).is_err());
        assert!(seal::open(&node.seed(), &zdb_context, &sealed.0).is_err());
        assert_eq!(mounts[0].path, "/data");
        assert_eq!(networks[0].ip.as_deref(), Some("10.1.0.10"));
        // The secret appears nowhere in clear in what goes on chain.
        let encoded = parity_scale_codec::Encode::encode(&d);
        assert!(!encoded.windows(6).any(|w| w == b"s3cret"));
        assert!(!encoded.windows(10).any(|w| w == b"zdb-secret"));
    }

    #[test]
    fn json_and_shorthands() {
        let json = r#"{"workloads": [
            {"name": "net", "type": "network", "ipRange": "10.2.0.0/24"},
            {"name": "app", "type": "container", "image": "alpine", "cpu": 1,
             "memory": 67108864, "networks": ["net"]}
        ]}"#;
        let d = DeploymentFile::parse(json, true)
            .unwrap()
            .to_deployment_with(&target(&Pair::dev("N")), None)
            .unwrap();
        let WorkloadSpec::Container {
            memory,
            rootfs_size,
            networks,
            ..
        } = &d.workloads[1].spec
        else {
            panic!()
        };
        assert_eq!((*memory, *rootfs_size), (64 * MIB, DEFAULT_ROOTFS));
        assert_eq!(networks[0].network, "net");
        assert_eq!(networks[0].ip, None);
    }

    #[test]
    fn registry_credentials_are_sealed_for_that_workload_only() {
        let node = Pair::dev("GridNode1");
        let to = target(&node);
        let text = "workloads:\n  - {name: app, type: container, image: 127.0.0.1:5000/team/app:1, cpu: 1, memory: 64MiB, registryAuth: {username: bob, password: hunter2}}\n";
        let d = DeploymentFile::parse(text, false)
            .unwrap()
            .to_deployment_with(&to, None)
            .unwrap();
        let WorkloadSpec::Container {
            registry_auth: Some(sealed),
            ..
        } = &d.workloads[0].spec
        else {
            panic!("sealed credentials expected: {:?}", d.workloads[0]);
        };
        assert!(!parity_scale_codec::Encode::encode(&d)
            .windows(b"hunter2".len())
            .any(|w| w == b"hunter2"));
        let context = to.context("app", SealPurpose::RegistryAuth);
        assert_eq!(
            seal::open(&node.seed(), &context, &sealed.0).unwrap(),
            b"bob:hunter2"
        );
        let as_env = to.context(
            "app",
            SealPurpose::Env {
                name: "REGISTRY".into(),
            },
        );
        assert!(seal::open(&node.seed(), &as_env, &sealed.0).is_err());
        let e = error_of("workloads:\n  - {name: app, type: container, image: x, cpu: 1, memory: 1GiB, registryAuth: {username: 'a:b', password: p}}\n");
        assert!(e.contains("registryAuth.username"), "{e}");
        let e = error_of("workloads:\n  - {name: v, type: volume, size: 1GiB, registryAuth: {username: a, password: p}}\n");
        assert!(e.contains("has no field 'registryAuth'"), "{e}");
    }

    #[test]
    fn restart_policies_parse_and_bad_ones_are_refused() {
        let node = target(&Pair::dev("N"));
        let policy = |restart: &str| {
            let text = format!("workloads:\n  - {{name: a, type: container, image: x, cpu: 1, memory: 1GiB, restart: '{restart}'}}\n");
            let d = DeploymentFile::parse(&text, false)
                .unwrap()
                .to_deployment_with(&node, None)
                .unwrap();
            let WorkloadSpec::Container { restart, .. } = d.workloads[0].spec else {
                unreachable!()
            };
            restart
        };
        assert_eq!(policy("always"), RestartPolicy::Always);
        assert_eq!(policy("never"), RestartPolicy::Never);
        assert_eq!(
            policy("on-failure"),
            RestartPolicy::OnFailure { max_retries: 0 }
        );
        assert_eq!(
            policy("on-failure:3"),
            RestartPolicy::OnFailure { max_retries: 3 }
        );
        for bad in ["sometimes", "on-failure:0", "on-failure:x"] {
            let e = error_of(&format!("workloads:\n  - {{name: a, type: container, image: x, cpu: 1, memory: 1GiB, restart: '{bad}'}}\n"));
            assert!(e.contains("restart is always, never"), "{bad}: {e}");
        }
        let e = error_of("workloads:\n  - {name: a, type: container, image: x, cpu: 1, memory: 1GiB, restart: 'on-failure:5000'}\n");
        assert!(e.contains("at most 1,000 restarts"), "{e}");
    }

    fn error_of(text: &str) -> String {
        match DeploymentFile::parse(text, false) {
            Err(e) => format!("{e:#}"),
            Ok(file) => match file.to_deployment_with(&target(&Pair::dev("N")), None) {
                Err(e) => format!("{e:#}"),
                Ok(d) => panic!("accepted: {d:?}"),
            },
        }
    }

    #[test]
    fn bad_input_is_refused_with_position_or_workload() {
        let e = error_of("workloads:\n  - name: a\n    type: volume\n   size: [\n");
        assert!(e.contains("line"), "{e}");
        let e = error_of("workloads:\n  - name: a\n    type: volume\n    sise: 1GiB\n");
        assert!(
            e.contains("unknown field `sise`") && e.contains("line 4 column 5"),
            "{e}"
        );
        let e = error_of("workloads:\n  - name: a\n    type: volume\n    size: 1XB\n");
        assert!(e.contains("unknown unit") && e.contains("line 4"), "{e}");
        let e = error_of("workloads:\n  - name: a\n    type: vm\n");
        assert!(e.contains("unknown variant `vm`"), "{e}");
        let e =
            error_of("workloads:\n  - name: a\n    type: volume\n    image: x\n    size: 1GiB\n");
        assert!(
            e.contains("\"a\" (volume): a volume has no field 'image'"),
            "{e}"
        );
        let e = error_of("workloads:\n  - name: a\n    type: container\n    image: x\n");
        assert!(e.contains("'cpu' is required"), "{e}");
        let e = error_of("workloads:\n  - name: a\n    type: volume\n    size: 0\n");
        assert!(e.contains("zero size"), "{e}");
        let e = error_of(
            "workloads:\n  - {name: a, type: container, image: x, cpu: 1, memory: 1GiB, env: {A: 1, A: 2}}\n",
        );
        assert!(e.contains("A"), "{e}");
        let e = error_of("workloads: []\n");
        assert!(e.contains("workloads"), "{e}");
        let e = error_of("");
        assert!(!e.is_empty());
    }

    #[test]
    fn mesh_peers_take_the_signers_key_or_a_valid_one() {
        let yaml = |key: &str| {
            format!(
                "metadata: m\nworkloads:\n  - name: net\n    type: network\n    ipRange: 10.40.1.0/24\n    \
                 mesh:\n      range: 10.40.0.0/16\n      peers:\n        - ip: 10.40.255.2\n{key}"
            )
        };
        let node = target(&Pair::dev("N"));
        let own = WireguardKey([7; 32]);
        let d = DeploymentFile::parse(&yaml(""), false)
            .unwrap()
            .to_deployment_with(
                &node,
                Some(&|network| {
                    assert_eq!(network, "net");
                    own
                }),
            )
            .unwrap();
        let WorkloadSpec::Network {
            mesh: Some(mesh), ..
        } = &d.workloads[0].spec
        else {
            panic!("a mesh network")
        };
        assert_eq!(mesh.peers[0].public_key, own);
        // Without the signer's key, a peer needs its own.
        let err = DeploymentFile::parse(&yaml(""), false)
            .unwrap()
            .to_deployment_with(&node, None)
            .unwrap_err();
        assert!(format!("{err:#}").contains("needs a publicKey"), "{err:#}");
        // A key of the wrong length is named as such.
        let short = "          publicKey: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n";
        let err = DeploymentFile::parse(&yaml(short), false)
            .unwrap()
            .to_deployment_with(&node, Some(&|_| own))
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("32 bytes; this one is 31"),
            "{err:#}"
        );
        // A peer inside the member's own subnet is the chain's error, said before signing.
        let inside = yaml("").replace("10.40.255.2", "10.40.1.9");
        let err = DeploymentFile::parse(&inside, false)
            .unwrap()
            .to_deployment_with(&node, Some(&|_| own))
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("inside the member's ipRange"),
            "{err:#}"
        );
    }

    #[test]
    fn examples_are_valid() {
        let node = target(&Pair::dev("GridNode1"));
        for (name, text) in [
            (
                "container.yaml",
                include_str!("../../examples/container.yaml"),
            ),
            ("zdb.yaml", include_str!("../../examples/zdb.yaml")),
            ("local.yaml", include_str!("../../examples/local.yaml")),
            (
                "registry.yaml",
                include_str!("../../examples/registry.yaml"),
            ),
            ("full.yaml", include_str!("../../examples/full.yaml")),
            ("egress.yaml", include_str!("../../examples/egress.yaml")),
            ("mesh-a.yaml", include_str!("../../examples/mesh-a.yaml")),
            ("mesh-b.yaml", include_str!("../../examples/mesh-b.yaml")),
        ] {
            let file = DeploymentFile::parse(text, false).unwrap_or_else(|e| panic!("{name}: {e}"));
            file.to_deployment_with(&node, Some(&|_| WireguardKey([7; 32])))
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
        let json = include_str!("../../examples/full.json");
        DeploymentFile::parse(json, true)
            .unwrap()
            .to_deployment_with(&node, None)
            .unwrap();
    }
}
