//! The per-node disk plugin: a node's `SimDisk` outlives its tasks; `Handle::kill` is a power
//! failure (unsynced writes gone), a kill after `spare_disk_at_next_kill` a process crash
//! (the page cache, unsynced writes included, survives), and a restarted node finds its disk.
#![cfg(madsim)]

use std::path::Path;
use std::time::Duration;

use madsim::runtime::{Handle, Runtime};
use tern::io::{Disk, OpenOptions, SimDisk};

const SEED: u64 = 7;
const SYNCED: &[u8] = b"synced.";
const UNSYNCED: &[u8] = b"unsynced.";

/// The node's task: writes SYNCED (and syncs it) then UNSYNCED, unless the file exists.
async fn write_once() {
    let disk = Disk::Simulated(SimDisk::of_current_node(SEED));
    let path = Path::new("/data/file");
    if !disk.exists(path) {
        disk.create_dir_all(Path::new("/data")).expect("mkdir");
        let file = disk.open(path, OpenOptions { create: true, truncate: false }).expect("open");
        file.write_all_at(SYNCED.to_vec(), 0).await.0.expect("write");
        file.sync_data().await.expect("sync");
        file.write_all_at(UNSYNCED.to_vec(), SYNCED.len() as u64).await.0.expect("write");
    }
    std::future::pending::<()>().await;
}

#[test]
fn kills_are_power_failures_unless_the_disk_is_spared_and_restarts_find_the_disk() {
    let runtime = Runtime::with_seed_and_config(1, madsim::Config::default());
    SimDisk::install_node_disks(&runtime);
    runtime.block_on(async {
        let handle = Handle::current();
        let node = handle.create_node().name("node").init(write_once).build().id();
        SimDisk::set_torn_crash_percent(node, SEED, 0);
        madsim::time::sleep(Duration::from_millis(10)).await;
        let disk = SimDisk::of_node_or_create(node, SEED);
        let path = Path::new("/data/file");
        let both = (SYNCED.len() + UNSYNCED.len()) as u64;
        assert_eq!(disk.file_len(path), Some(both));

        SimDisk::spare_disk_at_next_kill(node, SEED);
        handle.kill(node);
        assert_eq!(disk.file_len(path), Some(both), "a process crash keeps the page cache");
        handle.restart(node);
        madsim::time::sleep(Duration::from_millis(10)).await;

        handle.kill(node);
        assert_eq!(disk.file_len(path), Some(SYNCED.len() as u64), "power failure");
        assert_eq!(disk.durable_bytes(path).as_deref(), Some(SYNCED));
        handle.restart(node);
        madsim::time::sleep(Duration::from_millis(10)).await;
        let again = SimDisk::of_node_or_create(node, SEED);
        assert_eq!(again.file_len(path), Some(SYNCED.len() as u64), "the restarted node's disk");
    });
}
