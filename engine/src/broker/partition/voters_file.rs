//! The voters batches of a replica's log (`replica-voters` in the partition directory): each
//! voter set the log holds and the offset of its batch (`replication/membership.rs`), so a
//! restarted replica knows who votes without reading its log.
//!
//! The file is written *before* the log changes that it describes: before a voters batch is
//! appended (by the leader, or by a follower taking the leader's batches), and after a
//! truncation cuts one, before anything else is appended. So it always lists every voters
//! batch the log holds, and perhaps some at or past the log end that a crash or a truncation
//! took away; recovery keeps those below the recovered log end ([`read`]).
//!
//! Format (big-endian): magic `TRRV`, version u16 (1), reserved u16, count u32, then `count`
//! entries of (offset i64, voter set as `replication::encode_voter_set` writes it), then
//! CRC32C u32 of everything before it. Replaced atomically (temporary file, fdatasync,
//! rename, directory fsync). A damaged file is refused at open: guessing the voters could
//! let a learner vote.

use std::path::Path;

use crate::io::{Disk, OpenOptions};
use crate::log::checkpoint::PersistError;
use crate::log::replace::replace_file;
use crate::replication::VOTERS_MAX;
use crate::replication::{decode_voter_set, encode_voter_set, VoterChange, VOTER_SIZE_BYTES};

pub const VOTERS_FILE_NAME: &str = "replica-voters";
const MAGIC: [u8; 4] = *b"TRRV";
const VERSION: u16 = 1;
const HEADER_SIZE_BYTES: usize = 12;
/// A bound on what a file may claim. Each change is a lost disk or a first pinning; a log
/// holds a handful.
pub const CHANGES_MAX: usize = 4_096;
const FILE_SIZE_MAX_BYTES: usize =
    HEADER_SIZE_BYTES + CHANGES_MAX * (8 + 1 + VOTERS_MAX * VOTER_SIZE_BYTES) + 4;

pub fn encode(changes: &[VoterChange]) -> Vec<u8> {
    assert!(changes.len() <= CHANGES_MAX, "{} voter changes", changes.len());
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&0u16.to_be_bytes());
    let count = u32::try_from(changes.len()).unwrap_or_else(|_| panic!("bounded above"));
    bytes.extend_from_slice(&count.to_be_bytes());
    for change in changes {
        bytes.extend_from_slice(&change.offset.to_be_bytes());
        encode_voter_set(&change.voters, &mut bytes);
    }
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes
}

/// `None` for anything but an intact version-1 file of changes in increasing offset order.
pub fn decode(bytes: &[u8]) -> Option<Vec<VoterChange>> {
    let (body, crc) = bytes.split_at(bytes.len().checked_sub(4)?);
    if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
        return None;
    }
    let header = body.get(..HEADER_SIZE_BYTES)?;
    let version = u16::from_be_bytes(header[4..6].try_into().ok()?);
    let count = u32::from_be_bytes(header[8..12].try_into().ok()?) as usize;
    let reserved = u16::from_be_bytes(header[6..8].try_into().ok()?);
    if header[0..4] != MAGIC || version != VERSION || reserved != 0 || count > CHANGES_MAX {
        return None;
    }
    let mut rest = &body[HEADER_SIZE_BYTES..];
    let mut changes: Vec<VoterChange> = Vec::with_capacity(count);
    for _ in 0..count {
        let offset = i64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let (voters, size_bytes) = decode_voter_set(&rest[8..])?;
        let ordered = changes.last().is_none_or(|last| last.offset < offset);
        if offset < 0 || !ordered {
            return None;
        }
        changes.push(VoterChange { offset, voters });
        rest = &rest[8 + size_bytes..];
    }
    rest.is_empty().then_some(changes)
}

/// Why the voters file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading the replica voters: {0}")]
    Io(#[from] std::io::Error),
    #[error("the replica-voters file is damaged; refusing to guess who votes")]
    Damaged,
}

/// The voters batches of a log that ends at `log_end_offset` (none when there is no file).
pub async fn read(
    disk: &Disk,
    dir: &Path,
    log_end_offset: i64,
) -> Result<Vec<VoterChange>, ReadError> {
    let path = dir.join(VOTERS_FILE_NAME);
    if !disk.exists(&path) {
        return Ok(Vec::new());
    }
    let file = disk.open(&path, OpenOptions { create: false, truncate: false })?;
    let size_bytes = usize::try_from(file.len()?).map_err(|_| ReadError::Damaged)?;
    if size_bytes > FILE_SIZE_MAX_BYTES {
        return Err(ReadError::Damaged);
    }
    let (result, bytes) = file.read_exact_at(Vec::with_capacity(size_bytes), 0).await;
    result?;
    let mut changes = decode(&bytes).ok_or(ReadError::Damaged)?;
    changes.retain(|change| change.offset < log_end_offset);
    Ok(changes)
}

/// Records `changes` durably and atomically (see `log/replace.rs`).
pub async fn write(disk: &Disk, dir: &Path, changes: &[VoterChange]) -> std::io::Result<()> {
    let replaced = replace_file(disk, dir, VOTERS_FILE_NAME, encode(changes));
    replaced.await.map_err(PersistError::into_io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::{DirectoryId, NodeId, Voter, VoterSet};

    fn change(offset: i64, nodes: &[u32]) -> VoterChange {
        let voters = nodes.iter().map(|node| Voter {
            node: NodeId(*node),
            directory: (*node > 1).then_some(DirectoryId(u128::from(*node) << 64)),
        });
        VoterChange { offset, voters: VoterSet::new(voters.collect()).expect("voters") }
    }

    #[test]
    fn round_trips_and_every_bit_flip_is_refused() {
        for changes in [vec![], vec![change(1, &[1, 2, 3]), change(5, &[1, 3])]] {
            let bytes = encode(&changes);
            assert_eq!(decode(&bytes), Some(changes.clone()));
            for bit in 0..bytes.len() * 8 {
                let mut damaged = bytes.clone();
                damaged[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(decode(&damaged), None, "bit {bit}");
            }
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
            }
        }
    }

    #[test]
    fn changes_out_of_order_are_refused() {
        let bytes = encode(&[change(5, &[1, 2]), change(5, &[1])]);
        assert_eq!(decode(&bytes), None);
    }
}
