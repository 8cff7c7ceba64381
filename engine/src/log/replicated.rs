//! The verbs a replica drives (`CommitMode::Quorum`): a follower's byte-for-byte copy of the
//! leader's batches (`append_replicated`), the commit index (`commit`), and this copy's
//! durable end, which a follower reports and a leader counts toward its quorum. Cutting a
//! divergent tail is `truncate.rs`.
//!
//! The Raft log *is* this log: an entry is a batch, its index the batch's offsets, its term
//! the batch's partitionLeaderEpoch (`leader_epochs.rs` maps offsets to epochs).

use std::future::Future;
use std::rc::Rc;

use bytes::BytesMut;

use super::append;
use super::config::CommitMode;
use super::error::LogError;
use super::flush;
use super::partition::Log;
use super::state::AppendInfo;

impl Log {
    /// A follower appends the leader's batches as they are (offsets and epochs included): the
    /// first must start at the log end. Each batch is checked whole (framing, CRC32C) before
    /// it is admitted; a refusal admits none of them. The future resolves once all of them
    /// are durable here (not when committed).
    pub fn append_replicated(
        &self,
        batches: Vec<BytesMut>,
    ) -> Result<impl Future<Output = Result<AppendInfo, LogError>> + 'static, LogError> {
        assert_eq!(self.shared.config().commit, CommitMode::Quorum, "only a replica copies");
        let receivers = append::admit_replicated(&self.shared, batches)?;
        Ok(async move {
            let mut first: Option<AppendInfo> = None;
            let mut last: Option<AppendInfo> = None;
            for receiver in receivers {
                let info = receiver.await.unwrap_or(Err(LogError::Closed))?;
                first.get_or_insert(info);
                last = Some(info);
            }
            match (first, last) {
                (Some(first), Some(last)) => {
                    Ok(AppendInfo { last_offset: last.last_offset, ..first })
                }
                _ => Err(LogError::InvalidBatch { size_bytes: 0 }),
            }
        })
    }

    /// The replica's commit index: the high watermark becomes min(it, this copy's durable end)
    /// now and follows the durable end up to it; appends waiting for their commit are
    /// answered in offset order as it covers them. Never goes back (a lower index is ignored).
    pub fn commit(&self, commit_index: i64) {
        let shared = &self.shared;
        assert_eq!(shared.config().commit, CommitMode::Quorum, "a local log commits itself");
        let high_watermark = {
            let mut state = shared.state.borrow_mut();
            assert!(
                commit_index <= state.log_end_offset,
                "commit index {commit_index} beyond the log end {}",
                state.log_end_offset
            );
            state.commit_index = state.commit_index.max(commit_index);
            state.commit_index.min(state.synced.offset)
        };
        if high_watermark > shared.state.borrow().high_watermark {
            flush::commit(shared, high_watermark);
        }
    }

    /// The replica stopped leading: every append still waiting for its commit is answered
    /// [`LogError::CommitAbandoned`] at once, as Kafka answers a leader's pending produce
    /// requests when it becomes a follower. Otherwise a leader cut off from its peers but
    /// not from its clients would hold their requests until they time out, and an
    /// idempotent producer waits for those before it moves to the new leader. The batches
    /// stay in the log: the next leader commits or cuts them. Returns how many were answered.
    ///
    /// The appends themselves stay queued: a failed write's rollback rebuilds producer state
    /// from them (`flush::restore_producers_below`), and a later commit or cut still walks
    /// them; only their answer goes now (a later one finds nobody listening).
    pub fn abandon_awaiting_commit(&self) -> usize {
        assert_eq!(self.shared.config().commit, CommitMode::Quorum, "a local log commits itself");
        let mut state = self.shared.state.borrow_mut();
        let mut answered = 0;
        for append in state.awaiting_commit.iter_mut() {
            let (unheard, _) = crate::io::local::oneshot();
            let done = std::mem::replace(&mut append.done, unheard);
            answered += usize::from(done.send(Err(LogError::CommitAbandoned)).is_ok());
        }
        answered
    }

    /// The end of what is fdatasync'd here: what a follower may acknowledge to its leader,
    /// and what a leader counts for itself.
    pub fn durable_end_offset(&self) -> i64 {
        self.shared.state.borrow().synced.offset
    }

    /// Completes when the durable end is no longer `seen` (it moved up, or down with a cut),
    /// or the log closes or goes offline.
    pub fn wait_for_durable_change(&self, seen: i64) -> impl Future<Output = ()> + 'static {
        let shared = Rc::clone(&self.shared);
        async move {
            // Each round either returns or waits for a notification: no busy loop.
            loop {
                let notified = shared.durable_changed.notified();
                {
                    let state = shared.state.borrow();
                    if state.synced.offset != seen || state.unusable().is_some() {
                        return;
                    }
                }
                notified.await;
            }
        }
    }

    /// `Ok` while the log serves reads and writes; the reason it does not otherwise.
    pub fn check_usable(&self) -> Result<(), LogError> {
        match self.shared.state.borrow().unusable() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Completes when the durable end exceeds `offset`, or the log closes or goes offline.
    pub fn wait_for_durable_above(&self, offset: i64) -> impl Future<Output = ()> + 'static {
        let shared = Rc::clone(&self.shared);
        async move {
            // Each round either returns or waits for a notification: no busy loop.
            loop {
                let notified = shared.durable_changed.notified();
                {
                    let state = shared.state.borrow();
                    if state.synced.offset > offset || state.unusable().is_some() {
                        return;
                    }
                }
                notified.await;
            }
        }
    }
}
