use super::*;
use proptest::prelude::*;

fn framed(body: &[u8]) -> Vec<u8> {
    let mut bytes = (body.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

/// Feeds `stream` in pieces cut at `cuts` and collects the frames that come out.
fn frames_from_pieces(stream: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut decoder = FrameDecoder::new(1024);
    let mut buffer = BytesMut::new();
    let mut frames = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&stream.len())) {
        buffer.extend_from_slice(&stream[start..end]);
        start = end;
        while let Some(frame) = decoder.decode(&mut buffer).unwrap() {
            frames.push(frame.to_vec());
        }
        assert!(decoder.bytes_needed(&buffer) > 0 || buffer.len() >= SIZE_PREFIX_BYTES);
    }
    assert!(buffer.is_empty(), "leftover bytes");
    frames
}

#[test]
fn split_at_every_byte_boundary_yields_the_same_frames() {
    let bodies: [&[u8]; 3] = [b"first frame", b"", b"third"];
    let stream: Vec<u8> = bodies.iter().flat_map(|body| framed(body)).collect();
    for cut in 0..=stream.len() {
        let frames = frames_from_pieces(&stream, &[cut]);
        assert_eq!(frames, bodies.map(<[u8]>::to_vec), "cut at {cut}");
    }
}

#[test]
fn byte_by_byte_feeding_works_and_hints_are_exact() {
    let stream = framed(b"hello");
    let mut decoder = FrameDecoder::new(1024);
    let mut buffer = BytesMut::new();
    for (index, byte) in stream.iter().enumerate() {
        // First the rest of the size prefix, then the rest of the frame.
        let expected = if index < SIZE_PREFIX_BYTES { SIZE_PREFIX_BYTES } else { stream.len() };
        assert_eq!(decoder.bytes_needed(&buffer), expected - index);
        assert_eq!(decoder.decode(&mut buffer), Ok(None));
        buffer.extend_from_slice(&[*byte]);
    }
    assert_eq!(decoder.bytes_needed(&buffer), 0);
    assert_eq!(decoder.decode(&mut buffer).unwrap().unwrap(), &b"hello"[..]);
    assert_eq!(decoder.bytes_needed(&buffer), SIZE_PREFIX_BYTES);
}

#[test]
fn oversized_frame_is_refused_from_its_prefix_alone() {
    let mut decoder = FrameDecoder::new(100);
    let mut buffer = BytesMut::from(&101i32.to_be_bytes()[..]);
    let expected = FrameError::Oversized { size_bytes: 101, max_bytes: 100 };
    assert_eq!(decoder.decode(&mut buffer), Err(expected));
    assert_eq!(decoder.bytes_needed(&buffer), 0);
    let mut buffer = BytesMut::from(&framed(&[7; 100])[..]);
    assert_eq!(decoder.decode(&mut buffer).unwrap().unwrap().len(), 100);
}

#[test]
fn negative_size_is_refused() {
    let mut decoder = FrameDecoder::default();
    for size in [-1i32, i32::MIN] {
        let mut buffer = BytesMut::from(&size.to_be_bytes()[..]);
        assert_eq!(decoder.decode(&mut buffer), Err(FrameError::Negative));
    }
}

#[test]
fn bytes_needed_never_exceeds_the_maximum_frame() {
    let decoder = FrameDecoder::new(1000);
    let buffer = BytesMut::from(&i32::MAX.to_be_bytes()[..]);
    assert_eq!(decoder.bytes_needed(&buffer), 0, "an oversized prefix needs no more bytes");
    let buffer = BytesMut::from(&1000i32.to_be_bytes()[..]);
    assert_eq!(decoder.bytes_needed(&buffer), 1000);
}

proptest! {
    #[test]
    fn any_split_of_any_frames_round_trips(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let stream: Vec<u8> = bodies.iter().flat_map(|body| framed(body)).collect();
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(stream.len() + 1)).collect();
        cuts.sort_unstable();
        prop_assert_eq!(frames_from_pieces(&stream, &cuts), bodies);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut decoder = FrameDecoder::new(32);
        let mut buffer = BytesMut::from(&bytes[..]);
        while let Ok(Some(frame)) = decoder.decode(&mut buffer) {
            prop_assert!(frame.len() <= 32);
        }
    }
}
