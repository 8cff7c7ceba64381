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
