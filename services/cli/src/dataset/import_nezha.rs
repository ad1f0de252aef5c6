//! `meshwatch dataset import nezha DAY_DIR --out DIR`: a day of the public Nezha fault-injection
//! data set (FSE 2023; TrainTicket and Online Boutique on Kubernetes) to OTLP and labels
//! (`docs/datasets.md`).
//!
//! A day directory holds `trace/HH_MM_trace.csv[.gz]` (span minutes), `metric/<pod>_metric.csv[.gz]`
//! (pod metrics, one row a minute) and `fault_list.json`; the `faultfree_minutes` directories
//! hold only traces. Gzip is detected by content, not by name. Written to `--out`:
//! - `traces.otlp.jsonl` (or `traces.otlp.pb` with `--format otlp-proto`): [`traces`];
//! - `metrics.otlp.jsonl` / `.pb`, when the day has pod metrics: [`metrics`];
//! - `labels.jsonl`: one fault label per injected fault ([`labels`]); empty when the directory
//!   has no `fault_list.json` (fault-free minutes);
//! - `import.json`: what was read and written, with the data set's quirks counted.
//!
//! The system (`onlineboutique`, `trainticket`) names the graph (`k8s.cluster.name`) and the
//! labels' source; the day goes into the source. Both are read from the path (the nearest
//! folder named like a date, and the nearest other one that is not `faultfree_minutes`), or
//! given with `--system` / `--day`.

mod csv;
mod labels;
mod metrics;
mod time;
mod traces;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use serde::Serialize;

pub use metrics::{MetricStats, names as metric_names};
pub use traces::{HEADER as TRACE_HEADER, TraceStats};

use crate::output::{OtlpWriter, OutputFormat, Written};

/// Instrumentation scope of the converted spans and metrics.
pub const SCOPE_NAME: &str = "nezha";

/// Arguments of `meshwatch dataset import nezha`.
#[derive(Debug, Clone, Args)]
pub struct NezhaArgs {
    /// A day directory of the data set (with `trace/`, and usually `metric/` and
    /// `fault_list.json`), e.g. `nezha/onlineboutique/2022-08-22`.
    pub day_dir: PathBuf,
    /// Output directory (created if missing; files of the same names are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Output format of traces and metrics.
    #[arg(long, value_enum, default_value = "otlp-json")]
    pub format: OutputFormat,
    /// System name: the graph (`k8s.cluster.name`) and the labels' source (default: from the
    /// path).
    #[arg(long)]
    pub system: Option<String>,
    /// Day, for the labels' source (default: from the path).
    #[arg(long)]
    pub day: Option<String>,
    /// Most spans in one OTLP request.
    #[arg(long, default_value_t = 500)]
    pub spans_per_request: usize,
    /// Most time between the end of the first and the last span of one request.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub request_span: Duration,
    /// How long each fault lasts (3 minutes in the Nezha study).
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub fault_duration: Duration,
    /// Gzip the OTLP files (`.gz` appended to their names).
    #[arg(long)]
    pub gzip: bool,
}

/// What an import read and wrote (also written as `import.json`).
#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    pub source: String,
    pub system: String,
    pub day: Option<String>,
    pub traces_file: PathBuf,
    pub traces: TraceStats,
    pub metrics_file: Option<PathBuf>,
    pub metrics: Option<MetricStats>,
    pub labels_file: PathBuf,
    pub labels: usize,
}

impl ImportSummary {
    /// A readable report.
    pub fn render(&self) -> String {
        let t = &self.traces;
        let mut s = format!(
            "{}: {} spans in {} requests from {} trace files ({} rows, {} bad, {} duplicate, \
             {} with derived ids), {} services -> {}\n",
            self.source,
            t.spans,
            t.requests,
            t.files,
            t.rows,
            t.bad_rows,
            t.duplicate_rows,
            t.derived_ids,
            t.spans_by_service.len(),
            self.traces_file.display()
        );
        match (&self.metrics, &self.metrics_file) {
            (Some(m), Some(path)) => s.push_str(&format!(
                "{} data points in {} requests from {} pod metric files ({} rows, {} bad, {} out \
                 of order, {} with a wrong TimeStamp column) -> {}\n",
                m.data_points,
                m.requests,
                m.files,
                m.rows,
                m.bad_rows,
                m.out_of_order_rows,
                m.timestamp_disagreements,
                path.display()
            )),
            _ => s.push_str("no pod metrics\n"),
        }
        s.push_str(&format!(
            "{} fault labels -> {}\n",
            self.labels,
            self.labels_file.display()
        ));
        s
    }
}

/// Pod name without its Kubernetes ReplicaSet hash and pod suffix
/// (`<deployment>-<5 to 10 [a-z0-9]>-<5 [a-z0-9]>`), unchanged if it has none.
pub fn service_name(pod: &str) -> &str {
    let suffix = |s: &str, min: usize, max: usize| {
        (min..=max).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let mut parts = pod.rsplitn(3, '-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(pod_id), Some(hash), Some(service))
            if !service.is_empty() && suffix(pod_id, 5, 5) && suffix(hash, 5, 10) =>
        {
            service
        }
        _ => pod,
    }
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

/// Resource attributes of a pod: `service.name`, `k8s.pod.name`, `k8s.cluster.name`.
fn resource_attributes(pod: &str, system: &str) -> Vec<KeyValue> {
    vec![
        string_kv("service.name", service_name(pod)),
        string_kv("k8s.pod.name", pod),
        string_kv("k8s.cluster.name", system),
    ]
}

/// System and day from the path: the nearest folder named like a date is the day, the nearest
/// other one that is not `faultfree_minutes` the system.
fn from_path(dir: &Path) -> (Option<String>, Option<String>) {
    let (mut system, mut day) = (None, None);
    for component in dir.ancestors().filter_map(|p| p.file_name()?.to_str()) {
        if time::is_day(component) {
            if day.is_none() && system.is_none() {
                day = Some(component.to_owned());
            }
        } else if component != "faultfree_minutes" && system.is_none() {
            system = Some(component.to_owned());
            break;
        }
    }
    (system, day)
}

/// Files of `dir` whose names end with one of `suffixes`, sorted by name; none if `dir` does
/// not exist.
fn files_ending(dir: &Path, suffixes: &[&str]) -> anyhow::Result<Vec<(PathBuf, String)>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = suffixes.iter().find_map(|s| name.strip_suffix(s))
            && entry.path().is_file()
        {
            files.push((entry.path(), stem.to_owned()));
        }
    }
    files.sort();
    Ok(files)
}

fn output_path(out: &Path, stem: &str, format: OutputFormat, gzip: bool) -> PathBuf {
    let mut name = format!("{stem}.{}", format.extension());
    if gzip {
        name.push_str(".gz");
    }
    out.join(name)
}

/// Runs the import.
pub fn run(args: &NezhaArgs) -> anyhow::Result<ImportSummary> {
    let dir = &args.day_dir;
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    if args.spans_per_request == 0 {
        bail!("--spans-per-request must be at least 1");
    }
    let absolute =
        fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let (path_system, path_day) = from_path(&absolute);
    let system = args
        .system
        .clone()
        .or(path_system)
        .filter(|s| !s.is_empty())
        .with_context(|| {
            format!(
                "cannot tell the system from {}: give --system",
                dir.display()
            )
        })?;
    let day = args.day.clone().or(path_day);
    let source = match &day {
        Some(day) => format!("nezha:{system}/{day}"),
        None => format!("nezha:{system}"),
    };

    let trace_files = files_ending(&dir.join("trace"), &["_trace.csv.gz", "_trace.csv"])?;
    if trace_files.is_empty() {
        bail!(
            "{} holds no trace minutes (trace/HH_MM_trace.csv[.gz])",
            dir.display()
        );
    }
    let metric_files = files_ending(&dir.join("metric"), &["_metric.csv.gz", "_metric.csv"])?;
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    let traces_path = output_path(&args.out, "traces", args.format, args.gzip);
    let mut writer = OtlpWriter::create(&traces_path, args.format, args.gzip)?;
    let paths: Vec<&Path> = trace_files.iter().map(|(p, _)| p.as_path()).collect();
    let limits = traces::RequestLimits {
        max_spans: args.spans_per_request,
        max_span_ns: u64::try_from(args.request_span.as_nanos()).unwrap_or(u64::MAX),
    };
    let trace_stats = traces::import(&paths, &system, limits, &mut writer)?;
    let Written {
        path: traces_file, ..
    } = writer.finish()?;

    let (metrics_file, metric_stats) = if metric_files.is_empty() {
        (None, None)
    } else {
        let path = output_path(&args.out, "metrics", args.format, args.gzip);
        let mut writer = OtlpWriter::create(&path, args.format, args.gzip)?;
        let files: Vec<(&Path, String)> = metric_files
            .iter()
            .map(|(p, pod)| (p.as_path(), pod.clone()))
            .collect();
        let stats = metrics::import(&files, &system, &mut writer)?;
        let written = writer.finish()?;
        (Some(written.path), Some(stats))
    };

    let fault_list = dir.join("fault_list.json");
    let fault_ms =
        i64::try_from(args.fault_duration.as_millis()).context("fault duration too long")?;
    if fault_ms <= 0 {
        bail!("--fault-duration must be positive");
    }
    let labels = if fault_list.is_file() {
        labels::read(&fault_list, &system, &source, fault_ms)?
    } else {
        Vec::new()
    };
    let labels_file = args.out.join("labels.jsonl");
    let file = fs::File::create(&labels_file)
        .with_context(|| format!("cannot create {}", labels_file.display()))?;
    let mut w = std::io::BufWriter::new(file);
    meshwatch_graph::labels::write_labels(&mut w, &labels)?;
    std::io::Write::flush(&mut w)
        .with_context(|| format!("cannot write {}", labels_file.display()))?;

    let summary = ImportSummary {
        source,
        system,
        day,
        traces_file,
        traces: trace_stats,
        metrics_file,
        metrics: metric_stats,
        labels_file,
        labels: labels.len(),
    };
    let manifest = args.out.join("import.json");
    let text = serde_json::to_vec_pretty(&summary).context("cannot encode import.json")?;
    fs::write(&manifest, text).with_context(|| format!("cannot write {}", manifest.display()))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_drop_the_hash_suffix() {
        assert_eq!(service_name("frontend-579b9bff58-t2dbm"), "frontend");
        assert_eq!(
            service_name("ts-order-service-5b67c48447-mv5hb"),
            "ts-order-service"
        );
        assert_eq!(
            service_name("currencyservice-cf787dd48-vpjrd"),
            "currencyservice"
        );
        assert_eq!(service_name("frontend"), "frontend");
        assert_eq!(service_name("a-b-c"), "a-b-c");
        assert_eq!(service_name("-abcde-fghij"), "-abcde-fghij");
        assert_eq!(service_name("svc-ABCDE-fghij"), "svc-ABCDE-fghij");
    }

    #[test]
    fn system_and_day_from_the_path() {
        let p = |s: &str| from_path(Path::new(s));
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            p("/data/nezha/onlineboutique/2022-08-22"),
            (s("onlineboutique"), s("2022-08-22"))
        );
        assert_eq!(
            p("/data/nezha/trainticket/faultfree_minutes/2023-01-29"),
            (s("trainticket"), s("2023-01-29"))
        );
        assert_eq!(
            p("/data/nezha/onlineboutique/faultfree_minutes"),
            (s("onlineboutique"), None)
        );
    }
}
