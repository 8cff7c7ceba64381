//! The peer transport over real sockets (one shard, `io::block_on`): brokers connect once per
//! pair and exchange coalesced frames both ways; a restarted broker is redialed; hostile
//! connections are closed without harm to the others; a full queue drops; `stop` ends all.
//! Waits poll a condition against a deadline, never sleep for luck.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::broker::partition::entries_of;
use crate::broker::peer::{frame_size_bytes, PartitionMessage};
use crate::io::block_on;
use crate::record_batch::build::{encode_batch, ProducerStamp, Record};
use crate::record_batch::patch_base_offset;
use crate::replication::{AppendHeader, AppendRequest, Message, VoteRequest};

/// How long a test waits for a condition before it fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// One broker's transport and what it heard.
struct Node {
    transport: PeerTransport,
    frames: Rc<RefCell<Vec<PeerFrame>>>,
    hellos: Rc<RefCell<Vec<Hello>>>,
}

impl Node {
    /// Messages received from `sender`, in arrival order.
    fn messages_from(&self, sender: u32) -> Vec<Addressed> {
        let frames = self.frames.borrow();
        let from = frames.iter().filter(|frame| frame.sender == NodeId(sender));
        from.flat_map(|frame| frame.messages.iter().cloned()).collect()
    }

    fn frames_from(&self, sender: u32) -> usize {
        self.frames.borrow().iter().filter(|frame| frame.sender == NodeId(sender)).count()
    }

    fn hellos_from(&self, node: u32) -> usize {
        self.hellos.borrow().iter().filter(|hello| hello.node_id == NodeId(node)).count()
    }

    fn is_connected_to(&self, nodes: &[u32]) -> bool {
        let wanted: Vec<NodeId> = nodes.iter().map(|&node| NodeId(node)).collect();
        self.transport.connected_peers() == wanted
    }
}

fn hello(node: u32) -> Hello {
    Hello {
        node_id: NodeId(node),
        kafka_host: format!("broker-{node}.example"),
        kafka_port: 9092 + node as u16,
        directory_id: [node as u8; 16],
    }
}

fn bind(address: SocketAddr) -> Listener {
    Listener::bind(address).expect("bind a peer listener")
}

/// Listeners for `nodes` on ephemeral ports of 127.0.0.1, and their addresses.
fn listeners(nodes: &[u32]) -> (Vec<Listener>, BTreeMap<NodeId, SocketAddr>) {
    let listeners: Vec<Listener> =
        nodes.iter().map(|_| bind("127.0.0.1:0".parse().expect("address"))).collect();
    let addresses = nodes
        .iter()
        .zip(&listeners)
        .map(|(&node, listener)| (NodeId(node), listener.local_addr().expect("local address")))
        .collect();
    (listeners, addresses)
}

fn start(node: u32, listener: Listener, addresses: &BTreeMap<NodeId, SocketAddr>) -> Node {
    let peers = addresses.iter().filter(|(&peer, _)| peer != NodeId(node));
    let peers = peers.map(|(&peer, &address)| (peer, address)).collect();
    let frames = Rc::new(RefCell::new(Vec::new()));
    let hellos = Rc::new(RefCell::new(Vec::new()));
    let (frames_seen, hellos_seen) = (frames.clone(), hellos.clone());
    let on_frame: Rc<dyn Fn(PeerFrame)> =
        Rc::new(move |frame| frames_seen.borrow_mut().push(frame));
    let on_hello: Rc<dyn Fn(Hello)> = Rc::new(move |hello| hellos_seen.borrow_mut().push(hello));
    let transport = PeerTransport::start(hello(node), listener, peers, on_frame, on_hello);
    Node { transport, frames, hellos }
}

/// Brokers `nodes`, each knowing all the others, fully connected.
async fn cluster(nodes: &[u32]) -> (Vec<Node>, BTreeMap<NodeId, SocketAddr>) {
    let (listeners, addresses) = listeners(nodes);
    let started: Vec<Node> = nodes
        .iter()
        .zip(listeners)
        .map(|(&node, listener)| start(node, listener, &addresses))
        .collect();
    eventually("every pair connected", || fully_connected(&started, nodes)).await;
    (started, addresses)
}

fn fully_connected(started: &[Node], nodes: &[u32]) -> bool {
    started.iter().zip(nodes).all(|(node, &id)| {
        let others: Vec<u32> = nodes.iter().copied().filter(|&other| other != id).collect();
        node.is_connected_to(&others)
    })
}

/// Waits until `condition` holds, failing the test after [`DEADLINE`].
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = io::now() + DEADLINE;
    while !condition() {
        assert!(io::now() < deadline, "timed out waiting for: {what}");
        io::sleep(Duration::from_millis(5)).await;
    }
}

/// A vote request of `topic`'s partition `partition`.
fn vote(topic: &str, partition: i32) -> Addressed {
    let request = VoteRequest {
        epoch: 3,
        candidate: NodeId(1),
        log_end_offset: 100 + i64::from(partition),
        last_epoch: 2,
        pre_vote: false,
        transfer: false,
    };
    Addressed {
        topic: topic.to_string(),
        partition,
        message: PartitionMessage::Replica(Message::VoteRequest(request)),
    }
}

/// An append of two real batches (a peer decodes their headers), from offset 10.
fn append(topic: &str, partition: i32) -> Addressed {
    let mut payload = Vec::new();
    for (offset, records) in [(10, 2usize), (12, 1)] {
        let values: Vec<Record> = (0..records)
            .map(|index| Record { value: Some(vec![index as u8; 100]), ..Record::default() })
            .collect();
        let mut batch = encode_batch(&values, 1_000, ProducerStamp::NONE);
        patch_base_offset(&mut batch, offset, 4);
        payload.extend_from_slice(&batch);
    }
    let payload = Bytes::from(payload);
    let entries = entries_of(&payload).expect("whole batches");
    let header = AppendHeader {
        epoch: 4,
        leader: NodeId(1),
        prev_offset: 9,
        prev_epoch: 4,
        leader_commit: 9,
        leader_clock_ms: 0,
    };
    let request = AppendRequest { header, entries, payload, voter_changes: vec![] };
    Addressed {
        topic: topic.to_string(),
        partition,
        message: PartitionMessage::Replica(Message::AppendRequest(request)),
    }
}

/// What `from` sends `to` in the tests: `count` messages addressed so the receiver can tell.
fn traffic(from: u32, to: u32, count: i32) -> Vec<Addressed> {
    let topic = format!("from-{from}-to-{to}");
    (0..count)
        .map(|partition| match partition % 10 {
            0 => append(&topic, partition),
            _ => vote(&topic, partition),
        })
        .collect()
}

/// Sends `traffic(from, to, count)` in one burst (no await: one turn).
fn send_traffic(node: &Node, from: u32, to: u32, count: i32) {
    for message in traffic(from, to, count) {
        node.transport.send(NodeId(to), message);
    }
}

/// Reads until the peer closes; returns what arrived. Fails the test after [`DEADLINE`].
async fn read_until_closed(stream: &Stream) -> Vec<u8> {
    let mut received = Vec::new();
    let read_all = async {
        loop {
            let (result, buffer) = stream.read(Vec::with_capacity(4096)).await;
            match result {
                Ok(0) | Err(_) => return,
                Ok(_) => received.extend_from_slice(&buffer),
            }
        }
    };
    assert!(io::timeout(DEADLINE, read_all).await.is_ok(), "the transport closed the connection");
    received
}

/// `body` behind its u32 length prefix.
fn prefixed(body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(4 + body.len());
    out.put_u32(body.len() as u32);
    out.put_slice(body);
    out.to_vec()
}

#[test]
fn three_brokers_exchange_coalesced_frames_both_ways() {
    block_on(async {
        let nodes = [1, 2, 3];
        let (cluster, _) = cluster(&nodes).await;
        for (node, &id) in cluster.iter().zip(&nodes) {
            for &other in nodes.iter().filter(|&&other| other != id) {
                assert_eq!(node.hellos_from(other), 1, "node {id} heard {other} once");
            }
            let expected: Vec<Hello> =
                node.hellos.borrow().iter().map(|h| hello(h.node_id.0)).collect();
            assert_eq!(*node.hellos.borrow(), expected, "hellos arrive as sent");
        }
        // Every node sends each other node 100 messages of 100 partitions in one turn.
        for (node, &from) in cluster.iter().zip(&nodes) {
            for &to in nodes.iter().filter(|&&to| to != from) {
                send_traffic(node, from, to, 100);
            }
        }
        let all_arrived = || {
            cluster.iter().zip(&nodes).all(|(node, &to)| {
                nodes
                    .iter()
                    .filter(|&&from| from != to)
                    .all(|&from| node.messages_from(from).len() == 100)
            })
        };
        eventually("every message arrived", all_arrived).await;
        for (node, &to) in cluster.iter().zip(&nodes) {
            for &from in nodes.iter().filter(|&&from| from != to) {
                assert_eq!(node.messages_from(from), traffic(from, to, 100), "{from} to {to}");
                // Sent in one turn, coalesced across partitions into a single frame.
                assert_eq!(node.frames_from(from), 1, "frames from {from} to {to}");
            }
        }
        for node in &cluster {
            assert_eq!(node.transport.messages_dropped(), 0);
            node.transport.stop();
        }
    });
}

#[test]
fn a_restarted_peer_is_redialed_and_traffic_resumes() {
    block_on(async {
        let nodes = [1, 2, 3];
        let (mut cluster, addresses) = cluster(&nodes).await;
        cluster[1].transport.stop();
        let gone = || !cluster[0].transport.is_connected(NodeId(2));
        eventually("node 1 saw node 2 go", gone).await;
        eventually("node 3 saw node 2 go", || !cluster[2].transport.is_connected(NodeId(2))).await;
        // The same node id comes back on the same port, with a new transport.
        let restarted = start(2, bind(addresses[&NodeId(2)]), &addresses);
        cluster[1] = restarted;
        eventually("the restarted node is connected", || fully_connected(&cluster, &nodes)).await;
        assert_eq!(cluster[0].hellos_from(2), 2, "node 1 heard the restarted node's hello");
        assert_eq!(cluster[2].hellos_from(2), 2, "node 3 heard the restarted node's hello");
        for (from, to) in [(1, 2), (2, 1), (2, 3), (3, 2)] {
            send_traffic(&cluster[from as usize - 1], from, to, 20);
        }
        let resumed = || {
            [(1, 2), (2, 1), (2, 3), (3, 2)]
                .iter()
                .all(|&(from, to)| cluster[to as usize - 1].messages_from(from).len() == 20)
        };
        eventually("traffic resumed both ways", resumed).await;
        assert_eq!(cluster[1].messages_from(1), traffic(1, 2, 20));
        assert_eq!(cluster[2].messages_from(2), traffic(2, 3, 20));
        for node in &cluster {
            node.transport.stop();
        }
    });
}

#[test]
fn hostile_connections_are_closed_without_harming_the_others() {
    block_on(async {
        let nodes = [1, 2, 3];
        let (cluster, addresses) = cluster(&nodes).await;
        let hello_from = |node: u32| prefixed(&encode_hello(&hello(node)));
        let garbage_of_a_valid_length = prefixed(b"not a hello at all");
        let hostile: Vec<(&str, u32, Vec<u8>)> = vec![
            ("text", 3, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
            ("garbage", 3, garbage_of_a_valid_length),
            ("an oversized length", 3, u32::MAX.to_be_bytes().to_vec()),
            (
                "a length just past a hello",
                3,
                ((HELLO_BYTES_MAX + 1) as u32).to_be_bytes().to_vec(),
            ),
            ("a hello from an unknown node", 3, hello_from(9)),
            ("a hello from the acceptor itself", 3, hello_from(3)),
            ("a hello from a node that should accept", 2, hello_from(3)),
        ];
        for (what, target, bytes) in hostile {
            let stream = Stream::connect(addresses[&NodeId(target)]).await.expect("connect");
            stream.write_all(bytes).await.0.expect("write");
            let received = read_until_closed(&stream).await;
            // The acceptor spoke first: its hello, and nothing else.
            let body = received.get(4..).map(Bytes::copy_from_slice).unwrap_or_default();
            assert_eq!(decode_hello(body), Ok(hello(target)), "{what}");
            assert!(fully_connected(&cluster, &nodes), "{what} harmed no other connection");
        }
        // Nothing was heard from the hostile connections; traffic still flows.
        assert_eq!(cluster[2].hellos.borrow().len(), 2);
        assert_eq!(cluster[1].hellos.borrow().len(), 2);
        send_traffic(&cluster[0], 1, 3, 10);
        send_traffic(&cluster[2], 3, 2, 10);
        let flowing =
            || cluster[2].messages_from(1).len() == 10 && cluster[1].messages_from(3).len() == 10;
        eventually("traffic flows after the hostile connections", flowing).await;
        for node in &cluster {
            node.transport.stop();
        }
    });
}

#[test]
fn a_newer_connection_from_a_peer_replaces_the_older_one() {
    block_on(async {
        let nodes = [1, 2];
        let (cluster, addresses) = cluster(&nodes).await;
        // An impostor speaks for node 1: a hello, a frame, then a frame from another sender,
        // all in one write so that node 2 reads them together.
        let frame = |sender: u32| {
            let messages = vec![vote("impostor", 7)];
            encode_prefixed(&PeerFrame { sender: NodeId(sender), messages }).to_vec()
        };
        let hello = prefixed(&encode_hello(&hello(1)));
        let stream = Stream::connect(addresses[&NodeId(2)]).await.expect("connect");
        stream.write_all([hello, frame(1), frame(3)].concat()).await.0.expect("write");
        read_until_closed(&stream).await;
        // The impostor's connection replaced node 1's: its first frame was delivered, then
        // the wrong sender closed it.
        assert_eq!(cluster[1].messages_from(1), vec![vote("impostor", 7)]);
        assert_eq!(cluster[1].messages_from(3), vec![]);
        // Node 1 saw its connection closed, redialed, and replaced the impostor's in turn.
        eventually("node 1 redialed", || cluster[0].hellos_from(2) == 2).await;
        eventually("connected again", || fully_connected(&cluster, &nodes)).await;
        assert_eq!(cluster[1].hellos_from(1), 3, "node 1, the impostor, node 1 again");
        send_traffic(&cluster[0], 1, 2, 5);
        eventually("traffic resumed", || cluster[1].messages_from(1).len() == 6).await;
        for node in &cluster {
            node.transport.stop();
        }
    });
}

#[test]
fn an_idle_connection_carries_keepalives_and_a_silent_peer_is_closed() {
    block_on(async {
        // Node 2 knows node 1 but never dials it (the lower id dials): a test plays node 1.
        let (mut listeners, addresses) = listeners(&[2]);
        let mut peers = addresses.clone();
        peers.insert(NodeId(1), "127.0.0.1:1".parse().expect("address"));
        let node = start(2, listeners.remove(0), &peers);
        let stream = Stream::connect(addresses[&NodeId(2)]).await.expect("connect");
        stream.write_all(prefixed(&encode_hello(&hello(1)))).await.0.expect("write");
        eventually("node 2 accepted node 1", || node.is_connected_to(&[1])).await;
        // Node 1 says nothing more: node 2 sends keepalives, then gives up on the silence.
        let started = io::now();
        let received = Bytes::from(read_until_closed(&stream).await);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(SILENCE_MS_MAX / 2), "closed after {waited:?}");
        assert!(!node.transport.is_connected(NodeId(1)));
        let hello_bytes = 4 + encode_hello(&hello(2)).len();
        let keepalive = encode_prefixed(&PeerFrame { sender: NodeId(2), messages: vec![] });
        let keepalives = received.slice(hello_bytes..);
        assert!(keepalives.len() >= keepalive.len(), "at least one keepalive");
        for chunk in keepalives.chunks(keepalive.len()) {
            assert_eq!(chunk, &keepalive[..], "only keepalives after the hello");
        }
        assert!(node.frames.borrow().is_empty(), "keepalives are not handed on");
        node.transport.stop();
    });
}

#[test]
fn a_dialer_refuses_a_node_other_than_the_one_it_dialed() {
    block_on(async {
        // Node 1 dials node 2's address, where a listener answers as node 3.
        let (mut listeners, addresses) = listeners(&[1, 2]);
        let impostor = listeners.remove(1);
        let node = start(1, listeners.remove(0), &addresses);
        for round in 0..2 {
            let (stream, _) = impostor.accept().await.expect("accept");
            stream.write_all(prefixed(&encode_hello(&hello(3)))).await.0.expect("write");
            let received = Bytes::from(read_until_closed(&stream).await);
            // The dialer spoke first (its hello), then closed, and dials again.
            assert_eq!(decode_hello(received.slice(4..)), Ok(hello(1)), "round {round}");
            assert!(!node.transport.is_connected(NodeId(2)));
        }
        assert!(node.hellos.borrow().is_empty(), "the wrong node's hello is not handed on");
        node.transport.stop();
    });
}

#[test]
fn a_full_queue_drops_rather_than_grows() {
    block_on(async {
        let nodes = [1, 2];
        let (cluster, _) = cluster(&nodes).await;
        let sender = &cluster[0].transport;
        // One turn: the writer cannot drain before the burst ends.
        let burst = QUEUE_MESSAGES_MAX + 100;
        for partition in 0..burst {
            sender.send(NodeId(2), vote("t", partition as i32));
        }
        assert_eq!(sender.messages_dropped(), 100);
        // Unknown nodes and messages a peer would refuse are dropped too.
        sender.send(NodeId(9), vote("t", 0));
        sender.send(NodeId(2), vote("t", -1));
        sender.send(NodeId(2), vote("", 0));
        assert_eq!(sender.messages_dropped(), 103);
        let all = || cluster[1].messages_from(1).len() == QUEUE_MESSAGES_MAX;
        eventually("the queued messages arrived", all).await;
        let expected: Vec<Addressed> =
            (0..QUEUE_MESSAGES_MAX).map(|partition| vote("t", partition as i32)).collect();
        assert_eq!(cluster[1].messages_from(1), expected, "the first ones, in order");
        assert_eq!(cluster[1].frames_from(1), 1, "in a single frame");
        for node in &cluster {
            node.transport.stop();
        }
    });
}

#[test]
fn the_queue_is_bounded_by_bytes_as_well_as_count() {
    let payload = Bytes::from(vec![0u8; 1 << 20]);
    let header = AppendHeader {
        epoch: 1,
        leader: NodeId(1),
        prev_offset: -1,
        prev_epoch: -1,
        leader_commit: 0,
        leader_clock_ms: 0,
    };
    let request = AppendRequest { header, entries: vec![], payload, voter_changes: vec![] };
    let message = Addressed {
        topic: "t".into(),
        partition: 0,
        message: PartitionMessage::Replica(Message::AppendRequest(request)),
    };
    let size_bytes = message_size_bytes(&message);
    let mut queue = OutQueue::default();
    let mut admitted = 0;
    while queue.push(message.clone(), size_bytes) {
        admitted += 1;
        assert!(admitted <= QUEUE_MESSAGES_MAX, "the queue never refused");
    }
    assert_eq!(admitted, QUEUE_BYTES_MAX / size_bytes);
    assert!(queue.queued_bytes <= QUEUE_BYTES_MAX);
    let taken = queue.take_all();
    assert_eq!(taken.len(), admitted);
    assert!(queue.push(message, size_bytes), "room again once the writer took everything");
}

#[test]
fn frames_are_split_at_the_count_and_byte_limits() {
    let count = MESSAGES_PER_FRAME_MAX + 10;
    let mut pending: VecDeque<Addressed> =
        (0..count).map(|partition| vote("t", partition as i32)).collect();
    let first = next_frame(NodeId(1), &mut pending);
    assert_eq!(first.messages.len(), MESSAGES_PER_FRAME_MAX);
    assert_eq!(next_frame(NodeId(1), &mut pending).messages.len(), 10);
    assert!(pending.is_empty());
    assert_eq!(next_frame(NodeId(1), &mut pending).messages.len(), 0, "a keepalive");
    // Large appends: each frame as full as it can be, none beyond the limit.
    let payload = Bytes::from(vec![0u8; 10 << 20]);
    let header = AppendHeader {
        epoch: 1,
        leader: NodeId(1),
        prev_offset: -1,
        prev_epoch: -1,
        leader_commit: 0,
        leader_clock_ms: 0,
    };
    let request = AppendRequest { header, entries: vec![], payload, voter_changes: vec![] };
    let message = Addressed {
        topic: "t".into(),
        partition: 0,
        message: PartitionMessage::Replica(Message::AppendRequest(request)),
    };
    let per_frame = (FRAME_BYTES_MAX - FRAME_OVERHEAD_BYTES) / message_size_bytes(&message);
    let mut pending: VecDeque<Addressed> =
        (0..2 * per_frame + 1).map(|_| message.clone()).collect();
    for expected in [per_frame, per_frame, 1] {
        let frame = next_frame(NodeId(1), &mut pending);
        assert_eq!(frame.messages.len(), expected);
        assert!(frame_size_bytes(&frame) <= FRAME_BYTES_MAX);
    }
    assert!(pending.is_empty());
}

#[test]
fn stop_closes_the_listener_and_ends_every_task() {
    block_on(async {
        let nodes = [1, 2, 3];
        let (cluster, addresses) = cluster(&nodes).await;
        // A connection still waiting for its hello is ended too.
        let idle = Stream::connect(addresses[&NodeId(2)]).await.expect("connect");
        let node = &cluster[1];
        node.transport.stop();
        assert!(node.transport.connected_peers().is_empty());
        node.transport.send(NodeId(1), vote("t", 0));
        assert_eq!(node.transport.messages_dropped(), 1, "nothing is sent once stopped");
        // Every task let go of the transport: only the test's handle is left.
        let ended = || Rc::strong_count(&node.transport.inner) == 1;
        eventually("every task ended", ended).await;
        read_until_closed(&idle).await;
        eventually("the others saw it go", || cluster[0].is_connected_to(&[3])).await;
        eventually("the others saw it go", || cluster[2].is_connected_to(&[1])).await;
        // The listener is closed: a dial is refused (after any connection still queued on it).
        let refused = async {
            while Stream::connect(addresses[&NodeId(2)]).await.is_ok() {
                io::sleep(Duration::from_millis(5)).await;
            }
        };
        assert!(io::timeout(DEADLINE, refused).await.is_ok(), "the listener closed");
        for node in &cluster {
            node.transport.stop();
        }
        for node in &cluster {
            let ended = || Rc::strong_count(&node.transport.inner) == 1;
            eventually("every task ended", ended).await;
        }
    });
}
