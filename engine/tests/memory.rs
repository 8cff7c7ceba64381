//! Memory stays bounded whatever clients do: the real binary, raw sockets, resident memory
//! read from /proc while the broker is pushed.
//!
//! - Forty connections send a large Fetch every 100 ms and never read an answer, while a
//!   producer writes hundreds of MiB of 64 KiB records (acks=all); afterwards confluent-kafka
//!   reads every record back. (`TERN_SLOW_READER_BYTES` scales it: 2 GiB is the documented
//!   run in docs/benchmarks.md.)
//! - One connection pipelines thousands of requests and never reads; others are still served.
//! - Thousands of idle connections are held, then closed by `--connections-max-idle-ms`;
//!   `--max-connections` refuses the one too many.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use tern::record_batch::build::{encode_batch, ProducerStamp, Record};

use common::kafka::{create_topic, topic_name, Connection};
use common::{python, run_checked, test_dir, TernServer};

/// The bar of issue 12: resident memory never above this while slow readers are connected.
const RESIDENT_BYTES_MAX: u64 = 512 << 20;
const RECORD_BYTES: usize = 64 << 10;
/// 15 × 64 KiB: one batch stays under max.message.bytes (1 MiB).
const RECORDS_PER_BATCH: usize = 15;
const PARTITIONS: i32 = 4;

/// Samples the broker's resident memory every 20 ms until stopped; keeps the peak.
struct ResidentPeak {
    peak_bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<thread::JoinHandle<()>>,
}

impl ResidentPeak {
    fn watch(server: &TernServer) -> ResidentPeak {
        let pid = server.pid().expect("tern runs");
        let (peak_bytes, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (peak, stopped) = (peak_bytes.clone(), stop.clone());
        let sampler = thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                if let Some(bytes) = resident_bytes(pid) {
                    peak.fetch_max(bytes, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(20));
            }
        });
        ResidentPeak { peak_bytes, stop, sampler: Some(sampler) }
    }

    fn peak_bytes(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            sampler.join().expect("sampler");
        }
        self.peak_bytes.load(Ordering::Relaxed)
    }
}

fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A Fetch v4 of every partition from offset 0, as big as a client may ask.
fn greedy_fetch(connection: &mut Connection, topic: &str) -> Vec<u8> {
    let partitions = (0..PARTITIONS)
        .map(|partition| {
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(50 << 20)
        })
        .collect();
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions)]);
    connection.encode(4, &request)
}

/// Forty connections that keep asking and never read; stopped (and closed) on drop.
struct NeverReaders {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl NeverReaders {
    fn start(bootstrap: &str, topic: &str, count: usize) -> NeverReaders {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..count)
            .map(|_| {
                let mut connection = Connection::connect(bootstrap);
                let frame = greedy_fetch(&mut connection, topic);
                let mut stream = TcpStream::connect(bootstrap).expect("connect");
                stream.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
                let stopped = stop.clone();
                thread::spawn(move || {
                    while !stopped.load(Ordering::Relaxed) {
                        // A full socket (the broker stopped reading us) times out: fine.
                        let _ = stream.write_all(&frame);
                        thread::sleep(Duration::from_millis(100));
                    }
                })
            })
            .collect();
        NeverReaders { stop, threads }
    }
}

impl Drop for NeverReaders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Record `index` of a partition: its index in the first 8 bytes, then filler.
fn record(index: u64) -> Record {
    let mut value = vec![0x5a; RECORD_BYTES];
    value[..8].copy_from_slice(&index.to_be_bytes());
    Record { value: Some(value), ..Record::default() }
}

/// Produces `batches_per_partition` batches of 15 × 64 KiB to each partition, acks=all.
fn produce_all(bootstrap: &str, topic: &str, batches_per_partition: u64) {
    let mut connection = Connection::connect(bootstrap);
    for batch in 0..batches_per_partition {
        let first = batch * RECORDS_PER_BATCH as u64;
        let records: Vec<Record> = (first..first + RECORDS_PER_BATCH as u64).map(record).collect();
        let bytes = Bytes::from(encode_batch(&records, 0, ProducerStamp::NONE));
        let partitions = (0..PARTITIONS)
            .map(|partition| {
                PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(bytes.clone()))
            })
            .collect();
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(partitions)]);
        let response = connection.call(9, &request);
        for partition in &response.responses[0].partition_responses {
            assert_eq!(partition.error_code, 0, "produce batch {batch}: {partition:?}");
        }
    }
}

fn read_back(bootstrap: &str, topic: &str, records_per_partition: u64) {
    let expected = records_per_partition.to_string();
    let partitions = PARTITIONS.to_string();
    run_checked(
        python("read_back.py").args([
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--partitions",
            &partitions,
            "--expected",
            &expected,
        ]),
        "read back every record",
    );
}

#[test]
fn never_reading_fetchers_do_not_grow_the_broker_and_every_record_reads_back() {
    let total_bytes: u64 = std::env::var("TERN_SLOW_READER_BYTES")
        .ok()
        .and_then(|bytes| bytes.parse().ok())
        .unwrap_or(768 << 20);
    let batch_bytes = (RECORD_BYTES * RECORDS_PER_BATCH) as u64;
    let batches_per_partition = (total_bytes / batch_bytes / PARTITIONS as u64).max(1);
    let directory = test_dir("never-readers");
    let mut server = TernServer::start(&directory.join("data"), &["--shards", "2"]);
    let bootstrap = server.bootstrap();
    create_topic(&mut Connection::connect(&bootstrap), "slow", PARTITIONS);
    let mut peak = ResidentPeak::watch(&server);
    let started = Instant::now();
    let readers = NeverReaders::start(&bootstrap, "slow", 40);
    produce_all(&bootstrap, "slow", batches_per_partition);
    // Let the readers ask for (and be refused) the last of it too.
    thread::sleep(Duration::from_secs(2));
    let peak_bytes = peak.peak_bytes();
    let produced_mib = (batches_per_partition * batch_bytes * PARTITIONS as u64) >> 20;
    eprintln!(
        "{produced_mib} MiB past 40 never-reading connections in {:?}: peak resident {} MiB",
        started.elapsed(),
        peak_bytes >> 20
    );
    assert!(
        peak_bytes <= RESIDENT_BYTES_MAX,
        "resident memory reached {} MiB (bound {} MiB)",
        peak_bytes >> 20,
        RESIDENT_BYTES_MAX >> 20
    );
    drop(readers);
    read_back(&bootstrap, "slow", batches_per_partition * RECORDS_PER_BATCH as u64);
    server.stop();
    // Hundreds of MiB (GiBs in the documented run): not left behind in /tmp.
    let _ = std::fs::remove_dir_all(&directory);
}

#[test]
fn a_client_pipelining_thousands_of_requests_without_reading_is_no_longer_read() {
    let directory = test_dir("pipeliner");
    let mut server = TernServer::start(&directory.join("data"), &["--shards", "1"]);
    let bootstrap = server.bootstrap();
    create_topic(&mut Connection::connect(&bootstrap), "piped", PARTITIONS);
    produce_all(&bootstrap, "piped", 16);
    let mut peak = ResidentPeak::watch(&server);
    // Thousands of greedy fetches, and Metadata in between, sent without reading a byte.
    let mut framer = Connection::connect(&bootstrap);
    let fetch = greedy_fetch(&mut framer, "piped");
    let metadata = framer.encode(12, &MetadataRequest::default().with_topics(None));
    let mut stream = TcpStream::connect(&bootstrap).expect("connect");
    stream.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut sent = 0;
    // Far more than socket buffers hold (~26 MB): the writes must block at some point.
    let pairs = 200_000;
    for _ in 0..pairs {
        if stream.write_all(&fetch).and_then(|()| stream.write_all(&metadata)).is_err() {
            break; // The broker stopped reading us: the socket is full.
        }
        sent += 2;
    }
    assert!(sent < 2 * pairs, "the broker read all {sent} requests of a client that never reads");
    // Everyone else is still served while the pipeliner is stuck.
    let mut other = Connection::connect(&bootstrap);
    let answer = other.call(12, &MetadataRequest::default().with_topics(None));
    assert!(answer.topics.iter().any(|topic| topic.name == Some(topic_name("piped"))));
    let peak_bytes = peak.peak_bytes();
    eprintln!("pipelined {sent} requests unread: peak resident {} MiB", peak_bytes >> 20);
    assert!(peak_bytes <= RESIDENT_BYTES_MAX, "resident memory {} MiB", peak_bytes >> 20);
    // The pipeliner reads at last, and gets whole answers in order.
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("the first answer arrives once read");
    drop(stream);
    read_back(&bootstrap, "piped", 16 * RECORDS_PER_BATCH as u64);
    server.stop();
    let _ = std::fs::remove_dir_all(&directory);
}

/// Lets this test process hold thousands of sockets.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain libc calls on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

#[test]
fn thousands_of_idle_connections_are_held_cheaply_then_closed_and_the_limit_refuses_more() {
    raise_open_files_limit();
    let directory = test_dir("idle");
    let arguments =
        ["--shards", "2", "--max-connections", "3001", "--connections-max-idle-ms", "3000"];
    let mut server = TernServer::start(&directory.join("data"), &arguments);
    let bootstrap = server.bootstrap();
    let before = server.resident_bytes().expect("resident memory");
    let mut idle: Vec<TcpStream> =
        (0..3000).map(|_| TcpStream::connect(&bootstrap).expect("connect")).collect();
    // The 3,001st is admitted (the limit counts it), the next one is closed at once.
    let mut last = Connection::connect(&bootstrap);
    let answer = last.call(12, &MetadataRequest::default().with_topics(None));
    assert!(answer.brokers.len() == 1);
    let mut refused = TcpStream::connect(&bootstrap).expect("the kernel accepts the SYN");
    refused.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut byte = [0u8; 1];
    assert!(matches!(refused.read(&mut byte), Ok(0) | Err(_)), "over the limit: closed");
    let held = server.resident_bytes().expect("resident memory");
    eprintln!("3000 idle connections: resident {} -> {} MiB", before >> 20, held >> 20);
    assert!(held <= before + (64 << 20), "idle connections cost {} MiB", (held - before) >> 20);
    // All of them are closed after 3 s without traffic; the active one was too.
    thread::sleep(Duration::from_secs(5));
    for stream in idle.iter_mut().step_by(97) {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(matches!(stream.read(&mut byte), Ok(0) | Err(_)), "idle connection closed");
    }
    drop(idle);
    // The slots are free again.
    let mut fresh = Connection::connect(&bootstrap);
    fresh.call(12, &MetadataRequest::default().with_topics(None));
    server.stop();
}

/// A Fetch naming `count` partitions, one per topic entry, cycling through `topics`'
/// partitions, all from offset 0.
fn wide_fetch(topics: &[(&str, i32)], count: usize) -> FetchRequest {
    let mut fetch_topics: Vec<FetchTopic> = Vec::new();
    for index in 0..count {
        let (topic, partitions) = topics[index % topics.len()];
        let partition = FetchPartition::default()
            .with_partition(index as i32 % partitions)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 20);
        fetch_topics.push(
            FetchTopic::default().with_topic(topic_name(topic)).with_partitions(vec![partition]),
        );
    }
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(fetch_topics)
}

#[test]
fn a_fetch_naming_thousands_of_partitions_is_bounded_work() {
    let directory = test_dir("wide-fetch");
    let mut server = TernServer::start(&directory.join("data"), &["--shards", "2"]);
    let bootstrap = server.bootstrap();
    let mut connection = Connection::connect(&bootstrap);
    create_topic(&mut connection, "wide", PARTITIONS);
    produce_all(&bootstrap, "wide", 8);
    let mut peak = ResidentPeak::watch(&server);
    let cases: [(&str, &[(&str, i32)]); 3] = [
        ("5,000 reads of 4 partitions with data", &[("wide", PARTITIONS)]),
        ("5,000 unknown topics", &[("no-such-topic", 1)]),
        ("5,000 partitions, data and unknown mixed", &[("wide", PARTITIONS), ("nope", 7)]),
    ];
    for (case, topics) in cases {
        let request = wide_fetch(topics, 5000);
        let started = Instant::now();
        let response = connection.call(12, &request);
        let elapsed = started.elapsed();
        let partitions: usize = response.responses.iter().map(|topic| topic.partitions.len()).sum();
        let records: usize = response
            .responses
            .iter()
            .flat_map(|topic| &topic.partitions)
            .map(|partition| partition.records.as_ref().map_or(0, Bytes::len))
            .sum();
        eprintln!("{case}: answered in {elapsed:?}, {records} record bytes");
        assert_eq!(partitions, 5000, "{case}: every partition answered");
        assert!(records <= 50 << 20, "{case}: {records} bytes over the response limit");
        // A liveness bound, not a performance claim: the old parallel reads took seconds.
        assert!(elapsed < Duration::from_secs(20), "{case}: answered after {elapsed:?}");
    }
    let peak_bytes = peak.peak_bytes();
    eprintln!("wide fetches: peak resident {} MiB", peak_bytes >> 20);
    assert!(peak_bytes <= RESIDENT_BYTES_MAX, "resident memory {} MiB", peak_bytes >> 20);
    server.stop();
    let _ = std::fs::remove_dir_all(&directory);
}
