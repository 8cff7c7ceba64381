//! Batch validation (framing, CRC32C, record walk) of the produce hot path.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tern::record_batch::build::{encode_batch, ProducerStamp, Record};
use tern::record_batch::validate_produced_batch;

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_produced_batch");
    for (record_size_bytes, records) in [(100usize, 160usize), (1024, 16), (65536, 1)] {
        let record = Record { value: Some(vec![7; record_size_bytes]), ..Record::default() };
        let batch = encode_batch(&vec![record; records], 0, ProducerStamp::NONE);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(record_size_bytes),
            &batch,
            |b, batch| b.iter(|| validate_produced_batch(batch).unwrap()),
        );
    }
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
