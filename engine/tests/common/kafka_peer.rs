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
