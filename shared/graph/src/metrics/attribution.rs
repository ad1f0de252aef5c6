//! Which service, and which instance of it, a metrics resource belongs to.
//!
//! Service: `service.name` (not empty), else `k8s.deployment.name`, else the workload part of
//! `k8s.pod.name` ([`pod_workload`]), else `unknown_service`. The first two are the rule spans
//! follow (a resource that reports both traces and metrics lands on one node); the pod name is
//! what infrastructure receivers (kubeletstats, cAdvisor) often have alone.
//!
//! Instance: a hash of all resource attributes, independent of their order. Two resources with
//! the same attributes are the same instance (an SDK's resource is stable for its life).

use std::hash::{DefaultHasher, Hash, Hasher};

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};

/// The SDK default for a resource without a service name.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The service of a resource: the first non-empty of `service.name`, `k8s.deployment.name` and
/// the workload of `k8s.pod.name`, else [`UNKNOWN_SERVICE`].
pub fn service_of<'a>(
    service_name: Option<&'a str>,
    k8s_deployment_name: Option<&'a str>,
    k8s_pod_name: Option<&'a str>,
) -> &'a str {
    service_name
        .filter(|s| !s.is_empty())
        .or(k8s_deployment_name.filter(|s| !s.is_empty()))
        .or(k8s_pod_name.map(pod_workload).filter(|s| !s.is_empty()))
        .unwrap_or(UNKNOWN_SERVICE)
}

/// Characters of the random suffix Kubernetes appends to generated names
/// (`k8s.io/apimachinery/pkg/util/rand`: no vowels, no confusable digits).
fn is_random_char(c: u8) -> bool {
    matches!(
        c,
        b'b'..=b'd'
            | b'f'..=b'h'
            | b'j'..=b'n'
            | b'p'..=b't'
            | b'v'..=b'x'
            | b'z'
            | b'2'
            | b'4'..=b'9'
    )
}

/// Characters of a ReplicaSet's `pod-template-hash`: the decimal digits of a 32-bit hash,
/// each mapped through the same alphabet (`4`..`9`, `b`, `c`, `d`, `f`); older Kubernetes
/// versions wrote the decimal digits themselves.
fn is_template_hash_char(c: u8) -> bool {
    c.is_ascii_digit() || matches!(c, b'b' | b'c' | b'd' | b'f')
}

/// The workload a pod belongs to, from its name:
/// - Deployment (ReplicaSet) pods `<name>-<pod-template-hash>-<5 random>`
///   (`frontend-7d9b8c6f5-xk2lp` → `frontend`); CronJob pods `<name>-<schedule>-<5 random>`;
/// - DaemonSet and Job pods `<name>-<5 random>` (`fluentd-x7k2p` → `fluentd`);
/// - StatefulSet pods `<name>-<ordinal>` (`db-0` → `db`): the replicas of a StatefulSet are
///   instances of one service, as a Deployment's are;
/// - any other name as it is.
///
/// The rules read only the shape of the suffixes, so a workload whose own name ends in such a
/// shape loses that part too (`agent-123-x7k2p` → `agent`); a name that would become empty is
/// kept.
pub fn pod_workload(pod: &str) -> &str {
    fn split(s: &str) -> Option<(usize, &str)> {
        s.rfind('-').map(|i| (i, &s[i + 1..]))
    }
    let mut base = pod;
    if let Some((i, suffix)) = split(base)
        && suffix.len() == 5
        && suffix.bytes().all(is_random_char)
        && i > 0
    {
        base = &base[..i];
        // Deployment: the pod-template-hash; CronJob: the scheduled time (digits).
        if let Some((j, hash)) = split(base)
            && j > 0
            && ((6..=10).contains(&hash.len()) && hash.bytes().all(is_template_hash_char)
                || !hash.is_empty() && hash.bytes().all(|c| c.is_ascii_digit()))
        {
            base = &base[..j];
        }
        return base;
    }
    // StatefulSet ordinal.
    if let Some((i, ordinal)) = split(base)
        && i > 0
        && !ordinal.is_empty()
        && ordinal.len() <= 10
        && ordinal.bytes().all(|c| c.is_ascii_digit())
    {
        return &pod[..i];
    }
    pod
}

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
    fn pod_names_lose_their_generated_suffixes() {
        let cases = [
            ("frontend-7d9b8c6f5-xk2lp", "frontend"),
            ("adservice-5f6585d649-fnmft", "adservice"),
            ("ts-order-service-6b9c4d8f77-2x4vq", "ts-order-service"),
            // Older Kubernetes: a decimal pod-template-hash.
            ("checkout-2345678901-bcdfg", "checkout"),
            ("fluentd-x7k2p", "fluentd"),
            ("backup-28012345-zq2xw", "backup"),
            ("db-0", "db"),
            ("kafka-broker-12", "kafka-broker"),
            ("frontend", "frontend"),
            // Not generated shapes: vowels, wrong lengths, nothing before the dash.
            ("api-gateway", "api-gateway"),
            ("my-proxy", "my-proxy"),
            ("web-v2", "web-v2"),
            ("-xk2lp", "-xk2lp"),
            ("-0", "-0"),
            ("svc-", "svc-"),
            ("", ""),
            // A DaemonSet named like a short word stays whole.
            ("node-agent-x7k2p", "node-agent"),
            ("my-svc-x7k2p", "my-svc"),
        ];
        for (pod, want) in cases {
            assert_eq!(pod_workload(pod), want, "{pod}");
        }
    }

    #[test]
    fn service_falls_back_in_order() {
        assert_eq!(service_of(Some("a"), Some("b"), Some("c-0")), "a");
        assert_eq!(service_of(Some(""), Some("b"), Some("c-0")), "b");
        assert_eq!(service_of(None, Some(""), Some("c-0")), "c");
        assert_eq!(service_of(None, None, Some("")), UNKNOWN_SERVICE);
        assert_eq!(service_of(None, None, None), UNKNOWN_SERVICE);
    }

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
