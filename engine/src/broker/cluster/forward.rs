//! Forwarding to another broker what only it may do, for clients that asked this one: a
//! topic's auto-creation (Metadata with allow_auto_topic_creation) goes to the controller's
//! leader, and a preferred-leader election (ElectLeaders) to the partition's preferred
//! replica. Kafka's brokers forward over their controller channel; Tern's broker sends the
//! other broker the plain Kafka request a client would ([`call_broker`]), on a short-lived
//! connection, bounded in time and in the bytes it reads. For an auto-creation the client is
//! answered LEADER_NOT_AVAILABLE meanwhile and finds the topic on its next Metadata, once
//! this broker has applied it.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::broker::shard::Shard;
use crate::io::{self, Stream};
use crate::protocol::outbound;

/// A forwarded request not answered within this is given up (the client retries).
const FORWARD_TIMEOUT_MS: u64 = 5_000;
/// Forwards in flight per shard; more are not started (their clients retry).
const FORWARDS_IN_FLIGHT_MAX: usize = 16;
/// CreateTopics v5: every broker since Kafka 2.4 serves it (Tern serves 2 and up).
const CREATE_TOPICS_VERSION: i16 = 5;

/// The topics this shard is forwarding, so that a burst of Metadata requests for one topic
/// forwards it once.
#[derive(Default)]
pub struct Forwards {
    in_flight: RefCell<BTreeSet<String>>,
}

/// Asks the controller's leader to create `topic` with the cluster's defaults, in the
/// background. Does nothing when a forward of it is under way, when too many are, or when
/// the leader or its address is unknown (the client's retry tries again).
pub fn create_topic(shard: &Rc<Shard>, topic: &str) {
    let forwards = &shard.forwards;
    {
        let mut in_flight = forwards.in_flight.borrow_mut();
        if in_flight.len() >= FORWARDS_IN_FLIGHT_MAX || !in_flight.insert(topic.to_string()) {
            return;
        }
    }
    let shard = Rc::clone(shard);
    let topic = topic.to_string();
    drop(io::spawn_local(async move {
        let outcome =
            io::timeout(Duration::from_millis(FORWARD_TIMEOUT_MS), forward_create(&shard, &topic))
                .await;
        match outcome {
            Ok(Ok(code)) => {
                tracing::info!(%topic, code, "auto-creation forwarded to the controller")
            }
            Ok(Err(error)) => tracing::warn!(%topic, %error, "auto-creation not forwarded"),
            Err(_) => tracing::warn!(%topic, "auto-creation forward timed out"),
        }
        shard.forwards.in_flight.borrow_mut().remove(&topic);
    }));
}

/// The controller's answer's error code for the topic.
async fn forward_create(shard: &Rc<Shard>, topic: &str) -> Result<i16, String> {
    let address = controller_address(shard).await.ok_or("no known controller address")?;
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(FORWARD_TIMEOUT_MS as i32)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_num_partitions(-1)
            .with_replication_factor(-1)]);
    let response = call_broker(address, CREATE_TOPICS_VERSION, &request).await?;
    Ok(response.topics.first().map_or(-1, |result| result.error_code))
}

/// Sends `request` (at `version`) to the broker at `address` as a Kafka client would, on a
/// connection of its own, and decodes its answer (bounded: `protocol/outbound.rs`). The
/// caller bounds the time.
pub async fn call_broker<R: Request>(
    address: SocketAddr,
    version: i16,
    request: &R,
) -> Result<R::Response, String> {
    let correlation_id = 1;
    let frame = outbound::encode_request(version, correlation_id, request)
        .map_err(|error| error.to_string())?;
    let stream = Stream::connect(address).await.map_err(|error| error.to_string())?;
    let (written, _) = stream.write_all(frame).await;
    written.map_err(|error| error.to_string())?;
    let prefix = read_exact(&stream, 4).await?;
    let size = outbound::response_size([prefix[0], prefix[1], prefix[2], prefix[3]])
        .map_err(|error| error.to_string())?;
    let body = bytes::Bytes::from(read_exact(&stream, size).await?);
    let _ = stream.shutdown();
    outbound::decode_response::<R>(body, version, correlation_id).map_err(|error| error.to_string())
}

/// The controller's leader's client address, when this broker knows the leader and the
/// leader registered an IP address.
async fn controller_address(shard: &Rc<Shard>) -> Option<SocketAddr> {
    let leader = shard.call_on(0, |zero| async move { zero.controller()?.leader() }).await??;
    broker_address(shard, leader)
}

/// A registered broker's client address, if it registered an IP address (a host name would
/// need a resolver the I/O layer does not have).
pub fn broker_address(shard: &Shard, node_id: i32) -> Option<SocketAddr> {
    let endpoint = shard.topics().brokers.get(&node_id)?.clone();
    let ip: std::net::IpAddr = endpoint.host.parse().ok()?;
    Some(SocketAddr::new(ip, endpoint.port))
}

/// Reads exactly `size` bytes (bounded by the caller's checked size).
async fn read_exact(stream: &Stream, size: usize) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(size);
    // Each round reads at least one byte or fails: at most `size` rounds.
    while bytes.len() < size {
        let (read, chunk) = stream.read(Vec::with_capacity(size - bytes.len())).await;
        match read {
            Ok(0) => return Err("the controller closed the connection".into()),
            Ok(count) => bytes.extend_from_slice(&chunk[..count.min(chunk.len())]),
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(bytes)
}
