//! TCP sockets as io_uring operations (accept, connect, recv, send).
//!
//! Socket setup (socket, setsockopt, bind, listen) is synchronous: it is rare. Like files, every
//! operation's data holds an `Rc<OwnedFd>` so the descriptor outlives the in-flight operation.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;

use io_uring::{opcode, types};

use super::Op;
use crate::io::buf::{IoBuf, IoBufMut};

/// Pending connections the kernel queues per listener.
const LISTEN_BACKLOG: i32 = 1024;
/// One send/recv moves at most this much (the SQE length is 32 bits).
const TRANSFER_BYTES_MAX: usize = 1 << 30;

fn os_result(result: i32) -> io::Result<usize> {
    if result < 0 {
        Err(io::Error::from_raw_os_error(-result))
    } else {
        Ok(result as usize)
    }
}

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// Encodes `address` as a C socket address.
pub(crate) fn to_sockaddr(address: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data large enough for both address families.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let length = match address {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_in fits in sockaddr_storage and has weaker alignment.
            let target = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in>() };
            target.sin_family = libc::AF_INET as libc::sa_family_t;
            target.sin_port = v4.port().to_be();
            target.sin_addr = libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above for sockaddr_in6.
            let target = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in6>() };
            target.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            target.sin6_port = v6.port().to_be();
            target.sin6_addr = libc::in6_addr { s6_addr: v6.ip().octets() };
            target.sin6_flowinfo = v6.flowinfo();
            target.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, length as libc::socklen_t)
}

/// Decodes a C socket address filled in by the kernel.
pub(crate) fn from_sockaddr(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let source =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(source.sin_addr.s_addr));
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(source.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let source = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(source.sin6_addr.s6_addr);
            let port = u16::from_be(source.sin6_port);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                ip,
                port,
                source.sin6_flowinfo,
                source.sin6_scope_id,
            )))
        }
        family => Err(io::Error::other(format!("unexpected address family {family}"))),
    }
}

fn new_socket(address: &SocketAddr) -> io::Result<OwnedFd> {
    let domain = if address.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain syscall; the descriptor is owned right away.
    let raw = check(unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn set_option(fd: &OwnedFd, level: i32, name: i32, on: bool) -> io::Result<()> {
    let value: libc::c_int = on.into();
    let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: passes a live c_int of the declared size.
    check(unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, name, (&raw const value).cast(), size)
    })?;
    Ok(())
}

fn socket_name(fd: &OwnedFd, peer: bool) -> io::Result<SocketAddr> {
    // SAFETY: the kernel fills at most `length` bytes of the storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let pointer = (&raw mut storage).cast::<libc::sockaddr>();
    let result = if peer {
        unsafe { libc::getpeername(fd.as_raw_fd(), pointer, &mut length) }
    } else {
        unsafe { libc::getsockname(fd.as_raw_fd(), pointer, &mut length) }
    };
    check(result)?;
    from_sockaddr(&storage)
}

pub(crate) struct OsListener {
    fd: Rc<OwnedFd>,
}

impl OsListener {
    pub(crate) fn bind(address: SocketAddr) -> io::Result<OsListener> {
        let fd = new_socket(&address)?;
        set_option(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, true)?;
        // Each shard binds the same address; the kernel spreads connections across them.
        set_option(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, true)?;
        let (storage, length) = to_sockaddr(address);
        // SAFETY: `storage` holds a valid address of `length` bytes.
        check(unsafe { libc::bind(fd.as_raw_fd(), (&raw const storage).cast(), length) })?;
        // SAFETY: plain syscall.
        check(unsafe { libc::listen(fd.as_raw_fd(), LISTEN_BACKLOG) })?;
        Ok(OsListener { fd: Rc::new(fd) })
    }

    /// Binds `address` with SO_REUSEADDR and closes the socket at once, never listening:
    /// fails (AddrInUse) only while some socket listens there. A probe that listened would
    /// take, and reset as it closes, a connection that arrived in its moment of life.
    pub(crate) fn probe(address: SocketAddr) -> io::Result<()> {
        let fd = new_socket(&address)?;
        set_option(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, true)?;
        let (storage, length) = to_sockaddr(address);
        // SAFETY: `storage` holds a valid address of `length` bytes.
        check(unsafe { libc::bind(fd.as_raw_fd(), (&raw const storage).cast(), length) })?;
        Ok(())
    }

    pub(crate) async fn accept(&self) -> io::Result<(OsStream, SocketAddr)> {
        let fd = types::Fd(self.fd.as_raw_fd());
        // SAFETY: plain data, filled by the kernel.
        let storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let length = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let data = (storage, length, self.fd.clone());
        let op = Op::submit(data, |(storage, length, _)| {
            opcode::Accept::new(fd, (storage as *mut libc::sockaddr_storage).cast(), length)
                .flags(libc::SOCK_CLOEXEC)
                .build()
        })
        .map_err(|(error, _)| error)?;
        let (result, (storage, _, _)) = op.await;
        let raw = os_result(result)? as i32;
        // SAFETY: the kernel returned a fresh descriptor for the accepted connection.
        let stream = OsStream { fd: Rc::new(unsafe { OwnedFd::from_raw_fd(raw) }) };
        Ok((stream, from_sockaddr(&storage)?))
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_name(&self.fd, false)
    }
}

#[derive(Clone)]
pub(crate) struct OsStream {
    fd: Rc<OwnedFd>,
}

impl OsStream {
    pub(crate) async fn connect(address: SocketAddr) -> io::Result<OsStream> {
        let fd = Rc::new(new_socket(&address)?);
        let raw = types::Fd(fd.as_raw_fd());
        let (storage, length) = to_sockaddr(address);
        let op = Op::submit((storage, fd.clone()), |(storage, _)| {
            opcode::Connect::new(raw, (storage as *const libc::sockaddr_storage).cast(), length)
                .build()
        })
        .map_err(|(error, _)| error)?;
        os_result(op.await.0)?;
        Ok(OsStream { fd })
    }

    pub(crate) async fn read<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        let fd = types::Fd(self.fd.as_raw_fd());
        let op = Op::submit((buf, self.fd.clone()), |(buf, _)| {
            let init = buf.bytes_init();
            let spare = (buf.bytes_total() - init).min(TRANSFER_BYTES_MAX);
            // SAFETY: `init <= bytes_total()`, inside the allocation.
            let target = unsafe { buf.stable_mut_ptr().add(init) };
            opcode::Recv::new(fd, target, spare as u32).build()
        });
        let (result, (mut buf, _)) = match op {
            Ok(op) => op.await,
            Err((error, (buf, _))) => return (Err(error), buf),
        };
        let result = os_result(result);
        if let Ok(count) = result {
            let init = buf.bytes_init();
            debug_assert!(init + count <= buf.bytes_total());
            // SAFETY: the kernel wrote `count` bytes after the initialised part.
            unsafe { buf.set_init(init + count) };
        }
        (result, buf)
    }

    /// Sends `buf[start..bytes_init())` once; returns the count sent.
    async fn send_from<B: IoBuf>(&self, buf: B, start: usize) -> (io::Result<usize>, B) {
        let fd = types::Fd(self.fd.as_raw_fd());
        let op = Op::submit((buf, self.fd.clone()), |(buf, _)| {
            let length = (buf.bytes_init() - start).min(TRANSFER_BYTES_MAX);
            // SAFETY: `start <= bytes_init()`, inside the allocation.
            let source = unsafe { buf.stable_ptr().add(start) };
            // MSG_NOSIGNAL: a closed peer is an EPIPE error, not a process-killing SIGPIPE.
            opcode::Send::new(fd, source, length as u32).flags(libc::MSG_NOSIGNAL).build()
        });
        match op {
            Ok(op) => {
                let (result, (buf, _)) = op.await;
                (os_result(result), buf)
            }
            Err((error, (buf, _))) => (Err(error), buf),
        }
    }

    pub(crate) async fn write_all<B: IoBuf>(&self, mut buf: B) -> (io::Result<()>, B) {
        let total = buf.bytes_init();
        let mut sent = 0;
        // Each round sends at least one byte or ends, so this runs at most `total` rounds.
        while sent < total {
            let (result, returned) = self.send_from(buf, sent).await;
            buf = returned;
            match result {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(count) => sent += count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return (Err(error), buf),
            }
        }
        debug_assert_eq!(sent, total);
        (Ok(()), buf)
    }

    pub(crate) fn set_nodelay(&self, on: bool) -> io::Result<()> {
        set_option(&self.fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, on)
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        socket_name(&self.fd, true)
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_name(&self.fd, false)
    }

    pub(crate) fn shutdown(&self) -> io::Result<()> {
        // SAFETY: plain syscall on a descriptor we own.
        check(unsafe { libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_RDWR) })?;
        Ok(())
    }
}
