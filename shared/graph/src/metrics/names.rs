//! The mapping: which OpenTelemetry metric names (semantic conventions, and the names the
//! Collector's kubeletstats, k8s_cluster and hostmetrics receivers emit) feed which node
//! resource metric. `docs/resource-metrics.md` has the same table for operators.

/// Where a metric is measured. When a service reports a quantity at several levels in one
/// window (the kubeletstats receiver sends pod and container metrics), the first level in this
/// order that yields a value is used, so that nothing is counted twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// `k8s.pod.*`: the whole pod.
    Pod,
    /// `container.*`, `k8s.container.*`: one container.
    Container,
    /// `process.*`: one process.
    Process,
    /// `system.*`: the host.
    System,
}

impl Level {
    /// In order of precedence.
    pub const ALL: [Self; 4] = [Self::Pod, Self::Container, Self::Process, Self::System];
}

/// What a metric name measures (before data point attributes are read: `*.network.io` splits
/// into received and sent bytes by `network.io.direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricName {
    /// Gauge, 0..=1; per-CPU and per-mode points are combined (idle excluded).
    CpuUtilization,
    /// Gauge, cores busy.
    CpuCores,
    /// Counter, CPU seconds (idle mode excluded).
    CpuTime,
    /// Gauge, cores.
    CpuLimit,
    /// Gauge or up-down counter, bytes (`system.memory.state` `used` only).
    MemoryUsage,
    /// Gauge, 0..=1 (`system.memory.state` `used` only).
    MemoryUtilization,
    /// Gauge, bytes.
    MemoryLimit,
    /// Counter, bytes, per `network.io.direction`.
    NetworkIo,
    /// Counter (or a gauge of the count), restarts.
    Restarts,
}

/// Every name in the mapping, with what it measures and its level.
#[rustfmt::skip]
pub const MAPPING: &[(&str, MetricName, Level)] = &[
    ("k8s.pod.cpu.utilization",      MetricName::CpuUtilization,    Level::Pod),
    ("container.cpu.utilization",    MetricName::CpuUtilization,    Level::Container),
    ("process.cpu.utilization",      MetricName::CpuUtilization,    Level::Process),
    ("system.cpu.utilization",       MetricName::CpuUtilization,    Level::System),
    ("k8s.pod.cpu.usage",            MetricName::CpuCores,          Level::Pod),
    ("container.cpu.usage",          MetricName::CpuCores,          Level::Container),
    ("k8s.pod.cpu.time",             MetricName::CpuTime,           Level::Pod),
    ("container.cpu.time",           MetricName::CpuTime,           Level::Container),
    ("process.cpu.time",             MetricName::CpuTime,           Level::Process),
    ("k8s.container.cpu_limit",      MetricName::CpuLimit,          Level::Container),
    ("k8s.container.cpu.limit",      MetricName::CpuLimit,          Level::Container),
    ("k8s.pod.memory.usage",         MetricName::MemoryUsage,       Level::Pod),
    ("container.memory.usage",       MetricName::MemoryUsage,       Level::Container),
    ("process.memory.usage",         MetricName::MemoryUsage,       Level::Process),
    ("system.memory.usage",          MetricName::MemoryUsage,       Level::System),
    ("k8s.pod.memory.utilization",   MetricName::MemoryUtilization, Level::Pod),
    ("container.memory.utilization", MetricName::MemoryUtilization, Level::Container),
    ("process.memory.utilization",   MetricName::MemoryUtilization, Level::Process),
    ("system.memory.utilization",    MetricName::MemoryUtilization, Level::System),
    ("k8s.container.memory_limit",   MetricName::MemoryLimit,       Level::Container),
    ("k8s.container.memory.limit",   MetricName::MemoryLimit,       Level::Container),
    ("container.memory.limit",       MetricName::MemoryLimit,       Level::Container),
    ("k8s.pod.network.io",           MetricName::NetworkIo,         Level::Pod),
    ("container.network.io",         MetricName::NetworkIo,         Level::Container),
    ("process.network.io",           MetricName::NetworkIo,         Level::Process),
    ("system.network.io",            MetricName::NetworkIo,         Level::System),
    ("k8s.container.restarts",       MetricName::Restarts,          Level::Container),
    ("k8s.container.restart.count",  MetricName::Restarts,          Level::Container),
];

/// What `name` measures and where, if it is in the mapping (exact, case-sensitive match, as
/// OpenTelemetry metric names are).
pub fn classify(name: &str) -> Option<(MetricName, Level)> {
    // Every mapped name starts with one of four prefixes: most unmapped names fail here.
    if !(name.starts_with("k8s.")
        || name.starts_with("container.")
        || name.starts_with("process.")
        || name.starts_with("system."))
    {
        return None;
    }
    MAPPING
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, metric, level)| (metric, level))
}

/// Data point attributes the mapping reads.
pub(crate) mod attr {
    /// `network.io.direction` (`receive`, `transmit`); older receivers: `direction`.
    pub const NETWORK_IO_DIRECTION: [&str; 2] = ["network.io.direction", "direction"];
    /// `cpu.mode` (`user`, `system`, `idle`, ...); older receivers: `state`.
    pub const CPU_MODE: [&str; 2] = ["cpu.mode", "state"];
    /// `cpu.logical_number`; older receivers: `cpu` (`cpu0`, ...).
    pub const CPU_NUMBER: [&str; 2] = ["cpu.logical_number", "cpu"];
    /// `system.memory.state` (`used`, `free`, `cached`, ...); older receivers: `state`.
    pub const MEMORY_STATE: [&str; 2] = ["system.memory.state", "state"];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mapped_name_classifies_and_names_are_unique() {
        for (i, (name, metric, level)) in MAPPING.iter().enumerate() {
            assert_eq!(classify(name), Some((*metric, *level)), "{name}");
            assert!(
                MAPPING[..i].iter().all(|(n, _, _)| n != name),
                "{name} twice"
            );
        }
        assert_eq!(classify("http.server.request.duration"), None);
        assert_eq!(classify("container.cpu.utilisation"), None);
        assert_eq!(classify("Container.cpu.utilization"), None);
    }
}
