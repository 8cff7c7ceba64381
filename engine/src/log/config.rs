//! Per-partition log configuration: segment rolling, retention, indexing, durability.

/// How appends become durable before they are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Default: every append is acknowledged only after an fdatasync covering it (group commit
    /// lets one fdatasync cover every append that queued up while the previous one ran).
    EveryAppend,
    /// Relaxed, like Kafka's default: appends are acknowledged once written to the page cache and
    /// fdatasync runs at most every this many milliseconds. A crash (power loss, not a process
    /// kill) may lose up to that window of acknowledged data; the high watermark is then the
    /// written end, not the durable end.
    IntervalMs(u64),
}

/// Who moves the high watermark (the commit index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// The log is its own quorum (a single node): it commits what it holds durably.
    #[default]
    Local,
    /// A replica commits (`Log::commit`) what a quorum holds durably. The high watermark
    /// starts at the log start offset at open (nothing is known committed until the replica
    /// says so); a leader's appends are answered at commit, a follower's copies
    /// (`append_replicated`) once durable. Requires `FlushPolicy::EveryAppend`.
    Quorum,
}

/// Configuration of one partition log. Field names follow Kafka's topic configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment before an append would make the active one larger than this.
    /// At most `u32::MAX` (index positions are u32).
    pub segment_size_bytes: u64,
    /// Roll the active segment once its first batch is older than this (see `Log::maybe_roll`).
    pub segment_age_ms: i64,
    /// Delete the oldest segments while the log stays at least this big without them; -1 = no
    /// limit.
    pub retention_size_bytes: i64,
    /// Delete segments whose newest timestamp is older than this; -1 = no limit.
    pub retention_age_ms: i64,
    /// Bytes of log between two sparse offset-index entries.
    pub index_interval_bytes: u32,
    /// Largest batch accepted (Kafka's `max.message.bytes`).
    pub max_message_bytes: u32,
    pub flush: FlushPolicy,
    pub commit: CommitMode,
    /// Write the recovery checkpoint after at least this many newly durable bytes (it is also
    /// written at every roll and on close), bounding how much a crash recovery must scan.
    pub checkpoint_interval_bytes: u64,
    /// Log compaction (`cleanup.policy` containing `compact`); see `compaction.rs`.
    pub compaction: CompactionConfig,
    /// A planted bug, for the simulator only (`tern-sim --plant no-dedup`): idempotent
    /// batches are never recognised as retries, so a retried batch is appended twice. It
    /// proves that the simulator's checker sees a broken duplicate detection. Never set it.
    pub planted_no_duplicate_detection: bool,
    /// A planted bug, for the simulator only (`tern-sim --plant serve-above-hwm`): reads end at
    /// the written (not yet synced) end instead of the high watermark, so consumers can see
    /// records a power failure erases. It proves that the simulator sees a broker serving
    /// above its high watermark (issue 14's classic replication bug). Never set it.
    pub planted_serve_above_high_watermark: bool,
    /// A planted bug, for the simulator only (`tern-sim --plant no-producer-state-on-follower`):
    /// a follower's copies of the leader's batches do not update its producer state, so once
    /// it leads, a retry of a batch it holds is not recognised and is appended again. It
    /// proves that the simulator sees duplicate detection lost in a failover. Never set it.
    pub planted_no_producer_state_on_follower: bool,
}

/// Kafka's compaction settings for one log. Disabled by default (`cleanup.policy=delete`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionConfig {
    pub enabled: bool,
    /// Tombstones (null values) older than this are removed (`delete.retention.ms`).
    pub delete_retention_ms: i64,
    /// Only segments whose newest record is older than this are cleaned
    /// (`min.compaction.lag.ms`).
    pub min_compaction_lag_ms: i64,
    /// Clean once dirty bytes / cleanable bytes reach this, in parts per million
    /// (`min.cleanable.dirty.ratio` × 10^6).
    pub min_cleanable_dirty_ratio_ppm: u32,
    /// Memory the key map of one cleaning may use (Kafka's dedupe buffer); when full, only
    /// the offsets it covers are cleaned.
    pub key_map_budget_bytes: usize,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            enabled: false,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio_ppm: 500_000,
            key_map_budget_bytes: 16 << 20,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        const DAY_MS: i64 = 24 * 60 * 60 * 1000;
        LogConfig {
            segment_size_bytes: 1 << 30,
            segment_age_ms: 7 * DAY_MS,
            retention_size_bytes: -1,
            retention_age_ms: 7 * DAY_MS,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            flush: FlushPolicy::EveryAppend,
            commit: CommitMode::Local,
            checkpoint_interval_bytes: 64 << 20,
            compaction: CompactionConfig::default(),
            planted_no_duplicate_detection: false,
            planted_serve_above_high_watermark: false,
            planted_no_producer_state_on_follower: false,
        }
    }
}

impl LogConfig {
    /// Panics on a configuration the on-disk format cannot represent: that is a caller bug
    /// (configs are validated where they enter the broker).
    pub(crate) fn assert_valid(&self) {
        assert!(self.segment_size_bytes > 0 && self.segment_size_bytes <= u64::from(u32::MAX));
        assert!(self.segment_age_ms > 0);
        assert!(self.retention_size_bytes >= -1 && self.retention_age_ms >= -1);
        assert!(self.index_interval_bytes > 0);
        assert!(self.max_message_bytes as usize >= crate::record_batch::HEADER_SIZE_BYTES);
        assert!(self.checkpoint_interval_bytes > 0);
        assert!(self.compaction.min_cleanable_dirty_ratio_ppm <= 1_000_000);
        assert!(self.compaction.key_map_budget_bytes > 0);
        if let FlushPolicy::IntervalMs(interval_ms) = self.flush {
            assert!(interval_ms > 0);
            assert!(self.commit == CommitMode::Local, "a quorum counts only durable copies");
        }
    }
}
