//! The broker: request handlers, topic registry, shard routing and connections.
