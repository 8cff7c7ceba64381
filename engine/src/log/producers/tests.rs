//! The producer-state machine against a trivially correct model: a `Vec` of every accepted
//! batch, searched from scratch for each decision.

use proptest::prelude::*;

use super::*;
use crate::log::producer_snapshot;

/// One accepted batch, as the model keeps it.
#[derive(Debug, Clone, Copy)]
struct Accepted {
    batch: ProducerBatch,
    first_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Default)]
struct Model {
    accepted: Vec<Accepted>,
}

impl Model {
    fn decide(&self, batch: &ProducerBatch) -> Result<Decision, ProducerError> {
        let mine: Vec<&Accepted> =
            self.accepted.iter().filter(|a| a.batch.producer_id == batch.producer_id).collect();
        let Some(last) = mine.last() else { return Ok(Decision::Append) };
        let epoch = last.batch.epoch;
        let window: Vec<&&Accepted> =
            mine.iter().rev().take_while(|a| a.batch.epoch == epoch).take(5).collect();
        if batch.epoch == epoch {
            let last_sequence = batch.last_sequence();
            if let Some(original) = window.iter().find(|a| {
                a.batch.first_sequence == batch.first_sequence
                    && a.batch.last_sequence() == last_sequence
            }) {
                return Ok(Decision::Duplicate(meta_of(original)));
            }
        }
        let producer_id = batch.producer_id;
        if batch.epoch < epoch {
            return Err(ProducerError::StaleEpoch {
                producer_id,
                epoch: batch.epoch,
                current_epoch: epoch,
            });
        }
        let expected_next = if batch.epoch > epoch || last.batch.last_sequence() == i32::MAX {
            0
        } else {
            last.batch.last_sequence() + 1
        };
        if batch.first_sequence != expected_next {
            let last_sequence = if batch.epoch > epoch { -1 } else { last.batch.last_sequence() };
            let first_sequence = batch.first_sequence;
            return Err(ProducerError::OutOfOrder { producer_id, first_sequence, last_sequence });
        }
        Ok(Decision::Append)
    }

    fn next_offset(&self) -> i64 {
        self.accepted.last().map_or(0, |a| a.last_offset + 1)
    }
}

fn meta_of(accepted: &Accepted) -> BatchMeta {
    BatchMeta {
        first_sequence: accepted.batch.first_sequence,
        last_sequence: accepted.batch.last_sequence(),
        first_offset: accepted.first_offset,
        last_offset: accepted.last_offset,
        max_timestamp_ms: accepted.batch.max_timestamp_ms,
    }
}

/// One step of a client, resolved against the model so most steps are plausible.
#[derive(Debug, Clone, Copy)]
enum Step {
    Next { records_delta: i32 },
    Retry { back: usize },
    Gap { skip: i32 },
    BumpEpoch { first_sequence: i32 },
    StaleEpoch,
    NearWrap,
}

fn step() -> impl Strategy<Value = (i64, Step)> {
    let kind = prop_oneof![
        6 => (0..4i32).prop_map(|records_delta| Step::Next { records_delta }),
        4 => (0..8usize).prop_map(|back| Step::Retry { back }),
        1 => (1..4i32).prop_map(|skip| Step::Gap { skip }),
        1 => prop_oneof![Just(0), 1..3i32].prop_map(|first_sequence| {
            Step::BumpEpoch { first_sequence }
        }),
        1 => Just(Step::StaleEpoch),
        1 => Just(Step::NearWrap),
    ];
    (0..3i64, kind)
}

fn resolve(model: &Model, producer_id: i64, step: Step, clock_ms: i64) -> ProducerBatch {
    let mine: Vec<&Accepted> =
        model.accepted.iter().filter(|a| a.batch.producer_id == producer_id).collect();
    let (epoch, next) = mine.last().map_or((0, 0), |a| {
        let last = a.batch.last_sequence();
        (a.batch.epoch, if last == i32::MAX { 0 } else { last + 1 })
    });
    let fresh = |epoch, first_sequence, records_delta| ProducerBatch {
        producer_id,
        epoch,
        first_sequence,
        records_delta,
        max_timestamp_ms: clock_ms,
    };
    match step {
        Step::Next { records_delta } => fresh(epoch, next, records_delta),
        Step::Retry { back } => match mine.iter().rev().nth(back) {
            Some(original) => original.batch,
            None => fresh(epoch, next, 0),
        },
        Step::Gap { skip } => fresh(epoch, next.saturating_add(skip), 0),
        Step::BumpEpoch { first_sequence } => fresh(epoch + 1, first_sequence, 1),
        Step::StaleEpoch => fresh(epoch - 1, next, 0),
        Step::NearWrap => fresh(epoch, i32::MAX - 1, 2),
    }
}

fn replay(model: &Model) -> ProducerStates {
    let mut states = ProducerStates::default();
    for accepted in &model.accepted {
        states.apply(&accepted.batch, accepted.first_offset, accepted.last_offset);
    }
    states
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decisions_match_the_model(steps in proptest::collection::vec(step(), 1..120)) {
        let mut model = Model::default();
        let mut states = ProducerStates::default();
        for (index, (producer_id, step)) in steps.into_iter().enumerate() {
            let batch = resolve(&model, producer_id, step, index as i64);
            let expected = model.decide(&batch);
            prop_assert_eq!(states.check(&batch), expected, "step {} {:?}", index, batch);
            if expected == Ok(Decision::Append) {
                let first_offset = model.next_offset();
                let last_offset = first_offset + i64::from(batch.records_delta);
                states.apply(&batch, first_offset, last_offset);
                model.accepted.push(Accepted { batch, first_offset, last_offset });
            }
        }
        // The state is a function of the log: replaying the accepted batches rebuilds it.
        prop_assert_eq!(&replay(&model), &states);
        let offset = model.next_offset();
        let bytes = producer_snapshot::encode(&states, offset);
        prop_assert_eq!(producer_snapshot::decode(&bytes), Some((offset, states.clone())));
    }

    #[test]
    fn a_damaged_snapshot_is_rejected(flip in 0usize..10_000, bit in 0u8..8, cut in 0usize..64) {
        let mut states = ProducerStates::default();
        for producer_id in 0..3 {
            for sequence in 0..7 {
                let batch = ProducerBatch {
                    producer_id,
                    epoch: 1,
                    first_sequence: sequence,
                    records_delta: 0,
                    max_timestamp_ms: 5,
                };
                let offset = producer_id * 100 + i64::from(sequence);
                states.apply(&batch, offset, offset);
            }
        }
        let bytes = producer_snapshot::encode(&states, 1000);
        let mut flipped = bytes.clone();
        let position = flip % flipped.len();
        flipped[position] ^= 1 << bit;
        prop_assert_eq!(producer_snapshot::decode(&flipped), None);
        let truncated = &bytes[..bytes.len().saturating_sub(cut + 1)];
        prop_assert_eq!(producer_snapshot::decode(truncated), None);
    }
}

fn batch(producer_id: i64, epoch: i16, first_sequence: i32, records_delta: i32) -> ProducerBatch {
    ProducerBatch { producer_id, epoch, first_sequence, records_delta, max_timestamp_ms: 0 }
}

#[test]
fn only_the_last_five_batches_are_recognised_as_duplicates() {
    let mut states = ProducerStates::default();
    for sequence in 0..6 {
        states.apply(&batch(7, 0, sequence, 0), i64::from(sequence), i64::from(sequence));
    }
    assert_eq!(
        states.check(&batch(7, 0, 0, 0)),
        Err(ProducerError::OutOfOrder { producer_id: 7, first_sequence: 0, last_sequence: 5 })
    );
    let Ok(Decision::Duplicate(meta)) = states.check(&batch(7, 0, 1, 0)) else { panic!() };
    assert_eq!((meta.first_offset, meta.last_offset), (1, 1));
}

#[test]
fn sequences_wrap_at_i32_max() {
    let wrapping = batch(1, 0, i32::MAX - 1, 3);
    assert_eq!(wrapping.last_sequence(), 1);
    let mut states = ProducerStates::default();
    states.apply(&batch(1, 0, i32::MAX - 1, 1), 0, 1);
    assert_eq!(states.check(&batch(1, 0, 0, 0)), Ok(Decision::Append));
    assert!(states.check(&batch(1, 0, 1, 0)).is_err());
}

#[test]
fn unknown_producers_are_accepted_at_any_sequence_and_new_epochs_start_at_zero() {
    let mut states = ProducerStates::default();
    assert_eq!(states.check(&batch(3, 4, 99, 0)), Ok(Decision::Append));
    states.apply(&batch(3, 4, 99, 0), 0, 0);
    assert!(matches!(states.check(&batch(3, 3, 100, 0)), Err(ProducerError::StaleEpoch { .. })));
    assert!(matches!(states.check(&batch(3, 5, 1, 0)), Err(ProducerError::OutOfOrder { .. })));
    assert_eq!(states.check(&batch(3, 5, 0, 0)), Ok(Decision::Append));
}

#[test]
fn expiry_and_the_producer_bound_keep_the_table_small() {
    let mut states = ProducerStates::default();
    for producer_id in 0..PRODUCERS_MAX as i64 + 10 {
        let mut fresh = batch(producer_id, 0, 0, 0);
        fresh.max_timestamp_ms = producer_id;
        states.apply(&fresh, producer_id, producer_id);
    }
    assert_eq!(states.len(), PRODUCERS_MAX);
    assert!(states.get(0).is_none() && states.get(PRODUCERS_MAX as i64 + 9).is_some());
    let expired = states.expire(PRODUCERS_MAX as i64 + 9, 5);
    assert_eq!(states.len(), 5);
    assert_eq!(expired, PRODUCERS_MAX - 5);
}
