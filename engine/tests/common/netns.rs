//! Brokers on a real network: each in its own network namespace, joined by a veth pair to a
//! bridge in the test's namespace, where the test and its clients run. The faults are the
//! kernel's own: routes that black-hole a peer (a partition between two brokers that their
//! clients do not see), a bridge port taken down (a broker cut off from everyone), a
//! congested link (a token-bucket filter: delay, jitter and loss under load) on every
//! broker. Everything is made with iproute2 (`ip`, `tc`) and removed on drop; a
//! namespace's processes must be stopped before (the cluster is dropped first when declared
//! after the network).
//!
//! Needs CAP_NET_ADMIN: root, as CI runs, or a shell under `unshare -Urnm`.
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::cluster::Placement;

/// Networks made by this process so far: names and subnets stay distinct when tests of one
/// binary run in parallel.
static NETWORKS_MADE: AtomicU32 = AtomicU32::new(0);

pub struct Network {
    bridge: String,
    hosts: Vec<Host>,
}

struct Host {
    namespace: String,
    address: String,
    /// The veth end on the bridge, in the test's namespace.
    bridge_port: String,
}

impl Network {
    /// `nodes` namespaces on one bridge, each with the address `10.213.S.n` (n = 1..=nodes);
    /// the bridge holds `10.213.S.254`. Err(why) when the kernel refuses (no CAP_NET_ADMIN).
    pub fn create(nodes: usize) -> Result<Network, String> {
        assert!((1..=9).contains(&nodes), "{nodes} hosts");
        let made = NETWORKS_MADE.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id() % 100_000;
        let subnet = (pid * 7 + made) % 250;
        let bridge = format!("tb{pid}x{made}");
        let mut network = Network { bridge: bridge.clone(), hosts: Vec::new() };
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("10.213.{subnet}.254/24"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for node in 1..=nodes {
            let namespace = format!("tern-{pid}-{made}-{node}");
            let bridge_port = format!("tv{pid}x{made}n{node}");
            let inner = format!("ti{pid}x{made}n{node}");
            let address = format!("10.213.{subnet}.{node}");
            ip(&["netns", "add", &namespace])?;
            network.hosts.push(Host {
                namespace: namespace.clone(),
                address: address.clone(),
                bridge_port: bridge_port.clone(),
            });
            ip(&["link", "add", &bridge_port, "type", "veth", "peer", "name", &inner])?;
            ip(&["link", "set", &inner, "netns", &namespace])?;
            ip(&["link", "set", &bridge_port, "master", &bridge])?;
            ip(&["link", "set", &bridge_port, "up"])?;
            let inside = |arguments: &[&str]| in_namespace(&namespace, "ip", arguments);
            inside(&["link", "set", "lo", "up"])?;
            inside(&["link", "set", &inner, "name", "eth0"])?;
            inside(&["addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
            inside(&["link", "set", "eth0", "up"])?;
        }
        Ok(network)
    }

    /// Where each broker runs: its namespace's address, the same ports in every namespace.
    pub fn placements(&self, kafka_port: u16, peer_port: u16) -> Vec<Placement> {
        self.hosts
            .iter()
            .map(|host| Placement {
                host: host.address.clone(),
                kafka_port,
                peer_port,
                launcher: ["ip", "netns", "exec", &host.namespace].map(String::from).to_vec(),
            })
            .collect()
    }

    /// Brokers `a` and `b` (node ids) stop reaching each other, both ways; everyone else
    /// still reaches both.
    pub fn cut(&self, a: i32, b: i32) {
        let (host_a, host_b) = (self.host(a), self.host(b));
        must(in_namespace(
            &host_a.namespace,
            "ip",
            &["route", "add", "blackhole", &host_b.address],
        ));
        must(in_namespace(
            &host_b.namespace,
            "ip",
            &["route", "add", "blackhole", &host_a.address],
        ));
    }

    /// Undoes every [`Network::cut`].
    pub fn heal_cuts(&self) {
        for host in &self.hosts {
            for other in &self.hosts {
                // Absent routes are fine: not every pair was cut.
                let _ = in_namespace(
                    &host.namespace,
                    "ip",
                    &["route", "del", "blackhole", &other.address],
                );
            }
        }
    }

    /// Broker `node` loses its link: no peer and no client reaches it, nor it them.
    pub fn isolate(&self, node: i32) {
        must(ip(&["link", "set", &self.host(node).bridge_port, "down"]));
    }

    /// Undoes [`Network::isolate`].
    pub fn rejoin(&self, node: i32) {
        must(ip(&["link", "set", &self.host(node).bridge_port, "up"]));
    }

    /// Every broker's link is congested: its outgoing packets leave at most at `rate_kbit`
    /// through a queue that holds `queue_ms` of them; beyond that they are dropped. Under
    /// load that is delay, jitter and loss at once. (A token-bucket filter, `tc tbf`: the
    /// kernels this runs on may lack netem.)
    pub fn congest(&self, rate_kbit: u32, queue_ms: u32) {
        let (rate, latency) = (format!("{rate_kbit}kbit"), format!("{queue_ms}ms"));
        for host in &self.hosts {
            let arguments =
                ["qdisc", "add", "dev", "eth0", "root", "tbf", "rate", &rate, "burst", "16kb"];
            let mut arguments = arguments.to_vec();
            arguments.extend(["latency", &latency]);
            must(in_namespace(&host.namespace, "tc", &arguments));
        }
    }

    /// Undoes [`Network::congest`].
    pub fn restore(&self) {
        for host in &self.hosts {
            must(in_namespace(&host.namespace, "tc", &["qdisc", "del", "dev", "eth0", "root"]));
        }
    }

    fn host(&self, node: i32) -> &Host {
        let index = usize::try_from(node - 1).expect("node ids start at 1");
        &self.hosts[index]
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth end, and with it the pair.
        for host in &self.hosts {
            let _ = ip(&["netns", "del", &host.namespace]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

fn ip(arguments: &[&str]) -> Result<(), String> {
    run("ip", arguments)
}

fn in_namespace(namespace: &str, program: &str, arguments: &[&str]) -> Result<(), String> {
    let mut full = vec!["netns", "exec", namespace, program];
    full.extend_from_slice(arguments);
    run("ip", &full)
}

fn run(program: &str, arguments: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(arguments)
        .output()
        .map_err(|error| format!("{program} {arguments:?}: {error}"))?;
    match output.status.success() {
        true => Ok(()),
        false => Err(format!(
            "{program} {arguments:?}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

fn must(result: Result<(), String>) {
    if let Err(error) = result {
        panic!("network fault not applied: {error}");
    }
}
