//! Kafka's own request schemas (the `common/message/*Request.json` files inside the
//! kafka-clients jar, read at test time and never committed) and a small encoder driven by
//! them: one generator for every API, so a boundary case is a field path and a value, not a
//! hand-written request.
//!
//! The schema format: a message has `apiKey`, `flexibleVersions` and `fields`; a field has
//! `name`, `type` (`int8`..`int64`, `uint16`, `float64`, `bool`, `uuid`, `string`, `bytes`,
//! `records`, a struct name, or `[]` + any of these), `versions`, optional `nullableVersions`,
//! `taggedVersions` + `tag`, `default`, `entityType`, and nested `fields` (or a struct from the
//! message's `commonStructs`).
#![allow(dead_code)]

use std::path::Path;

use serde_json::Value as Json;

/// An inclusive version range; `none` is the empty range.
#[derive(Debug, Clone, Copy)]
pub struct Versions {
    pub min: i16,
    pub max: i16,
}

impl Versions {
    const NONE: Versions = Versions { min: 1, max: 0 };

    fn parse(text: Option<&str>) -> Versions {
        let Some(text) = text.map(str::trim) else { return Versions::NONE };
        let number = |digits: &str| digits.trim().parse::<i16>().expect("a schema version");
        if text == "none" {
            Versions::NONE
        } else if let Some(min) = text.strip_suffix('+') {
            Versions { min: number(min), max: i16::MAX }
        } else if let Some((min, max)) = text.split_once('-') {
            Versions { min: number(min), max: number(max) }
        } else {
            Versions { min: number(text), max: number(text) }
        }
    }

    pub fn contains(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    Int8,
    Int16,
    Int32,
    Int64,
    Uint16,
    Float64,
    Bool,
    Uuid,
    String,
    Bytes,
    Records,
}

impl Primitive {
    fn parse(name: &str) -> Option<Primitive> {
        use Primitive::*;
        Some(match name {
            "int8" => Int8,
            "int16" => Int16,
            "int32" => Int32,
            "int64" => Int64,
            "uint16" => Uint16,
            "float64" => Float64,
            "bool" => Bool,
            "uuid" => Uuid,
            "string" => String,
            "bytes" => Bytes,
            "records" => Records,
            _ => return None,
        })
    }

    /// The integer range of an integer type.
    pub fn integer_range(self) -> Option<(i64, i64)> {
        match self {
            Primitive::Int8 => Some((i8::MIN.into(), i8::MAX.into())),
            Primitive::Int16 => Some((i16::MIN.into(), i16::MAX.into())),
            Primitive::Int32 => Some((i32::MIN.into(), i32::MAX.into())),
            Primitive::Int64 => Some((i64::MIN, i64::MAX)),
            Primitive::Uint16 => Some((0, u16::MAX.into())),
            _ => None,
        }
    }

    pub fn is_sized(self) -> bool {
        matches!(self, Primitive::String | Primitive::Bytes | Primitive::Records)
    }
}

#[derive(Debug, Clone)]
pub enum Kind {
    Primitive(Primitive),
    Struct(Vec<Field>),
    Array(Box<Kind>),
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub kind: Kind,
    pub versions: Versions,
    pub nullable: Versions,
    pub tagged: Versions,
    pub tag: u32,
    pub default: Option<String>,
    pub entity: Option<String>,
    /// Kafka keys the array holding this struct by this field (`mapKey`).
    pub map_key: bool,
}

/// One request message schema.
#[derive(Debug, Clone)]
pub struct Schema {
    pub name: String,
    pub api_key: i16,
    pub flexible: Versions,
    pub fields: Vec<Field>,
}

/// Every `*Request.json` under `directory` (Kafka's files start with `//` licence lines and
/// carry `//` comment lines inside the JSON).
pub fn load_request_schemas(directory: &Path) -> Vec<Schema> {
    let mut schemas = Vec::new();
    for entry in std::fs::read_dir(directory).expect("the schema directory") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if !name.ends_with("Request.json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a schema file");
        let json: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .map(|line| format!("{line}\n"))
            .collect();
        let json: Json = serde_json::from_str(&json)
            .unwrap_or_else(|error| panic!("{name}: not JSON after comments: {error}"));
        if json["type"] == "request" {
            schemas.push(parse_schema(&json));
        }
    }
    schemas.sort_by_key(|schema| schema.api_key);
    schemas
}

fn parse_schema(json: &Json) -> Schema {
    let common = json["commonStructs"].as_array().cloned().unwrap_or_default();
    Schema {
        name: json["name"].as_str().expect("a message name").to_string(),
        api_key: json["apiKey"].as_i64().expect("an apiKey") as i16,
        flexible: Versions::parse(json["flexibleVersions"].as_str()),
        fields: parse_fields(&json["fields"], &common),
    }
}

fn parse_fields(fields: &Json, common: &[Json]) -> Vec<Field> {
    let fields = fields.as_array().map(Vec::as_slice).unwrap_or_default();
    fields.iter().map(|field| parse_field(field, common)).collect()
}

fn parse_field(json: &Json, common: &[Json]) -> Field {
    let text = |key: &str| json[key].as_str().map(str::to_string);
    let type_name = text("type").expect("a field type");
    Field {
        name: text("name").expect("a field name"),
        kind: parse_kind(&type_name, json, common),
        versions: Versions::parse(json["versions"].as_str()),
        nullable: Versions::parse(json["nullableVersions"].as_str()),
        tagged: Versions::parse(json["taggedVersions"].as_str()),
        tag: json["tag"].as_u64().unwrap_or(0) as u32,
        default: match &json["default"] {
            Json::String(text) => Some(text.clone()),
            Json::Null => None,
            other => Some(other.to_string()),
        },
        entity: text("entityType"),
        map_key: json["mapKey"].as_bool().unwrap_or(false),
    }
}

fn parse_kind(type_name: &str, json: &Json, common: &[Json]) -> Kind {
    if let Some(element) = type_name.strip_prefix("[]") {
        return Kind::Array(Box::new(parse_kind(element, json, common)));
    }
    if let Some(primitive) = Primitive::parse(type_name) {
        return Kind::Primitive(primitive);
    }
    if json["fields"].is_array() {
        return Kind::Struct(parse_fields(&json["fields"], common));
    }
    let shared = common.iter().find(|candidate| candidate["name"] == type_name);
    let shared = shared.unwrap_or_else(|| panic!("struct {type_name} has no fields"));
    Kind::Struct(parse_fields(&shared["fields"], common))
}

// ---- values --------------------------------------------------------------------------------

/// A value for one field: a leaf value, or the shape of an array or struct (an array repeats
/// one base element `count` times).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Uuid([u8; 16]),
    /// A string, bytes or records; `None` is null.
    Bytes(Option<Vec<u8>>),
    /// An array of `count` base elements; `None` is null.
    Array(Option<usize>),
    /// A struct, present or null.
    Struct(bool),
}

/// What the base-value function is told about the field it fills in.
pub struct Slot<'a> {
    pub api: &'a str,
    pub version: i16,
    /// Dotted field names from the message root; `[]` names an array of primitives' element.
    pub path: &'a str,
    pub field: &'a Field,
    /// The fields of the enclosing struct that exist at `version` (to tell e.g. whether a
    /// topic is named or identified by id).
    pub siblings: &'a [Field],
    /// True for the element of an array of primitives.
    pub element: bool,
    /// Distinguishes one request from another where a base value must be unique per request
    /// (0 while requests are compared for duplicates).
    pub salt: usize,
}

/// The one field changed in a request, and its value there.
#[derive(Debug, Clone)]
pub struct Change {
    pub path: String,
    pub value: Value,
}

pub struct Encoder<'a> {
    pub api: &'a str,
    pub version: i16,
    pub flexible: bool,
    pub base: &'a dyn Fn(&Slot) -> Value,
    pub change: Option<&'a Change>,
    pub salt: usize,
}

impl Encoder<'_> {
    /// The request body (no header) for `schema` at the encoder's version.
    pub fn body(&self, schema: &Schema) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_struct(&schema.fields, "", &mut out);
        out
    }

    fn present(&self, fields: &[Field]) -> Vec<Field> {
        fields.iter().filter(|field| field.versions.contains(self.version)).cloned().collect()
    }

    fn encode_struct(&self, fields: &[Field], prefix: &str, out: &mut Vec<u8>) {
        let present = self.present(fields);
        let mut tagged: Vec<(u32, Vec<u8>)> = Vec::new();
        for field in &present {
            let path = join(prefix, &field.name);
            if self.flexible && field.tagged.contains(self.version) {
                // A tagged field is sent only when the case is about it (its default otherwise).
                if self.change.is_some_and(|change| within(&change.path, &path)) {
                    let mut data = Vec::new();
                    self.encode_field(field, &path, &present, &mut data);
                    tagged.push((field.tag, data));
                }
                continue;
            }
            self.encode_field(field, &path, &present, out);
        }
        if self.flexible {
            tagged.sort_by_key(|(tag, _)| *tag);
            put_uvarint(out, tagged.len() as u64);
            for (tag, data) in tagged {
                put_uvarint(out, tag.into());
                put_uvarint(out, data.len() as u64);
                out.extend_from_slice(&data);
            }
        }
    }

    fn value(&self, slot: &Slot) -> Value {
        match self.change {
            Some(change) if change.path == slot.path => change.value.clone(),
            _ => (self.base)(slot),
        }
    }

    fn encode_field(&self, field: &Field, path: &str, siblings: &[Field], out: &mut Vec<u8>) {
        let slot = Slot {
            api: self.api,
            version: self.version,
            path,
            field,
            siblings,
            element: false,
            salt: self.salt,
        };
        let value = self.value(&slot);
        match &field.kind {
            Kind::Primitive(primitive) => self.put_primitive(*primitive, &value, out),
            Kind::Struct(fields) => {
                let present = matches!(value, Value::Struct(true));
                if field.nullable.contains(self.version) {
                    out.push(if present { 1 } else { 0xff });
                }
                if present || !field.nullable.contains(self.version) {
                    self.encode_struct(fields, path, out);
                }
            }
            Kind::Array(element) => {
                let Value::Array(count) = value else { panic!("{path}: not an array: {value:?}") };
                self.put_length(count, 4, out);
                let Some(count) = count else { return };
                let mut one = Vec::new();
                self.encode_element(field, element, path, &mut one);
                for _ in 0..count {
                    out.extend_from_slice(&one);
                }
            }
        }
    }

    fn encode_element(&self, field: &Field, element: &Kind, path: &str, out: &mut Vec<u8>) {
        match element {
            Kind::Struct(fields) => self.encode_struct(fields, path, out),
            Kind::Primitive(primitive) => {
                let path = format!("{path}[]");
                let slot = Slot {
                    api: self.api,
                    version: self.version,
                    path: &path,
                    field,
                    siblings: &[],
                    element: true,
                    salt: self.salt,
                };
                let value = self.value(&slot);
                self.put_primitive(*primitive, &value, out);
            }
            Kind::Array(_) => panic!("{path}: arrays of arrays are not in Kafka's schemas"),
        }
    }

    fn put_primitive(&self, primitive: Primitive, value: &Value, out: &mut Vec<u8>) {
        match (primitive, value) {
            (Primitive::Int8, Value::Int(v)) => out.push(*v as i8 as u8),
            (Primitive::Int16, Value::Int(v)) => out.extend((*v as i16).to_be_bytes()),
            (Primitive::Uint16, Value::Int(v)) => out.extend((*v as u16).to_be_bytes()),
            (Primitive::Int32, Value::Int(v)) => out.extend((*v as i32).to_be_bytes()),
            (Primitive::Int64, Value::Int(v)) => out.extend(v.to_be_bytes()),
            (Primitive::Float64, Value::Float(v)) => out.extend(v.to_be_bytes()),
            (Primitive::Bool, Value::Bool(v)) => out.push(u8::from(*v)),
            (Primitive::Uuid, Value::Uuid(v)) => out.extend_from_slice(v),
            (Primitive::String, Value::Bytes(bytes)) => {
                self.put_length(bytes.as_ref().map(Vec::len), 2, out);
                out.extend_from_slice(bytes.as_deref().unwrap_or_default());
            }
            (Primitive::Bytes | Primitive::Records, Value::Bytes(bytes)) => {
                self.put_length(bytes.as_ref().map(Vec::len), 4, out);
                out.extend_from_slice(bytes.as_deref().unwrap_or_default());
            }
            (primitive, value) => panic!("a {primitive:?} field given {value:?}"),
        }
    }

    /// A length prefix: compact (unsigned varint of length + 1, 0 for null) in flexible
    /// versions, else a signed int16 (strings) or int32 (bytes, arrays) with -1 for null.
    fn put_length(&self, length: Option<usize>, classic_width: usize, out: &mut Vec<u8>) {
        if self.flexible {
            put_uvarint(out, length.map_or(0, |length| length as u64 + 1));
        } else if classic_width == 2 {
            out.extend(length.map_or(-1, |length| length as i16).to_be_bytes());
        } else {
            out.extend(length.map_or(-1, |length| length as i32).to_be_bytes());
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Whether `path` is `field` or lies inside it.
fn within(path: &str, field: &str) -> bool {
    path == field || path.strip_prefix(field).is_some_and(|rest| rest.starts_with(['.', '[']))
}

pub fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

// ---- boundary cases ------------------------------------------------------------------------

/// The element count of a "thousands of elements" array case.
pub const ARRAY_LARGE: usize = 5_000;

/// Every boundary change of one message at one version: each string and bytes field at
/// lengths 0 and 32,767 (flexible versions also 32,768 and 100,000), null where nullable;
/// each array at 0 and `ARRAY_LARGE` elements, null where nullable; each integer at its
/// minimum, -1, 0 and maximum; a nil uuid; a null struct where nullable. Nested fields are
/// changed inside the array's single base element.
pub fn boundary_changes(schema: &Schema, version: i16) -> Vec<Change> {
    let flexible = schema.flexible.contains(version);
    let mut changes = Vec::new();
    collect_changes(&schema.fields, "", version, flexible, &mut changes);
    changes
}

fn collect_changes(
    fields: &[Field],
    prefix: &str,
    version: i16,
    flexible: bool,
    changes: &mut Vec<Change>,
) {
    for field in fields.iter().filter(|field| field.versions.contains(version)) {
        let path = join(prefix, &field.name);
        let nullable = field.nullable.contains(version);
        if nullable {
            let null = match field.kind {
                Kind::Primitive(_) => Value::Bytes(None),
                Kind::Struct(_) => Value::Struct(false),
                Kind::Array(_) => Value::Array(None),
            };
            changes.push(Change { path: path.clone(), value: null });
        }
        match &field.kind {
            Kind::Primitive(primitive) => {
                primitive_changes(*primitive, &path, flexible, changes);
            }
            Kind::Struct(inner) => collect_changes(inner, &path, version, flexible, changes),
            Kind::Array(element) => {
                for count in [0, ARRAY_LARGE] {
                    changes.push(Change { path: path.clone(), value: Value::Array(Some(count)) });
                }
                match &**element {
                    Kind::Struct(inner) => {
                        collect_changes(inner, &path, version, flexible, changes)
                    }
                    Kind::Primitive(primitive) => {
                        primitive_changes(*primitive, &format!("{path}[]"), flexible, changes)
                    }
                    Kind::Array(_) => {}
                }
            }
        }
    }
}

/// String and bytes lengths of a boundary case; compact (flexible) lengths go past int16.
pub fn sized_lengths(flexible: bool) -> &'static [usize] {
    if flexible {
        &[0, 32_767, 32_768, 100_000]
    } else {
        &[0, 32_767]
    }
}

fn primitive_changes(primitive: Primitive, path: &str, flexible: bool, out: &mut Vec<Change>) {
    let mut push = |value| out.push(Change { path: path.to_string(), value });
    if let Some((min, max)) = primitive.integer_range() {
        for value in [min, -1, 0, max] {
            if value >= min {
                push(Value::Int(value));
            }
        }
    } else if primitive.is_sized() {
        for &length in sized_lengths(flexible) {
            push(Value::Bytes(Some(vec![b'x'; length])));
        }
    } else if primitive == Primitive::Uuid {
        push(Value::Uuid([0; 16]));
    }
}

/// A short human label for a change's value (`len 32768`, `5000 elements`, `null`, `-1`).
pub fn describe(value: &Value) -> String {
    match value {
        Value::Int(v) => v.to_string(),
        Value::Float(v) => v.to_string(),
        Value::Bool(v) => v.to_string(),
        Value::Uuid(_) => "nil uuid".to_string(),
        Value::Bytes(None) | Value::Array(None) | Value::Struct(false) => "null".to_string(),
        Value::Bytes(Some(bytes)) => format!("length {}", bytes.len()),
        Value::Array(Some(count)) => format!("{count} elements"),
        Value::Struct(true) => "present".to_string(),
    }
}
