//! Replacing a small state file atomically: write a temporary file, fdatasync it, rename it
//! over the old one, fsync the directory. After a crash either the old or the new content is
//! there, never a mix. Used for every small record the broker keeps beside its logs
//! (`log-start-offset`, `leader-epochs`, a replica's `replica-state`).

use std::path::Path;

use super::checkpoint::PersistError;
use crate::io::{Disk, OpenOptions};

/// Replaces `dir/name` by `bytes`, durably. A failed write or rename leaves the old file (and
/// may be retried); a failed sync is an fsync failure, the storage-fault policy's business.
pub async fn replace_file(
    disk: &Disk,
    dir: &Path,
    name: &str,
    bytes: Vec<u8>,
) -> Result<(), PersistError> {
    let temporary = dir.join(format!("{name}.tmp"));
    let options = OpenOptions { create: true, truncate: true };
    let file = disk.open(&temporary, options).map_err(PersistError::Write)?;
    let (result, _) = file.write_all_at(bytes, 0).await;
    result.map_err(PersistError::Write)?;
    file.sync_data().await.map_err(PersistError::Sync)?;
    drop(file);
    disk.rename(&temporary, &dir.join(name)).map_err(PersistError::Write)?;
    disk.sync_dir(dir).map_err(PersistError::Sync)
}
