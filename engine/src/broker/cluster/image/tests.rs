use super::*;

fn endpoint(node_id: i32) -> BrokerEndpoint {
    BrokerEndpoint {
        node_id,
        host: "127.0.0.1".into(),
        port: 9090 + node_id as u16,
        directory_id: Some(uuid::Uuid::from_u128(node_id as u128)),
    }
}

fn topic(name: &str, id: u128, replicas: Vec<Vec<i32>>) -> TopicMeta {
    TopicMeta {
        name: name.into(),
        id: uuid::Uuid::from_u128(id),
        partition_count: replicas.len() as i32,
        configs: BTreeMap::new(),
        replicas,
        replica_directories: Vec::new(),
    }
}

fn put(topic: TopicMeta) -> MetadataRecord {
    MetadataRecord::PutTopic { topic }
}

/// Applies records in order and returns the image and each record's outcome.
fn check(records: Vec<MetadataRecord>) -> (ClusterImage, Vec<Result<(), RecordRejected>>) {
    let mut image = ClusterImage::default();
    let outcomes = records.into_iter().map(|record| image.apply(record)).collect();
    (image, outcomes)
}

#[test]
fn brokers_register_and_a_changed_endpoint_replaces_the_old() {
    let moved = BrokerEndpoint { port: 7000, ..endpoint(2) };
    let (image, outcomes) = check(vec![
        MetadataRecord::RegisterBroker(endpoint(1)),
        MetadataRecord::RegisterBroker(endpoint(2)),
        MetadataRecord::RegisterBroker(moved.clone()),
        MetadataRecord::RegisterBroker(BrokerEndpoint { host: String::new(), ..endpoint(3) }),
        MetadataRecord::RegisterBroker(BrokerEndpoint { port: 0, ..endpoint(4) }),
    ]);
    assert!(outcomes[..3].iter().all(Result::is_ok));
    assert!(matches!(outcomes[3], Err(RecordRejected::BadEndpoint(_))));
    assert!(matches!(outcomes[4], Err(RecordRejected::BadEndpoint(_))));
    assert_eq!(image.brokers.values().cloned().collect::<Vec<_>>(), vec![endpoint(1), moved]);
}

#[test]
fn a_new_directory_replaces_the_old_and_a_record_without_one_keeps_it() {
    let wiped = BrokerEndpoint { directory_id: Some(uuid::Uuid::from_u128(22)), ..endpoint(2) };
    let before_ids = BrokerEndpoint { port: 7000, directory_id: None, ..endpoint(2) };
    let (image, outcomes) = check(vec![
        MetadataRecord::RegisterBroker(endpoint(2)),
        MetadataRecord::RegisterBroker(wiped.clone()),
        MetadataRecord::RegisterBroker(before_ids),
    ]);
    assert!(outcomes.iter().all(Result::is_ok));
    let registered = &image.brokers[&2];
    assert_eq!((registered.port, registered.directory_id), (7000, wiped.directory_id));
    let json = serde_json::to_string(&MetadataRecord::RegisterBroker(endpoint(1))).unwrap();
    assert!(json.contains("\"directory_id\":\"00000000-0000-0000-0000-000000000001\""), "{json}");
    let old = r#"{"type":"register_broker","node_id":3,"host":"h","port":1}"#;
    let parsed: MetadataRecord = serde_json::from_str(old).unwrap();
    assert_eq!(
        parsed,
        MetadataRecord::RegisterBroker(BrokerEndpoint {
            node_id: 3,
            host: "h".into(),
            port: 1,
            directory_id: None,
        })
    );
}

#[test]
fn a_topic_is_created_grown_and_deleted_by_id_and_bad_changes_are_skipped() {
    let created = topic("orders", 1, vec![vec![1, 2, 3], vec![2, 3, 1]]);
    let grown = topic("orders", 1, vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]]);
    let (image, outcomes) = check(vec![
        put(created.clone()),
        put(topic("orders", 2, vec![vec![1]])),
        put(topic("orders", 1, vec![vec![1, 2, 3]])),
        put(topic("orders", 1, vec![vec![3, 2, 1], vec![2, 3, 1], vec![3, 1, 2]])),
        put(grown.clone()),
        MetadataRecord::DeleteTopic { name: "orders".into(), id: uuid::Uuid::from_u128(9) },
    ]);
    assert_eq!(outcomes[0], Ok(()));
    assert_eq!(outcomes[1], Err(RecordRejected::IdMismatch("orders".into())));
    assert_eq!(outcomes[2], Err(RecordRejected::ShrinksOrMoves("orders".into())));
    assert_eq!(outcomes[3], Err(RecordRejected::ShrinksOrMoves("orders".into())));
    assert_eq!(outcomes[4], Ok(()));
    assert_eq!(outcomes[5], Err(RecordRejected::UnknownTopic("orders".into())));
    assert_eq!(image.topics.get("orders"), Some(&grown));
    let mut image = image;
    let delete = MetadataRecord::DeleteTopic { name: "orders".into(), id: grown.id };
    assert_eq!(image.apply(delete), Ok(()));
    assert!(image.topics.is_empty());
}

#[test]
fn a_topic_must_name_distinct_replicas_for_every_partition() {
    let bad = [
        topic("../escape", 1, vec![vec![1]]),
        topic("t", 1, vec![vec![1, 1]]),
        topic("t", 1, vec![vec![]]),
        topic("t", 1, vec![vec![-1]]),
        topic("t", 1, vec![(0..8).collect()]),
        TopicMeta { partition_count: 2, ..topic("t", 1, vec![vec![1]]) },
        TopicMeta { partition_count: 0, ..topic("t", 1, vec![]) },
    ];
    for topic in bad {
        let (image, outcomes) = check(vec![put(topic.clone())]);
        assert!(matches!(outcomes[0], Err(RecordRejected::BadTopic(_))), "{topic:?}");
        assert!(image.topics.is_empty());
    }
}

#[test]
fn the_records_between_two_registries_rebuild_the_second_from_the_first() {
    let kept = topic("kept", 1, vec![vec![1]]);
    let before_changed = topic("changed", 2, vec![vec![1, 2]]);
    let mut after_changed = topic("changed", 2, vec![vec![1, 2], vec![2, 1]]);
    after_changed.configs.insert("retention.ms".into(), "1000".into());
    let recreated_old = topic("recreated", 3, vec![vec![2]]);
    let recreated_new = topic("recreated", 4, vec![vec![1]]);
    let gone = topic("gone", 5, vec![vec![2]]);
    let added = topic("added", 6, vec![vec![2, 1]]);
    let before_topics = [kept.clone(), before_changed, recreated_old, gone];
    let after_topics = [kept, after_changed, recreated_new, added];
    let before = TopicSnapshot::new(before_topics.clone());
    let after = TopicSnapshot::new(after_topics.clone());
    let mut image = ClusterImage::default();
    for topic in before_topics {
        image.apply(put(topic)).unwrap();
    }
    let records = records_between(&before, &after);
    assert_eq!(records.len(), 5, "{records:?}");
    for record in records {
        assert_eq!(image.apply(record.clone()), Ok(()), "{record:?}");
    }
    assert_eq!(image.topics.values().cloned().collect::<Vec<_>>(), {
        let mut expected = after_topics.to_vec();
        expected.sort_by(|a, b| a.name.cmp(&b.name));
        expected
    });
}

#[test]
fn records_round_trip_through_a_record_batch_and_other_records_are_not_read() {
    let records = vec![
        MetadataRecord::RegisterBroker(endpoint(3)),
        put(topic("orders", 1, vec![vec![3, 1]])),
        MetadataRecord::DeleteTopic { name: "orders".into(), id: uuid::Uuid::from_u128(1) },
    ];
    let mut batch = bytes::Bytes::from(encode_records(&records, 1_700_000_000_000));
    crate::record_batch::validate_produced_batch(&batch).expect("a valid batch");
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut batch).unwrap();
    let decoded: Vec<MetadataRecord> = set
        .records
        .iter()
        .map(|record| decode_record(record.key.as_deref(), record.value.as_deref()))
        .map(|decoded| decoded.expect("a metadata record").expect("parses"))
        .collect();
    assert_eq!(decoded, records);
    assert!(decode_record(Some(b"other"), Some(b"{}")).is_none());
    assert!(decode_record(None, None).is_none());
    assert!(matches!(decode_record(Some(RECORD_KEY), Some(b"{\"type\":\"nope\"}")), Some(Err(_))));
    assert!(matches!(decode_record(Some(RECORD_KEY), None), Some(Err(_))));
}

#[test]
fn a_recorded_replica_directory_may_be_learned_but_never_changed() {
    let uuid = |value: u128| Some(uuid::Uuid::from_u128(value));
    let pinned = |directories: Vec<Vec<Option<uuid::Uuid>>>| TopicMeta {
        replica_directories: directories,
        ..topic("t", 1, vec![vec![1, 2], vec![2, 3]])
    };
    let (image, outcomes) = check(vec![
        put(pinned(vec![vec![uuid(1), None], vec![uuid(2), uuid(3)]])),
        // A directory learned where none was: kept.
        put(pinned(vec![vec![uuid(1), uuid(2)], vec![uuid(2), uuid(3)]])),
        // A recorded one changed, or forgotten: refused.
        put(pinned(vec![vec![uuid(9), uuid(2)], vec![uuid(2), uuid(3)]])),
        put(pinned(Vec::new())),
        // Not shaped like the replicas: refused.
        put(pinned(vec![vec![uuid(1), uuid(2)]])),
        put(pinned(vec![vec![uuid(1), uuid(2)], vec![uuid(2)]])),
    ]);
    assert!(outcomes[..2].iter().all(Result::is_ok), "{outcomes:?}");
    assert!(outcomes[2..].iter().all(Result::is_err), "{outcomes:?}");
    let recorded = &image.topics.get("t").expect("t").replica_directories;
    assert_eq!(recorded, &vec![vec![uuid(1), uuid(2)], vec![uuid(2), uuid(3)]]);
}

#[test]
fn pinning_records_registered_directories_and_keeps_recorded_ones() {
    let brokers: BTreeMap<i32, BrokerEndpoint> =
        [1, 2].into_iter().map(|node| (node, endpoint(node))).collect();
    let mut fresh = topic("t", 1, vec![vec![1, 2, 3]]);
    fresh.pin_directories(&BTreeMap::new());
    assert!(fresh.replica_directories.is_empty(), "nothing known: nothing recorded");
    fresh.pin_directories(&brokers);
    let uuid = |value: u128| Some(uuid::Uuid::from_u128(value));
    assert_eq!(fresh.replica_directories, vec![vec![uuid(1), uuid(2), None]]);
    let moved: BTreeMap<i32, BrokerEndpoint> = [1, 2, 3]
        .into_iter()
        .map(|node| {
            (node, BrokerEndpoint { directory_id: uuid(node as u128 + 10), ..endpoint(node) })
        })
        .collect();
    fresh.pin_directories(&moved);
    assert_eq!(fresh.replica_directories, vec![vec![uuid(1), uuid(2), uuid(13)]]);
}
