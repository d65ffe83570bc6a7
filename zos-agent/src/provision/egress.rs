//! A way out for a private network: a router namespace per network that asks for egress,
//! NAT twice, and nothing private reachable.
//!
//! ```text
//!  container eth0 (10.240.0.2, default via .1)
//!     └─ bridge gcbrN ── veth gceNl ─┐
//!                                    │ router netns gc-<node tag>-gcbrN:
//!                                    │   gceNl 10.240.0.1/24 (the network's gateway)
//!                                    │   gceNr 100.127.x.y+2/30, default via x.y+1
//!                                    │   MASQUERADE out of gceNr
//!                                    └─ veth gceNr ── gceNh 100.127.x.y+1/30 (node's namespace)
//!                                         FORWARD -i gceNh → chain gceNh: private ranges DROP,
//!                                         the rest ACCEPT; replies back; INPUT -i gceNh DROP;
//!                                         MASQUERADE -s 100.127.x.y/30 out of the uplink
//! ```
//!
//! Why a namespace per network: two owners may both choose 10.240.0.0/24. Their bridges carry
//! no address in the node's namespace, and neither does the router's side, so nothing there
//! routes a tenant range: a reply is de-NATed by the node to the router's link address, and by
//! the router (its own routing table, its own conntrack) to the container. No reply can reach
//! the other owner's network with the same range.
//!
//! What a container may reach through it: anything but the ranges in the deny list (by default
//! every private, shared, link-local, loopback and multicast IPv4 range: the farmer's LAN, a
//! cloud's metadata service, other tenants' link nets) and nothing of the node itself (INPUT is
//! dropped from the router's link). IPv4 only.
//!
//! Names: the router namespace is `gc-<node tag>-<bridge>`, its links `gce<n>l` (on the bridge)
//! and `gce<n>h`/`gce<n>r` (node/router ends of the link net), where `<n>` is the bridge's own
//! counter, so they are unique wherever the bridge name is. Link nets are /30s of 100.127.0.0/16,
//! allocated per bridge in the agent's name book. Created and removed with `ip` and `iptables`
//! (iproute2), as a farmer would by hand; every step is idempotent, so an agent killed half-way
//! finishes the job on its next pass, and a router whose bridge is gone is removed.

use super::network::{disable_ipv6, iptables, rule, NetworkError, BRIDGE_PREFIX};
use gridchain_runtime::tfgrid::Cidr;
use std::{net::Ipv4Addr, process::Command};

/// Where link nets come from; a network range overlapping it cannot have egress.
pub const LINK_NETS: (Ipv4Addr, u8) = (Ipv4Addr::new(100, 127, 0, 0), 16);

/// Destinations a container never reaches through egress unless the farmer says otherwise
/// (`--egress-deny`).
pub const DEFAULT_DENY: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/3",
];

/// One network's way out, as [`Egress::ensure`] sets it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressLink {
    /// The bridge of the network.
    pub bridge: String,
    /// The network's gateway address (its range's first host address) and prefix length.
    pub gateway: Ipv4Addr,
    pub prefix: u8,
    /// Index of the link net (a /30 of [`LINK_NETS`]); also this router's mesh port offset.
    pub link: u16,
    /// A way out (the link net to the node, NAT); without it the router only joins the
    /// network to its mesh.
    pub out: bool,
}

impl EgressLink {
    /// `gce<counter of the bridge>`.
    fn stem(&self) -> String {
        format!(
            "gce{}",
            self.bridge
                .strip_prefix(BRIDGE_PREFIX)
                .unwrap_or(&self.bridge)
        )
    }

    fn link_net(&self) -> (Ipv4Addr, Ipv4Addr) {
        let base = u32::from(LINK_NETS.0) + u32::from(self.link) * 4;
        (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
    }
}

/// The gateway of a network with range `cidr`: its first host address.
pub fn gateway_of(cidr: &Cidr) -> Result<(Ipv4Addr, u8), String> {
    let std::net::IpAddr::V4(addr) = cidr.addr else {
        return Err("egress is IPv4 only".into());
    };
    if cidr.prefix > 29 {
        return Err(format!(
            "range {addr}/{} is too small for a gateway and containers (at most /29)",
            cidr.prefix
        ));
    }
    let mask = u32::MAX << (32 - u32::from(cidr.prefix));
    let (lo, hi) = (u32::from(addr) & mask, u32::from(addr) | !mask);
    let (links_lo, links_hi) = {
        let m = u32::MAX << (32 - u32::from(LINK_NETS.1));
        let b = u32::from(LINK_NETS.0) & m;
        (b, b | !m)
    };
    if lo <= links_hi && links_lo <= hi {
        return Err(format!(
            "range {addr}/{} overlaps the node's link nets {}/{}; choose another for egress",
            cidr.prefix, LINK_NETS.0, LINK_NETS.1
        ));
    }
    Ok((Ipv4Addr::from(lo + 1), cidr.prefix))
}

#[derive(Clone)]
pub struct Egress {
    node_tag: String,
    /// Interface alias of this node's links (as on its bridges).
    alias: String,
    deny: Vec<String>,
}

impl Egress {
    pub fn new(node_tag: &str, deny: Vec<String>) -> Egress {
        Egress {
            node_tag: node_tag.to_string(),
            alias: format!("gridchain node {node_tag}"),
            deny,
        }
    }

    /// The WireGuard interface of `link`'s router when its network is in a mesh:
    /// `gw<first 6 of the node tag><counter of the bridge>`. The node tag is in it because
    /// wireguard-go's control socket (`/var/run/wireguard/<name>.sock`) is one per machine,
    /// not per namespace: two agents on one machine must not share a name.
    pub fn mesh_interface(&self, link: &EgressLink) -> String {
        let tag: String = self
            .node_tag
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(6)
            .collect();
        format!("gw{tag}{}", &link.stem()["gce".len()..])
    }

    pub fn namespace(&self, bridge: &str) -> String {
        format!("gc-{}-{bridge}", self.node_tag)
    }

    /// Bridges that have a router namespace (from `ip netns list`).
    pub fn routed_bridges(&self) -> Result<Vec<String>, NetworkError> {
        let prefix = format!("gc-{}-", self.node_tag);
        let out = run("ip", &["netns", "list"])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter_map(|ns| ns.strip_prefix(&prefix))
            .filter(|b| b.starts_with(BRIDGE_PREFIX))
            .map(str::to_string)
            .collect())
    }

    /// Sets up (or finishes setting up) `link`'s router; what exists already is kept.
    pub fn ensure(&self, link: &EgressLink) -> Result<(), NetworkError> {
        let ns = self.namespace(&link.bridge);
        let stem = link.stem();
        let (lan, host, router) = (format!("{stem}l"), format!("{stem}h"), format!("{stem}r"));
        let (host_ip, router_ip) = link.link_net();
        // The node forwards (Docker turns this on too; a node without Docker needs it).
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(|e| NetworkError(format!("cannot turn on IPv4 forwarding: {e}")))?;
        if !self.routed_bridges()?.contains(&link.bridge) {
            run("ip", &["netns", "add", &ns])?;
        }
        let in_ns = |args: &[&str]| run("ip", &[&["-n", ns.as_str()][..], args].concat());
        in_ns(&["link", "set", "lo", "up"])?;
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_forward=1",
            ],
        )?;
        // The router's leg on the bridge.
        if !link_exists(&lan) {
            // The peer is made in the router's namespace directly, named there.
            let _ = in_ns(&["link", "del", "lan"]);
            run(
                "ip",
                &[
                    "link", "add", &lan, "type", "veth", "peer", "name", "lan", "netns", &ns,
                ],
            )?;
        }
        run(
            "ip",
            &[
                "link",
                "set",
                &lan,
                "master",
                &link.bridge,
                "alias",
                &self.alias,
                "up",
            ],
        )?;
        disable_ipv6(&lan);
        in_ns(&[
            "addr",
            "replace",
            &format!("{}/{}", link.gateway, link.prefix),
            "dev",
            "lan",
        ])?;
        in_ns(&["link", "set", "lan", "up"])?;
        // Nothing in the router itself answers the containers but forwarding.
        ns_rule(&ns, "filter", "INPUT", &["-i", "lan", "-j", "DROP"])?;
        if !link.out {
            // Asked for no way out (any more): no link net, no NAT, nothing routed.
            let (host_ip, _) = link.link_net();
            self.remove_way_out(&link.bridge, link.link, &host_ip)?;
            return Ok(());
        }
        // The link net to the node.
        if !link_exists(&host) {
            let _ = in_ns(&["link", "del", &router]);
            run(
                "ip",
                &[
                    "link", "add", &host, "type", "veth", "peer", "name", &router, "netns", &ns,
                ],
            )?;
        }
        run("ip", &["link", "set", &host, "alias", &self.alias, "up"])?;
        disable_ipv6(&host);
        run(
            "ip",
            &["addr", "replace", &format!("{host_ip}/30"), "dev", &host],
        )?;
        in_ns(&[
            "addr",
            "replace",
            &format!("{router_ip}/30"),
            "dev",
            &router,
        ])?;
        in_ns(&["link", "set", &router, "up"])?;
        in_ns(&["route", "replace", "default", "via", &host_ip.to_string()])?;
        // NAT in the router: the node sees only the router's link address.
        ns_rule(
            &ns,
            "nat",
            "POSTROUTING",
            &["-o", &router, "-j", "MASQUERADE"],
        )?;
        // The way out is for this node's containers: a mesh peer does not exit through it.
        ns_rule(
            &ns,
            "filter",
            "FORWARD",
            &["!", "-i", "lan", "-o", &router, "-j", "DROP"],
        )?;
        self.node_rules(&host, &format!("{host_ip}/30"), true)
    }

    /// Removes the link net and the node's rules of `bridge`'s router, keeping the router.
    fn remove_way_out(
        &self,
        bridge: &str,
        link: u16,
        host_ip: &Ipv4Addr,
    ) -> Result<(), NetworkError> {
        let probe = EgressLink {
            bridge: bridge.to_string(),
            gateway: Ipv4Addr::UNSPECIFIED,
            prefix: 0,
            link,
            out: false,
        };
        let host = format!("{}h", probe.stem());
        let net = Ipv4Addr::from(u32::from(*host_ip) - 1);
        self.node_rules(&host, &format!("{net}/30"), false)?;
        if link_alias(&host).as_deref() == Some(self.alias.as_str()) {
            run("ip", &["link", "del", &host])?;
        }
        Ok(())
    }

    /// The node's side: its filter chain for the link and NAT out of the uplink.
    fn node_rules(&self, host: &str, link_net: &str, present: bool) -> Result<(), NetworkError> {
        link_chain(host, &self.deny, false, present)?;
        nat_rule(
            &["-s", link_net, "!", "-o", host, "-j", "MASQUERADE"],
            present,
        )
    }

    /// Removes `bridge`'s router (namespace, links, rules); missing parts are fine. `link` is
    /// its link net if the book still has it.
    pub fn remove(&self, bridge: &str, link: Option<u16>) -> Result<(), NetworkError> {
        let probe = EgressLink {
            bridge: bridge.to_string(),
            gateway: Ipv4Addr::UNSPECIFIED,
            prefix: 0,
            link: link.unwrap_or(0),
            out: false,
        };
        let stem = probe.stem();
        let (lan, host) = (format!("{stem}l"), format!("{stem}h"));
        // The filter chain is named after the link; only the NAT rule needs its net.
        link_chain(&host, &self.deny, false, false)?;
        if link.is_some() {
            let (host_ip, _) = probe.link_net();
            let net = Ipv4Addr::from(u32::from(host_ip) - 1);
            nat_rule(
                &[
                    "-s",
                    &format!("{net}/30"),
                    "!",
                    "-o",
                    &host,
                    "-j",
                    "MASQUERADE",
                ],
                false,
            )?;
        }
        for name in [&lan, &host] {
            if link_alias(name).as_deref() == Some(self.alias.as_str()) {
                run("ip", &["link", "del", name])?;
            }
        }
        if self.routed_bridges()?.iter().any(|b| b == bridge) {
            run("ip", &["netns", "del", &self.namespace(bridge)])?;
        }
        Ok(())
    }
}

/// Makes the node's filter rules for a link to workloads (host end `host`) present or absent:
/// a chain named after the link that drops the `deny` destinations and accepts the rest, for
/// what comes from the workloads; replies back to them (and, if `inbound`, anything new);
/// nothing from the workloads to the node itself.
pub(crate) fn link_chain(
    host: &str,
    deny: &[String],
    inbound: bool,
    present: bool,
) -> Result<(), NetworkError> {
    let forward = if iptables(&["-n", "-L", "DOCKER-USER"]).is_ok() {
        "DOCKER-USER"
    } else {
        "FORWARD"
    };
    let chain = host.to_string();
    if present {
        let fill = |name: &str| -> Result<(), NetworkError> {
            for range in deny {
                iptables(&["-A", name, "-d", range, "-j", "DROP"])?;
            }
            iptables(&["-A", name, "-j", "ACCEPT"])
        };
        let wanted: Vec<String> = deny
            .iter()
            .map(|range| format!("-A {chain} -d {range} -j DROP"))
            .chain([format!("-A {chain} -j ACCEPT")])
            .collect();
        match run("iptables", &["-w", "-S", &chain]) {
            Ok(listed) => {
                let rules: Vec<&str> = listed.lines().filter(|l| l.starts_with("-A ")).collect();
                if rules != wanted {
                    // The deny list changed: the new chain is built beside the old one and
                    // swapped in, so no packet ever meets a half-built (permissive) chain.
                    let next = format!("{chain}n");
                    let _ = iptables(&["-F", &next]);
                    let _ = iptables(&["-X", &next]);
                    iptables(&["-N", &next])?;
                    fill(&next)?;
                    rule(forward, &["-i", host, "-j", &next], true)?;
                    rule(forward, &["-i", host, "-j", &chain], false)?;
                    iptables(&["-F", &chain])?;
                    iptables(&["-X", &chain])?;
                    iptables(&["-E", &next, &chain])?;
                }
            }
            Err(_) => {
                iptables(&["-N", &chain])?;
                fill(&chain)?;
            }
        }
    }
    rule(forward, &["-i", host, "-j", &chain], present)?;
    let replies = [
        "-o",
        host,
        "-m",
        "conntrack",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-j",
        "ACCEPT",
    ];
    let open = ["-o", host, "-j", "ACCEPT"];
    rule(forward, if inbound { &open } else { &replies }, present)?;
    rule("INPUT", &["-i", host, "-j", "DROP"], present)?;
    if !present && iptables(&["-n", "-L", &chain]).is_ok() {
        iptables(&["-F", &chain])?;
        iptables(&["-X", &chain])?;
    }
    Ok(())
}

/// Appends `rule` to `chain` of `table` in namespace `ns` unless it is there.
pub(crate) fn ns_rule(
    ns: &str,
    table: &str,
    chain: &str,
    rule: &[&str],
) -> Result<(), NetworkError> {
    let args = |op: &'static str| -> Vec<&str> {
        [
            "netns", "exec", ns, "iptables", "-w", "-t", table, op, chain,
        ]
        .into_iter()
        .chain(rule.iter().copied())
        .collect()
    };
    if run("ip", &args("-C")).is_err() {
        run("ip", &args("-A"))?;
    }
    Ok(())
}

pub(crate) fn link_exists(name: &str) -> bool {
    run("ip", &["link", "show", "dev", name]).is_ok()
}

/// The alias of interface `name`, if it exists and has one.
pub(crate) fn link_alias(name: &str) -> Option<String> {
    let out = run("ip", &["-o", "link", "show", "dev", name]).ok()?;
    out.split(" alias ")
        .nth(1)
        .map(|rest| rest.trim().trim_end_matches('\\').trim().to_string())
}

fn nat_rule(rule: &[&str], present: bool) -> Result<(), NetworkError> {
    let exists = iptables(&[&["-t", "nat", "-C", "POSTROUTING"][..], rule].concat()).is_ok();
    match (present, exists) {
        (true, false) => iptables(&[&["-t", "nat", "-A", "POSTROUTING"][..], rule].concat()),
        (false, true) => iptables(&[&["-t", "nat", "-D", "POSTROUTING"][..], rule].concat()),
        _ => Ok(()),
    }
}

/// Runs a command; its stdout, or its stderr as the error.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, NetworkError> {
    run_with_input(program, args, None)
}

/// [`run`] with `input` written to the command's stdin (e.g. a secret it must not get in its
/// arguments).
pub(crate) fn run_with_input(
    program: &str,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, NetworkError> {
    use std::{io::Write, process::Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetworkError(format!("cannot run {program}: {e}")))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| NetworkError(format!("{program}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetworkError(format!("{program}: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetworkError(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    #[test]
    fn the_gateway_is_the_first_host_address_and_link_nets_are_kept_apart() {
        assert_eq!(
            gateway_of(&cidr("10.240.0.0/24")),
            Ok((Ipv4Addr::new(10, 240, 0, 1), 24))
        );
        assert_eq!(
            gateway_of(&cidr("10.240.0.77/24")),
            Ok((Ipv4Addr::new(10, 240, 0, 1), 24))
        );
        assert!(gateway_of(&cidr("10.240.0.0/30")).is_err());
        assert!(gateway_of(&cidr("100.127.3.0/24")).is_err());
        assert!(gateway_of(&cidr("100.0.0.0/8")).is_err());
        assert!(gateway_of(&cidr("100.128.0.0/24")).is_ok());
    }

    #[test]
    fn link_names_and_nets_follow_the_bridge() {
        let link = EgressLink {
            bridge: "gcbr1z".into(),
            gateway: Ipv4Addr::new(10, 0, 0, 1),
            prefix: 24,
            link: 65,
            out: true,
        };
        assert_eq!(link.stem(), "gce1z");
        assert_eq!(
            link.link_net(),
            (Ipv4Addr::new(100, 127, 1, 5), Ipv4Addr::new(100, 127, 1, 6))
        );
    }
}
