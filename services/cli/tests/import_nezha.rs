//! `meshwatch dataset import nezha` on a committed slice of the real Nezha data
//! (`tests/fixtures/nezha-raw/`: two trace minutes of Online Boutique, 2022-08-22 07:10 and
//! 07:11, three pod metric files, a fault list of two faults; see its README).
//!
//! The expectations are computed here from the raw CSV files alone (own CSV parsing, no
//! importer code): the spans (exact repeats of a (trace, span) id dropped, as the data set
//! repeats the traces two minute files share), the services, every cross-service parent/child
//! pair as an edge and every root as a `user` entry; the snapshots `meshwatch snapshot` builds
//! from the imported OTLP must hold exactly those edges, counts and requests. Also: requests
//! are bounded and ordered by end time, resources carry the Kubernetes attributes, the metrics
//! are the mapped names with the CSV's values and times (the `Time` column, not the broken
//! `TimeStamp`), labels line up with the snapshot windows, plain and gzipped CSV give the same
//! output, and the protobuf output gives the same snapshots.

#![allow(clippy::panic, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use meshwatch_cli::dataset::import_nezha::{NezhaArgs, metric_names, run};
use meshwatch_cli::input::InputFormat;
use meshwatch_cli::output::OutputFormat;
use meshwatch_cli::snapshot::{SnapshotArgs, Summary};
use meshwatch_graph::labels::read_labels;
use meshwatch_graph::metrics::{DecodedMetrics, decode_json as decode_metrics, extract};
use meshwatch_graph::otlp::owned::decode_json;
use meshwatch_graph::span::ResourceKeys;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use serde_json::Value;

const SYSTEM: &str = "onlineboutique";
const WINDOW_MS: i64 = 60_000;

fn day_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/nezha-raw/onlineboutique/2022-08-22")
}

fn args(day: &Path, out: &Path) -> NezhaArgs {
    NezhaArgs {
        day_dir: day.to_owned(),
        out: out.to_owned(),
        format: OutputFormat::OtlpJson,
        system: None,
        day: None,
        spans_per_request: 500,
        request_span: Duration::from_secs(1),
        fault_duration: Duration::from_secs(180),
        gzip: false,
    }
}

/// A file's text, gunzipped when it starts with the gzip magic.
fn text(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut out)
            .unwrap();
        out
    } else {
        String::from_utf8(bytes).unwrap()
    }
}

/// Rows of a CSV file without quoted fields (the Nezha files have none), header first.
fn csv(path: &Path) -> Vec<Vec<String>> {
    text(path)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut f: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    f.sort();
    f
}

/// `frontend-579b9bff58-t2dbm` -> `frontend`.
fn service(pod: &str) -> String {
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    assert_eq!(parts.len(), 3, "{pod}");
    parts[2].to_owned()
}

/// What the raw trace CSVs say.
#[derive(Debug, Default)]
struct Expected {
    spans: u64,
    repeated_rows: u64,
    spans_by_service: BTreeMap<String, u64>,
    /// (caller, callee) -> calls; roots as ("user", service).
    edges: BTreeMap<(String, String), u64>,
    /// Per service: roots and children of another service's span (spans carry no kind).
    requests: BTreeMap<String, u64>,
    first_end_ms: i64,
    last_end_ms: i64,
}

fn expected_from_csv() -> Expected {
    struct S {
        trace: String,
        parent: String,
        service: String,
        end: i64,
    }
    let mut spans: HashMap<(String, String), S> = HashMap::new();
    let mut e = Expected {
        first_end_ms: i64::MAX,
        ..Expected::default()
    };
    for path in files(&day_dir().join("trace")) {
        let rows = csv(&path);
        assert_eq!(rows[0][0], "TraceID");
        for r in &rows[1..] {
            let key = (r[0].clone(), r[1].clone());
            let end: i64 = r[6].parse().unwrap();
            if spans.contains_key(&key) {
                e.repeated_rows += 1;
                continue;
            }
            spans.insert(
                key,
                S {
                    trace: r[0].clone(),
                    parent: r[2].clone(),
                    service: service(&r[3]),
                    end: end / 1_000_000,
                },
            );
        }
    }
    for s in spans.values() {
        e.spans += 1;
        *e.spans_by_service.entry(s.service.clone()).or_default() += 1;
        e.first_end_ms = e.first_end_ms.min(s.end);
        e.last_end_ms = e.last_end_ms.max(s.end);
        if s.parent == "root" {
            *e.edges
                .entry(("user".to_owned(), s.service.clone()))
                .or_default() += 1;
            *e.requests.entry(s.service.clone()).or_default() += 1;
            continue;
        }
        let parent = &spans[&(s.trace.clone(), s.parent.clone())];
        if parent.service != s.service {
            *e.edges
                .entry((parent.service.clone(), s.service.clone()))
                .or_default() += 1;
            *e.requests.entry(s.service.clone()).or_default() += 1;
        }
    }
    e
}

fn snapshot(input: &Path, format: InputFormat, output: &Path) -> Summary {
    meshwatch_cli::snapshot::run(&SnapshotArgs {
        input: input.to_owned(),
        format,
        window: Duration::from_secs(60),
        lateness: Duration::from_secs(10),
        output: output.to_owned(),
        graph_keys: Vec::new(),
        service_keys: Vec::new(),
        default_graph: "default".to_owned(),
        summary: false,
        metrics: Vec::new(),
        metrics_format: InputFormat::OtlpJson,
    })
    .unwrap()
}

fn attr<'a>(list: &'a [KeyValue], key: &str) -> Option<&'a str> {
    list.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

#[test]
fn traces_round_trip_to_the_edges_and_counts_of_the_csv() {
    let expected = expected_from_csv();
    // The slice holds traces repeated in both minute files, and enough to matter.
    assert!(expected.repeated_rows > 0, "{expected:?}");
    assert!(expected.spans > 3_000, "{expected:?}");

    let out = tempfile::tempdir().unwrap();
    let summary = run(&args(&day_dir(), out.path())).unwrap();
    assert_eq!(summary.system, SYSTEM);
    assert_eq!(summary.source, "nezha:onlineboutique/2022-08-22");
    assert_eq!(summary.traces.files, 2);
    assert_eq!(summary.traces.spans, expected.spans);
    assert_eq!(summary.traces.duplicate_rows, expected.repeated_rows);
    assert_eq!(summary.traces.bad_rows, 0);
    assert_eq!(summary.traces.spans_by_service, expected.spans_by_service);

    // The requests: bounded, ordered by end time, one resource per pod with its attributes.
    let traces = out.path().join("traces.otlp.jsonl");
    let mut previous_max_end = 0u64;
    let mut spans_seen = 0u64;
    let lines = text(&traces);
    for (i, line) in lines.lines().enumerate() {
        let request = decode_json(line.as_bytes()).unwrap();
        let mut ends = Vec::new();
        let mut pods = BTreeSet::new();
        for rs in &request.resource_spans {
            let attrs = &rs.resource.as_ref().unwrap().attributes;
            let pod = attr(attrs, "k8s.pod.name").unwrap();
            assert!(pods.insert(pod.to_owned()), "line {i}: pod {pod} twice");
            assert_eq!(attr(attrs, "service.name"), Some(service(pod).as_str()));
            assert_eq!(attr(attrs, "k8s.cluster.name"), Some(SYSTEM));
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                assert_eq!(span.kind, 0, "no span kind");
                assert!(span.status.is_none() && span.attributes.is_empty());
                ends.push(span.end_time_unix_nano);
            }
        }
        assert!(
            !ends.is_empty() && ends.len() <= 500,
            "line {i}: {} spans",
            ends.len()
        );
        let (min, max) = (*ends.iter().min().unwrap(), *ends.iter().max().unwrap());
        assert!(max - min <= 1_000_000_000, "line {i} spans more than 1 s");
        assert!(min >= previous_max_end, "line {i} goes back in time");
        previous_max_end = max;
        spans_seen += ends.len() as u64;
    }
    assert_eq!(spans_seen, expected.spans);
    assert_eq!(lines.lines().count() as u64, summary.traces.requests);

    // The snapshots of the imported traces hold exactly the CSV's edges and counts.
    let snaps = out.path().join("snapshots.jsonl");
    let result = snapshot(&traces, InputFormat::OtlpJson, &snaps);
    assert_eq!(result.spans_accepted, expected.spans);
    assert_eq!((result.spans_late, result.spans_rejected), (0, 0));
    let graph = &result.graphs[SYSTEM];
    assert_eq!((graph.paired, graph.unpaired), (expected.spans, 0));
    let edges: BTreeMap<(String, String), u64> = graph
        .edges
        .iter()
        .map(|(k, t)| (k.clone(), t.calls))
        .collect();
    assert_eq!(edges, expected.edges);
    let requests: BTreeMap<String, u64> = graph
        .nodes
        .iter()
        .filter(|(name, t)| t.requests > 0 && name.as_str() != "user")
        .map(|(name, t)| (name.clone(), t.requests))
        .collect();
    assert_eq!(requests, expected.requests);

    // The windows cover the spans' end times.
    let windows: Vec<i64> = text(&snaps)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["window_start_ms"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        windows.first(),
        Some(&(expected.first_end_ms / WINDOW_MS * WINDOW_MS))
    );
    assert_eq!(
        windows.last(),
        Some(&(expected.last_end_ms / WINDOW_MS * WINDOW_MS))
    );

    // The protobuf output gives the same snapshots.
    let proto_out = tempfile::tempdir().unwrap();
    let mut a = args(&day_dir(), proto_out.path());
    a.format = OutputFormat::OtlpProto;
    a.gzip = true;
    let proto = run(&a).unwrap();
    assert_eq!(
        proto.traces_file,
        proto_out.path().join("traces.otlp.pb.gz")
    );
    let proto_snaps = proto_out.path().join("snapshots.jsonl");
    let again = snapshot(&proto.traces_file, InputFormat::OtlpProto, &proto_snaps);
    assert_eq!(again.graphs, result.graphs);
    assert_eq!(text(&proto_snaps), text(&snaps));
}

#[test]
fn metrics_carry_the_csv_values_under_the_mapped_names() {
    let out = tempfile::tempdir().unwrap();
    let summary = run(&args(&day_dir(), out.path())).unwrap();
    let stats = summary.metrics.as_ref().unwrap();
    assert_eq!(stats.files, 3);
    assert_eq!((stats.bad_rows, stats.out_of_order_rows), (0, 0));
    // adservice's TimeStamp column is wrong in all 8 rows of the slice.
    assert_eq!(stats.timestamp_disagreements, 8);

    // CSV rows per pod: (Time, CpuUsageRate(%), MemoryUsage(Mi), NetworkReceiveBytes,
    // TimeStamp).
    type CsvRow = (String, f64, f64, f64, String);
    let mut csv_rows: BTreeMap<String, Vec<CsvRow>> = BTreeMap::new();
    for path in files(&day_dir().join("metric")) {
        let rows = csv(&path);
        let col = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
        let (t, ts, pod, cpu, mem, rx) = (
            col("Time"),
            col("TimeStamp"),
            col("PodName"),
            col("CpuUsageRate(%)"),
            col("MemoryUsage(Mi)"),
            col("NetworkReceiveBytes"),
        );
        for r in &rows[1..] {
            csv_rows.entry(r[pod].clone()).or_default().push((
                r[t].clone(),
                r[cpu].parse().unwrap(),
                r[mem].parse().unwrap(),
                r[rx].parse().unwrap(),
                r[ts].clone(),
            ));
        }
    }
    assert_eq!(csv_rows.len(), 3);

    // Every point is in the ingest's mapping, and every one is accepted by its extractor.
    let path = summary.metrics_file.as_ref().unwrap();
    // Per pod, per row: the time and the value of each metric (`name` or `name/direction`).
    type Point = (u64, BTreeMap<String, f64>);
    let mut per_pod: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    let mut rx_start = BTreeMap::new();
    for line in text(path).lines() {
        let request = decode_metrics(line.as_bytes()).unwrap();
        let mut decoded = DecodedMetrics::default();
        extract(&request, &ResourceKeys::default(), &mut decoded);
        assert_eq!(decoded.rejected.total(), 0, "{:?}", decoded.rejected);
        assert_eq!(decoded.ignored, 0);
        assert_eq!(
            decoded.data_points,
            6 * request.resource_metrics.len() as u64
        );
        for r in &decoded.resources {
            assert_eq!(r.graph_values[0], Some(SYSTEM));
        }
        for rm in &request.resource_metrics {
            let attrs = &rm.resource.as_ref().unwrap().attributes;
            let pod = attr(attrs, "k8s.pod.name").unwrap().to_owned();
            assert_eq!(attr(attrs, "service.name"), Some(service(&pod).as_str()));
            let mut values = BTreeMap::new();
            let mut time = 0;
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                assert!(metric_names::ALL.contains(&m.name.as_str()), "{}", m.name);
                let points = match &m.data {
                    Some(metric::Data::Gauge(g)) => &g.data_points,
                    Some(metric::Data::Sum(s)) => {
                        assert!(s.is_monotonic);
                        assert_eq!(s.aggregation_temporality, 2, "cumulative");
                        &s.data_points
                    }
                    other => panic!("{other:?}"),
                };
                for p in points {
                    let Some(number_data_point::Value::AsDouble(v)) = p.value else {
                        panic!("a double");
                    };
                    let key = match attr(&p.attributes, "network.io.direction") {
                        Some(d) => format!("{}/{d}", m.name),
                        None => m.name.clone(),
                    };
                    if key.ends_with("/receive") {
                        rx_start
                            .entry(pod.clone())
                            .or_insert(p.start_time_unix_nano);
                    }
                    values.insert(key, v);
                    time = p.time_unix_nano;
                }
            }
            per_pod.entry(pod).or_default().push((time, values));
        }
    }
    assert_eq!(
        per_pod.keys().collect::<Vec<_>>(),
        csv_rows.keys().collect::<Vec<_>>()
    );
    for (pod, rows) in &csv_rows {
        let points = &per_pod[pod];
        assert_eq!(points.len(), rows.len(), "{pod}");
        let mut counter = 0.0;
        for (i, ((time, values), (time_col, cpu, mem, rx, stamp))) in
            points.iter().zip(rows).enumerate()
        {
            // The Time column, read as UTC (2022-08-22 00:00:00 UTC is 1661126400).
            assert!(time_col.starts_with("2022-08-22 07:"), "{time_col}");
            let hms: Vec<u64> = time_col[11..19]
                .split(':')
                .map(|x| x.parse().unwrap())
                .collect();
            let seconds = 1_661_126_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
            assert_eq!(time / 1_000_000_000, seconds, "{pod} {time_col}");
            assert_eq!(hms[1], 7 + i as u64, "one row a minute");
            let fraction: String = time_col[20..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let nanos: u64 = format!("{fraction:0<9}").parse().unwrap();
            assert_eq!(time % 1_000_000_000, nanos, "{time_col}");
            if pod.starts_with("adservice") {
                assert_ne!(stamp.parse::<u64>().unwrap(), time / 1_000_000_000);
            }
            assert!((values[metric_names::CPU_UTILIZATION] - cpu / 100.0).abs() < 1e-12);
            assert_eq!(
                values[metric_names::MEMORY_USAGE],
                (mem * 1_048_576.0).round()
            );
            // The counter adds rate x seconds since the previous row (60 s for the first).
            let seconds = if i == 0 {
                60.0
            } else {
                (time - points[i - 1].0) as f64 / 1e9
            };
            counter += rx * seconds;
            let written = values[&format!("{}/receive", metric_names::NETWORK_IO)];
            assert!((written - counter.round()).abs() <= 1.0, "{pod} row {i}");
        }
        assert_eq!(rx_start[pod], points[0].0 - 60_000_000_000);
    }
}

#[test]
fn labels_line_up_with_the_windows() {
    let out = tempfile::tempdir().unwrap();
    let summary = run(&args(&day_dir(), out.path())).unwrap();
    assert_eq!(summary.labels, 2);
    let labels = read_labels(std::io::BufReader::new(
        std::fs::File::open(&summary.labels_file).unwrap(),
    ))
    .unwrap();
    // 07:01:25 and 07:10:43 UTC, 3 minutes each, on recommendationservice.
    let starts: Vec<i64> = labels.iter().map(|l| l.start_ms).collect();
    assert_eq!(starts, vec![1_661_151_685_000, 1_661_152_243_000]);
    for l in &labels {
        assert_eq!(l.end_ms - l.start_ms, 180_000);
        assert_eq!(l.graph, SYSTEM);
        assert_eq!(l.root_cause, "recommendationservice");
        assert_eq!(l.source, "nezha:onlineboutique/2022-08-22");
        assert_eq!(l.callee, None);
    }
    assert_eq!(labels[0].fault_type, "cpu_contention");
    assert_eq!(labels[1].fault_type, "cpu_consumed");
    // The second fault's inject_timestamp is 60 s off; the detail says so.
    let detail = labels[1].detail.as_deref().unwrap();
    assert!(
        detail.contains("inject_timestamp 1661152183 is -60 s off"),
        "{detail}"
    );

    // The windows: the fault at 07:10:43 is active in the windows of 07:10 and 07:11 (the
    // data ends in 07:11), and the root cause is a node there; the earlier fault is over
    // before the data starts.
    let snaps = out.path().join("snapshots.jsonl");
    snapshot(&summary.traces_file, InputFormat::OtlpJson, &snaps);
    let windows: Vec<Value> = text(&snaps)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let active: Vec<i64> = windows
        .iter()
        .map(|w| w["window_start_ms"].as_i64().unwrap())
        .filter(|s| labels[1].overlaps(*s, s + WINDOW_MS))
        .collect();
    assert_eq!(active, vec![1_661_152_200_000, 1_661_152_260_000]);
    assert!(windows.iter().all(|w| {
        let s = w["window_start_ms"].as_i64().unwrap();
        !labels[0].overlaps(s, s + WINDOW_MS)
    }));
    for w in windows
        .iter()
        .filter(|w| active.contains(&w["window_start_ms"].as_i64().unwrap()))
    {
        assert_eq!(w["graph"], SYSTEM);
        assert!(
            w["nodes"].as_array().unwrap().iter().any(
                |n| n["service"] == "recommendationservice" && n["requests"].as_u64() > Some(0)
            ),
            "{w}"
        );
    }
}

#[test]
fn plain_and_gzipped_csv_give_the_same_output() {
    // A copy of the slice with every file in the other encoding.
    let copy = tempfile::tempdir().unwrap();
    let day = copy.path().join("onlineboutique/2022-08-22");
    for sub in ["trace", "metric"] {
        std::fs::create_dir_all(day.join(sub)).unwrap();
        for path in files(&day_dir().join(sub)) {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let body = text(&path);
            if let Some(plain) = name.strip_suffix(".gz") {
                std::fs::write(day.join(sub).join(plain), body).unwrap();
            } else {
                let mut gz = flate2::write::GzEncoder::new(
                    std::fs::File::create(day.join(sub).join(format!("{name}.gz"))).unwrap(),
                    flate2::Compression::default(),
                );
                std::io::Write::write_all(&mut gz, body.as_bytes()).unwrap();
                gz.finish().unwrap();
            }
        }
    }
    std::fs::copy(
        day_dir().join("fault_list.json"),
        day.join("fault_list.json"),
    )
    .unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run(&args(&day_dir(), a.path())).unwrap();
    run(&args(&day, b.path())).unwrap();
    for name in ["traces.otlp.jsonl", "metrics.otlp.jsonl", "labels.jsonl"] {
        assert_eq!(
            std::fs::read(a.path().join(name)).unwrap(),
            std::fs::read(b.path().join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn the_command_line_and_its_errors() {
    let out = tempfile::tempdir().unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_meshwatch"))
            .args(["dataset", "import", "nezha"])
            .args(args)
            .output()
            .unwrap()
    };
    let ok = run(&[
        day_dir().as_os_str(),
        "--out".as_ref(),
        out.path().as_os_str(),
        "--system".as_ref(),
        "boutique".as_ref(),
        "--day".as_ref(),
        "d1".as_ref(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(stderr.contains("nezha:boutique/d1:"), "{stderr}");
    assert!(stderr.contains("2 fault labels"), "{stderr}");
    let import: Value = serde_json::from_str(&text(&out.path().join("import.json"))).unwrap();
    assert_eq!(import["source"], "nezha:boutique/d1");
    let label = text(&out.path().join("labels.jsonl"));
    assert!(label.lines().all(|l| l.contains(r#""graph":"boutique""#)));

    // A directory without trace minutes, and a trace file that is not one.
    let empty = tempfile::tempdir().unwrap();
    let bad = run(&[
        empty.path().as_os_str(),
        "--out".as_ref(),
        out.path().as_os_str(),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no trace minutes"));
    std::fs::create_dir_all(empty.path().join("sys/2022-01-01/trace")).unwrap();
    std::fs::write(
        empty.path().join("sys/2022-01-01/trace/00_00_trace.csv"),
        "a,b\n1,2\n",
    )
    .unwrap();
    let bad = run(&[
        empty.path().join("sys/2022-01-01").as_os_str(),
        "--out".as_ref(),
        out.path().as_os_str(),
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not a Nezha trace file"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
