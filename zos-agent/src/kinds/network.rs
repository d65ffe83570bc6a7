//! `network`: a private network of the reservation's owner on this node, one Linux bridge per
//! (owner, network name) shared by the owner's reservations (see [`crate::provision::network`]),
//! and, when it asks for egress, a router namespace giving it a way out
//! ([`crate::provision::egress`]). Containers join it by naming it; the container kind reads the
//! range and the gateway from this kind's result.

use super::{Outcome, ReservationPass, WorkloadKind};
use crate::provision::{
    egress::{gateway_of, Egress, EgressLink},
    network::Networks,
};
use async_trait::async_trait;
use gridchain_runtime::{
    reservations::{Reservation, ResultData, Workload, WorkloadSpec},
    tfgrid::Cidr,
};
use std::collections::BTreeSet;

pub struct NetworkKind {
    networks: Networks,
    egress: Egress,
}

impl NetworkKind {
    pub fn new(networks: Networks, egress: Egress) -> NetworkKind {
        NetworkKind { networks, egress }
    }

    async fn ensure_network(&self, r: &Reservation, w: &Workload) -> Result<ResultData, String> {
        let WorkloadSpec::Network { ip_range, egress } = &w.spec else {
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
        let gateway = match egress {
            false => None,
            true => {
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
                };
                let egress = self.egress.clone();
                tokio::task::spawn_blocking(move || egress.ensure(&link))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("egress: {e}"))?;
                Some(gateway.to_string())
            }
        };
        Ok(ResultData::Network {
            subnet: ip_range.clone(),
            gateway,
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
                if let WorkloadSpec::Network { egress, .. } = &w.spec {
                    let bridge = self.networks.bridge_for(&r.owner, &w.name).await?;
                    if *egress {
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
        self.ensure_network(pass.reservation, w).await.into()
    }
}
