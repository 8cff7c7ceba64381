//! The follower's side: log matching. An append is accepted only if the follower holds an
//! entry of `prev_epoch` at `prev_offset`; otherwise it is rejected with a hint (the
//! follower's log end, and the epoch run it holds at the compared offset). On acceptance the
//! follower keeps the entries it already has, cuts its log at the first entry whose epoch
//! differs (never below its high watermark, never below what it verified in this epoch) and
//! appends the rest. Its high watermark follows the leader's, bounded by what it verified.
//!
//! A follower acknowledges only durable data: after appending it owes the leader an answer,
//! sent when [`Replica::handle_durable`] covers the new batches.

use super::{LogOp, Message, Replica, Role};
use crate::replication::membership::VoterChange;
use crate::replication::message::{AppendHeader, AppendRequest, AppendResponse, Divergence};

impl<P> Replica<P> {
    /// An append whose epoch is ours (a higher one was adopted before).
    pub(super) fn handle_append_request(&mut self, request: AppendRequest<P>, now_ms: i64) {
        let header = request.header;
        assert_eq!(header.epoch, self.epoch);
        match self.role {
            // Two leaders in one epoch cannot happen with honest peers: ignore it.
            Role::Leader => return,
            Role::PreCandidate | Role::Candidate => {
                self.become_follower(self.epoch, Some(header.leader), now_ms);
            }
            Role::Follower => {}
        }
        match self.leader {
            None => self.leader = Some(header.leader),
            Some(leader) if leader != header.leader => return,
            Some(_) => {}
        }
        self.leader_contact_ms = Some(now_ms);
        self.reset_election_timer(now_ms);
        let clock_ms = self.following.leader_clock_ms.max(header.leader_clock_ms);
        self.following.leader_clock_ms = clock_ms;
        if let Some(divergence) = self.prev_mismatch(&header) {
            let rejection = self.rejection(header.prev_offset, divergence);
            self.send(header.leader, Message::AppendResponse(rejection));
            return;
        }
        let entries = request.entries;
        let Some(appended) =
            self.take_entries(&header, entries, request.payload, request.voter_changes)
        else {
            return;
        };
        let commit_offset = header.leader_commit.min(self.following.verified_end_offset);
        if commit_offset > self.high_watermark {
            self.push_commit(commit_offset);
        }
        if appended && !self.config.planted_ack_before_durable {
            self.following.ack_owed = true;
        } else {
            self.acknowledge_durable();
        }
    }

    /// `None` if we hold `prev_epoch` at `prev_offset`; otherwise the rejection's hint.
    fn prev_mismatch(&self, header: &AppendHeader) -> Option<Option<Divergence>> {
        let prev_offset = header.prev_offset;
        if prev_offset == -1 || self.log.epoch_at(prev_offset) == Some(header.prev_epoch) {
            return None;
        }
        let compared = prev_offset.min(self.log.log_end_offset - 1);
        let run = if compared >= 0 { self.log.epochs.run_at(compared) } else { None };
        assert!(run.is_none_or(|run| run.start_offset <= compared));
        let divergence =
            run.map(|run| Divergence { epoch: run.epoch, epoch_start_offset: run.start_offset });
        Some(divergence)
    }

    /// Keeps matching entries, cuts at the first conflict, appends the rest. Returns whether
    /// anything was appended, or `None` (and changes nothing) if the request contradicts a
    /// committed or verified entry or its batches do not line up with ours.
    fn take_entries(
        &mut self,
        header: &AppendHeader,
        entries: Vec<super::EntryMeta>,
        payload: P,
        voter_changes: Vec<VoterChange>,
    ) -> Option<bool> {
        let request_end_offset = entries.last().map_or(header.prev_offset + 1, |e| e.next_offset);
        let mut first_new = entries.len();
        let mut conflict_offset = None;
        for (index, entry) in entries.iter().enumerate() {
            if entry.base_offset >= self.log.log_end_offset {
                first_new = index;
                break;
            }
            match self.log.epoch_at(entry.base_offset) {
                Some(epoch) if epoch == entry.epoch => {
                    if entry.next_offset > self.log.log_end_offset {
                        return None;
                    }
                }
                Some(_) => {
                    first_new = index;
                    conflict_offset = Some(entry.base_offset);
                    break;
                }
                None => return None,
            }
        }
        if let Some(offset) = conflict_offset {
            let protected = self.high_watermark.max(self.following.verified_end_offset);
            if offset < protected {
                return None;
            }
            self.truncate(offset);
        }
        let following = &mut self.following;
        following.verified_end_offset = following.verified_end_offset.max(request_end_offset);
        if first_new == entries.len() {
            return Some(false);
        }
        let new_entries = entries[first_new..].to_vec();
        for entry in &new_entries {
            self.log.append(*entry);
        }
        // The voters batches among the new entries take effect now, committed or not.
        let first_new_offset = new_entries[0].base_offset;
        let new_changes: Vec<VoterChange> =
            voter_changes.into_iter().filter(|change| change.offset >= first_new_offset).collect();
        for change in &new_changes {
            self.voters.append(change.clone());
        }
        assert_eq!(self.log.log_end_offset, request_end_offset);
        let voter_changes = new_changes;
        self.log_ops.push(LogOp::Append { entries: new_entries, payload, voter_changes });
        Some(true)
    }

    /// Cuts our divergent, uncommitted tail.
    fn truncate(&mut self, from_offset: i64) {
        assert!(from_offset >= self.high_watermark, "never truncate a committed entry");
        assert!(from_offset >= self.following.verified_end_offset);
        self.log.truncate_from(from_offset);
        self.voters.truncate_from(from_offset);
        self.log_ops.push(LogOp::Truncate { from_offset });
    }

    /// Tells the leader how far our log matches its log and how much of that is durable.
    pub(super) fn acknowledge_durable(&mut self) {
        assert_eq!(self.role, Role::Follower);
        let Some(leader) = self.leader else {
            // No leader to tell (we stepped to a new epoch): nothing is owed any more.
            self.following.ack_owed = false;
            return;
        };
        let verified_end_offset = self.following.verified_end_offset;
        let durable_end_offset = if self.config.planted_ack_before_durable {
            verified_end_offset
        } else {
            verified_end_offset.min(self.log.durable_end_offset)
        };
        let following = &mut self.following;
        following.reported_durable_end_offset =
            following.reported_durable_end_offset.max(durable_end_offset);
        following.ack_owed = durable_end_offset < verified_end_offset;
        let response = AppendResponse {
            epoch: self.epoch,
            success: true,
            matched_end_offset: verified_end_offset,
            durable_end_offset,
            log_end_offset: self.log.log_end_offset,
            rejected_prev_offset: -1,
            divergence: None,
            leader_clock_ms: following.leader_clock_ms,
        };
        self.send(leader, Message::AppendResponse(response));
    }
}
