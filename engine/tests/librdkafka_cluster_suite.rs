//! librdkafka's own integration test suite (`librdkafka_suite.rs` runs it against one broker)
//! against a three-broker cluster: topics of three replicas, leaders spread over the brokers,
//! group coordinators wherever their `__consumer_offsets` partition leads, so every client
//! request that must reach a leader or a coordinator crosses brokers.
//!
//! `engine/tests/librdkafka/tests-cluster.txt` lists each test's status against the cluster
//! (the same format as `tests.txt`); docs/compatibility.md has the differences.

mod common;

use std::path::Path;
use std::process::Command;

use common::cluster::TernCluster;
use common::{run_checked, run_client_suite_listed, test_dir};

#[test]
fn librdkafka_integration_suite_passes_against_a_three_broker_cluster() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("librdkafka");
    run_checked(
        Command::new("bash").arg(here.join("suite.sh")).arg("build"),
        "librdkafka suite build (apt-get source librdkafka; needs root and Debian's archive)",
    );
    let directory = test_dir("librdkafka-cluster-suite");
    // The suite expects auto-created topics to have 4 partitions.
    let arguments = ["--shards", "1", "--default-partitions", "4"];
    let mut cluster = TernCluster::start("librdkafka-cluster", 3, &arguments);
    // As against a Kafka cluster that is up: every broker registered, a controller elected.
    cluster.wait_until_registered();
    let bootstrap = cluster.bootstrap();
    let run_args = ["--bootstrap", bootstrap.as_str()];
    let results = directory.join("results.txt");
    run_client_suite_listed(&here, "tests-cluster.txt", &run_args, &results, &|| cluster.logs());
    cluster.stop_all();
}
