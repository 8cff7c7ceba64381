//! Who votes: a partition's voters are (node, data directory) pairs, not nodes. A broker whose
//! data directory was wiped comes back with a new directory id and a blank memory of every
//! epoch and vote; as a new pair it is not a voter until the leader adds it (KIP-853, Raft
//! thesis §4.1), so it can never vote twice in an epoch in which its old self already voted.
//!
//! The voter set lives in the partition log: the leader appends a voters control batch, and
//! every replica uses the latest one in its log, committed or not ([`VoterHistory`]); a
//! truncation that cuts one reverts to the one before. The set in force before any such batch
//! is the partition's assignment ([`VoterHistory::new`]), its voters pinned to the directories
//! their brokers registered, or unpinned (`directory: None`, any directory of that node)
//! where no directory was known: a data directory made before ids existed, or a group created
//! before its brokers registered. The leader pins those once it learns the directories.
//!
//! A replica whose own pair is not in the set is a learner: it replicates and acknowledges,
//! but never campaigns, never grants a vote, and counts towards no commit, check-quorum or
//! lease. The leader changes the set one voter at a time (`replica/membership.rs`).

use super::message::NodeId;

/// The random id a data directory gets when it is made (`meta.json`). A newtype so that it
/// cannot be swapped with anything else 128 bits wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DirectoryId(pub u128);

/// One voter: a node, and the data directory it must run on (`None`: any, not pinned yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Voter {
    pub node: NodeId,
    pub directory: Option<DirectoryId>,
}

impl Voter {
    /// Whether `node` running on `directory` (`None`: not known) is this voter. A replica
    /// whose directory is not known yet is taken for the pinned one: its own view (it knows
    /// its directory) keeps a new incarnation from voting, and its acknowledgements report
    /// what its disk really holds.
    pub fn is(&self, node: NodeId, directory: Option<DirectoryId>) -> bool {
        let same_directory = match (self.directory, directory) {
            (Some(pinned), Some(running)) => pinned == running,
            (None, _) | (_, None) => true,
        };
        self.node == node && same_directory
    }
}

/// The most voters a set may have: far above any replication factor in use (Kafka clusters
/// rarely exceed 5), and a bound on what a message may carry.
pub const VOTERS_MAX: usize = 64;

/// A non-empty set of voters on distinct nodes, sorted by node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VoterSet {
    voters: Vec<Voter>,
}

impl VoterSet {
    /// `None` unless the voters are 1 to [`VOTERS_MAX`] on distinct nodes.
    pub fn new(mut voters: Vec<Voter>) -> Option<VoterSet> {
        voters.sort();
        let distinct = voters.windows(2).all(|pair| pair[0].node != pair[1].node);
        let sized = (1..=VOTERS_MAX).contains(&voters.len());
        (distinct && sized).then_some(VoterSet { voters })
    }

    /// Every node of `nodes` (distinct, 1 to [`VOTERS_MAX`]), none pinned.
    pub fn unpinned(nodes: &[NodeId]) -> VoterSet {
        let voters = nodes.iter().map(|node| Voter { node: *node, directory: None }).collect();
        VoterSet::new(voters).unwrap_or_else(|| panic!("voters {nodes:?}"))
    }

    pub fn voters(&self) -> &[Voter] {
        &self.voters
    }

    pub fn len(&self) -> usize {
        self.voters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// How many voters make a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub fn voter(&self, node: NodeId) -> Option<&Voter> {
        self.voters.iter().find(|voter| voter.node == node)
    }

    /// Whether `node` on `directory` (`None`: not known) votes.
    pub fn contains(&self, node: NodeId, directory: Option<DirectoryId>) -> bool {
        self.voter(node).is_some_and(|voter| voter.is(node, directory))
    }

    /// This set with `voter` in place of any voter on its node (or added).
    pub fn with(&self, voter: Voter) -> VoterSet {
        let mut voters: Vec<Voter> =
            self.voters.iter().copied().filter(|other| other.node != voter.node).collect();
        voters.push(voter);
        VoterSet::new(voters).unwrap_or_else(|| panic!("{self:?} with {voter:?}"))
    }

    /// This set without `node`'s voter; `None` if that would leave it empty.
    pub fn without(&self, node: NodeId) -> Option<VoterSet> {
        let voters = self.voters.iter().copied().filter(|voter| voter.node != node).collect();
        VoterSet::new(voters)
    }
}

/// The bytes of a voter set, as peers send it and the `replica-voters` file keeps it
/// (big-endian): count u8, then per voter node u32, pinned u8 (0 or 1), directory 16 bytes
/// (zero when not pinned).
pub fn encode_voter_set(voters: &VoterSet, out: &mut Vec<u8>) {
    let count = u8::try_from(voters.len()).unwrap_or_else(|_| panic!("{voters:?}"));
    out.push(count);
    for voter in voters.voters() {
        out.extend_from_slice(&voter.node.0.to_be_bytes());
        out.push(u8::from(voter.directory.is_some()));
        out.extend_from_slice(&voter.directory.map_or(0, |directory| directory.0).to_be_bytes());
    }
}

/// The bytes one voter takes in [`encode_voter_set`].
pub const VOTER_SIZE_BYTES: usize = 4 + 1 + 16;

/// A voter set from the front of `bytes` and how many bytes it took; `None` for anything
/// [`encode_voter_set`] cannot have written (truncated, a flag not 0 or 1, a directory on
/// an unpinned voter, a set [`VoterSet::new`] refuses).
pub fn decode_voter_set(bytes: &[u8]) -> Option<(VoterSet, usize)> {
    let count = usize::from(*bytes.first()?);
    let size_bytes = 1 + count * VOTER_SIZE_BYTES;
    let body = bytes.get(1..size_bytes)?;
    let mut voters = Vec::with_capacity(count);
    for chunk in body.chunks_exact(VOTER_SIZE_BYTES) {
        let node = NodeId(u32::from_be_bytes(chunk[0..4].try_into().ok()?));
        let directory = u128::from_be_bytes(chunk[5..21].try_into().ok()?);
        let directory = match chunk[4] {
            0 if directory == 0 => None,
            1 => Some(DirectoryId(directory)),
            _ => return None,
        };
        voters.push(Voter { node, directory });
    }
    // In node order, as encoded: one set has one encoding.
    let ordered = voters.windows(2).all(|pair| pair[0].node < pair[1].node);
    ordered.then_some(())?;
    Some((VoterSet::new(voters)?, size_bytes))
}

/// A voters control batch in the log: the set in force from `offset` (a one-record batch) on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterChange {
    pub offset: i64,
    pub voters: VoterSet,
}

/// The voter sets of a replica's log: the assignment's, then each voters batch in offset
/// order. Only the latest counts; the earlier ones are kept while a truncation could still
/// cut a later one (above the high watermark), and forgotten below it ([`Self::forget_below`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterHistory {
    /// The set in force below the first change kept.
    base: VoterSet,
    changes: Vec<VoterChange>,
}

impl VoterHistory {
    /// The assignment's set, then the voters batches found in the log (in offset order).
    pub fn new(initial: VoterSet, changes: Vec<VoterChange>) -> VoterHistory {
        let mut history = VoterHistory { base: initial, changes: Vec::new() };
        for change in changes {
            history.append(change);
        }
        history
    }

    /// The set in force at the log end.
    pub fn latest(&self) -> &VoterSet {
        self.changes.last().map_or(&self.base, |change| &change.voters)
    }

    /// The offset of the latest voters batch still kept, if any.
    pub fn latest_offset(&self) -> Option<i64> {
        self.changes.last().map(|change| change.offset)
    }

    pub fn changes(&self) -> &[VoterChange] {
        &self.changes
    }

    /// The changes at offsets in `start_offset..end_offset`.
    pub fn changes_within(&self, start_offset: i64, end_offset: i64) -> Vec<VoterChange> {
        let range = start_offset..end_offset;
        self.changes.iter().filter(|change| range.contains(&change.offset)).cloned().collect()
    }

    /// A voters batch at the log end.
    pub fn append(&mut self, change: VoterChange) {
        assert!(
            self.latest_offset().is_none_or(|last| last < change.offset),
            "voter changes in offset order: {change:?} after {self:?}"
        );
        assert!(change.offset >= 0);
        self.changes.push(change);
    }

    /// The log was cut at `offset`: changes at or after it are gone.
    pub fn truncate_from(&mut self, offset: i64) {
        self.changes.retain(|change| change.offset < offset);
    }

    /// Changes below `offset` (the high watermark) can no longer be truncated: keep only the
    /// latest of them, as the base.
    pub fn forget_below(&mut self, offset: i64) {
        let committed = self.changes.partition_point(|change| change.offset < offset);
        if committed > 0 {
            self.base = self.changes[committed - 1].voters.clone();
            self.changes.drain(..committed);
        }
        assert!(self.changes.iter().all(|change| change.offset >= offset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voter(node: u32, directory: Option<u128>) -> Voter {
        Voter { node: NodeId(node), directory: directory.map(DirectoryId) }
    }

    fn set(voters: &[(u32, Option<u128>)]) -> VoterSet {
        VoterSet::new(voters.iter().map(|(node, directory)| voter(*node, *directory)).collect())
            .expect("a valid set")
    }

    #[test]
    fn a_pinned_voter_is_only_its_own_directory_and_an_unpinned_one_is_any() {
        let voters = set(&[(1, Some(10)), (2, None)]);
        let cases = [
            ((1, Some(10)), true),
            ((1, Some(11)), false),
            ((1, None), true),
            ((2, Some(99)), true),
            ((3, None), false),
        ];
        for ((node, directory), expected) in cases {
            let found = voters.contains(NodeId(node), directory.map(DirectoryId));
            assert_eq!(found, expected, "node {node} directory {directory:?}");
        }
    }

    #[test]
    fn a_voter_set_is_distinct_nodes_within_the_bound() {
        assert!(VoterSet::new(vec![]).is_none());
        assert!(VoterSet::new(vec![voter(1, Some(1)), voter(1, Some(2))]).is_none());
        let many = (0..=VOTERS_MAX as u32).map(|node| voter(node, None)).collect();
        assert!(VoterSet::new(many).is_none());
        assert_eq!(set(&[(3, None), (1, None), (2, None)]).quorum(), 2);
        assert_eq!(set(&[(3, None), (1, None)]).quorum(), 2);
        assert!(set(&[(1, None)]).without(NodeId(1)).is_none());
        assert_eq!(
            set(&[(1, None), (2, None)]).with(voter(2, Some(5))).voter(NodeId(2)),
            Some(&voter(2, Some(5)))
        );
    }

    #[test]
    fn the_latest_change_counts_and_a_truncation_reverts_to_the_one_before() {
        let initial = set(&[(1, None), (2, None), (3, None)]);
        let pinned = set(&[(1, None), (2, Some(7)), (3, None)]);
        let removed = set(&[(1, None), (3, None)]);
        let mut history = VoterHistory::new(
            initial.clone(),
            vec![VoterChange { offset: 4, voters: pinned.clone() }],
        );
        history.append(VoterChange { offset: 9, voters: removed.clone() });
        assert_eq!(history.latest(), &removed);
        assert_eq!(history.changes_within(4, 9).len(), 1);
        history.truncate_from(9);
        assert_eq!(history.latest(), &pinned);
        history.truncate_from(2);
        assert_eq!(history.latest(), &initial);
        history.append(VoterChange { offset: 3, voters: removed.clone() });
        history.forget_below(4);
        assert_eq!((history.latest(), history.changes().len()), (&removed, 0));
        history.truncate_from(0);
        assert_eq!(history.latest(), &removed, "a committed change is never cut");
    }

    #[test]
    fn a_voter_set_round_trips_and_what_it_cannot_be_is_refused() {
        let voters = set(&[(1, Some(u128::MAX)), (2, None), (7, Some(3))]);
        let mut bytes = Vec::new();
        encode_voter_set(&voters, &mut bytes);
        bytes.push(0xff);
        assert_eq!(decode_voter_set(&bytes), Some((voters.clone(), bytes.len() - 1)));
        for cut in 0..bytes.len() - 1 {
            assert_eq!(decode_voter_set(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut swapped = bytes.clone();
        swapped[1..1 + 2 * VOTER_SIZE_BYTES].rotate_left(VOTER_SIZE_BYTES);
        assert_eq!(decode_voter_set(&swapped), None, "out of node order");
        let mut duplicate = bytes.clone();
        duplicate[1 + VOTER_SIZE_BYTES..1 + VOTER_SIZE_BYTES + 4]
            .copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(decode_voter_set(&duplicate), None, "two voters on node 1");
        let mut flag = bytes.clone();
        flag[1 + 4] = 2;
        assert_eq!(decode_voter_set(&flag), None);
        let mut stray = bytes.clone();
        stray[1 + VOTER_SIZE_BYTES + 20] = 1;
        assert_eq!(decode_voter_set(&stray), None, "a directory on an unpinned voter");
        assert_eq!(decode_voter_set(&[0]), None, "no voters");
    }

    #[test]
    #[should_panic(expected = "offset order")]
    fn changes_out_of_offset_order_are_a_bug() {
        let initial = set(&[(1, None)]);
        let change = |offset| VoterChange { offset, voters: initial.clone() };
        VoterHistory::new(initial.clone(), vec![change(5), change(5)]);
    }
}
