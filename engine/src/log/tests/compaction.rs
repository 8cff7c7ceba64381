//! Log compaction against a trivially correct model: random appends of keyed records (few
//! keys, tombstones, compressed batches) across segments, then a cleaning; reading the whole
//! log must give exactly the model's records with their original offsets. And a crash at every
//! durable step of a cleaning leaves the log equal to either the before or the after.

use proptest::prelude::*;

use super::*;
use crate::io::{block_on, CrashMode};
use crate::log::compaction::Hooks;
use crate::log::{CleanOutcome, CompactionConfig, LogError};
use crate::record_batch::rewrite::{self, recompressed};
use crate::record_batch::Compression;

/// (key, value) of one record; `None` key = keyless, `None` value = tombstone.
type Entry = (Option<u8>, Option<u16>);
/// What a reader sees of one record.
type Seen = (i64, Option<Vec<u8>>, Option<Vec<u8>>, i64);

const NOW_MS: i64 = 1_000_000;

fn config(delete_retention_ms: i64, key_map_budget_bytes: usize) -> LogConfig {
    LogConfig {
        compaction: CompactionConfig {
            enabled: true,
            delete_retention_ms,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio_ppm: 0,
            key_map_budget_bytes,
        },
        ..small_config()
    }
}

fn key_bytes(key: u8) -> Vec<u8> {
    format!("key-{key}").into_bytes()
}

fn keyed_batch(entries: &[Entry], timestamp_ms: i64, codec: Compression) -> BytesMut {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(index, (key, value))| Record {
            key: key.map(key_bytes),
            value: value.map(|value| format!("value-{value}-{}", "x".repeat(40)).into_bytes()),
            timestamp_delta: index as i64,
            ..Record::default()
        })
        .collect();
    let plain = encode_batch(&records, timestamp_ms, ProducerStamp::NONE);
    BytesMut::from(&recompressed(&plain, codec)[..])
}

/// Every record of the log, decoded, in offset order.
async fn records(log: &Log) -> Vec<Seen> {
    let mut seen = Vec::new();
    for (_, batch) in read_all(log, log.log_start_offset(), 4096).await {
        let decoded = rewrite::decode(&batch).expect("served batches decode");
        for record in &decoded.records {
            let key = decoded.key(record).map(<[u8]>::to_vec);
            let value = decoded.value(record).map(<[u8]>::to_vec);
            seen.push((decoded.offset(record), key, value, decoded.timestamp_ms(record)));
        }
    }
    assert!(seen.windows(2).all(|pair| pair[0].0 < pair[1].0), "offsets increase");
    seen
}

/// The model: below `end`, a record survives iff it has a key, no later record below `end`
/// has that key, and it is not a tombstone older than `horizon_ms`. The rest is untouched.
fn model(before: &[Seen], end: i64, horizon_ms: i64) -> Vec<Seen> {
    let superseded = |index: usize| {
        let (_, key, _, _) = &before[index];
        before[index + 1..].iter().any(|(offset, later, _, _)| *offset < end && later == key)
    };
    before
        .iter()
        .enumerate()
        .filter(|(index, (offset, key, value, timestamp_ms))| {
            *offset >= end
                || (key.is_some()
                    && !superseded(*index)
                    && !(value.is_none() && *timestamp_ms < horizon_ms))
        })
        .map(|(_, seen)| seen.clone())
        .collect()
}

fn codec_of(choice: u8) -> Compression {
    match choice % 8 {
        0 => Compression::Gzip,
        1 => Compression::Snappy,
        2 => Compression::Lz4,
        3 => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Appends every batch (batch `i` stamped `i * 1000`), rolls, and waits until every segment
/// but the new active one is sealed and checkpointed (what makes them cleanable).
async fn fill(log: &Log, batches: &[(Vec<Entry>, u8)]) {
    for (index, (entries, codec)) in batches.iter().enumerate() {
        let batch = keyed_batch(entries, index as i64 * 1000, codec_of(*codec));
        log.append(vec![batch], 1).await.expect("append");
    }
    log.maybe_roll(NOW_MS).await.expect("roll");
    let tail = keyed_batch(&[(Some(0), Some(0))], NOW_MS, Compression::None);
    log.append(vec![tail], 1).await.expect("append");
    // The flusher persists the sealed segments' indexes and the checkpoint after the ack.
    for _ in 0..100 {
        let checkpointed = {
            let state = log.shared.state.borrow();
            state.checkpointed.segment_base_offset == state.active().base_offset
        };
        if checkpointed {
            return;
        }
        crate::io::yield_now().await;
    }
    panic!("the checkpoint never reached the active segment");
}

fn entries() -> impl Strategy<Value = Vec<(Vec<Entry>, u8)>> {
    let entry = (prop::option::weighted(0.97, 0u8..6), prop::option::weighted(0.8, 0u16..1000));
    prop::collection::vec((prop::collection::vec(entry, 1..6), any::<u8>()), 1..40)
}

async fn compact(log: &Log, hooks: &mut Hooks) -> CleanOutcome {
    log.compact_with(NOW_MS, hooks).await.expect("compact")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn compaction_keeps_exactly_the_latest_record_per_key(
        batches in entries(),
        delete_retention_ms in prop_oneof![Just(0i64), 0..NOW_MS],
        key_map_budget_bytes in prop_oneof![Just(1usize << 20), 150usize..1000],
    ) {
        block_on(async move {
            let (_sim, disk) = sim(1);
            let config = config(delete_retention_ms, key_map_budget_bytes);
            let log = open(&disk, &config).await;
            fill(&log, &batches).await;
            let before = records(&log).await;
            let batches_before = read_all(&log, 0, 4096).await;
            let (start, end) = (log.log_start_offset(), log.log_end_offset());
            let outcome = compact(&log, &mut Hooks::default()).await;
            let horizon_ms = NOW_MS - delete_retention_ms;
            let expected = model(&before, outcome.cleaned_up_to_offset, horizon_ms);
            assert_eq!(records(&log).await, expected);
            // Batches from the cleaning boundary on are byte for byte what was appended.
            let boundary = outcome.cleaned_up_to_offset;
            let untouched = |batches: Vec<(i64, Vec<u8>)>| -> Vec<(i64, Vec<u8>)> {
                batches.into_iter().filter(|(base, _)| *base >= boundary).collect()
            };
            let batches_after = read_all(&log, 0, 4096).await;
            assert_eq!(untouched(batches_after), untouched(batches_before));
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, end));
            // Again (the map now starts where the last one ended), then after a reopen.
            let outcome = compact(&log, &mut Hooks::default()).await;
            let expected = model(&expected, outcome.cleaned_up_to_offset, horizon_ms);
            assert_eq!(records(&log).await, expected);
            log.close().await.expect("close");
            let log = open(&disk, &config).await;
            assert_eq!(records(&log).await, expected);
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, end));
        });
    }

    #[test]
    fn a_crash_at_any_step_of_a_cleaning_leaves_the_before_or_the_after(
        batches in entries(),
        torn in any::<bool>(),
    ) {
        block_on(async move {
            let config = config(NOW_MS / 2, 1 << 20);
            let (_sim, disk) = sim(2);
            let log = open(&disk, &config).await;
            fill(&log, &batches).await;
            let before = records(&log).await;
            let outcome = compact(&log, &mut Hooks::default()).await;
            let after = records(&log).await;
            // Each round stops one durable step later, until a cleaning runs to its end.
            for stop in 1..=64 {
                let (sim, disk) = sim(3 + u64::from(stop));
                let log = open(&disk, &config).await;
                fill(&log, &batches).await;
                let mut hooks = Hooks { stop_after_steps: Some(stop), steps: 0 };
                compact(&log, &mut hooks).await;
                let stopped = hooks.steps >= stop;
                drop(log);
                sim.crash(if torn { CrashMode::Torn } else { CrashMode::DropUnsynced });
                let log = open(&disk, &config).await;
                let seen = records(&log).await;
                let single_group = outcome.segments_swapped <= 1;
                assert!(
                    seen == before || seen == after || !single_group,
                    "stop after {stop}: neither before nor after"
                );
                // Groups are swapped oldest first: any mix is a compacted prefix.
                assert_eq!(model(&seen, outcome.cleaned_up_to_offset, NOW_MS / 2), after);
                let again = compact(&log, &mut Hooks::default()).await;
                let expected = model(&seen, again.cleaned_up_to_offset, NOW_MS / 2);
                assert_eq!(records(&log).await, expected);
                if !stopped {
                    return;
                }
            }
            panic!("the cleaning never finished");
        });
    }
}

#[test]
fn compaction_frees_space_and_leaves_fillers_where_whole_batches_went() {
    block_on(async {
        let (_sim, disk) = sim(9);
        let log = open(&disk, &config(0, 1 << 20)).await;
        let batches: Vec<(Vec<Entry>, u8)> =
            (0..60).map(|index| (vec![(Some(index % 3), Some(index as u16))], 7)).collect();
        fill(&log, &batches).await;
        let outcome = compact(&log, &mut Hooks::default()).await;
        assert!(outcome.segments_swapped > 0 && outcome.bytes_after < outcome.bytes_before);
        let seen = records(&log).await;
        let keys: Vec<_> = seen.iter().map(|(offset, key, _, _)| (*offset, key.clone())).collect();
        let expected = vec![
            (57, Some(key_bytes(0))),
            (58, Some(key_bytes(1))),
            (59, Some(key_bytes(2))),
            (60, Some(key_bytes(0))),
        ];
        assert_eq!(keys, expected);
        // A fetch inside a removed span still answers with a whole (filler) batch.
        let read = log.read(10, 1, true).await.expect("read");
        let first = split(&read.bytes)[0].1.clone();
        let info = check_framing_and_crc(&first).expect("valid");
        assert!(info.base_offset <= 10 && info.last_offset() >= 10 && info.records_count == 0);
    });
}

/// What fetches serve (kafka-go's Reader re-fetched one offset for ever when an answer held
/// only a filler): a read inside a removed span starts at the next batch with records, and a
/// read never carries a filler behind other batches.
#[test]
fn reads_for_clients_step_over_fillers() {
    block_on(async {
        let (_sim, disk) = sim(11);
        let log = open(&disk, &config(0, 1 << 20)).await;
        let batches: Vec<(Vec<Entry>, u8)> =
            (0..60).map(|index| (vec![(Some(index % 3), Some(index as u16))], 7)).collect();
        fill(&log, &batches).await;
        assert!(compact(&log, &mut Hooks::default()).await.segments_swapped > 0);
        for (offset, max_bytes) in [(0, 1), (10, 1), (10, 1 << 20), (56, 1 << 20)] {
            let read = log.read_skipping_fillers(offset, max_bytes, true).await.expect("read");
            let batches = split(&read.bytes);
            assert!(!batches.is_empty(), "records remain after offset {offset}");
            for (_, batch) in &batches {
                let info = check_framing_and_crc(batch).expect("valid");
                assert!(info.records_count > 0, "a filler served from offset {offset}");
            }
            let first = check_framing_and_crc(&batches[0].1).expect("valid");
            assert_eq!(first.base_offset, 57, "the first batch with records after {offset}");
        }
    });
}

#[test]
fn the_lag_and_the_dirty_ratio_decide_when_to_clean() {
    block_on(async {
        let (_sim, disk) = sim(10);
        let mut config = config(0, 1 << 20);
        config.compaction.min_compaction_lag_ms = NOW_MS;
        let log = open(&disk, &config).await;
        let batches: Vec<(Vec<Entry>, u8)> =
            (0..40).map(|index| (vec![(Some(index % 2), Some(index as u16))], 4)).collect();
        fill(&log, &batches).await;
        // Every segment holds records newer than NOW_MS - lag: none is cleanable.
        assert_eq!(compact(&log, &mut Hooks::default()).await, CleanOutcome::default());
        log.close().await.expect("close");
        config.compaction.min_compaction_lag_ms = 0;
        config.compaction.min_cleanable_dirty_ratio_ppm = 1_000_000;
        let log = open(&disk, &config).await;
        let first = compact(&log, &mut Hooks::default()).await;
        assert!(first.segments_swapped > 0);
        // Everything cleanable is clean now: a ratio of 1 waits for new dirty segments.
        assert_eq!(compact(&log, &mut Hooks::default()).await, CleanOutcome::default());
    });
}

#[test]
fn a_corrupt_batch_stops_the_cleaning_and_is_never_rewritten() {
    block_on(async {
        let (sim, disk) = sim(11);
        let config = config(0, 1 << 20);
        let log = open(&disk, &config).await;
        let batches: Vec<(Vec<Entry>, u8)> =
            (0..40).map(|index| (vec![(Some(index % 2), Some(index as u16))], 4)).collect();
        fill(&log, &batches).await;
        log.close().await.expect("close");
        // A bit flip inside the first batch's records, behind a clean checkpoint.
        sim.corrupt_durable(&segment_log_path(0), 70, 3);
        let log = open(&disk, &config).await;
        let error = log.compact_with(NOW_MS, &mut Hooks::default()).await;
        assert!(matches!(error, Err(LogError::Corrupt { offset: 0 })), "{error:?}");
        assert_eq!(segment_bases(&disk, &dir())[0], 0);
        let leftovers = disk.list_dir(&dir()).expect("list");
        assert!(leftovers.iter().all(|name| !name.ends_with(".cleaned")), "{leftovers:?}");
    });
}

#[test]
fn appends_and_reads_go_on_while_a_cleaning_runs() {
    block_on(async {
        let (_sim, disk) = sim(12);
        let log = open(&disk, &config(0, 1 << 20)).await;
        let batches: Vec<(Vec<Entry>, u8)> =
            (0..80).map(|index| (vec![(Some(index % 4), Some(index as u16))], index)).collect();
        fill(&log, &batches).await;
        let before = records(&log).await;
        let end_before = log.log_end_offset();
        let done = std::cell::Cell::new(false);
        let cleaner = async {
            let outcome = compact(&log, &mut Hooks::default()).await;
            done.set(true);
            outcome
        };
        // Appends (each read back at once) until the cleaning ends.
        let writer = async {
            let (mut appended, mut saw_partial) = (0u16, false);
            while !done.get() && appended < 1000 {
                let entries = [(Some(9), Some(appended))];
                let timestamp_ms = NOW_MS + i64::from(appended);
                let batch = keyed_batch(&entries, timestamp_ms, Compression::Lz4);
                let append = log.append(vec![batch], 1);
                append.await.expect("append during a cleaning");
                appended += 1;
                let seen = records(&log).await;
                saw_partial |= seen.len() != before.len() + usize::from(appended) && !done.get();
            }
            (appended, saw_partial)
        };
        let (outcome, (appended, saw_partial)) = futures_util::future::join(cleaner, writer).await;
        assert!(outcome.segments_swapped > 1, "{outcome:?}");
        assert!(appended > 1 && saw_partial, "{appended} appends, partial seen: {saw_partial}");
        let mut expected = model(&before, outcome.cleaned_up_to_offset, NOW_MS);
        let after = records(&log).await;
        let tail: Vec<Seen> = after.iter().filter(|seen| seen.0 >= end_before).cloned().collect();
        assert_eq!(tail.len(), usize::from(appended));
        expected.extend(tail);
        assert_eq!(after, expected);
    });
}

#[test]
fn a_producers_last_batch_survives_emptied_as_kafka_keeps_it() {
    block_on(async {
        let (_sim, disk) = sim(13);
        let log = open(&disk, &config(0, 1 << 20)).await;
        // Producers 7 and 8 write keys 0..3 in turn; later plain batches supersede them all.
        for sequence in 0..12 {
            let producer_id = 7 + i64::from(sequence % 2);
            let record = Record {
                key: Some(key_bytes((sequence % 3) as u8)),
                value: Some(vec![1; 100]),
                ..Record::default()
            };
            // Each producer counts its own sequences (the log checks them).
            let stamp =
                ProducerStamp { producer_id, producer_epoch: 0, base_sequence: sequence / 2 };
            let batch = BytesMut::from(&encode_batch(&[record], 0, stamp)[..]);
            log.append(vec![batch], 1).await.expect("append");
        }
        let batches: Vec<(Vec<Entry>, u8)> =
            (0..30).map(|index| (vec![(Some(index % 3), Some(index as u16))], 4)).collect();
        fill(&log, &batches).await;
        compact(&log, &mut Hooks::default()).await;
        let mut emptied = Vec::new();
        for (_, batch) in read_all(&log, 0, 4096).await {
            let info = check_framing_and_crc(&batch).expect("valid");
            if info.producer_id >= 0 {
                assert_eq!(info.records_count, 0, "superseded records are gone");
                emptied.push((info.producer_id, info.base_sequence, info.base_offset));
            }
        }
        // (producer, its last sequence, the offset of its last batch)
        assert_eq!(emptied, vec![(7, 5, 10), (8, 5, 11)]);
    });
}
