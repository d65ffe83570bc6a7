//! Private networks with rtnetlink: one Linux bridge per (owner, network name) and one veth pair
//! per container attachment, the container end moved into the container's network namespace
//! (found from its init pid) and given its address there.
//!
//! What is connected: containers attached to the same bridge reach each other (one L2 segment).
//! What is not: bridges carry no host address and containers get no default route, so a
//! container cannot reach another owner's network, the host, or the internet; cross-node
//! connectivity (WireGuard between nodes) does not exist yet.
//!
//! Hosts that load `br_netfilter` (Docker does) pass bridged frames through iptables' FORWARD
//! chain, whose policy Docker sets to DROP; so each bridge gets one rule accepting traffic that
//! stays on it (`-i br -o br -j ACCEPT`, in `DOCKER-USER` when that chain exists). Each bridge
//! also gets `INPUT -i br -j DROP`: Linux answers ARP and accepts packets for any of its
//! addresses on any interface, so a container whose range covers one of the host's addresses
//! could otherwise reach the host's own services through its bridge. IPv6 is disabled on
//! bridges and veth host ends (those rules are IPv4's).
//!
//! A bridge's (and a veth host end's) interface alias (`gridchain node <id>`) says which node's
//! agent owns it, so agents sharing a host (tests do) never remove each other's interfaces.
//!
//! **Names are allocated, never derived from what users choose.** Interface names hold 15
//! bytes, so a name derived from (owner, network name) by a hash keeps a few dozen bits, and a
//! tenant who grinds network names until one collides with another tenant's bridge would have
//! the agent adopt that bridge and put their container on the victim's network. Instead the
//! agent keeps a [`NameBook`] in its data dir: (owner, network) → bridge and (container,
//! network) → veth, names drawn from a counter, skipping any name that exists on the host, and
//! persisted before the interface is created. An interface is only ever adopted, reused or
//! deleted under the name the book gave it for that same key, and only if it carries this
//! agent's alias; anything else under that name is refused.

use futures::TryStreamExt;
use rtnetlink::{
    packet_route::link::{LinkAttribute, LinkMessage},
    Handle, LinkBridge, LinkUnspec, LinkVeth,
};
use std::{net::Ipv4Addr, os::fd::AsFd, process::Command};

/// Interface names start with these, so the agent can tell its own links.
pub const BRIDGE_PREFIX: &str = "gcbr";
pub const VETH_PREFIX: &str = "gcv";
pub const PUBLIC_PREFIX: &str = "gcp";

#[derive(Debug, thiserror::Error)]
#[error("network: {0}")]
pub struct NetworkError(pub String);

impl From<rtnetlink::Error> for NetworkError {
    fn from(e: rtnetlink::Error) -> Self {
        NetworkError(e.to_string())
    }
}

impl From<std::io::Error> for NetworkError {
    fn from(e: std::io::Error) -> Self {
        NetworkError(e.to_string())
    }
}

/// A netlink connection in the host's network namespace, managing one node's bridges.
#[derive(Clone)]
pub struct Networks {
    handle: Handle,
    /// Interface alias marking this node's bridges, so agents (or tests) of other nodes on the
    /// same host never touch them.
    alias: String,
    book: std::sync::Arc<tokio::sync::Mutex<NameBook>>,
}

/// The interface names this agent allocated, by what they are for (see the module docs).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct NameBook {
    #[serde(skip)]
    path: std::path::PathBuf,
    /// Next counter value to try.
    next: u64,
    /// `bridge/<owner>/<network>` or `veth/<container>/<network>` → interface name.
    names: std::collections::BTreeMap<String, String>,
}

impl NameBook {
    fn open(path: &std::path::Path) -> Result<Self, NetworkError> {
        let mut book: NameBook = crate::persist::read_json(path)?.unwrap_or_default();
        book.path = path.to_path_buf();
        Ok(book)
    }

    fn save(&self) -> Result<(), NetworkError> {
        Ok(crate::persist::write_json(&self.path, self)?)
    }
}

fn bridge_key(owner: &gridchain_primitives::AccountId, network: &str) -> String {
    format!("bridge/{owner}/{network}")
}

fn veth_key(container: &str, network: &str) -> String {
    format!("veth/{container}/{network}")
}

/// `prefix` + the counter in base 36, within the kernel's 15 bytes.
fn counter_name(prefix: &str, n: u64, max_len: usize) -> Option<String> {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut digits = Vec::new();
    let mut n = n;
    loop {
        digits.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    let name = format!("{prefix}{}", String::from_utf8(digits).ok()?);
    (name.len() <= max_len).then_some(name)
}

fn link_name(msg: &LinkMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

fn link_alias(msg: &LinkMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(n) => Some(n.as_str()),
        _ => None,
    })
}

async fn index_of(handle: &Handle, name: &str) -> Result<Option<u32>, NetworkError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) => Ok(None),
        // The kernel answers ENODEV for an unknown name.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Networks {
    /// Bridges of the node tagged `node_tag`, with the names it allocated kept in `book`.
    pub fn new(node_tag: &str, book: &std::path::Path) -> Result<Self, NetworkError> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Networks {
            handle,
            alias: format!("gridchain node {node_tag}"),
            book: std::sync::Arc::new(tokio::sync::Mutex::new(NameBook::open(book)?)),
        })
    }

    /// The name under `key`, allocating (and persisting) one if it has none: the next counter
    /// value whose name is neither in the book nor on the host.
    async fn name_for(
        &self,
        key: String,
        prefix: &str,
        max_len: usize,
    ) -> Result<String, NetworkError> {
        let mut book = self.book.lock().await;
        if let Some(name) = book.names.get(&key) {
            return Ok(name.clone());
        }
        loop {
            let n = book.next;
            book.next += 1;
            let name = counter_name(prefix, n, max_len)
                .ok_or_else(|| NetworkError("interface names exhausted".into()))?;
            if book.names.values().any(|v| *v == name)
                || index_of(&self.handle, &name).await?.is_some()
            {
                continue;
            }
            book.names.insert(key, name.clone());
            book.save()?;
            return Ok(name);
        }
    }

    /// The bridge of `owner`'s network `network` on this node (allocated on first use).
    pub async fn bridge_for(
        &self,
        owner: &gridchain_primitives::AccountId,
        network: &str,
    ) -> Result<String, NetworkError> {
        self.name_for(bridge_key(owner, network), BRIDGE_PREFIX, 15)
            .await
    }

    /// The host end of `container`'s veth on `network` (allocated on first use; its container
    /// end is `<name>p` until it is renamed inside the container).
    pub async fn veth_for(&self, container: &str, network: &str) -> Result<String, NetworkError> {
        self.name_for(veth_key(container, network), VETH_PREFIX, 14)
            .await
    }

    /// The host end of the veth that carries public IP `ip` to its container (allocated on
    /// first use; see [`super::public_ip`]).
    pub async fn public_if_for(&self, ip: std::net::Ipv4Addr) -> Result<String, NetworkError> {
        self.name_for(format!("pubip/{ip}"), PUBLIC_PREFIX, 15)
            .await
    }

    /// Every public IP the book has a host interface for, with that interface.
    pub async fn public_ifs(&self) -> Vec<(std::net::Ipv4Addr, String)> {
        let book = self.book.lock().await;
        book.names
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("pubip/")?.parse().ok()?, v.clone())))
            .collect()
    }

    /// Forgets the host interface of public IP `ip`.
    pub async fn forget_public_if(&self, ip: std::net::Ipv4Addr) -> Result<(), NetworkError> {
        let mut book = self.book.lock().await;
        if book.names.remove(&format!("pubip/{ip}")).is_some() {
            book.save()?;
        }
        Ok(())
    }

    /// The link net (see [`super::egress`]) of `bridge`'s router: the lowest index no other
    /// bridge of this node has, kept in the book until the bridge is removed.
    pub async fn link_net_for(&self, bridge: &str) -> Result<u16, NetworkError> {
        let key = format!("linknet/{bridge}");
        let mut book = self.book.lock().await;
        if let Some(index) = book.names.get(&key).and_then(|v| v.parse().ok()) {
            return Ok(index);
        }
        let used: std::collections::BTreeSet<u16> = book
            .names
            .iter()
            .filter(|(k, _)| k.starts_with("linknet/"))
            .filter_map(|(_, v)| v.parse().ok())
            .collect();
        let index = (0..=u16::MAX)
            .find(|i| !used.contains(i))
            .ok_or_else(|| NetworkError("link nets exhausted".into()))?;
        book.names.insert(key, index.to_string());
        book.save()?;
        Ok(index)
    }

    /// The link net `bridge` has in the book, if any.
    pub async fn link_net_of(&self, bridge: &str) -> Option<u16> {
        let book = self.book.lock().await;
        book.names.get(&format!("linknet/{bridge}"))?.parse().ok()
    }

    /// Forgets the veth names of attachments not in `keep` (`(container, network)`): their
    /// containers are gone, and the kernel removed the veths with them.
    pub async fn retain_veths(
        &self,
        keep: &std::collections::BTreeSet<(String, String)>,
    ) -> Result<(), NetworkError> {
        let mut book = self.book.lock().await;
        let before = book.names.len();
        book.names.retain(|key, _| {
            let Some(rest) = key.strip_prefix("veth/") else {
                return true;
            };
            keep.iter().any(|(c, n)| rest == format!("{c}/{n}"))
        });
        if book.names.len() != before {
            book.save()?;
        }
        Ok(())
    }

    /// Whether interface `name` exists and is this agent's (a veth's host end is gone once
    /// the container's network namespace is: Docker makes a new one at every start).
    pub async fn has_link(&self, name: &str) -> Result<bool, NetworkError> {
        self.is_ours(name).await
    }

    /// Whether an existing interface carries this agent's alias.
    async fn is_ours(&self, name: &str) -> Result<bool, NetworkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        Ok(match links.try_next().await {
            Ok(Some(msg)) => link_alias(&msg) == Some(self.alias.as_str()),
            Ok(None) => false,
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => false,
            Err(e) => return Err(e.into()),
        })
    }

    /// Bridges this node's agent created (name prefix and alias).
    pub async fn bridges(&self) -> Result<Vec<String>, NetworkError> {
        let links: Vec<LinkMessage> = self.handle.link().get().execute().try_collect().await?;
        Ok(links
            .iter()
            .filter(|l| link_alias(l) == Some(self.alias.as_str()))
            .filter_map(link_name)
            .filter(|n| n.starts_with(BRIDGE_PREFIX))
            .map(str::to_string)
            .collect())
    }

    /// Creates the bridge if missing, brings it up, and lets its own traffic through iptables.
    pub async fn ensure_bridge(&self, name: &str) -> Result<u32, NetworkError> {
        let index = match index_of(&self.handle, name).await? {
            // Never adopt an interface this agent did not create.
            Some(_) if !self.is_ours(name).await? => {
                return Err(NetworkError(format!(
                    "interface {name} exists and is not this node's; refusing to adopt it"
                )))
            }
            Some(i) => i,
            None => {
                self.handle
                    .link()
                    .add(LinkBridge::new(name).up().build())
                    .execute()
                    .await?;
                index_of(&self.handle, name)
                    .await?
                    .ok_or_else(|| NetworkError(format!("bridge {name} vanished after creation")))?
            }
        };
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .alias(self.alias.clone())
                    .up()
                    .build(),
            )
            .execute()
            .await?;
        disable_ipv6(name);
        firewall(name, true)?;
        Ok(index)
    }

    /// Deletes a bridge and its firewall rule; missing is fine.
    pub async fn remove_bridge(&self, name: &str) -> Result<(), NetworkError> {
        firewall(name, false)?;
        if let Some(index) = index_of(&self.handle, name).await? {
            self.handle.link().del(index).execute().await?;
        }
        let mut book = self.book.lock().await;
        let before = book.names.len();
        let link_key = format!("linknet/{name}");
        book.names.retain(|k, v| v != name && *k != link_key);
        if book.names.len() != before {
            book.save()?;
        }
        Ok(())
    }

    /// Connects the container whose init process is `pid` to `bridge`: a veth pair, host end
    /// `host_if` on the bridge, container end named `container_if` with `ip/prefix`.
    /// The container-side MAC address behind host interface `host_if`: the same for every
    /// container attached there, so a container that replaces another (an update) answers at
    /// the address its peers' ARP caches already hold. Locally administered, unicast.
    fn mac_for(&self, host_if: &str) -> [u8; 6] {
        let digest =
            gridchain_primitives::hash::blake2_256(format!("{}/{host_if}", self.alias).as_bytes());
        [0x02, digest[0], digest[1], digest[2], digest[3], digest[4]]
    }

    pub async fn attach(
        &self,
        bridge: &str,
        pid: u32,
        host_if: &str,
        container_if: &str,
        (ip, prefix): (Ipv4Addr, u8),
        gateway: Option<Ipv4Addr>,
    ) -> Result<(), NetworkError> {
        let bridge_index = index_of(&self.handle, bridge)
            .await?
            .ok_or_else(|| NetworkError(format!("bridge {bridge} does not exist")))?;
        // A leftover host end from an earlier attempt would make the add fail; only ours is
        // removed, anything else under that name is refused.
        if let Some(old) = index_of(&self.handle, host_if).await? {
            if !self.is_ours(host_if).await? {
                return Err(NetworkError(format!(
                    "interface {host_if} exists and is not this node's; refusing to touch it"
                )));
            }
            self.handle.link().del(old).execute().await?;
        }
        let peer = format!("{host_if}p");
        self.handle
            .link()
            .add(LinkVeth::new(host_if, &peer).build())
            .execute()
            .await?;
        let host_index = index_of(&self.handle, host_if)
            .await?
            .ok_or_else(|| NetworkError(format!("veth {host_if} vanished")))?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(host_index)
                    .controller(bridge_index)
                    .alias(self.alias.clone())
                    .up()
                    .build(),
            )
            .execute()
            .await?;
        disable_ipv6(host_if);
        let peer_index = index_of(&self.handle, &peer)
            .await?
            .ok_or_else(|| NetworkError(format!("veth {peer} vanished")))?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(peer_index)
                    .address(self.mac_for(host_if).to_vec())
                    .setns_by_pid(pid)
                    .build(),
            )
            .execute()
            .await?;
        let (peer, container_if) = (peer.clone(), container_if.to_string());
        tokio::task::spawn_blocking(move || {
            configure_in_netns(pid, &peer, &container_if, (ip, prefix), gateway)
        })
        .await
        .map_err(|e| NetworkError(e.to_string()))?
    }
}

/// Inside the container's network namespace: rename the interface, address it, bring it and
/// loopback up, and route the default through `gateway` if the network has a way out. Runs on its own thread, because `setns` changes the calling thread's namespace
/// and the netlink socket must be opened after it.
fn configure_in_netns(
    pid: u32,
    peer: &str,
    name: &str,
    (ip, prefix): (Ipv4Addr, u8),
    gateway: Option<Ipv4Addr>,
) -> Result<(), NetworkError> {
    let peer = peer.to_string();
    let name = name.to_string();
    std::thread::spawn(move || -> Result<(), NetworkError> {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetworkError(format!("setns into pid {pid}: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection()?;
            tokio::spawn(connection);
            let index = index_of(&handle, &peer)
                .await?
                .ok_or_else(|| NetworkError(format!("{peer} not in the container")))?;
            handle
                .link()
                .set(LinkUnspec::new_with_index(index).name(name.clone()).build())
                .execute()
                .await?;
            handle
                .address()
                .add(index, ip.into(), prefix)
                .execute()
                .await?;
            handle
                .link()
                .set(LinkUnspec::new_with_index(index).up().build())
                .execute()
                .await?;
            if let Some(lo) = index_of(&handle, "lo").await? {
                handle
                    .link()
                    .set(LinkUnspec::new_with_index(lo).up().build())
                    .execute()
                    .await?;
            }
            if let Some(gateway) = gateway {
                handle
                    .route()
                    .add(
                        rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
                            .output_interface(index)
                            .gateway(gateway)
                            .build(),
                    )
                    .execute()
                    .await?;
            }
            Ok(())
        })
    })
    .join()
    .map_err(|_| NetworkError("netns configuration thread panicked".into()))?
}

/// Turns IPv6 off on a host interface (nothing to do where the host has no IPv6).
pub(crate) fn disable_ipv6(interface: &str) {
    let _ = std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{interface}/disable_ipv6"),
        "1",
    );
}

/// Adds (or removes) the bridge's rules: traffic that enters and leaves the same bridge is
/// forwarded; traffic from the bridge to the host itself is dropped.
fn firewall(bridge: &str, present: bool) -> Result<(), NetworkError> {
    let forward = if iptables(&["-n", "-L", "DOCKER-USER"]).is_ok() {
        "DOCKER-USER"
    } else {
        "FORWARD"
    };
    rule(
        forward,
        &["-i", bridge, "-o", bridge, "-j", "ACCEPT"],
        present,
    )?;
    rule("INPUT", &["-i", bridge, "-j", "DROP"], present)
}

/// Makes `rule` present in (or absent from) `chain` (inserted first).
pub(crate) fn rule(chain: &str, rule: &[&str], present: bool) -> Result<(), NetworkError> {
    let exists = iptables(&[&["-C", chain][..], rule].concat()).is_ok();
    match (present, exists) {
        (true, false) => iptables(&[&["-I", chain][..], rule].concat()),
        (false, true) => iptables(&[&["-D", chain][..], rule].concat()),
        _ => Ok(()),
    }
}

pub(crate) fn iptables(args: &[&str]) -> Result<(), NetworkError> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| NetworkError(format!("cannot run iptables: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetworkError(format!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
