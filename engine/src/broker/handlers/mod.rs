//! One handler per Kafka API. Each takes the decoded request and returns the response body;
//! the connection encodes it at the request's version.
//!
//! Handlers run on the shard that accepted the connection. Partition work goes to the owning
//! shard through [`Shard::call_on`]; metadata is read from the shard's topic snapshot.

mod admin;
mod api_versions;
mod configs;
mod delete_records;
mod describe;
mod elect_leaders;
pub mod fetch;
mod groups;
mod init_producer_id;
mod leader_epoch;
mod list_offsets;
mod metadata;
pub(crate) mod offsets;
mod partitions;
mod produce;

use std::rc::Rc;

use kafka_protocol::protocol::StrBytes;

use crate::protocol::request::{DecodedRequest, Request, RequestMeta};
use crate::protocol::response::Response;

use super::shard::Shard;

pub use admin::{create_topics_on_controller, NewTopic};

/// A handler's answer: a response body, or a Fetch answer whose record data is sent from
/// where it lives (`fetch::FetchAnswer`).
pub enum Answer {
    Response(Response),
    Fetch(fetch::FetchAnswer),
}

/// Answers one request. `None` means no response is sent (Produce with acks=0).
pub async fn handle(
    shard: Rc<Shard>,
    request: DecodedRequest,
    peer: std::net::SocketAddr,
) -> Option<Answer> {
    let version = request.header.api_version;
    match request.body {
        Request::Fetch(body) => Some(Answer::Fetch(fetch::handle(&shard, body, version).await)),
        body => {
            let request = DecodedRequest { header: request.header, body };
            respond(shard, request, peer).await.map(Answer::Response)
        }
    }
}

async fn respond(
    shard: Rc<Shard>,
    request: DecodedRequest,
    peer: std::net::SocketAddr,
) -> Option<Response> {
    let version = request.header.api_version;
    let response = match request.body {
        Request::ApiVersions(_) => Response::ApiVersions(api_versions::handle(version)),
        Request::Metadata(body) => {
            Response::Metadata(metadata::handle(&shard, body, version).await)
        }
        Request::Produce(body) => {
            return produce::handle(&shard, body, version).await.map(Response::Produce)
        }
        Request::Fetch(_) => unreachable!("fetch is answered by `handle`"),
        Request::ListOffsets(body) => {
            Response::ListOffsets(list_offsets::handle(&shard, body, version).await)
        }
        Request::InitProducerId(body) => {
            Response::InitProducerId(init_producer_id::handle(&shard, body).await)
        }
        Request::DescribeConfigs(body) => {
            Response::DescribeConfigs(describe::describe_configs(&shard, body))
        }
        Request::DescribeCluster(body) => {
            Response::DescribeCluster(describe::describe_cluster(&shard, body).await)
        }
        Request::FindCoordinator(body) => {
            Response::FindCoordinator(groups::find_coordinator(&shard, body).await)
        }
        Request::JoinGroup(body) => {
            let client_id = request.header.client_id.unwrap_or_default();
            Response::JoinGroup(groups::join_group(&shard, body, version, client_id, peer).await)
        }
        Request::SyncGroup(body) => Response::SyncGroup(groups::sync_group(&shard, body).await),
        Request::Heartbeat(body) => Response::Heartbeat(groups::heartbeat(&shard, body).await),
        Request::LeaveGroup(body) => {
            Response::LeaveGroup(groups::leave_group(&shard, body, version).await)
        }
        Request::ListGroups(body) => Response::ListGroups(groups::list_groups(&shard, body).await),
        Request::DescribeGroups(body) => {
            Response::DescribeGroups(groups::describe_groups(&shard, body).await)
        }
        Request::DeleteGroups(body) => {
            Response::DeleteGroups(groups::delete_groups(&shard, body).await)
        }
        Request::OffsetCommit(body) => {
            Response::OffsetCommit(offsets::offset_commit(&shard, body).await)
        }
        Request::OffsetFetch(body) => {
            Response::OffsetFetch(offsets::offset_fetch(&shard, body, version).await)
        }
        Request::OffsetDelete(body) => {
            Response::OffsetDelete(offsets::offset_delete(&shard, body).await)
        }
        Request::OffsetForLeaderEpoch(body) => {
            Response::OffsetForLeaderEpoch(leader_epoch::handle(&shard, body).await)
        }
        admin @ (Request::CreateTopics(_)
        | Request::DeleteTopics(_)
        | Request::CreatePartitions(_)
        | Request::DeleteRecords(_)
        | Request::AlterConfigs(_)
        | Request::IncrementalAlterConfigs(_)
        | Request::ElectLeaders(_)) => admin_response(&shard, admin, &request.header).await,
    };
    Some(response)
}

/// Topic administration: creation, deletion, growth, record deletion, config changes and
/// leader elections (kept apart so `handle` stays one screen long).
async fn admin_response(shard: &Rc<Shard>, request: Request, header: &RequestMeta) -> Response {
    let version = header.api_version;
    match request {
        Request::CreateTopics(body) => {
            Response::CreateTopics(admin::create_topics(shard, body).await)
        }
        Request::DeleteTopics(body) => {
            Response::DeleteTopics(admin::delete_topics(shard, body, version).await)
        }
        Request::CreatePartitions(body) => {
            Response::CreatePartitions(partitions::create_partitions(shard, body).await)
        }
        Request::DeleteRecords(body) => {
            Response::DeleteRecords(delete_records::handle(shard, body).await)
        }
        Request::AlterConfigs(body) => {
            Response::AlterConfigs(configs::alter_configs(shard, body).await)
        }
        Request::IncrementalAlterConfigs(body) => {
            Response::IncrementalAlterConfigs(configs::incremental_alter_configs(shard, body).await)
        }
        Request::ElectLeaders(body) => {
            let client_id = header.client_id.as_deref();
            Response::ElectLeaders(elect_leaders::handle(shard, body, version, client_id).await)
        }
        other => unreachable!("not an admin request: {other:?}"),
    }
}

/// The registered brokers among `leader_ids` (hints' leaders; -1 is none), once each in id
/// order: the NodeEndpoints a KIP-951 answer lists next to its CurrentLeader hints.
fn hinted_brokers(
    shard: &crate::broker::shard::Shard,
    leader_ids: impl Iterator<Item = i32>,
) -> Vec<crate::broker::topics::BrokerEndpoint> {
    let named: std::collections::BTreeSet<i32> = leader_ids.filter(|id| *id >= 0).collect();
    let snapshot = shard.topics();
    named.into_iter().filter_map(|id| snapshot.brokers.get(&id).cloned()).collect()
}

pub(crate) fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// The longest `error_message` an answer carries. Messages may echo request strings, which may
/// be 32,767 bytes themselves: a message built around one would not fit the int16-length string
/// it is sent as, the answer could not be encoded and the client would lose its connection
/// instead of reading the error code.
const ERROR_MESSAGE_BYTES_MAX: usize = 512;

/// An `error_message` field: `text`, cut at a character boundary to
/// `ERROR_MESSAGE_BYTES_MAX` bytes (and marked as cut) if longer.
pub(crate) fn error_message(text: &str) -> StrBytes {
    if text.len() <= ERROR_MESSAGE_BYTES_MAX {
        return str_bytes(text);
    }
    let end = (0..=ERROR_MESSAGE_BYTES_MAX).rev().find(|&end| text.is_char_boundary(end));
    let kept = end.and_then(|end| text.get(..end)).unwrap_or_default();
    StrBytes::from_string(format!("{kept}…"))
}

#[cfg(test)]
mod error_message_tests {
    use super::{error_message, ERROR_MESSAGE_BYTES_MAX};

    #[test]
    fn a_message_echoing_a_longest_name_is_cut_to_the_bound_at_a_character_boundary() {
        let name = "é".repeat(16_383) + "x";
        let message = format!("Topic '{name}' does not exist.");
        let cut = error_message(&message);
        assert!(cut.len() <= ERROR_MESSAGE_BYTES_MAX + "…".len(), "{} bytes", cut.len());
        assert!(cut.starts_with("Topic 'éé") && cut.ends_with('…'));
        assert_eq!(error_message("unknown broker 7").as_str(), "unknown broker 7");
    }
}
