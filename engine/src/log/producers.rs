//! Idempotent-producer state of one partition: per producer id, its epoch and the sequence
//! ranges and offsets of its last five batches, as Kafka's `ProducerStateManager` keeps them.
//!
//! Pure logic, no I/O. The state is a function of the log (every field comes from batch
//! headers, which are stored as sent), so it can be rebuilt from the log at open, snapshotted
//! (`producer_snapshot.rs`), and later moved with the partition's leader.
//!
//! Rules (Kafka 4's `ProducerStateEntry::findDuplicateBatch` and `ProducerAppendInfo`):
//! - same epoch and the exact sequence range of a retained batch: a duplicate, answered with
//!   the original offsets and not written again;
//! - an epoch below the producer's: stale (INVALID_PRODUCER_EPOCH);
//! - a newer epoch must start at sequence 0; the same epoch must continue the last sequence
//!   (+1, wrapping at `i32::MAX` to 0); anything else is OUT_OF_ORDER_SEQUENCE_NUMBER;
//! - an unknown producer (never seen, or expired) is accepted at any sequence, as Kafka does
//!   since KIP-360 ("accept writes with any sequence number").

use std::collections::{BTreeMap, VecDeque};

/// Batches retained per producer for duplicate detection (Kafka's `NUM_BATCHES_TO_RETAIN`;
/// clients keep at most five requests in flight per partition with idempotence on).
pub const BATCHES_RETAINED: usize = 5;
/// Producers tracked per partition at most: a client can mint producer ids without bound,
/// so beyond this the least recently active producer is forgotten.
pub const PRODUCERS_MAX: usize = 10_000;
/// Kafka's `producer.id.expiration.ms` default: a producer idle for a day is forgotten.
pub const PRODUCER_EXPIRATION_MS_DEFAULT: i64 = 24 * 60 * 60 * 1000;

/// The producer fields of one batch header (`producer_id >= 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    /// `last_offset_delta` of the batch: it holds `records_delta + 1` sequence numbers.
    pub records_delta: i32,
    pub max_timestamp_ms: i64,
}

impl ProducerBatch {
    /// The sequence of the batch's last record, wrapping past `i32::MAX` to 0 as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        debug_assert!(self.first_sequence >= 0 && self.records_delta >= 0);
        if self.first_sequence > i32::MAX - self.records_delta {
            self.records_delta - (i32::MAX - self.first_sequence) - 1
        } else {
            self.first_sequence + self.records_delta
        }
    }
}

/// What the state remembers of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
}

/// One producer: its current epoch and its last batches (oldest first, never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
    /// Max timestamp of its last batch (Kafka's `lastTimestamp`): expiry measures from it.
    pub last_timestamp_ms: i64,
}

/// How to treat a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Append,
    /// A retry of a batch already in the log (or queued for it) at these offsets.
    Duplicate(BatchMeta),
}

/// Why a batch is refused. Mapped to Kafka error codes at the broker edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerError {
    /// INVALID_PRODUCER_EPOCH (47): a fenced (older) epoch.
    #[error("producer {producer_id}: epoch {epoch} is older than the current {current_epoch}")]
    StaleEpoch { producer_id: i64, epoch: i16, current_epoch: i16 },
    /// OUT_OF_ORDER_SEQUENCE_NUMBER (45): a gap, or a new epoch not starting at 0.
    #[error("producer {producer_id}: sequence {first_sequence} does not follow {last_sequence}")]
    OutOfOrder { producer_id: i64, first_sequence: i32, last_sequence: i32 },
}

/// The producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: BTreeMap<i64, ProducerEntry>,
}

fn in_sequence(last_sequence: i32, next_sequence: i32) -> bool {
    i64::from(next_sequence) == i64::from(last_sequence) + 1
        || (next_sequence == 0 && last_sequence == i32::MAX)
}

impl ProducerStates {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&i64, &ProducerEntry)> {
        self.producers.iter()
    }

    /// Decides whether `batch` is appended, is a duplicate, or is refused. Changes nothing.
    pub fn check(&self, batch: &ProducerBatch) -> Result<Decision, ProducerError> {
        assert!(batch.producer_id >= 0, "only idempotent batches carry producer state");
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return Ok(Decision::Append);
        };
        let last_sequence = batch.last_sequence();
        if batch.epoch == entry.epoch {
            let duplicate = entry.batches.iter().find(|meta| {
                meta.first_sequence == batch.first_sequence && meta.last_sequence == last_sequence
            });
            if let Some(meta) = duplicate {
                return Ok(Decision::Duplicate(*meta));
            }
        }
        if batch.epoch < entry.epoch {
            return Err(ProducerError::StaleEpoch {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current_epoch: entry.epoch,
            });
        }
        let current_last = entry.batches.back().map_or(-1, |meta| meta.last_sequence);
        let accepted = if batch.epoch > entry.epoch {
            batch.first_sequence == 0
        } else {
            in_sequence(current_last, batch.first_sequence)
        };
        if !accepted {
            return Err(ProducerError::OutOfOrder {
                producer_id: batch.producer_id,
                first_sequence: batch.first_sequence,
                last_sequence: if batch.epoch > entry.epoch { -1 } else { current_last },
            });
        }
        Ok(Decision::Append)
    }

    /// Records `batch` at `first_offset..=last_offset`: after `check` said `Append`, or when
    /// replaying the log (which is not re-validated: it is what was accepted).
    pub fn apply(&mut self, batch: &ProducerBatch, first_offset: i64, last_offset: i64) {
        assert!(batch.producer_id >= 0 && first_offset >= 0 && last_offset >= first_offset);
        if !self.producers.contains_key(&batch.producer_id) && self.len() >= PRODUCERS_MAX {
            self.evict_least_recent();
        }
        let meta = BatchMeta {
            first_sequence: batch.first_sequence,
            last_sequence: batch.last_sequence(),
            first_offset,
            last_offset,
            max_timestamp_ms: batch.max_timestamp_ms,
        };
        let entry = self.producers.entry(batch.producer_id).or_insert_with(|| ProducerEntry {
            epoch: batch.epoch,
            batches: VecDeque::with_capacity(BATCHES_RETAINED),
            last_timestamp_ms: batch.max_timestamp_ms,
        });
        if entry.epoch != batch.epoch {
            // A new epoch starts a new sequence space: the old batches cannot be retried.
            entry.epoch = batch.epoch;
            entry.batches.clear();
        }
        if let Some(last) = entry.batches.back() {
            debug_assert!(last.last_offset < first_offset, "batches are applied in log order");
        }
        entry.batches.push_back(meta);
        if entry.batches.len() > BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        entry.last_timestamp_ms = batch.max_timestamp_ms;
        assert!(!entry.batches.is_empty() && entry.batches.len() <= BATCHES_RETAINED);
        assert!(self.producers.len() <= PRODUCERS_MAX);
    }

    /// Forgets producers whose last batch is `expiration_ms` or more older than `now_ms`
    /// (Kafka's `producer.id.expiration.ms`). Returns how many.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, entry| now_ms.saturating_sub(entry.last_timestamp_ms) < expiration_ms);
        before - self.producers.len()
    }

    /// Drops the producer with the oldest last timestamp (ties: the smallest id).
    fn evict_least_recent(&mut self) {
        let oldest = self
            .producers
            .iter()
            .min_by_key(|(producer_id, entry)| (entry.last_timestamp_ms, **producer_id))
            .map(|(producer_id, _)| *producer_id);
        if let Some(producer_id) = oldest {
            self.producers.remove(&producer_id);
        }
    }

    /// Inserts a whole entry (snapshot decoding). The caller checked its shape.
    pub(crate) fn insert_entry(&mut self, producer_id: i64, entry: ProducerEntry) {
        assert!(!entry.batches.is_empty() && entry.batches.len() <= BATCHES_RETAINED);
        assert!(self.producers.len() < PRODUCERS_MAX || self.producers.contains_key(&producer_id));
        self.producers.insert(producer_id, entry);
    }
}

#[cfg(test)]
mod tests;
