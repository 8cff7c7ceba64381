//! Decompressing a batch's records section with a bound on the output: a small compressed
//! batch must not make the broker allocate gigabytes (a "zip bomb" produced to a compacted
//! topic would otherwise reach both the key check and the cleaner). The codecs are the crates
//! `kafka-protocol` uses; compression (whose output is bounded by its input) goes through
//! `kafka-protocol` itself (see `rewrite.rs`).

use std::io::Read;

use super::Compression;

/// xerial snappy-java's stream header, which Kafka's Java producer writes before its blocks.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// The header is the magic, a version and a compatible version (u32 BE each).
const XERIAL_HEADER_BYTES: usize = 16;

/// Why a records section does not decompress.
pub type DecompressError = &'static str;

/// The uncompressed records section: at most `limit_bytes`, else an error.
pub fn decompress_bounded(
    compression: Compression,
    compressed: &[u8],
    limit_bytes: usize,
) -> Result<Vec<u8>, DecompressError> {
    match compression {
        Compression::None if compressed.len() <= limit_bytes => Ok(compressed.to_vec()),
        Compression::None => Err("records beyond the bound"),
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(compressed), limit_bytes),
        Compression::Lz4 => {
            let decoder = lz4::Decoder::new(compressed).map_err(|_| "bad lz4 frame")?;
            read_bounded(decoder, limit_bytes)
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(compressed).map_err(|_| "bad zstd")?;
            read_bounded(decoder, limit_bytes)
        }
        Compression::Snappy => snappy(compressed, limit_bytes),
    }
}

fn read_bounded(reader: impl Read, limit_bytes: usize) -> Result<Vec<u8>, DecompressError> {
    let mut output = Vec::new();
    let limit = u64::try_from(limit_bytes).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_end(&mut output).map_err(|_| "records do not decompress")?;
    if output.len() > limit_bytes {
        return Err("records decompress beyond the bound");
    }
    Ok(output)
}

/// Kafka's snappy: xerial framing (blocks prefixed by a u32 BE length) or, like the Java
/// client, a raw snappy block when the magic is absent.
fn snappy(compressed: &[u8], limit_bytes: usize) -> Result<Vec<u8>, DecompressError> {
    let mut output = Vec::new();
    if !compressed.starts_with(XERIAL_MAGIC) {
        snappy_block(compressed, &mut output, limit_bytes)?;
        return Ok(output);
    }
    let mut rest = compressed.get(XERIAL_HEADER_BYTES..).ok_or("short snappy header")?;
    // Each round consumes at least the 4-byte length: bounded by the input.
    while !rest.is_empty() {
        let length_bytes = rest.get(..4).ok_or("short snappy block length")?;
        let length = u32::from_be_bytes([
            length_bytes[0],
            length_bytes[1],
            length_bytes[2],
            length_bytes[3],
        ]) as usize;
        let block = rest.get(4..4 + length).ok_or("short snappy block")?;
        snappy_block(block, &mut output, limit_bytes)?;
        rest = &rest[4 + length..];
    }
    Ok(output)
}

fn snappy_block(
    block: &[u8],
    output: &mut Vec<u8>,
    limit_bytes: usize,
) -> Result<(), DecompressError> {
    let length = snap::raw::decompress_len(block).map_err(|_| "bad snappy block")?;
    let start = output.len();
    if start.saturating_add(length) > limit_bytes {
        return Err("records decompress beyond the bound");
    }
    output.resize(start + length, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut output[start..])
        .map_err(|_| "bad snappy block")?;
    output.truncate(start + written);
    Ok(())
}
