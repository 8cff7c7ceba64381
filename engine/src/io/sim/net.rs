//! TCP under simulation: madsim's `TcpListener`/`TcpStream` behind the io API.
//!
//! Differences from the uring backend, forced by madsim's async-only `bind` (documented for
//! callers): `Listener::bind` starts binding in a background task, so a bind error surfaces at
//! the first `accept`, and for port 0 `local_addr` fails until the bind completed. Shards of one
//! node binding the same address share one madsim listener, which is what SO_REUSEPORT gives.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Poll, Waker};

use madsim::net::{NetSim, TcpListener, TcpStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::io::buf::{init_slice, IoBuf, IoBufMut};
use crate::io::local::Notify;

enum BindState {
    Binding,
    Bound(Rc<TcpListener>),
    Failed(io::ErrorKind, String),
}

struct SharedListener {
    /// Keeps the runtime's network alive, so its address (part of the key) is never reused
    /// by a later runtime while this listener exists.
    _network: Arc<NetSim>,
    address: SocketAddr,
    state: RefCell<BindState>,
    bound: Notify,
}

/// (runtime's network, node, address). The network's address tells runtimes apart: tasks of
/// a finished runtime may still hold their listener, and the next runtime on this thread
/// reuses node ids and addresses; without it a new broker would "share" a dead listener.
type ListenerKey = (usize, madsim::task::NodeId, SocketAddr);

thread_local! {
    /// Listeners by (node, address), so the shards of a node share one (SO_REUSEPORT).
    static LISTENERS: RefCell<BTreeMap<ListenerKey, Weak<SharedListener>>> =
        const { RefCell::new(BTreeMap::new()) };
}

pub(crate) struct OsListener {
    shared: Rc<SharedListener>,
}

impl OsListener {
    pub(crate) fn bind(address: SocketAddr) -> io::Result<OsListener> {
        let network = NetSim::current();
        let key = (Arc::as_ptr(&network) as usize, madsim::plugin::node(), address);
        let existing = LISTENERS.with(|listeners| {
            let mut listeners = listeners.borrow_mut();
            listeners.retain(|_, listener| listener.strong_count() > 0);
            listeners.get(&key).and_then(Weak::upgrade)
        });
        if let (Some(shared), true) = (existing, address.port() != 0) {
            return Ok(OsListener { shared });
        }
        let shared = Rc::new(SharedListener {
            _network: network,
            address,
            state: RefCell::new(BindState::Binding),
            bound: Notify::new(),
        });
        LISTENERS.with(|listeners| listeners.borrow_mut().insert(key, Rc::downgrade(&shared)));
        let binding = shared.clone();
        // madsim binds asynchronously; the task finishes the bind and wakes pending accepts.
        drop(madsim::task::spawn_local(async move {
            let state = match TcpListener::bind(binding.address).await {
                Ok(listener) => BindState::Bound(Rc::new(listener)),
                Err(error) => BindState::Failed(error.kind(), error.to_string()),
            };
            *binding.state.borrow_mut() = state;
            binding.bound.notify_waiters();
        }));
        Ok(OsListener { shared })
    }

    async fn bound(&self) -> io::Result<Rc<TcpListener>> {
        loop {
            let notified = self.shared.bound.notified();
            match &*self.shared.state.borrow() {
                BindState::Bound(listener) => return Ok(listener.clone()),
                BindState::Failed(kind, message) => {
                    return Err(io::Error::new(*kind, message.clone()))
                }
                BindState::Binding => {}
            }
            notified.await;
        }
    }

    pub(crate) async fn accept(&self) -> io::Result<(OsStream, SocketAddr)> {
        let listener = self.bound().await?;
        let (stream, peer) = listener.accept().await?;
        Ok((OsStream::new(stream)?, peer))
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match &*self.shared.state.borrow() {
            BindState::Bound(listener) => listener.local_addr(),
            BindState::Failed(kind, message) => Err(io::Error::new(*kind, message.clone())),
            BindState::Binding if self.shared.address.port() != 0 => Ok(self.shared.address),
            BindState::Binding => Err(io::Error::new(io::ErrorKind::WouldBlock, "still binding")),
        }
    }
}

struct SharedStream {
    /// `None` after `shutdown` (dropping the madsim stream is what makes the peer see EOF).
    stream: RefCell<Option<TcpStream>>,
    read_waker: RefCell<Option<Waker>>,
    local: SocketAddr,
    peer: SocketAddr,
}

#[derive(Clone)]
pub(crate) struct OsStream {
    shared: Rc<SharedStream>,
}

impl OsStream {
    fn new(stream: TcpStream) -> io::Result<OsStream> {
        let local = stream.local_addr()?;
        let peer = stream.peer_addr()?;
        let shared = SharedStream {
            stream: RefCell::new(Some(stream)),
            read_waker: RefCell::new(None),
            local,
            peer,
        };
        Ok(OsStream { shared: Rc::new(shared) })
    }

    pub(crate) async fn connect(address: SocketAddr) -> io::Result<OsStream> {
        OsStream::new(TcpStream::connect(address).await?)
    }

    pub(crate) async fn read<B: IoBufMut>(&self, mut buf: B) -> (io::Result<usize>, B) {
        let init = buf.bytes_init();
        let spare = buf.bytes_total() - init;
        let result = std::future::poll_fn(|cx| {
            let mut slot = self.shared.stream.borrow_mut();
            let Some(stream) = slot.as_mut() else { return Poll::Ready(Ok(0)) };
            // SAFETY: the spare capacity is `spare` writable bytes after the initialised part.
            let target = unsafe {
                let start = buf.stable_mut_ptr().add(init).cast::<MaybeUninit<u8>>();
                std::slice::from_raw_parts_mut(start, spare)
            };
            let mut read_buf = ReadBuf::uninit(target);
            match Pin::new(stream).poll_read(cx, &mut read_buf) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(read_buf.filled().len())),
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                Poll::Pending => {
                    *self.shared.read_waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        if let Ok(count) = result {
            debug_assert!(count <= spare);
            // SAFETY: `poll_read` initialised `count` bytes of the spare capacity.
            unsafe { buf.set_init(init + count) };
        }
        (result, buf)
    }

    pub(crate) async fn write_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        let total = buf.bytes_init();
        // Progress survives a `Pending`, so a re-poll never sends bytes twice.
        let mut written = 0;
        let result = std::future::poll_fn(|cx| {
            let mut slot = self.shared.stream.borrow_mut();
            let Some(stream) = slot.as_mut() else {
                return Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
            };
            // Each round writes at least one byte or ends: at most `total` rounds.
            while written < total {
                match Pin::new(&mut *stream).poll_write(cx, &init_slice(&buf)[written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(count)) => written += count,
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            Pin::new(stream).poll_flush(cx)
        })
        .await;
        (result, buf)
    }

    pub(crate) fn set_nodelay(&self, _on: bool) -> io::Result<()> {
        Ok(())
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.shared.peer)
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.shared.local)
    }

    pub(crate) fn shutdown(&self) -> io::Result<()> {
        drop(self.shared.stream.borrow_mut().take());
        if let Some(waker) = self.shared.read_waker.borrow_mut().take() {
            waker.wake();
        }
        Ok(())
    }
}
