//! failover.py driven from a test: confluent-kafka produces with acks=all and idempotence
//! while the test breaks brokers (kills, restarts, network faults); the script reads every
//! partition back and judges (a JSON verdict), and the test checks the verdict and that
//! every offset the consumer never saw is a control batch.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cluster::TernCluster;
use super::kafka::{batches, Connection};
use super::python;

/// The topic failover.py creates and produces to.
pub const TOPIC: &str = "failover";
pub const PARTITIONS: usize = 3;
/// Acknowledgements partition 0 gains before the first kill, after each kill (a new leader
/// serves) and after each restart (the cluster has its broker back).
pub const PROGRESS_RECORDS: u64 = 1000;
/// The whole test, brokers' start to verdict.
pub const TEST_SECONDS_MAX: u64 = 180;
/// Lines of the script's stdout kept that are neither progress nor verdict.
const OTHER_LINES_MAX: usize = 20;

pub fn wait_for_leader(cluster: &mut TernCluster, deadline: Instant) -> i32 {
    loop {
        if let Some(leader) = cluster.leader_of(TOPIC, 0) {
            return leader;
        }
        assert!(Instant::now() < deadline, "no leader of {TOPIC}-0 by the deadline");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The verdict holds, and counts at least the `acked_seen` records of partition 0 that its
/// progress lines reported during the kills.
pub fn assert_verdict(verdict: &Value, replication_factor: usize, acked_seen: u64) {
    let count = |field: &str| {
        verdict[field].as_u64().unwrap_or_else(|| panic!("verdict without {field}: {verdict}"))
    };
    for field in ["lost", "duplicates", "out_of_order", "misplaced", "conflicting_acks"] {
        assert_eq!(count(field), 0, "{field}: {verdict:#}");
    }
    assert_eq!(verdict["fatal"], Value::Null, "{verdict:#}");
    assert_eq!(verdict["reached_high_watermarks"], true, "{verdict:#}");
    assert_eq!(verdict["ok"], true, "{verdict:#}");
    assert!(verdict["acked_per_partition"][0].as_u64() >= Some(acked_seen), "{verdict:#}");
    assert!(count("read") >= count("acked"), "{verdict:#}");
    let replicas = verdict["replicas"].as_array().expect("replicas");
    assert_eq!(replicas.len(), PARTITIONS, "{verdict:#}");
    for replica_list in replicas {
        assert_eq!(replica_list.as_array().map(Vec::len), Some(replication_factor));
    }
}

/// Every offset below the high watermark that the consumer never saw lies in a control
/// batch (a new leader's LeaderChange): read from each partition's leader, batch by batch.
pub fn assert_gaps_are_control_batches(cluster: &mut TernCluster, verdict: &Value) {
    let gaps = verdict["gaps"].as_array().expect("gaps");
    let listed: u64 =
        gaps.iter().map(|gap| gap[2].as_u64().unwrap() - gap[1].as_u64().unwrap()).sum();
    assert_eq!(Some(listed), verdict["gap_offsets"].as_u64(), "every gap listed: {verdict:#}");
    for partition in 0..PARTITIONS as i32 {
        let ranges: Vec<(i64, i64)> = gaps
            .iter()
            .filter(|gap| gap[0].as_i64() == Some(partition as i64))
            .map(|gap| (gap[1].as_i64().unwrap(), gap[2].as_i64().unwrap()))
            .collect();
        if ranges.is_empty() {
            continue;
        }
        let leader = cluster.leader_of(TOPIC, partition).expect("a leader after the run");
        let mut connection = Connection::connect(&cluster.broker(leader).bootstrap());
        let stored = batches(&mut connection, TOPIC, partition);
        for (start, end) in ranges {
            for offset in start..end {
                let batch =
                    stored.iter().find(|b| b.base_offset <= offset && offset <= b.last_offset());
                let batch = batch.unwrap_or_else(|| panic!("{TOPIC}-{partition} has no {offset}"));
                assert!(batch.is_control, "{TOPIC}-{partition} offset {offset}: {batch:?}");
            }
        }
    }
}

/// failover.py, running: its progress lines read as they come, its verdict at the end.
pub struct FailoverScript {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<ScriptOutput>>,
    reader: Option<JoinHandle<()>>,
    stderr_path: PathBuf,
}

#[derive(Default)]
struct ScriptOutput {
    acked: Vec<u64>,
    verdict: Option<Value>,
    other_lines: Vec<String>,
}

impl FailoverScript {
    pub fn start(cluster: &TernCluster, replication_factor: usize) -> FailoverScript {
        let stderr_path = cluster.directory.join("failover.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("create the script's stderr");
        let mut child = python("failover.py")
            .args(["--bootstrap", &cluster.bootstrap(), "--topic", TOPIC])
            .args(["--partitions", &PARTITIONS.to_string()])
            .args(["--replication-factor", &replication_factor.to_string()])
            // Its own bounds, below the test's: it stops even if nobody tells it to.
            .args(["--produce-seconds", "120", "--flush-seconds", "30"])
            .args(["--consume-seconds", "30", "--setup-seconds", "60"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start failover.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let output = Arc::new(Mutex::new(ScriptOutput::default()));
        let shared = Arc::clone(&output);
        let reader = std::thread::spawn(move || read_output(stdout, &shared));
        let stdin = child.stdin.take();
        FailoverScript { child, stdin, output, reader: Some(reader), stderr_path }
    }

    /// Waits until partition 0 has `at_least` acknowledged records; returns the count.
    pub fn wait_for_acked(&mut self, at_least: u64, deadline: Instant) -> u64 {
        loop {
            let acked = self.output.lock().unwrap().acked.first().copied().unwrap_or(0);
            if acked >= at_least {
                return acked;
            }
            if let Some(status) = self.child.try_wait().expect("poll failover.py") {
                panic!("failover.py exited ({status}) at {acked} acked:\n{}", self.diagnosis());
            }
            if Instant::now() > deadline {
                panic!("{acked} of {at_least} acked by the deadline:\n{}", self.diagnosis());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Tells the script to stop producing, and waits for its verdict.
    pub fn verdict(&mut self, deadline: Instant) -> Value {
        let mut stdin = self.stdin.take().expect("verdict asked once");
        if let Err(error) = stdin.write_all(b"stop\n") {
            panic!("cannot tell failover.py to stop ({error}):\n{}", self.diagnosis());
        }
        drop(stdin);
        while self.child.try_wait().expect("poll failover.py").is_none() {
            assert!(Instant::now() < deadline, "no verdict by the deadline:\n{}", self.diagnosis());
            std::thread::sleep(Duration::from_millis(50));
        }
        self.reader.take().expect("one reader").join().expect("the reader thread");
        let verdict = self.output.lock().unwrap().verdict.take();
        verdict.unwrap_or_else(|| panic!("failover.py gave no verdict:\n{}", self.diagnosis()))
    }

    pub fn diagnosis(&self) -> String {
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let other_lines = self.output.lock().unwrap().other_lines.join("\n");
        format!("--- failover.py stdout (not progress)\n{other_lines}\n--- stderr\n{stderr}")
    }
}

impl Drop for FailoverScript {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the script's stdout to its end: progress and verdict lines into `output`.
fn read_output(stdout: impl std::io::Read, output: &Mutex<ScriptOutput>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        let parsed: Option<Value> = serde_json::from_str(&line).ok();
        let mut output = output.lock().unwrap();
        match parsed {
            Some(value) if value["progress"].is_object() => {
                let acked = value["progress"]["acked"].as_array().cloned().unwrap_or_default();
                output.acked = acked.iter().map(|count| count.as_u64().unwrap_or(0)).collect();
            }
            Some(value) if value["verdict"].is_object() => {
                output.verdict = Some(value["verdict"].clone());
            }
            _ if output.other_lines.len() < OTHER_LINES_MAX => output.other_lines.push(line),
            _ => {}
        }
    }
}
