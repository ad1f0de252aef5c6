//! Prometheus metrics: the process-wide registry, idempotent registration helpers, build info
//! and the text exposition served on `/metrics`.
//!
//! Every helper registers into [`registry()`] and returns the metric. Registering the same name
//! again with the same kind, help and labels returns the metric registered first (a clone that
//! shares its values), so a `Metrics::register()` called once per `run()` works in tests that
//! run a service twice in one process; a different definition under the same name is an error.
//! Names must follow `meshwatch_<subsystem>_<name>_<unit>`.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use prometheus::core::Collector;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric name starts with this.
pub const METRIC_PREFIX: &str = "meshwatch_";

/// `Content-Type` of [`encode_text`]'s output: Prometheus text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Name of the build-info gauge set by [`set_build_info`].
pub const BUILD_INFO: &str = "meshwatch_build_info";

/// Why a metric could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The name does not start with [`METRIC_PREFIX`].
    #[error("metric name `{name}` does not start with `{METRIC_PREFIX}`")]
    BadName {
        /// The rejected name.
        name: String,
    },
    /// The name is already registered with another kind, help text, labels or buckets.
    #[error("metric `{name}` is already registered differently: {difference}")]
    Conflict {
        /// The metric name.
        name: String,
        /// What differs.
        difference: String,
    },
    /// Prometheus rejected the definition (invalid name or label), or the name was registered
    /// outside these helpers.
    #[error("cannot register metric `{name}`")]
    Prometheus {
        /// The metric name.
        name: String,
        /// Prometheus's reason.
        #[source]
        source: prometheus::Error,
    },
}

/// The process-wide registry that `/metrics` serves.
///
/// It is the `prometheus` crate's default registry, so metrics registered with that crate's
/// `register_*!` macros are served as well.
pub fn registry() -> &'static Registry {
    prometheus::default_registry()
}

/// What was registered under each name, to make registration idempotent.
struct Definition {
    kind: &'static str,
    help: String,
    labels: Vec<String>,
    buckets: Option<Vec<f64>>,
    metric: Box<dyn Any + Send + Sync>,
}

static DEFINITIONS: LazyLock<Mutex<HashMap<String, Definition>>> = LazyLock::new(Default::default);

fn get_or_register<M>(
    kind: &'static str,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Option<&[f64]>,
    make: impl FnOnce() -> prometheus::Result<M>,
) -> Result<M, MetricsError>
where
    M: Collector + Clone + Any + Send + Sync + 'static,
{
    if !name.starts_with(METRIC_PREFIX) {
        return Err(MetricsError::BadName {
            name: name.to_owned(),
        });
    }
    let conflict = |difference: String| MetricsError::Conflict {
        name: name.to_owned(),
        difference,
    };
    let mut definitions = DEFINITIONS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(existing) = definitions.get(name) {
        if existing.kind != kind {
            return Err(conflict(format!(
                "registered as {}, requested as {kind}",
                existing.kind
            )));
        }
        if existing.help != help {
            return Err(conflict(format!("help `{}` vs `{help}`", existing.help)));
        }
        if existing.labels != labels {
            return Err(conflict(format!(
                "labels {:?} vs {labels:?}",
                existing.labels
            )));
        }
        if existing.buckets.as_deref() != buckets {
            return Err(conflict(format!(
                "buckets {:?} vs {buckets:?}",
                existing.buckets
            )));
        }
        return existing
            .metric
            .downcast_ref::<M>()
            .cloned()
            .ok_or_else(|| conflict("registered with another metric type".to_owned()));
    }
    let prometheus_error = |source| MetricsError::Prometheus {
        name: name.to_owned(),
        source,
    };
    let metric = make().map_err(prometheus_error)?;
    registry()
        .register(Box::new(metric.clone()))
        .map_err(prometheus_error)?;
    definitions.insert(
        name.to_owned(),
        Definition {
            kind,
            help: help.to_owned(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            buckets: buckets.map(<[f64]>::to_vec),
            metric: Box::new(metric.clone()),
        },
    );
    Ok(metric)
}

/// Registers (or returns the already registered) counter `name`.
///
/// # Errors
///
/// See [`MetricsError`].
pub fn register_int_counter(name: &str, help: &str) -> Result<IntCounter, MetricsError> {
    get_or_register("counter", name, help, &[], None, || {
        IntCounter::with_opts(Opts::new(name, help))
    })
}

/// Registers (or returns the already registered) counter family `name` with `labels`.
///
/// # Errors
///
/// See [`MetricsError`].
pub fn register_int_counter_vec(
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    get_or_register("counter", name, help, labels, None, || {
        IntCounterVec::new(Opts::new(name, help), labels)
    })
}

/// Registers (or returns the already registered) integer gauge `name`.
///
/// # Errors
///
/// See [`MetricsError`].
pub fn register_int_gauge(name: &str, help: &str) -> Result<IntGauge, MetricsError> {
    get_or_register("gauge", name, help, &[], None, || {
        IntGauge::with_opts(Opts::new(name, help))
    })
}

/// Registers (or returns the already registered) integer gauge family `name` with `labels`.
///
/// # Errors
///
/// See [`MetricsError`].
pub fn register_int_gauge_vec(
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, MetricsError> {
    get_or_register("gauge", name, help, labels, None, || {
        IntGaugeVec::new(Opts::new(name, help), labels)
    })
}

/// Registers (or returns the already registered) float gauge `name`.
///
/// # Errors
///
/// See [`MetricsError`].
pub fn register_gauge(name: &str, help: &str) -> Result<Gauge, MetricsError> {
    get_or_register("float gauge", name, help, &[], None, || {
        Gauge::with_opts(Opts::new(name, help))
    })
}

/// Registers (or returns the already registered) float gauge family `name` with `labels`.
///
/// # Errors
///
/// See [`MetricsError`].
pub fn register_gauge_vec(
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<GaugeVec, MetricsError> {
    get_or_register("float gauge", name, help, labels, None, || {
        GaugeVec::new(Opts::new(name, help), labels)
    })
}

/// Registers (or returns the already registered) histogram `name` with `buckets` (upper bounds,
/// increasing; `prometheus::exponential_buckets` makes them).
///
/// # Errors
///
/// See [`MetricsError`].
pub fn register_histogram(
    name: &str,
    help: &str,
    buckets: &[f64],
) -> Result<Histogram, MetricsError> {
    get_or_register("histogram", name, help, &[], Some(buckets), || {
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
    })
}

/// Registers (or returns the already registered) histogram family `name` with `labels` and
/// `buckets`.
///
/// # Errors
///
/// See [`MetricsError`].
pub fn register_histogram_vec(
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<HistogramVec, MetricsError> {
    get_or_register("histogram", name, help, labels, Some(buckets), || {
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
    })
}

/// Sets `meshwatch_build_info{service, version} 1`; call once at start with the binary's name and
/// `env!("CARGO_PKG_VERSION")`.
///
/// # Errors
///
/// See [`MetricsError`].
pub fn set_build_info(service: &str, version: &str) -> Result<(), MetricsError> {
    let gauge = register_int_gauge_vec(
        BUILD_INFO,
        "Always 1; labels name the service binary and its version",
        &["service", "version"],
    )?;
    gauge.with_label_values(&[service, version]).set(1);
    Ok(())
}

/// Every metric of [`registry()`] in the Prometheus text format ([`TEXT_CONTENT_TYPE`]).
///
/// A metric family that cannot be encoded is left out and logged; the rest is still served.
pub fn encode_text() -> String {
    let encoder = TextEncoder::new();
    let mut text = String::new();
    for family in registry().gather() {
        let mut one = String::new();
        match encoder.encode_utf8(std::slice::from_ref(&family), &mut one) {
            Ok(()) => text.push_str(&one),
            Err(error) => {
                tracing::warn!(metric = family.name(), %error, "cannot encode metric family");
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_is_idempotent_and_shares_values() -> Result<(), MetricsError> {
        let name = "meshwatch_test_idempotent_total";
        let first = register_int_counter_vec(name, "test counter", &["kind"])?;
        let second = register_int_counter_vec(name, "test counter", &["kind"])?;
        first.with_label_values(&["a"]).inc();
        assert_eq!(second.with_label_values(&["a"]).get(), 1);
        Ok(())
    }

    #[test]
    fn conflicting_definitions_are_errors() -> Result<(), MetricsError> {
        let name = "meshwatch_test_conflict_total";
        register_int_counter_vec(name, "test counter", &["kind"])?;
        let labels = register_int_counter_vec(name, "test counter", &["other"]);
        assert!(
            matches!(labels, Err(MetricsError::Conflict { .. })),
            "{labels:?}"
        );
        let kind = register_int_gauge(name, "test counter");
        assert!(
            matches!(kind, Err(MetricsError::Conflict { .. })),
            "{kind:?}"
        );
        let buckets = [0.1, 1.0];
        register_histogram("meshwatch_test_latency_seconds", "test", &buckets)?;
        let other = register_histogram("meshwatch_test_latency_seconds", "test", &[1.0]);
        assert!(
            matches!(other, Err(MetricsError::Conflict { .. })),
            "{other:?}"
        );
        Ok(())
    }

    #[test]
    fn bad_names_are_errors() {
        let prefix = register_int_counter("spans_total", "no prefix");
        assert!(
            matches!(prefix, Err(MetricsError::BadName { .. })),
            "{prefix:?}"
        );
        let invalid = register_int_counter("meshwatch_bad-name", "dash");
        assert!(
            matches!(invalid, Err(MetricsError::Prometheus { .. })),
            "{invalid:?}"
        );
        let label = register_int_counter_vec("meshwatch_test_label_total", "x", &["bad-label"]);
        assert!(
            matches!(label, Err(MetricsError::Prometheus { .. })),
            "{label:?}"
        );
    }

    #[test]
    fn text_contains_build_info_and_registered_metrics() -> Result<(), MetricsError> {
        set_build_info("meshwatch-test", "0.0.0")?;
        let gauge = register_int_gauge("meshwatch_test_text_items", "items")?;
        gauge.set(7);
        let text = encode_text();
        assert!(
            text.contains(r#"meshwatch_build_info{service="meshwatch-test",version="0.0.0"} 1"#),
            "{text}"
        );
        assert!(text.contains("meshwatch_test_text_items 7"), "{text}");
        assert!(
            text.contains("# TYPE meshwatch_test_text_items gauge"),
            "{text}"
        );
        Ok(())
    }
}
