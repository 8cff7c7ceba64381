//! librdkafka's own integration test suite (2.0.2, Debian's source package: the librdkafka of
//! Debian's kcat) against the real `tern` binary.
//!
//! `engine/tests/librdkafka/suite.sh build` fetches and builds the suite once into
//! `~/.cache/tern/librdkafka-2.0.2` (outside the clone); `suite.sh run` runs every test that
//! `engine/tests/librdkafka/tests.txt` lists as `pass` (must pass) or `fail` (known to fail
//! today, reported when it starts passing). Excluded tests carry their reason in that file;
//! docs/compatibility.md has the table.

mod common;

use std::path::Path;
use std::process::Command;

use common::{run_checked, run_client_suite, test_dir, TernServer};

#[test]
fn librdkafka_integration_suite_passes_every_test_listed_as_passing() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("librdkafka");
    let script = here.join("suite.sh");
    run_checked(
        Command::new("bash").arg(&script).arg("build"),
        "librdkafka suite build (apt-get source librdkafka; needs root and Debian's archive)",
    );
    let directory = test_dir("librdkafka-suite");
    // The suite expects auto-created topics to have 4 partitions.
    let mut server =
        TernServer::start(&directory.join("data"), &["--shards", "2", "--default-partitions", "4"]);
    let bootstrap = server.bootstrap();
    let run_args = ["--bootstrap", bootstrap.as_str()];
    run_client_suite(&here, &run_args, &directory.join("results.txt"), &server);
    server.stop();
}
