//! One private network across nodes: a WireGuard interface in the network's router namespace.
//!
//! ```text
//!  node A                                               node B
//!  container 10.20.1.2 ─ gcbrN ─ router ns (gw .1)      router ns ─ gcbrM ─ container 10.20.2.2
//!                                  gw…N ══ UDP A:port ══ B:port ══ gw…M
//!                                  10.20.2.0/24 dev gw…N         10.20.1.0/24 dev gw…M
//!  owner's laptop (wg-quick): a peer of every member, AllowedIPs = the members' subnets
//! ```
//!
//! The WireGuard implementation is Debian's `wireguard-go` (this machine's kernel has no
//! WireGuard module): the agent starts it in the node's namespace, where its UDP socket stays
//! bound on the node's uplink, then moves its TUN interface into the router namespace, where the
//! network's routes are. A socket stays in the namespace it was made in, so no port forwarding
//! is needed, and the tenant's routes never touch the node's own table. `wg` talks to the
//! daemon through its UAPI socket (`/var/run/wireguard/<name>.sock`), whatever the interface's
//! namespace. The daemon is not the agent's child: an agent killed with `kill -9` leaves every
//! tunnel up, and its next pass finds and re-checks them. The daemon ends with its interface,
//! i.e. when the router namespace is deleted.
//!
//! Configuration is applied with `wg syncconf`, which changes what differs and keeps sessions of
//! peers that stay, so a pass over an unchanged mesh disturbs nothing.

use super::egress::{run, run_with_input};
use super::network::NetworkError;
use gridchain_primitives::wireguard::WireguardKey;

/// One peer of a node's side of a mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgPeer {
    pub public_key: WireguardKey,
    /// `address:port`; absent for a peer that calls in (the owner's laptop).
    pub endpoint: Option<String>,
    /// What the peer may send from and is routed to it: its subnet, or its one address.
    pub allowed: Vec<String>,
}

/// The node's side of one mesh, as [`ensure`] makes it.
pub struct WgInterface<'a> {
    /// The router namespace it lives in.
    pub namespace: &'a str,
    /// `Egress::mesh_interface`: unique on the machine.
    pub name: &'a str,
    /// Base64 private key (`wg` reads it from a pipe, never from a file or an argument).
    pub private_key: &'a str,
    pub listen_port: u16,
    pub peers: &'a [WgPeer],
}

fn in_namespace(ns: &str, name: &str) -> bool {
    run("ip", &["-n", ns, "link", "show", "dev", name]).is_ok()
}

/// The `wg setconf`/`syncconf` text of `wg`.
fn config_text(wg: &WgInterface) -> String {
    let mut text = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = {}\n",
        wg.private_key, wg.listen_port
    );
    for peer in wg.peers {
        text.push_str(&format!(
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = {}\n",
            peer.public_key,
            peer.allowed.join(", ")
        ));
        if let Some(endpoint) = &peer.endpoint {
            // Both sides of a node pair call each other; keepalives hold NAT mappings open.
            text.push_str(&format!(
                "Endpoint = {endpoint}\nPersistentKeepalive = 25\n"
            ));
        }
    }
    text
}

/// Makes (or finishes making) the node's WireGuard interface of a mesh and brings its peers and
/// routes to `wg`'s; what matches is left as it is.
pub fn ensure(wg: &WgInterface) -> Result<(), NetworkError> {
    if !in_namespace(wg.namespace, wg.name) {
        if run("ip", &["link", "show", "dev", wg.name]).is_err() {
            // A socket left by a daemon that died with its interface would make the new one
            // refuse to start.
            let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", wg.name));
            run("wireguard-go", &[wg.name])?;
        }
        run(
            "ip",
            &["link", "set", "dev", wg.name, "netns", wg.namespace],
        )?;
    }
    run_with_input(
        "wg",
        &["syncconf", wg.name, "/dev/stdin"],
        Some(&config_text(wg)),
    )?;
    let in_ns = |args: &[&str]| run("ip", &[&["-n", wg.namespace][..], args].concat());
    in_ns(&["link", "set", "dev", wg.name, "up"])?;
    let wanted: Vec<&str> = wg
        .peers
        .iter()
        .flat_map(|p| p.allowed.iter().map(String::as_str))
        .collect();
    for range in &wanted {
        in_ns(&["route", "replace", range, "dev", wg.name])?;
    }
    // Routes of peers that left.
    for line in in_ns(&["-4", "route", "show", "dev", wg.name])?.lines() {
        let Some(dest) = line.split_whitespace().next() else {
            continue;
        };
        let normalized = |r: &str| {
            if r.contains('/') {
                r.to_string()
            } else {
                format!("{r}/32")
            }
        };
        if !wanted.iter().any(|w| normalized(w) == normalized(dest)) {
            in_ns(&["route", "del", dest, "dev", wg.name])?;
        }
    }
    Ok(())
}

/// Removes the node's interface `name` of a mesh from router namespace `ns` (its daemon ends
/// with it); absent is fine.
pub fn remove(ns: &str, name: &str) -> Result<(), NetworkError> {
    if in_namespace(ns, name) {
        run("ip", &["-n", ns, "link", "del", "dev", name])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_lists_callers_without_an_endpoint() {
        let key = |b: u8| WireguardKey([b; 32]);
        let peers = [
            WgPeer {
                public_key: key(1),
                endpoint: Some("192.0.2.1:51821".into()),
                allowed: vec!["10.20.2.0/24".into()],
            },
            WgPeer {
                public_key: key(2),
                endpoint: None,
                allowed: vec!["10.20.255.2/32".into()],
            },
        ];
        let text = config_text(&WgInterface {
            namespace: "ns",
            name: "gcw1",
            private_key: "cHJpdmF0ZQ==",
            listen_port: 51821,
            peers: &peers,
        });
        assert_eq!(
            text,
            format!(
                "[Interface]\nPrivateKey = cHJpdmF0ZQ==\nListenPort = 51821\n\n[Peer]\nPublicKey = {}\n\
                 AllowedIPs = 10.20.2.0/24\nEndpoint = 192.0.2.1:51821\nPersistentKeepalive = 25\n\n\
                 [Peer]\nPublicKey = {}\nAllowedIPs = 10.20.255.2/32\n",
                key(1),
                key(2)
            )
        );
    }
}
