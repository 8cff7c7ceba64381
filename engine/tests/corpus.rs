//! Replays the recorded request frames of real Kafka clients
//! (`engine/tests/corpus/kafka-requests`, see its README) through the protocol layer: framing,
//! decoding, exact re-encoding, and record-batch validation of every produced batch.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Encodable;
use tern::protocol::api;
use tern::protocol::frame::FrameDecoder;
use tern::protocol::request::{decode_request, DecodedRequest, Request, RequestError};
use tern::record_batch::{self, CRC_START};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/kafka-requests")
}

/// Every `.bin` file under the corpus, sorted; fails loudly if the corpus is absent, because
/// a silently empty corpus would make this test pass while testing nothing.
fn corpus_files() -> Vec<PathBuf> {
    let root = corpus_dir();
    assert!(
        root.is_dir(),
        "request corpus not found at {}: it is part of the repository",
        root.display()
    );
    let mut files = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).expect("corpus directory is readable") {
            let path = entry.expect("corpus entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "bin") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 50, "only {} frames under {}", files.len(), root.display());
    files
}

/// The whole file must be exactly one frame.
fn frame_of(path: &Path) -> Bytes {
    let raw = std::fs::read(path).expect("corpus file is readable");
    let mut buffer = BytesMut::from(&raw[..]);
    let frame = FrameDecoder::default()
        .decode(&mut buffer)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .unwrap_or_else(|| panic!("{}: incomplete frame", path.display()));
    assert!(buffer.is_empty(), "{}: bytes after the frame", path.display());
    frame.freeze()
}

fn reencode(decoded: &DecodedRequest, header_in_frame: &RequestHeader) -> Vec<u8> {
    let version = decoded.header.api_version;
    let header_version = decoded.header.api_key.request_header_version(version);
    let mut out = BytesMut::new();
    header_in_frame.encode(&mut out, header_version).expect("header re-encodes");
    let result = match &decoded.body {
        Request::ApiVersions(body) => body.encode(&mut out, version),
        Request::Metadata(body) => body.encode(&mut out, version),
        Request::Produce(body) => body.encode(&mut out, version),
        Request::Fetch(body) => body.encode(&mut out, version),
        Request::ListOffsets(body) => body.encode(&mut out, version),
        Request::CreateTopics(body) => body.encode(&mut out, version),
        Request::DeleteTopics(body) => body.encode(&mut out, version),
        Request::InitProducerId(body) => body.encode(&mut out, version),
        Request::DescribeConfigs(body) => body.encode(&mut out, version),
        Request::DescribeCluster(body) => body.encode(&mut out, version),
        Request::CreatePartitions(body) => body.encode(&mut out, version),
        Request::FindCoordinator(body) => body.encode(&mut out, version),
        Request::JoinGroup(body) => body.encode(&mut out, version),
        Request::SyncGroup(body) => body.encode(&mut out, version),
        Request::Heartbeat(body) => body.encode(&mut out, version),
        Request::LeaveGroup(body) => body.encode(&mut out, version),
        Request::OffsetCommit(body) => body.encode(&mut out, version),
        Request::OffsetFetch(body) => body.encode(&mut out, version),
        Request::ListGroups(body) => body.encode(&mut out, version),
        Request::DescribeGroups(body) => body.encode(&mut out, version),
        Request::DeleteGroups(body) => body.encode(&mut out, version),
        Request::OffsetDelete(body) => body.encode(&mut out, version),
        Request::DeleteRecords(body) => body.encode(&mut out, version),
        Request::OffsetForLeaderEpoch(body) => body.encode(&mut out, version),
        Request::AlterConfigs(body) => body.encode(&mut out, version),
        Request::IncrementalAlterConfigs(body) => body.encode(&mut out, version),
        Request::ElectLeaders(body) => body.encode(&mut out, version),
    };
    result.expect("body re-encodes");
    out.to_vec()
}

fn header_in_frame(frame: &Bytes, api_key: ApiKey, version: i16) -> RequestHeader {
    use kafka_protocol::protocol::Decodable;
    let mut buffer = frame.clone();
    RequestHeader::decode(&mut buffer, api_key.request_header_version(version))
        .expect("header decodes")
}

/// Checks every batch of every partition of a produce request; returns the batch count.
fn check_produced_batches(path: &Path, frame: &Bytes, request: &Request) -> usize {
    let Request::Produce(produce) = request else {
        return 0;
    };
    let mut batches = 0;
    for topic in &produce.topic_data {
        for partition in &topic.partition_data {
            let Some(records) = &partition.records else { continue };
            // Zero copy: the records are a view into the frame.
            let frame_range = frame.as_ptr_range();
            assert!(frame_range.contains(&records.as_ptr()), "{}: records copied", path.display());
            let split = record_batch::split_produced_batches(records)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            for (range, _info) in &split {
                check_every_crc_bit_flip_is_rejected(path, &records[range.clone()]);
            }
            batches += split.len();
        }
    }
    batches
}

fn check_every_crc_bit_flip_is_rejected(path: &Path, batch: &[u8]) {
    let mut copy = batch.to_vec();
    for bit in CRC_START * 8..batch.len() * 8 {
        copy[bit / 8] ^= 1 << (bit % 8);
        assert!(
            record_batch::split_produced_batches(&copy).is_err(),
            "{}: flip of bit {bit} went unnoticed",
            path.display()
        );
        copy[bit / 8] ^= 1 << (bit % 8);
    }
}

#[test]
fn every_recorded_frame_decodes_reencodes_or_is_refused_precisely() {
    let mut summary = std::collections::BTreeMap::<String, usize>::new();
    let mut batches = 0;
    for path in corpus_files() {
        let frame = frame_of(&path);
        let api_key_raw = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let supported = ApiKey::try_from(api_key_raw).is_ok_and(|key| {
            api::supported_range(api_key_raw).is_some() && api::is_supported(key, version)
        });
        let outcome = decode_request(frame.clone());
        let label = match (&outcome, supported) {
            (Ok(decoded), true) => {
                let header = header_in_frame(&frame, decoded.header.api_key, version);
                let reencoded = reencode(decoded, &header);
                assert!(reencoded == frame[..], "{}: re-encoding differs", path.display());
                batches += check_produced_batches(&path, &frame, &decoded.body);
                "decoded".to_owned()
            }
            (Err(RequestError::UnknownApi { api_key, .. }), false) => {
                assert_eq!(*api_key, api_key_raw);
                assert_eq!(api::supported_range(api_key_raw), None, "{}", path.display());
                format!("unknown api {api_key}")
            }
            (Err(RequestError::UnsupportedVersion { api_key, api_version, .. }), false) => {
                format!("unsupported {api_key:?} v{api_version}")
            }
            (other, _) => panic!("{}: unexpected outcome {other:?}", path.display()),
        };
        *summary.entry(label).or_default() += 1;
    }
    println!("corpus outcomes: {summary:#?}; produced batches checked: {batches}");
    assert!(batches > 0, "no produce frame carried a record batch");
}
