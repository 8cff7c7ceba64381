//! Harness for end-to-end tests: starts the real `tern` binary on a free 127.0.0.1 port with
//! its own data directory, and always stops it (Drop kills it if a test panics).
#![allow(dead_code)]

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod cluster;
pub mod differential;
pub mod failover;
pub mod kafka;
pub mod kafka_peer;
pub mod netns;
pub mod schema;

pub struct TernServer {
    child: Option<Child>,
    pub port: u16,
    /// A port the caller chose: never swapped for another when it is taken.
    port_fixed: bool,
    pub data_dir: PathBuf,
    extra_arguments: Vec<String>,
    /// The address tern listens on (127.0.0.1 unless placed elsewhere).
    pub host: String,
    /// The command tern runs under, if any (`ip netns exec NAME` in the network tests).
    launcher: Vec<String>,
}

/// A fresh, empty directory for one test.
pub fn test_dir(name: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!("tern-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).expect("create test dir");
    directory
}

fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `count` distinct ports free right now (each listener is held until all are chosen, so
/// the kernel cannot hand out one port twice).
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> =
        (0..count).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port")).collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|listener| listener.local_addr().expect("local addr").port())
        .collect();
    assert_eq!(ports.len(), count);
    ports
}

impl TernServer {
    pub fn start(data_dir: &Path, extra_arguments: &[&str]) -> TernServer {
        TernServer::start_at(data_dir, None, extra_arguments)
    }

    /// Starts on `port` when given (a suite that hard-codes its broker's address), else on a
    /// free one.
    pub fn start_at(data_dir: &Path, port: Option<u16>, extra_arguments: &[&str]) -> TernServer {
        let mut server = TernServer {
            child: None,
            port: port.unwrap_or_else(free_port),
            port_fixed: port.is_some(),
            data_dir: data_dir.to_path_buf(),
            extra_arguments: extra_arguments.iter().map(|s| s.to_string()).collect(),
            host: "127.0.0.1".to_string(),
            launcher: Vec::new(),
        };
        server.spawn();
        server
    }

    /// Starts on the fixed `port` and returns at once, before tern listens: the brokers of a
    /// cluster may wait for each other before they serve. `wait_until_listening` follows.
    pub fn launch_at(data_dir: &Path, port: u16, extra_arguments: &[&str]) -> TernServer {
        TernServer::launch_placed(data_dir, "127.0.0.1", port, &[], extra_arguments)
    }

    /// [`TernServer::launch_at`] on `host`, run under `launcher` (e.g. `ip netns exec NS`,
    /// which execs tern in place: the child is tern itself, so signals reach it).
    pub fn launch_placed(
        data_dir: &Path,
        host: &str,
        port: u16,
        launcher: &[String],
        extra_arguments: &[&str],
    ) -> TernServer {
        let mut server = TernServer {
            child: None,
            port,
            port_fixed: true,
            data_dir: data_dir.to_path_buf(),
            extra_arguments: extra_arguments.iter().map(|s| s.to_string()).collect(),
            host: host.to_string(),
            launcher: launcher.to_vec(),
        };
        server.launch();
        server
    }

    /// Waits until tern accepts connections on its Kafka port; panics with its log if it
    /// exits first or does not listen within 30 s.
    pub fn wait_until_listening(&mut self) {
        if let Err(log) = self.wait_listening() {
            panic!("tern exited at start; log:\n{log}");
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn spawn(&mut self) {
        // The free port can be taken by another process between our probe and tern's bind:
        // try a few ports before calling it a failure.
        for _attempt in 0..5 {
            match self.spawn_once() {
                Ok(()) => return,
                Err(log) if log.contains("cannot listen") && !self.port_fixed => {
                    self.port = free_port()
                }
                Err(log) => panic!("tern exited at start; log:\n{log}"),
            }
        }
        panic!("tern could not listen on any of 5 free ports; log:\n{}", self.log());
    }

    fn spawn_once(&mut self) -> Result<(), String> {
        self.launch();
        self.wait_listening()
    }

    fn launch(&mut self) {
        assert!(self.child.is_none());
        let log_path = self.data_dir.with_extension("log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
        // TERN_TEST_BINARY runs a test against another build (a release binary for the
        // documented measurements, an older one to show what a test catches).
        let binary = std::env::var("TERN_TEST_BINARY")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tern").to_string());
        let mut command = match self.launcher.split_first() {
            None => Command::new(binary),
            Some((program, launcher_arguments)) => {
                let mut command = Command::new(program);
                command.args(launcher_arguments).arg(binary);
                command
            }
        };
        let child = command
            .arg("--listen")
            .arg(self.bootstrap())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_arguments)
            .env("RUST_LOG", std::env::var("TERN_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tern");
        self.child = Some(child);
    }

    /// Ok once tern accepts a connection; Err(its log) when it exited first.
    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.bootstrap()).is_err() {
            let child = self.child.as_mut().expect("wait_listening after a launch");
            if child.try_wait().unwrap().is_some() {
                self.child = None;
                return Err(self.log());
            }
            assert!(Instant::now() < deadline, "tern did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "tern exited with {status}; log:\n{}", self.log());
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("tern did not stop within 30 s of SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no flush, no close — what a crash (minus the page cache) looks like.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.spawn();
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The broker's resident memory now (VmRSS from /proc), in bytes.
    pub fn resident_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|child| child.try_wait()), Some(Ok(None)))
    }
}

impl Drop for TernServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("clients")
}

/// Runs a command to completion; panics with its output when it fails.
pub fn run_checked(command: &mut Command, what: &str) -> Output {
    let output = command.output().unwrap_or_else(|error| panic!("{what}: cannot run: {error}"));
    if !output.status.success() {
        panic!(
            "{what} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

/// Runs a client's own test suite (`<suite>/suite.sh run <run_args> --list tests.txt`, three
/// tests at a time) against `server` and asserts that every test listed as passing passed;
/// on failure, prints the suite's output and the broker's log.
pub fn run_client_suite(suite: &Path, run_args: &[&str], results: &Path, server: &TernServer) {
    run_client_suite_listed(suite, "tests.txt", run_args, results, &|| server.log());
}

/// [`run_client_suite`] with the list `<suite>/<list>`, and `logs` giving the brokers' logs
/// to print on failure.
pub fn run_client_suite_listed(
    suite: &Path,
    list: &str,
    run_args: &[&str],
    results: &Path,
    logs: &dyn Fn() -> String,
) {
    let output = Command::new("bash")
        .arg(suite.join("suite.sh"))
        .arg("run")
        .args(run_args)
        .arg("--list")
        .arg(suite.join(list))
        .arg("--results")
        .arg(results)
        // Most tests wait on timeouts, not CPU: three at a time.
        .args(["--parallel", "3"])
        .output()
        .expect("run suite.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{} tests regressed:\n{stdout}\n{}\nbroker log:\n{}",
        suite.display(),
        String::from_utf8_lossy(&output.stderr),
        logs()
    );
}

pub fn python(script: &str) -> Command {
    let mut command = Command::new("python3");
    command.arg(clients_dir().join(script));
    command
}

/// Reads a whole child stdout (for commands piped by hand).
pub fn read_all(mut reader: impl Read) -> String {
    let mut text = String::new();
    let _ = reader.read_to_string(&mut text);
    text
}
