//! The peer transport: one TCP connection per broker pair carrying peer frames, so that the
//! replica messages of every partition two brokers share travel coalesced, one frame per
//! turn (DESIGN.md), and so that a replica never waits on the network: `send` only queues.
//!
//! - **One connection per pair.** The broker with the lower node id dials the higher one and
//!   redials after any failure (backoff 50 ms doubling to 1 s); the higher one accepts. Two
//!   brokers dialing each other at once would otherwise race to two connections, and which
//!   one carries what would depend on timing.
//! - **Hello first.** Each side writes its hello (`peer.rs`) before anything else. The
//!   acceptor learns who dialed from it and refuses (closes, with a warning) a hello from an
//!   unknown node, from itself, or from a higher id (which should be accepting, not dialing:
//!   the brokers disagree about the cluster). The dialer refuses a hello from another node
//!   than the one it dialed (an address reused by another broker). A newer connection from a
//!   peer replaces the older one: the peer restarted, the old one is half-dead. `on_hello`
//!   hears every hello that is accepted.
//! - **Bounded queues, loss allowed.** Each connection has a queue of at most
//!   [`QUEUE_MESSAGES_MAX`] messages and [`QUEUE_BYTES_MAX`] bytes (as framed); beyond it, and
//!   for a peer that is not connected, a message is dropped. Raft tolerates loss (the sender
//!   retries on its next heartbeat), while messages kept for a peer that is away would only
//!   arrive stale, in a burst, after it is back. A connection that closes drops its queue.
//! - **One writer and one reader task per connection.** The writer takes everything queued
//!   when it wakes and writes it in as few frames as the limits allow: whatever the replicas
//!   sent in one turn leaves in one frame. The reader reads a length (at most
//!   [`FRAME_BYTES_MAX`]), then the body into a buffer that grows only as bytes arrive, checks
//!   the frame's sender, and hands the frame to `on_frame`. A bad frame closes the
//!   connection with a warning; the dialer then redials.
//! - **Liveness.** A writer with nothing to send for a second sends a keepalive (a frame with
//!   no messages); a reader that hears nothing for ten seconds closes, so a peer that vanished
//!   without a FIN is noticed and redialed.
//! - **Hostile input** from whoever reaches the port: at most [`HANDSHAKES_MAX`] connections
//!   may be waiting for their hello, each for at most five seconds and for at most
//!   [`HELLO_BYTES_MAX`] bytes, so a flood of idle connections costs little.
//!
//! Limitations: peers are not authenticated (anyone who can reach the port and knows a node
//! id can speak for that node, and replace its connection); no TLS; reconnect delays carry
//! no jitter.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{
    decode, decode_hello, encode_hello, encode_prefixed, is_sendable, message_size_bytes,
    Addressed, Hello, PeerDecodeError, PeerFrame, FRAME_BYTES_MAX, FRAME_OVERHEAD_BYTES,
    HELLO_BYTES_MAX, MESSAGES_PER_FRAME_MAX,
};
use crate::io::local::Notify;
use crate::io::{self, JoinHandle, Listener, Stream};
use crate::replication::NodeId;

/// Messages queued for one peer; beyond it new ones are dropped.
pub const QUEUE_MESSAGES_MAX: usize = 8192;
/// Bytes (as they will be framed) queued for one peer; beyond it new ones are dropped.
pub const QUEUE_BYTES_MAX: usize = 64 << 20;
/// Connections accepted but still waiting for their hello; beyond it new ones are closed.
pub const HANDSHAKES_MAX: usize = 64;
/// How long a new connection may take to exchange hellos.
const HELLO_TIMEOUT_MS: u64 = 5_000;
/// How long a dial may take (an unreachable host would otherwise hold it for minutes).
const CONNECT_TIMEOUT_MS: u64 = 5_000;
const RECONNECT_DELAY_MS_MIN: u64 = 50;
const RECONNECT_DELAY_MS_MAX: u64 = 1_000;
/// A writer with nothing to send for this long sends a keepalive (tests: a tenth, so that
/// they see keepalives and silences quickly).
const KEEPALIVE_INTERVAL_MS: u64 = if cfg!(test) { 100 } else { 1_000 };
/// A reader that hears nothing for this long closes the connection.
const SILENCE_MS_MAX: u64 = if cfg!(test) { 1_000 } else { 10_000 };
/// A failed accept (out of descriptors) is retried after this long, not in a hot loop.
const ACCEPT_RETRY_DELAY_MS: u64 = 50;
/// A read asks for at most this much more than the frame being read still needs.
const READ_CHUNK_BYTES: usize = 64 * 1024;

// A message that fits a frame fits an empty queue, so every sendable message can be sent.
const _: () = assert!(QUEUE_BYTES_MAX >= FRAME_BYTES_MAX);
const _: () = assert!(QUEUE_MESSAGES_MAX <= MESSAGES_PER_FRAME_MAX);
// A live but idle peer sends several keepalives before it is taken for gone.
const _: () = assert!(KEEPALIVE_INTERVAL_MS * 3 <= SILENCE_MS_MAX);
const _: () = assert!(RECONNECT_DELAY_MS_MIN <= RECONNECT_DELAY_MS_MAX);
const _: () = assert!(HELLO_BYTES_MAX <= FRAME_BYTES_MAX);

/// A handle on the transport of this broker; clones share it. Call [`PeerTransport::stop`]
/// to end it: its tasks hold it alive until then.
#[derive(Clone)]
pub struct PeerTransport {
    inner: Rc<Inner>,
}

struct Inner {
    hello: Hello,
    /// Our hello behind its length prefix: the first bytes of every connection.
    hello_prefixed: Bytes,
    /// Every other broker and its peer address.
    peers: BTreeMap<NodeId, SocketAddr>,
    on_frame: Rc<dyn Fn(PeerFrame)>,
    on_hello: Rc<dyn Fn(Hello)>,
    /// The live connection of each connected peer.
    connections: RefCell<BTreeMap<NodeId, Rc<Connection>>>,
    /// Every running task, so that `stop` ends them all; a task removes itself when done.
    tasks: RefCell<BTreeMap<u64, JoinHandle<()>>>,
    task_id_next: Cell<u64>,
    connection_id_next: Cell<u64>,
    /// Accepted connections still waiting for their hello.
    handshakes: Cell<usize>,
    messages_dropped: Cell<u64>,
    stopped: Cell<bool>,
}

impl PeerTransport {
    /// Starts accepting on `listener` and dialing every peer in `peers` (every other broker,
    /// with its peer address) whose id is higher than ours. `on_frame` gets every frame that
    /// carries messages, `on_hello` every accepted hello. Panics if `hello` is not valid or
    /// `peers` names this broker (both come from the configuration, checked before).
    pub fn start(
        hello: Hello,
        listener: Listener,
        peers: BTreeMap<NodeId, SocketAddr>,
        on_frame: Rc<dyn Fn(PeerFrame)>,
        on_hello: Rc<dyn Fn(Hello)>,
    ) -> PeerTransport {
        assert!(hello.is_valid(), "an invalid hello: {hello:?}");
        assert!(!peers.contains_key(&hello.node_id), "the peers include this broker");
        let body = encode_hello(&hello);
        let mut hello_prefixed = BytesMut::with_capacity(4 + body.len());
        hello_prefixed.put_u32(body.len() as u32);
        hello_prefixed.put_slice(&body);
        let inner = Rc::new(Inner {
            hello,
            hello_prefixed: hello_prefixed.freeze(),
            peers,
            on_frame,
            on_hello,
            connections: RefCell::new(BTreeMap::new()),
            tasks: RefCell::new(BTreeMap::new()),
            task_id_next: Cell::new(0),
            connection_id_next: Cell::new(0),
            handshakes: Cell::new(0),
            messages_dropped: Cell::new(0),
            stopped: Cell::new(false),
        });
        spawn_task(&inner, accept_connections(inner.clone(), listener));
        let own_id = inner.hello.node_id;
        for (&peer, &address) in inner.peers.iter().filter(|(&peer, _)| peer > own_id) {
            spawn_task(&inner, dial(inner.clone(), peer, address));
        }
        PeerTransport { inner }
    }

    /// Queues `message` for `to`; never waits. Dropped (and counted) when `to` is not
    /// connected, when its queue is full, or when the message cannot be framed.
    pub fn send(&self, to: NodeId, message: Addressed) {
        let inner = &self.inner;
        if !is_sendable(&message) {
            tracing::warn!(peer = to.0, topic = %message.topic, "peer message cannot be framed");
            inner.count_dropped();
            return;
        }
        let connection = inner.connection(to);
        let Some(connection) = connection else {
            tracing::debug!(peer = to.0, "peer not connected: message dropped");
            inner.count_dropped();
            return;
        };
        let size_bytes = message_size_bytes(&message);
        if !connection.queue.borrow_mut().push(message, size_bytes) {
            tracing::debug!(peer = to.0, "peer queue full: message dropped");
            inner.count_dropped();
            return;
        }
        connection.wake.notify_waiters();
    }

    /// Closes every connection and the listener, and ends every task (each at its next
    /// scheduling, which `abort` makes immediate). Messages still queued are dropped.
    pub fn stop(&self) {
        let inner = &self.inner;
        inner.stopped.set(true);
        let connections = std::mem::take(&mut *inner.connections.borrow_mut());
        for connection in connections.values() {
            connection.close();
        }
        let tasks = std::mem::take(&mut *inner.tasks.borrow_mut());
        for task in tasks.values() {
            task.abort();
        }
    }

    /// Whether `node` has a live connection (hellos exchanged, not closed).
    pub fn is_connected(&self, node: NodeId) -> bool {
        self.inner.connection(node).is_some()
    }

    /// The peers with a live connection, in id order.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        let connections = self.inner.connections.borrow();
        connections.iter().filter(|(_, c)| !c.closed.get()).map(|(&peer, _)| peer).collect()
    }

    /// Messages dropped by `send` since the start (not connected, queue full, unframable).
    pub fn messages_dropped(&self) -> u64 {
        self.inner.messages_dropped.get()
    }
}

impl Inner {
    fn connection(&self, node: NodeId) -> Option<Rc<Connection>> {
        let connections = self.connections.borrow();
        connections.get(&node).filter(|connection| !connection.closed.get()).cloned()
    }

    fn count_dropped(&self) {
        self.messages_dropped.set(self.messages_dropped.get() + 1);
    }

    /// Removes `connection` from the live ones, unless a newer one replaced it already.
    fn forget(&self, connection: &Connection) {
        let mut connections = self.connections.borrow_mut();
        if connections.get(&connection.peer).is_some_and(|live| live.id == connection.id) {
            connections.remove(&connection.peer);
        }
    }
}

/// Spawns `task` and keeps its handle for `stop`; nothing once stopped. Returns its id.
fn spawn_task(inner: &Rc<Inner>, task: impl Future<Output = ()> + 'static) -> Option<u64> {
    if inner.stopped.get() {
        return None;
    }
    let id = inner.task_id_next.get();
    inner.task_id_next.set(id + 1);
    let registry = inner.clone();
    let handle = io::spawn_local(async move {
        task.await;
        registry.tasks.borrow_mut().remove(&id);
    });
    // The task has not run yet (a spawned task runs only once this one yields).
    let replaced = inner.tasks.borrow_mut().insert(id, handle);
    assert!(replaced.is_none(), "task id {id} reused");
    Some(id)
}

fn abort_task(inner: &Inner, id: u64) {
    if let Some(task) = inner.tasks.borrow_mut().remove(&id) {
        task.abort();
    }
}

/// One live connection to a peer, shared by its reader and its writer.
struct Connection {
    /// Tells this connection from a newer one to the same peer.
    id: u64,
    peer: NodeId,
    stream: Stream,
    queue: RefCell<OutQueue>,
    /// Wakes the writer: a message was queued, or the connection closed.
    wake: Notify,
    closed: Cell<bool>,
}

impl Connection {
    /// Idempotent: shuts the socket down, which ends a pending read or write, and wakes the
    /// writer so that it sees `closed`.
    fn close(&self) {
        if !self.closed.replace(true) {
            let _ = self.stream.shutdown();
        }
        self.wake.notify_waiters();
    }
}

/// Messages waiting for a connection's writer, bounded by count and bytes.
#[derive(Default)]
struct OutQueue {
    messages: VecDeque<Addressed>,
    queued_bytes: usize,
}

impl OutQueue {
    /// Queues `message` of `size_bytes` unless that would pass a bound; says whether it did.
    fn push(&mut self, message: Addressed, size_bytes: usize) -> bool {
        if self.messages.len() >= QUEUE_MESSAGES_MAX
            || self.queued_bytes + size_bytes > QUEUE_BYTES_MAX
        {
            return false;
        }
        self.messages.push_back(message);
        self.queued_bytes += size_bytes;
        debug_assert!(self.messages.len() <= QUEUE_MESSAGES_MAX);
        debug_assert!(self.queued_bytes <= QUEUE_BYTES_MAX);
        true
    }

    /// Everything queued, in order; the queue is empty afterwards.
    fn take_all(&mut self) -> VecDeque<Addressed> {
        self.queued_bytes = 0;
        std::mem::take(&mut self.messages)
    }
}

/// The next frame of `pending`: as many of its first messages as the limits allow (at least
/// one, as `send` admits only messages that fit a frame alone; none is a keepalive).
fn next_frame(sender: NodeId, pending: &mut VecDeque<Addressed>) -> PeerFrame {
    let mut messages = Vec::with_capacity(pending.len().min(MESSAGES_PER_FRAME_MAX));
    let mut size_bytes = FRAME_OVERHEAD_BYTES;
    while let Some(next) = pending.front() {
        let next_bytes = message_size_bytes(next);
        if messages.len() == MESSAGES_PER_FRAME_MAX || size_bytes + next_bytes > FRAME_BYTES_MAX {
            break;
        }
        size_bytes += next_bytes;
        messages.extend(pending.pop_front());
    }
    assert!(pending.is_empty() || !messages.is_empty(), "a message larger than a frame");
    assert!(size_bytes <= FRAME_BYTES_MAX);
    PeerFrame { sender, messages }
}

/// Accepts connections until the transport stops (which drops this task and the listener).
async fn accept_connections(inner: Rc<Inner>, listener: Listener) {
    loop {
        match listener.accept().await {
            Ok((stream, address)) => admit(&inner, stream, address),
            Err(error) => {
                tracing::warn!(%error, "peer listener: accept failed");
                io::sleep(Duration::from_millis(ACCEPT_RETRY_DELAY_MS)).await;
            }
        }
    }
}

/// Starts the handshake of an accepted connection, unless too many are under way.
fn admit(inner: &Rc<Inner>, stream: Stream, address: SocketAddr) {
    if inner.handshakes.get() >= HANDSHAKES_MAX {
        tracing::warn!(%address, "peer listener: too many handshakes under way; closing");
        let _ = stream.shutdown();
        return;
    }
    let slot = HandshakeSlot::take(inner.clone());
    spawn_task(inner, accepted(inner.clone(), stream, address, slot));
}

/// Counts an accepted connection waiting for its hello, until dropped.
struct HandshakeSlot {
    inner: Rc<Inner>,
}

impl HandshakeSlot {
    fn take(inner: Rc<Inner>) -> HandshakeSlot {
        inner.handshakes.set(inner.handshakes.get() + 1);
        assert!(inner.handshakes.get() <= HANDSHAKES_MAX);
        HandshakeSlot { inner }
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let handshakes = self.inner.handshakes.get();
        assert!(handshakes > 0, "a handshake slot given back twice");
        self.inner.handshakes.set(handshakes - 1);
    }
}

async fn accepted(inner: Rc<Inner>, stream: Stream, address: SocketAddr, slot: HandshakeSlot) {
    let _ = stream.set_nodelay(true);
    let handshake = exchange_hellos(&inner, &stream).await;
    drop(slot);
    let checked = handshake.and_then(|(hello, reader)| {
        check_dialer(&inner, &hello)?;
        Ok((hello, reader))
    });
    match checked {
        Ok((hello, reader)) => run_connection(&inner, hello, stream, reader).await,
        Err(error) => {
            error.log("peer connection refused", &address);
            let _ = stream.shutdown();
        }
    }
}

/// Whether the hello on an accepted connection is one of the peers that dial us.
fn check_dialer(inner: &Inner, hello: &Hello) -> Result<(), LinkError> {
    let own_id = inner.hello.node_id;
    let node = hello.node_id;
    if node == own_id || !inner.peers.contains_key(&node) {
        return Err(LinkError::UnknownPeer { node });
    }
    if node > own_id {
        // The lower id dials: a higher one dialing means the two disagree about the cluster.
        return Err(LinkError::WrongDirection { node });
    }
    Ok(())
}

/// Dials `peer` and serves each connection to it, redialing with backoff, until stopped.
async fn dial(inner: Rc<Inner>, peer: NodeId, address: SocketAddr) {
    let mut delay_ms = RECONNECT_DELAY_MS_MIN;
    // Ends when `stop` aborts this task; each round waits at least RECONNECT_DELAY_MS_MIN.
    loop {
        match connect(&inner, peer, address).await {
            Ok((hello, stream, reader)) => {
                let started = io::now();
                run_connection(&inner, hello, stream, reader).await;
                // A connection that lived resets the backoff; one closed at once does not.
                if started.elapsed() >= Duration::from_millis(RECONNECT_DELAY_MS_MAX) {
                    delay_ms = RECONNECT_DELAY_MS_MIN;
                }
            }
            Err(error) => error.log("dialing peer failed", &peer.0),
        }
        if inner.stopped.get() {
            return;
        }
        io::sleep(Duration::from_millis(delay_ms)).await;
        delay_ms = (delay_ms * 2).min(RECONNECT_DELAY_MS_MAX);
    }
}

async fn connect(
    inner: &Inner,
    peer: NodeId,
    address: SocketAddr,
) -> Result<(Hello, Stream, FrameReader), LinkError> {
    let timeout = Duration::from_millis(CONNECT_TIMEOUT_MS);
    let stream = match io::timeout(timeout, Stream::connect(address)).await {
        Ok(connected) => connected?,
        Err(_) => return Err(LinkError::TimedOut { what: "connect" }),
    };
    let _ = stream.set_nodelay(true);
    let handshake = exchange_hellos(inner, &stream).await;
    let checked = handshake.and_then(|(hello, reader)| {
        if hello.node_id != peer {
            return Err(LinkError::WrongPeer { expected: peer, node: hello.node_id });
        }
        Ok((hello, reader))
    });
    match checked {
        Ok((hello, reader)) => Ok((hello, stream, reader)),
        Err(error) => {
            let _ = stream.shutdown();
            Err(error)
        }
    }
}

/// Writes our hello and reads the peer's; returns it with a reader holding whatever
/// followed it.
async fn exchange_hellos(
    inner: &Inner,
    stream: &Stream,
) -> Result<(Hello, FrameReader), LinkError> {
    let exchange = async {
        stream.write_all(inner.hello_prefixed.clone()).await.0?;
        let mut reader = FrameReader::new();
        let silence = Duration::from_millis(HELLO_TIMEOUT_MS);
        let body = reader.next(stream, HELLO_BYTES_MAX, silence).await?;
        Ok::<_, LinkError>((decode_hello(body)?, reader))
    };
    match io::timeout(Duration::from_millis(HELLO_TIMEOUT_MS), exchange).await {
        Ok(exchanged) => exchanged,
        Err(_) => Err(LinkError::TimedOut { what: "hello" }),
    }
}

/// Serves one connection whose hellos are exchanged: registers it (replacing an older one
/// to the same peer), runs its writer and its reader, and forgets it when either ends.
async fn run_connection(inner: &Rc<Inner>, hello: Hello, stream: Stream, reader: FrameReader) {
    if inner.stopped.get() {
        let _ = stream.shutdown();
        return;
    }
    let id = inner.connection_id_next.get();
    inner.connection_id_next.set(id + 1);
    let peer = hello.node_id;
    let queue = RefCell::new(OutQueue::default());
    let closed = Cell::new(false);
    let connection = Rc::new(Connection { id, peer, stream, queue, wake: Notify::new(), closed });
    let older = inner.connections.borrow_mut().insert(peer, connection.clone());
    if let Some(older) = older {
        tracing::info!(peer = peer.0, "a newer connection replaces the peer's older one");
        older.close();
    }
    tracing::debug!(peer = peer.0, "peer connected");
    let writer = spawn_task(inner, write_frames(inner.hello.node_id, connection.clone()));
    (inner.on_hello)(hello);
    read_frames(inner, &connection, reader).await;
    connection.close();
    if let Some(writer) = writer {
        abort_task(inner, writer);
    }
    inner.forget(&connection);
    tracing::debug!(peer = peer.0, "peer connection closed");
}

/// Writes what is queued, coalesced into as few frames as the limits allow, until the
/// connection closes (or a write fails, which closes it).
async fn write_frames(sender: NodeId, connection: Rc<Connection>) {
    let keepalive = Duration::from_millis(KEEPALIVE_INTERVAL_MS);
    while !connection.closed.get() {
        let notified = connection.wake.notified();
        let mut pending = connection.queue.borrow_mut().take_all();
        if pending.is_empty() && io::timeout(keepalive, notified).await.is_ok() {
            // Something was queued, or the connection closed: look again.
            continue;
        }
        // Messages, or (none) a silence to break with a keepalive. Each round takes at
        // least one message, or is the single keepalive.
        loop {
            let frame = next_frame(sender, &mut pending);
            if let Err(error) = connection.stream.write_all(encode_prefixed(&frame)).await.0 {
                tracing::debug!(peer = connection.peer.0, %error, "peer write failed");
                connection.close();
                return;
            }
            if pending.is_empty() {
                break;
            }
        }
    }
}

/// Reads frames and hands those with messages to `on_frame`, until the connection closes
/// or the peer sends what it must not.
async fn read_frames(inner: &Inner, connection: &Connection, mut reader: FrameReader) {
    let silence = Duration::from_millis(SILENCE_MS_MAX);
    loop {
        let frame = match reader.next(&connection.stream, FRAME_BYTES_MAX, silence).await {
            Ok(body) => decode(body).map_err(LinkError::from),
            Err(error) => Err(error),
        };
        let checked = frame.and_then(|frame| {
            if frame.sender != connection.peer {
                return Err(LinkError::WrongSender { node: frame.sender });
            }
            Ok(frame)
        });
        let frame = match checked {
            Ok(frame) => frame,
            Err(error) => {
                error.log("closing peer connection", &connection.peer.0);
                return;
            }
        };
        // A closed connection (replaced, or stopped) delivers nothing more.
        if connection.closed.get() {
            return;
        }
        if !frame.messages.is_empty() {
            (inner.on_frame)(frame);
        }
    }
}

/// Reads length-prefixed bodies from a stream, keeping what arrived beyond the current one.
/// Its buffer grows only as bytes arrive, by at most [`READ_CHUNK_BYTES`] beyond what the
/// frame being read still needs: a length alone reserves nothing.
struct FrameReader {
    buffer: BytesMut,
}

impl FrameReader {
    fn new() -> FrameReader {
        // Room for a whole hello (and its length) in one read.
        FrameReader { buffer: BytesMut::with_capacity(4 + HELLO_BYTES_MAX) }
    }

    /// The next body of at most `limit_bytes`; fails on EOF, on a read error, on a larger
    /// length, or when nothing arrives for `silence`.
    async fn next(
        &mut self,
        stream: &Stream,
        limit_bytes: usize,
        silence: Duration,
    ) -> Result<Bytes, LinkError> {
        // Each round returns or reads at least one byte: at most 4 + limit_bytes rounds.
        loop {
            let needed_bytes = match self.buffer.get(..4) {
                None => 4 - self.buffer.len(),
                Some(prefix) => {
                    let length = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                    let size_bytes = length as usize;
                    if size_bytes > limit_bytes {
                        return Err(LinkError::TooLarge { size_bytes, limit_bytes });
                    }
                    if self.buffer.len() >= 4 + size_bytes {
                        let mut frame = self.buffer.split_to(4 + size_bytes);
                        frame.advance(4);
                        return Ok(frame.freeze());
                    }
                    4 + size_bytes - self.buffer.len()
                }
            };
            self.fill(stream, needed_bytes, silence).await?;
        }
    }

    /// Reads at least one byte more into the buffer.
    async fn fill(
        &mut self,
        stream: &Stream,
        needed_bytes: usize,
        silence: Duration,
    ) -> Result<(), LinkError> {
        assert!(needed_bytes > 0);
        let wanted_bytes = needed_bytes.min(READ_CHUNK_BYTES);
        if self.buffer.capacity() - self.buffer.len() < wanted_bytes {
            self.buffer.reserve(wanted_bytes);
        }
        let buffer = std::mem::take(&mut self.buffer);
        // On a timeout the read is dropped in flight with the buffer: the connection is
        // given up then (io's contract: drop a read only when giving the stream up).
        let Ok((result, buffer)) = io::timeout(silence, stream.read(buffer)).await else {
            return Err(LinkError::TimedOut { what: "read" });
        };
        self.buffer = buffer;
        match result? {
            0 => Err(LinkError::Closed),
            _ => Ok(()),
        }
    }
}

/// Why a peer connection ended or was refused.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("closed by the peer")]
    Closed,
    #[error("{what} timed out")]
    TimedOut { what: &'static str },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("a frame of {size_bytes} bytes announced, more than {limit_bytes}")]
    TooLarge { size_bytes: usize, limit_bytes: usize },
    #[error("{0}")]
    Decode(#[from] PeerDecodeError),
    #[error("hello from node {node:?}, which is not a peer")]
    UnknownPeer { node: NodeId },
    #[error("hello from node {node:?}, which should accept, not dial")]
    WrongDirection { node: NodeId },
    #[error("dialed node {expected:?}, but node {node:?} answered")]
    WrongPeer { expected: NodeId, node: NodeId },
    #[error("frame from node {node:?} on another peer's connection")]
    WrongSender { node: NodeId },
}

impl LinkError {
    /// Hostile or misconfigured peers are warned about; ordinary disconnections are not
    /// (a restarting peer would flood the log). `peer` is its id or address.
    fn log(&self, what: &'static str, peer: &dyn std::fmt::Display) {
        match self {
            LinkError::Closed | LinkError::TimedOut { .. } | LinkError::Io(_) => {
                tracing::debug!(%peer, error = %self, "{what}");
            }
            _ => tracing::warn!(%peer, error = %self, "{what}"),
        }
    }
}

#[cfg(test)]
mod tests;
