//! The schema-driven boundary test (issue 12): for every API and version `tern` advertises in
//! ApiVersions, well-formed requests built from Kafka's own message schemas (read at test time
//! from the kafka-clients jar that `benches/peers/kafka.sh` resolves; never committed), each
//! with one field at a boundary (`common::schema::boundary_changes`): strings and bytes at
//! lengths 0 and 32,767 (compact ones also 32,768 and 100,000) or null, arrays at 0 and 5,000
//! elements or null, integers at their minimum, -1, 0 and maximum. The other fields name an
//! existing topic and group.
//!
//! The property, for Tern: every request is answered (a frame with its correlation id that
//! decodes for that API and version) or the connection is closed, within `ANSWER_BOUND`, and
//! the process stays up (a fresh ApiVersions is answered); the connection is closed only for a
//! value longer than 32,767 bytes. The same requests then go to Apache
//! Kafka 4.4.0, the control; where the two differ (answered or closed, error codes) is printed
//! and listed in docs/compatibility.md, never a failure.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Decodable;

use common::differential::{self as harness, Pair};
use common::kafka_peer::KafkaPeer;
use common::schema::{self, Change, Encoder, Kind, Primitive, Schema, Slot, Value};
use common::{run_checked, test_dir, TernServer};

/// How long Tern may take to answer or close: past it, a request counts as unanswered.
const ANSWER_BOUND: Duration = Duration::from_secs(10);
/// The same for Kafka, shorter: Kafka leaves some of these requests unanswered for good (an
/// exception in its request handler sends no response and keeps the connection open), and
/// each would cost the whole bound.
const CONTROL_ANSWER_BOUND: Duration = Duration::from_secs(2);
/// The whole Kafka half may take this long; the cases it does not reach are listed as not
/// compared. Most of a run's cost on Kafka is its unanswered requests, each costing
/// `CONTROL_ANSWER_BOUND`, so the cap keeps the test inside its CI share.
const CONTROL_BUDGET: Duration = Duration::from_secs(90);
/// A case slower than this is reported as it happens.
const SLOW: Duration = Duration::from_secs(1);
/// Responses larger than this are not read (none of these requests should need it).
const RESPONSE_BYTES_MAX: usize = 256 << 20;

const TOPIC: &str = "boundary";
const TOPIC_PARTITIONS: i32 = 2;
const GROUP: &str = "boundary-group";
/// Named only by the deleting APIs (DeleteTopics, DeleteGroups), so the others keep theirs.
const VICTIM_TOPIC: &str = "boundary-victim";
const VICTIM_GROUP: &str = "boundary-victim-group";
/// JoinGroup cases each name a fresh group: this prefix and the case's number.
const JOIN_GROUP_PREFIX: &str = "boundary-join-";

// ---- Kafka's schemas, from the jar Maven resolved -------------------------------------------

/// `common/message/*.json` of the kafka-clients jar on `kafka.sh classpath`, unpacked under
/// cargo's target dir.
fn schema_dir() -> &'static Path {
    static DIRECTORY: OnceLock<PathBuf> = OnceLock::new();
    DIRECTORY.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/peers/kafka.sh");
        let output = run_checked(
            Command::new("bash").arg(script).arg("classpath"),
            "benches/peers/kafka.sh classpath (Java 17 and Maven are installed by .ci/run)",
        );
        let classpath = String::from_utf8_lossy(&output.stdout).into_owned();
        let jar = classpath
            .trim()
            .split(':')
            .find(|entry| entry.contains("/kafka-clients-") && entry.ends_with(".jar"))
            .expect("kafka-clients on Kafka's classpath")
            .to_string();
        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kafka-message-schemas");
        let _ = std::fs::remove_dir_all(&target);
        run_checked(
            Command::new("unzip")
                .args(["-q", "-o", &jar, "common/message/*.json", "-d"])
                .arg(&target),
            "unzip the message schemas from kafka-clients",
        );
        target.join("common").join("message")
    })
}

// ---- the fixtures each broker's requests name ----------------------------------------------

/// What a broker's base requests refer to: its existing topic (by name or id) and group.
struct Fixtures {
    topic_id: [u8; 16],
    batch: Vec<u8>,
}

/// Creates the topics and groups on both brokers, a record in each partition, waits until
/// Kafka's coordinators have loaded, and returns (Tern's fixtures, Kafka's).
fn create_fixtures(pair: &mut Pair) -> (Fixtures, Fixtures) {
    let _ = pair.both(5, &harness::create_request(TOPIC, TOPIC_PARTITIONS, &[]));
    let _ = pair.both(5, &harness::create_request(VICTIM_TOPIC, 1, &[]));
    harness::wait_for_leaders(pair, TOPIC);
    harness::wait_for_leaders(pair, VICTIM_TOPIC);
    for partition in 0..TOPIC_PARTITIONS {
        let batch = harness::batch(now_ms(), &["v"]);
        let request = harness::produce_request(TOPIC, partition, -1, batch);
        let _ = pair.both(7, &request);
    }
    for group in [GROUP, VICTIM_GROUP] {
        harness::wait_for_group_load(pair, group);
        let _ = pair.both(2, &commit_request(group));
    }
    wait_for_producer_ids(pair);
    let id_of = |connection: &mut common::kafka::Connection| {
        let metadata: kafka_protocol::messages::MetadataResponse =
            connection.call(12, &harness::metadata_request(Some(&[TOPIC]), false));
        *metadata.topics[0].topic_id.as_bytes()
    };
    let batch = harness::batch(now_ms(), &["boundary"]).to_vec();
    let tern = Fixtures { topic_id: id_of(&mut pair.tern), batch: batch.clone() };
    let kafka = Fixtures { topic_id: id_of(&mut pair.kafka), batch };
    (tern, kafka)
}

/// Records carry the current time, so retention (7 days by default) keeps them.
fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.expect("a clock after 1970").as_millis() as i64
}

fn commit_request(group: &str) -> kafka_protocol::messages::OffsetCommitRequest {
    use kafka_protocol::messages::offset_commit_request::*;
    use kafka_protocol::messages::{GroupId, OffsetCommitRequest};
    let partition = OffsetCommitRequestPartition::default().with_committed_offset(1);
    let topic = OffsetCommitRequestTopic::default()
        .with_name(harness::name(TOPIC))
        .with_partitions(vec![partition]);
    OffsetCommitRequest::default()
        .with_group_id(GroupId(harness::text(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![topic])
}

/// Kafka refuses InitProducerId (COORDINATOR_LOAD_IN_PROGRESS) until its first id block.
fn wait_for_producer_ids(pair: &mut Pair) {
    let request = kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while pair.kafka.call(4, &request).error_code == 14 {
        assert!(Instant::now() < deadline, "Kafka never allocated producer ids");
        sleep(Duration::from_millis(200));
    }
}

// ---- base values: a valid request naming the fixtures ---------------------------------------

/// The value of a field in the base (valid) request; a boundary case changes one of them.
fn base_value(slot: &Slot, fixtures: &Fixtures) -> Value {
    if let Some(value) = chosen_value(slot) {
        return value;
    }
    let field = slot.field;
    let primitive = match (&field.kind, slot.element) {
        (Kind::Primitive(primitive), _) => *primitive,
        (Kind::Array(element), true) => match **element {
            Kind::Primitive(primitive) => primitive,
            _ => unreachable!("only arrays of primitives have element slots"),
        },
        (Kind::Struct(_), _) => return Value::Struct(true),
        (Kind::Array(_), false) => return Value::Array(Some(1)),
    };
    let default = field.default.as_deref();
    match primitive {
        Primitive::Bool => Value::Bool(default == Some("true")),
        Primitive::Float64 => Value::Float(default.and_then(|d| d.parse().ok()).unwrap_or(0.0)),
        Primitive::Uuid => Value::Uuid(base_uuid(slot, fixtures)),
        Primitive::Records => Value::Bytes(Some(fixtures.batch.clone())),
        Primitive::Bytes => Value::Bytes(Some(Vec::new())),
        Primitive::String => Value::Bytes(base_string(slot)),
        _ => Value::Int(default.map_or(0, parse_integer)),
    }
}

fn parse_integer(text: &str) -> i64 {
    match text.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).expect("a hex default"),
        None => text.parse().unwrap_or_else(|_| panic!("an integer default: {text}")),
    }
}

/// A topic id where the topic is named by id alone (Fetch v13+); nil beside a name.
fn base_uuid(slot: &Slot, fixtures: &Fixtures) -> [u8; 16] {
    let named = slot.siblings.iter().any(|field| field.entity.as_deref() == Some("topicName"));
    if slot.field.name == "TopicId" && !named {
        fixtures.topic_id
    } else {
        [0; 16]
    }
}

fn base_string(slot: &Slot) -> Option<Vec<u8>> {
    let nullable = slot.field.nullable.contains(slot.version);
    let text = match slot.field.entity.as_deref() {
        Some("topicName") if slot.api == "DeleteTopicsRequest" => VICTIM_TOPIC,
        Some("topicName") => TOPIC,
        Some("groupId") if slot.api == "DeleteGroupsRequest" => VICTIM_GROUP,
        // Each join gets its own group: a join that made a member, or left a pending one
        // (MEMBER_ID_REQUIRED), would hold the next join of the group at its barrier for a
        // whole session timeout, in Kafka as in Tern.
        Some("groupId") if slot.api == "JoinGroupRequest" => {
            return Some(format!("{JOIN_GROUP_PREFIX}{}", slot.salt).into_bytes())
        }
        Some("groupId") => GROUP,
        Some("transactionalId") if nullable => return None,
        _ => match slot.field.default.as_deref() {
            Some("null") if nullable => return None,
            Some(default) => default,
            None => "",
        },
    };
    Some(text.as_bytes().to_vec())
}

/// Values a valid request needs that the schema's defaults do not give (by field path).
fn chosen_value(slot: &Slot) -> Option<Value> {
    let path = slot.path;
    let text = |value: &str| Some(Value::Bytes(Some(value.as_bytes().to_vec())));
    let ends = |suffix: &str| path == suffix || path.ends_with(&format!(".{suffix}"));
    let integer = |value: i64| Some(Value::Int(value));
    match (slot.api, path) {
        ("JoinGroupRequest", "ProtocolType") => return text("consumer"),
        ("JoinGroupRequest", "Protocols.Name") => return text("range"),
        ("FindCoordinatorRequest", "Key" | "CoordinatorKeys[]") => return text(GROUP),
        ("CreateTopicsRequest", "Topics.Assignments") => return Some(Value::Array(Some(0))),
        ("CreatePartitionsRequest", "Topics.Assignments") => return Some(Value::Array(None)),
        ("CreatePartitionsRequest", "Topics.Count") => return integer(TOPIC_PARTITIONS.into()),
        ("ListOffsetsRequest", "Topics.Partitions.Timestamp") => return integer(-1),
        ("FetchRequest", "ForgottenTopicsData") => return Some(Value::Array(Some(0))),
        ("MetadataRequest", "AllowAutoTopicCreation") => return Some(Value::Bool(false)),
        _ => {}
    }
    if ends("Configs.Name") || ends("ConfigurationKeys[]") {
        return text("retention.ms");
    }
    if ends("Configs.Value") {
        return text("604800000");
    }
    let leaf = path.rsplit('.').next().unwrap_or(path);
    match leaf {
        "MaxWaitMs" => integer(0),
        "MaxBytes" | "PartitionMaxBytes" => integer(1 << 20),
        "TimeoutMs" => integer(5_000),
        "Acks" => integer(-1),
        "NumPartitions" | "ReplicationFactor" => integer(1),
        "SessionTimeoutMs" | "RebalanceTimeoutMs" => integer(10_000),
        "TransactionTimeoutMs" => integer(60_000),
        "ResourceType" => integer(2),
        "ResourceName" => text(TOPIC),
        "ClientSoftwareName" => text("tern-boundary"),
        "ClientSoftwareVersion" => text("1.0"),
        "StatesFilter" | "TypesFilter" => Some(Value::Array(Some(0))),
        "ReplicaId" if slot.field.default.is_none() => integer(-1),
        _ => None,
    }
}

// ---- the plan: every (API, version, change), deduplicated ----------------------------------

struct Case {
    api_key: ApiKey,
    schema: usize,
    version: i16,
    /// `None`: the base request itself.
    change: Option<Change>,
}

impl Case {
    fn label(&self, schemas: &[Schema]) -> String {
        let api = schemas[self.schema].name.trim_end_matches("Request");
        match &self.change {
            None => format!("{api} v{}: base request", self.version),
            Some(change) => format!(
                "{api} v{} {} = {}",
                self.version,
                change.path,
                schema::describe(&change.value)
            ),
        }
    }

    /// The request body for a broker with these fixtures; `salt` makes per-request names
    /// unique (0 when requests are compared for duplicates).
    fn body(&self, schemas: &[Schema], fixtures: &Fixtures, salt: usize) -> Vec<u8> {
        let schema = &schemas[self.schema];
        let base = |slot: &Slot| base_value(slot, fixtures);
        let encoder = Encoder {
            api: &schema.name,
            version: self.version,
            flexible: schema.flexible.contains(self.version),
            base: &base,
            change: self.change.as_ref(),
            salt,
        };
        encoder.body(schema)
    }
}

/// The base request and every boundary change of each advertised API version; a change that
/// encodes to bytes already planned for that version (a value equal to the base) is dropped.
fn plan(schemas: &[Schema], advertised: &[(i16, i16, i16)], fixtures: &Fixtures) -> Vec<Case> {
    let mut cases = Vec::new();
    for &(key, min_version, max_version) in advertised {
        let api_key = ApiKey::try_from(key).expect("an API the crate knows");
        let schema = schemas.iter().position(|schema| schema.api_key == key);
        let schema = schema.unwrap_or_else(|| panic!("no Kafka schema for API {key}"));
        for version in min_version..=max_version {
            let mut seen = BTreeSet::new();
            let changes = schema::boundary_changes(&schemas[schema], version);
            for change in std::iter::once(None).chain(changes.into_iter().map(Some)) {
                let case = Case { api_key, schema, version, change };
                if !large_case_kept(&schemas[case.schema], &case, min_version, max_version) {
                    continue;
                }
                let mut hasher = DefaultHasher::new();
                case.body(schemas, fixtures, 0).hash(&mut hasher);
                if seen.insert(hasher.finish()) {
                    cases.push(case);
                }
            }
        }
    }
    cases
}

/// Fetch's 5,000-topic and 5,000-partition cases are the slowest of the run: they are sent at
/// the first and last version advertised and wherever the request's form changes (becomes
/// flexible, names topics by id), and not at the versions in between, which only add fields.
fn large_case_kept(schema: &Schema, case: &Case, min_version: i16, max_version: i16) -> bool {
    let large = matches!(&case.change,
        Some(Change { value: Value::Array(Some(count)), .. }) if *count == schema::ARRAY_LARGE);
    if case.api_key != ApiKey::Fetch || !large {
        return true;
    }
    let form = |version: i16| {
        (schema.flexible.contains(version), has_field(&schema.fields, "TopicId", version))
    };
    let version = case.version;
    version == min_version || version == max_version || form(version) != form(version - 1)
}

/// Whether a field of this name exists at `version`, at any depth.
fn has_field(fields: &[schema::Field], name: &str, version: i16) -> bool {
    fields.iter().filter(|field| field.versions.contains(version)).any(|field| {
        let mut kind = &field.kind;
        while let Kind::Array(element) = kind {
            kind = element;
        }
        field.name == name || matches!(kind, Kind::Struct(inner) if has_field(inner, name, version))
    })
}

// ---- one broker, one request at a time over raw TCP ---------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// A decodable response; the distinct error codes anywhere in it.
    Answered(Vec<i16>),
    /// Produce with acks=0: no response, and the next request on the connection is answered.
    Silent,
    Closed,
    /// Neither an answer nor a close within the bound (seconds).
    NoAnswer(u64),
    /// A frame that is not this request's response.
    Garbage(String),
    /// The process exited (Tern only).
    Crashed,
    /// The process is up but a fresh ApiVersions is not answered.
    Unresponsive,
    /// Not sent to the control (why): it left an earlier request of this API unanswered, or
    /// its budget was spent.
    NotCompared(&'static str),
}

impl Outcome {
    fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::NoAnswer(_) | Outcome::Garbage(_) | Outcome::Crashed | Outcome::Unresponsive
        )
    }

    fn summary(&self) -> String {
        match self {
            Outcome::Answered(codes) => format!("answered {codes:?}"),
            Outcome::Silent => "no response (acks=0)".to_string(),
            Outcome::Closed => "closed".to_string(),
            Outcome::NoAnswer(seconds) => format!("no answer in {seconds} s"),
            Outcome::Garbage(why) => format!("undecodable answer ({why})"),
            Outcome::Crashed => "process exited".to_string(),
            Outcome::Unresponsive => "stopped answering".to_string(),
            Outcome::NotCompared(why) => format!("not compared ({why})"),
        }
    }
}

struct Result {
    outcome: Outcome,
    elapsed: Duration,
}

enum Received {
    Frame(Bytes),
    Closed,
    Timeout,
}

/// A raw connection: frames out, frames in, nothing decoded for us.
struct Raw {
    stream: TcpStream,
    correlation_id: i32,
}

impl Raw {
    fn connect(bootstrap: &str, bound: Duration) -> Option<Raw> {
        let stream = TcpStream::connect(bootstrap).ok()?;
        stream.set_read_timeout(Some(bound)).ok()?;
        stream.set_write_timeout(Some(bound)).ok()?;
        stream.set_nodelay(true).ok()?;
        Some(Raw { stream, correlation_id: 0 })
    }

    /// Sends a request (header v1, or v2 in flexible versions); returns its correlation id,
    /// or `None` if the broker closed the connection while it was being written.
    fn send(&mut self, api_key: ApiKey, version: i16, body: &[u8]) -> Option<i32> {
        self.correlation_id += 1;
        let client_id = b"tern-boundary";
        let mut frame = Vec::with_capacity(body.len() + 32);
        frame.extend([0; 4]);
        frame.extend((api_key as i16).to_be_bytes());
        frame.extend(version.to_be_bytes());
        frame.extend(self.correlation_id.to_be_bytes());
        frame.extend((client_id.len() as i16).to_be_bytes());
        frame.extend(client_id);
        if api_key.request_header_version(version) >= 2 {
            frame.push(0); // no tagged fields
        }
        frame.extend_from_slice(body);
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&frame).ok()?;
        Some(self.correlation_id)
    }

    fn read_frame(&mut self) -> Received {
        let mut size = [0u8; 4];
        if let Err(error) = self.stream.read_exact(&mut size) {
            return read_error(&error);
        }
        let size = i32::from_be_bytes(size);
        let Ok(size) = usize::try_from(size) else { return Received::Frame(Bytes::new()) };
        if size > RESPONSE_BYTES_MAX {
            return Received::Frame(Bytes::new());
        }
        let mut body = vec![0u8; size];
        match self.stream.read_exact(&mut body) {
            Ok(()) => Received::Frame(Bytes::from(body)),
            Err(error) => read_error(&error),
        }
    }
}

fn read_error(error: &std::io::Error) -> Received {
    use std::io::ErrorKind::{TimedOut, WouldBlock};
    if matches!(error.kind(), WouldBlock | TimedOut) {
        Received::Timeout
    } else {
        Received::Closed
    }
}

/// Decodes `frame` as the response to (`api_key`, `version`, `correlation_id`).
fn decode(
    frame: Bytes,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> (Outcome, Option<ResponseKind>) {
    let garbage = |why: String| (Outcome::Garbage(why), None);
    let mut body = frame;
    let header = ResponseHeader::decode(&mut body, api_key.response_header_version(version));
    match header {
        Ok(header) if header.correlation_id == correlation_id => {}
        Ok(header) => return garbage(format!("correlation id {}", header.correlation_id)),
        Err(error) => return garbage(format!("header: {error}")),
    }
    match ResponseKind::decode(api_key, &mut body, version) {
        Ok(_) if body.has_remaining() => {
            garbage(format!("{} bytes after the response", body.remaining()))
        }
        Ok(response) => (Outcome::Answered(error_codes(&response)), Some(response)),
        Err(error) => garbage(format!("{error}")),
    }
}

/// Every distinct `error_code` in a response, found in its debug form (one generic
/// extraction for all APIs, top-level and per partition alike).
fn error_codes(response: &ResponseKind) -> Vec<i16> {
    let text = format!("{response:?}");
    let mut codes: Vec<i16> = text
        .split("error_code: ")
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find(|c: char| c != '-' && !c.is_ascii_digit()).unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect();
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// Sends the cases to one broker in order, reusing a connection while it answers.
struct Runner<'a> {
    bootstrap: String,
    server: Option<&'a mut TernServer>,
    connection: Option<Raw>,
    bound: Duration,
    /// For the control only: what it is no longer asked.
    control: Option<Control>,
}

/// Kafka leaves some requests unanswered (and then, for Produce, every later one of that API
/// too), each costing the whole answer bound: after its first no-answer in an API version the
/// rest of that version is not sent, after a no-answer to a version's base request the rest of
/// the API, and nothing is sent past the budget's deadline.
///
/// Nor is it sent an array of 5,000 copies of one keyed element: Kafka reads such arrays into
/// a hash collection by key, and 5,000 equal keys keep a network thread busy for over a minute
/// (a Produce naming one topic 5,000 times, seen in a thread dump of 4.4.0 in
/// `ImplicitLinkedHashCollection.add`); three of them take every listener thread, and Kafka
/// answers nothing more. If Kafka does stop answering, nothing more is sent to it.
struct Control {
    deadline: Instant,
    /// (API key, version); `None` for the whole API.
    silenced: BTreeSet<(i16, Option<i16>)>,
    stopped: bool,
}

impl Control {
    fn new(budget: Duration) -> Control {
        let silenced = BTreeSet::new();
        Control { deadline: Instant::now() + budget, silenced, stopped: false }
    }

    fn skipped(&self, schema: &Schema, case: &Case) -> Option<&'static str> {
        let api = case.api_key as i16;
        let silenced = |version| self.silenced.contains(&(api, version));
        if self.stopped {
            Some("Kafka stopped answering")
        } else if silenced(None) || silenced(Some(case.version)) {
            Some("an earlier one went unanswered")
        } else if repeats_a_map_key(schema, case) {
            Some("5,000 equal map keys")
        } else if Instant::now() > self.deadline {
            Some("budget spent")
        } else {
            None
        }
    }

    fn note(&mut self, case: &Case, outcome: &Outcome, bootstrap: &str) {
        if matches!(outcome, Outcome::NoAnswer(_)) {
            self.silenced.insert((case.api_key as i16, Some(case.version)));
            if case.change.is_none() {
                self.silenced.insert((case.api_key as i16, None));
            }
            self.stopped = !answers_api_versions(bootstrap);
        }
    }
}

/// Whether the case is a large array of structs that Kafka keys by one of their fields (all
/// copies of the base element, so all with one key).
fn repeats_a_map_key(schema: &Schema, case: &Case) -> bool {
    let Some(Change { path, value: Value::Array(Some(count)) }) = &case.change else {
        return false;
    };
    let mut fields = schema.fields.as_slice();
    let mut found = None;
    for name in path.split('.') {
        let field = fields.iter().find(|field| field.name == name);
        let Some(field) = field.filter(|field| field.versions.contains(case.version)) else {
            return false;
        };
        found = Some(field);
        let mut kind = &field.kind;
        while let Kind::Array(element) = kind {
            kind = element;
        }
        fields = match kind {
            Kind::Struct(inner) => inner.as_slice(),
            Kind::Primitive(_) | Kind::Array(_) => &[],
        };
    }
    *count == schema::ARRAY_LARGE
        && found.is_some()
        && fields.iter().any(|field| field.map_key && field.versions.contains(case.version))
}

impl Runner<'_> {
    fn run(&mut self, schemas: &[Schema], fixtures: &Fixtures, cases: &[Case]) -> Vec<Result> {
        cases
            .iter()
            .enumerate()
            .map(|(index, case)| {
                let schema = &schemas[case.schema];
                let skipped =
                    self.control.as_ref().and_then(|control| control.skipped(schema, case));
                if let Some(why) = skipped {
                    return Result { outcome: Outcome::NotCompared(why), elapsed: Duration::ZERO };
                }
                let started = Instant::now();
                let body = case.body(schemas, fixtures, index + 1);
                let (outcome, response) = self.exchange(case, &body);
                let outcome = self.after(case, index + 1, outcome, response);
                if let Some(control) = self.control.as_mut() {
                    control.note(case, &outcome, &self.bootstrap);
                }
                let elapsed = started.elapsed();
                if elapsed > SLOW || outcome.is_failure() {
                    let label = case.label(schemas);
                    eprintln!(
                        "{}: {label}: {} in {elapsed:.1?}",
                        self.bootstrap,
                        outcome.summary()
                    );
                }
                Result { outcome, elapsed }
            })
            .collect()
    }

    fn exchange(&mut self, case: &Case, body: &[u8]) -> (Outcome, Option<ResponseKind>) {
        if self.connection.is_none() {
            self.connection = Raw::connect(&self.bootstrap, self.bound);
        }
        let Some(connection) = self.connection.as_mut() else { return (Outcome::Closed, None) };
        let Some(correlation_id) = connection.send(case.api_key, case.version, body) else {
            return (Outcome::Closed, None);
        };
        let silent = case.api_key == ApiKey::Produce && acks(case) == Some(0);
        let probe = if silent { connection.send(ApiKey::ApiVersions, 0, &[]) } else { None };
        let started = Instant::now();
        let no_answer = Outcome::NoAnswer(self.bound.as_secs());
        match connection.read_frame() {
            Received::Frame(_) if started.elapsed() > self.bound => (no_answer, None),
            Received::Frame(frame)
                if probe.is_some() && frame.get(..4) == Some(&probe_id(probe)) =>
            {
                (Outcome::Silent, None)
            }
            Received::Frame(frame) => decode(frame, case.api_key, case.version, correlation_id),
            Received::Closed => (Outcome::Closed, None),
            Received::Timeout => (no_answer, None),
        }
    }

    /// After anything but an answer: drop the connection and check that the broker is alive
    /// and answers a fresh ApiVersions; a dead or wedged Tern is restarted for the next case.
    fn after(
        &mut self,
        case: &Case,
        salt: usize,
        outcome: Outcome,
        response: Option<ResponseKind>,
    ) -> Outcome {
        if matches!(outcome, Outcome::Answered(_) | Outcome::Silent) {
            if let Some(ResponseKind::JoinGroup(joined)) = response {
                if joined.error_code == 0 {
                    self.leave(&joined_group(case, salt), joined.member_id.as_str());
                }
            }
            return outcome;
        }
        self.connection = None;
        let Some(server) = self.server.as_deref_mut() else { return outcome };
        let outcome = if answers_api_versions(&self.bootstrap) {
            return outcome;
        } else if exits_soon(server) {
            Outcome::Crashed
        } else {
            Outcome::Unresponsive
        };
        server.kill9();
        server.restart();
        self.bootstrap = server.bootstrap();
        outcome
    }

    /// A JoinGroup that made the client a member: leave again, or the next join of that group
    /// waits out this member's session (longer than the answer bound).
    fn leave(&mut self, group: &[u8], member_id: &str) {
        use kafka_protocol::messages::{GroupId, LeaveGroupRequest};
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let group = StrBytes::from_string(String::from_utf8_lossy(group).into_owned());
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(group))
            .with_member_id(StrBytes::from_string(member_id.to_string()));
        let mut body = bytes::BytesMut::new();
        request.encode(&mut body, 0).expect("encode LeaveGroup v0");
        let Some(connection) = self.connection.as_mut() else { return };
        if connection.send(ApiKey::LeaveGroup, 0, &body).is_none()
            || !matches!(connection.read_frame(), Received::Frame(_))
        {
            self.connection = None;
        }
    }
}

/// The group a JoinGroup case named: the fixture group unless the case changed it.
fn joined_group(case: &Case, salt: usize) -> Vec<u8> {
    match &case.change {
        Some(Change { path, value: Value::Bytes(Some(group)) }) if path == "GroupId" => {
            group.clone()
        }
        _ => format!("{JOIN_GROUP_PREFIX}{salt}").into_bytes(),
    }
}

/// Whether the server exits within a second (an abort takes a moment after its socket closes).
fn exits_soon(server: &mut TernServer) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    while server.is_running() {
        if Instant::now() > deadline {
            return false;
        }
        sleep(Duration::from_millis(20));
    }
    true
}

fn probe_id(probe: Option<i32>) -> [u8; 4] {
    probe.unwrap_or(-1).to_be_bytes()
}

fn acks(case: &Case) -> Option<i64> {
    match &case.change {
        Some(Change { path, value: Value::Int(acks) }) if path == "Acks" => Some(*acks),
        _ => None,
    }
}

/// A fresh connection, ApiVersions v0, answered within the bound.
fn answers_api_versions(bootstrap: &str) -> bool {
    let Some(mut connection) = Raw::connect(bootstrap, ANSWER_BOUND) else { return false };
    let Some(correlation_id) = connection.send(ApiKey::ApiVersions, 0, &[]) else { return false };
    match connection.read_frame() {
        Received::Frame(frame) => matches!(
            decode(frame, ApiKey::ApiVersions, 0, correlation_id),
            (Outcome::Answered(_), _)
        ),
        _ => false,
    }
}

// ---- the report ----------------------------------------------------------------------------

/// Where the two brokers' outcomes differ, one line per (API, field, value, Tern, Kafka) with
/// the versions it holds for, in API-key order.
fn differences(
    schemas: &[Schema],
    cases: &[Case],
    tern: &[Result],
    kafka: &[Result],
) -> Vec<String> {
    type Key = (i16, String, String, String, String);
    let mut grouped: BTreeMap<Key, Vec<i16>> = BTreeMap::new();
    for ((case, tern), kafka) in cases.iter().zip(tern).zip(kafka) {
        if tern.outcome == kafka.outcome || matches!(kafka.outcome, Outcome::NotCompared(_)) {
            continue;
        }
        let (path, value) = match &case.change {
            None => ("(base request)".to_string(), String::new()),
            Some(change) => (change.path.clone(), schema::describe(&change.value)),
        };
        let api = schemas[case.schema].name.trim_end_matches("Request").to_string();
        let key = (
            case.api_key as i16,
            format!("{api}|{path}"),
            value,
            tern.outcome.summary(),
            kafka.outcome.summary(),
        );
        grouped.entry(key).or_default().push(case.version);
    }
    grouped
        .into_iter()
        .map(|((_, api_path, value, tern, kafka), versions)| {
            let (api, path) = api_path.split_once('|').unwrap_or_default();
            let versions = version_ranges(&versions);
            format!("| {api} | {versions} | `{path}` | {value} | {tern} | {kafka} |")
        })
        .collect()
}

/// The cases the control was not asked, one line per (API, reason) with its versions.
fn not_compared(schemas: &[Schema], cases: &[Case], kafka: &[Result]) -> Vec<String> {
    let mut grouped: BTreeMap<(i16, &str, &str), (Vec<i16>, usize)> = BTreeMap::new();
    for (case, result) in cases.iter().zip(kafka) {
        let Outcome::NotCompared(why) = result.outcome else { continue };
        let api = schemas[case.schema].name.trim_end_matches("Request");
        let (versions, count) = grouped.entry((case.api_key as i16, api, why)).or_default();
        if versions.last() != Some(&case.version) {
            versions.push(case.version);
        }
        *count += 1;
    }
    grouped
        .into_iter()
        .map(|((_, api, why), (versions, count))| {
            format!("{api} {}: {count} cases ({why})", version_ranges(&versions))
        })
        .collect()
}

/// `[3, 4, 5, 8]` → `v3-5, v8`.
fn version_ranges(versions: &[i16]) -> String {
    let mut ranges: Vec<(i16, i16)> = Vec::new();
    for &version in versions {
        match ranges.last_mut() {
            Some((_, last)) if *last + 1 == version => *last = version,
            _ => ranges.push((version, version)),
        }
    }
    let text: Vec<String> = ranges
        .iter()
        .map(
            |(first, last)| {
                if first == last {
                    format!("v{first}")
                } else {
                    format!("v{first}-{last}")
                }
            },
        )
        .collect();
    text.join(", ")
}

/// The slowest cases on each broker, and every Fetch that names 5,000 topics or partitions.
fn timings(schemas: &[Schema], cases: &[Case], tern: &[Result], kafka: &[Result]) -> String {
    let mut report = String::from("case | Tern ms | Kafka ms\n");
    let line = |index: usize| {
        let (tern, kafka) = (&tern[index], &kafka[index]);
        format!(
            "{} | {} ({}) | {} ({})\n",
            cases[index].label(schemas),
            tern.elapsed.as_millis(),
            tern.outcome.summary(),
            kafka.elapsed.as_millis(),
            kafka.outcome.summary()
        )
    };
    let large_fetch = |case: &Case| {
        case.api_key == ApiKey::Fetch
            && matches!(&case.change, Some(Change { value: Value::Array(Some(count)), .. })
                if *count == schema::ARRAY_LARGE)
    };
    let mut slowest: Vec<usize> = (0..cases.len()).collect();
    slowest.sort_by_key(|&index| std::cmp::Reverse(tern[index].elapsed.max(kafka[index].elapsed)));
    slowest.truncate(12);
    let fetches = (0..cases.len()).filter(|&index| large_fetch(&cases[index]));
    for index in fetches.chain(slowest) {
        report.push_str(&line(index));
    }
    report
}

fn advertised_apis(bootstrap: &str) -> Vec<(i16, i16, i16)> {
    let mut connection = common::kafka::Connection::connect(bootstrap);
    let response = connection.call(3, &kafka_protocol::messages::ApiVersionsRequest::default());
    assert_eq!(response.error_code, 0);
    let apis = response.api_keys.iter();
    apis.map(|api| (api.api_key, api.min_version, api.max_version)).collect()
}

#[test]
fn every_advertised_request_with_a_field_at_its_boundary_is_answered_or_refused() {
    let schemas = schema::load_request_schemas(schema_dir());
    let directory = test_dir("boundary");
    let kafka = KafkaPeer::start(&directory.join("kafka"));
    let arguments = ["--shards", "2", "--group-initial-rebalance-delay-ms", "0"];
    let mut tern = TernServer::start(&directory.join("tern"), &arguments);
    let mut pair = Pair::connect(&tern.bootstrap(), &kafka.bootstrap());
    let (tern_fixtures, kafka_fixtures) = create_fixtures(&mut pair);
    drop(pair);
    let advertised = advertised_apis(&tern.bootstrap());
    let cases = plan(&schemas, &advertised, &tern_fixtures);
    println!("{} APIs advertised, {} requests each way", advertised.len(), cases.len());

    // The two halves run side by side: each broker sees its requests one at a time, in order.
    let started = Instant::now();
    let (tern_bootstrap, kafka_bootstrap) = (tern.bootstrap(), kafka.bootstrap());
    let ((tern_results, tern_time), (kafka_results, kafka_time)) = std::thread::scope(|scope| {
        let kafka_half = scope.spawn(|| {
            let mut runner = Runner {
                bootstrap: kafka_bootstrap,
                server: None,
                connection: None,
                bound: CONTROL_ANSWER_BOUND,
                control: Some(Control::new(CONTROL_BUDGET)),
            };
            (runner.run(&schemas, &kafka_fixtures, &cases), started.elapsed())
        });
        let mut runner = Runner {
            bootstrap: tern_bootstrap,
            server: Some(&mut tern),
            connection: None,
            bound: ANSWER_BOUND,
            control: None,
        };
        let tern_half = (runner.run(&schemas, &tern_fixtures, &cases), started.elapsed());
        (tern_half, kafka_half.join().expect("the Kafka half"))
    });
    println!(
        "wall time: Tern {:.1} s, Kafka {:.1} s, both {:.1} s",
        tern_time.as_secs_f64(),
        kafka_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let skipped = not_compared(&schemas, &cases, &kafka_results);
    println!("\nnot sent to Kafka:\n{}", skipped.join("\n"));

    let differences = differences(&schemas, &cases, &tern_results, &kafka_results);
    println!(
        "\n{} differences from Apache Kafka 4.4.0 (documented, not failures):",
        differences.len()
    );
    println!("| API | versions | field | value | Tern | Kafka |\n|---|---|---|---|---|---|");
    println!("{}", differences.join("\n"));
    println!("\n{}", timings(&schemas, &cases, &tern_results, &kafka_results));

    let failures: Vec<String> = cases
        .iter()
        .zip(&tern_results)
        .filter(|(case, result)| result.outcome.is_failure() || closed_valid(case, result))
        .map(|(case, result)| format!("{}: {}", case.label(&schemas), result.outcome.summary()))
        .collect();
    assert!(tern.is_running(), "tern is down after the boundary requests");
    assert!(answers_api_versions(&tern.bootstrap()), "tern stopped answering");
    assert!(
        failures.is_empty(),
        "{} requests were not answered or refused cleanly by Tern:\n{}\n\nlog tail:\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&tern.log(), 40)
    );
    tern.stop();
}

/// A close is Tern's answer to a string over 32,767 bytes (as Kafka's); a request whose values
/// are all within the limits must be answered, with an error code if need be — even one whose
/// answer repeats a 32,767-byte name in an error message. Produce v0-v2 are the exception:
/// advertised and refused by closing, as Kafka 4 does (KIP-896 removed them; they stay
/// advertised for old librdkafka versions).
fn closed_valid(case: &Case, result: &Result) -> bool {
    let oversized = matches!(&case.change,
        Some(Change { value: Value::Bytes(Some(value)), .. }) if value.len() > 32_767);
    let removed = case.api_key == ApiKey::Produce && case.version < 3;
    result.outcome == Outcome::Closed && !oversized && !removed
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
