//! End-to-end: what users of the Java ecosystem run, against the real `tern` binary and, for
//! comparison, against Apache Kafka 4.4.0 (`benches/peers/kafka.sh`):
//! - a Kafka Streams word count (state store with a compacted changelog, a repartition topic,
//!   consumer groups, at-least-once processing) must produce the same
//!   final counts on both, equal to the counts of the generated input;
//! - a Kafka Connect standalone worker with the file source and sink connectors (on
//!   `plugin.path`) must move a file through a topic unchanged.
//!
//! Maven builds `engine/tests/java/` (Streams) and `engine/tests/connect/` (the worker's
//! classpath) into cargo's target dir, once per run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::kafka_peer::KafkaPeer;
use common::{run_checked, test_dir, TernServer};

fn maven_build(module: &str) -> PathBuf {
    let pom = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(module).join("pom.xml");
    let build = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("maven-{module}"));
    run_checked(
        Command::new("mvn")
            .args(["-q", "-B", "-f"])
            .arg(&pom)
            .arg(format!("-Dtern.build.directory={}", build.display()))
            .arg("package"),
        &format!("mvn package of engine/tests/{module} (Java 17 and Maven: .ci/run)"),
    );
    build
}

fn checks_classpath() -> &'static str {
    static CLASSPATH: OnceLock<String> = OnceLock::new();
    CLASSPATH.get_or_init(|| {
        let build = maven_build("java");
        let dependencies = std::fs::read_to_string(build.join("classpath.txt")).unwrap();
        format!("{}:{}", build.join("tern-java-client-checks-1.jar").display(), dependencies.trim())
    })
}

fn word_count(bootstrap: &str, prefix: &str, state_dir: &Path) -> String {
    let output = run_checked(
        Command::new("java")
            .args(["-Xmx384m", "-cp", checks_classpath(), "tern.tests.WordCountCheck"])
            .arg(bootstrap)
            .arg(prefix)
            .arg(state_dir),
        &format!("Kafka Streams word count against {bootstrap}"),
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(stdout.contains("OK wordcount"), "{stdout}");
    stdout
}

#[test]
fn kafka_streams_word_count_gives_the_same_counts_as_on_apache_kafka() {
    let directory = test_dir("streams");
    let mut tern = TernServer::start(&directory.join("tern"), &["--shards", "2"]);
    let on_tern = word_count(&tern.bootstrap(), "tern", &directory.join("state-tern"));
    tern.stop();
    let kafka = KafkaPeer::start(&directory.join("kafka"));
    let on_kafka = word_count(&kafka.bootstrap(), "kafka", &directory.join("state-kafka"));
    assert_eq!(on_tern, on_kafka, "the final counts differ between Tern and Kafka");
}

/// The worker, killed on drop.
struct ConnectWorker(Child);

impl Drop for ConnectWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_connect_config(directory: &Path, bootstrap: &str, plugins: &Path) -> [PathBuf; 3] {
    let rest_port =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let files = [
        (
            "worker.properties",
            format!(
                "bootstrap.servers={bootstrap}\n\
             key.converter=org.apache.kafka.connect.storage.StringConverter\n\
             value.converter=org.apache.kafka.connect.storage.StringConverter\n\
             offset.storage.file.filename={}\n\
             offset.flush.interval.ms=1000\n\
             plugin.path={}\n\
             listeners=http://127.0.0.1:{rest_port}\n",
                directory.join("connect.offsets").display(),
                plugins.display()
            ),
        ),
        (
            "source.properties",
            format!(
                "name=file-source\n\
             connector.class=org.apache.kafka.connect.file.FileStreamSourceConnector\n\
             tasks.max=1\nfile={}\ntopic=connect-lines\n",
                directory.join("input.txt").display()
            ),
        ),
        (
            "sink.properties",
            format!(
                "name=file-sink\n\
             connector.class=org.apache.kafka.connect.file.FileStreamSinkConnector\n\
             tasks.max=1\nfile={}\ntopics=connect-lines\n",
                directory.join("output.txt").display()
            ),
        ),
    ];
    files.map(|(name, text)| {
        let path = directory.join(name);
        std::fs::write(&path, text).unwrap();
        path
    })
}

#[test]
fn kafka_connect_file_source_and_sink_move_a_file_through_a_topic() {
    let directory = test_dir("connect");
    let build = maven_build("connect");
    let classpath = std::fs::read_to_string(build.join("classpath.txt")).unwrap();
    let mut tern = TernServer::start(&directory.join("data"), &["--shards", "2"]);
    let input: String = (0..2_000).map(|line| format!("line {line} of the file\n")).collect();
    std::fs::write(directory.join("input.txt"), &input).unwrap();
    let configs = write_connect_config(&directory, &tern.bootstrap(), &build.join("plugins"));
    let log = std::fs::File::create(directory.join("connect.log")).unwrap();
    let worker = ConnectWorker(
        Command::new("java")
            .args(["-Xmx384m", "-cp", classpath.trim()])
            .arg("org.apache.kafka.connect.cli.ConnectStandalone")
            .args(&configs)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("java"),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let output_path = directory.join("output.txt");
    while std::fs::read_to_string(&output_path).unwrap_or_default().len() < input.len() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(directory.join("connect.log")).unwrap_or_default();
            panic!(
                "the sink never wrote the whole file; worker log:\n{log}\nbroker:\n{}",
                tern.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(worker);
    assert_eq!(std::fs::read_to_string(&output_path).unwrap(), input);
    tern.stop();
}
