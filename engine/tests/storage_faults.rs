//! Storage faults against the real binary: a full disk (a small tmpfs as the data directory),
//! and bit rot in a segment. The storage-fault policy (DESIGN.md): ENOSPC →
//! KAFKA_STORAGE_ERROR to producers, nothing of the failed batch acknowledged, reads keep
//! working, the broker stays up, and writes resume by themselves once space is free; a
//! CRC-invalid batch with intact batches behind it is detected loss: the intact prefix is
//! served, KAFKA_STORAGE_ERROR at and beyond it, and its bytes are never served.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tern::record_batch::build::{encode_batch, ProducerStamp, Record};
use tern::record_batch::check_framing_and_crc;

use common::kafka::Connection;
use common::{test_dir, TernServer};

const KAFKA_STORAGE_ERROR: i16 = 56;

/// A tmpfs mounted for one test, unmounted on drop (after the server using it is gone).
struct SmallFilesystem {
    mount_point: PathBuf,
}

impl SmallFilesystem {
    fn mount(mount_point: &Path, size_bytes: u64) -> SmallFilesystem {
        std::fs::create_dir_all(mount_point).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_bytes}")])
            .arg("tmpfs")
            .arg(mount_point)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root (CI and dev machines are root)");
        SmallFilesystem { mount_point: mount_point.to_path_buf() }
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount_point).status();
    }
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn produce(connection: &mut Connection, records: &[u8]) -> (i16, i64) {
    produce_to(connection, "full", records)
}

fn produce_to(connection: &mut Connection, topic: &str, records: &[u8]) -> (i16, i64) {
    let request =
        ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
            TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![
                PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::copy_from_slice(records))),
            ]),
        ]);
    let response = connection.call(9, &request);
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

fn fetch_request(topic: &str, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(8 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(vec![
            FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(8 << 20),
        ])])
}

/// Reads the whole partition; checks every batch's CRC and offset contiguity; returns the
/// number of records.
fn read_all(connection: &mut Connection) -> i64 {
    let mut next_offset = 0i64;
    loop {
        let response = connection.call(11, &fetch_request("full", next_offset));
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "reads keep working on a full disk");
        let records = partition.records.clone().unwrap_or_default();
        if records.is_empty() {
            assert_eq!(next_offset, partition.high_watermark);
            return next_offset;
        }
        let mut position = 0;
        while position < records.len() {
            let info =
                check_framing_and_crc(&records[position..]).expect("served batches pass CRC");
            assert_eq!(info.base_offset, next_offset, "offsets are contiguous");
            next_offset = info.next_offset();
            position += info.size_bytes;
        }
    }
}

#[test]
fn full_disk_answers_storage_error_keeps_the_log_and_resumes_when_space_is_freed() {
    let directory = test_dir("enospc");
    let filesystem = SmallFilesystem::mount(&directory.join("mnt"), 48 << 20);
    let data_dir = filesystem.mount_point.join("data");
    let mut server = TernServer::start(&data_dir, &["--segment-bytes", "4194304"]);
    let mut connection = Connection::connect(&server.bootstrap());
    let create = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        CreatableTopic::default()
            .with_name(name("full"))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    assert_eq!(connection.call(7, &create).topics[0].error_code, 0);

    // Leave about 2 MiB free, then write 64 KiB batches until the disk is full.
    let filler = filesystem.mount_point.join("filler");
    let free_bytes = available_bytes(&filesystem.mount_point);
    std::fs::write(&filler, vec![0u8; (free_bytes - (2 << 20)) as usize]).unwrap();
    let batch = encode_batch(
        &[Record { value: Some(vec![42; 64 * 1024]), ..Record::default() }],
        1_700_000_000_000,
        ProducerStamp::NONE,
    );
    let mut acknowledged = 0i64;
    let mut saw_storage_error = false;
    for _ in 0..200 {
        match produce(&mut connection, &batch) {
            (0, base_offset) => {
                assert_eq!(base_offset, acknowledged, "acknowledged offsets are contiguous");
                acknowledged += 1;
            }
            (KAFKA_STORAGE_ERROR, _) => {
                saw_storage_error = true;
                break;
            }
            (code, _) => panic!("unexpected error code {code}"),
        }
    }
    assert!(saw_storage_error, "a full disk answers KAFKA_STORAGE_ERROR");
    assert!(acknowledged > 0);
    assert_eq!(produce(&mut connection, &batch).0, KAFKA_STORAGE_ERROR, "still full");
    assert_eq!(read_all(&mut connection), acknowledged, "every acknowledged record, nothing else");
    assert!(server.is_running(), "the broker stays up");

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match produce(&mut connection, &batch) {
            (0, base_offset) => {
                assert_eq!(base_offset, acknowledged, "no gap, no duplicate after the fault");
                acknowledged += 1;
                break;
            }
            (KAFKA_STORAGE_ERROR, _) => {
                assert!(Instant::now() < deadline, "writes resume once space is free");
                std::thread::sleep(Duration::from_millis(200));
            }
            (code, _) => panic!("unexpected error code {code}"),
        }
    }
    assert_eq!(read_all(&mut connection), acknowledged);
    server.stop();
    server.restart();
    let mut connection = Connection::connect(&server.bootstrap());
    assert_eq!(read_all(&mut connection), acknowledged, "and all of it survives a restart");
    server.stop();
    drop(server);
    drop(filesystem);
}

fn available_bytes(path: &Path) -> u64 {
    let output = Command::new("df").args(["--output=avail", "-B1"]).arg(path).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().nth(1).and_then(|line| line.trim().parse().ok()).expect("df output")
}

/// The planned, streamed path (answers over 64 KiB are read chunk by chunk as they are sent):
/// a flipped bit in the records of batch 25 of 40, which only the CRC check can see, once the
/// broker was stopped cleanly (so recovery does not scan the segment).
#[test]
fn bit_rot_in_a_streamed_answer_is_never_served_and_becomes_storage_error() {
    let directory = test_dir("bit-rot");
    let data_dir = directory.join("data");
    let mut server = TernServer::start(&data_dir, &[]);
    let mut connection = Connection::connect(&server.bootstrap());
    common::kafka::create_topic(&mut connection, "rot", 1);
    let mut sizes = Vec::new();
    for index in 0..40u8 {
        let value = vec![index; 16 * 1024];
        let batch = encode_batch(
            &[Record { value: Some(value), ..Record::default() }],
            1_700_000_000_000,
            ProducerStamp::NONE,
        );
        assert_eq!(produce_to(&mut connection, "rot", &batch), (0, i64::from(index)));
        sizes.push(batch.len());
    }
    server.stop();
    let position: usize = sizes[..25].iter().sum::<usize>() + 1000;
    let segment = data_dir.join("rot-0").join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&segment).expect("the segment");
    bytes[position] ^= 0x10;
    std::fs::write(&segment, bytes).expect("rot the segment");
    server.restart();

    // The answer's length is on the wire before batch 25 is read: the connection is closed
    // (an answer read whole before it is sent would hold the prefix instead). Either way the
    // rotten batch never reaches the client.
    let mut connection = Connection::connect(&server.bootstrap());
    if let Some(response) = connection.try_call(11, &fetch_request("rot", 0)) {
        assert_eq!(served_offsets(&response), (0..25).collect::<Vec<i64>>());
    }
    // Asked again: the intact prefix, then the error at the rotten offset.
    let mut connection = Connection::connect(&server.bootstrap());
    let response = connection.call(11, &fetch_request("rot", 0));
    let partition = &response.responses[0].partitions[0];
    assert_eq!((partition.error_code, partition.high_watermark), (0, 40));
    assert_eq!(served_offsets(&response), (0..25).collect::<Vec<i64>>(), "the intact prefix");
    let response = connection.call(11, &fetch_request("rot", 25));
    assert_eq!(response.responses[0].partitions[0].error_code, KAFKA_STORAGE_ERROR);
    assert!(server.log().contains("DETECTED LOSS"), "the loss is logged loudly");
    assert!(server.is_running(), "the broker stays up");
    server.stop();
    let _ = std::fs::remove_dir_all(&directory);
}

/// The base offsets of the batches a fetch answer's first partition holds, each checked.
fn served_offsets(response: &FetchResponse) -> Vec<i64> {
    let records = response.responses[0].partitions[0].records.clone().unwrap_or_default();
    let mut served = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let info = check_framing_and_crc(&records[at..]).expect("served batches pass CRC");
        served.push(info.base_offset);
        at += info.size_bytes;
    }
    served
}
