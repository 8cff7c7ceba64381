//! The peer frame and hello codecs: whatever is encoded decodes to itself; a frame or hello
//! cut anywhere, or with any bit flipped, is refused; arbitrary bytes never panic; sizes are
//! known before encoding.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::record_batch::build::{encode_batch, ProducerStamp, Record};
use crate::record_batch::patch_base_offset;
use crate::replication::{DirectoryId, Voter, VoterSet};

/// Whole batches from `base_offset`, `(records, epoch)` each, back to back.
fn batches(base_offset: i64, shapes: &[(usize, i32)]) -> Bytes {
    let mut out = Vec::new();
    let mut offset = base_offset;
    for &(records, epoch) in shapes {
        let values: Vec<Record> = (0..records)
            .map(|index| Record { value: Some(vec![index as u8; 3]), ..Record::default() })
            .collect();
        let mut batch = encode_batch(&values, 1_000, ProducerStamp::NONE);
        patch_base_offset(&mut batch, offset, epoch);
        offset += records as i64;
        out.extend_from_slice(&batch);
    }
    Bytes::from(out)
}

fn message() -> impl Strategy<Value = PartitionMessage> {
    let in_sync = prop::collection::vec(any::<u32>().prop_map(NodeId), 0..=NEWS_IN_SYNC_MAX);
    let news = (any::<i32>(), any::<u32>(), in_sync).prop_map(|(epoch, leader, in_sync)| {
        PartitionMessage::Leadership(LeadershipNews { epoch, leader: NodeId(leader), in_sync })
    });
    prop_oneof![replica_message().prop_map(PartitionMessage::Replica), news]
}

/// An append of up to four batches, some of them voters batches.
fn append_request() -> impl Strategy<Value = PeerMessage> {
    let shapes = prop::collection::vec((1usize..4, 0i32..5), 0..4);
    let voter_sets = prop::collection::vec(voter_set(), 4);
    (any::<i32>(), any::<u32>(), 0i64..1 << 40, any::<i32>(), shapes, voter_sets).prop_map(
        |(epoch, leader, prev_offset, prev_epoch, shapes, voter_sets)| {
            let payload = batches(prev_offset + 1, &shapes);
            let entries = entries_of(&payload).expect("whole batches");
            // Some batches are voters batches (the codec does not look at which).
            let voter_changes = entries
                .iter()
                .zip(voter_sets)
                .filter_map(|(entry, voters)| {
                    Some(VoterChange { offset: entry.base_offset, voters: voters? })
                })
                .collect();
            let header = AppendHeader {
                epoch,
                leader: NodeId(leader),
                prev_offset,
                prev_epoch,
                leader_commit: prev_offset / 2,
                leader_clock_ms: prev_offset * 3,
            };
            Message::AppendRequest(AppendRequest { header, entries, payload, voter_changes })
        },
    )
}

fn replica_message() -> impl Strategy<Value = PeerMessage> {
    let flags = (any::<bool>(), any::<bool>());
    let vote_request = (any::<i32>(), any::<u32>(), any::<i64>(), any::<i32>(), flags).prop_map(
        |(epoch, candidate, log_end_offset, last_epoch, (pre_vote, transfer))| {
            Message::VoteRequest(VoteRequest {
                epoch,
                candidate: NodeId(candidate),
                log_end_offset,
                last_epoch,
                pre_vote,
                transfer,
            })
        },
    );
    let timeout_now = (any::<i32>(), any::<u32>()).prop_map(|(epoch, leader)| {
        Message::TimeoutNow(TimeoutNow { epoch, leader: NodeId(leader) })
    });
    let leadership_request = (any::<i32>(), any::<u32>()).prop_map(|(epoch, candidate)| {
        Message::LeadershipRequest(LeadershipRequest { epoch, candidate: NodeId(candidate) })
    });
    let vote_response =
        (any::<i32>(), any::<bool>(), any::<bool>()).prop_map(|(epoch, granted, pre_vote)| {
            Message::VoteResponse(VoteResponse { epoch, granted, pre_vote })
        });
    let append_request = append_request();
    let divergence = prop::option::of((any::<i32>(), any::<i64>())).prop_map(|divergence| {
        divergence.map(|(epoch, epoch_start_offset)| Divergence { epoch, epoch_start_offset })
    });
    let append_response = (any::<i32>(), any::<bool>(), any::<[i64; 4]>(), divergence).prop_map(
        |(epoch, success, offsets, divergence)| {
            Message::AppendResponse(AppendResponse {
                epoch,
                success,
                matched_end_offset: offsets[0],
                durable_end_offset: offsets[1],
                log_end_offset: offsets[2],
                rejected_prev_offset: offsets[3],
                divergence,
                leader_clock_ms: offsets[0] ^ offsets[3],
            })
        },
    );
    prop_oneof![
        vote_request,
        vote_response,
        append_request,
        append_response,
        timeout_now,
        leadership_request
    ]
}

/// A voter set, or none (that batch is not a voters batch).
fn voter_set() -> impl Strategy<Value = Option<VoterSet>> {
    let voters = prop::collection::btree_map(any::<u32>(), prop::option::of(any::<u128>()), 1..6);
    prop::option::of(voters).prop_map(|voters| {
        let voters = voters?.into_iter().map(|(node, directory)| Voter {
            node: NodeId(node),
            directory: directory.map(DirectoryId),
        });
        VoterSet::new(voters.collect())
    })
}

fn frame() -> impl Strategy<Value = PeerFrame> {
    let addressed = ("[a-z._-]{1,30}", 0i32..1000, message())
        .prop_map(|(topic, partition, message)| Addressed { topic, partition, message });
    (any::<u32>(), prop::collection::vec(addressed, 0..8))
        .prop_map(|(sender, messages)| PeerFrame { sender: NodeId(sender), messages })
}

fn hello() -> impl Strategy<Value = Hello> {
    (any::<u32>(), "[a-z0-9.-]{1,60}|\\PC{1,60}", 1u16.., any::<[u8; 16]>())
        .prop_filter("a host of at most 255 bytes", |(_, host, _, _)| host.len() <= 255)
        .prop_map(|(node, kafka_host, kafka_port, directory_id)| Hello {
            node_id: NodeId(node),
            kafka_host,
            kafka_port,
            directory_id,
        })
}

proptest! {
    #[test]
    fn frames_round_trip_and_every_cut_is_refused(frame in frame()) {
        let encoded = encode(&frame);
        prop_assert_eq!(encoded.len(), frame_size_bytes(&frame));
        let prefixed = encode_prefixed(&frame);
        prop_assert_eq!(&prefixed[..4], &(encoded.len() as u32).to_be_bytes()[..]);
        prop_assert_eq!(&prefixed[4..], &encoded[..]);
        prop_assert_eq!(decode(encoded.clone()), Ok(frame));
        for cut in 0..encoded.len() {
            prop_assert!(decode(encoded.slice(..cut)).is_err(), "cut at {}", cut);
        }
    }

    #[test]
    fn hellos_round_trip_and_every_cut_is_refused(hello in hello()) {
        let encoded = encode_hello(&hello);
        prop_assert!(encoded.len() <= HELLO_BYTES_MAX);
        prop_assert_eq!(decode_hello(encoded.clone()), Ok(hello));
        for cut in 0..encoded.len() {
            prop_assert!(decode_hello(encoded.slice(..cut)).is_err(), "cut at {}", cut);
        }
    }

    #[test]
    fn any_bytes_decode_as_a_hello_or_are_refused_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let _ = decode_hello(Bytes::from(bytes));
    }

    #[test]
    fn any_bytes_decode_or_are_refused_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let _ = decode(Bytes::from(bytes));
    }
}

#[test]
fn every_bit_flip_is_refused() {
    let payload = batches(10, &[(2, 3), (1, 4)]);
    let entries = entries_of(&payload).expect("whole batches");
    let header = AppendHeader {
        epoch: 4,
        leader: NodeId(1),
        prev_offset: 9,
        prev_epoch: 3,
        leader_commit: 5,
        leader_clock_ms: 0,
    };
    let frame = PeerFrame {
        sender: NodeId(1),
        messages: vec![Addressed {
            topic: "orders".to_string(),
            partition: 2,
            message: PartitionMessage::Replica(Message::AppendRequest(AppendRequest {
                header,
                entries,
                payload,
                voter_changes: vec![],
            })),
        }],
    };
    let encoded = encode(&frame);
    for bit in 0..encoded.len() * 8 {
        let mut damaged = encoded.to_vec();
        damaged[bit / 8] ^= 1 << (bit % 8);
        assert!(decode(Bytes::from(damaged)).is_err(), "bit {bit}");
    }
}

#[test]
fn a_checksummed_frame_with_impossible_fields_is_refused() {
    let with_crc = |body: &[u8]| {
        let mut bytes = body.to_vec();
        bytes.extend_from_slice(&crc32c::crc32c(body).to_be_bytes());
        Bytes::from(bytes)
    };
    let head =
        |count: u16| [&MAGIC[..], &[VERSION], &7u32.to_be_bytes(), &count.to_be_bytes()].concat();
    assert_eq!(decode(with_crc(&head(0))), Ok(PeerFrame { sender: NodeId(7), messages: vec![] }));
    // A count that lies: 65,535 messages announced, none present.
    assert!(matches!(decode(with_crc(&head(u16::MAX))), Err(PeerDecodeError::Truncated { .. })));
    let message = |kind: u8, body: &[u8]| {
        [&head(1)[..], &[1, b't'], &0i32.to_be_bytes(), &[kind], body].concat()
    };
    let vote_response = |granted: u8| [&5i32.to_be_bytes()[..], &[granted, 0]].concat();
    assert!(decode(with_crc(&message(1, &vote_response(1)))).is_ok());
    let invalid = |field| Err(PeerDecodeError::Invalid { field });
    assert_eq!(decode(with_crc(&message(1, &vote_response(2)))), invalid("granted"));
    let vote_request = |transfer: u8| [&[0u8; 20][..], &[0, transfer]].concat();
    assert!(decode(with_crc(&message(0, &vote_request(1)))).is_ok());
    assert_eq!(decode(with_crc(&message(0, &vote_request(2)))), invalid("transfer"));
    assert!(decode(with_crc(&message(4, &[0u8; 8]))).is_ok());
    assert!(matches!(
        decode(with_crc(&message(4, &[0u8; 7]))),
        Err(PeerDecodeError::Truncated { .. })
    ));
    assert_eq!(decode(with_crc(&message(9, &vote_response(1)))), invalid("kind"));
    let trailing = [&message(1, &vote_response(1))[..], &[0]].concat();
    assert_eq!(decode(with_crc(&trailing)), Err(PeerDecodeError::Trailing { trailing: 1 }));
    // An append whose bytes are not whole batches.
    let request = [&[0u8; 36][..], &3u32.to_be_bytes(), b"abc"].concat();
    assert_eq!(decode(with_crc(&message(2, &request))), invalid("record batches"));
}

#[test]
fn every_bit_flip_of_a_hello_is_refused() {
    let hello = Hello {
        node_id: NodeId(3),
        kafka_host: "broker-3.example".to_string(),
        kafka_port: 9092,
        directory_id: *b"0123456789abcdef",
    };
    let encoded = encode_hello(&hello);
    for bit in 0..encoded.len() * 8 {
        let mut damaged = encoded.to_vec();
        damaged[bit / 8] ^= 1 << (bit % 8);
        assert!(decode_hello(Bytes::from(damaged)).is_err(), "bit {bit}");
    }
}

#[test]
fn a_checksummed_hello_with_impossible_fields_is_refused() {
    let with_crc = |body: &[u8]| {
        let mut bytes = body.to_vec();
        bytes.extend_from_slice(&crc32c::crc32c(body).to_be_bytes());
        Bytes::from(bytes)
    };
    let hello = |host: &[u8], port: u16, tail: &[u8]| {
        let length = (host.len() as u16).to_be_bytes();
        let fields = [&9u32.to_be_bytes()[..], &length, host, &port.to_be_bytes(), &[7; 16], tail];
        with_crc(&[&HELLO_MAGIC[..], &[HELLO_VERSION], &fields.concat()].concat())
    };
    let decoded = decode_hello(hello(b"h", 1, b""));
    let expected =
        Hello { node_id: NodeId(9), kafka_host: "h".into(), kafka_port: 1, directory_id: [7; 16] };
    assert_eq!(decoded, Ok(expected));
    let invalid = |field| Err(PeerDecodeError::Invalid { field });
    assert_eq!(decode_hello(hello(b"", 1, b"")), invalid("kafka host length"));
    let head = |host_length: u16| {
        [&HELLO_MAGIC[..], &[HELLO_VERSION], &[0; 4], &host_length.to_be_bytes(), b"h"].concat()
    };
    assert_eq!(decode_hello(with_crc(&head(256))), invalid("kafka host length"));
    assert_eq!(decode_hello(hello(&[0xff, 0xfe], 1, b"")), invalid("kafka host"));
    assert_eq!(decode_hello(hello(b"h", 0, b"")), invalid("kafka port"));
    assert_eq!(decode_hello(hello(b"h", 1, b"x")), Err(PeerDecodeError::Trailing { trailing: 1 }));
    // A host length that lies: more bytes announced than present.
    assert!(matches!(decode_hello(with_crc(&head(200))), Err(PeerDecodeError::Truncated { .. })));
    let too_large = Bytes::from(vec![0; HELLO_BYTES_MAX + 1]);
    let limit_bytes = HELLO_BYTES_MAX;
    let refused = Err(PeerDecodeError::TooLarge { size_bytes: limit_bytes + 1, limit_bytes });
    assert_eq!(decode_hello(too_large), refused);
    // A frame is not a hello, nor a hello a frame.
    let frame = encode(&PeerFrame { sender: NodeId(9), messages: vec![] });
    assert_eq!(decode_hello(frame), Err(PeerDecodeError::NotAFrame));
    assert_eq!(decode(hello(b"h", 1, b"")), Err(PeerDecodeError::NotAFrame));
}

#[test]
fn only_messages_a_peer_would_accept_are_sendable() {
    let vote = |topic: &str, partition: i32| Addressed {
        topic: topic.to_string(),
        partition,
        message: PartitionMessage::Replica(Message::VoteResponse(VoteResponse {
            epoch: 1,
            granted: true,
            pre_vote: false,
        })),
    };
    assert!(is_sendable(&vote("t", 0)));
    assert!(is_sendable(&vote(&"t".repeat(TOPIC_NAME_BYTES_MAX), i32::MAX)));
    assert!(!is_sendable(&vote("", 0)));
    assert!(!is_sendable(&vote(&"t".repeat(TOPIC_NAME_BYTES_MAX + 1), 0)));
    assert!(!is_sendable(&vote("t", -1)));
    let header = AppendHeader {
        epoch: 1,
        leader: NodeId(1),
        prev_offset: -1,
        prev_epoch: -1,
        leader_commit: 0,
        leader_clock_ms: 0,
    };
    let append = |payload_bytes: usize| Addressed {
        topic: "t".to_string(),
        partition: 0,
        message: PartitionMessage::Replica(Message::AppendRequest(AppendRequest {
            header,
            entries: vec![],
            payload: Bytes::from(vec![0; payload_bytes]),
            voter_changes: vec![],
        })),
    };
    let fixed_bytes = message_size_bytes(&append(0));
    let fitting_bytes = FRAME_BYTES_MAX - FRAME_OVERHEAD_BYTES - fixed_bytes;
    assert!(is_sendable(&append(fitting_bytes)));
    assert!(!is_sendable(&append(fitting_bytes + 1)));
    let news = |replicas: usize| Addressed {
        topic: "t".to_string(),
        partition: 0,
        message: PartitionMessage::Leadership(LeadershipNews {
            epoch: 1,
            leader: NodeId(1),
            in_sync: vec![NodeId(1); replicas],
        }),
    };
    assert!(is_sendable(&news(NEWS_IN_SYNC_MAX)));
    assert!(!is_sendable(&news(NEWS_IN_SYNC_MAX + 1)));
}

#[test]
fn an_append_naming_more_voter_changes_than_batches_or_a_bad_set_is_refused() {
    let voters = VoterSet::new(vec![Voter { node: NodeId(1), directory: None }]).expect("set");
    let changes = vec![VoterChange { offset: 4, voters }];
    let mut out = BytesMut::new();
    encode_voter_changes(&mut out, &changes);
    let reader = |bytes: &BytesMut| Reader { bytes: bytes.clone().freeze(), position: 0 };
    assert_eq!(decode_voter_changes(&mut reader(&out), 1).ok(), Some(changes));
    assert!(decode_voter_changes(&mut reader(&out), 0).is_err(), "more changes than batches");
    let mut lying = out.clone();
    lying[0..4].copy_from_slice(&3u32.to_be_bytes());
    assert!(decode_voter_changes(&mut reader(&lying), 1_000).is_err(), "a count past the end");
    let mut bad_flag = out.clone();
    bad_flag[4 + 8 + 1 + 4] = 7;
    assert!(decode_voter_changes(&mut reader(&bad_flag), 1).is_err(), "pinned must be 0 or 1");
}
