//! `publicIp`: the public IPv4 address the chain assigned to the workload (from the node's
//! farm, see `Reservation::public_ips`), routed to the container it names (see
//! [`crate::provision::public_ip`]). After containers: it needs the container's process.

use super::{Outcome, ReservationPass, WorkloadKind};
use crate::provision::{container::Containers, network::Networks, public_ip::PublicIps};
use async_trait::async_trait;
use gridchain_runtime::reservations::{Reservation, ResultData, Workload, WorkloadSpec};
use std::{collections::BTreeSet, net::Ipv4Addr};

pub struct PublicIpKind {
    containers: Containers,
    networks: Networks,
    public_ips: PublicIps,
}

impl PublicIpKind {
    pub fn new(containers: Containers, networks: Networks, public_ips: PublicIps) -> Self {
        PublicIpKind {
            containers,
            networks,
            public_ips,
        }
    }

    /// The address (without its prefix length) and gateway the chain assigned to `w`.
    fn assigned(r: &Reservation, w: &Workload) -> Result<(Ipv4Addr, Ipv4Addr), String> {
        let a = r
            .public_ips
            .iter()
            .find(|a| a.workload == w.name)
            .ok_or_else(|| format!("the chain assigned no public IP to {}", w.name))?;
        let ip = a.ip.split('/').next().unwrap_or_default();
        let ip = ip
            .parse()
            .map_err(|_| format!("{} is not an IPv4 address", a.ip))?;
        let gateway = a
            .gateway
            .parse()
            .map_err(|_| format!("gateway {} is not an IPv4 address", a.gateway))?;
        Ok((ip, gateway))
    }

    async fn ensure_ip(
        &self,
        w: &Workload,
        pass: &ReservationPass<'_>,
    ) -> Result<ResultData, String> {
        let WorkloadSpec::PublicIp { container } = &w.spec else {
            return Err(format!("workload {} is not a public IP", w.name));
        };
        let (ip, gateway) = Self::assigned(pass.reservation, w)?;
        let Some(ResultData::Container { container_id, .. }) = pass.ready(container) else {
            return Err(format!("container {container} is not running"));
        };
        let pid = self
            .containers
            .pid(container_id)
            .await
            .map_err(|e| e.to_string())?;
        let host_if = self
            .networks
            .public_if_for(ip)
            .await
            .map_err(|e| e.to_string())?;
        let public_ips = self.public_ips.clone();
        tokio::task::spawn_blocking(move || public_ips.attach(pid, &host_if, ip, gateway))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("public IP {ip}: {e}"))?;
        Ok(ResultData::PublicIp {
            ip: ip.to_string(),
            container: container.clone(),
        })
    }
}

#[async_trait]
impl WorkloadKind for PublicIpKind {
    fn kind(&self) -> &'static str {
        "publicIp"
    }

    /// After the containers it routes to.
    fn stage(&self) -> u8 {
        2
    }

    async fn remove_unwanted(&self, live: &[&Reservation]) -> anyhow::Result<usize> {
        let wanted: BTreeSet<Ipv4Addr> = live
            .iter()
            .flat_map(|r| {
                r.deployment
                    .workloads
                    .iter()
                    .filter(|w| w.spec.kind() == self.kind())
                    .filter_map(|w| Self::assigned(r, w).ok())
                    .map(|(ip, _)| ip)
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut removed = 0;
        for (ip, host_if) in self.networks.public_ifs().await {
            if !wanted.contains(&ip) {
                let public_ips = self.public_ips.clone();
                tokio::task::spawn_blocking(move || public_ips.detach(&host_if, ip)).await??;
                self.networks.forget_public_if(ip).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn ensure(&self, w: &Workload, pass: &mut ReservationPass<'_>) -> Outcome {
        self.ensure_ip(w, pass).await.into()
    }
}
