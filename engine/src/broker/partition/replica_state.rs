//! The replica's hard state on disk (`replica-state` in the partition directory): the epoch
//! it is in and whom it voted for there. Raft's `currentTerm` and `votedFor`: written and
//! fdatasync'd before any message that depends on them leaves (DESIGN.md: votes and terms are
//! durable before the reply), so a restarted replica never votes twice in one epoch.
//!
//! Format (24 bytes, big-endian): magic `TRRS`, version u16 (1), reserved u16, epoch i32,
//! voted for i64 (-1: nobody), CRC32C u32 of bytes 0..20. Replaced atomically (temporary
//! file, fdatasync, rename, directory fsync). A damaged file is refused at open: guessing
//! "no vote" could grant a second vote in an epoch.

use std::path::Path;

use crate::io::{Disk, OpenOptions};
use crate::log::checkpoint::PersistError;
use crate::log::replace::replace_file;
use crate::replication::{HardState, NodeId};

pub const REPLICA_STATE_FILE_NAME: &str = "replica-state";
const SIZE_BYTES: usize = 24;
const MAGIC: [u8; 4] = *b"TRRS";
const VERSION: u16 = 1;

pub fn encode(state: &HardState) -> Vec<u8> {
    assert!(state.epoch >= 0, "epoch {}", state.epoch);
    let mut bytes = Vec::with_capacity(SIZE_BYTES);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&state.epoch.to_be_bytes());
    let voted_for = state.voted_for.map_or(-1, |node| i64::from(node.0));
    bytes.extend_from_slice(&voted_for.to_be_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    assert_eq!(bytes.len(), SIZE_BYTES);
    bytes
}

/// `None` for anything but an intact version-1 record.
pub fn decode(bytes: &[u8]) -> Option<HardState> {
    if bytes.len() != SIZE_BYTES || bytes[0..4] != MAGIC {
        return None;
    }
    let stored_crc = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    if crc32c::crc32c(&bytes[..20]) != stored_crc {
        return None;
    }
    let version = u16::from_be_bytes(bytes[4..6].try_into().ok()?);
    let epoch = i32::from_be_bytes(bytes[8..12].try_into().ok()?);
    let voted_for = i64::from_be_bytes(bytes[12..20].try_into().ok()?);
    let voted_for = match voted_for {
        -1 => None,
        node => Some(NodeId(u32::try_from(node).ok()?)),
    };
    (version == VERSION && epoch >= 0).then_some(HardState { epoch, voted_for })
}

/// Why the hard state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading the replica state: {0}")]
    Io(#[from] std::io::Error),
    #[error("the replica-state file is damaged; refusing to guess the vote")]
    Damaged,
}

/// The recorded hard state; the default (epoch 0, no vote) when there is no file yet.
pub async fn read(disk: &Disk, dir: &Path) -> Result<HardState, ReadError> {
    let path = dir.join(REPLICA_STATE_FILE_NAME);
    if !disk.exists(&path) {
        return Ok(HardState::default());
    }
    let file = disk.open(&path, OpenOptions { create: false, truncate: false })?;
    if file.len()? != SIZE_BYTES as u64 {
        return Err(ReadError::Damaged);
    }
    let (result, bytes) = file.read_exact_at(Vec::with_capacity(SIZE_BYTES), 0).await;
    result?;
    decode(&bytes).ok_or(ReadError::Damaged)
}

/// Records `state` durably and atomically (see `log/replace.rs`).
pub async fn write(disk: &Disk, dir: &Path, state: &HardState) -> std::io::Result<()> {
    let replaced = replace_file(disk, dir, REPLICA_STATE_FILE_NAME, encode(state));
    replaced.await.map_err(PersistError::into_io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_every_bit_flip_is_refused() {
        for state in [
            HardState { epoch: 0, voted_for: None },
            HardState { epoch: 7, voted_for: Some(NodeId(3)) },
            HardState { epoch: i32::MAX, voted_for: Some(NodeId(u32::MAX)) },
        ] {
            let bytes = encode(&state);
            assert_eq!(decode(&bytes), Some(state));
            for bit in 0..bytes.len() * 8 {
                let mut damaged = bytes.clone();
                damaged[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(decode(&damaged), None, "bit {bit}");
            }
        }
    }
}
