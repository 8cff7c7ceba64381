//! End-to-end: the Apache Kafka Java client (`kafka-clients` 4.4.0, from Maven Central) against
//! the real `tern` binary. The checks are a small Maven module, `engine/tests/java/`, built
//! once per test run into cargo's target dir (`mvn -q package`); each check is one JVM run that
//! prints `OK <check>` or `FAIL: <why>`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{run_checked, test_dir, TernServer};

/// The jar and its dependency classpath, built on first use.
fn classpath() -> &'static str {
    static CLASSPATH: OnceLock<String> = OnceLock::new();
    CLASSPATH.get_or_init(|| {
        let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("java");
        let build = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("java-client-checks");
        run_checked(
            Command::new("mvn")
                .args(["-q", "-B", "-f"])
                .arg(module.join("pom.xml"))
                .arg(format!("-Dtern.build.directory={}", build.display()))
                .arg("package"),
            "mvn package of engine/tests/java (Java 17 and Maven are installed by .ci/run)",
        );
        let dependencies = std::fs::read_to_string(build.join("classpath.txt"))
            .expect("the dependency plugin wrote classpath.txt");
        let jar = build.join("tern-java-client-checks-1.jar");
        format!("{}:{}", jar.display(), dependencies.trim())
    })
}

fn java_check(server: &TernServer, check: &str, prefix: &str, idempotence: bool) {
    let output = run_checked(
        Command::new("java")
            .args(["-Xmx256m", "-cp", classpath(), "tern.tests.JavaClientChecks", check])
            .arg(server.bootstrap())
            .arg(prefix)
            .arg(idempotence.to_string()),
        &format!("Java client check {check}"),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("OK {check}")), "{check}: {stdout}\n{}", server.log());
}

#[test]
fn java_admin_client_creates_describes_and_deletes_topics() {
    let directory = test_dir("java-admin");
    let mut server = TernServer::start(&directory.join("data"), &["--shards", "2"]);
    java_check(&server, "admin", "java", false);
    server.stop();
}

/// 20,000 records with keys, null keys and values, headers and explicit timestamps, through
/// five producers (none, gzip, snappy, lz4, zstd), acks=all; read back by assignment and
/// compared field by field; then beginning/end offsets, offsetsForTimes and seek. The same
/// after a restart proves the data is durable, not just cached; then a consumer group.
#[test]
fn java_producer_and_consumer_round_trip_every_codec_and_survive_a_restart() {
    let directory = test_dir("java-data");
    let mut server = TernServer::start(&directory.join("data"), &["--shards", "2"]);
    // Idempotence on: the Java client's default.
    java_check(&server, "produce-consume", "java", true);
    server.stop();
    server.restart();
    java_check(&server, "consume", "java", true);
    // A cooperative-sticky group reads it all, commits, and a second member resumes there.
    java_check(&server, "group", "java", true);
    server.stop();
}
