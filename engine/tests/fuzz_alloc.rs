//! Hostile request frames cannot make the decoder allocate by their length fields: a 2^31
//! array count or string length must not reserve gigabytes. A counting global allocator
//! measures the peak live bytes while each frame is decoded (the same check the fuzz CI run
//! makes with `-malloc_limit_mb=128`, but here it is a plain test on stable Rust).
//!
//! Frames: every recorded client frame (`fuzz/corpus/request_frame/`) with a huge value
//! written over every position (as int16, int32 and unsigned varint), which reaches every
//! length field of every API and version the clients sent; plus, for every API and version
//! Tern accepts, bodies that start with huge counts, and dense arrays of minimal elements.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use tern::protocol::api::SUPPORTED_APIS;
use tern::protocol::frame::FrameDecoder;
use tern::protocol::request::decode_request;

/// Counts this thread's live heap bytes and their peak. Thread-local, so the test harness's
/// other threads do not disturb a measurement; const-initialised `Cell`s need no destructor,
/// so using them inside the allocator never allocates.
struct Counting;

thread_local! {
    static LIVE_BYTES: Cell<usize> = const { Cell::new(0) };
    static PEAK_BYTES: Cell<usize> = const { Cell::new(0) };
}

fn grow(size_bytes: usize) {
    let _ = LIVE_BYTES.try_with(|live| {
        live.set(live.get() + size_bytes);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

fn shrink(size_bytes: usize) {
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get().saturating_sub(size_bytes)));
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grow(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            grow(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            // Both blocks may be live while the bytes are copied.
            grow(new_size);
            shrink(layout.size());
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated above the starting level while `run` runs.
fn peak_extra_bytes(run: impl FnOnce()) -> usize {
    let base = LIVE_BYTES.with(Cell::get);
    PEAK_BYTES.with(|peak| peak.set(base));
    run();
    PEAK_BYTES.with(Cell::get) - base
}

/// What decoding a frame of `frame_bytes` may allocate: linear in the frame (every element the
/// codec reserves room for exists in the frame), plus a constant for error messages and small
/// maps. Never what a length field claims.
fn allocation_bound_bytes(frame_bytes: usize) -> usize {
    ALLOCATION_PER_FRAME_BYTE * frame_bytes + ALLOCATION_CONSTANT_BYTES
}

/// Measured worst case 33.7: Metadata's topic struct (72 bytes) per 2-byte wire element (an
/// empty name, no tags). Not the 4 one might hope for: typed decoding amplifies dense arrays,
/// so a frame at the 100 MiB `socket.request.max.bytes` default can cost gigabytes (see
/// docs/fuzzing.md). This bound pins the amplification so that it cannot grow unnoticed.
const ALLOCATION_PER_FRAME_BYTE: usize = 40;
const ALLOCATION_CONSTANT_BYTES: usize = 16 << 10;

/// Decodes `body` (a frame without its size prefix) and returns the peak extra bytes.
fn decode_peak_bytes(body: &[u8]) -> usize {
    let frame = Bytes::copy_from_slice(body);
    peak_extra_bytes(move || {
        let _ = decode_request(frame);
    })
}

/// The largest allocation per frame byte seen (for the log) and every frame over the bound.
#[derive(Default)]
struct Worst {
    ratio: f64,
    description: String,
    failures: Vec<String>,
}

impl Worst {
    fn check(&mut self, body: &[u8], description: impl FnOnce() -> String) {
        let peak_bytes = decode_peak_bytes(body);
        let linear_bytes = peak_bytes.saturating_sub(ALLOCATION_CONSTANT_BYTES);
        let ratio = linear_bytes as f64 / body.len() as f64;
        if peak_bytes > allocation_bound_bytes(body.len()) && self.failures.len() < 20 {
            self.failures.push(format!("{}: {peak_bytes} bytes for {}", description(), body.len()));
        } else if ratio > self.ratio {
            self.ratio = ratio;
            self.description = format!("{}: {peak_bytes} bytes for {}", description(), body.len());
        }
    }

    fn assert_within_bound(&self) {
        assert!(self.failures.is_empty(), "over the bound:\n{}", self.failures.join("\n"));
        eprintln!("worst bytes per frame byte {:.1}: {}", self.ratio, self.description);
    }
}

fn recorded_frames() -> Vec<(String, Vec<u8>)> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/request_frame");
    let mut frames: Vec<(String, Vec<u8>)> = std::fs::read_dir(&directory)
        .expect("request_frame corpus")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            // The corpus holds whole frames; the decoder sees them without the size prefix.
            (name, std::fs::read(&path).expect("frame")[4..].to_vec())
        })
        .collect();
    frames.sort();
    assert!(!frames.is_empty());
    frames
}

/// Huge values as each encoding of a length: int16, int32, unsigned varint (2^31 and 2^32-1).
const HOSTILE_LENGTHS: [&[u8]; 4] = [
    &[0x7f, 0xff],
    &[0x7f, 0xff, 0xff, 0xff],
    &[0x80, 0x80, 0x80, 0x80, 0x08],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
];

#[test]
fn hostile_lengths_in_recorded_frames_allocate_in_proportion_to_the_frame() {
    let mut worst = Worst::default();
    for (name, frame) in recorded_frames() {
        for hostile in HOSTILE_LENGTHS {
            for position in 0..frame.len() {
                let mut body = frame.clone();
                let end = (position + hostile.len()).min(body.len());
                body[position..end].copy_from_slice(&hostile[..end - position]);
                worst.check(&body, || format!("{name} with {hostile:02x?} at {position}"));
            }
        }
    }
    worst.assert_within_bound();
}

/// Request header for `api_key` at `version`: fixed fields and a client id (header v1 and v2
/// both start it with an int16 length); v2's tagged fields are an empty varint count.
fn header(api_key: i16, version: i16, flexible: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&api_key.to_be_bytes());
    bytes.extend_from_slice(&version.to_be_bytes());
    bytes.extend_from_slice(&7i32.to_be_bytes());
    bytes.extend_from_slice(&(-1i16).to_be_bytes());
    if flexible {
        bytes.push(0);
    }
    bytes
}

#[test]
fn hostile_counts_for_every_api_and_version_allocate_in_proportion_to_the_frame() {
    let mut worst = Worst::default();
    for api in SUPPORTED_APIS {
        for version in api.min_version..=api.max_version {
            let flexible = api.key.request_header_version(version) >= 2;
            let header = header(api.key as i16, version, flexible);
            let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
            for hostile in HOSTILE_LENGTHS {
                for padding_bytes in [0usize, 64, 4096] {
                    let mut body = hostile.to_vec();
                    body.resize(hostile.len() + padding_bytes, 0);
                    bodies.push((format!("{hostile:02x?} then {padding_bytes} zeros"), body));
                }
            }
            // Dense arrays: a count of 4096 then minimal elements (zeros: empty strings,
            // zero counts), which is where per-element overhead is largest.
            for element_bytes in [1usize, 2, 4, 8] {
                let count: u32 = 4096;
                let mut body =
                    if flexible { varint(count + 1) } else { count.to_be_bytes().to_vec() };
                body.resize(body.len() + element_bytes * count as usize + 64, 0);
                bodies.push((format!("{count} elements of {element_bytes} zero bytes"), body));
            }
            for (description, body) in bodies {
                let mut frame = header.clone();
                frame.extend_from_slice(&body);
                worst.check(&frame, || format!("{:?} v{version}: {description}", api.key));
            }
            // A client id claiming 32767 bytes that are not there.
            let mut frame = header.clone();
            frame[8..10].copy_from_slice(&i16::MAX.to_be_bytes());
            worst.check(&frame, || format!("{:?} v{version}: huge client id", api.key));
        }
    }
    worst.assert_within_bound();
}

fn varint(mut value: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    while value >= 0x80 {
        bytes.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
    bytes
}

#[test]
fn the_counter_sees_a_reservation() {
    let peak_bytes =
        peak_extra_bytes(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(1 << 20))));
    assert!(peak_bytes >= 1 << 20, "{peak_bytes}");
}

#[test]
fn a_size_prefix_of_two_gibibytes_reserves_nothing() {
    for prefix in [i32::MAX, i32::MIN, 1 << 30, 100 << 20] {
        let mut buffer = BytesMut::from(&prefix.to_be_bytes()[..]);
        buffer.extend_from_slice(&[0u8; 60]);
        let mut decoder = FrameDecoder::default();
        let peak_bytes = peak_extra_bytes(|| {
            let _ = decoder.decode(&mut buffer);
        });
        assert!(peak_bytes < ALLOCATION_CONSTANT_BYTES, "prefix {prefix}: {peak_bytes} bytes");
    }
}
