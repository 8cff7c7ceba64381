//! A Fetch answer encoded *around* its record bytes: the codec encodes the framing (size,
//! header, fields, lengths) and each partition's records stay the `Bytes` the log read, so
//! the data reaches the socket without being copied into an output buffer (the read from
//! the segment stays its only copy).
//!
//! The framing is found without a second copy of Kafka's schema: the answer is encoded twice
//! with every partition's records taken out, once as null and once as empty. Null and empty
//! take the same number of bytes in both encodings of a records field (int32 -1 / 0 before
//! the flexible versions, unsigned varint 0 / 1 from them), so the two encodings have the
//! same length and differ exactly at each records field, in partition order. Each such place
//! is replaced by the real length followed by the real bytes.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::FetchResponse;

use super::{encode_response, EncodeError, Response};
use crate::protocol::frame::SIZE_PREFIX_BYTES;
use crate::protocol::request::RequestMeta;

/// Framing pieces shorter than this are merged with their neighbours into one buffer (a copy
/// of a few bytes instead of one more send).
const MERGE_BELOW_BYTES: usize = 16 * 1024;

/// Encodes `body` as `encode_response` would, as pieces to send in order.
pub fn encode_fetch_response(
    meta: &RequestMeta,
    mut body: FetchResponse,
) -> Result<Vec<Bytes>, EncodeError> {
    let records: Vec<Option<Bytes>> = body
        .responses
        .iter_mut()
        .flat_map(|topic| topic.partitions.iter_mut())
        .map(|partition| partition.records.take())
        .collect();
    let nulls = encode_response(meta, &Response::Fetch(body.clone()))?;
    for partition in body.responses.iter_mut().flat_map(|topic| topic.partitions.iter_mut()) {
        partition.records = Some(Bytes::new());
    }
    let empties = encode_response(meta, &Response::Fetch(body))?;
    let fields = records_fields(&nulls, &empties);
    if fields.len() != records.len() {
        return Err(framing_error(meta, "records fields not found where expected"));
    }
    let mut pieces = Vec::with_capacity(2 * fields.len() + 1);
    let mut framed_from = 0;
    for ((start, end), records) in fields.into_iter().zip(records) {
        pieces.push(nulls.slice(framed_from..start));
        let Some(records) = records else {
            pieces.push(nulls.slice(start..end));
            framed_from = end;
            continue;
        };
        pieces.push(records_length(meta, end - start, records.len())?);
        pieces.push(records);
        framed_from = end;
    }
    pieces.push(nulls.slice(framed_from..));
    set_size_prefix(meta, &mut pieces)?;
    Ok(merge_small(pieces))
}

/// `(start, end)` of every run of bytes where the two encodings differ, in order.
fn records_fields(nulls: &[u8], empties: &[u8]) -> Vec<(usize, usize)> {
    assert_eq!(nulls.len(), empties.len(), "null and empty records encode to equal sizes");
    let mut fields = Vec::new();
    let mut position = SIZE_PREFIX_BYTES;
    // Each round moves past one byte or one run.
    while position < nulls.len() {
        if nulls[position] == empties[position] {
            position += 1;
            continue;
        }
        let start = position;
        while position < nulls.len() && nulls[position] != empties[position] {
            position += 1;
        }
        fields.push((start, position));
    }
    fields
}

/// The length of a records field of `size_bytes`, in the form (classic int32 or compact
/// varint) whose null takes `null_bytes`.
fn records_length(
    meta: &RequestMeta,
    null_bytes: usize,
    size_bytes: usize,
) -> Result<Bytes, EncodeError> {
    let mut length = BytesMut::with_capacity(5);
    match null_bytes {
        4 => {
            let size =
                i32::try_from(size_bytes).map_err(|_| EncodeError::TooLarge { size_bytes })?;
            length.put_i32(size);
        }
        1 => {
            let mut value = u32::try_from(size_bytes)
                .ok()
                .and_then(|size| size.checked_add(1))
                .ok_or(EncodeError::TooLarge { size_bytes })?;
            while value >= 0x80 {
                length.put_u8((value as u8 & 0x7f) | 0x80);
                value >>= 7;
            }
            length.put_u8(value as u8);
        }
        _ => return Err(framing_error(meta, "a records length of unknown form")),
    }
    Ok(length.freeze())
}

/// Rewrites the 4-byte size prefix (at the start of the first piece) for the real total.
fn set_size_prefix(meta: &RequestMeta, pieces: &mut [Bytes]) -> Result<(), EncodeError> {
    let total_bytes: usize = pieces.iter().map(Bytes::len).sum();
    let size_bytes = total_bytes - SIZE_PREFIX_BYTES;
    let size = i32::try_from(size_bytes).map_err(|_| EncodeError::TooLarge { size_bytes })?;
    let Some(first) = pieces.first_mut().filter(|first| first.len() >= SIZE_PREFIX_BYTES) else {
        return Err(framing_error(meta, "no room for the size prefix"));
    };
    let mut rewritten = BytesMut::with_capacity(first.len());
    rewritten.put_i32(size);
    rewritten.extend_from_slice(&first[SIZE_PREFIX_BYTES..]);
    *first = rewritten.freeze();
    Ok(())
}

/// Merges runs of small pieces; large ones (record data) are kept as they are.
fn merge_small(pieces: Vec<Bytes>) -> Vec<Bytes> {
    let mut merged = Vec::with_capacity(pieces.len());
    let mut small = BytesMut::new();
    for piece in pieces {
        if piece.len() < MERGE_BELOW_BYTES {
            small.extend_from_slice(&piece);
            continue;
        }
        if !small.is_empty() {
            merged.push(small.split().freeze());
        }
        merged.push(piece);
    }
    if !small.is_empty() {
        merged.push(small.freeze());
    }
    merged
}

fn framing_error(meta: &RequestMeta, reason: &str) -> EncodeError {
    EncodeError::Codec {
        api_key: meta.api_key,
        api_version: meta.api_version,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{ApiKey, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    use super::*;
    use crate::protocol::api;

    fn meta(version: i16) -> RequestMeta {
        RequestMeta {
            api_key: ApiKey::Fetch,
            api_version: version,
            correlation_id: 7,
            client_id: None,
        }
    }

    fn response(partitions: &[Option<usize>], version: i16) -> FetchResponse {
        let partitions: Vec<PartitionData> = partitions
            .iter()
            .enumerate()
            .map(|(index, size)| {
                let aborted = (index % 2 == 0).then(|| {
                    vec![AbortedTransaction::default().with_producer_id((index as i64).into())]
                });
                PartitionData::default()
                    .with_partition_index(index as i32)
                    .with_high_watermark(1000 + index as i64)
                    .with_aborted_transactions(aborted)
                    .with_records(size.map(|size| Bytes::from(vec![index as u8; size])))
            })
            .collect();
        let topic = FetchableTopicResponse::default().with_partitions(partitions);
        let topic = if version >= 13 {
            topic.with_topic_id(uuid::Uuid::from_u128(42))
        } else {
            topic.with_topic(TopicName(StrBytes::from_static_str("topic")))
        };
        FetchResponse::default().with_session_id(0).with_responses(vec![topic.clone(), topic])
    }

    fn check(partitions: &[Option<usize>]) {
        let (low, high) = api::supported_range(ApiKey::Fetch as i16).expect("fetch is served");
        for version in low..=high {
            let body = response(partitions, version);
            let whole = encode_response(&meta(version), &Response::Fetch(body.clone())).unwrap();
            let pieces = encode_fetch_response(&meta(version), body).unwrap();
            assert_eq!(pieces.concat(), whole.to_vec(), "v{version} {partitions:?}");
        }
    }

    #[test]
    fn pieces_are_the_codec_bytes_at_every_version() {
        check(&[]);
        check(&[None]);
        check(&[Some(0), None, Some(1)]);
        // Around the one- and two-byte varint boundaries, and data big enough to stay apart.
        check(&[Some(126), Some(127), Some(128), Some(16_383), Some(16_384)]);
        check(&[Some(MERGE_BELOW_BYTES), Some(100_000), Some(3)]);
    }

    #[test]
    fn large_record_data_is_sent_from_its_own_buffer() {
        let records = Bytes::from(vec![9u8; 100_000]);
        let mut body = response(&[Some(10)], 12);
        body.responses[0].partitions[0].records = Some(records.clone());
        let pieces = encode_fetch_response(&meta(12), body).unwrap();
        assert!(
            pieces.iter().any(|piece| piece.as_ptr() == records.as_ptr()),
            "the data piece is the log's buffer, not a copy"
        );
    }

    proptest! {
        #[test]
        fn any_mix_of_partitions_encodes_as_the_codec_does(
            partitions in proptest::collection::vec(
                proptest::option::of(0usize..40_000), 0..6)
        ) {
            check(&partitions);
        }
    }
}
