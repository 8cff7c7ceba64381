//! Fencing: which registered brokers the controller's leader fences or unfences (Kafka's
//! broker liveness, KIP-631). Pure: the controller feeds it what it observes.
//!
//! - A broker the leader has had no peer connection to for the session timeout (Kafka's
//!   broker.session.timeout.ms, 9 s) is fenced: a `FenceBroker` record. Metadata and
//!   DescribeCluster stop listing it, its replicas are reported offline, and new partitions
//!   are not placed on it. Its own replicas keep running: a partition elects its own leader,
//!   so fencing moves no leadership (a crashed broker's leaderships moved by themselves).
//! - A fenced broker is unfenced (`UnfenceBroker`) once the leader is connected to it again
//!   and its copy of the metadata log is durable up to the high watermark: it serves from
//!   current metadata, as Kafka requires a broker to have caught up before it unfences.
//! - The leader never fences itself, and unfences itself if an earlier leader fenced it.
//! - A new leader knows nothing of how long a broker has been away: it starts every clock
//!   when it first sees the broker disconnected, so a failover only delays fencing.
//!
//! Kafka fences a broker at once when it shuts down cleanly (its last heartbeat asks for
//! it); Tern has no such heartbeat, so a stopped broker is fenced after the session
//! timeout like a crashed one (docs/replication.md).

use std::collections::BTreeMap;
use std::time::Duration;

use super::image::{ClusterImage, MetadataRecord};
use crate::io::Instant;

/// What the leader sees of one registered broker other than itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSight {
    pub connected: bool,
    /// Its metadata log is durable up to the leader's high watermark.
    pub caught_up: bool,
}

/// The leader's clocks: since when each broker has been unreachable.
#[derive(Debug, Default)]
pub struct Fencing {
    unreachable_since: BTreeMap<i32, Instant>,
}

impl Fencing {
    /// Forgets every clock (this broker does not lead, or stopped leading).
    pub fn reset(&mut self) {
        self.unreachable_since.clear();
    }

    /// The records due now, given the image, the leader's own id and what it sees of every
    /// other registered broker (`sight`; a broker missing from it counts as unreachable).
    pub fn due(
        &mut self,
        image: &ClusterImage,
        own: i32,
        sight: &BTreeMap<i32, PeerSight>,
        session_timeout: Duration,
        now: Instant,
    ) -> Vec<MetadataRecord> {
        self.unreachable_since.retain(|node_id, _| image.brokers.contains_key(node_id));
        let mut records = Vec::new();
        for &node_id in image.brokers.keys() {
            let fenced = image.fenced.contains(&node_id);
            if node_id == own {
                if fenced {
                    records.push(MetadataRecord::UnfenceBroker { node_id });
                }
                continue;
            }
            let seen = sight.get(&node_id).copied();
            let connected = seen.is_some_and(|seen| seen.connected);
            if connected {
                self.unreachable_since.remove(&node_id);
            }
            let since = *self.unreachable_since.entry(node_id).or_insert(now);
            let timed_out = !connected && now.duration_since(since) >= session_timeout;
            if !fenced && timed_out {
                records.push(MetadataRecord::FenceBroker { node_id });
            }
            let back = connected && seen.is_some_and(|seen| seen.caught_up);
            if fenced && back {
                records.push(MetadataRecord::UnfenceBroker { node_id });
            }
        }
        assert!(records.len() <= image.brokers.len(), "one record per broker at most");
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::topics::BrokerEndpoint;

    const SESSION: Duration = Duration::from_secs(9);

    fn image(brokers: &[i32], fenced: &[i32]) -> ClusterImage {
        let mut image = ClusterImage::default();
        for &node_id in brokers {
            let endpoint = BrokerEndpoint {
                node_id,
                host: "127.0.0.1".to_string(),
                port: 9092 + node_id as u16,
                directory_id: None,
            };
            image.apply(MetadataRecord::RegisterBroker(endpoint)).unwrap();
        }
        for &node_id in fenced {
            image.apply(MetadataRecord::FenceBroker { node_id }).unwrap();
        }
        image
    }

    fn sight(entries: &[(i32, bool, bool)]) -> BTreeMap<i32, PeerSight> {
        let sight = |(node, connected, caught_up): &(i32, bool, bool)| {
            (*node, PeerSight { connected: *connected, caught_up: *caught_up })
        };
        entries.iter().map(sight).collect()
    }

    #[test]
    fn a_broker_unreachable_for_the_session_timeout_is_fenced_once() {
        let mut fencing = Fencing::default();
        let start = crate::io::now();
        let image = image(&[1, 2, 3], &[]);
        let seen = sight(&[(2, true, true), (3, false, false)]);
        assert!(fencing.due(&image, 1, &seen, SESSION, start).is_empty());
        let almost = start + (SESSION - Duration::from_millis(1));
        assert!(fencing.due(&image, 1, &seen, SESSION, almost).is_empty());
        let due = fencing.due(&image, 1, &seen, SESSION, start + SESSION);
        assert_eq!(due, vec![MetadataRecord::FenceBroker { node_id: 3 }]);
        // Once fenced, nothing more while it stays away.
        let fenced = self::image(&[1, 2, 3], &[3]);
        assert!(fencing.due(&fenced, 1, &seen, SESSION, start + 2 * SESSION).is_empty());
    }

    #[test]
    fn a_connection_back_within_the_timeout_restarts_the_clock() {
        let mut fencing = Fencing::default();
        let start = crate::io::now();
        let image = image(&[1, 2], &[]);
        let away = sight(&[(2, false, false)]);
        let back = sight(&[(2, true, false)]);
        assert!(fencing.due(&image, 1, &away, SESSION, start).is_empty());
        assert!(fencing.due(&image, 1, &back, SESSION, start + SESSION / 2).is_empty());
        let later = start + SESSION + SESSION / 4;
        assert!(fencing.due(&image, 1, &away, SESSION, later).is_empty(), "a new clock");
        let due = fencing.due(&image, 1, &away, SESSION, later + SESSION);
        assert_eq!(due, vec![MetadataRecord::FenceBroker { node_id: 2 }]);
    }

    #[test]
    fn a_fenced_broker_is_unfenced_only_when_connected_and_caught_up() {
        let mut fencing = Fencing::default();
        let now = crate::io::now();
        let image = image(&[1, 2, 3], &[2, 3]);
        let seen = sight(&[(2, true, false), (3, false, true)]);
        assert!(fencing.due(&image, 1, &seen, SESSION, now).is_empty());
        let seen = sight(&[(2, true, true), (3, false, true)]);
        let due = fencing.due(&image, 1, &seen, SESSION, now);
        assert_eq!(due, vec![MetadataRecord::UnfenceBroker { node_id: 2 }]);
    }

    #[test]
    fn the_leader_never_fences_itself_and_unfences_itself() {
        let mut fencing = Fencing::default();
        let now = crate::io::now();
        let unfenced = image(&[1, 2], &[]);
        let away = sight(&[(2, true, true)]);
        assert!(fencing.due(&unfenced, 1, &away, SESSION, now + 10 * SESSION).is_empty());
        let fenced = image(&[1, 2], &[1]);
        let due = fencing.due(&fenced, 1, &away, SESSION, now);
        assert_eq!(due, vec![MetadataRecord::UnfenceBroker { node_id: 1 }]);
    }

    #[test]
    fn fence_records_apply_only_to_registered_brokers() {
        let mut image = image(&[1, 2], &[]);
        let unknown = image.apply(MetadataRecord::FenceBroker { node_id: 7 });
        assert!(unknown.is_err());
        image.apply(MetadataRecord::FenceBroker { node_id: 2 }).unwrap();
        assert_eq!(image.snapshot().unfenced_brokers(), vec![1]);
        image.apply(MetadataRecord::UnfenceBroker { node_id: 2 }).unwrap();
        assert_eq!(image.snapshot().unfenced_brokers(), vec![1, 2]);
        // Records travel as JSON: a fence round-trips.
        let record = MetadataRecord::FenceBroker { node_id: 2 };
        let encoded = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<MetadataRecord>(&encoded).unwrap(), record);
    }
}
