//! Model test: random appends, reads, rolls, retention and reopens against a `Vec` of batches.

use proptest::prelude::*;

use super::*;
use crate::io::block_on;

#[derive(Debug, Clone)]
enum Op {
    /// Batches of (records, value bytes).
    Append(Vec<(usize, usize)>),
    Read {
        pick: prop::sample::Index,
        max_bytes: usize,
        min_one_batch: bool,
    },
    Roll,
    Retention,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((1usize..5, 0usize..300), 1..4).prop_map(Op::Append),
        4 => (any::<prop::sample::Index>(), 0usize..3000, any::<bool>()).prop_map(
            |(pick, max_bytes, min_one_batch)| Op::Read { pick, max_bytes, min_one_batch }
        ),
        1 => Just(Op::Roll),
        1 => Just(Op::Retention),
        1 => Just(Op::Reopen),
    ]
}

struct Model {
    batches: Vec<(i64, Vec<u8>)>,
    end_offset: i64,
    clock_ms: i64,
}

impl Model {
    fn start_offset(&self, log: &Log) -> i64 {
        log.log_start_offset()
    }
}

async fn append(log: &Log, model: &mut Model, shapes: &[(usize, usize)]) {
    let batches: Vec<BytesMut> = shapes
        .iter()
        .map(|&(records, value_bytes)| {
            model.clock_ms += 1;
            batch(records, value_bytes, model.clock_ms)
        })
        .collect();
    let info = log.append(batches.clone(), 3).await.expect("append");
    assert_eq!(info.base_offset, model.end_offset);
    let mut offset = info.base_offset;
    for (bytes, &(records, _)) in batches.iter().zip(shapes) {
        model.batches.push((offset, patched(bytes, offset, 3)));
        offset += records as i64;
    }
    model.end_offset = offset;
    assert_eq!(info.last_offset, offset - 1);
}

async fn read(
    log: &Log,
    model: &Model,
    pick: prop::sample::Index,
    max_bytes: usize,
    min_one: bool,
) {
    let start = model.start_offset(log);
    let span = (model.end_offset - start + 1) as usize;
    let offset = start + pick.index(span) as i64;
    let read = log.read(offset, max_bytes, min_one).await.expect("read in range");
    assert_eq!(read.high_watermark, model.end_offset);
    // The planned read Fetch streams serves the same bytes, whatever its chunk size.
    let chunk_bytes = 1 + pick.index(4096);
    let (streamed, next_offset) = read_streamed(log, offset, max_bytes, min_one, chunk_bytes).await;
    assert_eq!((&streamed[..], next_offset), (&read.bytes[..], read.next_offset));
    let got = split(&read.bytes);
    if offset == model.end_offset {
        assert!(got.is_empty());
        return;
    }
    let first = model.batches.partition_point(|(base, _)| *base <= offset) - 1;
    let first_size = model.batches[first].1.len();
    if got.is_empty() {
        assert!(!min_one && first_size > max_bytes, "empty read at {offset}");
        return;
    }
    assert_eq!(got[..], model.batches[first..first + got.len()]);
    let total: usize = got.iter().map(|(_, bytes)| bytes.len()).sum();
    assert!(total <= max_bytes || (got.len() == 1 && min_one));
}

async fn retention(log: &Log, model: &mut Model) {
    let before = log.log_start_offset();
    log.apply_retention(0).await.expect("retention");
    let start = log.log_start_offset();
    assert!(start >= before && start <= model.end_offset);
    model.batches.retain(|(base, _)| *base >= start);
    if let Some((first, _)) = model.batches.first() {
        assert_eq!(*first, start, "log start is a batch boundary");
    }
}

fn run(ops: Vec<Op>, retention_size_bytes: i64, seed: u64) {
    block_on(async {
        let (_sim, disk) = sim(seed);
        let config = LogConfig { retention_size_bytes, ..small_config() };
        let mut log = open(&disk, &config).await;
        let mut model = Model { batches: Vec::new(), end_offset: 0, clock_ms: 1_000_000 };
        for op in ops {
            match op {
                Op::Append(shapes) => append(&log, &mut model, &shapes).await,
                Op::Read { pick, max_bytes, min_one_batch } => {
                    read(&log, &model, pick, max_bytes, min_one_batch).await
                }
                Op::Roll => log.maybe_roll(model.clock_ms + 10_000).await.expect("roll"),
                Op::Retention => retention(&log, &mut model).await,
                Op::Reopen => {
                    log.close().await.expect("close");
                    log = open(&disk, &config).await;
                }
            }
            assert_eq!(log.high_watermark(), model.end_offset);
            assert_eq!(log.log_end_offset(), model.end_offset);
            log.shared.state.borrow().check_invariants();
        }
        let start = log.log_start_offset();
        assert_eq!(read_all(&log, start, 700).await, model.batches);
        assert_eq!(log.health().corrupt_from, None);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_a_vec_model(
        ops in prop::collection::vec(op(), 1..60),
        retention_size_bytes in prop_oneof![Just(-1i64), 0i64..6000],
        seed in any::<u64>(),
    ) {
        run(ops, retention_size_bytes, seed);
    }
}
