//! Mapping of engine errors to the Kafka error codes clients act on. This is the protocol
//! edge: inside the engine errors are typed; here they become numbers.

use crate::log::producers::ProducerError;
use crate::log::LogError;
use crate::protocol::error_code::ErrorCode;

/// The storage-fault policy of DESIGN.md seen from a client: every storage fault is
/// KAFKA_STORAGE_ERROR (clients retry or fail over); a closing log is NOT_LEADER_OR_FOLLOWER
/// (clients refresh metadata and retry).
pub fn log_error_code(error: &LogError) -> ErrorCode {
    match error {
        LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        LogError::BatchTooLarge { .. } => ErrorCode::MessageTooLarge,
        LogError::Closed => ErrorCode::NotLeaderOrFollower,
        // A broker validation bug, never a client's: still, the batch is refused as corrupt.
        LogError::InvalidBatch { .. } => ErrorCode::CorruptMessage,
        // The partition's bounded append queue is full: retriable, the client backs off.
        LogError::Overloaded { .. } => ErrorCode::RequestTimedOut,
        // Idempotent producers: a fenced epoch, a sequence gap, or a batch the protocol forbids.
        LogError::Producer(ProducerError::StaleEpoch { .. }) => ErrorCode::InvalidProducerEpoch,
        LogError::Producer(ProducerError::OutOfOrder { .. }) => ErrorCode::OutOfOrderSequenceNumber,
        LogError::InvalidProducerBatch { .. } => ErrorCode::InvalidRecord,
        _ => ErrorCode::KafkaStorageError,
    }
}
