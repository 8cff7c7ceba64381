//! A minimal blocking Kafka client for tests that need exact control over the bytes sent:
//! request encoding comes from the `kafka-protocol` crate, independent of Tern's code.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

pub struct Connection {
    stream: TcpStream,
    correlation_id: i32,
}

impl Connection {
    pub fn connect(address: &str) -> Connection {
        // A few tries: a test holding thousands of sockets beside this one (memory.rs) can
        // leave no ephemeral port free for a moment (EADDRNOTAVAIL), seen once in CI-like runs.
        let mut attempt = 0;
        let stream = loop {
            match TcpStream::connect(address) {
                Ok(stream) => break stream,
                Err(error) if attempt < 5 => {
                    eprintln!("connect to {address} failed ({error}); trying again");
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(error) => panic!("connect to tern at {address}: {error}"),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Connection { stream, correlation_id: 0 }
    }

    /// One attempt, bounded: connect within 2 s, answers within 5 s; None when the broker
    /// cannot be reached (a network test may have cut it off).
    pub fn try_connect(address: &str) -> Option<Connection> {
        use std::net::ToSocketAddrs;
        let socket_address = address.to_socket_addrs().ok()?.next()?;
        let stream = TcpStream::connect_timeout(&socket_address, Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
        Some(Connection { stream, correlation_id: 0 })
    }

    /// Sends `request` at `version` and decodes the response body.
    pub fn call<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        self.try_call(version, request).expect("response frame (the broker closed instead)")
    }

    /// Like `call`, but `None` when the broker closed the connection instead of answering
    /// (Kafka's answer to a request it cannot parse). A broker that closes while the request
    /// is still being written makes the write fail: that is a close too.
    pub fn try_call<R: Request>(&mut self, version: i16, request: &R) -> Option<R::Response> {
        let frame = self.encode(version, request);
        self.stream.write_all(&frame).ok()?;
        let mut body = self.read_frame()?;
        let _correlation = body.get_i32();
        if R::Response::header_version(version) >= 1 {
            // Response header v1: tagged fields (none expected).
            let tagged = body.get_u8();
            assert_eq!(tagged, 0, "no tagged fields in the response header");
        }
        Some(R::Response::decode(&mut body, version).expect("decode response"))
    }

    pub fn encode<R: Request>(&mut self, version: i16, request: &R) -> Vec<u8> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("tern-tests")));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version)).unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        frame
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Reads one response frame (without its size prefix); None when the broker closed.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    /// True when the broker closed the connection (EOF or reset) within the read timeout.
    pub fn is_closed_by_broker(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Creates `name` (one replica) and asserts that it was created.
pub fn create_topic(connection: &mut Connection, name: &str, partitions: i32) {
    let request = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    let response = connection.call(7, &request);
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
}

/// The producer id of every batch of `topic`/`partition` from offset 0 to the high
/// watermark, with each batch's base offset (Fetch v11, read in place; CRCs checked).
pub fn batch_producers(
    connection: &mut Connection,
    topic: &str,
    partition: i32,
) -> Vec<(i64, i64)> {
    let batches = batches(connection, topic, partition);
    batches.iter().map(|info| (info.base_offset, info.producer_id)).collect()
}

/// The header of every batch of `topic`/`partition` from offset 0 to the high watermark
/// (Fetch v11 from the broker `connection` reaches, which must lead it; CRCs checked).
pub fn batches(
    connection: &mut Connection,
    topic: &str,
    partition: i32,
) -> Vec<tern::record_batch::BatchInfo> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    let mut batches = Vec::new();
    let mut next_offset = 0i64;
    // Each round reads at least one batch or returns.
    loop {
        let name = TopicName(StrBytes::from_string(topic.to_string()));
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(8 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default().with_topic(name).with_partitions(vec![
                FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(next_offset)
                    .with_partition_max_bytes(8 << 20),
            ])]);
        let response = connection.call(11, &request);
        let answer = &response.responses[0].partitions[0];
        assert_eq!(answer.error_code, 0, "fetch {topic}-{partition} at {next_offset}");
        let records = answer.records.clone().unwrap_or_default();
        if records.is_empty() {
            return batches;
        }
        let mut position = 0;
        while position < records.len() {
            let info = tern::record_batch::check_framing_and_crc(&records[position..])
                .expect("served batches pass CRC");
            assert_eq!(info.base_offset, next_offset, "offsets are contiguous");
            next_offset = info.next_offset();
            position += info.size_bytes;
            batches.push(info);
        }
    }
}
