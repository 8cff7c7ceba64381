//! TCP: a listener per shard (SO_REUSEPORT) and connection streams with owned-buffer I/O.
//!
//! A [`Stream`] is cheaply cloneable (an `Rc` inside): give one clone to a reader task and one to
//! a writer task. One read and one write may be in flight at once; two concurrent reads (or two
//! concurrent writes) on the same stream would interleave bytes and are a caller bug.

use std::io;
use std::net::SocketAddr;

use super::backend::net::{OsListener, OsStream};
use super::buf::{IoBuf, IoBufMut};

pub struct Listener {
    inner: OsListener,
}

/// Fails (AddrInUse) when some socket keeps listening on `address` for
/// [`LISTENER_GONE_WAIT`]. SO_REUSEPORT, which lets every shard listen on one port, would
/// also let a second broker process of the same user join them silently, the kernel handing
/// each some of the connections: a broker checks with a plain bind before its shards
/// listen. Not airtight (two brokers starting within the same milliseconds both pass), but
/// it turns the usual mistake into a startup error.
///
/// Why wait: a process killed with SIGKILL leaves its listening sockets behind for a moment,
/// while the kernel tears its io_uring down (pending accepts hold the socket). Joining that
/// dying group, as the shards' SO_REUSEPORT bind used to, lost the connections the kernel
/// queued on it: a restart after kill -9 saw its first connections reset.
#[cfg(not(madsim))]
pub fn ensure_not_listening(address: SocketAddr) -> io::Result<()> {
    let deadline = std::time::Instant::now() + LISTENER_GONE_WAIT;
    loop {
        // SO_REUSEADDR without SO_REUSEPORT, and no listen: fails on a listening port only.
        match OsListener::probe(address) {
            Ok(()) => return Ok(()),
            Err(error) if error.kind() != io::ErrorKind::AddrInUse => return Err(error),
            Err(error) if std::time::Instant::now() >= deadline => return Err(error),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// How long [`ensure_not_listening`] waits for a listener to go away.
#[cfg(not(madsim))]
pub const LISTENER_GONE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl Listener {
    /// Binds and listens with SO_REUSEADDR + SO_REUSEPORT, so every shard can bind the same
    /// address and the kernel spreads connections across them.
    pub fn bind(address: SocketAddr) -> io::Result<Listener> {
        Ok(Listener { inner: OsListener::bind(address)? })
    }

    pub async fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        let (inner, peer) = self.inner.accept().await?;
        Ok((Stream { inner }, peer))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A TCP connection. `Clone` is cheap and shares the connection (see the module doc).
#[derive(Clone)]
pub struct Stream {
    inner: OsStream,
}

impl Stream {
    pub async fn connect(address: SocketAddr) -> io::Result<Stream> {
        Ok(Stream { inner: OsStream::connect(address).await? })
    }

    /// Reads into the spare capacity of `buf`; `Ok(0)` means the peer closed (EOF).
    pub async fn read<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        self.inner.read(buf).await
    }

    /// Sends all of `buf[0..bytes_init())`.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        self.inner.write_all(buf).await
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.set_nodelay(on)
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Shuts down both directions: the peer reads EOF, and a pending read here returns 0.
    pub fn shutdown(&self) -> io::Result<()> {
        self.inner.shutdown()
    }
}
