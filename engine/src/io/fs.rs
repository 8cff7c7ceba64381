//! Files: `Disk` picks the backend per file system (the OS disk or a [`SimDisk`]), and `File`
//! offers the same completion-based, owned-buffer API over both, so log code cannot tell them
//! apart. Directory operations are synchronous on purpose: they are rare and off the data path.

use std::future::Future;
use std::io;
use std::path::Path;

use super::backend::file::OsFile;
use super::buf::{IoBuf, IoBufMut};
use super::sim_disk::{Delayed, SimDisk, SimFile};

/// A file system: the real one (io_uring file operations) or a simulated one.
#[derive(Clone, Debug)]
pub enum Disk {
    Os,
    Simulated(SimDisk),
}

/// How to open a file; files are always opened read+write.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenOptions {
    pub create: bool,
    pub truncate: bool,
}

impl Disk {
    pub fn open(&self, path: &Path, options: OpenOptions) -> io::Result<File> {
        let inner = match self {
            Disk::Os => FileInner::Os(OsFile::open(path, options.create, options.truncate)?),
            Disk::Simulated(disk) => {
                FileInner::Simulated(disk.open(path, options.create, options.truncate)?)
            }
        };
        Ok(File { inner })
    }

    pub fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        match self {
            Disk::Os => std::fs::create_dir_all(path),
            Disk::Simulated(disk) => disk.create_dir_all(path),
        }
    }

    /// Names of the entries of `path`, sorted (so callers behave the same on every run).
    pub fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        match self {
            Disk::Os => {
                let mut names = Vec::new();
                for entry in std::fs::read_dir(path)? {
                    names.push(entry?.file_name().to_string_lossy().into_owned());
                }
                names.sort();
                Ok(names)
            }
            Disk::Simulated(disk) => disk.list_dir(path),
        }
    }

    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        match self {
            Disk::Os => std::fs::remove_file(path),
            Disk::Simulated(disk) => disk.remove_file(path),
        }
    }

    pub fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        match self {
            Disk::Os => std::fs::remove_dir_all(path),
            Disk::Simulated(disk) => disk.remove_dir_all(path),
        }
    }

    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match self {
            Disk::Os => std::fs::rename(from, to),
            Disk::Simulated(disk) => disk.rename(from, to),
        }
    }

    /// Makes the entries of directory `path` (creates, renames, removes) durable.
    pub fn sync_dir(&self, path: &Path) -> io::Result<()> {
        match self {
            Disk::Os => std::fs::File::open(path)?.sync_all(),
            Disk::Simulated(disk) => disk.sync_dir(path),
        }
    }

    pub fn exists(&self, path: &Path) -> bool {
        match self {
            Disk::Os => path.exists(),
            Disk::Simulated(disk) => disk.exists(path),
        }
    }

    /// Bytes an unprivileged writer may still use on the file system holding `path`.
    pub fn available_space_bytes(&self, path: &Path) -> io::Result<u64> {
        match self {
            Disk::Os => os_available_space_bytes(path),
            Disk::Simulated(disk) => disk.available_space_bytes(path),
        }
    }
}

fn os_available_space_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: statvfs fills plain data for a NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[derive(Clone)]
enum FileInner {
    Os(OsFile),
    Simulated(SimFile),
}

/// An open file. Cheap to clone (shared handle); `!Send` (it belongs to its shard).
#[derive(Clone)]
pub struct File {
    inner: FileInner,
}

impl File {
    /// Reads into the spare capacity of `buf` from `offset`; `Ok(0)` at end of file.
    pub async fn read_at<B: IoBufMut>(&self, mut buf: B, offset: u64) -> (io::Result<usize>, B) {
        match &self.inner {
            FileInner::Os(file) => file.read_at(buf, offset).await,
            FileInner::Simulated(file) => {
                let result = file.read_at(&mut buf, offset);
                (result, buf)
            }
        }
    }

    /// Fills the spare capacity of `buf` completely from `offset`, or fails with UnexpectedEof.
    pub async fn read_exact_at<B: IoBufMut>(&self, mut buf: B, offset: u64) -> (io::Result<()>, B) {
        let init_start = buf.bytes_init();
        // Each round reads at least one byte or ends, so this is bounded by the capacity.
        while buf.bytes_init() < buf.bytes_total() {
            let position = offset + (buf.bytes_init() - init_start) as u64;
            let (result, returned) = self.read_at(buf, position).await;
            buf = returned;
            match result {
                Ok(0) => return (Err(io::ErrorKind::UnexpectedEof.into()), buf),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return (Err(error), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Writes `buf[0..bytes_init())` at `offset`, possibly partially; returns the count written.
    pub async fn write_at<B: IoBuf>(&self, buf: B, offset: u64) -> (io::Result<usize>, B) {
        self.write_from(buf, 0, offset).await
    }

    fn write_from<B: IoBuf>(
        &self,
        buf: B,
        start: usize,
        offset: u64,
    ) -> impl Future<Output = (io::Result<usize>, B)> + '_ {
        let inner = &self.inner;
        async move {
            match inner {
                FileInner::Os(file) => file.write_from(buf, start, offset).await,
                FileInner::Simulated(file) => {
                    if let Err(error) = file.delay(Delayed::Write).await {
                        return (Err(error), buf);
                    }
                    let result = file.write_from(&buf, start, offset);
                    (result, buf)
                }
            }
        }
    }

    /// Writes all of `buf[0..bytes_init())` at `offset`.
    pub async fn write_all_at<B: IoBuf>(&self, mut buf: B, offset: u64) -> (io::Result<()>, B) {
        let total = buf.bytes_init();
        let mut written = 0;
        // Each round writes at least one byte or ends, so this runs at most `total` rounds.
        while written < total {
            let (result, returned) = self.write_from(buf, written, offset + written as u64).await;
            buf = returned;
            match result {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(count) => written += count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return (Err(error), buf),
            }
        }
        debug_assert_eq!(written, total);
        (Ok(()), buf)
    }

    /// fdatasync: makes the data written so far durable. An error here means some of it may be
    /// lost (see the storage-fault policy: never retry as if nothing happened).
    pub async fn sync_data(&self) -> io::Result<()> {
        match &self.inner {
            FileInner::Os(file) => file.sync_data().await,
            FileInner::Simulated(file) => {
                file.delay(Delayed::Sync).await?;
                file.sync_data()
            }
        }
    }

    pub fn len(&self) -> io::Result<u64> {
        match &self.inner {
            FileInner::Os(file) => file.len(),
            FileInner::Simulated(file) => file.len(),
        }
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    pub async fn set_len(&self, size_bytes: u64) -> io::Result<()> {
        match &self.inner {
            FileInner::Os(file) => file.set_len(size_bytes),
            FileInner::Simulated(file) => file.set_len(size_bytes),
        }
    }
}
