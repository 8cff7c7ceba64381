//! The log's error type and health report. Every variant documents how the broker answers it.

/// Errors from the partition log.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum LogError {
    /// An I/O error on a read, or while opening. KAFKA_STORAGE_ERROR; a read may be retried.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The disk is full: nothing of the failed append was acknowledged. KAFKA_STORAGE_ERROR
    /// until space is free again; the log re-checks by itself and resumes.
    #[error("no space left on the log's disk")]
    NoSpace,
    /// An fdatasync (or write) failed: the log refuses all reads and writes until it is
    /// re-opened, which recovers it from what is durable. KAFKA_STORAGE_ERROR.
    #[error("the log is offline after a storage fault; re-open it to recover")]
    Offline,
    /// OFFSET_OUT_OF_RANGE.
    #[error("offset {offset} is outside [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange { offset: i64, log_start_offset: i64, high_watermark: i64 },
    /// Detected loss of acknowledged data at and beyond `offset` (a CRC-invalid batch with
    /// intact batches behind it). KAFKA_STORAGE_ERROR; never served, never silently skipped.
    #[error("log data is corrupt from offset {offset} on (detected loss)")]
    Corrupt { offset: i64 },
    /// MESSAGE_TOO_LARGE (or RECORD_LIST_TOO_LARGE for the whole request).
    #[error("batch of {size_bytes} bytes exceeds max.message.bytes {max_message_bytes}")]
    BatchTooLarge { size_bytes: usize, max_message_bytes: u32 },
    /// A batch whose header does not frame it (the broker validates batches before appending,
    /// so this is a broker bug surfacing as CORRUPT_MESSAGE rather than a crash).
    #[error("batch of {size_bytes} bytes is not a valid record batch v2")]
    InvalidBatch { size_bytes: usize },
    /// Too many appends are already waiting for the disk; retriable (REQUEST_TIMED_OUT).
    #[error("too many appends in flight ({pending_appends} waiting)")]
    Overloaded { pending_appends: usize },
    /// An idempotent batch refused by the producer state: INVALID_PRODUCER_EPOCH or
    /// OUT_OF_ORDER_SEQUENCE_NUMBER; the client bumps its epoch or fails the batch.
    #[error(transparent)]
    Producer(#[from] super::producers::ProducerError),
    /// An idempotent batch the protocol does not allow (INVALID_RECORD).
    #[error("invalid idempotent batch: {reason}")]
    InvalidProducerBatch { reason: &'static str },
    /// The append's data reached the disk but could not be confirmed durable in full (the
    /// write intent over it could not be reset), so it is not acknowledged: it may or may not
    /// be in the log once the log is recovered. REQUEST_TIMED_OUT: an unknown outcome, as
    /// Kafka answers when acks=all times out after the append; the log is offline.
    #[error("the append may or may not be durable: the log went offline before confirming it")]
    Unconfirmed,
    /// A planned read (`region.rs`) found an intact batch where its plan did not put it: the
    /// segment changed under it. The answer is given up (its length is already sent); the
    /// client asks again and a new plan reads what is there now.
    #[error("a planned read at offset {offset} no longer matches its segment")]
    RegionStale { offset: i64 },
    /// A follower was handed batches that do not continue its log (a replica bug or a stale
    /// message): nothing is appended. The replica re-syncs from the leader.
    #[error(
        "replicated batch at offset {base_offset} does not continue the log at {expected_offset}"
    )]
    NotContiguous { expected_offset: i64, base_offset: i64 },
    /// The append was written while this replica led, but the log was cut below its end
    /// (`truncate_suffix`) before a quorum held it: it is not in the log.
    /// NOT_LEADER_OR_FOLLOWER: the client retries at the new leader.
    #[error("the append was cut from the log before it was committed")]
    Truncated,
    /// The append was written while this replica led, and it stopped leading before a quorum
    /// held it (`abandon_awaiting_commit`): the next leader commits or cuts it, nobody here
    /// will know which. NOT_LEADER_OR_FOLLOWER: the client retries at the new leader (an
    /// idempotent retry of a batch that was kept is answered with its original offsets).
    #[error("this replica stopped leading before the append was committed")]
    CommitAbandoned,
    /// `truncate_suffix` was asked to cut inside a batch (a replica bug or a stale message):
    /// nothing is cut.
    #[error("offset {offset} is not where a batch starts")]
    NotBatchBoundary { offset: i64 },
    /// The log was closed or deleted; NOT_LEADER_OR_FOLLOWER / UNKNOWN_TOPIC_OR_PARTITION.
    #[error("the log is closed")]
    Closed,
}

/// Whether the log accepts appends and serves reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogStatus {
    Online,
    /// Appends fail with [`LogError::NoSpace`]; reads work.
    NoSpace,
    /// Reads and appends fail with [`LogError::Offline`] until the log is re-opened.
    Offline {
        reason: String,
    },
}

/// What `Log::health` reports (metrics, admin commands, the simulator's checker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHealth {
    pub status: LogStatus,
    /// Detected loss: reads at or beyond this offset fail with [`LogError::Corrupt`], and
    /// appends are refused (they would be acknowledged yet unreadable).
    pub corrupt_from: Option<i64>,
}

/// True when the error is the disk being full.
pub(crate) fn is_no_space(error: &std::io::Error) -> bool {
    error.raw_os_error() == Some(libc::ENOSPC)
}
