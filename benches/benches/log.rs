//! The log's hot paths: offset-index lookup, and the append path (offset assignment, patch,
//! group commit) on the in-memory simulated disk (CPU cost only) and on the real disk through
//! io_uring with fdatasync (what a producer waits for).

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tern::io::{self, Disk, SimDisk};
use tern::log::offset_index::OffsetIndex;
use tern::log::{Log, LogConfig};
use tern::record_batch::build::{encode_batch, ProducerStamp, Record};

fn index_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("offset_index_lookup");
    for entries in [1_000u32, 100_000] {
        let mut index = OffsetIndex::new(4096);
        for entry in 0..entries {
            index.on_batch(entry * 10, entry * 4096, 4096);
        }
        group.bench_with_input(BenchmarkId::from_parameter(entries), &index, |b, index| {
            let mut probe = 0u32;
            b.iter(|| {
                probe = probe.wrapping_add(7_919) % (entries * 10);
                index.lookup(probe)
            })
        });
    }
    group.finish();
}

fn batch(records: usize, record_size_bytes: usize) -> BytesMut {
    let record = Record { value: Some(vec![7; record_size_bytes]), ..Record::default() };
    BytesMut::from(&encode_batch(&vec![record; records], 0, ProducerStamp::NONE)[..])
}

/// Appends `appends` batches concurrently (they share group commits) and waits for all.
async fn append_many(log: &Log, template: &BytesMut, appends: usize) {
    let pending: Vec<_> = (0..appends).map(|_| log.append(vec![template.clone()], 0)).collect();
    for result in futures_util::future::join_all(pending).await {
        result.expect("append");
    }
}

fn append(c: &mut Criterion) {
    const APPENDS: usize = 64;
    let mut group = c.benchmark_group("append_64_concurrent_batches_of_16x1KiB");
    let template = batch(16, 1024);
    group.throughput(Throughput::Bytes((template.len() * APPENDS) as u64));
    group.sample_size(20);
    let scratch = std::env::temp_dir().join(format!("tern-bench-{}", std::process::id()));
    type DiskFactory = Box<dyn Fn() -> Disk>;
    let disks: [(&str, DiskFactory); 2] = [
        ("simulated_disk", Box::new(|| Disk::Simulated(SimDisk::new(1)))),
        ("os_disk_fdatasync", Box::new(|| Disk::Os)),
    ];
    for (name, make_disk) in disks {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let _ = std::fs::remove_dir_all(&scratch);
                io::block_on(async {
                    let log = Log::open(make_disk(), scratch.join("p-0"), LogConfig::default())
                        .await
                        .expect("open log");
                    let started = std::time::Instant::now();
                    for _ in 0..iterations {
                        append_many(&log, &template, APPENDS).await;
                    }
                    let elapsed = started.elapsed();
                    log.close().await.expect("close");
                    elapsed
                })
            })
        });
    }
    let _ = std::fs::remove_dir_all(&scratch);
    group.finish();
}

criterion_group!(benches, index_lookup, append);
criterion_main!(benches);
