//! File names inside a partition directory.
//!
//! `<base_offset:020>.log`, `<base_offset:020>.index`, `<base_offset:020>.timeindex` and
//! `recovery-point`. Anything else in the directory is ignored (and left alone).

use std::path::{Path, PathBuf};

pub const LOG_SUFFIX: &str = "log";
pub const OFFSET_INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";
pub const CHECKPOINT_FILE_NAME: &str = "recovery-point";

/// Digits of the zero-padded base offset, so names sort in offset order.
const BASE_OFFSET_DIGITS: usize = 20;

/// What a directory entry is, judged by its name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Log { base_offset: i64 },
    OffsetIndex { base_offset: i64 },
    TimeIndex { base_offset: i64 },
    Checkpoint,
    Other,
}

pub fn file_name(base_offset: i64, suffix: &str) -> String {
    assert!(base_offset >= 0, "negative base offset {base_offset}");
    format!("{base_offset:0width$}.{suffix}", width = BASE_OFFSET_DIGITS)
}

pub fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(file_name(base_offset, suffix))
}

pub fn classify(name: &str) -> EntryKind {
    if name == CHECKPOINT_FILE_NAME {
        return EntryKind::Checkpoint;
    }
    let Some((stem, suffix)) = name.split_once('.') else { return EntryKind::Other };
    if stem.len() != BASE_OFFSET_DIGITS || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return EntryKind::Other;
    }
    let Ok(base_offset) = stem.parse::<i64>() else { return EntryKind::Other };
    match suffix {
        LOG_SUFFIX => EntryKind::Log { base_offset },
        OFFSET_INDEX_SUFFIX => EntryKind::OffsetIndex { base_offset },
        TIME_INDEX_SUFFIX => EntryKind::TimeIndex { base_offset },
        _ => EntryKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_in_offset_order() {
        let name = file_name(42, LOG_SUFFIX);
        assert_eq!(name, "00000000000000000042.log");
        assert_eq!(classify(&name), EntryKind::Log { base_offset: 42 });
        assert!(file_name(9, LOG_SUFFIX) < file_name(10, LOG_SUFFIX));
        let largest = file_name(i64::MAX, TIME_INDEX_SUFFIX);
        assert_eq!(classify(&largest), EntryKind::TimeIndex { base_offset: i64::MAX });
    }

    #[test]
    fn foreign_names_are_other() {
        for name in ["x.log", "0042.log", "00000000000000000042.tmp", "99999999999999999999.log"] {
            assert_eq!(classify(name), EntryKind::Other, "{name}");
        }
        assert_eq!(classify(CHECKPOINT_FILE_NAME), EntryKind::Checkpoint);
    }
}
