//! InitProducerId: a fresh producer id (epoch 0) for idempotent producers.
//!
//! As Kafka's `TransactionCoordinator.handleInitProducerId` does for a null transactional id,
//! every call yields a NEW producer id with epoch 0, whatever `producer_id`/`producer_epoch`
//! (v3+, KIP-360) the client sends: the epoch bump of KIP-360 only applies to transactional
//! ids. Idempotent clients recover from a fenced or unknown state this way (librdkafka asks
//! again; the Java client bumps its epoch locally, which the partition state accepts).
//!
//! Transactions are not implemented: a request with a transactional id gets
//! COORDINATOR_NOT_AVAILABLE, what Kafka answers while it cannot serve transactional ids (its
//! transaction-state topic unavailable); clients retry until their own timeout
//! (`max.block.ms` for the Java client, the `init_transactions` timeout for librdkafka), then
//! fail. An empty transactional id gets INVALID_REQUEST, as in Kafka.

use std::rc::Rc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::config::CLUSTER_NODE_IDS_MAX;
use crate::broker::producer_ids::ProducerIdError;
use crate::broker::shard::Shard;
use crate::protocol::error_code::ErrorCode;

/// The shard that allocates producer ids (it owns the block file).
const ALLOCATOR_SHARD: usize = 0;

pub async fn handle(shard: &Rc<Shard>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let outcome = match request.transactional_id.as_deref().map(|id| id.as_str()) {
        Some("") => Err(ErrorCode::InvalidRequest),
        Some(transactional_id) => {
            tracing::info!(transactional_id, "InitProducerId: transactions are not supported");
            Err(ErrorCode::CoordinatorNotAvailable)
        }
        None => allocate(shard).await,
    };
    let response = InitProducerIdResponse::default();
    match outcome {
        Ok(producer_id) => {
            assert!(producer_id >= 0, "allocated producer ids are non-negative");
            response.with_producer_id(ProducerId(producer_id)).with_producer_epoch(0)
        }
        Err(code) => response
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

async fn allocate(shard: &Rc<Shard>) -> Result<i64, ErrorCode> {
    let allocated = shard
        .call_on(ALLOCATOR_SHARD, |allocator| async move {
            let data_dir = allocator.config.data_dir.clone();
            allocator.producer_ids.allocate(&allocator.disk, &data_dir).await
        })
        .await;
    match allocated {
        Some(Ok(local_id)) => in_cluster(shard, local_id),
        Some(Err(error)) => {
            tracing::error!(%error, "InitProducerId: cannot allocate a producer id");
            Err(match error {
                ProducerIdError::Io(_) | ProducerIdError::Corrupt => {
                    ErrorCode::CoordinatorLoadInProgress
                }
                ProducerIdError::Exhausted => ErrorCode::UnknownServerError,
            })
        }
        // Shard 0 is shutting down: the client retries elsewhere or later.
        None => Err(ErrorCode::CoordinatorNotAvailable),
    }
}

/// In a cluster every broker allocates from its own file: the node id in the low bits keeps
/// the ids of different brokers apart (node ids are below `CLUSTER_NODE_IDS_MAX`). Kafka's
/// controller hands out blocks instead; a replicated block record is the later design.
fn in_cluster(shard: &Shard, local_id: i64) -> Result<i64, ErrorCode> {
    let Some(cluster) = &shard.config.cluster else { return Ok(local_id) };
    let spread = local_id.checked_mul(i64::from(CLUSTER_NODE_IDS_MAX));
    let unique = spread.and_then(|spread| spread.checked_add(i64::from(cluster.node_id)));
    unique.ok_or(ErrorCode::UnknownServerError)
}
