//! Apache Kafka 4.4.0 as a peer for differential and ecosystem tests: started on a free
//! 127.0.0.1 port by `benches/peers/kafka.sh` (which resolves it from Maven Central into a
//! cache outside the clone), and always stopped, with its data removed, on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::run_checked;

pub struct KafkaPeer {
    port: u16,
}

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/peers/kafka.sh")
}

impl KafkaPeer {
    pub fn start(data_dir: &Path) -> KafkaPeer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        run_checked(
            Command::new("bash")
                .arg(peer_script())
                .args(["start", "--port", &port.to_string(), "--data-dir"])
                .arg(data_dir),
            "benches/peers/kafka.sh start (Java 17 and Maven are installed by .ci/run)",
        );
        KafkaPeer { port }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for KafkaPeer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(peer_script())
            .args(["stop", "--port", &self.port.to_string()])
            .output();
    }
}

/// Apache Kafka as a cluster of KRaft processes (`kafka.sh start-cluster`): node ids 1.., each
/// a broker and a voter of the controller quorum, replication factor min(3, nodes); every
/// node stopped, its data removed, on drop.
pub struct KafkaCluster {
    /// Index `node_id - 1`.
    ports: Vec<u16>,
}

impl KafkaCluster {
    pub fn start(nodes: usize) -> KafkaCluster {
        let ports = super::free_ports(nodes);
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        run_checked(
            Command::new("bash")
                .arg(peer_script())
                .args(["start-cluster", "--ports", &list.join(",")])
                // Three JVMs on a small machine: half kafka-server-start.sh's default heap.
                .env("KAFKA_HEAP_OPTS", "-Xmx512M -Xms512M"),
            "benches/peers/kafka.sh start-cluster (Java 17 and Maven are installed by .ci/run)",
        );
        KafkaCluster { ports }
    }

    pub fn node_ids(&self) -> impl Iterator<Item = i32> {
        1..=self.ports.len() as i32
    }

    pub fn bootstrap(&self, node_id: i32) -> String {
        format!("127.0.0.1:{}", self.ports[node_id as usize - 1])
    }

    /// SIGTERM to one node: a controlled shutdown (its leaderships move first).
    pub fn stop(&self, node_id: i32) {
        let port = self.ports[node_id as usize - 1].to_string();
        run_checked(
            Command::new("bash").arg(peer_script()).args(["stop", "--port", &port]),
            "benches/peers/kafka.sh stop",
        );
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        let list: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        let _ = Command::new("bash")
            .arg(peer_script())
            .args(["stop-cluster", "--ports", &list.join(",")])
            .output();
    }
}
