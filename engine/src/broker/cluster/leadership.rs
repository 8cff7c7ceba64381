//! Who leads the partitions a broker hosts no replica of. A broker learns the leader of a
//! partition it hosts from its own replica; with more brokers than replicas (five brokers,
//! three replicas each) the others would answer Metadata with LEADER_NOT_AVAILABLE. So
//! every broker announces the partitions it leads to every other broker, as leadership news
//! in the peer frames: the changes every [`ANNOUNCE_INTERVAL`], and each led partition again
//! at least every [`REFRESH_INTERVAL`] (the transport is lossy by design, and a broker that
//! just started knows nothing). News a broker has not heard again within [`NEWS_TTL`] is
//! forgotten, so a leader that died with no successor is not advertised for ever; newer
//! epochs replace older ones.
//!
//! Redpanda disseminates leadership the same way. KRaft instead writes every leader change
//! into the metadata log: here each partition's Raft group elects its own leader, and the
//! controller's log stays free of that churn. The news is a hint for clients (a stale one
//! costs a NOT_LEADER_OR_FOLLOWER and a Metadata refresh), never an input to Raft.
//!
//! News is kept on the shard that owns the partition (the peer routing delivers it there
//! like replica messages), so that Metadata and the NOT_LEADER hint find it where they run.
//! Each shard announces the partitions it owns and leads; its table holds only partitions of
//! known topics that it owns, so the registry bounds it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::rc::Rc;
use std::time::Duration;

use crate::broker::peer::{Addressed, LeadershipNews, PartitionMessage, NEWS_IN_SYNC_MAX};
use crate::broker::shard::{PartitionKey, PartitionState, Shard};
use crate::io::{self, Instant};
use crate::replication::NodeId;

/// How often a shard looks for leadership changes to announce: short, because a client that
/// just created a topic looks up its leaders at once (librdkafka's partitioners use only
/// partitions with a known leader); one look per shard every 50 ms costs nothing.
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_millis(50);
/// Each led partition is announced again at least this often.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(3);
/// News not heard again within this long is forgotten (five refreshes: a few lost frames
/// do not make a leader disappear).
pub const NEWS_TTL: Duration = Duration::from_secs(15);

/// What this shard heard of its partitions' leaders.
#[derive(Default)]
pub struct HeardLeaders {
    news: RefCell<BTreeMap<PartitionKey, Heard>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Heard {
    news: LeadershipNews,
    heard_at: Instant,
}

impl HeardLeaders {
    /// Keeps `news` unless what is known is of a newer epoch and still fresh. The caller has
    /// checked that the partition exists and that this shard owns it.
    fn record(&self, key: PartitionKey, news: LeadershipNews, now: Instant) {
        let mut table = self.news.borrow_mut();
        let newer_known = table
            .get(&key)
            .is_some_and(|known| known.news.epoch > news.epoch && !is_stale(known, now));
        if !newer_known {
            table.insert(key, Heard { news, heard_at: now });
        }
    }

    /// The fresh news of a partition: (leader, epoch, in-sync replicas).
    pub fn leader_of(&self, key: &PartitionKey, now: Instant) -> Option<PartitionState> {
        let table = self.news.borrow();
        let heard = table.get(key).filter(|heard| !is_stale(heard, now))?;
        Some(state_of(&heard.news))
    }

    /// Every fresh news, and forgets the stale ones and those of partitions that are gone.
    fn fresh(
        &self,
        now: Instant,
        exists: impl Fn(&PartitionKey) -> bool,
    ) -> Vec<(PartitionKey, PartitionState)> {
        let mut table = self.news.borrow_mut();
        table.retain(|key, heard| !is_stale(heard, now) && exists(key));
        table.iter().map(|(key, heard)| (key.clone(), state_of(&heard.news))).collect()
    }
}

fn is_stale(heard: &Heard, now: Instant) -> bool {
    now.duration_since(heard.heard_at) > NEWS_TTL
}

fn state_of(news: &LeadershipNews) -> PartitionState {
    let node = |id: NodeId| i32::try_from(id.0).unwrap_or(-1);
    PartitionState {
        leader: Some(node(news.leader)),
        epoch: news.epoch,
        in_sync: news.in_sync.iter().copied().map(node).collect(),
    }
}

/// A peer's news of `key`, delivered on the shard that owns it: kept if the partition exists
/// and the sender speaks for itself (a broker announces only its own leadership).
pub fn hear(shard: &Shard, from: NodeId, key: PartitionKey, news: LeadershipNews) {
    if news.leader != from || !shard.topics().has_partition(&key.0, key.1) {
        let (topic, partition) = (&key.0, key.1);
        tracing::debug!(peer = from.0, %topic, partition, "leadership news ignored");
        return;
    }
    debug_assert_eq!(shard.owner_of(&key.0, key.1), shard.id);
    shard.heard_leaders.record(key, news, io::now());
}

/// The leadership this shard knows: its replicas' view, completed by what it heard. A
/// partition hosted here takes the news if it is of a newer epoch, or of the same epoch and
/// leader (whose in-sync replicas only the leader knows) when this broker does not lead.
pub fn merged_states(shard: &Shard) -> Vec<(PartitionKey, PartitionState)> {
    let hosted = shard.hosted_partition_states();
    let snapshot = shard.topics();
    let heard = shard.heard_leaders.fresh(io::now(), |key| snapshot.has_partition(&key.0, key.1));
    merge(hosted, heard, shard.cluster.node_id)
}

/// [`merged_states`] of `hosted` (this broker's replicas) and `heard` (news), on broker `own`.
fn merge(
    hosted: Vec<(PartitionKey, PartitionState)>,
    heard: Vec<(PartitionKey, PartitionState)>,
    own: i32,
) -> Vec<(PartitionKey, PartitionState)> {
    let mut states: BTreeMap<PartitionKey, PartitionState> = hosted.into_iter().collect();
    for (key, news) in heard {
        let take = match states.get(&key) {
            None => true,
            Some(local) if news.epoch != local.epoch => news.epoch > local.epoch,
            // The same epoch: news of the leader this replica knows (or of one it has not
            // heard of yet) bring the in-sync replicas, which only the leader knows.
            Some(local) => {
                local.leader != Some(own) && local.leader.is_none_or(|l| Some(l) == news.leader)
            }
        };
        if take {
            states.insert(key, news);
        }
    }
    states.into_iter().collect()
}

/// Announces this shard's led partitions to every other broker until the shard shuts down
/// (see the module doc). Bounded per round: changes, plus a slice of the led partitions
/// sized so that all of them are refreshed within [`REFRESH_INTERVAL`].
pub async fn run_announcer(shard: Rc<Shard>) {
    let Ok(own) = u32::try_from(shard.cluster.node_id) else { return };
    let mut announced: BTreeMap<PartitionKey, LeadershipNews> = BTreeMap::new();
    // The last partition refreshed: the next round goes on after it.
    let mut cursor: Option<PartitionKey> = None;
    let rounds_per_refresh =
        (REFRESH_INTERVAL.as_millis() / ANNOUNCE_INTERVAL.as_millis()).max(1) as usize;
    // Each round sleeps; it ends at shutdown.
    while !shard.is_shutting_down() {
        let slept = io::sleep(ANNOUNCE_INTERVAL);
        let stopping = shard.shutdown_requested.notified();
        futures_util::pin_mut!(slept, stopping);
        futures_util::future::select(slept, stopping).await;
        if shard.is_shutting_down() {
            return;
        }
        let led = led_partitions(&shard, own);
        let recipients: Vec<NodeId> = shard
            .topics()
            .brokers
            .keys()
            .filter_map(|id| u32::try_from(*id).ok())
            .filter(|id| *id != own)
            .map(NodeId)
            .collect();
        let changed = led.iter().filter(|(key, news)| announced.get(*key) != Some(news));
        let mut to_send: BTreeMap<&PartitionKey, &LeadershipNews> = changed.collect();
        let refresh_count = led.len().div_ceil(rounds_per_refresh);
        let after = cursor.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
        let wrapped = led.range((after, Bound::Unbounded)).chain(led.iter());
        for (key, news) in wrapped.take(refresh_count.min(led.len())) {
            to_send.insert(key, news);
            cursor = Some(key.clone());
        }
        for (key, news) in to_send {
            for to in &recipients {
                let message = PartitionMessage::Leadership(news.clone());
                let addressed = Addressed { topic: key.0.clone(), partition: key.1, message };
                super::routing::send_to_peer(&shard, *to, addressed);
            }
        }
        announced = led;
    }
}

/// The partitions this shard's replicas lead, as news.
fn led_partitions(shard: &Shard, own: u32) -> BTreeMap<PartitionKey, LeadershipNews> {
    let own_id = i32::try_from(own).unwrap_or(-1);
    let node = |id: i32| u32::try_from(id).ok().map(NodeId);
    shard
        .hosted_partition_states()
        .into_iter()
        .filter(|(_, state)| state.leader == Some(own_id))
        .map(|(key, state)| {
            let in_sync = state.in_sync.iter().filter_map(|id| node(*id));
            let news = LeadershipNews {
                epoch: state.epoch,
                leader: NodeId(own),
                in_sync: in_sync.take(NEWS_IN_SYNC_MAX).collect(),
            };
            (key, news)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn news(epoch: i32, leader: u32, in_sync: &[u32]) -> LeadershipNews {
        LeadershipNews {
            epoch,
            leader: NodeId(leader),
            in_sync: in_sync.iter().map(|id| NodeId(*id)).collect(),
        }
    }

    fn state(leader: Option<i32>, epoch: i32, in_sync: &[i32]) -> PartitionState {
        PartitionState { leader, epoch, in_sync: in_sync.to_vec() }
    }

    fn key(partition: i32) -> PartitionKey {
        ("orders".to_string(), partition)
    }

    #[test]
    fn newer_epochs_replace_older_news_and_stale_news_is_forgotten() {
        let table = HeardLeaders::default();
        let start = io::now();
        let later = |seconds: u64| start.checked_add(Duration::from_secs(seconds)).expect("time");
        table.record(key(0), news(3, 2, &[2, 3]), start);
        table.record(key(0), news(2, 1, &[1]), later(1));
        assert_eq!(table.leader_of(&key(0), later(1)), Some(state(Some(2), 3, &[2, 3])));
        table.record(key(0), news(4, 3, &[3]), later(2));
        assert_eq!(table.leader_of(&key(0), later(2)), Some(state(Some(3), 4, &[3])));
        // Past the TTL, the news is gone, and an older epoch may be heard again (a
        // recreated topic starts over).
        let expired = later(2 + NEWS_TTL.as_secs() + 1);
        assert_eq!(table.leader_of(&key(0), expired), None);
        table.record(key(0), news(1, 1, &[1]), expired);
        assert_eq!(table.leader_of(&key(0), expired), Some(state(Some(1), 1, &[1])));
        // Partitions that are gone are dropped from the table.
        table.record(key(1), news(1, 1, &[1]), expired);
        let fresh = table.fresh(expired, |key| key.1 == 1);
        assert_eq!(fresh, [(key(1), state(Some(1), 1, &[1]))]);
        assert_eq!(table.leader_of(&key(0), expired), None);
    }

    #[test]
    fn news_completes_what_this_broker_replicas_know() {
        let check = |hosted: Option<PartitionState>, heard: PartitionState, expected| {
            let hosted = hosted.map(|state| (key(0), state)).into_iter().collect();
            let merged = merge(hosted, vec![(key(0), heard)], 1);
            assert_eq!(merged, [(key(0), expected)]);
        };
        // Hosting no replica: the news.
        check(None, state(Some(2), 5, &[2, 3]), state(Some(2), 5, &[2, 3]));
        // A follower of the same leader and epoch: the leader's in-sync replicas.
        check(Some(state(Some(2), 5, &[])), state(Some(2), 5, &[2, 1]), state(Some(2), 5, &[2, 1]));
        // A replica that knows no leader, or an older epoch: the news.
        check(Some(state(None, 5, &[])), state(Some(2), 5, &[2]), state(Some(2), 5, &[2]));
        check(Some(state(Some(3), 4, &[])), state(Some(2), 5, &[2]), state(Some(2), 5, &[2]));
        // This broker's replica leads an older epoch: deposed, though it may not know yet.
        check(Some(state(Some(1), 5, &[1, 2])), state(Some(2), 6, &[2]), state(Some(2), 6, &[2]));
        // This broker leads the epoch, or knows a newer one, or another leader in the same
        // epoch (the news is late): its own view.
        check(
            Some(state(Some(1), 5, &[1, 2])),
            state(Some(1), 5, &[1]),
            state(Some(1), 5, &[1, 2]),
        );
        check(Some(state(Some(3), 6, &[])), state(Some(2), 5, &[2]), state(Some(3), 6, &[]));
        check(Some(state(Some(3), 5, &[])), state(Some(2), 5, &[2]), state(Some(3), 5, &[]));
    }
}
