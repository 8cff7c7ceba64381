//! Requests this broker sends as a Kafka client — a broker forwarding a topic's
//! auto-creation to the controller's leader — encoded and their answers decoded with the
//! same care as any bytes from the network: the answer's length is bounded before it is
//! read, its correlation id must match, and nothing may trail it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// An answer larger than this is refused (a forwarded request's answer is small).
pub const RESPONSE_BYTES_MAX: usize = 1 << 20;
/// The client id the broker's own requests carry.
pub const CLIENT_ID: &str = "tern-broker";

/// Why an answer was refused.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("cannot encode the request: {0}")]
    Encode(String),
    #[error("answer of {0} bytes is out of bounds")]
    Size(i64),
    #[error("answer for correlation id {found}, expected {expected}")]
    Correlation { found: i32, expected: i32 },
    #[error("cannot decode the answer: {0}")]
    Decode(String),
    #[error("{0} bytes trail the answer")]
    Trailing(usize),
}

/// The request's whole frame: its size, header and body.
pub fn encode_request<R: Request>(
    version: i16,
    correlation_id: i32,
    request: &R,
) -> Result<Bytes, OutboundError> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut body = BytesMut::new();
    let encoded = header
        .encode(&mut body, R::header_version(version))
        .and_then(|()| request.encode(&mut body, version));
    encoded.map_err(|error| OutboundError::Encode(error.to_string()))?;
    let size = i32::try_from(body.len()).map_err(|_| OutboundError::Encode("too large".into()))?;
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(size);
    frame.put_slice(&body);
    Ok(frame.freeze())
}

/// The size an answer's 4-byte prefix announces, checked against [`RESPONSE_BYTES_MAX`].
pub fn response_size(prefix: [u8; 4]) -> Result<usize, OutboundError> {
    let size = i32::from_be_bytes(prefix);
    match usize::try_from(size) {
        Ok(size) if (4..=RESPONSE_BYTES_MAX).contains(&size) => Ok(size),
        _ => Err(OutboundError::Size(i64::from(size))),
    }
}

/// Decodes an answer's body (after its size prefix) to the request `R` sent at `version`.
pub fn decode_response<R: Request>(
    mut body: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, OutboundError> {
    let header_version = R::Response::header_version(version);
    let header = ResponseHeader::decode(&mut body, header_version)
        .map_err(|error| OutboundError::Decode(error.to_string()))?;
    if header.correlation_id != correlation_id {
        let found = header.correlation_id;
        return Err(OutboundError::Correlation { found, expected: correlation_id });
    }
    let response = R::Response::decode(&mut body, version)
        .map_err(|error| OutboundError::Decode(error.to_string()))?;
    match body.remaining() {
        0 => Ok(response),
        trailing => Err(OutboundError::Trailing(trailing)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, ResponseHeader};

    fn answer(correlation_id: i32, version: i16, trailing: &[u8]) -> Bytes {
        let mut body = BytesMut::new();
        let header = ResponseHeader::default().with_correlation_id(correlation_id);
        let header_version = CreateTopicsResponse::header_version(version);
        header.encode(&mut body, header_version).unwrap();
        CreateTopicsResponse::default()
            .with_throttle_time_ms(7)
            .encode(&mut body, version)
            .unwrap();
        body.put_slice(trailing);
        body.freeze()
    }

    #[test]
    fn an_answer_decodes_only_with_its_correlation_id_and_nothing_trailing() {
        for version in [2, 5, 7] {
            let good = decode_response::<CreateTopicsRequest>(answer(9, version, b""), version, 9);
            assert_eq!(good.unwrap().throttle_time_ms, 7);
            let other = decode_response::<CreateTopicsRequest>(answer(8, version, b""), version, 9);
            assert!(matches!(other, Err(OutboundError::Correlation { found: 8, expected: 9 })));
            let trailing = answer(9, version, b"x");
            let trailing = decode_response::<CreateTopicsRequest>(trailing, version, 9);
            assert!(matches!(trailing, Err(OutboundError::Trailing(1))));
            let whole = answer(9, version, b"");
            for cut in 0..whole.len() {
                let cut = whole.slice(..cut);
                assert!(decode_response::<CreateTopicsRequest>(cut, version, 9).is_err());
            }
        }
    }

    #[test]
    fn sizes_are_bounded_and_a_request_frame_announces_its_own() {
        assert!(response_size(0i32.to_be_bytes()).is_err());
        assert!(response_size((-5i32).to_be_bytes()).is_err());
        assert!(response_size((RESPONSE_BYTES_MAX as i32 + 1).to_be_bytes()).is_err());
        assert_eq!(response_size(100i32.to_be_bytes()).unwrap(), 100);
        let frame = encode_request(7, 3, &CreateTopicsRequest::default()).unwrap();
        let size = i32::from_be_bytes(frame[..4].try_into().unwrap());
        assert_eq!(size as usize, frame.len() - 4);
    }
}
