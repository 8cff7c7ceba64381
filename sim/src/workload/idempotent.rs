//! Idempotent producers, as the Java client runs them with `enable.idempotence=true` and one
//! request in flight: a producer id from InitProducerId, a sequence number per partition, and
//! a batch whose outcome is unknown retried, byte for byte (same producer id, epoch and
//! sequence), until it is acknowledged or its delivery timeout passes.
//!
//! A send ends in one history operation however many attempts it took:
//! - `ok` with the offsets of the acknowledging attempt (a retry of an appended batch is
//!   answered with the original's offsets);
//! - `fail` only if every attempt was refused with an error that guarantees nothing was
//!   appended: one timed-out attempt makes the whole send indeterminate, whatever the later
//!   attempts answered;
//! - `info` otherwise, including KAFKA_STORAGE_ERROR (on a real disk part of a failed write
//!   may persist), OUT_OF_ORDER_SEQUENCE_NUMBER and UNKNOWN_PRODUCER_ID (the broker lost or
//!   never had the producer's earlier state: what happened to this batch is unknown).
//!
//! After a send that was not acknowledged, its sequence number is in doubt, so the producer
//! bumps its epoch locally and starts every partition at sequence 0 again (the Java client's
//! `bumpIdempotentEpochAndResetIdIfNeeded`, KIP-360); a fenced epoch (INVALID_PRODUCER_EPOCH)
//! or an exhausted one asks InitProducerId for a new producer id.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;

use super::{ensure_topic, next_send, start_delay, Router, PRODUCE_TIMEOUT, RETRY_BACKOFF};
use crate::client::{self, ProducerStamp};
use crate::history::{Body, Offset, Op, OpType, Partition, Process, Value};
use crate::run::{now_ns, run_state, RunState, TOPIC};

/// A send is retried until this much simulated time has passed since its first attempt
/// (the Java client's `delivery.timeout.ms`, scaled to the simulated workload).
const DELIVERY_TIMEOUT: Duration = Duration::from_millis(5_000);
/// Attempts per send at most (the delivery timeout ends them first in practice).
const ATTEMPTS_MAX: u32 = 100;
/// Upper bound on sends per producer in one run (a runaway loop is a harness bug).
const SENDS_PER_PRODUCER_MAX: u64 = 1_000_000;

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const UNKNOWN_PRODUCER_ID: i16 = 59;

/// The producer's identity and its next sequence number per partition.
struct Identity {
    producer_id: i64,
    epoch: i16,
    sequences: BTreeMap<Partition, i32>,
}

impl Identity {
    fn stamp(&self, partition: Partition) -> ProducerStamp {
        ProducerStamp {
            producer_id: self.producer_id,
            producer_epoch: self.epoch,
            base_sequence: self.sequences.get(&partition).copied().unwrap_or(0),
        }
    }
}

/// How a send ended.
enum Delivery {
    Acknowledged,
    /// Not acknowledged: the sequence is in doubt, bump the epoch.
    Abandoned,
    /// The epoch was fenced: a new producer id is needed.
    Fenced,
}

/// What one attempt's answer means for the send.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Retry the same batch.
    Retry,
    /// Stop retrying.
    GiveUp,
}

/// Error codes after which nothing of the attempt was appended.
fn attempt_not_appended(error_code: i16, cluster: bool) -> bool {
    // CORRUPT_MESSAGE, UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE,
    // NOT_LEADER_OR_FOLLOWER, MESSAGE_TOO_LARGE, INVALID_RECORD, and the sequence and epoch
    // refusals, which the broker answers before appending. In a cluster a leader also
    // answers NOT_LEADER_OR_FOLLOWER when a new leader cut the batch from its log, which a
    // follower may still hold and a later leader commit: not a refusal there.
    let refused = matches!(
        error_code,
        2 | 3
            | 5
            | 6
            | 10
            | 87
            | OUT_OF_ORDER_SEQUENCE_NUMBER
            | INVALID_PRODUCER_EPOCH
            | UNKNOWN_PRODUCER_ID
    );
    refused && !(cluster && error_code == 6)
}

/// The Java client's retriable errors that a produce can answer.
fn retriable(error_code: i16) -> bool {
    // CORRUPT_MESSAGE, UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE,
    // NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, NETWORK_EXCEPTION, NOT_ENOUGH_REPLICAS(_AFTER
    // _APPEND), KAFKA_STORAGE_ERROR.
    matches!(error_code, 2 | 3 | 5 | 6 | 7 | 13 | 19 | 20 | 56)
}

pub(super) async fn produce_loop(producer: u32) {
    let state = run_state();
    madsim::time::sleep(start_delay(producer, &state.plan)).await;
    let mut router = Router::new(format!("producer-{producer}"), &state);
    while !ensure_topic(&mut router, &state).await {
        if state.stop_producing.get() {
            break;
        }
    }
    let mut identity: Option<Identity> = None;
    let mut sequence: u64 = 0;
    while !state.stop_producing.get() {
        assert!(sequence < SENDS_PER_PRODUCER_MAX, "producer {producer} runaway");
        let Some(current) = identity.as_mut() else {
            identity = init(&mut router, &state).await;
            continue;
        };
        let (partition, values) = next_send(&state.plan, producer, &mut sequence);
        let count = values.len() as i32;
        match send(&mut router, &state, producer, current, partition, values).await {
            Delivery::Acknowledged => {
                *current.sequences.entry(partition).or_insert(0) += count;
            }
            Delivery::Abandoned if current.epoch < i16::MAX => {
                current.epoch += 1;
                current.sequences.clear();
                state.epoch_bumps.set(state.epoch_bumps.get() + 1);
                tracing::info!(producer, epoch = current.epoch, "idempotent producer bumps epoch");
            }
            Delivery::Abandoned | Delivery::Fenced => identity = None,
        }
        madsim::time::sleep(Duration::from_millis(state.plan.produce_interval_ms)).await;
    }
    drop(router);
    state.clients_running.set(state.clients_running.get() - 1);
}

/// InitProducerId: a new producer id at epoch 0, or `None` after a failed attempt. Any
/// broker of a cluster allocates producer ids.
async fn init(router: &mut Router, state: &RunState) -> Option<Identity> {
    let broker = router.any_broker();
    let connection = router.session(broker).connection(state).await?;
    match client::init_producer_id(connection, PRODUCE_TIMEOUT).await {
        Ok((0, producer_id, epoch)) if producer_id >= 0 && epoch >= 0 => {
            Some(Identity { producer_id, epoch, sequences: BTreeMap::new() })
        }
        Ok(_) => {
            madsim::time::sleep(RETRY_BACKOFF).await;
            None
        }
        Err(_) => {
            router.session(broker).fail();
            madsim::time::sleep(RETRY_BACKOFF).await;
            None
        }
    }
}

/// Why an attempt got no answer.
enum Unanswered {
    /// Not connected: this attempt never left, nothing to count.
    NotSent,
    /// Sent, and the connection failed or timed out: it may have been appended.
    Sent,
}

/// One produce attempt of `batch`: the broker's error code and base offset.
async fn attempt_once(
    router: &mut Router,
    state: &RunState,
    partition: Partition,
    batch: &Bytes,
) -> Result<(i16, Offset), Unanswered> {
    let Some(connection) = router.route(state, partition).await else {
        return Err(Unanswered::NotSent);
    };
    let call = client::produce(connection, TOPIC, partition, batch.clone(), PRODUCE_TIMEOUT);
    call.await.map_err(|_| Unanswered::Sent)
}

/// One send: invoke, attempts until acknowledged or given up, then ok / fail / info.
async fn send(
    router: &mut Router,
    state: &RunState,
    process: Process,
    identity: &Identity,
    partition: Partition,
    values: Vec<Value>,
) -> Delivery {
    let body = |offsets: Vec<Offset>, error_code: i16| Body::Send {
        partition,
        values: values.clone(),
        offsets,
        error_code,
    };
    let invoked_ns = now_ns();
    state.record(Op {
        process,
        op_type: OpType::Invoke,
        time_ns: invoked_ns,
        body: body(vec![], 0),
    });
    // Encoded once: every attempt sends the same bytes, as a retrying client does.
    let batch = client::encode_values(
        &values,
        state.plan.record_bytes,
        tern::io::unix_time_ms(),
        identity.stamp(partition),
    );
    let deadline_ns = invoked_ns + DELIVERY_TIMEOUT.as_nanos() as u64;
    let mut maybe_appended = false;
    let mut error_code = 0;
    for attempt in 1..=ATTEMPTS_MAX {
        let answer = match attempt_once(router, state, partition, &batch).await {
            Err(Unanswered::NotSent) => Answer::Retry,
            Ok((0, base_offset)) => {
                let offsets = (0..values.len() as i64).map(|index| base_offset + index).collect();
                state.produce_latencies_ns.borrow_mut().push(now_ns() - invoked_ns);
                let op =
                    Op { process, op_type: OpType::Ok, time_ns: now_ns(), body: body(offsets, 0) };
                state.record(op);
                return Delivery::Acknowledged;
            }
            Ok((code, _)) => {
                error_code = code;
                router.answered(partition, code);
                maybe_appended |= !attempt_not_appended(code, router.is_cluster());
                if retriable(code) {
                    Answer::Retry
                } else {
                    Answer::GiveUp
                }
            }
            Err(Unanswered::Sent) => {
                // Sent, and no answer: it may have been appended.
                router.failed(partition);
                maybe_appended = true;
                Answer::Retry
            }
        };
        if answer == Answer::GiveUp || now_ns() >= deadline_ns || attempt == ATTEMPTS_MAX {
            break;
        }
        tracing::info!(process, partition, attempt, error_code, "idempotent send retried");
        state.produce_retries.set(state.produce_retries.get() + 1);
        madsim::time::sleep(RETRY_BACKOFF).await;
    }
    let op_type = if maybe_appended { OpType::Info } else { OpType::Fail };
    state.record(Op { process, op_type, time_ns: now_ns(), body: body(vec![], error_code) });
    given_up(error_code).await
}

/// After a send that was not acknowledged: a pause, then whether the producer was fenced.
async fn given_up(error_code: i16) -> Delivery {
    madsim::time::sleep(RETRY_BACKOFF).await;
    if error_code == INVALID_PRODUCER_EPOCH {
        Delivery::Fenced
    } else {
        Delivery::Abandoned
    }
}
