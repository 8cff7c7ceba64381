//! Replication (a sans-IO Raft replica per partition) arrives with the replication issue.
//! Until then Tern is a single-node broker: the high watermark is the durable end of the log.
