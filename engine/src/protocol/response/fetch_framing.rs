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

/// One piece of an encoded Fetch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchPiece {
    /// Encoded bytes: size, header, fields and record lengths.
    Framing(Bytes),
    /// The record data of the `index`th partition of the answer (topic by topic), of the size
    /// its length (already in the framing) says: the caller sends it from where it lives.
    Records { index: usize },
}

/// Encodes `body` as `encode_response` would, as pieces to send in order, with each
/// partition's records left to the caller: `record_sizes` gives their sizes in partition
/// order (`None`: a null records field); the records in `body` are ignored.
pub fn encode_fetch_framing(
    meta: &RequestMeta,
    mut body: FetchResponse,
    record_sizes: &[Option<usize>],
) -> Result<Vec<FetchPiece>, EncodeError> {
    let partitions = || body.responses.iter().flat_map(|topic| topic.partitions.iter());
    if partitions().count() != record_sizes.len() {
        return Err(framing_error(meta, "one record size per partition"));
    }
    for partition in body.responses.iter_mut().flat_map(|topic| topic.partitions.iter_mut()) {
        partition.records = None;
    }
    let nulls = encode_response(meta, &Response::Fetch(body.clone()))?;
    for partition in body.responses.iter_mut().flat_map(|topic| topic.partitions.iter_mut()) {
        partition.records = Some(Bytes::new());
    }
    let empties = encode_response(meta, &Response::Fetch(body))?;
    let fields = records_fields(&nulls, &empties);
    if fields.len() != record_sizes.len() {
        return Err(framing_error(meta, "records fields not found where expected"));
    }
    let records_bytes: usize = record_sizes.iter().flatten().sum();
    let mut framing = BytesMut::with_capacity(nulls.len() + 5 * fields.len());
    let mut pieces = Vec::with_capacity(2 * fields.len() + 1);
    let mut framed_from = 0;
    for (index, ((start, end), size)) in fields.into_iter().zip(record_sizes).enumerate() {
        framing.extend_from_slice(&nulls[framed_from..start]);
        framed_from = end;
        let Some(size_bytes) = *size else {
            framing.extend_from_slice(&nulls[start..end]);
            continue;
        };
        framing.extend_from_slice(&records_length(meta, end - start, size_bytes)?);
        if size_bytes > 0 {
            pieces.push(FetchPiece::Framing(framing.split().freeze()));
            pieces.push(FetchPiece::Records { index });
        }
    }
    framing.extend_from_slice(&nulls[framed_from..]);
    pieces.push(FetchPiece::Framing(framing.freeze()));
    set_size_prefix(meta, &mut pieces, records_bytes)?;
    Ok(pieces)
}

/// Encodes `body` as `encode_response` would, as pieces to send in order, each partition's
/// records the very `Bytes` the body holds (no copy).
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
    let sizes: Vec<Option<usize>> =
        records.iter().map(|records| records.as_ref().map(Bytes::len)).collect();
    let pieces = encode_fetch_framing(meta, body, &sizes)?;
    let mut records = records;
    Ok(pieces
        .into_iter()
        .map(|piece| match piece {
            FetchPiece::Framing(bytes) => bytes,
            FetchPiece::Records { index } => records[index].take().unwrap_or_default(),
        })
        .collect())
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
fn set_size_prefix(
    meta: &RequestMeta,
    pieces: &mut [FetchPiece],
    records_bytes: usize,
) -> Result<(), EncodeError> {
    let framing_bytes: usize = pieces
        .iter()
        .map(|piece| match piece {
            FetchPiece::Framing(bytes) => bytes.len(),
            FetchPiece::Records { .. } => 0,
        })
        .sum();
    let size_bytes = (framing_bytes + records_bytes) - SIZE_PREFIX_BYTES;
    let size = i32::try_from(size_bytes).map_err(|_| EncodeError::TooLarge { size_bytes })?;
    let Some(FetchPiece::Framing(first)) = pieces.first_mut() else {
        return Err(framing_error(meta, "no room for the size prefix"));
    };
    if first.len() < SIZE_PREFIX_BYTES {
        return Err(framing_error(meta, "no room for the size prefix"));
    }
    let mut rewritten = BytesMut::with_capacity(first.len());
    rewritten.put_i32(size);
    rewritten.extend_from_slice(&first[SIZE_PREFIX_BYTES..]);
    *first = rewritten.freeze();
    Ok(())
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
        check(&[Some(16 * 1024), Some(100_000), Some(3)]);
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
