//! Smoke test of the broker on the simulated backend: one broker node on a simulated disk, one
//! client node speaking the real Kafka protocol over madsim's network. Run with
//! `RUSTFLAGS="--cfg madsim" cargo test -p tern-sim --target-dir target/sim`.
#![cfg(madsim)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tern::broker::{Broker, BrokerConfig};
use tern::io::{self, Disk, SimDisk, Stream};
use tern::record_batch::build::{encode_batch, ProducerStamp, Record};

const BROKER_ADDRESS: &str = "10.0.0.1:9092";

async fn call<R: Request>(
    stream: &Stream,
    correlation_id: i32,
    version: i16,
    request: &R,
) -> R::Response {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id);
    let mut body = BytesMut::new();
    header.encode(&mut body, R::header_version(version)).unwrap();
    request.encode(&mut body, version).unwrap();
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    let (result, _) = stream.write_all(frame.freeze()).await;
    result.expect("send");
    let size = read_exact(stream, 4).await.get_i32() as usize;
    let mut response = read_exact(stream, size).await;
    assert_eq!(response.get_i32(), correlation_id);
    if R::Response::header_version(version) >= 1 {
        response.get_u8();
    }
    R::Response::decode(&mut response, version).expect("decode")
}

async fn read_exact(stream: &Stream, size: usize) -> Bytes {
    let mut buffer = BytesMut::with_capacity(size);
    while buffer.len() < size {
        let (result, returned) = stream.read(buffer).await;
        buffer = returned;
        assert!(result.expect("read") > 0, "broker closed the connection");
    }
    buffer.split_to(size).freeze()
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

async fn client_session() -> (i64, usize) {
    let address: SocketAddr = BROKER_ADDRESS.parse().unwrap();
    let stream = loop {
        match Stream::connect(address).await {
            Ok(stream) => break stream,
            Err(_) => io::sleep(Duration::from_millis(100)).await,
        }
    };
    let create = CreateTopicsRequest::default().with_timeout_ms(1000).with_topics(vec![
        CreatableTopic::default()
            .with_name(name("sim"))
            .with_num_partitions(2)
            .with_replication_factor(1),
    ]);
    assert_eq!(call(&stream, 1, 7, &create).await.topics[0].error_code, 0);
    let record = Record { value: Some(b"simulated".to_vec()), ..Record::default() };
    let batch = Bytes::from(encode_batch(&[record.clone(), record], 0, ProducerStamp::NONE));
    for correlation_id in 2..5 {
        let produce =
            ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).with_topic_data(vec![
                TopicProduceData::default().with_name(name("sim")).with_partition_data(vec![
                    PartitionProduceData::default().with_index(1).with_records(Some(batch.clone())),
                ]),
            ]);
        let response = call(&stream, correlation_id, 9, &produce).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    let fetch = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(name("sim")).with_partitions(vec![
            FetchPartition::default()
                .with_partition(1)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20),
        ])]);
    let response = call(&stream, 9, 11, &fetch).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    (partition.high_watermark, partition.records.as_ref().map_or(0, |r| r.len()))
}

#[madsim::test]
async fn broker_serves_create_produce_and_fetch_on_simulated_io() {
    let handle = madsim::runtime::Handle::current();
    handle
        .create_node()
        .name("broker")
        .ip("10.0.0.1".parse().unwrap())
        .init(|| async {
            let mut config =
                BrokerConfig::single_node(BROKER_ADDRESS.parse().unwrap(), "/data".into());
            config.shard_count = 2;
            let disk = Disk::Simulated(SimDisk::new(7));
            let broker = Broker::open(config, disk).await.expect("open broker");
            broker.serve().await.expect("serve");
        })
        .build();
    let outcome = Arc::new(Mutex::new(None));
    let reported = outcome.clone();
    handle
        .create_node()
        .name("client")
        .ip("10.0.0.2".parse().unwrap())
        .init(move || {
            let reported = reported.clone();
            async move {
                let result = client_session().await;
                *reported.lock().unwrap() = Some(result);
            }
        })
        .build();
    for _ in 0..600 {
        if outcome.lock().unwrap().is_some() {
            break;
        }
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
    let (high_watermark, fetched_bytes) =
        outcome.lock().unwrap().expect("client finished within 60 simulated s");
    assert_eq!(high_watermark, 6, "three batches of two records");
    assert!(fetched_bytes > 0);
}
