//! One client connection: a reader task that frames and dispatches requests, and a writer task
//! that sends responses strictly in request order.
//!
//! Requests are handled concurrently (a pipelining producer gets one group commit for many
//! in-flight requests), but their handlers are *started* in arrival order, which keeps appends
//! to a partition in request order. The number of requests in flight per connection is
//! bounded; when the bound is reached the reader stops reading (TCP backpressure).
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

use bytes::{Bytes, BytesMut};

use crate::io::local::{self, Notify, OneshotReceiver, OneshotSender};
use crate::io::{self, JoinHandle, Stream};
use crate::protocol::api_versions::api_versions_response;
use crate::protocol::frame::FrameDecoder;
use crate::protocol::request::{decode_request, Request, RequestError, RequestMeta};
use crate::protocol::response::{encode_response, Response};
use crate::protocol::response_fit::fit_to_version;

use super::handlers;
use super::shard::Shard;

/// Smallest free space offered to a socket read; larger frames reserve their whole size.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// What the writer does next, in request order.
enum Pending {
    /// A response being computed.
    Response(JoinHandle<Outcome>),
    /// A response that is already known.
    Ready(Bytes),
    /// Stop after everything queued before it was written.
    Close,
}

/// What a request's handler ends with.
enum Outcome {
    Respond(Bytes),
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

pub async fn serve(shard: Rc<Shard>, stream: Stream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    tracing::debug!(%peer, shard = shard.id, "connection accepted");
    let queue = Rc::new(ResponseQueue {
        entries: RefCell::new(VecDeque::new()),
        capacity: shard.config.max_in_flight_requests_per_connection,
        queued_bytes: Cell::new(0),
        queued_bytes_max: shard.config.max_in_flight_bytes_per_connection,
        changed: Notify::new(),
        writer_gone: Cell::new(false),
    });
    let writer = io::spawn_local(write_responses(stream.clone(), queue.clone(), peer));
    read_requests(&shard, &stream, &queue, peer).await;
    queue.push(Pending::Close, 0).await;
    writer.await;
    tracing::debug!(%peer, "connection closed");
}

async fn read_requests(
    shard: &Rc<Shard>,
    stream: &Stream,
    queue: &ResponseQueue,
    peer: SocketAddr,
) {
    let mut decoder = FrameDecoder::new(shard.config.max_request_bytes);
    let commits = CommitChain::default();
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(frame)) => {
                    let size_bytes = frame.len();
                    let Some(pending) = dispatch(shard, frame.freeze(), peer, &commits) else {
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
        let wanted = decoder.bytes_needed(&buffer).max(READ_CHUNK_BYTES);
        if buffer.capacity() - buffer.len() < wanted {
            buffer.reserve(wanted);
        }
        let (result, returned) = stream.read(buffer).await;
        buffer = returned;
        match result {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%peer, %error, "connection read failed");
                return;
            }
        }
    }
}

/// Decodes one frame and starts its handler. `None` closes the connection.
fn dispatch(
    shard: &Rc<Shard>,
    frame: Bytes,
    peer: SocketAddr,
    commits: &CommitChain,
) -> Option<Pending> {
    match decode_request(frame) {
        Ok(request) => {
            let meta = request.header.clone();
            let link = matches!(request.body, Request::OffsetCommit(_)).then(|| commits.link());
            let handler = handlers::handle(shard.clone(), request, peer);
            Some(Pending::Response(io::spawn_local(async move {
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
                let Some(mut response) = handler.await else { return Outcome::Silent };
                fit_to_version(&mut response, meta.api_version);
                match encode_or_log(&meta, &response, peer) {
                    Some(bytes) => Outcome::Respond(bytes),
                    None => Outcome::Close,
                }
            })))
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
            encode_or_log(&meta, &Response::ApiVersions(body), peer).map(Pending::Ready)
        }
        Err(error) => {
            tracing::warn!(%peer, %error, "closing connection: request not understood");
            None
        }
    }
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

async fn write_responses(stream: Stream, queue: Rc<ResponseQueue>, peer: SocketAddr) {
    loop {
        let bytes = match queue.pop().await {
            Pending::Close => break,
            Pending::Ready(bytes) => bytes,
            Pending::Response(handler) => match handler.await {
                Outcome::Respond(bytes) => bytes,
                Outcome::Silent => continue,
                Outcome::Close => break,
            },
        };
        let (result, _) = stream.write_all(bytes).await;
        if let Err(error) = result {
            tracing::debug!(%peer, %error, "connection write failed");
            break;
        }
    }
    queue.writer_gone.set(true);
    queue.changed.notify_waiters();
    let _ = stream.shutdown();
}
