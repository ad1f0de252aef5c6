//! Golden tests of `meshwatch snapshot` on real traces: the Nezha fixtures
//! (`tests/fixtures/nezha/*.otlp.jsonl`, OTLP/JSON lines) in, snapshot JSON lines out. The
//! binary is run as a user runs it (`CARGO_BIN_EXE_meshwatch`), and the library entry point
//! `meshwatch_cli::snapshot::run` as well.
//!
//! For every fixture:
//! - **independent counts**: [`oracle`] derives the expected snapshots from the fixture file
//!   alone (`serde_json` values, none of the project's decoders or graph code): per window by
//!   span end time, node `requests` (root spans, and spans whose parent is in another service:
//!   these spans carry no kind), `spans` and `out_calls`, the edges (parent/child pairs across
//!   services in the child's window, `user -> root service` entries), the ingest statistics
//!   (`paired + unpaired + dropped == spans`, late spans in the next snapshot), and every latency
//!   field against the exact values: count and max exact, mean to the microsecond rounding,
//!   quantiles within the sketch's 1 % relative error. Checked with the 60 s window of the golden
//!   files, and with short windows and no allowed lateness, where spans are late and unpaired;
//! - **the generator's summary** (`*.summary.json`) agrees with the oracle and with the
//!   library's run summary;
//! - **golden files**: the output is compared byte for byte with
//!   `tests/golden/<fixture>.snapshots.jsonl`, so that any change of snapshot content shows in
//!   review. After an intended change, rewrite them and review the diff:
//!   `MESHWATCH_UPDATE_GOLDEN=1 cargo test -p meshwatch-cli --test golden`;
//! - **other encodings**: the same requests as length-delimited protobuf (`--format otlp-proto`),
//!   gzip-compressed (several gzip members), and through stdin and stdout give the same bytes.
//!
//! Bad input: the command stops at the first bad record with an error that names it and exits
//! with status 1. It does not roll back: the snapshots of windows that records before the bad
//! one closed are already in the output file and stay there; windows still open are not written.

#![allow(clippy::panic, clippy::unwrap_used)]

#[path = "golden/bad_input.rs"]
mod bad_input;
#[path = "golden/check.rs"]
mod check;
#[path = "golden/oracle.rs"]
mod oracle;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use meshwatch_cli::input::InputFormat;
use meshwatch_cli::snapshot::{SnapshotArgs, run};
use prost::Message;
use serde_json::Value;

use crate::check::{FixtureTotals, assert_same_output, check_against_oracle, u64_at};
use crate::oracle::USER;

const FIXTURES: [&str; 3] = [
    "onlineboutique-2022-08-22-0353",
    "onlineboutique-2022-08-22-0354-frontend-cpu-contention",
    "trainticket-2023-01-29-0850-faultfree",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    repo().join(format!("tests/fixtures/nezha/{name}.otlp.jsonl"))
}

fn golden(name: &str) -> PathBuf {
    repo().join(format!("tests/golden/{name}.snapshots.jsonl"))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Runs `meshwatch snapshot ARGS`, feeding `stdin` if given.
fn meshwatch(args: &[&OsStr], stdin: Option<Vec<u8>>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshwatch"));
    cmd.arg("snapshot")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("meshwatch starts");
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        std::thread::spawn(move || pipe.write_all(&data))
    });
    let output = child.wait_with_output().expect("meshwatch runs");
    if let Some(feeder) = feeder {
        feeder.join().expect("feeder").expect("stdin written");
    }
    output
}

/// `meshwatch snapshot --input INPUT --format FORMAT --output OUTPUT OPTIONS`; the process
/// output.
fn snapshot(input: &Path, format: &str, output: &Path, options: &[&str]) -> Output {
    let mut args: Vec<&OsStr> = vec![
        "--input".as_ref(),
        input.as_os_str(),
        "--format".as_ref(),
        format.as_ref(),
        "--output".as_ref(),
        output.as_os_str(),
    ];
    args.extend(options.iter().map(OsStr::new));
    meshwatch(&args, None)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs the command as the golden files were made: `--window 60s`, the default allowed lateness
/// (10 s); the output file's bytes.
fn snapshot_ok(input: &Path, format: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = dir.path().join("out.jsonl");
    let out = snapshot(input, format, &output, &["--window", "60s"]);
    assert!(out.status.success(), "meshwatch failed: {}", stderr(&out));
    assert_eq!(stderr(&out), "", "no diagnostics expected");
    read(&output)
}

fn parse_duration_ms(s: &str) -> i64 {
    let secs: i64 = s
        .strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .expect("Ns");
    secs * 1000
}

/// Every fixture, at the golden files' settings and at settings that make spans late and
/// unpaired, against the oracle; the `--summary` report too.
#[test]
fn snapshots_equal_counts_derived_from_the_fixtures() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in FIXTURES {
        let input = fixture(name);
        let spans = oracle::read_spans(&read(&input));
        for (window, lateness) in [("60s", "10s"), ("10s", "0s"), ("1s", "0s")] {
            let ctx = format!("{name} window {window} lateness {lateness}");
            let (window_ms, lateness_ms) = (parse_duration_ms(window), parse_duration_ms(lateness));
            let exp = oracle::expected(&spans, window_ms, lateness_ms);
            let output = dir.path().join("out.jsonl");
            let options = ["--window", window, "--lateness", lateness, "--summary"];
            let out = snapshot(&input, "otlp-json", &output, &options);
            assert!(out.status.success(), "{ctx}: {}", stderr(&out));
            check_against_oracle(&ctx, &read(&output), &exp, window_ms);

            let requests = spans.last().map_or(0, |s| s.request + 1);
            let accepted = spans.len() as u64 - exp.late;
            let totals = exp.windows.values().fold((0, 0), |(p, u), w| {
                (p + w.stats.paired, u + w.stats.unpaired)
            });
            let nodes: BTreeSet<_> = exp.windows.values().flat_map(|w| w.nodes.keys()).collect();
            let edges: BTreeSet<_> = exp.windows.values().flat_map(|w| w.edges.keys()).collect();
            let graph = &spans[0].graph;
            let report = format!(
                "{requests} requests, {accepted} spans aggregated, {} late, 0 rejected -> {} snapshots\n\n\
                 graph {graph}: {} windows, {} nodes, {} edges ({} spans paired, {} unpaired)\n",
                exp.late,
                exp.order.len(),
                exp.order.len(),
                nodes.len(),
                edges.len(),
                totals.0,
                totals.1,
            );
            assert!(stderr(&out).starts_with(&report), "{ctx}: {}", stderr(&out));
        }
        // The golden settings lose nothing on these fixtures: every span of the file is in
        // exactly one snapshot's `spans`, and pairs.
        let snapshots = check::lines(&snapshot_ok(&input, "otlp-json"));
        let total = |key| {
            snapshots
                .iter()
                .map(|s| u64_at(&s["stats"], key))
                .sum::<u64>()
        };
        assert_eq!(total("spans"), spans.len() as u64, "{name}: stats.spans");
        assert_eq!(total("paired"), spans.len() as u64, "{name}: stats.paired");
    }
}

/// Two fixtures replayed one after the other, in and out of time order: shared windows add up;
/// replayed backwards, the older minute is late and counted in the next snapshot.
#[test]
fn consecutive_fixtures_share_windows_and_late_spans_are_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (read(&fixture(FIXTURES[0])), read(&fixture(FIXTURES[1])));
    for (ctx, joined, late) in [("in order", [&a, &b], 0), ("backwards", [&b, &a], 4_311)] {
        let input = dir.path().join("joined.jsonl");
        std::fs::write(&input, [joined[0].as_slice(), joined[1]].concat()).expect("write");
        let spans = oracle::read_spans(&read(&input));
        let exp = oracle::expected(&spans, 60_000, 10_000);
        assert_eq!(exp.late, late, "{ctx}: late spans");
        check_against_oracle(ctx, &snapshot_ok(&input, "otlp-json"), &exp, 60_000);
    }
}

/// The generator's summaries, the oracle and the library's run summary agree.
#[test]
fn fixture_summaries_agree_with_the_oracle_and_the_library() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in FIXTURES {
        let input = fixture(name);
        let bytes = read(&input);
        let spans = oracle::read_spans(&bytes);
        let summary_path = repo().join(format!("tests/fixtures/nezha/{name}.summary.json"));
        let want: Value = serde_json::from_slice(&read(&summary_path)).expect("summary JSON");
        let requests = spans.last().map_or(0, |s| s.request + 1);
        assert_eq!(u64_at(&want, "requests"), requests as u64, "{name}");
        assert_eq!(u64_at(&want, "bytes"), bytes.len() as u64, "{name}");
        assert_eq!(u64_at(&want, "spans"), spans.len() as u64, "{name}");
        let fixture_totals = FixtureTotals::of(&spans);
        assert_eq!(u64_at(&want, "traces"), fixture_totals.traces, "{name}");
        assert_eq!(
            want["services"],
            serde_json::json!(fixture_totals.services),
            "{name}"
        );
        assert_eq!(
            want["spans_by_service"],
            serde_json::json!(fixture_totals.spans_by),
            "{name}"
        );
        assert_eq!(
            want["root_spans_by_service"],
            serde_json::json!(fixture_totals.roots),
            "{name}"
        );
        assert_eq!(
            u64_at(&want, "same_service_parent_child_pairs"),
            fixture_totals.same_service_pairs,
            "{name}"
        );
        let edges: Vec<Value> = fixture_totals
            .edges
            .iter()
            .map(|((a, b), n)| serde_json::json!({"caller": a, "callee": b, "calls": n}))
            .collect();
        assert_eq!(want["edges"], Value::Array(edges), "{name}: edges");
        let first_start = spans.iter().map(|s| s.start_ns).min().unwrap();
        let last_end = spans.iter().map(|s| s.end_ns).max().unwrap();
        assert_eq!(want["first_start_unix_nano"], first_start.to_string());
        assert_eq!(want["last_end_unix_nano"], last_end.to_string());

        // The library entry point, with its own run summary.
        let output = dir.path().join(format!("{name}.jsonl"));
        let args = SnapshotArgs {
            input: input.clone(),
            format: InputFormat::OtlpJson,
            window: std::time::Duration::from_secs(60),
            lateness: std::time::Duration::from_secs(10),
            output: output.clone(),
            graph_keys: Vec::new(),
            service_keys: Vec::new(),
            default_graph: "default".to_owned(),
            summary: false,
            metrics: Vec::new(),
            metrics_format: InputFormat::OtlpJson,
        };
        let got = run(&args).expect("snapshot run");
        let exp = oracle::expected(&spans, 60_000, 10_000);
        assert_eq!(got.requests, requests as u64);
        assert_eq!(got.spans_accepted, spans.len() as u64);
        assert_eq!((got.spans_late, got.spans_rejected), (0, 0));
        assert_eq!(got.snapshots, exp.order.len() as u64);
        let cluster = want["cluster"].as_str().expect("cluster");
        let graphs: Vec<&str> = got.graphs.keys().map(String::as_str).collect();
        assert_eq!(
            graphs,
            [cluster],
            "{name}: one graph, named by k8s.cluster.name"
        );
        let g = &got.graphs[cluster];
        assert_eq!(g.windows, exp.order.len() as u64);
        assert_eq!((g.paired, g.unpaired), (spans.len() as u64, 0), "{name}");
        let mut requests_by = fixture_totals.roots.clone();
        for ((_, callee), n) in &fixture_totals.edges {
            *requests_by.entry(callee.clone()).or_default() += n;
        }
        let mut nodes: Vec<&str> = fixture_totals.services.iter().map(String::as_str).collect();
        nodes.push(USER);
        nodes.sort_unstable();
        let got_nodes: Vec<&str> = g.nodes.keys().map(String::as_str).collect();
        assert_eq!(got_nodes, nodes, "{name}: nodes");
        for (node, t) in &g.nodes {
            let want = requests_by.get(node).copied().unwrap_or(0);
            assert_eq!((t.requests, t.errors), (want, 0), "{name}: {node} requests");
            assert_eq!(t.latency.count, want, "{name}: {node} latency count");
        }
        let mut edges = fixture_totals.edges.clone();
        for (root, n) in &fixture_totals.roots {
            edges.insert((USER.to_owned(), root.clone()), *n);
        }
        let got_edges: Vec<_> = g
            .edges
            .iter()
            .map(|(k, t)| (k.clone(), t.calls, t.errors))
            .collect();
        let want_edges: Vec<_> = edges.into_iter().map(|(k, n)| (k, n, 0)).collect();
        assert_eq!(
            got_edges, want_edges,
            "{name}: calls per edge over all windows"
        );
        let binary = snapshot_ok(&input, "otlp-json");
        assert_same_output(&format!("{name}: library"), &read(&output), &binary);
    }
}

/// Byte-for-byte against the committed golden files (rewritten with MESHWATCH_UPDATE_GOLDEN=1);
/// a second run gives the same bytes.
#[test]
fn snapshots_equal_golden_files() {
    let update = std::env::var("MESHWATCH_UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    for name in FIXTURES {
        let got = snapshot_ok(&fixture(name), "otlp-json");
        assert_same_output(name, &snapshot_ok(&fixture(name), "otlp-json"), &got);
        let path = golden(name);
        if update {
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(&path, &got).expect("write golden file");
            continue;
        }
        let want = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; create it with MESHWATCH_UPDATE_GOLDEN=1 cargo test -p meshwatch-cli --test golden",
                path.display()
            )
        });
        assert_same_output(name, &got, &want);
    }
}

/// The fixture's requests as varint-length-delimited protobuf `ExportTraceServiceRequest`s,
/// converted with the project's OTLP/JSON decoder; the record lengths too.
fn to_protobuf(jsonl: &[u8], spans: usize) -> (Vec<u8>, Vec<usize>) {
    let (mut out, mut lengths, mut converted) = (Vec::new(), Vec::new(), 0);
    for line in jsonl.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let request = meshwatch_graph::otlp::owned::decode_json(line).expect("fixture decodes");
        converted += request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum::<usize>();
        lengths.push(request.encoded_len());
        request
            .encode_length_delimited(&mut out)
            .expect("a Vec grows");
    }
    assert_eq!(converted, spans, "the conversion keeps every span");
    (out, lengths)
}

fn gzip(parts: &[&[u8]]) -> Vec<u8> {
    // One gzip member per part, concatenated (as `cat a.gz b.gz` makes).
    let mut out = Vec::new();
    for part in parts {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(part).expect("in memory");
        out.extend(e.finish().expect("in memory"));
    }
    out
}

/// Protobuf, gzip (JSON and protobuf, several members), stdin and stdout: the same bytes.
#[test]
fn protobuf_gzip_and_stdin_give_identical_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in FIXTURES {
        let json = read(&fixture(name));
        let want = snapshot_ok(&fixture(name), "otlp-json");
        let spans = oracle::read_spans(&json).len();
        let (proto, _) = to_protobuf(&json, spans);

        let path = dir.path().join("in.pb");
        std::fs::write(&path, &proto).expect("write");
        assert_same_output(
            &format!("{name} protobuf"),
            &snapshot_ok(&path, "otlp-proto"),
            &want,
        );

        let half = json.len() / 2;
        let path = dir.path().join("in.jsonl.gz");
        std::fs::write(&path, gzip(&[&json[..half], &json[half..]])).expect("write");
        assert_same_output(
            &format!("{name} gzip"),
            &snapshot_ok(&path, "otlp-json"),
            &want,
        );

        let args: Vec<&OsStr> = ["--input", "-", "--format", "otlp-proto", "--window", "60s"]
            .iter()
            .map(OsStr::new)
            .collect();
        let out = meshwatch(&args, Some(gzip(&[&proto])));
        assert!(out.status.success(), "{name} stdin: {}", stderr(&out));
        assert_same_output(
            &format!("{name} gzip protobuf via stdin/stdout"),
            &out.stdout,
            &want,
        );
    }
}
