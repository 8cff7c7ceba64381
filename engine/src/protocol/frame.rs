//! Request framing: a Kafka request is a 4-byte big-endian size followed by that many bytes.
//!
//! The decoder is pure and incremental: the connection appends whatever the socket delivered to
//! a `BytesMut` and calls [`FrameDecoder::decode`] until it returns `Ok(None)`. A frame is split
//! off the front of the buffer without copying. The size is checked against the configured
//! maximum *before* anything is reserved, so a hostile size prefix cannot make the broker
//! allocate (Kafka's `socket.request.max.bytes` plays the same role).

use bytes::{Buf, BytesMut};

/// Bytes of the size prefix in front of every request and response.
pub const SIZE_PREFIX_BYTES: usize = 4;

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const MAX_REQUEST_BYTES_DEFAULT: usize = 100 * 1024 * 1024;

/// Why a connection's byte stream cannot be framed. Both are fatal for the connection: the
/// stream position is lost, so the broker closes it (Kafka does the same).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("request of {size_bytes} bytes exceeds the maximum of {max_bytes} bytes")]
    Oversized { size_bytes: usize, max_bytes: usize },
    #[error("request size prefix is negative")]
    Negative,
}

/// Splits a byte stream into request frames.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_request_bytes: usize,
}

impl FrameDecoder {
    /// `max_request_bytes` bounds the frame body (the size prefix's value).
    pub fn new(max_request_bytes: usize) -> FrameDecoder {
        assert!(max_request_bytes > 0, "a zero maximum would reject every request");
        assert!(max_request_bytes <= i32::MAX as usize, "Kafka sizes are signed 32-bit");
        FrameDecoder { max_request_bytes }
    }

    pub fn max_request_bytes(&self) -> usize {
        self.max_request_bytes
    }

    /// Returns the next complete frame body (size prefix removed), `Ok(None)` if the buffer does
    /// not hold a whole frame yet, or an error if the size prefix is unacceptable. On `Ok(None)`
    /// the buffer is untouched; the caller may `reserve(self.bytes_needed(buffer))`.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let Some(size_bytes) = self.frame_size(buffer)? else {
            return Ok(None);
        };
        let frame_bytes = SIZE_PREFIX_BYTES + size_bytes;
        if buffer.len() < frame_bytes {
            return Ok(None);
        }
        buffer.advance(SIZE_PREFIX_BYTES);
        let body = buffer.split_to(size_bytes);
        debug_assert_eq!(body.len(), size_bytes);
        Ok(Some(body))
    }

    /// How many more bytes the buffer needs before [`decode`](Self::decode) can make progress:
    /// the rest of the size prefix, or the rest of the frame. Zero when a frame (or an error)
    /// is ready. Never more than the prefix plus `max_request_bytes`, so it is safe to reserve.
    pub fn bytes_needed(&self, buffer: &BytesMut) -> usize {
        match self.frame_size(buffer) {
            Ok(None) => SIZE_PREFIX_BYTES - buffer.len(),
            Ok(Some(size_bytes)) => (SIZE_PREFIX_BYTES + size_bytes).saturating_sub(buffer.len()),
            Err(_) => 0,
        }
    }

    /// The frame body size announced by the prefix, once the prefix is complete and valid.
    fn frame_size(&self, buffer: &BytesMut) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = buffer.get(..SIZE_PREFIX_BYTES) else {
            return Ok(None);
        };
        let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let size_bytes = usize::try_from(size).map_err(|_| FrameError::Negative)?;
        if size_bytes > self.max_request_bytes {
            return Err(FrameError::Oversized { size_bytes, max_bytes: self.max_request_bytes });
        }
        Ok(Some(size_bytes))
    }
}

impl Default for FrameDecoder {
    fn default() -> FrameDecoder {
        FrameDecoder::new(MAX_REQUEST_BYTES_DEFAULT)
    }
}

#[cfg(test)]
mod tests;
