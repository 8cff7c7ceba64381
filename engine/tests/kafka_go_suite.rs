//! segmentio/kafka-go v0.4.51's own test suite (the Go client's integration tests) against the
//! real `tern` binary.
//!
//! `engine/tests/kafka_go/suite.sh build` fetches the module from the Go module proxy at the
//! pinned version and compiles its test binaries once into `~/.cache/tern/kafka-go-v0.4.51`
//! (outside the clone); `suite.sh run` runs every test that `engine/tests/kafka_go/tests.txt`
//! lists as `pass`. Excluded tests carry their reason in that file; docs/compatibility.md has
//! the table.

mod common;

use std::path::Path;
use std::process::Command;

use common::{run_checked, run_client_suite, test_dir, TernServer};

/// kafka-go's tests dial localhost:9092, written into the tests.
const SUITE_BROKER_PORT: u16 = 9092;
/// Advertised as `localhost`, as kafka-go's CI broker is: its tests check the host they are
/// told (the controller's, the coordinator's). No initial rebalance delay, as Kafka's shipped
/// `server.properties` and the differential peer (`benches/peers/kafka.sh`) set it: the
/// group tests time their second reader's join against it.
const SUITE_BROKER_FLAGS: [&str; 6] =
    ["--shards", "2", "--advertise", "localhost:9092", "--group-initial-rebalance-delay-ms", "0"];

/// Moves this thread, and every process it starts from now on, into a network namespace of its
/// own with only loopback up: the broker gets localhost:9092 without racing whatever else on
/// the machine (another test, another checkout, a real Kafka) listens there.
fn enter_private_network() {
    // SAFETY: unshare takes no pointers; CLONE_NEWNET affects the calling thread only.
    let result = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        result,
        0,
        "unshare(CLONE_NEWNET) failed ({}): kafka-go's suite needs root (CAP_SYS_ADMIN) to \
         give its broker localhost:9092 in a private network namespace",
        std::io::Error::last_os_error()
    );
    run_checked(Command::new("ip").args(["link", "set", "lo", "up"]), "ip link set lo up");
}

#[test]
fn kafka_go_suite_passes_every_test_listed_as_passing() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("kafka_go");
    let script = here.join("suite.sh");
    run_checked(
        Command::new("bash").arg(&script).arg("build"),
        "kafka-go suite build (needs `go`: .ci/run installs it; the Go module proxy)",
    );
    enter_private_network();
    let directory = test_dir("kafka-go-suite");
    let mut server =
        TernServer::start_at(&directory.join("data"), Some(SUITE_BROKER_PORT), &SUITE_BROKER_FLAGS);
    run_client_suite(&here, &[], &directory.join("results.txt"), &server);
    server.stop();
}
