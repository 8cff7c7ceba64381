//! The `Os` disk under simulation: blocking std calls. Only tools use it; simulated nodes use a
//! `SimDisk`, whose behaviour is deterministic.

use std::io;
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use crate::io::buf::{init_slice, IoBuf, IoBufMut};

#[derive(Clone)]
pub(crate) struct OsFile {
    file: Rc<std::fs::File>,
}

impl OsFile {
    pub(crate) fn open(path: &std::path::Path, create: bool, truncate: bool) -> io::Result<OsFile> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(truncate)
            .open(path)?;
        Ok(OsFile { file: Rc::new(file) })
    }

    pub(crate) async fn read_at<B: IoBufMut>(
        &self,
        mut buf: B,
        offset: u64,
    ) -> (io::Result<usize>, B) {
        let init = buf.bytes_init();
        let spare = buf.bytes_total() - init;
        let mut scratch = vec![0u8; spare];
        let result = self.file.read_at(&mut scratch, offset);
        if let Ok(count) = result {
            let copied = crate::io::buf::copy_into_spare(&mut buf, &scratch[..count]);
            debug_assert_eq!(copied, count);
        }
        (result, buf)
    }

    pub(crate) async fn write_from<B: IoBuf>(
        &self,
        buf: B,
        start: usize,
        offset: u64,
    ) -> (io::Result<usize>, B) {
        let result = self.file.write_at(&init_slice(&buf)[start..], offset);
        (result, buf)
    }

    pub(crate) async fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    pub(crate) fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    pub(crate) fn set_len(&self, size_bytes: u64) -> io::Result<()> {
        self.file.set_len(size_bytes)
    }
}
