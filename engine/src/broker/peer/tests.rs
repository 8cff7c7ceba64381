//! The peer frame codec: whatever is encoded decodes to itself; a frame cut anywhere, or with
//! any bit flipped, is refused; arbitrary bytes never panic.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::record_batch::build::{encode_batch, ProducerStamp, Record};
use crate::record_batch::patch_base_offset;

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

fn message() -> impl Strategy<Value = PeerMessage> {
    let vote_request = (any::<i32>(), any::<u32>(), any::<i64>(), any::<i32>(), any::<bool>())
        .prop_map(|(epoch, candidate, log_end_offset, last_epoch, pre_vote)| {
            Message::VoteRequest(VoteRequest {
                epoch,
                candidate: NodeId(candidate),
                log_end_offset,
                last_epoch,
                pre_vote,
            })
        });
    let vote_response =
        (any::<i32>(), any::<bool>(), any::<bool>()).prop_map(|(epoch, granted, pre_vote)| {
            Message::VoteResponse(VoteResponse { epoch, granted, pre_vote })
        });
    let shapes = prop::collection::vec((1usize..4, 0i32..5), 0..4);
    let append_request = (any::<i32>(), any::<u32>(), 0i64..1 << 40, any::<i32>(), shapes)
        .prop_map(|(epoch, leader, prev_offset, prev_epoch, shapes)| {
            let payload = batches(prev_offset + 1, &shapes);
            let entries = entries_of(&payload).expect("whole batches");
            let header = AppendHeader {
                epoch,
                leader: NodeId(leader),
                prev_offset,
                prev_epoch,
                leader_commit: prev_offset / 2,
            };
            Message::AppendRequest(AppendRequest { header, entries, payload })
        });
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
            })
        },
    );
    prop_oneof![vote_request, vote_response, append_request, append_response]
}

fn frame() -> impl Strategy<Value = PeerFrame> {
    let addressed = ("[a-z._-]{1,30}", 0i32..1000, message())
        .prop_map(|(topic, partition, message)| Addressed { topic, partition, message });
    (any::<u32>(), prop::collection::vec(addressed, 0..8))
        .prop_map(|(sender, messages)| PeerFrame { sender: NodeId(sender), messages })
}

proptest! {
    #[test]
    fn frames_round_trip_and_every_cut_is_refused(frame in frame()) {
        let encoded = encode(&frame);
        prop_assert_eq!(decode(encoded.clone()), Ok(frame));
        for cut in 0..encoded.len() {
            prop_assert!(decode(encoded.slice(..cut)).is_err(), "cut at {}", cut);
        }
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
    };
    let frame = PeerFrame {
        sender: NodeId(1),
        messages: vec![Addressed {
            topic: "orders".to_string(),
            partition: 2,
            message: Message::AppendRequest(AppendRequest { header, entries, payload }),
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
    assert_eq!(decode(with_crc(&message(9, &vote_response(1)))), invalid("kind"));
    let trailing = [&message(1, &vote_response(1))[..], &[0]].concat();
    assert_eq!(decode(with_crc(&trailing)), Err(PeerDecodeError::Trailing { trailing: 1 }));
    // An append whose bytes are not whole batches.
    let request = [&[0u8; 28][..], &3u32.to_be_bytes(), b"abc"].concat();
    assert_eq!(decode(with_crc(&message(2, &request))), invalid("record batches"));
}
