//! What replicas of one partition say to each other. Every message carries its sender's epoch
//! (Raft's term, Kafka's leader epoch), so a receiver can adopt a newer epoch or reject a
//! stale sender before looking at anything else.
//!
//! Messages come from the network: a receiver validates every field it uses and ignores or
//! rejects what does not fit; it never panics on one. The replica holds no record bytes: an
//! append names its batches by offsets and epochs ([`EntryMeta`]) and carries the bytes as an
//! opaque payload `P` that only the driver reads.

use super::membership::VoterChange;
#[cfg(doc)]
use super::membership::VoterSet;

/// A broker's id within the partition's replica set. A newtype so that it cannot be swapped
/// with an offset or an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

/// The epoch of "no entry": the empty log's last epoch and the `prev_epoch` of an append that
/// starts at offset 0 (Kafka's `-1`). Real epochs are never negative.
pub const NO_EPOCH: i32 = -1;

/// Offsets beyond this are malformed: far past any real log, and far from overflowing.
pub const OFFSET_MAX: i64 = i64::MAX / 4;

/// One record batch of the log: the offsets `base_offset..next_offset` written in `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    pub base_offset: i64,
    pub next_offset: i64,
    pub epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<P> {
    VoteRequest(VoteRequest),
    VoteResponse(VoteResponse),
    AppendRequest(AppendRequest<P>),
    AppendResponse(AppendResponse),
    TimeoutNow(TimeoutNow),
    LeadershipRequest(LeadershipRequest),
}

impl<P> Message<P> {
    /// The sender's epoch (for a granted pre-vote: the epoch it was asked about).
    pub fn epoch(&self) -> i32 {
        match self {
            Message::VoteRequest(request) => request.epoch,
            Message::VoteResponse(response) => response.epoch,
            Message::AppendRequest(request) => request.header.epoch,
            Message::AppendResponse(response) => response.epoch,
            Message::TimeoutNow(timeout_now) => timeout_now.epoch,
            Message::LeadershipRequest(request) => request.epoch,
        }
    }
}

impl<P> Message<P> {
    /// Whether the fields fit together and name `from` where they name the sender. A replica
    /// ignores a message that is not: it came from a broken or hostile peer.
    pub fn is_well_formed(&self, from: NodeId) -> bool {
        match self {
            Message::VoteRequest(request) => {
                request.candidate == from
                    && request.epoch >= 0
                    && is_offset(request.log_end_offset)
                    && (NO_EPOCH..=request.epoch).contains(&request.last_epoch)
                    && !(request.pre_vote && request.transfer)
            }
            Message::VoteResponse(response) => response.epoch >= 0,
            Message::AppendRequest(request) => {
                request.header.leader == from
                    && is_header_well_formed(&request.header)
                    && are_entries_well_formed(&request.header, &request.entries)
                    && are_voter_changes_well_formed(&request.entries, &request.voter_changes)
            }
            Message::AppendResponse(response) => is_response_well_formed(response),
            Message::TimeoutNow(timeout_now) => {
                timeout_now.leader == from && timeout_now.epoch >= 0
            }
            Message::LeadershipRequest(request) => request.candidate == from && request.epoch >= 0,
        }
    }
}

fn is_offset(offset: i64) -> bool {
    (0..=OFFSET_MAX).contains(&offset)
}

fn is_header_well_formed(header: &AppendHeader) -> bool {
    let empty_prefix = header.prev_offset == -1 && header.prev_epoch == NO_EPOCH;
    let prefix = is_offset(header.prev_offset) && (0..=header.epoch).contains(&header.prev_epoch);
    header.epoch >= 0
        && (empty_prefix || prefix)
        && is_offset(header.leader_commit)
        && header.leader_clock_ms >= 0
}

/// Contiguous batches from `prev_offset + 1`, each non-empty, epochs from `prev_epoch` up to
/// the leader's epoch, never going back.
fn are_entries_well_formed(header: &AppendHeader, entries: &[EntryMeta]) -> bool {
    let mut expected_base = header.prev_offset + 1;
    let mut epoch_min = header.prev_epoch.max(0);
    for entry in entries {
        let fits = entry.base_offset == expected_base
            && entry.base_offset < entry.next_offset
            && is_offset(entry.next_offset)
            && (epoch_min..=header.epoch).contains(&entry.epoch);
        if !fits {
            return false;
        }
        expected_base = entry.next_offset;
        epoch_min = entry.epoch;
    }
    true
}

/// Each change names a distinct one-offset entry of the request, in offset order (the sets
/// themselves were checked when they were decoded: [`VoterSet::new`]).
fn are_voter_changes_well_formed(entries: &[EntryMeta], changes: &[VoterChange]) -> bool {
    let ordered = changes.windows(2).all(|pair| pair[0].offset < pair[1].offset);
    let named = changes.iter().all(|change| {
        let index = entries.partition_point(|entry| entry.base_offset < change.offset);
        let entry = entries.get(index);
        entry.is_some_and(|entry| {
            entry.base_offset == change.offset && entry.next_offset - entry.base_offset == 1
        })
    });
    ordered && named && changes.len() <= entries.len()
}

fn is_response_well_formed(response: &AppendResponse) -> bool {
    let offsets =
        [response.matched_end_offset, response.durable_end_offset, response.log_end_offset];
    let divergence = response
        .divergence
        .is_none_or(|divergence| divergence.epoch >= 0 && is_offset(divergence.epoch_start_offset));
    response.epoch >= 0
        && offsets.into_iter().all(is_offset)
        && response.durable_end_offset <= response.matched_end_offset
        && (-1..=OFFSET_MAX).contains(&response.rejected_prev_offset)
        && response.leader_clock_ms >= 0
        && divergence
}

/// A (pre-)candidate asks for a vote. A pre-vote asks "would you vote for me in `epoch`?"
/// without anyone changing epoch; `epoch` is then the candidate's epoch + 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoteRequest {
    pub epoch: i32,
    pub candidate: NodeId,
    /// The candidate's log end and the epoch of its last entry: a voter grants only if this
    /// is at least as up to date as its own log, compared as `(last_epoch, log_end_offset)`.
    pub log_end_offset: i64,
    pub last_epoch: i32,
    pub pre_vote: bool,
    /// A real vote the leader of the previous epoch asked for, handing its leadership over
    /// ([`TimeoutNow`]): voters grant it even while they still hear from that leader (which
    /// gave up its read lease when it asked). Never set on a pre-vote.
    pub transfer: bool,
}

/// A granted pre-vote echoes the request's epoch; anything else carries the voter's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoteResponse {
    pub epoch: i32,
    pub granted: bool,
    pub pre_vote: bool,
}

/// What the leader's replica decides about an append; the driver adds the batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendHeader {
    pub epoch: i32,
    pub leader: NodeId,
    /// The entry just before the first one sent: the follower must hold an entry of
    /// `prev_epoch` at `prev_offset` (`-1` and [`NO_EPOCH`] when sending from offset 0).
    pub prev_offset: i64,
    pub prev_epoch: i32,
    /// The leader's high watermark.
    pub leader_commit: i64,
    /// The leader's clock when it decided to send this (at or before it left). Echoed in
    /// the follower's answers, it dates the follower's promise not to vote for anyone else
    /// for an election timeout: the leader's read lease counts from it, never from when an
    /// answer arrived (answers can sit in a queue for as long as a pause lasts).
    pub leader_clock_ms: i64,
}

/// Batches `entries` (contiguous, starting at `prev_offset + 1`) with their bytes in
/// `payload`. No entries: a heartbeat, which still checks `prev_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRequest<P> {
    pub header: AppendHeader,
    pub entries: Vec<EntryMeta>,
    pub payload: P,
    /// The voters batches among `entries`, in offset order: each names a one-offset entry
    /// (`membership.rs`). The replica keeps its own voter history, so the leader's replica
    /// fills these in ([`crate::replication::Replica::build_append`]), not its driver.
    pub voter_changes: Vec<VoterChange>,
}

/// A follower's answer to an append (or, unasked, news that more of it became durable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResponse {
    pub epoch: i32,
    pub success: bool,
    /// Success: the follower's log matches the leader's below this offset (the leader sends
    /// from here next). Rejection: 0.
    pub matched_end_offset: i64,
    /// Success: how much of the matched prefix is durable (fdatasync'd) on the follower. Only
    /// this counts toward the commit quorum. Rejection: 0.
    pub durable_end_offset: i64,
    /// The follower's log end (next offset it would write).
    pub log_end_offset: i64,
    /// Rejection: the `prev_offset` of the rejected request, and what the follower holds
    /// there, so the leader can back up in one step.
    pub rejected_prev_offset: i64,
    pub divergence: Option<Divergence>,
    /// The latest `leader_clock_ms` the follower took from its leader in this epoch (what it
    /// answers to a stale leader is not looked at).
    pub leader_clock_ms: i64,
}

/// The leader of `epoch` hands its leadership to the receiver: campaign now, skipping the
/// pre-vote (Raft thesis §3.10). Sent only once the receiver holds the leader's whole log,
/// while the leader takes no writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutNow {
    pub epoch: i32,
    pub leader: NodeId,
}

/// A follower of `epoch`'s leader asks it for the leadership (to become the preferred
/// leader again, or because an operator asked: ElectLeaders). The leader hands over only to
/// a follower that reached its log end lately; anything else is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadershipRequest {
    pub epoch: i32,
    pub candidate: NodeId,
}

/// A rejecting follower's hint: at the last offset it compared (`min(prev_offset, its log
/// end - 1)`) it holds an entry of `epoch`, and its run of that epoch starts at
/// `epoch_start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Divergence {
    pub epoch: i32,
    pub epoch_start_offset: i64,
}
