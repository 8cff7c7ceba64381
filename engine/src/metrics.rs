//! Latency histograms: where the time of an append goes (fdatasync, group commit, the whole
//! produce request), kept in fixed memory and summarised in the log at shutdown.
//!
//! Why here and not a metrics crate: the broker has no metrics endpoint yet, and what operators
//! and benchmarks need first is "what is p99 of fdatasync on this disk, inside the broker" —
//! a few counters per log, updated on a single shard without atomics.
//!
//! Buckets are log-linear (HdrHistogram's idea, simplified): values below 16 µs exactly, above
//! that 16 sub-buckets per power of two, so a reported percentile is at most 1/16 (6.25%) above
//! the true value. Recording is O(1) and never allocates.

use std::time::Duration;

/// Sub-buckets per power of two (and exact buckets below this many microseconds).
const SUB_BUCKETS: u64 = 16;
const SUB_BUCKET_BITS: u32 = SUB_BUCKETS.trailing_zeros();
/// Values are clamped to 2^40 µs (about 12.7 days): more than any latency worth recording.
const VALUE_BITS_MAX: u32 = 40;
const BUCKET_COUNT: usize =
    (SUB_BUCKETS + (VALUE_BITS_MAX - SUB_BUCKET_BITS) as u64 * SUB_BUCKETS) as usize;
const VALUE_MAX_US: u64 = (1 << VALUE_BITS_MAX) - 1;

/// A histogram of durations in microseconds.
#[derive(Clone)]
pub struct LatencyHistogram {
    counts: Box<[u64; BUCKET_COUNT]>,
    count: u64,
    sum_us: u64,
    max_us: u64,
}

/// The figures a summary line reports, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> LatencyHistogram {
        LatencyHistogram { counts: Box::new([0; BUCKET_COUNT]), count: 0, sum_us: 0, max_us: 0 }
    }

    pub fn record(&mut self, duration: Duration) {
        let value_us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX).min(VALUE_MAX_US);
        self.counts[bucket_of(value_us)] += 1;
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(value_us);
        self.max_us = self.max_us.max(value_us);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The smallest bucket upper bound at or below which `quantile` of the values lie (never
    /// above the largest value recorded). 0 when empty.
    pub fn quantile_us(&self, quantile: f64) -> u64 {
        assert!((0.0..=1.0).contains(&quantile), "quantile {quantile} outside 0..=1");
        if self.count == 0 {
            return 0;
        }
        // The rank of the value sought, 1-based: ceil(quantile * count), at least 1.
        let rank = ((quantile * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_bound_of(bucket).min(self.max_us);
            }
        }
        unreachable!("the counts sum to `count`")
    }

    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count,
            mean_us: self.sum_us.checked_div(self.count).unwrap_or(0),
            p50_us: self.quantile_us(0.50),
            p99_us: self.quantile_us(0.99),
            p999_us: self.quantile_us(0.999),
            max_us: self.max_us,
        }
    }

    /// Adds another histogram's values (e.g. one shard's into a broker-wide figure).
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.max_us = self.max_us.max(other.max_us);
    }
}

fn bucket_of(value_us: u64) -> usize {
    debug_assert!(value_us <= VALUE_MAX_US);
    if value_us < SUB_BUCKETS {
        return value_us as usize;
    }
    let exponent = 63 - value_us.leading_zeros(); // >= SUB_BUCKET_BITS
    let sub_bucket = (value_us >> (exponent - SUB_BUCKET_BITS)) & (SUB_BUCKETS - 1);
    let bucket = SUB_BUCKETS + u64::from(exponent - SUB_BUCKET_BITS) * SUB_BUCKETS + sub_bucket;
    debug_assert!((bucket as usize) < BUCKET_COUNT);
    bucket as usize
}

/// The largest value that falls in `bucket`.
fn upper_bound_of(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < SUB_BUCKETS {
        return bucket;
    }
    let exponent = (bucket - SUB_BUCKETS) / SUB_BUCKETS + u64::from(SUB_BUCKET_BITS);
    let sub_bucket = (bucket - SUB_BUCKETS) % SUB_BUCKETS;
    let width = 1u64 << (exponent - u64::from(SUB_BUCKET_BITS));
    (1u64 << exponent) + (sub_bucket + 1) * width - 1
}

impl std::fmt::Display for LatencySummary {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |us: u64| us as f64 / 1000.0;
        write!(
            formatter,
            "n={} mean={:.3}ms p50={:.3}ms p99={:.3}ms p99.9={:.3}ms max={:.3}ms",
            self.count,
            ms(self.mean_us),
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.p999_us),
            ms(self.max_us)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn micros(value_us: u64) -> Duration {
        Duration::from_micros(value_us)
    }

    #[test]
    fn an_empty_histogram_reports_zeros() {
        let histogram = LatencyHistogram::new();
        assert_eq!(histogram.summary().count, 0);
        assert_eq!(histogram.quantile_us(0.99), 0);
    }

    #[test]
    fn small_values_are_exact_and_quantiles_pick_the_right_rank() {
        let mut histogram = LatencyHistogram::new();
        for value_us in 1..=10 {
            histogram.record(micros(value_us));
        }
        assert_eq!(histogram.quantile_us(0.5), 5);
        assert_eq!(histogram.quantile_us(0.91), 10);
        assert_eq!(histogram.quantile_us(0.0), 1);
        assert_eq!(histogram.summary().max_us, 10);
        assert_eq!(histogram.summary().mean_us, 5);
    }

    #[test]
    fn one_slow_value_in_a_hundred_is_the_p99_not_the_p50() {
        let mut histogram = LatencyHistogram::new();
        for _ in 0..99 {
            histogram.record(micros(100));
        }
        histogram.record(micros(7_000));
        let summary = histogram.summary();
        assert!((100..=106).contains(&summary.p50_us), "{summary:?}");
        assert!((100..=106).contains(&summary.p99_us), "{summary:?}");
        assert_eq!(summary.p999_us, 7_000);
    }

    #[test]
    fn huge_durations_are_clamped_not_lost() {
        let mut histogram = LatencyHistogram::new();
        histogram.record(Duration::from_secs(u64::MAX / 2));
        assert_eq!(histogram.count(), 1);
        assert_eq!(histogram.quantile_us(1.0), VALUE_MAX_US);
    }

    proptest! {
        #[test]
        fn every_value_lands_in_a_bucket_whose_bounds_hold_it(value_us in 0..=VALUE_MAX_US) {
            let bucket = bucket_of(value_us);
            prop_assert!(value_us <= upper_bound_of(bucket));
            if bucket > 0 {
                prop_assert!(value_us > upper_bound_of(bucket - 1));
            }
            // The relative error of reporting the upper bound is at most 1/16.
            prop_assert!(upper_bound_of(bucket) - value_us <= value_us / SUB_BUCKETS);
        }

        #[test]
        fn quantiles_are_within_bucket_precision_of_the_sorted_values(
            mut values in prop::collection::vec(0u64..5_000_000, 1..400),
            quantile in 0.0f64..=1.0,
        ) {
            let mut histogram = LatencyHistogram::new();
            for &value_us in &values {
                histogram.record(micros(value_us));
            }
            values.sort_unstable();
            let rank = ((quantile * values.len() as f64).ceil() as usize).clamp(1, values.len());
            let exact_us = values[rank - 1];
            let reported_us = histogram.quantile_us(quantile);
            prop_assert!(reported_us >= exact_us, "{reported_us} < {exact_us}");
            prop_assert!(reported_us - exact_us <= exact_us / SUB_BUCKETS);
        }

        #[test]
        fn merging_equals_recording_everything_in_one(
            left in prop::collection::vec(0u64..1_000_000, 0..100),
            right in prop::collection::vec(0u64..1_000_000, 0..100),
        ) {
            let mut merged = LatencyHistogram::new();
            let mut other = LatencyHistogram::new();
            let mut single = LatencyHistogram::new();
            for &value_us in &left {
                merged.record(micros(value_us));
                single.record(micros(value_us));
            }
            for &value_us in &right {
                other.record(micros(value_us));
                single.record(micros(value_us));
            }
            merged.merge(&other);
            prop_assert_eq!(merged.summary(), single.summary());
        }
    }
}
