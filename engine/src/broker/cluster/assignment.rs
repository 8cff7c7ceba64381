//! Where a new partition's replicas go: spread evenly over the registered brokers, and its
//! first replica (the preferred leader) rotated so that leaders are balanced too — Kafka's
//! rack-unaware assignment in spirit: partition p of a topic starting at broker index s has
//! replicas `s+p, s+p+1, …` (mod the broker count).

/// The replicas of partitions `first_partition..first_partition + count` of `topic`, each
/// `replication_factor` distinct brokers of `brokers` (sorted, distinct, and at least that
/// many: the caller checked).
pub fn assign(
    topic: &str,
    brokers: &[i32],
    first_partition: i32,
    count: i32,
    replication_factor: usize,
) -> Vec<Vec<i32>> {
    assert!(!brokers.is_empty() && replication_factor <= brokers.len());
    assert!(brokers.windows(2).all(|pair| pair[0] < pair[1]), "sorted, distinct brokers");
    let start = start_index(topic, brokers.len());
    (first_partition..first_partition + count)
        .map(|partition| {
            // Partitions are below PARTITIONS_PER_TOPIC_MAX: non-negative and small.
            let first = start + partition.unsigned_abs() as usize;
            (0..replication_factor).map(|k| brokers[(first + k) % brokers.len()]).collect()
        })
        .collect()
}

/// A stable start per topic (FNV-1a of its name), so that many one-partition topics do not
/// all lead on the same broker.
fn start_index(topic: &str, broker_count: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in topic.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % broker_count as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_distinct_spread_evenly_and_leaders_rotate() {
        let brokers = [1, 2, 3];
        let replicas = assign("orders", &brokers, 0, 6, 3);
        let mut leaders = [0usize; 4];
        let mut hosted = [0usize; 4];
        for partition in &replicas {
            let mut distinct = partition.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "{partition:?}");
            leaders[partition[0] as usize] += 1;
            for node in partition {
                hosted[*node as usize] += 1;
            }
        }
        assert_eq!(&leaders[1..], &[2, 2, 2]);
        assert_eq!(&hosted[1..], &[6, 6, 6]);
    }

    #[test]
    fn added_partitions_continue_the_rotation() {
        let brokers = [1, 2, 3, 4, 5];
        let all = assign("t", &brokers, 0, 7, 2);
        let tail = assign("t", &brokers, 4, 3, 2);
        assert_eq!(&all[4..], &tail[..]);
        assert!(all.iter().all(|partition| partition.len() == 2 && partition[0] != partition[1]));
    }
}
