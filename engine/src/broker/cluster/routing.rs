//! How replica messages travel: out of a partition's driver on any shard, through that
//! shard's outbox to shard 0's peer transport; in from the transport, grouped per owner
//! shard and delivered to each partition's inbox. Every hop is bounded and lossy by design:
//! Raft retries what is lost (the next heartbeat or append carries it again), so a flood
//! never grows the broker.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use super::controller::{METADATA_PARTITION, METADATA_TOPIC};
use super::leadership;
use crate::broker::partition::{Partition, Sender};
use crate::broker::peer::{Addressed, PartitionMessage, PeerFrame};
use crate::broker::shard::Shard;
use crate::io::{self, local::Notify};
use crate::replication::NodeId;

/// Messages a shard holds for the transport; beyond it new ones are dropped.
pub const OUTBOX_MESSAGES_MAX: usize = 8192;
/// Deliveries from shard 0 to other shards in flight at once; beyond it frames' messages
/// for other shards are dropped.
pub const FORWARDS_IN_FLIGHT_MAX: usize = 256;

/// A shard's messages waiting to be carried to shard 0's transport.
#[derive(Default)]
pub struct PeerOutbox {
    queue: RefCell<Vec<(NodeId, Addressed)>>,
    wake: Notify,
    forwards_in_flight: Cell<usize>,
}

/// The sender a partition's driver uses for its messages.
pub fn partition_sender(shard: &Rc<Shard>, topic: &str, partition: i32) -> Sender {
    let shard = Rc::downgrade(shard);
    let topic = topic.to_string();
    Rc::new(move |to, message| {
        let Some(shard) = shard.upgrade() else { return };
        let message = PartitionMessage::Replica(message);
        let addressed = Addressed { topic: topic.clone(), partition, message };
        send_to_peer(&shard, to, addressed);
    })
}

/// Hands `addressed` to the transport: directly on shard 0, else through the outbox.
pub fn send_to_peer(shard: &Shard, to: NodeId, addressed: Addressed) {
    if shard.id == 0 {
        if let Some(controller) = shard.controller() {
            controller.send(to, addressed);
        }
        return;
    }
    let outbox = &shard.peer_outbox;
    let mut queue = outbox.queue.borrow_mut();
    if queue.len() >= OUTBOX_MESSAGES_MAX {
        tracing::debug!(topic = %addressed.topic, "peer outbox full; dropping a replica message");
        return;
    }
    queue.push((to, addressed));
    drop(queue);
    outbox.wake.notify_waiters();
}

/// On shards other than 0: carries the outbox to shard 0 in one job per wake-up, until the
/// shard shuts down.
pub async fn run_outbox(shard: Rc<Shard>) {
    assert_ne!(shard.id, 0, "shard 0 sends to its transport directly");
    // Each round moves the queue or waits for it; it ends at shutdown.
    while !shard.is_shutting_down() {
        let woken = shard.peer_outbox.wake.notified();
        let stopping = shard.shutdown_requested.notified();
        let batch = std::mem::take(&mut *shard.peer_outbox.queue.borrow_mut());
        if batch.is_empty() {
            futures_util::pin_mut!(woken, stopping);
            futures_util::future::select(woken, stopping).await;
            continue;
        }
        let delivered = shard
            .call_on(0, move |zero| async move {
                if let Some(controller) = zero.controller() {
                    for (to, addressed) in batch {
                        controller.send(to, addressed);
                    }
                }
            })
            .await;
        if delivered.is_none() {
            return;
        }
    }
}

/// On shard 0: a frame from a peer, its messages delivered to their partitions' owners.
pub fn deliver_frame(shard: &Rc<Shard>, frame: PeerFrame) {
    let from = frame.sender;
    let mut by_owner: BTreeMap<usize, Vec<Addressed>> = BTreeMap::new();
    for addressed in frame.messages {
        if addressed.topic == METADATA_TOPIC {
            let controller = shard.controller();
            let controller = controller.filter(|_| addressed.partition == METADATA_PARTITION);
            if let (Some(controller), PartitionMessage::Replica(message)) =
                (controller, addressed.message)
            {
                controller.metadata().deliver(from, message);
            }
            continue;
        }
        let owner = shard.owner_of(&addressed.topic, addressed.partition);
        by_owner.entry(owner).or_default().push(addressed);
    }
    for (owner, messages) in by_owner {
        if owner == shard.id {
            deliver_local(shard, from, messages);
        } else {
            forward(shard, owner, from, messages);
        }
    }
}

fn forward(shard: &Rc<Shard>, owner: usize, from: NodeId, messages: Vec<Addressed>) {
    let in_flight = &shard.peer_outbox.forwards_in_flight;
    if in_flight.get() >= FORWARDS_IN_FLIGHT_MAX {
        tracing::debug!(owner, "too many deliveries in flight; dropping replica messages");
        return;
    }
    in_flight.set(in_flight.get() + 1);
    let origin = Rc::clone(shard);
    drop(io::spawn_local(async move {
        let delivery = origin.call_on(owner, move |target| async move {
            deliver_local(&target, from, messages);
        });
        delivery.await;
        let in_flight = &origin.peer_outbox.forwards_in_flight;
        in_flight.set(in_flight.get() - 1);
    }));
}

/// Delivers messages to the replicated partitions this shard owns (messages for partitions
/// it does not (yet) host are dropped), and leadership news to its table.
fn deliver_local(shard: &Shard, from: NodeId, messages: Vec<Addressed>) {
    for addressed in messages {
        let message = match addressed.message {
            PartitionMessage::Replica(message) => message,
            PartitionMessage::Leadership(news) => {
                let key = (addressed.topic, addressed.partition);
                leadership::hear(shard, from, key, news);
                continue;
            }
        };
        let partition = shard.local_partition(&addressed.topic, addressed.partition);
        if let Some(Partition::Replicated(replicated)) = partition {
            replicated.deliver(from, message);
        }
    }
}
