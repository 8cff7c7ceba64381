//! AlterConfigs and IncrementalAlterConfigs: change a topic's configs, by Kafka 4's rules
//! (`ConfigAdminManager.preprocess` on the broker, then the controller's
//! `ConfigurationControlManager` and `ControllerConfigurationValidator`).
//!
//! AlterConfigs replaces the topic's whole set of explicit configs with the given one;
//! IncrementalAlterConfigs applies SET, DELETE, APPEND and SUBTRACT (the last two only to list
//! configs such as `cleanup.policy`, starting from the default when the topic has no value).
//! Per resource, Kafka's order: topic name, then every value (`topics::validate_topic_config`,
//! the checks CreateTopics makes), then existence — so a bad value for an unknown topic is
//! INVALID_CONFIG. The change runs on shard 0 under the registry lock: the new registry is
//! stored durably, then every shard applies it, which hands the new settings to the open
//! partition logs (`Shard::apply_topics` → `Log::set_config`) before the client is answered.
//!
//! Only topic resources are served. Dynamic broker configs (BROKER) and log levels
//! (BROKER_LOGGER) are INVALID_REQUEST: Tern's broker settings are its command line, and
//! accepting a change that has no effect would be a lie (Kafka accepts them; see
//! docs/compatibility.md).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use crate::broker::shard::{PublishError, Shard};
use crate::broker::topic_configs::{ConfigType, KAFKA_TOPIC_CONFIGS};
use crate::broker::topics::{self, validate_topic_config_with, validate_topic_name, TopicSnapshot};
use crate::protocol::error_code::ErrorCode;

use super::partitions::Refusal;
use super::{error_message, str_bytes};

const RESOURCE_TYPE_TOPIC: i8 = 2;
const RESOURCE_TYPE_BROKER: i8 = 4;
const RESOURCE_TYPE_BROKER_LOGGER: i8 = 8;

/// One config change of IncrementalAlterConfigs (Kafka's `AlterConfigOp.OpType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Set(Option<String>),
    Delete,
    Append(Option<String>),
    Subtract(Option<String>),
}

/// The change asked for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alteration {
    pub topic: String,
    /// AlterConfigs: the operations (all `Set`) replace every explicit config of the topic.
    pub replace: bool,
    pub operations: Vec<(String, Operation)>,
}

/// A resource as asked: type, name, and the topic change (or why it is refused already).
type Asked = (i8, String, Result<Alteration, Refusal>);

pub async fn incremental_alter_configs(
    shard: &Rc<Shard>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let asked: Vec<Asked> = request
        .resources
        .iter()
        .map(|resource| {
            let operations = resource
                .configs
                .iter()
                .map(|config| {
                    let value = config.value.as_ref().map(|value| value.to_string());
                    let operation = match config.config_operation {
                        0 => Operation::Set(value),
                        1 => Operation::Delete,
                        2 => Operation::Append(value),
                        3 => Operation::Subtract(value),
                        other => {
                            return Err(invalid_request(&format!("Unknown operation {other}")))
                        }
                    };
                    Ok((config.name.to_string(), operation))
                })
                .collect::<Result<Vec<_>, Refusal>>();
            let name = resource.resource_name.to_string();
            let alteration = operations.and_then(|operations| {
                resource_alteration(resource.resource_type, &name, operations, false)
            });
            (resource.resource_type, name, alteration)
        })
        .collect();
    let outcomes = run(shard, asked, request.validate_only).await;
    let responses = outcomes
        .into_iter()
        .map(|(resource_type, name, outcome)| {
            let (code, message) = code_and_message(outcome);
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(&name))
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

pub async fn alter_configs(
    shard: &Rc<Shard>,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let asked: Vec<Asked> = request
        .resources
        .iter()
        .map(|resource| {
            let operations = resource
                .configs
                .iter()
                .map(|config| {
                    let value = config.value.as_ref().map(|value| value.to_string());
                    (config.name.to_string(), Operation::Set(value))
                })
                .collect();
            let name = resource.resource_name.to_string();
            let alteration = resource_alteration(resource.resource_type, &name, operations, true);
            (resource.resource_type, name, alteration)
        })
        .collect();
    let outcomes = run(shard, asked, request.validate_only).await;
    let responses = outcomes
        .into_iter()
        .map(|(resource_type, name, outcome)| {
            let (code, message) = code_and_message(outcome);
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(&name))
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

fn invalid_request(message: &str) -> Refusal {
    Refusal { code: ErrorCode::InvalidRequest, message: Some(message.to_string()) }
}

fn code_and_message(
    outcome: Result<(), Refusal>,
) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    match outcome {
        Ok(()) => (ErrorCode::None.code(), None),
        Err(refusal) => (refusal.code.code(), refusal.message.as_deref().map(error_message)),
    }
}

/// The broker-side checks (`ConfigAdminManager.preprocess`): the resource type, and no config
/// named twice in one resource.
fn resource_alteration(
    resource_type: i8,
    name: &str,
    operations: Vec<(String, Operation)>,
    replace: bool,
) -> Result<Alteration, Refusal> {
    match resource_type {
        RESOURCE_TYPE_TOPIC => {}
        RESOURCE_TYPE_BROKER | RESOURCE_TYPE_BROKER_LOGGER => {
            return Err(invalid_request(
                "Tern has no dynamic broker configs or log levels: its settings are its \
                 command-line flags",
            ))
        }
        other => return Err(invalid_request(&format!("Unsupported resource type {other}"))),
    }
    let mut names: Vec<&str> = operations.iter().map(|(key, _)| key.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(invalid_request("Error due to duplicate config keys"));
    }
    Ok(Alteration { topic: name.to_string(), replace, operations })
}

/// Sends the topic alterations to shard 0 and puts the answers back in request order.
async fn run(
    shard: &Rc<Shard>,
    asked: Vec<Asked>,
    validate_only: bool,
) -> Vec<(i8, String, Result<(), Refusal>)> {
    let alterations: Vec<Alteration> =
        asked.iter().filter_map(|(_, _, alteration)| alteration.clone().ok()).collect();
    let outcomes = if alterations.is_empty() {
        Vec::new()
    } else {
        shard
            .call_on(0, move |controller| async move {
                alter_on_controller(&controller, alterations, validate_only).await
            })
            .await
            .unwrap_or_default()
    };
    let shutting_down = || {
        Err(Refusal {
            code: ErrorCode::KafkaStorageError,
            message: Some("broker is shutting down".into()),
        })
    };
    let mut outcomes = outcomes.into_iter();
    asked
        .into_iter()
        .map(|(resource_type, name, alteration)| {
            let outcome = match alteration {
                Ok(_) => outcomes.next().unwrap_or_else(shutting_down),
                Err(refusal) => Err(refusal),
            };
            (resource_type, name, outcome)
        })
        .collect()
}

/// Runs on shard 0: checks each alteration against the registry (later ones see the earlier
/// ones' changes), then stores and publishes all changed topics at once.
pub async fn alter_on_controller(
    controller: &Rc<Shard>,
    alterations: Vec<Alteration>,
    validate_only: bool,
) -> Vec<Result<(), Refusal>> {
    let guard = controller.lock_registry().await;
    if !controller.may_change_registry().await {
        let refusal = Refusal { code: ErrorCode::NotController, message: None };
        return alterations.iter().map(|_| Err(refusal.clone())).collect();
    }
    let current = controller.topics();
    let mut changed: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut outcomes = Vec::with_capacity(alterations.len());
    for alteration in &alterations {
        let existing = changed
            .get(&alteration.topic)
            .or_else(|| current.get(&alteration.topic).map(|topic| &topic.configs));
        let internal = controller.config.internal_topic_configs;
        let outcome = altered_configs(&current, alteration, existing, internal).map(|configs| {
            changed.insert(alteration.topic.clone(), configs);
        });
        outcomes.push(outcome);
    }
    if validate_only || changed.is_empty() {
        return outcomes;
    }
    let all = current.by_name.values().map(|topic| {
        let mut topic = topic.clone();
        if let Some(configs) = changed.get(&topic.name) {
            topic.configs = configs.clone();
        }
        topic
    });
    let snapshot = Arc::new(TopicSnapshot::new(all));
    if let Err(error) = controller.publish_registry(&guard, snapshot).await {
        tracing::error!(%error, "cannot store the topic registry; configs not changed");
        let refusal = match error {
            PublishError::NotController => {
                Refusal { code: ErrorCode::NotController, message: None }
            }
            PublishError::Failed(error) => Refusal {
                code: ErrorCode::KafkaStorageError,
                message: Some(format!("cannot store the topic registry: {error}")),
            },
        };
        return outcomes.into_iter().map(|outcome| outcome.and(Err(refusal.clone()))).collect();
    }
    for (topic, configs) in &changed {
        tracing::info!(%topic, ?configs, "topic configs changed");
    }
    outcomes
}

/// The topic's explicit configs after `alteration`, or why it is refused.
fn altered_configs(
    current: &TopicSnapshot,
    alteration: &Alteration,
    existing: Option<&BTreeMap<String, String>>,
    internal_configs_allowed: bool,
) -> Result<BTreeMap<String, String>, Refusal> {
    let refuse = |error: topics::TopicError| Refusal {
        code: error.error_code(),
        message: Some(error.to_string()),
    };
    validate_topic_name(&alteration.topic).map_err(refuse)?;
    let mut configs = match (alteration.replace, existing) {
        (false, Some(existing)) => existing.clone(),
        _ => BTreeMap::new(),
    };
    for (key, operation) in &alteration.operations {
        let value = match operation {
            Operation::Delete => {
                configs.remove(key);
                continue;
            }
            Operation::Set(value) => value.clone(),
            Operation::Append(item) | Operation::Subtract(item) => {
                let append = matches!(operation, Operation::Append(_));
                Some(list_operation(&configs, key, item.as_deref(), append)?)
            }
        };
        validate_topic_config_with(key, value.as_deref(), internal_configs_allowed)
            .map_err(refuse)?;
        configs.insert(key.clone(), value.unwrap_or_default());
    }
    if current.get(&alteration.topic).is_none() {
        return Err(Refusal {
            code: ErrorCode::UnknownTopicOrPartition,
            message: Some(format!("The topic '{}' does not exist.", alteration.topic)),
        });
    }
    Ok(configs)
}

/// APPEND or SUBTRACT the comma-separated `items` to or from list config `key`, whose value
/// is the topic's or else the default (Kafka's `ConfigurationControlManager`).
fn list_operation(
    configs: &BTreeMap<String, String>,
    key: &str,
    items: Option<&str>,
    append: bool,
) -> Result<String, Refusal> {
    let spec = KAFKA_TOPIC_CONFIGS.iter().find(|spec| spec.name == key);
    let Some(spec) = spec.filter(|spec| spec.config_type == ConfigType::List) else {
        let operation = if append { "APPEND" } else { "SUBTRACT" };
        return Err(Refusal {
            code: ErrorCode::InvalidConfig,
            message: Some(format!("Can't {operation} to key {key} because its type is not LIST.")),
        });
    };
    let current = configs.get(key).map_or(spec.default, String::as_str);
    let split = |value: &str| -> Vec<String> {
        value.split(',').map(str::trim).filter(|item| !item.is_empty()).map(String::from).collect()
    };
    let mut list = split(current);
    for item in split(items.unwrap_or_default()) {
        if append && !list.contains(&item) {
            list.push(item);
        } else if !append {
            list.retain(|kept| *kept != item);
        }
    }
    Ok(list.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::topics::TopicMeta;

    fn registry(configs: &[(&str, &str)]) -> TopicSnapshot {
        let configs = configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TopicSnapshot::new([TopicMeta {
            name: "t".into(),
            id: uuid::Uuid::nil(),
            partition_count: 1,
            configs,
            replicas: Vec::new(),
            replica_directories: Vec::new(),
        }])
    }

    fn check(
        existing: &[(&str, &str)],
        replace: bool,
        operations: &[(&str, Operation)],
        expected: Result<&[(&str, &str)], ErrorCode>,
    ) {
        let current = registry(existing);
        let operations = operations.iter().map(|(k, o)| (k.to_string(), o.clone())).collect();
        let alteration = Alteration { topic: "t".into(), replace, operations };
        let configs = current.get("t").map(|topic| &topic.configs);
        let outcome = altered_configs(&current, &alteration, configs, false);
        match expected {
            Ok(pairs) => {
                let expected: BTreeMap<String, String> =
                    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                assert_eq!(outcome.map_err(|r| r.code), Ok(expected), "{alteration:?}");
            }
            Err(code) => assert_eq!(outcome.map_err(|r| r.code), Err(code), "{alteration:?}"),
        }
    }

    fn set(value: &str) -> Operation {
        Operation::Set(Some(value.to_string()))
    }

    #[test]
    fn incremental_operations_follow_kafka() {
        use Operation::{Append, Delete, Subtract};
        let some = |value: &str| Some(value.to_string());
        check(
            &[("retention.ms", "5")],
            false,
            &[("segment.ms", set("9"))],
            Ok(&[("retention.ms", "5"), ("segment.ms", "9")]),
        );
        check(&[("retention.ms", "5")], false, &[("retention.ms", Delete)], Ok(&[]));
        check(&[], false, &[("no.such", Delete)], Ok(&[]));
        check(
            &[],
            false,
            &[("cleanup.policy", Append(some("compact")))],
            Ok(&[("cleanup.policy", "delete,compact")]),
        );
        check(
            &[("cleanup.policy", "compact")],
            false,
            &[("cleanup.policy", Append(some("compact")))],
            Ok(&[("cleanup.policy", "compact")]),
        );
        check(
            &[("cleanup.policy", "compact")],
            false,
            &[("cleanup.policy", Subtract(some("compact")))],
            Ok(&[("cleanup.policy", "")]),
        );
        check(&[], false, &[("retention.ms", Append(some("5")))], Err(ErrorCode::InvalidConfig));
        check(
            &[],
            false,
            &[("cleanup.policy", Append(some("nope")))],
            Err(ErrorCode::InvalidConfig),
        );
        check(&[], false, &[("retention.ms", set("soon"))], Err(ErrorCode::InvalidConfig));
        check(&[], false, &[("no.such", set("1"))], Err(ErrorCode::InvalidConfig));
    }

    #[test]
    fn alter_configs_replaces_every_explicit_config() {
        check(
            &[("retention.ms", "5"), ("segment.ms", "9")],
            true,
            &[("segment.ms", set("7"))],
            Ok(&[("segment.ms", "7")]),
        );
        check(
            &[("retention.ms", "5")],
            true,
            &[("retention.ms", Operation::Set(None))],
            Err(ErrorCode::InvalidConfig),
        );
    }

    #[test]
    fn names_then_values_then_existence() {
        let current = registry(&[]);
        let alteration = |topic: &str, value: &str| Alteration {
            topic: topic.into(),
            replace: false,
            operations: vec![("retention.ms".into(), set(value))],
        };
        let code = |alteration: Alteration| {
            altered_configs(&current, &alteration, None, false).map(|_| ()).map_err(|r| r.code)
        };
        assert_eq!(code(alteration("bad name!", "x")), Err(ErrorCode::InvalidTopicException));
        assert_eq!(code(alteration("nope", "x")), Err(ErrorCode::InvalidConfig));
        assert_eq!(code(alteration("nope", "5")), Err(ErrorCode::UnknownTopicOrPartition));
    }

    #[test]
    fn broker_resources_and_duplicate_keys_are_invalid_requests() {
        let operations = || vec![("retention.ms".to_string(), set("1"))];
        for resource_type in [RESOURCE_TYPE_BROKER, RESOURCE_TYPE_BROKER_LOGGER, 3] {
            let refused = resource_alteration(resource_type, "1", operations(), false);
            assert_eq!(refused.map_err(|r| r.code), Err(ErrorCode::InvalidRequest));
        }
        let twice = [operations(), operations()].concat();
        let refused = resource_alteration(RESOURCE_TYPE_TOPIC, "t", twice, false);
        assert_eq!(refused.map_err(|r| r.code), Err(ErrorCode::InvalidRequest));
        assert!(resource_alteration(RESOURCE_TYPE_TOPIC, "t", operations(), true).is_ok());
    }
}
