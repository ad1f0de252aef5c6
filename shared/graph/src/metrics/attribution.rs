//! Which service, and which instance of it, a metrics resource belongs to.
//!
//! Service: the rule spans follow ([`crate::service::service_name`], configured by
//! `service_keys`), so that a resource that reports both traces and metrics lands on one node.
//! The default keys end with `k8s.pod.name` (its workload part, [`pod_workload`]): what
//! infrastructure receivers (kubeletstats, cAdvisor) often have alone.
//!
//! Instance: a hash of all resource attributes, independent of their order. Two resources with
//! the same attributes are the same instance (an SDK's resource is stable for its life).

use std::hash::{DefaultHasher, Hash, Hasher};

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};

pub use crate::service::{UNKNOWN_SERVICE, pod_workload};

/// The instance key of a resource: a hash of its attributes (keys and values, whatever their
/// order in the list).
pub fn instance_key(attributes: &[KeyValue]) -> u64 {
    let mut key = 0u64;
    for kv in attributes {
        let mut h = DefaultHasher::new();
        kv.key.hash(&mut h);
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            None => 0u8.hash(&mut h),
            Some(any_value::Value::StringValue(s)) => {
                1u8.hash(&mut h);
                s.hash(&mut h);
            }
            Some(any_value::Value::IntValue(i)) => {
                2u8.hash(&mut h);
                i.hash(&mut h);
            }
            Some(any_value::Value::BoolValue(b)) => {
                3u8.hash(&mut h);
                b.hash(&mut h);
            }
            Some(any_value::Value::DoubleValue(d)) => {
                4u8.hash(&mut h);
                d.to_bits().hash(&mut h);
            }
            Some(other) => {
                5u8.hash(&mut h);
                // Arrays, lists and bytes: rare in resources; their encoding identifies them.
                let mut buf = Vec::new();
                other.encode(&mut buf);
                buf.hash(&mut h);
            }
        }
        // A sum does not depend on the order of the attributes.
        key = key.wrapping_add(h.finish());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_key_ignores_attribute_order() {
        use opentelemetry_proto::tonic::common::v1::AnyValue;
        let kv = |k: &str, v: any_value::Value| KeyValue {
            key: k.to_owned(),
            value: Some(AnyValue { value: Some(v) }),
            ..KeyValue::default()
        };
        let a = kv("k8s.pod.name", any_value::Value::StringValue("p-0".into()));
        let b = kv("process.pid", any_value::Value::IntValue(7));
        let c = kv("process.pid", any_value::Value::IntValue(8));
        assert_eq!(
            instance_key(&[a.clone(), b.clone()]),
            instance_key(&[b.clone(), a.clone()])
        );
        assert_ne!(instance_key(&[a.clone(), b]), instance_key(&[a, c]));
    }
}
