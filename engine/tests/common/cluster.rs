//! A cluster of real `tern` processes on 127.0.0.1, one per broker: each with its own Kafka
//! port, peer port and data directory, all of them voters of the metadata Raft group.
//! Brokers are named by node id (1..=nodes). Drop kills every broker still running, and a
//! test that panics prints the end of every broker's log.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};

use super::kafka::{topic_name, Connection};
use super::{free_ports, test_dir, TernServer};

/// Brokers a test may start: a bound on ports, processes and logs.
pub const NODES_MAX: usize = 5;
/// Lines of each broker's log printed when a test fails (the files hold all of it).
const LOG_LINES_PRINTED_MAX: usize = 400;

/// Where a broker of [`TernCluster::start_placed`] runs.
#[derive(Debug, Clone)]
pub struct Placement {
    pub host: String,
    pub kafka_port: u16,
    pub peer_port: u16,
    /// The command tern runs under (`ip netns exec NAME`).
    pub launcher: Vec<String>,
}

pub struct TernCluster {
    pub directory: PathBuf,
    /// Index `node_id - 1`.
    brokers: Vec<TernServer>,
    peer_ports: Vec<u16>,
}

impl TernCluster {
    /// Starts `nodes` brokers, each `--node-id i --peer-listen 127.0.0.1:P_i
    /// --controller-voters 1@127.0.0.1:P_1,...` plus `extra_arguments`. Every broker is
    /// launched before any is waited for: brokers may wait for a quorum before they listen.
    pub fn start(name: &str, nodes: usize, extra_arguments: &[&str]) -> TernCluster {
        assert!((1..=NODES_MAX).contains(&nodes), "{nodes} brokers");
        let ports = free_ports(2 * nodes);
        let (kafka_ports, peer_ports) = ports.split_at(nodes);
        let voters: Vec<String> = (0..nodes)
            .map(|index| format!("{}@127.0.0.1:{}", index + 1, peer_ports[index]))
            .collect();
        let voters = voters.join(",");
        let mut cluster = TernCluster::empty(name, peer_ports.to_vec());
        for index in 0..nodes {
            let node_id = (index + 1).to_string();
            let peer_listen = format!("127.0.0.1:{}", peer_ports[index]);
            let mut arguments = vec!["--node-id", &node_id, "--peer-listen", &peer_listen];
            arguments.extend(["--controller-voters", &voters]);
            cluster.launch(kafka_ports[index], &arguments, extra_arguments);
        }
        cluster.wait_until_listening();
        cluster
    }

    /// `nodes` brokers that know nothing of each other: each one has only `--node-id i`
    /// (no peer port, no voters), today's single-node mode. Checks the harness itself, and
    /// with one node, a test's client side, without a cluster.
    pub fn start_standalone(name: &str, nodes: usize, extra_arguments: &[&str]) -> TernCluster {
        assert!((1..=NODES_MAX).contains(&nodes), "{nodes} brokers");
        let kafka_ports = free_ports(nodes);
        let mut cluster = TernCluster::empty(name, Vec::new());
        for (index, port) in kafka_ports.into_iter().enumerate() {
            let node_id = (index + 1).to_string();
            cluster.launch(port, &["--node-id", &node_id], extra_arguments);
        }
        cluster.wait_until_listening();
        cluster
    }

    /// Starts one broker per placement (node ids 1..), each on its placement's host and
    /// ports, run under its launcher: brokers in their own network namespaces.
    pub fn start_placed(
        name: &str,
        placements: &[Placement],
        extra_arguments: &[&str],
    ) -> TernCluster {
        assert!((1..=NODES_MAX).contains(&placements.len()), "{} brokers", placements.len());
        let voters: Vec<String> = placements
            .iter()
            .enumerate()
            .map(|(index, place)| format!("{}@{}:{}", index + 1, place.host, place.peer_port))
            .collect();
        let voters = voters.join(",");
        let peer_ports = placements.iter().map(|place| place.peer_port).collect();
        let mut cluster = TernCluster::empty(name, peer_ports);
        for (index, place) in placements.iter().enumerate() {
            let node_id = (index + 1).to_string();
            let peer_listen = format!("{}:{}", place.host, place.peer_port);
            let mut arguments = vec!["--pin-shards", "false", "--node-id", &node_id];
            arguments.extend(["--peer-listen", &peer_listen, "--controller-voters", &voters]);
            arguments.extend_from_slice(extra_arguments);
            let data_dir = cluster.directory.join(format!("node-{node_id}"));
            let broker = TernServer::launch_placed(
                &data_dir,
                &place.host,
                place.kafka_port,
                &place.launcher,
                &arguments,
            );
            cluster.brokers.push(broker);
        }
        cluster.wait_until_listening();
        cluster
    }

    fn empty(name: &str, peer_ports: Vec<u16>) -> TernCluster {
        TernCluster { directory: test_dir(name), brokers: Vec::new(), peer_ports }
    }

    fn launch(&mut self, port: u16, node_arguments: &[&str], extra_arguments: &[&str]) {
        let node_id = self.brokers.len() + 1;
        let data_dir = self.directory.join(format!("node-{node_id}"));
        // Brokers share this machine's cores: pinning each one's shard 0 to CPU 0 would
        // stack them all on one core (tern refuses a second --pin-shards).
        assert!(!extra_arguments.contains(&"--pin-shards"), "the cluster never pins shards");
        let mut arguments = vec!["--pin-shards", "false"];
        arguments.extend_from_slice(node_arguments);
        arguments.extend_from_slice(extra_arguments);
        self.brokers.push(TernServer::launch_at(&data_dir, port, &arguments));
    }

    fn wait_until_listening(&mut self) {
        for broker in &mut self.brokers {
            broker.wait_until_listening();
        }
        for broker in &self.brokers {
            wait_until_answering(broker);
        }
    }

    pub fn nodes(&self) -> usize {
        self.brokers.len()
    }

    /// 1..=nodes.
    pub fn node_ids(&self) -> impl Iterator<Item = i32> {
        1..=self.brokers.len() as i32
    }

    /// Every broker's Kafka address, comma-separated (running or not).
    pub fn bootstrap(&self) -> String {
        let addresses: Vec<String> = self.brokers.iter().map(TernServer::bootstrap).collect();
        addresses.join(",")
    }

    pub fn broker(&self, node_id: i32) -> &TernServer {
        &self.brokers[Self::index(node_id, self.brokers.len())]
    }

    fn broker_mut(&mut self, node_id: i32) -> &mut TernServer {
        let index = Self::index(node_id, self.brokers.len());
        &mut self.brokers[index]
    }

    fn index(node_id: i32, nodes: usize) -> usize {
        assert!(node_id >= 1 && node_id as usize <= nodes, "node {node_id} of {nodes}");
        node_id as usize - 1
    }

    /// Waits (at most 60 s) until every broker lists every broker in Metadata and names a
    /// controller: each one registered, the controller elected. A broker lists itself
    /// before it is registered, so only all of them together prove it.
    pub fn wait_until_registered(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let nodes = self.brokers.len();
        for node_id in self.node_ids() {
            loop {
                let request = MetadataRequest::default().with_topics(Some(vec![]));
                let mut connection = Connection::connect(&self.broker(node_id).bootstrap());
                let response = connection.call(12, &request);
                if response.brokers.len() == nodes && response.controller_id.0 >= 0 {
                    break;
                }
                assert!(Instant::now() < deadline, "never registered:\n{}", self.logs());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The broker's --peer-listen port; None for standalone brokers.
    pub fn peer_port(&self, node_id: i32) -> Option<u16> {
        let index = Self::index(node_id, self.brokers.len());
        self.peer_ports.get(index).copied()
    }

    pub fn is_running(&mut self, node_id: i32) -> bool {
        self.broker_mut(node_id).is_running()
    }

    /// SIGKILL to one broker, and wait for it to be gone.
    pub fn kill9(&mut self, node_id: i32) {
        let broker = self.broker_mut(node_id);
        assert!(broker.is_running(), "node {node_id} is not running");
        broker.kill9();
        assert!(broker.pid().is_none());
    }

    /// Starts a stopped broker again: same ports, data directory and arguments; returns once
    /// it answers.
    pub fn restart(&mut self, node_id: i32) {
        let broker = self.broker_mut(node_id);
        assert!(broker.pid().is_none(), "node {node_id} still runs");
        broker.restart();
        wait_until_answering(broker);
    }

    /// Starts several stopped brokers, then waits until each answers: brokers that need each
    /// other for a controller quorum serve no client until enough of them run.
    pub fn restart_together(&mut self, node_ids: &[i32]) {
        self.restart_unanswering(node_ids);
        for &node_id in node_ids {
            wait_until_answering(self.broker(node_id));
        }
    }

    /// Starts several stopped brokers and returns at once: without a controller they may
    /// never answer a client.
    pub fn restart_unanswering(&mut self, node_ids: &[i32]) {
        for &node_id in node_ids {
            let broker = self.broker_mut(node_id);
            assert!(broker.pid().is_none(), "node {node_id} still runs");
            broker.restart();
        }
    }

    /// SIGTERM to one broker; it must exit cleanly.
    pub fn stop(&mut self, node_id: i32) {
        let broker = self.broker_mut(node_id);
        assert!(broker.is_running(), "node {node_id} is not running");
        broker.stop();
    }

    /// SIGTERM to every running broker; each must exit cleanly.
    pub fn stop_all(&mut self) {
        for broker in &mut self.brokers {
            broker.stop();
        }
    }

    /// The end of every broker's log, each under a header naming its file.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for (index, broker) in self.brokers.iter().enumerate() {
            let log = broker.log();
            let lines: Vec<&str> = log.lines().collect();
            let first = lines.len().saturating_sub(LOG_LINES_PRINTED_MAX);
            text += &format!(
                "===== node {} ({} of {} lines; all in {})\n",
                index + 1,
                lines.len() - first,
                lines.len(),
                broker.data_dir.with_extension("log").display()
            );
            for line in &lines[first..] {
                text += line;
                text.push('\n');
            }
        }
        text
    }

    /// The leader of `topic`/`partition` as the brokers see it now: a running broker that
    /// another running broker names as leader and that names itself. None while there is
    /// no such broker (an election, or metadata not yet updated).
    pub fn leader_of(&mut self, topic: &str, partition: i32) -> Option<i32> {
        let node_ids: Vec<i32> = self.node_ids().collect();
        let running: Vec<i32> = node_ids.into_iter().filter(|&id| self.is_running(id)).collect();
        for &asked in &running {
            let Some(named) = self.leader_named_by(asked, topic, partition) else { continue };
            if !running.contains(&named) {
                continue;
            }
            if named == asked || self.leader_named_by(named, topic, partition) == Some(named) {
                return Some(named);
            }
        }
        None
    }

    /// The leader id broker `asked` gives for `topic`/`partition` (Metadata v12), or None
    /// when it gives none, errs, or closes the connection.
    fn leader_named_by(&self, asked: i32, topic: &str, partition: i32) -> Option<i32> {
        let mut connection = Connection::try_connect(&self.broker(asked).bootstrap())?;
        let request = MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(
            Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name(topic)))]),
        );
        let response = connection.try_call(12, &request)?;
        let topic = response.topics.first().filter(|topic| topic.error_code == 0)?;
        let answer = topic.partitions.iter().find(|answer| answer.partition_index == partition)?;
        let leader = answer.leader_id.0;
        (answer.error_code == 0 && leader >= 1).then_some(leader)
    }
}

/// Accepting a connection is not answering on it: right after a restart that follows kill
/// -9, the first connections are sometimes closed unanswered (the listener start-up race
/// noted in idempotence.rs). Waits, at most 30 s, until an ApiVersions request is answered.
fn wait_until_answering(broker: &TernServer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut connection = Connection::connect(&broker.bootstrap());
        if connection.try_call(0, &ApiVersionsRequest::default()).is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "tern does not answer; log:\n{}", broker.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for TernCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for broker in &mut self.brokers {
            broker.kill9();
        }
    }
}
