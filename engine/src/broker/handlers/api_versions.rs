//! ApiVersions: what Tern implements, straight from the protocol layer's table.

use kafka_protocol::messages::ApiVersionsResponse;

use crate::protocol::api_versions::api_versions_response;

pub fn handle(version: i16) -> ApiVersionsResponse {
    // The connection answers unsupported ApiVersions versions itself (v0 body, error 35);
    // here the version is supported.
    api_versions_response(version).0
}
