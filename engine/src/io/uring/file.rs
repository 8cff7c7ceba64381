//! Files on the OS disk: reads, writes and fdatasync as io_uring operations.
//!
//! Every operation's data carries an `Rc<OwnedFd>`, so the descriptor stays open until the
//! completion arrives even if the `File` and the future are dropped: closing it earlier could let
//! the number be reused and the queued SQE hit another file.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use io_uring::{opcode, types};

use super::Op;
use crate::io::buf::{IoBuf, IoBufMut};

/// One kernel read/write moves at most this much (the SQE length is 32 bits).
const TRANSFER_BYTES_MAX: usize = 1 << 30;

fn os_result(result: i32) -> io::Result<usize> {
    if result < 0 {
        Err(io::Error::from_raw_os_error(-result))
    } else {
        Ok(result as usize)
    }
}

#[derive(Clone)]
pub(crate) struct OsFile {
    fd: Rc<OwnedFd>,
}

impl OsFile {
    pub(crate) fn open(path: &std::path::Path, create: bool, truncate: bool) -> io::Result<OsFile> {
        // Opening is rare and off the data path: a synchronous call is fine.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(truncate)
            .open(path)?;
        Ok(OsFile { fd: Rc::new(OwnedFd::from(file)) })
    }

    pub(crate) async fn read_at<B: IoBufMut>(&self, buf: B, offset: u64) -> (io::Result<usize>, B) {
        let fd = types::Fd(self.fd.as_raw_fd());
        let op = Op::submit((buf, self.fd.clone()), |(buf, _)| {
            let init = buf.bytes_init();
            let spare = (buf.bytes_total() - init).min(TRANSFER_BYTES_MAX);
            // SAFETY: `init <= bytes_total()`, so the pointer stays inside the allocation.
            let target = unsafe { buf.stable_mut_ptr().add(init) };
            opcode::Read::new(fd, target, spare as u32).offset(offset).build()
        });
        let (result, (mut buf, _fd)) = match op {
            Ok(op) => op.await,
            Err((error, (buf, _))) => return (Err(error), buf),
        };
        let result = os_result(result);
        if let Ok(count) = result {
            let init = buf.bytes_init();
            debug_assert!(init + count <= buf.bytes_total());
            // SAFETY: the kernel wrote `count` bytes right after the initialised part.
            unsafe { buf.set_init(init + count) };
        }
        (result, buf)
    }

    /// Writes `buf[start..bytes_init())` at `offset`; returns the count written.
    pub(crate) async fn write_from<B: IoBuf>(
        &self,
        buf: B,
        start: usize,
        offset: u64,
    ) -> (io::Result<usize>, B) {
        debug_assert!(start <= buf.bytes_init());
        let fd = types::Fd(self.fd.as_raw_fd());
        let op = Op::submit((buf, self.fd.clone()), |(buf, _)| {
            let length = (buf.bytes_init() - start).min(TRANSFER_BYTES_MAX);
            // SAFETY: `start <= bytes_init()`, inside the allocation.
            let source = unsafe { buf.stable_ptr().add(start) };
            opcode::Write::new(fd, source, length as u32).offset(offset).build()
        });
        match op {
            Ok(op) => {
                let (result, (buf, _fd)) = op.await;
                (os_result(result), buf)
            }
            Err((error, (buf, _))) => (Err(error), buf),
        }
    }

    pub(crate) async fn sync_data(&self) -> io::Result<()> {
        let fd = types::Fd(self.fd.as_raw_fd());
        let op = Op::submit(self.fd.clone(), |_| {
            opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build()
        });
        match op {
            Ok(op) => os_result(op.await.0).map(|_| ()),
            Err((error, _)) => Err(error),
        }
    }

    pub(crate) fn len(&self) -> io::Result<u64> {
        // SAFETY: `stat` is plain data filled by fstat on a descriptor we own.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(self.fd.as_raw_fd(), &mut stat) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stat.st_size as u64)
    }

    pub(crate) fn set_len(&self, size_bytes: u64) -> io::Result<()> {
        let size = libc::off_t::try_from(size_bytes)
            .map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        // ftruncate is rare (segment preallocation, truncation at recovery); IORING_OP_FTRUNCATE
        // needs Linux 6.9, so a synchronous call it is.
        // SAFETY: plain syscall on a descriptor we own.
        if unsafe { libc::ftruncate(self.fd.as_raw_fd(), size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
