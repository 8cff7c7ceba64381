//! One client connection: a reader task that frames and dispatches requests, and a writer task
//! that sends responses strictly in request order.
//!
//! Requests are handled concurrently (a pipelining producer gets one group commit for many
//! in-flight requests), but their handlers are *started* in arrival order, which keeps appends
//! to a partition in request order. The number of requests in flight per connection is
//! bounded; when the bound is reached the reader stops reading (TCP backpressure).
//!
//! Memory is bounded per connection and per shard (`memory.rs`): a request frame is charged
//! to the shard's budget from the moment its size is known, a response from encoding until
//! the socket took it. The reader stops reading while the shard's budget is spent or while
//! this connection's unsent responses exceed their bound, so a client that never reads its
//! answers stops being read: it slows down, the broker does not grow. Fetches are started
//! only when the writer reaches them (all earlier answers sent), so a connection holds one
//! fetch answer at a time, however many fetches it pipelines; and the larger parts of its
//! record data are read chunk by chunk as the socket takes them (`fetch_regions.rs`), through
//! one chunk buffer at a time.
//!
//! A connection that moves no bytes for `connections_max_idle_ms`, while it waits for
//! nothing but the client, is closed (Kafka's `connections.max.idle.ms`).
//!
//! OffsetCommits are the exception: a connection's commits run one after another
//! ([`CommitChain`]), as Kafka runs all of a connection's requests. Started in order is not
//! enough for them: each is applied to the coordinator's state when its append is durable,
//! and two commits made durable by one fsync wake in any order, so a pipelined older commit
//! (`commitAsync`) could win over a newer one.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::io::local::{self, Notify, OneshotReceiver, OneshotSender};
use crate::io::{self, JoinHandle, Stream};
use crate::log::region::Chunk;
use crate::protocol::api_versions::api_versions_response;
use crate::protocol::frame::FrameDecoder;
use crate::protocol::request::{decode_request, Request, RequestError, RequestMeta};
use crate::protocol::response::fetch_framing::{encode_fetch_framing, FetchPiece};
use crate::protocol::response::{encode_response, Response};
use crate::protocol::response_fit::fit_to_version;

use super::config::BrokerConfig;
use super::fetch_regions::{RegionLease, SEND_CHUNK_BYTES};
use super::handlers::fetch::{FetchAnswer, Records};
use super::handlers::{self, Answer};
use super::memory::Reservation;
use super::shard::Shard;

/// Smallest free space offered to a socket read; larger frames reserve their whole size.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// A handler not started yet: the writer starts it when it reaches it.
type Deferred = Box<dyn FnOnce() -> JoinHandle<Outcome>>;

/// What the writer does next, in request order.
enum Pending {
    /// A response being computed.
    Response(JoinHandle<Outcome>),
    /// A fetch: started only once every earlier answer is sent, so that its data is read
    /// when the socket can take it, not held behind a client that does not read.
    Deferred(Deferred),
    /// A response that is already known, with its charge to the shard's budget.
    Ready(Bytes, Reservation),
    /// Stop after everything queued before it was written.
    Close,
}

/// One piece of an encoded answer.
enum Piece {
    Bytes(Bytes),
    /// Fetched record data read (and checked) chunk by chunk as it is sent.
    Region(RegionLease),
}

impl Piece {
    /// Bytes this piece holds in the heap until it is sent.
    fn heap_bytes(&self) -> usize {
        match self {
            Piece::Bytes(bytes) => bytes.len(),
            Piece::Region(_) => 0,
        }
    }
}

/// What a request's handler ends with.
enum Outcome {
    /// The encoded answer, in pieces to send in order (a fetch's record data stays the
    /// buffer it was read into, or the file it is in), its heap bytes charged to the shard's
    /// budget until it is sent.
    Respond(Vec<Piece>, Reservation),
    /// The request gets no response (Produce with acks=0).
    Silent,
    /// The response could not be encoded: the client would wait forever, so close.
    Close,
}

/// Bounded FIFO between the reader and the writer of one connection.
struct ResponseQueue {
    /// Each entry with the size of the request frame it answers.
    entries: RefCell<VecDeque<(Pending, usize)>>,
    capacity: usize,
    /// Request bytes held by queued entries, and their bound (a single larger request is
    /// still admitted when nothing else is queued).
    queued_bytes: Cell<usize>,
    queued_bytes_max: usize,
    changed: Notify,
    writer_gone: Cell<bool>,
    /// Encoded answers not yet taken by the socket, and their bound: past it, no more requests
    /// are read from this connection.
    unsent_response_bytes: Cell<usize>,
    unsent_response_bytes_max: usize,
    /// When bytes last moved in either direction, and whether the writer is waiting for a
    /// handler (then the connection is busy, not idle).
    last_activity: Cell<io::Instant>,
    writer_waits_for_handler: Cell<bool>,
}

impl ResponseQueue {
    fn is_full(&self, size_bytes: usize) -> bool {
        let queued_bytes = self.queued_bytes.get();
        self.entries.borrow().len() >= self.capacity
            || (queued_bytes > 0 && queued_bytes + size_bytes > self.queued_bytes_max)
    }

    async fn push(&self, pending: Pending, size_bytes: usize) {
        while self.is_full(size_bytes) && !self.writer_gone.get() {
            self.changed.notified().await;
        }
        self.queued_bytes.set(self.queued_bytes.get() + size_bytes);
        self.entries.borrow_mut().push_back((pending, size_bytes));
        self.changed.notify_waiters();
    }

    fn new(config: &BrokerConfig) -> ResponseQueue {
        ResponseQueue {
            entries: RefCell::new(VecDeque::new()),
            capacity: config.max_in_flight_requests_per_connection,
            queued_bytes: Cell::new(0),
            queued_bytes_max: config.max_in_flight_bytes_per_connection,
            changed: Notify::new(),
            writer_gone: Cell::new(false),
            unsent_response_bytes: Cell::new(0),
            unsent_response_bytes_max: config.max_unsent_response_bytes_per_connection,
            last_activity: Cell::new(io::now()),
            writer_waits_for_handler: Cell::new(false),
        }
    }

    fn add_unsent(&self, size_bytes: usize) {
        self.unsent_response_bytes.set(self.unsent_response_bytes.get() + size_bytes);
    }

    fn remove_unsent(&self, size_bytes: usize) {
        let unsent = self.unsent_response_bytes.get();
        assert!(unsent >= size_bytes, "sent {size_bytes} bytes of {unsent} unsent");
        self.unsent_response_bytes.set(unsent - size_bytes);
        self.changed.notify_waiters();
    }

    async fn pop(&self) -> Pending {
        loop {
            let next = self.entries.borrow_mut().pop_front();
            if let Some((pending, size_bytes)) = next {
                debug_assert!(self.queued_bytes.get() >= size_bytes);
                self.queued_bytes.set(self.queued_bytes.get() - size_bytes);
                self.changed.notify_waiters();
                return pending;
            }
            self.changed.notified().await;
        }
    }
}

/// The OffsetCommits of one connection, chained: each waits until the previous one has been
/// answered (made durable and applied, or failed) before it starts.
#[derive(Default)]
struct CommitChain {
    /// Resolves (or is cancelled) when the connection's latest commit has finished.
    latest: RefCell<Option<OneshotReceiver<()>>>,
}

impl CommitChain {
    /// Links a new commit: what it must wait for, and what it drops when done.
    fn link(&self) -> (Option<OneshotReceiver<()>>, OneshotSender<()>) {
        let (done, finished) = local::oneshot();
        (self.latest.replace(Some(finished)), done)
    }
}

/// The broker-wide count of open client connections, shared by every shard.
#[derive(Default)]
pub struct ConnectionCount {
    open: AtomicUsize,
}

/// One admitted connection; gives its slot back when dropped.
pub struct ConnectionSlot {
    count: Arc<ConnectionCount>,
}

impl ConnectionCount {
    /// A slot if fewer than `max_connections` are open (Kafka's `max.connections`).
    pub fn admit(self: &Arc<Self>, max_connections: usize) -> Option<ConnectionSlot> {
        let admitted = self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
            (open < max_connections).then_some(open + 1)
        });
        admitted.ok().map(|_| ConnectionSlot { count: self.clone() })
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let before = self.count.open.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "a connection slot was given back twice");
    }
}

pub async fn serve(shard: Rc<Shard>, stream: Stream, peer: SocketAddr, slot: ConnectionSlot) {
    let _ = stream.set_nodelay(true);
    tracing::debug!(%peer, shard = shard.id, "connection accepted");
    let queue = Rc::new(ResponseQueue::new(&shard.config));
    let idle = Duration::from_millis(shard.config.connections_max_idle_ms);
    let watchdog = io::spawn_local(close_when_idle(stream.clone(), queue.clone(), idle, peer));
    let cut_off_watch = io::spawn_local(close_when_cut_off(shard.clone(), stream.clone(), peer));
    let writer =
        io::spawn_local(write_responses(shard.clone(), stream.clone(), queue.clone(), peer));
    read_requests(&shard, &stream, &queue, peer).await;
    queue.push(Pending::Close, 0).await;
    writer.await;
    watchdog.abort();
    cut_off_watch.abort();
    drop(slot);
    tracing::debug!(%peer, "connection closed");
}

/// Closes the connection once no bytes have moved for `idle` while it waited only for the
/// client (a handler still working keeps it open; a write the client never takes does not).
async fn close_when_idle(
    stream: Stream,
    queue: Rc<ResponseQueue>,
    idle: Duration,
    peer: SocketAddr,
) {
    // Bounded: each round sleeps until the current deadline, which only moves forward.
    loop {
        let deadline = queue.last_activity.get().checked_add(idle);
        let Some(deadline) = deadline else { return };
        let now = io::now();
        if now >= deadline && !queue.writer_waits_for_handler.get() {
            tracing::info!(%peer, idle_ms = idle.as_millis() as u64, "closing idle connection");
            let _ = stream.shutdown();
            return;
        }
        let wait = deadline.duration_since(now).max(Duration::from_millis(100));
        io::sleep(wait).await;
    }
}

/// Closes the connection when the broker is cut off from the cluster (`cluster/cut_off.rs`):
/// its client then asks the other brokers it knows.
async fn close_when_cut_off(shard: Rc<Shard>, stream: Stream, peer: SocketAddr) {
    // Each round waits for a change; it ends when the connection closes (aborted) or here.
    loop {
        let changed = shard.cut_off_changed.notified();
        if shard.is_cut_off() {
            tracing::debug!(%peer, "closing connection: cut off from the cluster");
            let _ = stream.shutdown();
            return;
        }
        changed.await;
    }
}

async fn read_requests(
    shard: &Rc<Shard>,
    stream: &Stream,
    queue: &Rc<ResponseQueue>,
    peer: SocketAddr,
) {
    let mut decoder = FrameDecoder::new(shard.config.max_request_bytes);
    let commits = CommitChain::default();
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    // The charge for a large frame whose body is still arriving.
    let mut frame_charge: Option<Reservation> = None;
    loop {
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(frame)) => {
                    let size_bytes = frame.len();
                    let charge =
                        frame_charge.take().unwrap_or_else(|| shard.memory.charge(size_bytes));
                    let Some(pending) =
                        dispatch(shard, frame.freeze(), charge, peer, queue, &commits)
                    else {
                        return;
                    };
                    queue.push(pending, size_bytes).await;
                    if queue.writer_gone.get() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%peer, %error, "closing connection: bad frame");
                    return;
                }
            }
        }
        wait_for_room(shard, queue).await;
        if queue.writer_gone.get() {
            return;
        }
        let needed = decoder.bytes_needed(&buffer);
        if needed > READ_CHUNK_BYTES && frame_charge.is_none() {
            // Kafka's memory pool: a large frame is paid for before its body is read.
            frame_charge = Some(shard.memory.charge(buffer.len() + needed));
        }
        let wanted = needed.max(READ_CHUNK_BYTES);
        if buffer.capacity() - buffer.len() < wanted {
            buffer.reserve(wanted);
        }
        let (result, returned) = stream.read(buffer).await;
        buffer = returned;
        match result {
            Ok(0) => return,
            Ok(_) => queue.last_activity.set(io::now()),
            Err(error) => {
                tracing::debug!(%peer, %error, "connection read failed");
                return;
            }
        }
    }
}

/// Waits until this connection may read more: the shard's budget is not spent and this
/// connection's unsent answers are within their bound.
async fn wait_for_room(shard: &Shard, queue: &ResponseQueue) {
    // Bounded: each round waits for a send or a release, which make progress.
    loop {
        if shard.memory.is_exhausted() {
            shard.memory.wait_until_available().await;
            continue;
        }
        if queue.unsent_response_bytes.get() <= queue.unsent_response_bytes_max
            || queue.writer_gone.get()
        {
            return;
        }
        queue.changed.notified().await;
    }
}

/// Decodes one frame and starts its handler (a fetch: prepares it for the writer to start).
/// `None` closes the connection. `charge` pays for the frame until the handler is done.
fn dispatch(
    shard: &Rc<Shard>,
    frame: Bytes,
    charge: Reservation,
    peer: SocketAddr,
    queue: &Rc<ResponseQueue>,
    commits: &CommitChain,
) -> Option<Pending> {
    match decode_request(frame) {
        Ok(request) => {
            let meta = request.header.clone();
            let link = matches!(request.body, Request::OffsetCommit(_)).then(|| commits.link());
            let deferred = matches!(request.body, Request::Fetch(_));
            let (shard, queue) = (shard.clone(), queue.clone());
            let run = move || {
                io::spawn_local(async move {
                    // Held until this request is answered: dropping it releases the next commit.
                    let _done = match link {
                        Some((previous, done)) => {
                            if let Some(previous) = previous {
                                let _ = previous.await;
                            }
                            Some(done)
                        }
                        None => None,
                    };
                    let handler = handlers::handle(shard.clone(), request, peer);
                    let Some(answer) = handler.await else { return Outcome::Silent };
                    drop(charge);
                    match encode_answer_or_log(&meta, answer, peer) {
                        Some((pieces, grant)) => {
                            let size_bytes = pieces.iter().map(Piece::heap_bytes).sum();
                            queue.add_unsent(size_bytes);
                            let charge = shard.memory.charge(size_bytes);
                            drop(grant);
                            Outcome::Respond(pieces, charge)
                        }
                        None => Outcome::Close,
                    }
                })
            };
            if deferred {
                return Some(Pending::Deferred(Box::new(run)));
            }
            Some(Pending::Response(run()))
        }
        Err(RequestError::UnsupportedVersion { api_key, api_version, correlation_id })
            if api_key == kafka_protocol::messages::ApiKey::ApiVersions =>
        {
            // The client retries with a version from the ranges this v0 body carries.
            let (body, encode_version) = api_versions_response(api_version);
            let meta = RequestMeta {
                api_key,
                api_version: encode_version,
                correlation_id,
                client_id: None,
            };
            let bytes = encode_or_log(&meta, &Response::ApiVersions(body), peer)?;
            queue.add_unsent(bytes.len());
            let charge = shard.memory.charge(bytes.len());
            Some(Pending::Ready(bytes, charge))
        }
        Err(error) => {
            tracing::warn!(%peer, %error, "closing connection: request not understood");
            None
        }
    }
}

/// Encodes an answer at the request's version: a fetch answer around its record data (no
/// copy of it), with the grant that paid for its records until they are charged as pieces.
fn encode_answer_or_log(
    meta: &RequestMeta,
    answer: Answer,
    peer: SocketAddr,
) -> Option<(Vec<Piece>, Reservation)> {
    let FetchAnswer { body, records, grant } = match answer {
        Answer::Fetch(answer) => answer,
        Answer::Response(mut response) => {
            fit_to_version(&mut response, meta.api_version);
            let bytes = encode_or_log(meta, &response, peer)?;
            return Some((vec![Piece::Bytes(bytes)], Reservation::default()));
        }
    };
    let mut response = Response::Fetch(body);
    fit_to_version(&mut response, meta.api_version);
    let Response::Fetch(body) = response else { unreachable!("fitting keeps the API") };
    let sizes: Vec<Option<usize>> =
        records.iter().map(|records| Some(records.size_bytes())).collect();
    let framing = match encode_fetch_framing(meta, body, &sizes) {
        Ok(framing) => framing,
        Err(error) => {
            let (api_key, api_version) = (meta.api_key, meta.api_version);
            tracing::error!(%peer, ?api_key, api_version, %error, "cannot encode response");
            return None;
        }
    };
    let mut records: Vec<Option<Records>> = records.into_iter().map(Some).collect();
    let mut pieces = Vec::with_capacity(framing.len());
    for piece in framing {
        let records = match piece {
            FetchPiece::Framing(bytes) => {
                pieces.push(Piece::Bytes(bytes));
                continue;
            }
            FetchPiece::Records { index } => records.get_mut(index).and_then(Option::take),
        };
        match records {
            Some(Records::Bytes(bytes)) => pieces.push(Piece::Bytes(bytes)),
            Some(Records::Region(region)) => pieces.push(Piece::Region(region)),
            None => io::bug("a fetch answer's records placed twice or not at all"),
        }
    }
    Some((pieces, grant))
}

fn encode_or_log(meta: &RequestMeta, response: &Response, peer: SocketAddr) -> Option<Bytes> {
    match encode_response(meta, response) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            let (api_key, api_version) = (meta.api_key, meta.api_version);
            tracing::error!(%peer, ?api_key, api_version, %error, "cannot encode response");
            None
        }
    }
}

async fn write_responses(
    shard: Rc<Shard>,
    stream: Stream,
    queue: Rc<ResponseQueue>,
    peer: SocketAddr,
) {
    loop {
        let handler = match queue.pop().await {
            Pending::Close => break,
            Pending::Ready(bytes, charge) => Outcome::Respond(vec![Piece::Bytes(bytes)], charge),
            Pending::Response(handler) => wait_for_handler(&queue, handler).await,
            Pending::Deferred(start) => wait_for_handler(&queue, start()).await,
        };
        let (pieces, charge) = match handler {
            Outcome::Respond(pieces, charge) => (pieces, charge),
            Outcome::Silent => continue,
            Outcome::Close => break,
        };
        let size_bytes = pieces.iter().map(Piece::heap_bytes).sum();
        let result = write_pieces(&shard, &stream, &queue, pieces).await;
        drop(charge);
        queue.remove_unsent(size_bytes);
        if let Err(error) = result {
            tracing::debug!(%peer, %error, "connection write failed");
            break;
        }
    }
    queue.writer_gone.set(true);
    queue.changed.notify_waiters();
    let _ = stream.shutdown();
}

async fn write_pieces(
    shard: &Rc<Shard>,
    stream: &Stream,
    queue: &ResponseQueue,
    pieces: Vec<Piece>,
) -> std::io::Result<()> {
    for piece in pieces {
        match piece {
            Piece::Bytes(bytes) => {
                let (result, _) = stream.write_all(bytes).await;
                result?;
                queue.last_activity.set(io::now());
            }
            Piece::Region(region) => send_region(shard, stream, queue, region).await?,
        }
    }
    Ok(())
}

/// Sends a region of fetched data chunk by chunk through two buffers: while one chunk is
/// written, the next is read and checked on the partition's owner shard. An error gives the
/// whole answer up (its length is already sent): the connection closes and the client asks
/// again.
async fn send_region(
    shard: &Rc<Shard>,
    stream: &Stream,
    queue: &ResponseQueue,
    region: RegionLease,
) -> std::io::Result<()> {
    let buffers = &shard.send_buffers;
    let (first, first_charge) = buffers.take(&shard.memory, SEND_CHUNK_BYTES).await;
    let (spare, spare_charge) = buffers.take(&shard.memory, SEND_CHUNK_BYTES).await;
    let mut charges = vec![first_charge, spare_charge];
    let mut spare = Some(spare);
    let mut sent_bytes = 0usize;
    let mut next = region.next_chunk(first).await;
    // Each round sends at least one batch, grows a buffer for one batch larger than it (the
    // next round then sends that batch), or ends; so it is bounded by the region's batches.
    let result = loop {
        let (result, buffer) = next;
        match result {
            Ok(Chunk::Ready(size_bytes)) if sent_bytes + size_bytes == region.size_bytes() => {
                // The last chunk: nothing more to read.
                let (written, returned) = stream.write_all(buffer).await;
                buffers.give_back(returned);
                sent_bytes += size_bytes;
                break written;
            }
            Ok(Chunk::Ready(size_bytes)) => {
                let Some(reading) = spare.take() else { io::bug("a send buffer went missing") };
                let (written, read) = futures_util::future::join(
                    stream.write_all(buffer),
                    region.next_chunk(reading),
                )
                .await;
                spare = Some(written.1);
                next = read;
                if let Err(error) = written.0 {
                    buffers.give_back(next.1);
                    break Err(error);
                }
                sent_bytes += size_bytes;
                queue.last_activity.set(io::now());
            }
            Ok(Chunk::NeedCapacity(size_bytes)) => {
                let (larger, charge) = buffers.take(&shard.memory, size_bytes).await;
                charges.push(charge);
                next = region.next_chunk(larger).await;
            }
            Ok(Chunk::Done) => {
                buffers.give_back(buffer);
                break Ok(());
            }
            Err(error) => {
                let size_bytes = region.size_bytes();
                tracing::warn!(sent_bytes, size_bytes, %error, "giving a fetch answer up mid-send");
                break Err(std::io::Error::other(error));
            }
        }
    };
    if result.is_ok() {
        assert_eq!(sent_bytes, region.size_bytes(), "a region is sent whole");
        queue.last_activity.set(io::now());
    }
    if let Some(spare) = spare {
        buffers.give_back(spare);
    }
    drop(charges);
    result
}

async fn wait_for_handler(queue: &ResponseQueue, handler: JoinHandle<Outcome>) -> Outcome {
    queue.writer_waits_for_handler.set(true);
    let outcome = handler.await;
    queue.writer_waits_for_handler.set(false);
    // The time a handler took is not idle time.
    queue.last_activity.set(io::now());
    outcome
}
