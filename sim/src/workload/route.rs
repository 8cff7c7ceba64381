//! Where a client's requests go. On a single node: the one broker, as always (no Metadata
//! request is ever made, so those scenarios' traffic is what it was). In a cluster: the
//! leader of each partition as Metadata names it, asked of the brokers in turn; a client
//! forgets a partition's leader when a broker answers it with an error
//! (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION, a storage
//! error...), when a call times out or its connection fails, and asks again before its
//! next request to that partition; admin requests go to the controller Metadata names.
//!
//! Every lookup is one Metadata request; callers loop with the usual back-off, and every
//! loop is bounded by the caller's own deadline or stop flag. Every leader a Metadata answer
//! names goes to the checker (`two-leaders-in-epoch`) and to the nemesis (leader faults).

use std::collections::BTreeMap;

use super::{Session, FETCH_TIMEOUT, RETRY_BACKOFF};
use crate::checker::LeaderObservation;
use crate::client::{self, Connection};
use crate::history::Partition;
use crate::run::{broker_address_of, now_ns, RunState, TOPIC};

/// A broker, by its node id (1-based; the single node is broker 1).
pub type BrokerId = i32;

pub(super) struct Router {
    /// One session per broker.
    sessions: BTreeMap<BrokerId, Session>,
    cluster: bool,
    /// Partition → its leader, as the latest Metadata answer said.
    leaders: BTreeMap<Partition, BrokerId>,
    controller: Option<BrokerId>,
    /// The broker asked for Metadata next: they take turns, so a broker with a stale view
    /// (or an unreachable one) is not asked forever.
    next_asked: BrokerId,
    /// Partitions Metadata listed for the topic in its latest answer without a topic error.
    pub(super) partition_count: Option<usize>,
}

impl Router {
    pub(super) fn new(name: String, state: &RunState) -> Router {
        let brokers = i32::try_from(state.plan.brokers).expect("a few brokers");
        let sessions = (1..=brokers)
            .map(|broker| (broker, Session::to(name.clone(), broker_address_of(broker))))
            .collect();
        // Clients start their questions at different brokers.
        let next_asked =
            1 + (name.len() as i32 + name.bytes().map(i32::from).sum::<i32>()).rem_euclid(brokers);
        Router {
            sessions,
            cluster: state.plan.is_cluster(),
            leaders: BTreeMap::new(),
            controller: None,
            next_asked,
            partition_count: None,
        }
    }

    pub(super) fn is_cluster(&self) -> bool {
        self.cluster
    }

    pub(super) fn session(&mut self, broker: BrokerId) -> &mut Session {
        self.sessions.get_mut(&broker).expect("a broker of the run")
    }

    /// The partition's leader if known (the single node always is).
    pub(super) fn leader(&self, partition: Partition) -> Option<BrokerId> {
        if self.cluster {
            self.leaders.get(&partition).copied()
        } else {
            Some(1)
        }
    }

    /// Looks the partition's leader up if unknown (one Metadata request); `None` if still
    /// unknown, after a back-off.
    pub(super) async fn find_leader(
        &mut self,
        state: &RunState,
        partition: Partition,
    ) -> Option<BrokerId> {
        if let Some(leader) = self.leader(partition) {
            return Some(leader);
        }
        self.refresh(state).await;
        let leader = self.leader(partition);
        if leader.is_none() {
            madsim::time::sleep(RETRY_BACKOFF).await;
        }
        leader
    }

    /// A connection to the partition's leader, connecting (and looking the leader up) first
    /// if needed; `None` after a failed lookup or connect.
    pub(super) async fn route(
        &mut self,
        state: &RunState,
        partition: Partition,
    ) -> Option<&mut Connection> {
        let leader = self.find_leader(state, partition).await?;
        let connected = self.session(leader).connection(state).await.is_some();
        if !connected {
            self.forget_broker(leader);
            return None;
        }
        self.session(leader).connection(state).await
    }

    /// Some broker (they take turns), for requests any broker answers.
    pub(super) fn any_broker(&mut self) -> BrokerId {
        if self.cluster {
            self.take_turn()
        } else {
            1
        }
    }

    /// The partition's request failed without an answer: drop the connection to its leader,
    /// and (in a cluster) forget every leadership of that broker.
    pub(super) fn failed(&mut self, partition: Partition) {
        match self.leader(partition) {
            Some(leader) if self.cluster => {
                self.session(leader).fail();
                self.forget_broker(leader);
            }
            Some(leader) => self.session(leader).fail(),
            None => {}
        }
    }

    /// The partition's leader answered `error_code`: in a cluster, any error sends the
    /// client back to Metadata before its next request to it.
    pub(super) fn answered(&mut self, partition: Partition, error_code: i16) {
        if self.cluster && error_code != 0 {
            self.leaders.remove(&partition);
        }
    }

    fn forget_broker(&mut self, broker: BrokerId) {
        if self.cluster {
            self.leaders.retain(|_, leader| *leader != broker);
            if self.controller == Some(broker) {
                self.controller = None;
            }
        }
    }

    fn take_turn(&mut self) -> BrokerId {
        let brokers = self.sessions.len() as BrokerId;
        let broker = self.next_asked;
        self.next_asked = broker % brokers + 1;
        broker
    }

    /// One Metadata request, to the next broker in turn: learns the topic's leaders and the
    /// controller. False if it got no answer.
    pub(super) async fn refresh(&mut self, state: &RunState) -> bool {
        let broker = self.take_turn();
        let Some(connection) = self.session(broker).connection(state).await else {
            return false;
        };
        state.metadata_requests.set(state.metadata_requests.get() + 1);
        let routes = match client::topic_routes(connection, TOPIC, FETCH_TIMEOUT).await {
            Ok(routes) => routes,
            Err(_) => {
                self.session(broker).fail();
                return false;
            }
        };
        self.controller = (routes.controller >= 0).then_some(routes.controller);
        self.partition_count = (routes.topic_error_code == 0).then_some(routes.partitions.len());
        for route in &routes.partitions {
            if route.leader < 0 || route.error_code != 0 {
                self.leaders.remove(&route.partition);
                continue;
            }
            self.leaders.insert(route.partition, route.leader);
            state.saw_leader(LeaderObservation {
                time_ns: now_ns(),
                broker,
                partition: route.partition,
                epoch: route.epoch,
                leader: route.leader,
            });
        }
        true
    }

    /// A connection to the controller's leader (the single node is its own), looked up
    /// first if unknown; `None` after a failed lookup or connect.
    pub(super) async fn controller(&mut self, state: &RunState) -> Option<&mut Connection> {
        if !self.cluster {
            return self.session(1).connection(state).await;
        }
        if self.controller.is_none() {
            self.refresh(state).await;
        }
        let Some(controller) = self.controller else {
            madsim::time::sleep(RETRY_BACKOFF).await;
            return None;
        };
        let connected = self.session(controller).connection(state).await.is_some();
        if !connected {
            self.controller = None;
            return None;
        }
        self.session(controller).connection(state).await
    }

    /// The controller did not take the request (NOT_CONTROLLER, no answer): ask Metadata
    /// again next time; `dropped` also drops the connection.
    pub(super) fn controller_failed(&mut self, dropped: bool) {
        let controller = if self.cluster { self.controller.take() } else { Some(1) };
        if let (true, Some(controller)) = (dropped, controller) {
            self.session(controller).fail();
        }
    }
}
