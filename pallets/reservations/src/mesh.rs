//! Private networks across nodes: the chain's record of each mesh.
//!
//! A network workload with a [`MeshSpec`] joins the mesh of its owner's network of the same
//! name: one record per (owner, network name), listing one member per node (the reservation,
//! its node and the subnet it holds there) and the owner's own WireGuard peers (a laptop).
//!
//! ```text
//! reserve/update: member subnet ⊂ mesh range, disjoint from every other member's and peer's;
//!                 one member per node; same range on every member; ≤ MAX_MESH_MEMBERS
//! report_results: the hosting node's WireGuard key and endpoint for that member ─▶ record
//! delete/update:  the member leaves; the record goes with its last member
//! agents:         read the records of the meshes they take part in (proven, in their snapshot)
//!                 and configure a WireGuard peer per other member and per owner's peer
//! ```
//!
//! Who may write what: only the owner's reservations join the owner's meshes (the record is
//! keyed by the owner), and only a member's hosting node sets that member's key and endpoint
//! (through its own `report_results`). The record is one bounded value, so joining costs every
//! validator one read and one write of at most a few KiB, whatever the mesh's history.

use crate::{network_range, Error, Reservation, ReservationId, ResultData, WorkloadSpec, PALLET};
use gridchain_primitives::{state::storage_map_key, wireguard::WireguardKey, AccountId};
use pallet_system::Context;
use pallet_tfgrid::{Cidr, NodeId};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

/// Most members (nodes) of one mesh.
pub const MAX_MESH_MEMBERS: usize = 32;
/// Most owner's peers one member may declare.
pub const MAX_MESH_PEERS: usize = 8;
/// Longest endpoint a node may report (`a.b.c.d:port`, or an IPv6 one in brackets).
pub const MAX_ENDPOINT_LEN: usize = 64;

/// What a network workload asks for to span nodes.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshSpec {
    /// The whole network's private range, the same on every member; each member's `ipRange`
    /// lies inside it.
    pub range: String,
    /// The owner's own WireGuard peers, each with one address of `range` outside every
    /// member's subnet.
    #[serde(default)]
    pub peers: Vec<MeshPeer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshPeer {
    pub public_key: WireguardKey,
    /// One IPv4 address of the mesh's range.
    pub ip: String,
}

/// What a node reports for its side of a mesh.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireguardEndpoint {
    pub public_key: WireguardKey,
    /// `address:port` other members and peers send to.
    pub endpoint: String,
}

/// The chain's record of one mesh.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mesh {
    pub owner: AccountId,
    pub network: String,
    pub range: String,
    pub members: Vec<MeshMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshMember {
    pub reservation: ReservationId,
    pub node_id: NodeId,
    /// The member's `ipRange`: the part of the mesh its node routes to its bridge.
    pub subnet: String,
    /// The owner's peers this member's spec declares (every member takes every peer).
    pub peers: Vec<MeshPeer>,
    /// The hosting node's key and endpoint, once it reported them.
    pub wireguard: Option<WireguardEndpoint>,
}

impl Mesh {
    /// Every owner's peer of the mesh, once each.
    pub fn peers(&self) -> Vec<&MeshPeer> {
        let mut out: Vec<&MeshPeer> = Vec::new();
        for p in self.members.iter().flat_map(|m| &m.peers) {
            if !out.iter().any(|q| q.public_key == p.public_key) {
                out.push(p);
            }
        }
        out
    }
}

pub fn mesh_key(owner: &AccountId, network: &str) -> Vec<u8> {
    storage_map_key(PALLET, "mesh", &(owner, network))
}

pub fn mesh<E>(ctx: &Context<E>, owner: &AccountId, network: &str) -> Option<Mesh> {
    ctx.overlay.get_decoded(&mesh_key(owner, network))
}

fn put_mesh<E>(ctx: &mut Context<E>, m: &Mesh) {
    let key = mesh_key(&m.owner, &m.network);
    if m.members.is_empty() {
        ctx.overlay.delete(key);
    } else {
        ctx.overlay.put_encoded(key, m);
    }
}

/// The meshes reservation `r`'s networks take part in: (network name, spec, member subnet).
fn mesh_networks(r: &Reservation) -> impl Iterator<Item = (&str, &MeshSpec, &str)> {
    r.deployment.workloads.iter().filter_map(|w| match &w.spec {
        WorkloadSpec::Network {
            ip_range,
            mesh: Some(spec),
            ..
        } => Some((w.name.as_str(), spec, ip_range.as_str())),
        _ => None,
    })
}

fn conflict(network: &str, reason: String) -> Error {
    Error::MeshConflict {
        network: network.to_string(),
        reason,
    }
}

fn bounds(c: &Cidr) -> (u32, u32) {
    let IpAddr::V4(addr) = c.addr else {
        return (1, 0);
    };
    let mask = u32::MAX.checked_shl(32 - u32::from(c.prefix)).unwrap_or(0);
    (u32::from(addr) & mask, u32::from(addr) | !mask)
}

fn overlaps(a: &Cidr, b: &Cidr) -> bool {
    let ((a0, a1), (b0, b1)) = (bounds(a), bounds(b));
    a0 <= b1 && b0 <= a1
}

/// Checks a mesh spec on its own (no state): the range, the member subnet inside it, the peers.
pub(crate) fn check_spec(network: &str, spec: &MeshSpec, ip_range: &str) -> Result<(), Error> {
    let range = network_range(network, &spec.range)?;
    let subnet = network_range(network, ip_range)?;
    if subnet.prefix < range.prefix || !range.contains(&subnet.addr) {
        return Err(conflict(
            network,
            format!(
                "ipRange {ip_range} is not inside the mesh range {}",
                spec.range
            ),
        ));
    }
    if spec.peers.len() > MAX_MESH_PEERS {
        return Err(conflict(
            network,
            format!("at most {MAX_MESH_PEERS} peers per member"),
        ));
    }
    for (i, peer) in spec.peers.iter().enumerate() {
        let ip: Ipv4Addr = peer
            .ip
            .parse()
            .map_err(|_| conflict(network, format!("peer address {:?} is not IPv4", peer.ip)))?;
        let (lo, hi) = bounds(&range);
        if !(lo < u32::from(ip) && u32::from(ip) < hi) {
            return Err(conflict(
                network,
                format!("peer address {ip} is not a host address of {}", spec.range),
            ));
        }
        if subnet.contains(&IpAddr::V4(ip)) {
            return Err(conflict(
                network,
                format!("peer address {ip} is inside the member's ipRange {ip_range}"),
            ));
        }
        if spec.peers[..i]
            .iter()
            .any(|q| q.ip == peer.ip || q.public_key == peer.public_key)
        {
            return Err(conflict(
                network,
                format!(
                    "peer {} or its address {ip} is listed twice",
                    peer.public_key
                ),
            ));
        }
    }
    Ok(())
}

/// Reservation `r` joins the meshes its networks name (an update replaces its earlier entry,
/// keeping the node's key and endpoint if its subnet stays); fails, changing nothing the
/// caller's transaction keeps, if any member or peer would clash.
pub(crate) fn join<E>(ctx: &mut Context<E>, r: &Reservation) -> Result<(), Error> {
    for (network, spec, ip_range) in mesh_networks(r) {
        let mut m = mesh(ctx, &r.owner, network).unwrap_or_else(|| Mesh {
            owner: r.owner,
            network: network.to_string(),
            range: spec.range.clone(),
            members: vec![],
        });
        let previous = m
            .members
            .iter()
            .position(|x| x.reservation == r.id)
            .map(|i| m.members.remove(i));
        if m.range != spec.range {
            return Err(conflict(
                network,
                format!("the mesh's range is {}, not {}", m.range, spec.range),
            ));
        }
        if m.members.len() >= MAX_MESH_MEMBERS {
            return Err(conflict(
                network,
                format!("a mesh has at most {MAX_MESH_MEMBERS} members"),
            ));
        }
        let subnet = Cidr::parse(ip_range).expect("checked by validate");
        for other in &m.members {
            if other.node_id == r.node_id {
                return Err(conflict(
                    network,
                    format!(
                        "node {} is in the mesh already (reservation {}); one member per node",
                        r.node_id, other.reservation
                    ),
                ));
            }
            let theirs = Cidr::parse(&other.subnet).expect("checked when it joined");
            if overlaps(&subnet, &theirs) {
                return Err(conflict(
                    network,
                    format!(
                        "ipRange {ip_range} overlaps {} of reservation {} on node {}",
                        other.subnet, other.reservation, other.node_id
                    ),
                ));
            }
        }
        let members_subnets: Vec<Cidr> = m
            .members
            .iter()
            .filter_map(|o| Cidr::parse(&o.subnet))
            .chain([subnet])
            .collect();
        let existing = m.peers().into_iter().cloned().collect::<Vec<_>>();
        for peer in existing.iter().chain(&spec.peers) {
            let ip: IpAddr = peer.ip.parse().expect("checked by check_spec");
            if let Some(s) = members_subnets.iter().find(|s| s.contains(&ip)) {
                return Err(conflict(
                    network,
                    format!(
                        "peer address {ip} is inside member subnet {}/{}",
                        s.addr, s.prefix
                    ),
                ));
            }
        }
        for peer in &spec.peers {
            if let Some(q) = existing
                .iter()
                .find(|q| (q.ip == peer.ip) != (q.public_key == peer.public_key))
            {
                return Err(conflict(
                    network,
                    format!(
                        "peer {} at {} clashes with peer {} at {} of the mesh",
                        peer.public_key, peer.ip, q.public_key, q.ip
                    ),
                ));
            }
        }
        m.members.push(MeshMember {
            reservation: r.id,
            node_id: r.node_id,
            subnet: ip_range.to_string(),
            peers: spec.peers.clone(),
            wireguard: previous
                .filter(|p| p.subnet == ip_range)
                .and_then(|p| p.wireguard),
        });
        put_mesh(ctx, &m);
    }
    Ok(())
}

/// Reservation `r` leaves every mesh it is a member of (as its deployment names them) but those
/// its next deployment `next` keeps (an update: [`join`] replaces the entry).
pub(crate) fn leave<E>(ctx: &mut Context<E>, r: &Reservation, next: Option<&crate::Deployment>) {
    let kept = |network: &str| {
        next.is_some_and(|d| {
            d.workloads.iter().any(|w| {
                w.name == network && matches!(w.spec, WorkloadSpec::Network { mesh: Some(_), .. })
            })
        })
    };
    for (network, _, _) in mesh_networks(r).filter(|(n, _, _)| !kept(n)) {
        if let Some(mut m) = mesh(ctx, &r.owner, network) {
            m.members.retain(|x| x.reservation != r.id);
            put_mesh(ctx, &m);
        }
    }
}

/// The hosting node reported its side of the mesh networks in `results`: keep key and endpoint.
pub(crate) fn record_endpoints<E>(
    ctx: &mut Context<E>,
    r: &Reservation,
    results: &[crate::WorkloadResult],
) {
    for (network, _, _) in mesh_networks(r) {
        let reported = results.iter().find_map(|x| match &x.data {
            ResultData::Network { wireguard, .. } if x.name == network => wireguard.clone(),
            _ => None,
        });
        let Some(reported) = reported else { continue };
        if let Some(mut m) = mesh(ctx, &r.owner, network) {
            if let Some(member) = m.members.iter_mut().find(|x| x.reservation == r.id) {
                if member.wireguard.as_ref() != Some(&reported) {
                    member.wireguard = Some(reported);
                    put_mesh(ctx, &m);
                }
            }
        }
    }
}

/// The meshes the reservations `hosted` take part in, once each (for a node's snapshot).
pub fn meshes_of<E>(ctx: &Context<E>, hosted: &[Reservation]) -> Vec<Mesh> {
    let mut out: Vec<Mesh> = Vec::new();
    for r in hosted.iter().filter(|r| !r.is_deleted()) {
        for (network, _, _) in mesh_networks(r) {
            if out
                .iter()
                .any(|m| m.owner == r.owner && m.network == network)
            {
                continue;
            }
            out.extend(mesh(ctx, &r.owner, network));
        }
    }
    out
}
