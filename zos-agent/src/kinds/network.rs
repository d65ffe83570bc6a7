//! `network`: a private network of the reservation's owner on this node, one Linux bridge per
//! (owner, network name) shared by the owner's reservations (see [`crate::provision::network`]),
//! and, when it asks for egress, a router namespace giving it a way out
//! ([`crate::provision::egress`]). A network in a mesh (one network across nodes) gets the same
//! router, with a WireGuard interface whose peers are the mesh's other members and the owner's
//! own peers, as the chain records them ([`crate::provision::mesh`]). Containers join it by
//! naming it; the container kind reads the range and the gateway from this kind's result.

use super::{Outcome, ReservationPass, Secrets, WorkloadKind};
use crate::{
    agent::MeshConfig,
    provision::{
        egress::{gateway_of, run, Egress, EgressLink},
        mesh::{self, WgInterface, WgPeer},
        network::Networks,
    },
};
use async_trait::async_trait;
use gridchain_primitives::wireguard::{self, WireguardSecret};
use gridchain_runtime::{
    reservations::{Mesh, Reservation, ResultData, WireguardEndpoint, Workload, WorkloadSpec},
    tfgrid::Cidr,
};
use std::{collections::BTreeSet, net::IpAddr};

pub struct NetworkKind {
    networks: Networks,
    egress: Egress,
    secrets: Secrets,
    mesh: MeshConfig,
}

impl NetworkKind {
    pub fn new(
        networks: Networks,
        egress: Egress,
        secrets: Secrets,
        mesh: MeshConfig,
    ) -> NetworkKind {
        NetworkKind {
            networks,
            egress,
            secrets,
            mesh,
        }
    }

    /// The address peers reach this node at: configured, or the source address of its route
    /// towards the internet (a route lookup; nothing is sent).
    fn endpoint_address(&self) -> Result<IpAddr, String> {
        if let Some(addr) = self.mesh.endpoint {
            return Ok(addr);
        }
        let route = run("ip", &["-4", "route", "get", "192.0.2.1"]).map_err(|e| {
            format!("no route out to take a mesh endpoint from (give --mesh-endpoint): {e}")
        })?;
        let mut words = route.split_whitespace();
        words
            .find(|w| *w == "src")
            .and(words.next())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("no source address in {route:?}; give --mesh-endpoint"))
    }

    /// The node's side of `mesh` on `link`'s router: WireGuard up with every other member
    /// that reported its key and every owner's peer; returns what the node reports.
    async fn ensure_mesh(
        &self,
        r: &Reservation,
        w: &Workload,
        link: &EgressLink,
        record: &Mesh,
    ) -> Result<WireguardEndpoint, String> {
        let secret = WireguardSecret::derive(
            &self.secrets.node_seed,
            &wireguard::node_context(&self.secrets.genesis_hash.0, &r.owner.0, &w.name),
        );
        let port = u16::try_from(u32::from(self.mesh.port_base) + u32::from(link.link))
            .map_err(|_| "this node has no WireGuard port left for another mesh".to_string())?;
        let endpoint = match self.endpoint_address()? {
            IpAddr::V4(a) => format!("{a}:{port}"),
            IpAddr::V6(a) => format!("[{a}]:{port}"),
        };
        let mut peers: Vec<WgPeer> = record
            .members
            .iter()
            .filter(|m| m.reservation != r.id)
            .filter_map(|m| {
                let wg = m.wireguard.as_ref()?;
                Some(WgPeer {
                    public_key: wg.public_key,
                    endpoint: Some(wg.endpoint.clone()),
                    allowed: vec![m.subnet.clone()],
                })
            })
            .collect();
        peers.extend(record.peers().into_iter().map(|p| WgPeer {
            public_key: p.public_key,
            endpoint: None,
            allowed: vec![format!("{}/32", p.ip)],
        }));
        let (namespace, name) = (
            self.egress.namespace(&link.bridge),
            self.egress.mesh_interface(&link),
        );
        let private_key = secret.to_base64();
        tokio::task::spawn_blocking(move || {
            mesh::ensure(&WgInterface {
                namespace: &namespace,
                name: &name,
                private_key: &private_key,
                listen_port: port,
                peers: &peers,
            })
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("mesh: {e}"))?;
        Ok(WireguardEndpoint {
            public_key: secret.public(),
            endpoint,
        })
    }

    async fn ensure_network(
        &self,
        r: &Reservation,
        w: &Workload,
        meshes: &[Mesh],
    ) -> Result<ResultData, String> {
        let WorkloadSpec::Network {
            ip_range,
            egress,
            mesh: mesh_spec,
        } = &w.spec
        else {
            return Err(format!("workload {} is not a network", w.name));
        };
        let cidr = Cidr::parse(ip_range).ok_or_else(|| format!("invalid ip range {ip_range}"))?;
        let bridge = self
            .networks
            .bridge_for(&r.owner, &w.name)
            .await
            .map_err(|e| e.to_string())?;
        self.networks
            .ensure_bridge(&bridge)
            .await
            .map_err(|e| e.to_string())?;
        // A router no longer asked for goes in `remove_unwanted`: another reservation of the
        // same owner may still ask for it on this (shared) network.
        if !*egress && mesh_spec.is_none() {
            return Ok(ResultData::Network {
                subnet: ip_range.clone(),
                gateway: None,
                wireguard: None,
            });
        }
        let (gateway, prefix) = gateway_of(&cidr)?;
        let link = EgressLink {
            link: self
                .networks
                .link_net_for(&bridge)
                .await
                .map_err(|e| e.to_string())?,
            bridge,
            gateway,
            prefix,
            out: *egress,
        };
        {
            let (egress, link) = (self.egress.clone(), link.clone());
            tokio::task::spawn_blocking(move || egress.ensure(&link))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("egress: {e}"))?;
        }
        let wireguard = match mesh_spec {
            Some(_) => {
                let record = meshes
                    .iter()
                    .find(|m| m.owner == r.owner && m.network == w.name)
                    .ok_or_else(|| format!("the chain has no mesh {} of this owner", w.name))?;
                Some(self.ensure_mesh(r, w, &link, record).await?)
            }
            None => {
                let (ns, name) = (
                    self.egress.namespace(&link.bridge),
                    self.egress.mesh_interface(&link),
                );
                tokio::task::spawn_blocking(move || mesh::remove(&ns, &name))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("mesh: {e}"))?;
                None
            }
        };
        Ok(ResultData::Network {
            subnet: ip_range.clone(),
            gateway: Some(gateway.to_string()),
            wireguard,
        })
    }
}

#[async_trait]
impl WorkloadKind for NetworkKind {
    fn kind(&self) -> &'static str {
        "network"
    }

    async fn remove_unwanted(&self, live: &[&Reservation]) -> anyhow::Result<usize> {
        // Names come from the agent's name book, never from the names users chose.
        let mut wanted = BTreeSet::new();
        let mut routed = BTreeSet::new();
        for r in live {
            for w in &r.deployment.workloads {
                if let WorkloadSpec::Network { egress, mesh, .. } = &w.spec {
                    let bridge = self.networks.bridge_for(&r.owner, &w.name).await?;
                    if *egress || mesh.is_some() {
                        routed.insert(bridge.clone());
                    }
                    wanted.insert(bridge);
                }
            }
        }
        let mut removed = 0;
        let egress = self.egress.clone();
        for bridge in tokio::task::spawn_blocking(move || egress.routed_bridges()).await?? {
            if !routed.contains(&bridge) {
                let link = self.networks.link_net_of(&bridge).await;
                let egress = self.egress.clone();
                tokio::task::spawn_blocking(move || egress.remove(&bridge, link)).await??;
                removed += 1;
            }
        }
        for bridge in self.networks.bridges().await? {
            if !wanted.contains(&bridge) {
                // Its router too, if an agent died between the two.
                let link = self.networks.link_net_of(&bridge).await;
                let (egress, name) = (self.egress.clone(), bridge.clone());
                tokio::task::spawn_blocking(move || egress.remove(&name, link)).await??;
                self.networks.remove_bridge(&bridge).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn ensure(&self, w: &Workload, pass: &mut ReservationPass<'_>) -> Outcome {
        self.ensure_network(pass.reservation, w, pass.meshes)
            .await
            .into()
    }
}
