//! `meshwatch dataset build` on real traces (the committed Nezha fixtures) and on a small
//! synthetic input, run as a user runs it (`CARGO_BIN_EXE_meshwatch`):
//!
//! - the tensors match the snapshots they came from: for every shard and window, the window
//!   starts, the node and edge masks (against the snapshots of the same offline run, from the
//!   library), every node and edge feature row and the targets; and a few values by hand from the
//!   golden snapshot of Online Boutique at 03:52 (`tests/golden/`), e.g. `frontend` served 67
//!   requests in 60 s, so `requests_per_s` is ln(1 + 67/60);
//! - the files are what `docs/dataset-format.md` says: every array of its table, with its dtype,
//!   and no other; shards overlap by `--steps - 1` windows; the manifest's counts;
//! - labels: the Online Boutique `frontend` CPU fault (03:53:54 for 3 minutes) labels the windows
//!   03:53 and 03:54 and the node `frontend`; a root cause that is no node and a graph without
//!   data are reported in the manifest;
//! - missing windows become masked steps, long gaps new segments, and metrics from a separate
//!   file land in the right window (merged with the traces by time);
//! - Python reads the dataset with numpy alone (`tests/python/test_dataset_npz.py`), checks it
//!   against the document, and finds the hand-computed values. This needs the project's Python
//!   with numpy: `MESHWATCH_PYTHON`, else `$MESHWATCH_CACHE/venv/bin/python`; without it the test
//!   fails with the install command (it never skips).

#![allow(clippy::panic, clippy::unwrap_used)]

#[path = "dataset/npz_read.rs"]
mod npz_read;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use meshwatch_cli::input::InputFormat;
use meshwatch_cli::offline::{InputStream, OfflineGraph, aggregator_config};
use meshwatch_graph::GraphSnapshot;
use meshwatch_graph::features::{
    EDGE_FEATURE_NAMES, NODE_FEATURE_NAMES, StepFeatures, TARGET_NAMES,
};
use npz_read::Array;
use serde_json::{Value, json};

const FIXTURES: [&str; 3] = [
    "onlineboutique-2022-08-22-0353",
    "onlineboutique-2022-08-22-0354-frontend-cpu-contention",
    "trainticket-2023-01-29-0850-faultfree",
];

/// 2022-08-22 03:52:00 UTC, the first Online Boutique window.
const OB_0352_MS: i64 = 1_661_140_320_000;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    repo().join(format!("tests/fixtures/nezha/{name}.otlp.jsonl"))
}

fn meshwatch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_meshwatch"))
        .args(args)
        .output()
        .expect("run meshwatch")
}

fn build(args: &[&str]) {
    let mut all = vec!["dataset", "build"];
    all.extend_from_slice(args);
    let out = meshwatch(&all);
    assert!(
        out.status.success(),
        "meshwatch {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The snapshots of the same offline run, from the library, by graph.
fn snapshots(traces: &[PathBuf], window: u64) -> BTreeMap<String, Vec<GraphSnapshot>> {
    let cfg = aggregator_config(
        Duration::from_secs(window),
        Duration::from_secs(10),
        &[],
        &[],
        "default",
    )
    .unwrap();
    let mut graph = OfflineGraph::new(cfg, "test").unwrap();
    let mut out: BTreeMap<String, Vec<GraphSnapshot>> = BTreeMap::new();
    let mut sink = |s: GraphSnapshot| {
        out.entry(s.graph.clone()).or_default().push(s);
        Ok(())
    };
    let mut stream = InputStream::new(traces.to_vec(), InputFormat::OtlpJson);
    graph.feed_streams(&mut stream, None, &mut sink).unwrap();
    graph.finish(&mut sink).unwrap();
    out
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn read_npz(path: &Path) -> BTreeMap<String, Array> {
    npz_read::read(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

/// (name, dtype) of every row of the document's array table.
fn doc_arrays() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(repo().join("docs/dataset-format.md")).unwrap();
    let start = doc.find("<!-- arrays:begin").expect("arrays block");
    let end = doc.find("<!-- arrays:end -->").expect("arrays block end");
    doc[start..end]
        .lines()
        .skip(3)
        .map(|line| {
            let cells: Vec<String> = line
                .replace("\\|", "\u{1}")
                .split('|')
                .map(|c| c.trim().trim_matches('`').replace('\u{1}', "|"))
                .collect();
            (cells[1].clone(), cells[2].clone())
        })
        .collect()
}

fn f32_at(a: &Array, index: &[usize]) -> f32 {
    let mut offset = 0;
    for (i, n) in index.iter().zip(&a.shape) {
        assert!(i < n, "index {index:?} outside {:?}", a.shape);
        offset = offset * n + i;
    }
    a.f32s()[offset]
}

fn row(a: &Array, prefix: &[usize]) -> Vec<f32> {
    let last = *a.shape.last().unwrap();
    let mut offset = 0;
    for (i, n) in prefix.iter().zip(&a.shape) {
        offset = offset * n + i;
    }
    a.f32s()[offset * last..(offset + 1) * last].to_vec()
}

fn pos(names: &[String], name: &str) -> usize {
    names
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("{name} not in {names:?}"))
}

fn nf(name: &str) -> usize {
    NODE_FEATURE_NAMES.iter().position(|n| *n == name).unwrap()
}

fn ef(name: &str) -> usize {
    EDGE_FEATURE_NAMES.iter().position(|n| *n == name).unwrap()
}

fn ln1p(x: f64) -> f32 {
    x.ln_1p() as f32
}

/// The project's Python with numpy, or an error saying how to install it.
fn python() -> anyhow::Result<PathBuf> {
    const HINT: &str = "install it with `scripts/install-python-otel.sh` (it installs \
        scripts/requirements/data.txt, numpy, into $MESHWATCH_CACHE/venv and prints the \
        interpreter; scripts/test.sh exports it as MESHWATCH_PYTHON)";
    let path = match std::env::var_os("MESHWATCH_PYTHON").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => meshwatch_testkit::python::cache_dir()?.join("venv/bin/python"),
    };
    if !path.is_file() {
        bail!("no Python interpreter at {}; {HINT}", path.display());
    }
    let check = meshwatch_testkit::run_with_timeout(
        Command::new(&path).args(["-c", "import numpy"]),
        Duration::from_secs(60),
    )?;
    if !check.status.success() {
        bail!(
            "{} cannot import numpy ({}); {HINT}",
            path.display(),
            check.stderr.trim()
        );
    }
    Ok(path)
}

fn run_python_check(dir: &Path, expect: &Value) -> anyhow::Result<()> {
    let python = python()?;
    let expect_file = dir.with_extension("expect.json");
    std::fs::write(&expect_file, serde_json::to_vec_pretty(expect)?)?;
    let script = repo().join("tests/python/test_dataset_npz.py");
    let out = meshwatch_testkit::run_with_timeout(
        Command::new(python)
            .arg(script)
            .arg(dir)
            .arg("--expect")
            .arg(&expect_file),
        Duration::from_secs(120),
    )
    .context("run tests/python/test_dataset_npz.py")?;
    if !out.status.success() {
        bail!(
            "the numpy check failed ({}):\n{}\n{}",
            out.status,
            out.stdout,
            out.stderr
        );
    }
    Ok(())
}

#[test]
fn nezha_fixtures_encode_to_the_snapshots_they_came_from() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ds");
    let labels = tmp.path().join("labels.jsonl");
    let fault = json!({"graph": "onlineboutique", "start_ms": 1_661_140_434_000i64,
        "end_ms": 1_661_140_614_000i64, "root_cause": "frontend", "fault_type": "cpu_contention",
        "source": "nezha:onlineboutique/2022-08-22", "detail": "pod frontend-579b9bff58-t2dbm"});
    let ghost = json!({"graph": "trainticket", "start_ms": 1_674_982_080_000i64,
        "end_ms": 1_674_982_140_000i64, "root_cause": "ts-ghost-service", "fault_type": "return",
        "source": "test"});
    let elsewhere = json!({"graph": "nowhere", "start_ms": 0, "end_ms": 1, "root_cause": "x",
        "fault_type": "crash", "source": "test"});
    std::fs::write(&labels, format!("{fault}\n{ghost}\n\n{elsewhere}\n")).unwrap();
    let traces: Vec<PathBuf> = FIXTURES.iter().map(|f| fixture(f)).collect();
    let mut args = Vec::new();
    for t in &traces {
        args.extend(["--traces", t.to_str().unwrap()]);
    }
    args.extend([
        "--labels",
        labels.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--steps",
        "2",
        "--shard-steps",
        "2",
    ]);
    build(&args);

    let manifest = read_json(&dir.join("manifest.json"));
    let expected = snapshots(&traces, 60);
    let graphs: Vec<&str> = manifest["graphs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["graph"].as_str().unwrap())
        .collect();
    assert_eq!(graphs, ["onlineboutique", "trainticket"]);
    assert_eq!(
        manifest["fault_types"],
        json!(["cpu_contention", "crash", "return"])
    );
    assert_eq!(manifest["labels_without_data"], json!(["nowhere"]));
    assert_eq!(manifest["totals"]["requests"], 71);
    assert_eq!(manifest["totals"]["spans_accepted"], 4311 + 4614 + 4890);
    let doc = doc_arrays();
    assert!(doc.len() > 20, "{doc:?}");

    for g in manifest["graphs"].as_array().unwrap() {
        let name = g["graph"].as_str().unwrap();
        let snaps = &expected[name];
        // Contiguous windows: no masked step, one segment.
        assert_eq!(g["windows_observed"], snaps.len(), "{name}");
        assert_eq!(
            (g["windows_missing"].as_u64(), g["segments"].as_u64()),
            (Some(0), Some(1))
        );
        let shards = g["shards"].as_array().unwrap();
        // 2 windows per shard, overlapping by 1: n windows make n - 1 shards.
        assert_eq!(shards.len(), snaps.len() - 1, "{name}");
        for (k, shard) in shards.iter().enumerate() {
            assert_eq!(shard["overlap"], u64::from(k > 0), "{name} shard {k}");
            let z = read_npz(&dir.join(shard["file"].as_str().unwrap()));
            let got: BTreeSet<(String, String)> = z
                .iter()
                .map(|(n, a)| {
                    let d = if a.descr.starts_with("<U") {
                        "<U"
                    } else {
                        &a.descr
                    };
                    (n.clone(), d.to_owned())
                })
                .collect();
            assert_eq!(
                got,
                doc.iter().cloned().collect(),
                "arrays of {name} shard {k}"
            );
            check_against_snapshots(&z, &snaps[k..k + 2]);
        }
        if name == "trainticket" {
            assert_eq!(g["faults"], 1);
            assert_eq!(g["unmatched_root_causes"], json!(["ts-ghost-service"]));
        }
    }

    // By hand, Online Boutique 03:52 (the golden snapshot's first line) and the fault.
    let ob = &manifest["graphs"][0]["shards"];
    let s0 = read_npz(&dir.join(ob[0]["file"].as_str().unwrap()));
    let s1 = read_npz(&dir.join(ob[1]["file"].as_str().unwrap()));
    assert_eq!(
        s0["window_start_ms"].i64s(),
        [OB_0352_MS, OB_0352_MS + 60_000]
    );
    assert_eq!(
        s0["window_start"].i64s(),
        [OB_0352_MS / 1000, OB_0352_MS / 1000 + 60]
    );
    let names = s0["node_names"].strings();
    assert_eq!(names.len(), 11, "10 services and user: {names:?}");
    let (frontend, currency, user) = (
        pos(&names, "frontend"),
        pos(&names, "currencyservice"),
        pos(&names, "user"),
    );
    let x = &s0["node_features"];
    assert_eq!(
        f32_at(x, &[0, frontend, nf("requests_per_s")]),
        ln1p(67.0 / 60.0)
    );
    assert_eq!(
        f32_at(x, &[0, frontend, nf("out_calls_per_s")]),
        ln1p(597.0 / 60.0)
    );
    assert_eq!(f32_at(x, &[0, frontend, nf("kind_service")]), 1.0);
    assert_eq!(f32_at(x, &[0, user, nf("kind_user")]), 1.0);
    assert_eq!(
        f32_at(x, &[0, user, nf("out_calls_per_s")]),
        ln1p(67.0 / 60.0)
    );
    assert_eq!(f32_at(x, &[0, currency, nf("error_ratio")]), 0.0);
    assert_eq!(f32_at(x, &[0, currency, nf("in_gap_present")]), 1.0);
    // No metrics were given: every resource feature and flag is 0.
    assert_eq!(
        f32_at(x, &[0, frontend, nf("cpu_utilization_present")]),
        0.0
    );
    // Golden p90 of currencyservice latency 1.419 ms, in_gap p50 34.816 ms (rounded to 1 µs).
    let targets = &s0["targets"];
    let p90 = TARGET_NAMES
        .iter()
        .position(|t| *t == "latency_p90_ms")
        .unwrap();
    assert!((f32_at(targets, &[0, currency, p90]) - 1.419).abs() < 0.001);
    assert_eq!(f32_at(targets, &[0, frontend, 0]), (67.0f64 / 60.0) as f32);
    assert!((f32_at(x, &[0, currency, nf("in_gap_p50_ms")]) - ln1p(34.816)).abs() < 1e-4);
    let ei = s0["edge_index"].i64s();
    let e_len = s0["edge_index"].shape[1];
    let edge = |a: usize, b: usize| {
        (0..e_len)
            .find(|&e| ei[e] == a as i64 && ei[e_len + e] == b as i64)
            .unwrap()
    };
    let (fc, uf) = (edge(frontend, currency), edge(user, frontend));
    let xe = &s0["edge_features"];
    assert_eq!(f32_at(xe, &[0, fc, ef("calls_per_s")]), ln1p(169.0 / 60.0));
    assert_eq!(f32_at(xe, &[0, fc, ef("paired_ratio")]), 1.0);
    assert_eq!(f32_at(xe, &[0, fc, ef("conn_direct")]), 1.0);
    assert!((f32_at(xe, &[0, fc, ef("gap_p50_ms")]) - ln1p(34.816)).abs() < 1e-4);
    assert_eq!(f32_at(xe, &[0, uf, ef("conn_entry")]), 1.0);
    assert_eq!(f32_at(xe, &[0, uf, ef("client_latency_p90_ms")]), 0.0);
    // The fault overlaps 03:53 and 03:54 and names frontend.
    assert_eq!(s0["label_any_fault"].u8s(), [0, 1]);
    assert_eq!(s1["label_any_fault"].u8s(), [1, 1]);
    let fault_types = s0["fault_type_names"].strings();
    assert_eq!(fault_types, ["cpu_contention", "crash", "return"]);
    assert_eq!(s0["label_fault_type"].i64s(), [-1, 0]);
    let root = s0["label_root_cause"].u8s();
    let n = names.len();
    assert_eq!(root.iter().map(|&v| usize::from(v)).sum::<usize>(), 1);
    assert_eq!(root[n + frontend], 1);

    let file0 = ob[0]["file"].as_str().unwrap();
    let expect = json!([
        {"file": file0, "array": "node_features", "index": [0, frontend, nf("requests_per_s")],
         "value": (67.0f64 / 60.0).ln_1p(), "tol": 1e-6},
        {"file": file0, "array": "targets", "index": [0, currency, p90], "value": 1.419, "tol": 1e-3},
        {"file": file0, "array": "edge_features", "index": [0, fc, ef("calls_per_s")],
         "value": (169.0f64 / 60.0).ln_1p(), "tol": 1e-6},
        {"file": file0, "array": "edge_index", "index": [0, fc], "value": frontend},
        {"file": file0, "array": "label_root_cause", "index": [1, frontend], "value": 1},
        {"file": file0, "array": "window_start", "index": [0], "value": OB_0352_MS / 1000},
    ]);
    run_python_check(&dir, &expect).unwrap();
}

/// Every window of a shard against the snapshot it came from.
fn check_against_snapshots(z: &BTreeMap<String, Array>, snaps: &[GraphSnapshot]) {
    let names = z["node_names"].strings();
    let starts = z["window_start_ms"].i64s();
    let ei = z["edge_index"].i64s();
    let e_len = z["edge_index"].shape[1];
    assert_eq!(
        z["node_features"].shape,
        [snaps.len(), names.len(), NODE_FEATURE_NAMES.len()]
    );
    for (t, snap) in snaps.iter().enumerate() {
        assert_eq!(starts[t], snap.window_start_ms);
        assert_eq!(f32_at(&z["step_mask"], &[t]), 1.0);
        let step = StepFeatures::from_snapshot(snap);
        for (n, name) in names.iter().enumerate() {
            let want = step.nodes.iter().find(|r| &r.name == name);
            assert_eq!(
                f32_at(&z["node_mask"], &[t, n]),
                f32::from(u8::from(want.is_some()))
            );
            let got = row(&z["node_features"], &[t, n]);
            match want {
                Some(r) => {
                    assert_eq!(got, r.features, "{name} window {t}");
                    assert_eq!(row(&z["targets"], &[t, n]), r.targets);
                    assert_eq!(row(&z["target_mask"], &[t, n]), r.target_mask);
                }
                None => assert!(got.iter().all(|v| *v == 0.0)),
            }
        }
        for e in 0..e_len {
            let (a, b) = (&names[ei[e] as usize], &names[ei[e_len + e] as usize]);
            let want = step.edges.iter().find(|r| &r.caller == a && &r.callee == b);
            assert_eq!(
                f32_at(&z["edge_weight"], &[t, e]),
                f32::from(u8::from(want.is_some()))
            );
            if let Some(r) = want {
                assert_eq!(row(&z["edge_features"], &[t, e]), r.features);
            }
        }
        let edges_in_snapshot = snap.edges.len();
        let weight: f32 = (0..e_len).map(|e| f32_at(&z["edge_weight"], &[t, e])).sum();
        assert_eq!(
            weight as usize, edges_in_snapshot,
            "every edge of the snapshot is in E"
        );
    }
}

// --- synthetic input: gaps, segments, metrics ---------------------------------------------------

/// 2023-11-14 22:13:20 UTC, a multiple of 10 s.
const BASE_MS: i64 = 1_700_000_000_000;

/// One OTLP/JSON request: a root SERVER span of `svc` ending at `end_ms`, 100 ms long.
fn span_line(id: u32, end_ms: i64) -> String {
    let end_ns = end_ms * 1_000_000;
    json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "svc"}},
            {"key": "k8s.cluster.name", "value": {"stringValue": "syn"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": format!("{:032x}", id + 1), "spanId": format!("{:016x}", id + 1),
            "name": "GET /", "kind": 2,
            "startTimeUnixNano": (end_ns - 100_000_000).to_string(),
            "endTimeUnixNano": end_ns.to_string()}]}]}]})
    .to_string()
}

fn metric_line(time_ms: i64, cpu: f64) -> String {
    json!({"resourceMetrics": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "svc"}},
            {"key": "k8s.cluster.name", "value": {"stringValue": "syn"}}]},
        "scopeMetrics": [{"metrics": [{"name": "container.cpu.utilization",
            "gauge": {"dataPoints": [{"timeUnixNano": (time_ms * 1_000_000).to_string(),
                "asDouble": cpu}]}}]}]}]})
    .to_string()
}

#[test]
fn gaps_become_masked_steps_or_segments_and_metrics_join_their_window() {
    let tmp = tempfile::tempdir().unwrap();
    // Spans in the 10 s windows 0, 1, 3 and 10: window 2 is missing (a masked step), windows
    // 4..=9 are a gap of 6 >= --steps 3 (a new segment).
    let windows = [0i64, 1, 3, 10];
    let traces = tmp.path().join("traces.jsonl");
    let lines: Vec<String> = windows
        .iter()
        .enumerate()
        .map(|(i, w)| span_line(i as u32, BASE_MS + w * 10_000 + 5_000))
        .collect();
    std::fs::write(&traces, lines.join("\n")).unwrap();
    // CPU 0.5 in window 1: with no lateness it is only on time if merged with the traces.
    let metrics = tmp.path().join("metrics.jsonl");
    std::fs::write(&metrics, metric_line(BASE_MS + 15_000, 0.5)).unwrap();
    let dir = tmp.path().join("ds");
    build(&[
        "--traces",
        traces.to_str().unwrap(),
        "--metrics",
        metrics.to_str().unwrap(),
        "--window",
        "10s",
        "--lateness",
        "0s",
        "--steps",
        "3",
        "--shard-steps",
        "4",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let manifest = read_json(&dir.join("manifest.json"));
    let totals = &manifest["totals"];
    assert_eq!(
        (&totals["points_accepted"], &totals["points_late"]),
        (&json!(1), &json!(0)),
        "{totals}"
    );
    let g = &manifest["graphs"][0];
    assert_eq!(g["graph"], "syn");
    assert_eq!(
        (
            &g["windows_observed"],
            &g["windows_missing"],
            &g["segments"]
        ),
        (&json!(4), &json!(1), &json!(2))
    );
    let shards = g["shards"].as_array().unwrap();
    let summary: Vec<(u64, u64, u64, i64)> = shards
        .iter()
        .map(|s| {
            (
                s["segment"].as_u64().unwrap(),
                s["steps"].as_u64().unwrap(),
                s["overlap"].as_u64().unwrap(),
                s["first_window_start_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [(0, 4, 0, BASE_MS), (1, 1, 0, BASE_MS + 100_000)]);
    let z = read_npz(&dir.join(shards[0]["file"].as_str().unwrap()));
    assert_eq!(z["step_mask"].f32s(), [1.0, 1.0, 0.0, 1.0]);
    assert_eq!(z["segment"].i64s(), [0]);
    let names = z["node_names"].strings();
    assert_eq!(names, ["svc", "user"]);
    let cpu: Vec<f32> = (0..4)
        .map(|t| f32_at(&z["node_features"], &[t, 0, nf("cpu_utilization")]))
        .collect();
    let flag: Vec<f32> = (0..4)
        .map(|t| f32_at(&z["node_features"], &[t, 0, nf("cpu_utilization_present")]))
        .collect();
    assert_eq!(
        (cpu, flag),
        (vec![0.0, 0.5, 0.0, 0.0], vec![0.0, 1.0, 0.0, 0.0])
    );
    // 1 request in 10 s: 0.1/s; the missing window's target is undefined.
    assert_eq!(f32_at(&z["targets"], &[0, 0, 0]), 0.1);
    assert_eq!(f32_at(&z["target_mask"], &[2, 0, 0]), 0.0);
    let z1 = read_npz(&dir.join(shards[1]["file"].as_str().unwrap()));
    assert_eq!(z1["segment"].i64s(), [1]);
    assert_eq!(z1["window_start"].i64s(), [(BASE_MS + 100_000) / 1000]);
    run_python_check(&dir, &json!([])).unwrap();
}

#[test]
fn bad_arguments_and_inputs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = fixture(FIXTURES[0]);
    let trace = trace.to_str().unwrap();
    let out = tmp.path().join("ds");
    let out = out.to_str().unwrap();
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec![
                "--traces",
                trace,
                "--out",
                out,
                "--steps",
                "8",
                "--shard-steps",
                "4",
            ],
            "--shard-steps (4) must be at least --steps (8)",
        ),
        (
            vec!["--traces", "/nonexistent.jsonl", "--out", out],
            "cannot open /nonexistent.jsonl",
        ),
        (
            vec![
                "--traces",
                trace,
                "--out",
                out,
                "--metrics-format",
                "zipkin",
                "--metrics",
                trace,
            ],
            "--metrics-format must be otlp-json or otlp-proto",
        ),
        (
            vec![
                "--traces",
                trace,
                "--out",
                out,
                "--labels",
                "/nonexistent.labels",
            ],
            "cannot open /nonexistent.labels",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["dataset", "build"];
        all.extend(args);
        let o = meshwatch(&all);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && stderr.contains(message),
            "{all:?}: {stderr}"
        );
    }
    // A folder that is not empty is refused, whatever is in it.
    std::fs::create_dir_all(tmp.path().join("full")).unwrap();
    std::fs::write(tmp.path().join("full/x"), "").unwrap();
    let full = tmp.path().join("full");
    let o = meshwatch(&[
        "dataset",
        "build",
        "--traces",
        trace,
        "--out",
        full.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not empty"));
    // A bad record names the file and the line.
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"resourceSpans\": 5}\n").unwrap();
    let o = meshwatch(&[
        "dataset",
        "build",
        "--traces",
        bad.to_str().unwrap(),
        "--out",
        out,
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: line 1: invalid OTLP/JSON trace request",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(
        !Path::new(out).join("manifest.json").exists(),
        "no manifest for a failed run"
    );
}
