//! Fetch data read as the socket drains: planned reads (`log::region`) held open on the
//! partition's owner shard while the connection's shard sends them.
//!
//! A fetch plans its answer on the owner shards: small reads come back as bytes, larger ones
//! as a [`RegionId`] naming a [`RegionCursor`] kept in the owner's [`RegionTable`]. The
//! connection's writer then asks the owner for one chunk at a time, into a buffer it owns and
//! reuses ([`SendBuffers`]): the owner reads and checks the next whole batches into it, and
//! the writer sends them. So fetched data is never held per request in the heap: a
//! connection holds at most one chunk buffer, charged to its shard's memory budget.
//!
//! A [`RegionLease`] is the connection side of a region: dropping it (answer sent, or given up)
//! releases the region on its owner. The table is bounded by what requests can plan: a
//! connection plans one fetch at a time (`connection.rs`), a fetch at most one region per
//! partition it names, and connections are limited (`--max-connections`).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::io;
use crate::log::region::{Chunk, FileRegion, RegionCursor};
use crate::log::{Log, LogError};

use super::memory::{MemoryBudget, Reservation};
use super::shard::Shard;

/// Bytes read and sent per chunk: a whole partition's answer at clients' usual
/// `max.partition.fetch.bytes` (1 MiB), so that it costs one hop to its owner and one write;
/// a sending connection holds two, charged to the budget, which bounds how many send at once.
pub const SEND_CHUNK_BYTES: usize = 1 << 20;
/// Chunk buffers a shard keeps for reuse when no connection is sending.
const SPARE_BUFFERS_MAX: usize = 16;

/// One planned region on its owner, with the log that checks it (and records detected loss).
struct Leased {
    log: Log,
    /// Taken out while a chunk is being read: one chunk at a time per region.
    cursor: RefCell<Option<RegionCursor>>,
}

/// The regions a shard's partitions are being fetched through.
#[derive(Default)]
pub struct RegionTable {
    regions: RefCell<BTreeMap<u64, Rc<Leased>>>,
    next_id: Cell<u64>,
}

/// A region as it crosses shards: its owner, its key there, its size.
#[derive(Debug, Clone, Copy)]
pub struct RegionId {
    owner: usize,
    key: u64,
    pub size_bytes: usize,
}

/// Why a region's next chunk could not be had. Either way the answer is given up.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the region's owner shard is gone, or released it")]
    Gone,
}

impl RegionTable {
    /// Holds `region` (and its segment file) until released; `owner` is this shard's id.
    pub fn insert(&self, owner: usize, log: Log, region: FileRegion) -> RegionId {
        let key = self.next_id.get();
        self.next_id.set(key + 1);
        let size_bytes = region.size_bytes;
        let leased = Leased { log, cursor: RefCell::new(Some(RegionCursor::new(region))) };
        let previous = self.regions.borrow_mut().insert(key, Rc::new(leased));
        assert!(previous.is_none(), "region keys are never reused");
        RegionId { owner, key, size_bytes }
    }

    pub fn len(&self) -> usize {
        self.regions.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn release(&self, key: u64) {
        self.regions.borrow_mut().remove(&key);
    }

    /// Reads the next chunk of region `key` into `buffer` (see [`RegionCursor::next_chunk`]).
    async fn next_chunk(&self, key: u64, buffer: Vec<u8>) -> (Result<Chunk, ChunkError>, Vec<u8>) {
        let Some(leased) = self.regions.borrow().get(&key).cloned() else {
            return (Err(ChunkError::Gone), buffer);
        };
        let Some(mut cursor) = leased.cursor.borrow_mut().take() else {
            io::bug("two chunks of one fetch region read at once");
        };
        let (result, buffer) = cursor.next_chunk(&leased.log, buffer).await;
        *leased.cursor.borrow_mut() = Some(cursor);
        (result.map_err(ChunkError::from), buffer)
    }
}

/// The connection side of a region: reads it chunk by chunk, releases it when dropped.
pub struct RegionLease {
    shard: Rc<Shard>,
    id: RegionId,
}

impl RegionLease {
    pub fn new(shard: &Rc<Shard>, id: RegionId) -> RegionLease {
        RegionLease { shard: shard.clone(), id }
    }

    pub fn size_bytes(&self) -> usize {
        self.id.size_bytes
    }

    /// The next whole, checked batches of the region in `buffer`, read on its owner shard.
    pub async fn next_chunk(&self, buffer: Vec<u8>) -> (Result<Chunk, ChunkError>, Vec<u8>) {
        let key = self.id.key;
        let answer = self
            .shard
            .call_on(self.id.owner, move |owner| async move {
                owner.fetch_regions.next_chunk(key, buffer).await
            })
            .await;
        // The buffer went down with the owner: the caller allocates another.
        answer.unwrap_or_else(|| (Err(ChunkError::Gone), Vec::new()))
    }

    /// The whole region in memory (tools and tests; the broker sends regions chunk by chunk).
    pub async fn read_whole(&self) -> Result<bytes::Bytes, ChunkError> {
        let mut whole = Vec::with_capacity(self.size_bytes());
        let mut buffer = Vec::with_capacity(SEND_CHUNK_BYTES);
        // Each round reads at least one batch, or grows the buffer for the next, or ends.
        loop {
            let (result, returned) = self.next_chunk(buffer).await;
            buffer = returned;
            match result? {
                Chunk::Ready(_) => whole.extend_from_slice(&buffer),
                Chunk::NeedCapacity(size_bytes) => buffer = Vec::with_capacity(size_bytes),
                Chunk::Done => return Ok(whole.into()),
            }
        }
    }
}

impl Drop for RegionLease {
    fn drop(&mut self) {
        let key = self.id.key;
        if self.id.owner == self.shard.id {
            self.shard.fetch_regions.release(key);
            return;
        }
        let (shard, owner) = (self.shard.clone(), self.id.owner);
        // Detached (dropping the handle does not cancel it): a release must happen however
        // the answer ended.
        drop(io::spawn_local(async move {
            let release = move |owner: Rc<Shard>| async move { owner.fetch_regions.release(key) };
            let _ = shard.call_on(owner, release).await;
        }));
    }
}

/// A shard's chunk buffers for sending regions: each one in use is charged to the shard's
/// memory budget, and a few are kept for reuse.
#[derive(Default)]
pub struct SendBuffers {
    spare: RefCell<Vec<Vec<u8>>>,
}

impl SendBuffers {
    /// A buffer of at least `capacity_bytes`, charged to `memory` (waiting while it is spent).
    pub async fn take(
        &self,
        memory: &Rc<MemoryBudget>,
        capacity_bytes: usize,
    ) -> (Vec<u8>, Reservation) {
        memory.wait_until_available().await;
        let charge = memory.charge(capacity_bytes);
        let spare =
            if capacity_bytes <= SEND_CHUNK_BYTES { self.spare.borrow_mut().pop() } else { None };
        let mut buffer =
            spare.unwrap_or_else(|| Vec::with_capacity(capacity_bytes.max(SEND_CHUNK_BYTES)));
        buffer.clear();
        assert!(buffer.capacity() >= capacity_bytes);
        (buffer, charge)
    }

    /// Keeps a chunk-sized `buffer` for the next sender, up to a few.
    pub fn give_back(&self, buffer: Vec<u8>) {
        let mut spare = self.spare.borrow_mut();
        if buffer.capacity() >= SEND_CHUNK_BYTES
            && buffer.capacity() < 2 * SEND_CHUNK_BYTES
            && spare.len() < SPARE_BUFFERS_MAX
        {
            spare.push(buffer);
        }
    }
}
