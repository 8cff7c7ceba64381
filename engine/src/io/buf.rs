//! Owned I/O buffers whose memory address stays put while the kernel (or the simulator) owns them.
//!
//! io_uring reads and writes through a raw pointer long after the submitting future was polled, and
//! possibly after it was dropped. So every buffer handed to `io` is *moved* in and handed back with
//! the result; the heap allocation behind it must not move while the operation is in flight.
//!
//! Rule for all reads: data lands in the spare capacity, from `bytes_init()` up to `bytes_total()`,
//! and the initialised length grows by the number of bytes read. Writes send `[0..bytes_init())`.

use bytes::{Bytes, BytesMut};

/// A buffer that can be the source of a write.
///
/// # Safety
/// `stable_ptr()` must point to at least `bytes_init()` initialised bytes, and that memory must
/// stay valid and at the same address when the value is moved (heap-backed buffers satisfy this).
pub unsafe trait IoBuf: 'static {
    /// Start of the buffer; stable across moves of `self`.
    fn stable_ptr(&self) -> *const u8;
    /// Number of initialised bytes, which a write sends.
    fn bytes_init(&self) -> usize;
}

/// A buffer that can be the target of a read.
///
/// # Safety
/// `stable_mut_ptr()` must point to `bytes_total()` writable bytes that stay at the same address
/// when `self` is moved, and `set_init` must only be called with a `pos` whose bytes are
/// initialised.
pub unsafe trait IoBufMut: IoBuf {
    /// Start of the buffer, writable; stable across moves of `self`.
    fn stable_mut_ptr(&mut self) -> *mut u8;
    /// Capacity: reads fill at most up to here.
    fn bytes_total(&self) -> usize;
    /// Marks `[0..pos)` initialised (only ever grows the initialised length).
    ///
    /// # Safety
    /// The bytes below `pos` must have been written.
    unsafe fn set_init(&mut self, pos: usize);
}

unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        debug_assert!(pos <= self.capacity());
        if pos > self.len() {
            // SAFETY: the caller guarantees bytes below `pos` were written; pos <= capacity.
            unsafe { self.set_len(pos) };
        }
    }
}

unsafe impl IoBuf for Bytes {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

unsafe impl IoBuf for BytesMut {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

unsafe impl IoBufMut for BytesMut {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        debug_assert!(pos <= self.capacity());
        if pos > self.len() {
            // SAFETY: the caller guarantees bytes below `pos` were written; pos <= capacity.
            unsafe { self.set_len(pos) };
        }
    }
}

/// Copies `source` into the spare capacity of `buf` (at most what fits); returns the count copied.
/// Used by backends that complete reads from memory (the simulated disk).
pub(crate) fn copy_into_spare<B: IoBufMut>(buf: &mut B, source: &[u8]) -> usize {
    let init = buf.bytes_init();
    let spare = buf.bytes_total() - init;
    let count = spare.min(source.len());
    // SAFETY: `init + count <= bytes_total()`, the regions cannot overlap (source is borrowed
    // elsewhere), and the written bytes are then marked initialised.
    unsafe {
        std::ptr::copy_nonoverlapping(source.as_ptr(), buf.stable_mut_ptr().add(init), count);
        buf.set_init(init + count);
    }
    debug_assert_eq!(buf.bytes_init(), init + count);
    count
}

/// The bytes a write sends: `[0..bytes_init())`.
pub(crate) fn init_slice<B: IoBuf>(buf: &B) -> &[u8] {
    // SAFETY: IoBuf guarantees `bytes_init()` initialised bytes at `stable_ptr()`.
    unsafe { std::slice::from_raw_parts(buf.stable_ptr(), buf.bytes_init()) }
}

/// A `Vec<u8>` whose reads stop at `limit_bytes` of it, however large its capacity: a reused
/// buffer reads exactly what is wanted, never beyond (past the end of what is asked for).
pub struct Bounded {
    buffer: Vec<u8>,
    limit_bytes: usize,
}

impl Bounded {
    /// `buffer` cleared, reading at most `limit_bytes` (which must fit in its capacity).
    pub fn new(mut buffer: Vec<u8>, limit_bytes: usize) -> Bounded {
        buffer.clear();
        assert!(limit_bytes <= buffer.capacity(), "a bounded read beyond the buffer");
        Bounded { buffer, limit_bytes }
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buffer
    }
}

unsafe impl IoBuf for Bounded {
    fn stable_ptr(&self) -> *const u8 {
        self.buffer.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.buffer.len()
    }
}

unsafe impl IoBufMut for Bounded {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.buffer.as_mut_ptr()
    }
    fn bytes_total(&self) -> usize {
        self.limit_bytes
    }
    unsafe fn set_init(&mut self, pos: usize) {
        debug_assert!(pos <= self.limit_bytes);
        // SAFETY: the caller guarantees bytes below `pos` were written; pos <= limit <= capacity.
        unsafe { self.buffer.set_init(pos) };
    }
}
