//! One [`SimDisk`] per simulated node that outlives the node's tasks: a madsim plugin whose
//! `reset_node` (run by `Handle::kill`) crashes the killed node's disk, so a restarted node
//! recovers from exactly what was durable, with unsynced writes dropped or torn.
//!
//! Why a thread-local behind the plugin: a madsim plugin must be `Send + Sync`, a `SimDisk` is
//! an `Rc` (single-threaded like a shard). madsim runs a whole simulation on one thread, so the
//! disks live in that thread's slot; `Simulator::new` (once per runtime) empties it, so two
//! runtimes run one after the other on a thread never share disks.
//!
//! `Handle::restart` alone does not call `reset_node` (madsim kills the tasks without telling
//! plugins, and keeps the node's sockets bound): a simulated power failure is `kill` then
//! `restart`; a process crash is [`SimDisk::spare_disk_at_next_kill`], `kill`, `restart`.

use std::cell::RefCell;
use std::collections::BTreeMap;

use madsim::plugin::{self, Simulator};
use madsim::rand::GlobalRng;
use madsim::task::NodeId;
use madsim::time::TimeHandle;

use crate::io::{CrashMode, SimDisk};

/// A node's disk and how its crashes go.
struct NodeDisk {
    disk: SimDisk,
    /// Chance, in percent, that a crash tears unsynced writes instead of dropping them.
    torn_crash_percent: u8,
    /// SplitMix64 state choosing the crash mode; seeded per node so runs replay.
    rng_state: u64,
    /// The next kill is of the process only (SIGKILL, OOM): the page cache survives.
    next_kill_spares_disk: bool,
}

thread_local! {
    /// Disks by node id; emptied whenever a runtime registers the plugin.
    static NODE_DISKS: RefCell<BTreeMap<NodeId, NodeDisk>> =
        const { RefCell::new(BTreeMap::new()) };
}

/// The madsim plugin (registered through [`SimDisk::install_node_disks`]).
struct NodeDisks;

impl Simulator for NodeDisks {
    fn new(_rand: &GlobalRng, _time: &TimeHandle, _config: &madsim::Config) -> Self {
        NODE_DISKS.with(|disks| disks.borrow_mut().clear());
        NodeDisks
    }

    fn reset_node(&self, id: NodeId) {
        NODE_DISKS.with(|disks| {
            let mut disks = disks.borrow_mut();
            let Some(node) = disks.get_mut(&id) else { return };
            if std::mem::take(&mut node.next_kill_spares_disk) {
                tracing::warn!(fault = "process_kill", node = %id, "sim disk: page cache kept");
                return;
            }
            let draw = splitmix64(&mut node.rng_state) % 100;
            let mode = if draw < u64::from(node.torn_crash_percent) {
                CrashMode::Torn
            } else {
                CrashMode::DropUnsynced
            };
            tracing::warn!(fault = "node_crash", node = %id, ?mode, "sim disk: node killed");
            node.disk.crash(mode);
        });
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Per-node disks for multi-node simulations (cfg(madsim) only).
impl SimDisk {
    /// Registers the per-node disk plugin on `runtime`; call before `block_on`.
    pub fn install_node_disks(runtime: &madsim::runtime::Runtime) {
        runtime.add_simulator::<NodeDisks>();
    }

    /// The disk of the calling node, created empty (seeded with `seed`) at its first use; the
    /// same disk after a kill and restart.
    pub fn of_current_node(seed: u64) -> SimDisk {
        SimDisk::of_node_or_create(plugin::node(), seed)
    }

    /// The disk of node `node`, created at first use; the supervisor
    /// uses it to inject faults.
    pub fn of_node_or_create(node: NodeId, seed: u64) -> SimDisk {
        // Fails loudly if the plugin was not installed: kills would then keep unsynced data.
        let _ = plugin::simulator::<NodeDisks>();
        NODE_DISKS.with(|disks| {
            let mut disks = disks.borrow_mut();
            let entry = disks.entry(node).or_insert_with(|| NodeDisk {
                disk: SimDisk::new(seed),
                torn_crash_percent: 50,
                rng_state: seed ^ 0x5EED_D15C,
                next_kill_spares_disk: false,
            });
            entry.disk.clone()
        })
    }

    /// Makes the next `Handle::kill` of `node` a process crash: its tasks and sockets die, its
    /// disk keeps every write, synced or not (the kernel's page cache outlives the process).
    pub fn spare_disk_at_next_kill(node: NodeId, seed: u64) {
        let _ = SimDisk::of_node_or_create(node, seed);
        NODE_DISKS.with(|disks| {
            if let Some(entry) = disks.borrow_mut().get_mut(&node) {
                entry.next_kill_spares_disk = true;
            }
        });
    }

    /// Sets the chance (0..=100 percent) that a kill of `node` tears unsynced writes rather
    /// than dropping them all.
    pub fn set_torn_crash_percent(node: NodeId, seed: u64, torn_crash_percent: u8) {
        assert!(torn_crash_percent <= 100, "a percentage");
        let _ = SimDisk::of_node_or_create(node, seed);
        NODE_DISKS.with(|disks| {
            if let Some(entry) = disks.borrow_mut().get_mut(&node) {
                entry.torn_crash_percent = torn_crash_percent;
            }
        });
    }
}
