//! `peer_frame` target: a broker-to-broker frame body or hello body (`tern::broker::peer`),
//! as a peer (or anything that reaches the peer port) can send it.
//!
//! Each input is decoded twice: as it is, and with its last four bytes replaced by the CRC32C
//! of the rest, so that mutations of the frame's structure get past the checksum.
//!
//! Properties: decoding never panics and never reserves what a count or length claims
//! (`.ci/fuzz` runs it with `-malloc_limit_mb=128`); a frame (or hello) that decodes is
//! canonical: encoding it again gives exactly the input, so no two byte strings mean the same
//! frame.
//!
//! Shared by the cargo-fuzz target and `engine/tests/fuzz_corpus.rs` (included by path).

use bytes::Bytes;
use tern::broker::peer;

pub fn run(data: &[u8]) {
    check(data);
    if let Some(body_length) = data.len().checked_sub(4) {
        let mut fixed = data.to_vec();
        let crc = crc32c::crc32c(&data[..body_length]);
        fixed[body_length..].copy_from_slice(&crc.to_be_bytes());
        check(&fixed);
    }
}

fn check(data: &[u8]) {
    if let Ok(frame) = peer::decode(Bytes::copy_from_slice(data)) {
        assert_eq!(&peer::encode(&frame)[..], data, "a decoded frame re-encodes to its input");
    }
    if let Ok(hello) = peer::decode_hello(Bytes::copy_from_slice(data)) {
        let encoded = peer::encode_hello(&hello);
        assert_eq!(&encoded[..], data, "a decoded hello re-encodes to its input");
    }
}
