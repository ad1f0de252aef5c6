//! The protobuf JSON mapping as OTLP/JSON uses it
//! (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>), shared by the decoders
//! of every signal (traces: [`super::owned`], metrics: [`crate::metrics`]):
//! - [`scalars`]: integers, doubles, enums, hex ids and base64 bytes in all their spellings;
//! - mirror structs of the messages common to all signals (resource, instrumentation scope,
//!   attributes and their values), each converting into its `opentelemetry-proto` type.
//!
//! The rules each decoder follows (keys in lowerCamelCase or snake_case, `null` as the default,
//! unknown fields ignored, enums by number or name) are written out in `owned/json.rs`.

pub(crate) mod scalars;

use std::fmt;

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

use self::scalars::{Base64, Double, Int};

/// Converts an optional list of mirror structs (absent or `null`: empty).
pub(crate) fn list<T, U: From<T>>(items: Option<Vec<T>>) -> Vec<U> {
    items.unwrap_or_default().into_iter().map(U::from).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JResource {
    attributes: Option<Vec<JKeyValue>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<Int<u32>>,
    #[serde(alias = "entity_refs")]
    entity_refs: Option<Vec<JEntityRef>>,
}

impl From<JResource> for Resource {
    fn from(j: JResource) -> Self {
        Self {
            attributes: list(j.attributes),
            dropped_attributes_count: Int::get(j.dropped_attributes_count),
            entity_refs: list(j.entity_refs),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JEntityRef {
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
    r#type: Option<String>,
    #[serde(alias = "id_keys")]
    id_keys: Option<Vec<String>>,
    #[serde(alias = "description_keys")]
    description_keys: Option<Vec<String>>,
}

impl From<JEntityRef> for EntityRef {
    fn from(j: JEntityRef) -> Self {
        Self {
            schema_url: j.schema_url.unwrap_or_default(),
            r#type: j.r#type.unwrap_or_default(),
            id_keys: j.id_keys.unwrap_or_default(),
            description_keys: j.description_keys.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JScope {
    name: Option<String>,
    version: Option<String>,
    attributes: Option<Vec<JKeyValue>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<Int<u32>>,
}

impl From<JScope> for InstrumentationScope {
    fn from(j: JScope) -> Self {
        Self {
            name: j.name.unwrap_or_default(),
            version: j.version.unwrap_or_default(),
            attributes: list(j.attributes),
            dropped_attributes_count: Int::get(j.dropped_attributes_count),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JKeyValue {
    key: Option<String>,
    value: Option<JAnyValue>,
    #[serde(alias = "key_strindex")]
    key_strindex: Option<Int<i32>>,
}

impl From<JKeyValue> for KeyValue {
    fn from(j: JKeyValue) -> Self {
        Self {
            key: j.key.unwrap_or_default(),
            value: j.value.map(|v| AnyValue { value: v.0 }),
            key_strindex: Int::get(j.key_strindex),
        }
    }
}

#[derive(Deserialize)]
struct JArrayValue {
    values: Option<Vec<JAnyValue>>,
}

#[derive(Deserialize)]
struct JKeyValueList {
    values: Option<Vec<JKeyValue>>,
}

/// `AnyValue`: an object with (at most) one of the oneof members; with several, the last wins.
pub(crate) struct JAnyValue(Option<any_value::Value>);

impl From<JAnyValue> for AnyValue {
    fn from(j: JAnyValue) -> Self {
        AnyValue { value: j.0 }
    }
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum AnyValueField {
    #[serde(rename = "stringValue", alias = "string_value")]
    String,
    #[serde(rename = "boolValue", alias = "bool_value")]
    Bool,
    #[serde(rename = "intValue", alias = "int_value")]
    Int,
    #[serde(rename = "doubleValue", alias = "double_value")]
    Double,
    #[serde(rename = "arrayValue", alias = "array_value")]
    Array,
    #[serde(rename = "kvlistValue", alias = "kvlist_value")]
    Kvlist,
    #[serde(rename = "bytesValue", alias = "bytes_value")]
    Bytes,
    #[serde(rename = "stringValueStrindex", alias = "string_value_strindex")]
    StringStrindex,
    #[serde(other)]
    Unknown,
}

impl<'de> Deserialize<'de> for JAnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JAnyValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an AnyValue object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JAnyValue, A::Error> {
                use any_value::Value;
                let mut value = None;
                while let Some(field) = map.next_key::<AnyValueField>()? {
                    let next = match field {
                        AnyValueField::String => {
                            map.next_value::<Option<String>>()?.map(Value::StringValue)
                        }
                        AnyValueField::Bool => {
                            map.next_value::<Option<bool>>()?.map(Value::BoolValue)
                        }
                        AnyValueField::Int => map
                            .next_value::<Option<Int<i64>>>()?
                            .map(|v| Value::IntValue(v.0)),
                        AnyValueField::Double => map
                            .next_value::<Option<Double>>()?
                            .map(|v| Value::DoubleValue(v.0)),
                        AnyValueField::Array => map.next_value::<Option<JArrayValue>>()?.map(|a| {
                            Value::ArrayValue(ArrayValue {
                                values: list(a.values),
                            })
                        }),
                        AnyValueField::Kvlist => {
                            map.next_value::<Option<JKeyValueList>>()?.map(|l| {
                                Value::KvlistValue(KeyValueList {
                                    values: list(l.values),
                                })
                            })
                        }
                        AnyValueField::Bytes => map
                            .next_value::<Option<Base64>>()?
                            .map(|b| Value::BytesValue(b.0)),
                        AnyValueField::StringStrindex => map
                            .next_value::<Option<Int<i32>>>()?
                            .map(|v| Value::StringValueStrindex(v.0)),
                        AnyValueField::Unknown => {
                            map.next_value::<IgnoredAny>()?;
                            None
                        }
                    };
                    if next.is_some() {
                        value = next;
                    }
                }
                Ok(JAnyValue(value))
            }
        }
        d.deserialize_map(V)
    }
}
