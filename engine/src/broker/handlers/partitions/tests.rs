//! CreatePartitions validation: each of Kafka's refusals, and what a valid growth keeps.

use super::*;
use crate::broker::topics::BrokerEndpoint;

const NODE: i32 = 7;

fn registry() -> TopicSnapshot {
    let topic = TopicMeta {
        name: "orders".into(),
        id: uuid::Uuid::from_u128(42),
        partition_count: 2,
        configs: [("retention.ms".to_string(), "1000".to_string())].into_iter().collect(),
        replicas: Vec::new(),
        replica_directories: Vec::new(),
    };
    TopicSnapshot::new([topic])
}

fn growth(name: &str, count: i32, assignments: Option<Vec<Vec<i32>>>) -> Growth {
    Growth { name: name.into(), count, assignments }
}

fn refusal(growth: &Growth) -> (ErrorCode, Option<String>) {
    let refusal = check_growth(&registry(), growth, NODE).expect_err("refused");
    (refusal.code, refusal.message)
}

#[test]
fn a_valid_growth_keeps_the_id_and_configs() {
    let grown = check_growth(&registry(), &growth("orders", 5, None), NODE).unwrap();
    let before = registry().get("orders").unwrap().clone();
    assert_eq!(grown, TopicMeta { partition_count: 5, ..before });
    let manual = growth("orders", 4, Some(vec![vec![NODE], vec![NODE]]));
    assert_eq!(check_growth(&registry(), &manual, NODE).unwrap().partition_count, 4);
}

#[test]
fn an_unknown_topic_is_unknown_topic_or_partition_without_a_message() {
    assert_eq!(refusal(&growth("nope", 3, None)), (ErrorCode::UnknownTopicOrPartition, None));
}

#[test]
fn no_increase_is_invalid_partitions_with_kafkas_messages() {
    let same = refusal(&growth("orders", 2, None));
    let message = "Topic already has 2 partition(s).";
    assert_eq!(same, (ErrorCode::InvalidPartitions, Some(message.into())));
    let shrink = refusal(&growth("orders", 1, None));
    let message = "The topic orders currently has 2 partition(s); 1 would not be an increase.";
    assert_eq!(shrink, (ErrorCode::InvalidPartitions, Some(message.into())));
    assert_eq!(refusal(&growth("orders", -1, None)).0, ErrorCode::InvalidPartitions);
}

#[test]
fn the_partition_limit_holds() {
    let at_limit = growth("orders", PARTITIONS_PER_TOPIC_MAX, None);
    assert!(check_growth(&registry(), &at_limit, NODE).is_ok());
    let over = refusal(&growth("orders", PARTITIONS_PER_TOPIC_MAX + 1, None));
    assert_eq!(over.0, ErrorCode::InvalidPartitions);
    assert_eq!(refusal(&growth("orders", i32::MAX, None)).0, ErrorCode::InvalidPartitions);
}

#[test]
fn assignments_must_name_exactly_the_new_partitions() {
    let too_few = refusal(&growth("orders", 4, Some(vec![vec![NODE]])));
    let message = "Attempted to add 2 additional partition(s), but only 1 assignment(s) were \
                   specified.";
    assert_eq!(too_few, (ErrorCode::InvalidReplicaAssignment, Some(message.into())));
    let too_many = growth("orders", 3, Some(vec![vec![NODE], vec![NODE]]));
    assert_eq!(refusal(&too_many).0, ErrorCode::InvalidReplicaAssignment);
    // Kafka counts assignments before it looks at the limit.
    let huge = refusal(&growth("orders", i32::MAX, Some(vec![vec![NODE]])));
    assert_eq!(huge.0, ErrorCode::InvalidReplicaAssignment);
}

#[test]
fn each_replica_list_must_be_exactly_this_broker() {
    let code = |replicas: Vec<i32>| refusal(&growth("orders", 3, Some(vec![replicas])));
    let message = |text: &str| (ErrorCode::InvalidReplicaAssignment, Some(text.to_string()));
    assert_eq!(
        code(vec![]),
        message("The manual partition assignment includes an empty replica list.")
    );
    assert_eq!(
        code(vec![NODE + 100]),
        message(
            "The manual partition assignment includes broker 107, but no such broker is \
             registered."
        )
    );
    assert_eq!(
        code(vec![NODE, NODE]),
        message("The manual partition assignment includes the broker 7 more than once.")
    );
    // Sorted first, as Kafka does: the unknown broker 3 is found before the duplicate 7.
    assert_eq!(
        code(vec![NODE, NODE, 3]).1.unwrap(),
        message(
            "The manual partition assignment includes broker 3, but no such broker is registered."
        )
        .1
        .unwrap()
    );
}

/// In a cluster a manual assignment names registered brokers, as many as the topic's
/// partitions have, and the new partitions get exactly those replicas.
#[test]
fn a_clusters_manual_assignment_is_checked_against_its_brokers_and_kept() {
    let mut topic = registry().get("orders").unwrap().clone();
    topic.replicas = vec![vec![1, 2], vec![2, 3]];
    let mut cluster = TopicSnapshot::new([topic]);
    for node_id in [1, 2, 3] {
        let endpoint = BrokerEndpoint { node_id, host: "h".into(), port: 9092, directory_id: None };
        cluster.brokers.insert(node_id, endpoint);
    }
    let manual = growth("orders", 4, Some(vec![vec![3, 1], vec![1, 2]]));
    let grown = check_growth(&cluster, &manual, 1).unwrap();
    let grown = with_new_replicas(&cluster, grown, manual.assignments.as_deref()).unwrap();
    assert_eq!(grown.replicas, vec![vec![1, 2], vec![2, 3], vec![3, 1], vec![1, 2]]);
    let refused = |assignments: Vec<Vec<i32>>| {
        let growth = growth("orders", 3, Some(assignments));
        check_growth(&cluster, &growth, 1).expect_err("refused").message.unwrap()
    };
    assert_eq!(
        refused(vec![vec![1, 4]]),
        "The manual partition assignment includes broker 4, but no such broker is registered."
    );
    assert_eq!(
        refused(vec![vec![1]]),
        "The manual partition assignment includes a partition with 1 replica(s), but this is \
         not consistent with previous partitions, which have 2 replica(s)."
    );
    let automatic = check_growth(&cluster, &growth("orders", 3, None), 1).unwrap();
    let automatic = with_new_replicas(&cluster, automatic, None).unwrap();
    assert_eq!(automatic.replicas.len(), 3);
    assert_eq!(automatic.replicas[2].len(), 2);
}

#[test]
fn duplicate_names_are_split_off_once_each() {
    let (duplicates, unique) = split_duplicates(&["a", "b", "a", "c", "a", "b"]);
    assert_eq!(duplicates, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(unique, vec![3]);
    let (duplicates, unique) = split_duplicates(&["x", "y"]);
    assert!(duplicates.is_empty());
    assert_eq!(unique, vec![0, 1]);
}
