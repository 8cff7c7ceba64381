//! Checksummed metadata files: the small JSON files of the data directory (`meta.json`,
//! `topics.json`) start with a one-line header holding the CRC32C and length of the JSON
//! body that follows it:
//!
//! ```text
//! tern-crc32c v1 5f0c11aa 1234
//! { ...JSON, exactly 1234 bytes... }
//! ```
//!
//! Why a header line and not a field inside the JSON: the checksum covers the body's exact
//! bytes, no canonical re-serialisation needed, and the file stays readable with `tail -n +2`.
//!
//! Policy (docs/storage.md, "Metadata files"): a file whose header or checksum does not match
//! makes the broker refuse to start with an error naming the file. Nothing is guessed around
//! (a stale or partial topic registry would silently hide topics); like Kafka with a damaged
//! `meta.properties`, the operator repairs it. Repair path: a file WITHOUT the header is read
//! as the pre-checksum format (the upgrade path), so removing the header line after checking
//! or fixing the JSON makes it acceptable again; the broker re-seals such a file at start.
//!
//! A damaged new-format file is never mistaken for an old one: the old format starts (after
//! optional whitespace) with `{`, and no single bit flip turns the header's `t` (0x74) into
//! `{` (0x7b) or whitespace.

use std::io;
use std::path::Path;

use crate::io::Disk;

use super::topics::{read_whole_file, write_file_atomically};

const MAGIC: &str = "tern-crc32c";
const VERSION: &str = "v1";
/// Longer headers are not ours (the real one is at most 12 + 3 + 9 + 21 bytes).
const HEADER_BYTES_MAX: usize = 64;

/// What a metadata file held.
#[derive(Debug, PartialEq, Eq)]
pub enum Unsealed<'a> {
    /// The body of a file whose header matched it.
    Checked(&'a [u8]),
    /// A pre-checksum file: plain JSON, no integrity check possible.
    Legacy(&'a [u8]),
}

/// Why a file is not an intact metadata file.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("neither a checksum header nor JSON (zeroed, truncated or overwritten)")]
    NotMetadata,
    #[error("checksum header of an unknown format version: {header:?}")]
    UnknownVersion { header: String },
    #[error("the header says {found:?} but the body has {expected:?} (damaged or torn)")]
    Mismatch { found: String, expected: String },
}

fn header_for(body: &[u8]) -> String {
    format!("{MAGIC} {VERSION} {:08x} {}", crc32c::crc32c(body), body.len())
}

/// `body` behind its checksum header: the bytes to store.
pub fn seal(body: &[u8]) -> Vec<u8> {
    let mut bytes = header_for(body).into_bytes();
    bytes.push(b'\n');
    bytes.extend_from_slice(body);
    bytes
}

/// Checks a stored file and returns its body.
pub fn unseal(bytes: &[u8]) -> Result<Unsealed<'_>, SealError> {
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{') {
        return Ok(Unsealed::Legacy(bytes));
    }
    if !bytes.starts_with(MAGIC.as_bytes()) {
        return Err(SealError::NotMetadata);
    }
    let window = &bytes[..bytes.len().min(HEADER_BYTES_MAX)];
    let Some(newline) = window.iter().position(|byte| *byte == b'\n') else {
        return Err(SealError::NotMetadata);
    };
    let found = String::from_utf8_lossy(&bytes[..newline]).into_owned();
    let body = &bytes[newline + 1..];
    // Comparing the whole header with the one the body calls for catches a flip anywhere in
    // it, including ones that would still parse (a digit changed, a case changed).
    let expected = header_for(body);
    if found == expected {
        return Ok(Unsealed::Checked(body));
    }
    if found.split(' ').nth(1) != Some(VERSION) {
        return Err(SealError::UnknownVersion { header: found });
    }
    Err(SealError::Mismatch { found, expected })
}

/// Parses a metadata file's JSON as `T`, whose format version (read by `version_of`) must be
/// `expected`; `what` names the file in the error. The identity and the topic registry share
/// this; each checks its own content after.
pub fn parse_versioned<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
    what: &str,
    version_of: impl Fn(&T) -> u32,
    expected: u32,
) -> io::Result<T> {
    let parsed: T = serde_json::from_slice(bytes).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a valid {what}: {error}", path.display()),
        )
    })?;
    let version = version_of(&parsed);
    if version != expected {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} has unknown format version {version}", path.display()),
        ));
    }
    Ok(parsed)
}

/// Reads a metadata file: its JSON body, and whether it was in the pre-checksum format.
/// A damaged file is an `InvalidData` error naming it and the way to repair it.
pub async fn read(disk: &Disk, path: &Path) -> io::Result<(Vec<u8>, bool)> {
    let bytes = read_whole_file(disk, path).await?;
    match unseal(&bytes) {
        Ok(Unsealed::Checked(body)) => Ok((body.to_vec(), false)),
        Ok(Unsealed::Legacy(body)) => Ok((body.to_vec(), true)),
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "damaged metadata file");
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is damaged: {error}. Refusing to start. Restore it from a backup, or \
                     check its JSON (the lines after the first), fix it and remove the first \
                     line: a file without it is read as the pre-checksum format and sealed \
                     again at start (docs/storage.md, \"Metadata files\")",
                    path.display()
                ),
            ))
        }
    }
}

/// Durably replaces `path` with `body` behind its checksum header (write temp + fdatasync +
/// rename + directory fsync).
pub async fn write(disk: &Disk, path: &Path, body: &[u8]) -> io::Result<()> {
    write_file_atomically(disk, path, seal(body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"{\n  \"version\": 1,\n  \"cluster_id\": \"abc\",\n  \"node_id\": 1\n}";

    #[test]
    fn a_sealed_body_round_trips() {
        let sealed = seal(BODY);
        assert!(sealed.starts_with(b"tern-crc32c v1 "));
        assert_eq!(unseal(&sealed), Ok(Unsealed::Checked(BODY)));
        assert_eq!(unseal(&seal(b"")), Ok(Unsealed::Checked(&b""[..])));
    }

    #[test]
    fn every_bit_flip_and_every_truncation_is_detected() {
        let sealed = seal(BODY);
        for bit in 0..sealed.len() * 8 {
            let mut flipped = sealed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(unseal(&flipped).is_err(), "bit {bit}: {:?}", unseal(&flipped));
        }
        for length in 0..sealed.len() {
            assert!(unseal(&sealed[..length]).is_err(), "cut at {length}");
        }
        let mut longer = sealed.clone();
        longer.push(b' ');
        assert!(matches!(unseal(&longer), Err(SealError::Mismatch { .. })));
    }

    #[test]
    fn a_pre_checksum_file_is_read_as_legacy_and_garbage_is_not() {
        assert_eq!(unseal(BODY), Ok(Unsealed::Legacy(BODY)));
        assert_eq!(unseal(b"  \n{}"), Ok(Unsealed::Legacy(&b"  \n{}"[..])));
        assert_eq!(unseal(&[0u8; 100]), Err(SealError::NotMetadata));
        assert_eq!(unseal(b""), Err(SealError::NotMetadata));
        let future = b"tern-crc32c v2 00000000 2\n{}";
        assert!(matches!(unseal(future), Err(SealError::UnknownVersion { .. })));
    }
}
