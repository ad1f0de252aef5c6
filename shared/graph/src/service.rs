//! Which service a resource belongs to, for spans and metrics alike.
//!
//! The configured `service_keys` (default `service.name`, `k8s.deployment.name`,
//! `k8s.pod.name`) are tried in order: the first with a non-empty value names the service; a
//! value of `k8s.pod.name` names its workload ([`pod_workload`]); without any,
//! [`UNKNOWN_SERVICE`]. The decoders collect the values per key
//! ([`crate::span::ResourceView::service_values`]); [`service_name`] resolves them.

/// `service.name` resource attribute.
pub const SERVICE_NAME: &str = "service.name";
/// `k8s.deployment.name` resource attribute.
pub const K8S_DEPLOYMENT_NAME: &str = "k8s.deployment.name";
/// `k8s.pod.name` resource attribute: its value names the pod's workload ([`pod_workload`]).
pub const K8S_POD_NAME: &str = "k8s.pod.name";

/// Most service keys that can be configured (their values are kept inline).
pub const MAX_SERVICE_KEYS: usize = crate::span::MAX_GRAPH_KEYS;

/// The default service keys: `service.name`, `k8s.deployment.name`, `k8s.pod.name`.
pub fn default_service_keys() -> Vec<String> {
    [SERVICE_NAME, K8S_DEPLOYMENT_NAME, K8S_POD_NAME]
        .map(str::to_owned)
        .to_vec()
}

/// The service named by `values` (`values[i]` is the value of `keys[i]`): the first non-empty
/// value, through [`pod_workload`] when its key is `k8s.pod.name`, else [`UNKNOWN_SERVICE`].
/// Allocation-free.
#[inline]
pub fn service_name<'a>(values: &[Option<&'a str>], keys: &[String]) -> &'a str {
    for (value, key) in values.iter().zip(keys) {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        if key == K8S_POD_NAME {
            return pod_workload(value);
        }
        return value;
    }
    UNKNOWN_SERVICE
}

/// The SDK default for a resource without a service name.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

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

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_owned()).collect()
    }

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
    fn the_first_non_empty_value_names_the_service() {
        let k = default_service_keys();
        assert_eq!(service_name(&[Some("a"), Some("b"), Some("c-0")], &k), "a");
        assert_eq!(service_name(&[Some(""), Some("b"), Some("c-0")], &k), "b");
        assert_eq!(service_name(&[None, Some(""), Some("c-0")], &k), "c");
        assert_eq!(service_name(&[None, None, Some("")], &k), UNKNOWN_SERVICE);
        assert_eq!(service_name(&[None, None, None], &k), UNKNOWN_SERVICE);
        assert_eq!(service_name(&[], &k), UNKNOWN_SERVICE);
    }

    #[test]
    fn only_pod_names_lose_their_suffixes() {
        let k = keys(&["app", "k8s.pod.name"]);
        assert_eq!(service_name(&[Some("web-0"), None], &k), "web-0");
        assert_eq!(
            service_name(&[None, Some("frontend-7d9b8c6f5-xk2lp")], &k),
            "frontend"
        );
    }

    #[test]
    fn custom_keys_are_read_in_their_order() {
        let k = keys(&["app", "service.name"]);
        assert_eq!(service_name(&[Some("shop"), Some("svc")], &k), "shop");
        assert_eq!(service_name(&[Some(""), Some("svc")], &k), "svc");
        assert_eq!(service_name(&[None, None], &k), UNKNOWN_SERVICE);
    }
}
