//! A broker cut off from the cluster stops serving Kafka clients until it is back, as a
//! ZooKeeper server that loses its quorum closes its clients' connections.
//!
//! Why: a broker that its peers cannot reach but its clients can is a trap for them. It
//! leads nothing any more (check-quorum deposed it) and it hears no leadership news, so it
//! answers Metadata with LEADER_NOT_AVAILABLE; and a client that connects sparsely
//! (librdkafka talks only to the brokers it needs) keeps asking this one, the only broker it
//! is connected to, for ever. Closing its connections sends the client to the other brokers
//! it knows from earlier metadata, which name the new leaders.
//!
//! The signal is the controller's Raft group, which every broker is a voter of: a broker
//! that has known no controller leader for [`CUT_OFF_ELECTION_TIMEOUTS`] election timeouts
//! (no leader heartbeats it, and it cannot win an election) is cut off. Shard 0 watches it
//! and tells every shard; each shard then closes its client connections (`connection.rs`
//! watches [`Shard::cut_off_changed`]) and closes new ones as it accepts them (`server.rs`),
//! until a controller leader is known again.

use std::rc::Rc;
use std::time::Duration;

use crate::broker::shard::Shard;
use crate::io;

/// Election timeouts without a known controller leader after which a broker is cut off: a
/// healthy cluster elects one within one or two.
pub const CUT_OFF_ELECTION_TIMEOUTS: u32 = 4;
/// How often shard 0 looks.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Shard 0 of a cluster broker: watches the controller's leadership until shutdown, and
/// tells every shard when the broker is cut off or back.
pub async fn run_watch(shard: Rc<Shard>) {
    assert_eq!(shard.id, 0, "shard 0 watches the controller");
    let Some(cluster) = shard.config.cluster.as_ref() else { return };
    let election_timeout = Duration::from_millis(cluster.election_timeout_ms.unsigned_abs());
    let cut_off_after = election_timeout * CUT_OFF_ELECTION_TIMEOUTS;
    let mut last_contact = io::now();
    let mut cut_off = false;
    // Each round sleeps; it ends at shutdown.
    while !shard.is_shutting_down() {
        io::sleep(CHECK_INTERVAL).await;
        let now = io::now();
        if shard.controller().and_then(|controller| controller.leader()).is_some() {
            last_contact = now;
        }
        let now_cut_off = now.duration_since(last_contact) > cut_off_after;
        if now_cut_off == cut_off {
            continue;
        }
        cut_off = now_cut_off;
        match cut_off {
            true => tracing::warn!(
                silent_ms = now.duration_since(last_contact).as_millis() as u64,
                "cut off from the cluster (no controller leader known): closing client \
                 connections until it is back"
            ),
            false => tracing::info!("back in the cluster: serving clients again"),
        }
        for index in 0..shard.shard_count() {
            let told =
                shard.call_on(index, move |target| async move { target.set_cut_off(cut_off) });
            // None: that shard is gone (shutdown), and needs no telling.
            let _: Option<()> = told.await;
        }
    }
}
