//! Replication: a sans-IO Raft replica per partition ([`Replica`]), where the partition log
//! *is* the Raft log (record batches are the entries, offsets their indexes) and the Raft
//! term *is* Kafka's leader epoch (stamped in every batch's partitionLeaderEpoch). The
//! replica holds no batch bytes and touches no clock, disk or socket: it decides, and a
//! driver (in `broker/`, not built yet) reads and writes the log, syncs it, keeps time and
//! carries messages. Unit tests drive it message by message over a simulated network
//! (`tests/`). `docs/replication.md` describes the protocol as built.
//!
//! # The driver contract
//!
//! Inputs, each with the current time where time matters (time never goes back):
//! - [`Replica::handle_message`]: a peer's message, as received (it may be stale,
//!   duplicated, reordered or malformed: the replica checks).
//! - [`Replica::handle_tick`]: call it at least every heartbeat interval.
//! - [`Replica::handle_appended`]: the leader's driver appended a batch (a client's, or the
//!   leader-change batch a [`LogOp::AppendLeaderChange`] asked for) at the log end. Append
//!   only while [`Replica::is_leader`] in the batch's epoch, and report it at once.
//! - [`Replica::handle_durable`]: the log is fdatasync'd below an offset (any role).
//!
//! Output: after any input, drain [`Replica::poll_ready`] until it returns `None`. Handle the
//! [`Ready`]s in the order they come, and each one in this order:
//! 1. `hard_state`, if any: make it durable (fdatasync) first. No message of this Ready or
//!    of a later one may leave before it is: a vote or an epoch must survive a crash before
//!    anyone acts on it.
//! 2. `log_ops`, in order: append/truncate the log (syncing later is fine: durability is
//!    reported through `handle_durable`; a sync issued before a truncation covers at most
//!    the truncation point), publish a new high watermark ([`LogOp::Commit`]: batches below
//!    it may be served and acknowledged), and for [`LogOp::ReadForPeer`] read whole batches
//!    from the one holding `start_offset` (at most `max_bytes`, at least one batch unless at
//!    the log end), pass them to [`Replica::build_append`], and send the request it returns
//!    (none: the replica no longer leads that epoch; drop the read).
//! 3. `messages`: send them, in any order; losing some is fine.
//!
//! Nothing else needs completing: there is no `advance()`. The replica assumes a step it
//! asked for happens unless the process crashes, and a crash restarts it from its persisted
//! [`HardState`] and a [`LogSummary`] of the recovered log.

mod epochs;
mod membership;
mod message;
mod replica;
#[cfg(test)]
mod tests;

pub use epochs::{EpochStart, LeaderEpochs, LocalLog};
pub use membership::{
    decode_voter_set, encode_voter_set, DirectoryId, Voter, VoterChange, VoterHistory, VoterSet,
    VOTERS_MAX, VOTER_SIZE_BYTES,
};
pub use message::{
    AppendHeader, AppendRequest, AppendResponse, Divergence, EntryMeta, LeadershipRequest, Message,
    NodeId, TimeoutNow, VoteRequest, VoteResponse, NO_EPOCH, OFFSET_MAX,
};
pub use replica::{HardState, LogOp, LogSummary, PeerRead, Ready, Replica, ReplicaConfig, Role};
