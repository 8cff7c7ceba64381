//! Mapping of engine errors to the Kafka error codes clients act on. This is the protocol
//! edge: inside the engine errors are typed; here they become numbers.

use super::groups::service::WriteError;
use super::groups::GroupError;
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
        // Cut from an old leader's log before it committed: retry at the new leader.
        LogError::Truncated => ErrorCode::NotLeaderOrFollower,
        LogError::CommitAbandoned => ErrorCode::NotLeaderOrFollower,
        // A broker validation bug, never a client's: still, the batch is refused as corrupt.
        LogError::InvalidBatch { .. } => ErrorCode::CorruptMessage,
        // The partition's bounded append queue is full: retriable, the client backs off.
        LogError::Overloaded { .. } => ErrorCode::RequestTimedOut,
        // Written, not confirmed: the outcome is unknown, as after an acks=all timeout.
        LogError::Unconfirmed => ErrorCode::RequestTimedOut,
        // Idempotent producers: a fenced epoch, a sequence gap, or a batch the protocol forbids.
        LogError::Producer(ProducerError::StaleEpoch { .. }) => ErrorCode::InvalidProducerEpoch,
        LogError::Producer(ProducerError::OutOfOrder { .. }) => ErrorCode::OutOfOrderSequenceNumber,
        LogError::InvalidProducerBatch { .. } => ErrorCode::InvalidRecord,
        _ => ErrorCode::KafkaStorageError,
    }
}

/// A group coordinator write that failed: the log's code, or UNKNOWN_SERVER_ERROR for a
/// record that cannot be encoded — what Kafka's group coordinator answers for a record it
/// cannot serialise or append (`CoordinatorOperationExceptionHelper` maps unexpected
/// exceptions, MESSAGE_TOO_LARGE and its kin to it).
pub fn write_error_code(error: &WriteError) -> ErrorCode {
    match error {
        // The replica stopped leading before the write committed: as below.
        WriteError::Log(LogError::Truncated | LogError::CommitAbandoned) => {
            ErrorCode::NotCoordinator
        }
        WriteError::Log(error) => log_error_code(error),
        WriteError::Record(_) => ErrorCode::UnknownServerError,
        // As Kafka's coordinator answers a NOT_LEADER_OR_FOLLOWER append: look me up again.
        WriteError::NotLeader => ErrorCode::NotCoordinator,
    }
}

/// The Kafka code of each group-coordinator error: the codes clients act on (rejoin on
/// UNKNOWN_MEMBER_ID and ILLEGAL_GENERATION, retry on REBALANCE_IN_PROGRESS and
/// COORDINATOR_LOAD_IN_PROGRESS, give up on FENCED_INSTANCE_ID).
pub fn group_error_code(error: GroupError) -> ErrorCode {
    match error {
        GroupError::LoadInProgress => ErrorCode::CoordinatorLoadInProgress,
        GroupError::CoordinatorNotAvailable => ErrorCode::CoordinatorNotAvailable,
        GroupError::NotCoordinator => ErrorCode::NotCoordinator,
        GroupError::InvalidGroupId => ErrorCode::InvalidGroupId,
        GroupError::UnknownMemberId => ErrorCode::UnknownMemberId,
        GroupError::MemberIdRequired => ErrorCode::MemberIdRequired,
        GroupError::IllegalGeneration => ErrorCode::IllegalGeneration,
        GroupError::RebalanceInProgress => ErrorCode::RebalanceInProgress,
        GroupError::InconsistentGroupProtocol => ErrorCode::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout => ErrorCode::InvalidSessionTimeout,
        GroupError::FencedInstanceId => ErrorCode::FencedInstanceId,
        GroupError::GroupIdNotFound => ErrorCode::GroupIdNotFound,
        GroupError::NonEmptyGroup => ErrorCode::NonEmptyGroup,
        GroupError::GroupMaxSizeReached => ErrorCode::GroupMaxSizeReached,
        GroupError::OffsetMetadataTooLarge => ErrorCode::OffsetMetadataTooLarge,
        // Kafka has no code for a bound it does not have; this one says "the commit's size".
        GroupError::TooManyOffsets => ErrorCode::InvalidCommitOffsetSize,
        GroupError::GroupSubscribedToTopic => ErrorCode::GroupSubscribedToTopic,
    }
}
