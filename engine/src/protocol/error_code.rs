//! Kafka error codes that Tern sends, and the mapping from Tern's record-batch errors to them.
//!
//! Only codes clients act on are listed; the numbers are Kafka's (`Errors.java`) and are part
//! of the wire protocol, so they never change. Clients retry on some (NOT_LEADER_OR_FOLLOWER,
//! REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR...), refresh metadata on others, and fail the send
//! on the rest; picking the right one matters more than the message text.

use crate::record_batch::BatchError;

/// A Kafka error code. `code()` gives the `i16` that goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
#[non_exhaustive]
pub enum ErrorCode {
    UnknownServerError = -1,
    None = 0,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    InvalidFetchSize = 4,
    LeaderNotAvailable = 5,
    NotLeaderOrFollower = 6,
    RequestTimedOut = 7,
    MessageTooLarge = 10,
    OffsetMetadataTooLarge = 12,
    CoordinatorLoadInProgress = 14,
    CoordinatorNotAvailable = 15,
    NotCoordinator = 16,
    InvalidTopicException = 17,
    RecordListTooLarge = 18,
    NotEnoughReplicas = 19,
    NotEnoughReplicasAfterAppend = 20,
    InvalidRequiredAcks = 21,
    IllegalGeneration = 22,
    InconsistentGroupProtocol = 23,
    InvalidGroupId = 24,
    UnknownMemberId = 25,
    InvalidSessionTimeout = 26,
    RebalanceInProgress = 27,
    InvalidCommitOffsetSize = 28,
    InvalidTimestamp = 32,
    TopicAuthorizationFailed = 29,
    ClusterAuthorizationFailed = 31,
    UnsupportedVersion = 35,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidReplicationFactor = 38,
    InvalidReplicaAssignment = 39,
    InvalidConfig = 40,
    NotController = 41,
    InvalidRequest = 42,
    UnsupportedForMessageFormat = 43,
    PolicyViolation = 44,
    OutOfOrderSequenceNumber = 45,
    DuplicateSequenceNumber = 46,
    InvalidProducerEpoch = 47,
    InvalidProducerIdMapping = 49,
    KafkaStorageError = 56,
    NonEmptyGroup = 68,
    GroupIdNotFound = 69,
    UnknownProducerId = 59,
    FetchSessionIdNotFound = 70,
    FencedLeaderEpoch = 74,
    UnknownLeaderEpoch = 75,
    UnsupportedCompressionType = 76,
    OffsetNotAvailable = 78,
    MemberIdRequired = 79,
    PreferredLeaderNotAvailable = 80,
    GroupMaxSizeReached = 81,
    FencedInstanceId = 82,
    ElectionNotNeeded = 84,
    GroupSubscribedToTopic = 86,
    InvalidRecord = 87,
    ThrottlingQuotaExceeded = 89,
    UnknownTopicId = 100,
    InconsistentTopicId = 103,
}

impl ErrorCode {
    /// The value sent on the wire.
    pub const fn code(self) -> i16 {
        self as i16
    }
}

impl From<ErrorCode> for i16 {
    fn from(error: ErrorCode) -> i16 {
        error.code()
    }
}

/// What Apache Kafka 4.x answers for each kind of bad produced batch (per partition, in the
/// produce response), so that clients react to Tern as they do to Kafka:
///
/// - size/length/CRC problems: Kafka's `DefaultRecordBatch.ensureValid` and the batch iterator
///   throw `CorruptRecordException` → CORRUPT_MESSAGE (2). An unknown codec id is refused the
///   same way here (Kafka fails it with an `IllegalArgumentException`, i.e. UNKNOWN_SERVER_ERROR,
///   which tells a client nothing useful).
/// - magic 0 or 1: since KIP-724/KIP-896, `ProduceRequest.validateRecords` throws
///   `InvalidRecordException("Produce requests with version N are only allowed to contain
///   record batches with magic version 2")` → INVALID_RECORD (87), not
///   UNSUPPORTED_FOR_MESSAGE_FORMAT (43), which Kafka 4 no longer sends for produce.
/// - records that do not parse or disagree with the header (count, offset deltas, trailing
///   bytes): `DefaultRecord.readFrom`/`LogValidator` throw `InvalidRecordException` →
///   INVALID_RECORD (87).
impl From<&BatchError> for ErrorCode {
    fn from(error: &BatchError) -> ErrorCode {
        match error {
            BatchError::TooShortForHeader { .. }
            | BatchError::BadLength { .. }
            | BatchError::Truncated { .. }
            | BatchError::CrcMismatch { .. }
            | BatchError::UnknownCompression { .. } => ErrorCode::CorruptMessage,
            BatchError::UnsupportedMagic { .. }
            | BatchError::BadRecordCount { .. }
            | BatchError::BadLastOffsetDelta { .. }
            | BatchError::BadRecord { .. }
            | BatchError::TrailingBytes { .. } => ErrorCode::InvalidRecord,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::ResponseError;

    /// Our numbers must agree with the codec crate's table, which is generated from Kafka's.
    #[test]
    fn codes_agree_with_kafka_protocol_crate() {
        let pairs = [
            (ErrorCode::OffsetOutOfRange, ResponseError::OffsetOutOfRange),
            (ErrorCode::CorruptMessage, ResponseError::CorruptMessage),
            (ErrorCode::UnknownTopicOrPartition, ResponseError::UnknownTopicOrPartition),
            (ErrorCode::NotLeaderOrFollower, ResponseError::NotLeaderOrFollower),
            (ErrorCode::RequestTimedOut, ResponseError::RequestTimedOut),
            (ErrorCode::MessageTooLarge, ResponseError::MessageTooLarge),
            (ErrorCode::CoordinatorLoadInProgress, ResponseError::CoordinatorLoadInProgress),
            (ErrorCode::CoordinatorNotAvailable, ResponseError::CoordinatorNotAvailable),
            (ErrorCode::NotCoordinator, ResponseError::NotCoordinator),
            (ErrorCode::OffsetMetadataTooLarge, ResponseError::OffsetMetadataTooLarge),
            (ErrorCode::IllegalGeneration, ResponseError::IllegalGeneration),
            (ErrorCode::InconsistentGroupProtocol, ResponseError::InconsistentGroupProtocol),
            (ErrorCode::InvalidGroupId, ResponseError::InvalidGroupId),
            (ErrorCode::UnknownMemberId, ResponseError::UnknownMemberId),
            (ErrorCode::InvalidSessionTimeout, ResponseError::InvalidSessionTimeout),
            (ErrorCode::RebalanceInProgress, ResponseError::RebalanceInProgress),
            (ErrorCode::InvalidCommitOffsetSize, ResponseError::InvalidCommitOffsetSize),
            (ErrorCode::NonEmptyGroup, ResponseError::NonEmptyGroup),
            (ErrorCode::GroupIdNotFound, ResponseError::GroupIdNotFound),
            (ErrorCode::MemberIdRequired, ResponseError::MemberIdRequired),
            (ErrorCode::PreferredLeaderNotAvailable, ResponseError::PreferredLeaderNotAvailable),
            (ErrorCode::ElectionNotNeeded, ResponseError::ElectionNotNeeded),
            (ErrorCode::PolicyViolation, ResponseError::PolicyViolation),
            (ErrorCode::GroupMaxSizeReached, ResponseError::GroupMaxSizeReached),
            (ErrorCode::FencedInstanceId, ResponseError::FencedInstanceId),
            (ErrorCode::GroupSubscribedToTopic, ResponseError::GroupSubscribedToTopic),
            (ErrorCode::NotEnoughReplicas, ResponseError::NotEnoughReplicas),
            (ErrorCode::InvalidTimestamp, ResponseError::InvalidTimestamp),
            (ErrorCode::UnsupportedVersion, ResponseError::UnsupportedVersion),
            (ErrorCode::TopicAlreadyExists, ResponseError::TopicAlreadyExists),
            (ErrorCode::InvalidRequest, ResponseError::InvalidRequest),
            (ErrorCode::UnsupportedForMessageFormat, ResponseError::UnsupportedForMessageFormat),
            (ErrorCode::OutOfOrderSequenceNumber, ResponseError::OutOfOrderSequenceNumber),
            (ErrorCode::DuplicateSequenceNumber, ResponseError::DuplicateSequenceNumber),
            (ErrorCode::InvalidProducerEpoch, ResponseError::InvalidProducerEpoch),
            (ErrorCode::KafkaStorageError, ResponseError::KafkaStorageError),
            (ErrorCode::FetchSessionIdNotFound, ResponseError::FetchSessionIdNotFound),
            (ErrorCode::FencedLeaderEpoch, ResponseError::FencedLeaderEpoch),
            (ErrorCode::UnknownLeaderEpoch, ResponseError::UnknownLeaderEpoch),
            (ErrorCode::OffsetNotAvailable, ResponseError::OffsetNotAvailable),
            (ErrorCode::InvalidRecord, ResponseError::InvalidRecord),
            (ErrorCode::ThrottlingQuotaExceeded, ResponseError::ThrottlingQuotaExceeded),
            (ErrorCode::UnknownTopicId, ResponseError::UnknownTopicId),
            (ErrorCode::InconsistentTopicId, ResponseError::InconsistentTopicId),
            (ErrorCode::UnknownServerError, ResponseError::UnknownServerError),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(ours.code(), theirs.code(), "{ours:?}");
        }
    }

    #[test]
    fn batch_errors_map_like_kafka() {
        let check = |error: BatchError, expected: ErrorCode| {
            assert_eq!(ErrorCode::from(&error), expected, "{error}");
        };
        check(BatchError::CrcMismatch { stored: 1, computed: 2 }, ErrorCode::CorruptMessage);
        check(BatchError::BadLength { batch_length: 3 }, ErrorCode::CorruptMessage);
        check(BatchError::Truncated { claimed: 90, available: 70 }, ErrorCode::CorruptMessage);
        check(BatchError::UnsupportedMagic { magic: 1 }, ErrorCode::InvalidRecord);
        check(BatchError::UnsupportedMagic { magic: 0 }, ErrorCode::InvalidRecord);
        check(BatchError::BadRecord { index: 0, reason: "key" }, ErrorCode::InvalidRecord);
        assert_eq!(ErrorCode::None.code(), 0);
        assert_eq!(ErrorCode::UnknownServerError.code(), -1);
    }
}
