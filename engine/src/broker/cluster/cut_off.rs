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
//!
//! A broker starts cut off, and joins once its applied metadata registers both itself and
//! the controller's leader — as a Kafka broker opens its listeners only once it has caught
//! up with the metadata log and is unfenced. Before that its Metadata could name a
//! controller without listing it as a broker, and librdkafka's admin client then waits for
//! that broker until its request times out (measured: a CreateTopics sent as the cluster
//! started failed after 15 s, "Failed while waiting for controller").

use std::rc::Rc;
use std::time::Duration;

use crate::broker::shard::Shard;
use crate::io;

/// Whether this broker's applied metadata registers both itself and the controller's leader.
fn registered(shard: &Shard, leader: i32) -> bool {
    let brokers = &shard.topics().brokers;
    brokers.contains_key(&leader) && brokers.contains_key(&shard.cluster.node_id)
}

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
    let mut joined = false;
    let mut cut_off = shard.is_cut_off();
    assert!(cut_off, "a cluster broker starts cut off");
    // Each round sleeps; it ends at shutdown.
    while !shard.is_shutting_down() {
        io::sleep(CHECK_INTERVAL).await;
        let now = io::now();
        let leader = shard.controller().and_then(|controller| controller.leader());
        if leader.is_some() {
            last_contact = now;
        }
        if !joined && leader.is_some_and(|leader| registered(&shard, leader)) {
            joined = true;
            tracing::info!("registered with the cluster: serving clients");
        }
        let now_cut_off = !joined || now.duration_since(last_contact) > cut_off_after;
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
            false => tracing::info!("in the cluster: serving clients"),
        }
        for index in 0..shard.shard_count() {
            let told =
                shard.call_on(index, move |target| async move { target.set_cut_off(cut_off) });
            // None: that shard is gone (shutdown), and needs no telling.
            let _: Option<()> = told.await;
        }
    }
}
