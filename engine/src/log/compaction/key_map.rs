//! The key map of one cleaning: key -> offset of its latest record in the dirty part of the
//! log, with an explicit memory budget (Kafka's dedupe buffer). Keys are stored whole (no hash
//! collisions to reason about); the budget counts their bytes plus a fixed per-entry overhead.
//! When the next batch's keys would not fit, the map stops before that batch: `end_offset`
//! says how far it covers, and the cleaning only judges records below it.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use super::super::error::LogError;
use super::super::reader::SegmentReader;
use super::super::scan::{self, Expect, Judgement};
use super::super::state::Shared;
use super::Source;
use crate::record_batch::rewrite::{self, DecodedBatch};
use crate::record_batch::BatchInfo;

/// Budget charged per entry on top of its key bytes (B-tree node share, the offset, the Vec).
pub const ENTRY_OVERHEAD_BYTES: usize = 64;

pub struct KeyMap {
    latest: BTreeMap<Vec<u8>, i64>,
    /// Producer id -> last offset of its latest batch seen (idempotent producers only).
    producers: BTreeMap<i64, i64>,
    used_bytes: usize,
    budget_bytes: usize,
    /// Records below this offset (and at or above the first dirty offset) are in the map.
    pub end_offset: i64,
}

impl KeyMap {
    pub fn new(budget_bytes: usize, start_offset: i64) -> KeyMap {
        KeyMap {
            latest: BTreeMap::new(),
            producers: BTreeMap::new(),
            used_bytes: 0,
            budget_bytes,
            end_offset: start_offset,
        }
    }

    /// True when the map saw a batch of `producer_id` ending after `last_offset`: a batch
    /// that is not its producer's last may go entirely (Kafka keeps the last one).
    pub fn producer_has_later_batch(&self, producer_id: i64, last_offset: i64) -> bool {
        self.producers.get(&producer_id).is_some_and(|latest| *latest > last_offset)
    }

    /// Budget a batch's producer takes if it is new to the map.
    fn producer_cost_bytes(&self, info: &BatchInfo) -> usize {
        let new = info.producer_id >= 0 && !self.producers.contains_key(&info.producer_id);
        if new {
            ENTRY_OVERHEAD_BYTES
        } else {
            0
        }
    }

    fn add_producer(&mut self, info: &BatchInfo) {
        if info.producer_id < 0 {
            return;
        }
        self.used_bytes += self.producer_cost_bytes(info);
        self.producers.insert(info.producer_id, info.last_offset());
    }

    /// Offset of the latest record of `key` seen, if any.
    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    /// Adds every keyed record of the batch at or after `from_offset`, or nothing when they
    /// might not fit the budget (then the map is full). True when added.
    pub fn try_add(&mut self, decoded: &DecodedBatch, from_offset: i64) -> bool {
        assert!(decoded.info.next_offset() > self.end_offset, "batches are added in order");
        let records =
            || decoded.records.iter().filter(|record| decoded.offset(record) >= from_offset);
        let new_keys: BTreeSet<&[u8]> = records()
            .filter_map(|record| decoded.key(record))
            .filter(|key| !self.latest.contains_key(*key))
            .collect();
        let cost_bytes: usize = new_keys.iter().map(|key| key.len() + ENTRY_OVERHEAD_BYTES).sum();
        let cost_bytes = cost_bytes + self.producer_cost_bytes(&decoded.info);
        if self.used_bytes + cost_bytes > self.budget_bytes {
            return false;
        }
        self.add_producer(&decoded.info);
        for record in records() {
            let Some(key) = decoded.key(record) else { continue };
            let offset = decoded.offset(record);
            match self.latest.get_mut(key) {
                Some(latest) => {
                    assert!(*latest < offset, "records of a log are in offset order");
                    *latest = offset;
                }
                None => {
                    self.used_bytes += key.len() + ENTRY_OVERHEAD_BYTES;
                    self.latest.insert(key.to_vec(), offset);
                }
            }
        }
        assert!(self.used_bytes <= self.budget_bytes);
        self.end_offset = decoded.info.next_offset();
        true
    }

    /// A batch whose records cannot be decoded, or a control batch, contributes no key (it is
    /// kept as it is), only its producer. False when that does not fit the budget.
    pub fn skip(&mut self, info: &BatchInfo) -> bool {
        if self.used_bytes + self.producer_cost_bytes(info) > self.budget_bytes {
            return false;
        }
        self.add_producer(info);
        self.end_offset = self.end_offset.max(info.next_offset());
        true
    }
}

/// Reads batches of one source segment in order, checking CRC and offset contiguity.
pub struct BatchStream {
    reader: SegmentReader,
    position: u64,
    expected_offset: i64,
    next_offset: i64,
}

impl BatchStream {
    pub fn new(shared: &Shared, source: &Source) -> BatchStream {
        let max_batch_bytes = scan::max_batch_bytes(shared.config().max_message_bytes);
        BatchStream {
            reader: SegmentReader::new(source.file.clone(), source.size_bytes, max_batch_bytes),
            position: 0,
            expected_offset: source.base_offset,
            next_offset: source.next_offset,
        }
    }

    /// The next batch, `None` at the end of the segment. A batch that fails its checks is
    /// corruption: the cleaner stops (reads report it as detected loss; it is never rewritten).
    pub async fn next(&mut self) -> Result<Option<(Vec<u8>, BatchInfo)>, LogError> {
        if self.position == self.reader.len_bytes() {
            if self.expected_offset != self.next_offset {
                return Err(LogError::Corrupt { offset: self.expected_offset });
            }
            return Ok(None);
        }
        let expect = Expect::Exactly(self.expected_offset);
        let Judgement::Valid(info) = self.reader.judge_at(self.position, expect).await? else {
            return Err(LogError::Corrupt { offset: self.expected_offset });
        };
        let window = self.reader.window(self.position, info.size_bytes).await?;
        let bytes = window[..info.size_bytes].to_vec();
        self.position += info.size_bytes as u64;
        self.expected_offset = info.next_offset();
        Ok(Some((bytes, info)))
    }
}

/// Builds the map over `sources` from `first_dirty_offset` on, until the budget is full.
pub async fn build(
    shared: &Rc<Shared>,
    sources: &[Source],
    first_dirty_offset: i64,
    budget_bytes: usize,
) -> Result<KeyMap, LogError> {
    let mut map = KeyMap::new(budget_bytes, first_dirty_offset);
    for source in sources.iter().filter(|source| source.next_offset > first_dirty_offset) {
        let mut stream = BatchStream::new(shared, source);
        // Each round consumes one batch of a segment of bounded size.
        while let Some((bytes, info)) = stream.next().await? {
            if info.next_offset() <= first_dirty_offset {
                continue;
            }
            let added = match rewrite::decode(&bytes) {
                Ok(decoded) if !decoded.info.is_control => {
                    map.try_add(&decoded, first_dirty_offset)
                }
                Ok(_) | Err(_) => map.skip(&info),
            };
            if !added {
                return Ok(map);
            }
            crate::io::yield_now().await;
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::build::{encode_batch, ProducerStamp, Record};
    use crate::record_batch::patch_base_offset;

    fn decoded(base_offset: i64, keys: &[&str]) -> DecodedBatch {
        let records: Vec<Record> = keys
            .iter()
            .map(|key| Record { key: Some(key.as_bytes().to_vec()), ..Record::default() })
            .collect();
        let mut batch = encode_batch(&records, 0, ProducerStamp::NONE);
        patch_base_offset(&mut batch, base_offset, 0);
        rewrite::decode(&batch).unwrap()
    }

    #[test]
    fn the_map_keeps_the_latest_offset_and_stops_whole_batches_at_the_budget() {
        let mut map = KeyMap::new(2 * (1 + ENTRY_OVERHEAD_BYTES), 0);
        assert!(map.try_add(&decoded(0, &["a", "b", "a"]), 0));
        assert_eq!((map.latest(b"a"), map.latest(b"b"), map.end_offset), (Some(2), Some(1), 3));
        assert!(map.try_add(&decoded(3, &["b"]), 0));
        assert!(!map.try_add(&decoded(4, &["b", "c"]), 0));
        assert_eq!((map.latest(b"b"), map.latest(b"c"), map.end_offset), (Some(3), None, 4));
    }
}
