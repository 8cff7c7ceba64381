//! `state_files` target: the small files and internal records the broker reads back from its
//! own disk, each a parser of bytes that a torn write, bit rot or a misdirected write can
//! hand it: the recovery checkpoint (`recovery-point`), the write intent (`write-intent`), a
//! producer-state snapshot (`<offset>.snapshot`), the producer-id block file (`producer-ids`),
//! the `__consumer_offsets` records the group coordinator rebuilds its state from, the
//! checksum header of `meta.json` and `topics.json`, the `log-start-offset` file, the
//! leader-epoch cache (`leader-epochs`), a replica's hard state (`replica-state`) and its
//! voters batches (`replica-voters`).
//!
//! Input: the first byte picks the decoder (modulo 10); the rest is the file. For a group
//! record the rest is a u16-BE-length-prefixed key, a byte whose low bit says whether a value
//! follows, then the value.
//!
//! Properties: decoding never panics (a count or length field must not make it allocate what
//! it claims: `.ci/fuzz` runs this target with `-malloc_limit_mb=128`); whatever decodes is a
//! value the broker could have written: re-encoding it must not trip the encoder's assertions
//! (else the broker would crash on its next write of that state) and must decode to the same
//! value; a group record re-encoded in the versions Tern writes reads back unchanged after at
//! most one normalisation (older value versions carry fields the current ones drop); a
//! metadata file whose checksum header checks out is exactly what sealing its body gives.
//!
//! Shared by the cargo-fuzz target and `engine/tests/fuzz_corpus.rs` (included by path).

use tern::broker::groups::records::GroupRecord;
use tern::broker::metadata_file::{self, Unsealed};
use tern::broker::partition::{replica_state, voters_file};
use tern::broker::producer_ids;
use tern::log::{checkpoint, intent, leader_epochs, producer_snapshot, start_offset};

pub const KIND_CHECKPOINT: u8 = 0;
pub const KIND_INTENT: u8 = 1;
pub const KIND_PRODUCER_SNAPSHOT: u8 = 2;
pub const KIND_PRODUCER_IDS: u8 = 3;
pub const KIND_GROUP_RECORD: u8 = 4;
pub const KIND_METADATA_FILE: u8 = 5;
pub const KIND_LOG_START_OFFSET: u8 = 6;
pub const KIND_LEADER_EPOCHS: u8 = 7;
pub const KIND_REPLICA_STATE: u8 = 8;
pub const KIND_REPLICA_VOTERS: u8 = 9;
const KINDS: u8 = 10;

pub fn run(data: &[u8]) {
    let Some((&kind, file)) = data.split_first() else { return };
    match kind % KINDS {
        KIND_CHECKPOINT => {
            if let Some(decoded) = checkpoint::decode(file) {
                assert_eq!(checkpoint::decode(&checkpoint::encode(&decoded)), Some(decoded));
            }
        }
        KIND_INTENT => {
            if let Some(decoded) = intent::decode(file) {
                assert_eq!(intent::decode(&intent::encode(&decoded)), Some(decoded));
            }
        }
        KIND_PRODUCER_SNAPSHOT => {
            if let Some((offset, states)) = producer_snapshot::decode(file) {
                let encoded = producer_snapshot::encode(&states, offset);
                assert_eq!(producer_snapshot::decode(&encoded), Some((offset, states)));
            }
        }
        KIND_PRODUCER_IDS => {
            if let Some(high_water_mark) = producer_ids::decode(file) {
                let encoded = producer_ids::encode(high_water_mark);
                assert_eq!(producer_ids::decode(&encoded), Some(high_water_mark));
            }
        }
        KIND_METADATA_FILE => {
            if let Ok(Unsealed::Checked(body)) = metadata_file::unseal(file) {
                assert_eq!(metadata_file::seal(body), file, "one sealing per body");
            }
        }
        KIND_LOG_START_OFFSET => {
            if let Some(offset) = start_offset::decode(file) {
                assert_eq!(start_offset::decode(&start_offset::encode(offset)), Some(offset));
            }
        }
        KIND_LEADER_EPOCHS => {
            if let Some(epochs) = leader_epochs::decode(file) {
                let encoded = leader_epochs::encode(&epochs);
                assert_eq!(leader_epochs::decode(&encoded), Some(epochs));
            }
        }
        KIND_REPLICA_STATE => {
            if let Some(state) = replica_state::decode(file) {
                assert_eq!(replica_state::decode(&replica_state::encode(&state)), Some(state));
            }
        }
        KIND_REPLICA_VOTERS => {
            if let Some(changes) = voters_file::decode(file) {
                assert_eq!(voters_file::encode(&changes), file, "one encoding per file");
            }
        }
        _ => group_record(file),
    }
}

/// Splits a group-record input into key and optional value (see the module doc).
pub fn split_group_record(file: &[u8]) -> (&[u8], Option<&[u8]>) {
    let (length, rest) = match file {
        [high, low, rest @ ..] => (usize::from(u16::from_be_bytes([*high, *low])), rest),
        _ => (0, &[][..]),
    };
    let (key, rest) = rest.split_at(length.min(rest.len()));
    match rest.split_first() {
        Some((flag, value)) if flag & 1 == 1 => (key, Some(value)),
        _ => (key, None),
    }
}

/// The group-record input for `key` and `value` (the inverse of [`split_group_record`]).
pub fn join_group_record(key: &[u8], value: Option<&[u8]>) -> Vec<u8> {
    let length = u16::try_from(key.len()).expect("keys in seeds are short");
    let mut bytes = length.to_be_bytes().to_vec();
    bytes.extend_from_slice(key);
    match value {
        Some(value) => {
            bytes.push(1);
            bytes.extend_from_slice(value);
        }
        None => bytes.push(0),
    }
    bytes
}

fn group_record(file: &[u8]) {
    let (key, value) = split_group_record(file);
    let Ok(Some(decoded)) = GroupRecord::decode(key, value) else { return };
    let normalised = reencoded(&decoded);
    assert_eq!(reencoded(&normalised), normalised, "a written group record reads back as is");
    assert_eq!(normalised.key, decoded.key, "keys have no version-dependent fields");
}

fn reencoded(record: &GroupRecord) -> GroupRecord {
    let (key, value) = record
        .encode()
        .unwrap_or_else(|error| panic!("a record Tern reads must encode: {record:?}: {error}"));
    match GroupRecord::decode(&key, value.as_deref()) {
        Ok(Some(read)) => read,
        other => panic!("a record Tern writes must read back: {record:?} gave {other:?}"),
    }
}
