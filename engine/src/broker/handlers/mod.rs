//! One handler per Kafka API. Each takes the decoded request and returns the response body;
//! the connection encodes it at the request's version.
//!
//! Handlers run on the shard that accepted the connection. Partition work goes to the owning
//! shard through [`Shard::call_on`]; metadata is read from the shard's topic snapshot.

mod admin;
mod api_versions;
mod describe;
mod fetch;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod produce;

use std::rc::Rc;

use kafka_protocol::protocol::StrBytes;

use crate::protocol::request::{DecodedRequest, Request};
use crate::protocol::response::Response;

use super::shard::Shard;

pub use admin::{create_topics_on_controller, NewTopic};

/// Answers one request. `None` means no response is sent (Produce with acks=0).
pub async fn handle(shard: Rc<Shard>, request: DecodedRequest) -> Option<Response> {
    let version = request.header.api_version;
    let response = match request.body {
        Request::ApiVersions(_) => Response::ApiVersions(api_versions::handle(version)),
        Request::Metadata(body) => {
            Response::Metadata(metadata::handle(&shard, body, version).await)
        }
        Request::Produce(body) => {
            return produce::handle(&shard, body).await.map(Response::Produce)
        }
        Request::Fetch(body) => Response::Fetch(fetch::handle(&shard, body, version).await),
        Request::ListOffsets(body) => {
            Response::ListOffsets(list_offsets::handle(&shard, body, version).await)
        }
        Request::CreateTopics(body) => {
            Response::CreateTopics(admin::create_topics(&shard, body).await)
        }
        Request::DeleteTopics(body) => {
            Response::DeleteTopics(admin::delete_topics(&shard, body, version).await)
        }
        Request::InitProducerId(body) => {
            Response::InitProducerId(init_producer_id::handle(&shard, body).await)
        }
        Request::DescribeConfigs(body) => {
            Response::DescribeConfigs(describe::describe_configs(&shard, body))
        }
        Request::DescribeCluster(body) => {
            Response::DescribeCluster(describe::describe_cluster(&shard, body))
        }
    };
    Some(response)
}

pub(crate) fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}
