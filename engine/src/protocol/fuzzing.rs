//! The bodies of the fuzz targets in `fuzz/`, kept here so that a plain test
//! (`engine/tests/fuzz_corpus.rs`) replays the committed seed corpora through exactly the
//! code libFuzzer runs, on stable Rust. Each function panics if and only if it finds a bug.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use super::api_versions::{api_versions_response, unsupported_version_answer};
use super::frame::{FrameDecoder, SIZE_PREFIX_BYTES};
use super::request::{decode_request, Request, RequestError, RequestMeta};
use super::response::{encode_response, Response};
use crate::record_batch;

/// Frame limit for fuzzing: far above any input libFuzzer generates, so sizes are tested,
/// yet small enough that a wrong reservation would show up as an out-of-memory report.
const FUZZ_MAX_REQUEST_BYTES: usize = 1 << 20;

/// `request_frame` target: arbitrary bytes through the frame decoder and the request decoder.
/// The bytes after the first four are also decoded directly as a frame body, so mutations
/// that break the size prefix still exercise the request decoder.
pub fn request_frame(data: &[u8]) {
    let mut decoder = FrameDecoder::new(FUZZ_MAX_REQUEST_BYTES);
    let mut buffer = BytesMut::from(data);
    // Each frame consumes at least its 4-byte prefix, so this loop ends.
    while let Ok(Some(frame)) = decoder.decode(&mut buffer) {
        check_request(frame.freeze());
    }
    assert!(decoder.bytes_needed(&buffer) <= SIZE_PREFIX_BYTES + FUZZ_MAX_REQUEST_BYTES);
    if let Some(body) = data.get(SIZE_PREFIX_BYTES..) {
        check_request(Bytes::copy_from_slice(body));
    }
}

fn check_request(frame: Bytes) {
    match decode_request(frame) {
        Ok(decoded) => {
            assert!(super::api::is_supported(decoded.header.api_key, decoded.header.api_version));
            check_decoded(&decoded.header, &decoded.body);
        }
        Err(RequestError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            let answer = unsupported_version_answer(correlation_id);
            assert!(answer.is_ok(), "the ApiVersions fallback must always encode");
        }
        Err(_) => {}
    }
}

/// Properties of a successfully decoded request that the broker relies on.
fn check_decoded(meta: &RequestMeta, body: &Request) {
    match body {
        Request::ApiVersions(_) => {
            let (response, version) = api_versions_response(meta.api_version);
            assert_eq!(version, meta.api_version);
            let encoded = encode_response(meta, &Response::ApiVersions(response));
            assert!(encoded.is_ok(), "ApiVersions must answer every version it accepts");
        }
        Request::Produce(produce) => {
            // The broker validates every batch; that must never panic either.
            for topic in &produce.topic_data {
                for partition in &topic.partition_data {
                    if let Some(records) = &partition.records {
                        let _ = record_batch::split_produced_batches(records);
                    }
                }
            }
        }
        _ => {}
    }
}

/// `record_batch` target: arbitrary bytes as a produce payload. Valid payloads must split
/// into contiguous batches that stay valid after the broker patches their base offset and
/// leader epoch (both lie outside the CRC).
pub fn record_batch(data: &[u8]) {
    let Ok(batches) = record_batch::split_produced_batches(data) else {
        return;
    };
    let mut expected_start = 0;
    for (range, info) in &batches {
        assert_eq!(range.start, expected_start, "batches must be contiguous");
        assert_eq!(range.len(), info.size_bytes);
        expected_start = range.end;
        let framing = record_batch::check_framing_and_crc(&data[range.clone()]);
        assert_eq!(framing.as_ref(), Ok(info), "the cheap check must agree");

        let mut patched = data[range.clone()].to_vec();
        let base_offset = i64::from(info.records_count) * 1_000_003;
        record_batch::patch_base_offset(&mut patched, base_offset, 7);
        let repatched = record_batch::validate_produced_batch(&patched);
        let repatched = repatched.unwrap_or_else(|error| panic!("patched batch invalid: {error}"));
        assert_eq!(repatched.base_offset, base_offset);
        assert_eq!(repatched.partition_leader_epoch, 7);
        assert_eq!(repatched.records_count, info.records_count);
    }
    assert_eq!(expected_start, data.len(), "batches must cover the payload");
}
