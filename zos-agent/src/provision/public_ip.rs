//! A farm's public IPv4 address routed to a container on this node.
//!
//! ```text
//!  internet ── node uplink (proxy ARP for 198.51.100.70) ── route 198.51.100.70/32 dev gcpN
//!                                                              │ veth, proxy ARP on gcpN
//!                                            container pub0 198.51.100.70/32,
//!                                            default via 169.254.1.1 dev pub0
//! ```
//!
//! The address is routed, not bridged: the node answers ARP for it on its uplink (a proxy
//! neighbour entry on the interface that reaches the farm's gateway) and routes it down a veth
//! into the container, whose default route goes back up the same veth (through a link-local
//! next hop that the node's end answers by proxy ARP). Nothing is NATed: the container sends and
//! receives as its public address. The node's filter chain for the veth lets anything in, lets
//! the container out to anything but the denied ranges (as for egress), and drops what the
//! container sends to the node itself.
//!
//! Names: host ends `gcp<counter>` from the agent's name book (key `pubip/<address>`), carrying
//! the node's alias. Done with `ip` (`ip link … netns <pid>`, `nsenter` into the container's
//! network namespace) and `iptables`, each step idempotent.

use super::{
    egress::{link_alias, link_chain, run},
    network::{disable_ipv6, NetworkError},
};
use std::net::Ipv4Addr;

/// The container's next hop: link-local, answered by the node's end of the veth.
const NEXT_HOP: &str = "169.254.1.1";

#[derive(Clone)]
pub struct PublicIps {
    alias: String,
    deny: Vec<String>,
}

impl PublicIps {
    pub fn new(node_tag: &str, deny: Vec<String>) -> PublicIps {
        PublicIps {
            alias: format!("gridchain node {node_tag}"),
            deny,
        }
    }

    /// Routes `ip` to the container whose init process is `pid`, through host interface
    /// `host_if`; `gateway` is the farm's gateway for it (the node answers for `ip` on the
    /// interface that reaches it).
    pub fn attach(
        &self,
        pid: u32,
        host_if: &str,
        ip: Ipv4Addr,
        gateway: Ipv4Addr,
    ) -> Result<(), NetworkError> {
        let pid_s = pid.to_string();
        let in_container = |args: &[&str]| {
            let net = format!("--net=/proc/{pid}/ns/net");
            run("nsenter", &[&[net.as_str(), "ip"][..], args].concat())
        };
        let attached = link_alias(host_if).as_deref() == Some(self.alias.as_str())
            && in_container(&["-o", "-4", "addr", "show", "dev", "pub0"])
                .is_ok_and(|out| out.contains(&format!(" {ip}/32 ")));
        if !attached {
            // A host end left from an earlier container (replaced) or attempt.
            if link_alias(host_if).as_deref() == Some(self.alias.as_str()) {
                run("ip", &["link", "del", host_if])?;
            } else if run("ip", &["link", "show", "dev", host_if]).is_ok() {
                return Err(NetworkError(format!(
                    "interface {host_if} exists and is not this node's; refusing to touch it"
                )));
            }
            let _ = in_container(&["link", "del", "pub0"]);
            run(
                "ip",
                &[
                    "link", "add", host_if, "type", "veth", "peer", "name", "pub0", "netns", &pid_s,
                ],
            )?;
            run("ip", &["link", "set", host_if, "alias", &self.alias, "up"])?;
            disable_ipv6(host_if);
            std::fs::write(format!("/proc/sys/net/ipv4/conf/{host_if}/proxy_arp"), "1")
                .map_err(|e| NetworkError(format!("proxy ARP on {host_if}: {e}")))?;
            in_container(&["addr", "replace", &format!("{ip}/32"), "dev", "pub0"])?;
            in_container(&["link", "set", "pub0", "up"])?;
            in_container(&["route", "replace", NEXT_HOP, "dev", "pub0", "scope", "link"])?;
            in_container(&[
                "route", "replace", "default", "via", NEXT_HOP, "dev", "pub0",
            ])?;
        }
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(|e| NetworkError(format!("cannot turn on IPv4 forwarding: {e}")))?;
        run(
            "ip",
            &["route", "replace", &format!("{ip}/32"), "dev", host_if],
        )?;
        let uplink = uplink_to(gateway)?;
        run(
            "ip",
            &["neigh", "replace", "proxy", &ip.to_string(), "dev", &uplink],
        )?;
        link_chain(host_if, &self.deny, true, true)
    }

    /// Takes `ip` away from whatever container has it behind `host_if`; missing parts are fine.
    pub fn detach(&self, host_if: &str, ip: Ipv4Addr) -> Result<(), NetworkError> {
        let proxies = run("ip", &["neigh", "show", "proxy"])?;
        for line in proxies.lines() {
            let mut words = line.split_whitespace();
            if words.next() == Some(ip.to_string().as_str()) && words.next() == Some("dev") {
                if let Some(dev) = words.next() {
                    run(
                        "ip",
                        &["neigh", "del", "proxy", &ip.to_string(), "dev", dev],
                    )?;
                }
            }
        }
        link_chain(host_if, &self.deny, true, false)?;
        if link_alias(host_if).as_deref() == Some(self.alias.as_str()) {
            run("ip", &["link", "del", host_if])?;
        }
        Ok(())
    }
}

/// The interface the node reaches `gateway` through.
fn uplink_to(gateway: Ipv4Addr) -> Result<String, NetworkError> {
    let route = run("ip", &["-o", "route", "get", &gateway.to_string()])?;
    let mut words = route.split_whitespace();
    while let Some(word) = words.next() {
        if word == "dev" {
            if let Some(dev) = words.next() {
                return Ok(dev.to_string());
            }
        }
    }
    Err(NetworkError(format!(
        "no interface reaches the farm's gateway {gateway}"
    )))
}
