//! Zipkin v2 JSON in the command line: `meshwatch dataset import zipkin` (to OTLP files) and
//! `meshwatch snapshot --format zipkin` (directly), on the real traces of
//! `tests/fixtures/zipkin` (OpenZipkin test data, Apache-2.0).

#![allow(clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use meshwatch_cli::dataset::import_zipkin::{ZipkinArgs, run, split_by_end_time};
use meshwatch_cli::input::InputFormat;
use meshwatch_cli::output::OutputFormat;
use meshwatch_cli::snapshot::{SnapshotArgs, Summary};
use meshwatch_graph::otlp::owned::decode_json;
use meshwatch_graph::span::ResourceKeys;
use meshwatch_graph::zipkin::decode_to_otlp;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/zipkin")
        .join(name)
}

fn import(file: &Path, out: &Path, format: OutputFormat) -> PathBuf {
    let summary = run(&ZipkinArgs {
        file: file.to_owned(),
        out: out.to_owned(),
        format,
        spans_per_request: 50,
        request_span: Duration::from_secs(1),
        graph_keys: Vec::new(),
        gzip: false,
    })
    .unwrap();
    summary.output
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

fn edges(summary: &Summary) -> BTreeMap<(String, String), u64> {
    summary.graphs["default"]
        .edges
        .iter()
        .map(|(k, t)| (k.clone(), t.calls))
        .collect()
}

#[test]
fn import_and_direct_reading_give_the_hand_derived_edges() {
    let out = tempfile::tempdir().unwrap();
    let otlp = import(&fixture("yelp.json"), out.path(), OutputFormat::OtlpJson);
    assert_eq!(otlp, out.path().join("traces.otlp.jsonl"));
    let text = std::fs::read_to_string(&otlp).unwrap();
    let requests: Vec<_> = text
        .lines()
        .map(|l| decode_json(l.as_bytes()).unwrap())
        .collect();
    assert_eq!(requests.len(), 1, "16 spans within 131 ms, 50 per request");
    let spans: Vec<_> = requests[0]
        .resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter().flat_map(|s| &s.spans))
        .collect();
    assert_eq!(spans.len(), 16);
    // The converted request is the decoder's, only reordered.
    let direct = decode_to_otlp(
        &std::fs::read(fixture("yelp.json")).unwrap(),
        &ResourceKeys::default(),
    )
    .unwrap();
    assert_eq!(split_by_end_time(direct, 50, 1_000_000_000), requests);

    let via_otlp = snapshot(&otlp, InputFormat::OtlpJson, &out.path().join("a.jsonl"));
    let direct = snapshot(
        &fixture("yelp.json"),
        InputFormat::Zipkin,
        &out.path().join("b.jsonl"),
    );
    let expected: BTreeMap<(String, String), u64> = [
        ("user", "routing", 1),
        ("unknown", "yelp_main/api_proxy", 1),
        ("unknown", "yelp-main", 1),
        ("yelp-main", "mobile_api", 1),
        ("mobile_api", "spectre", 1),
        ("mobile_api", "blt", 1),
        ("mobile_api", "memcache", 2),
        ("yelp-main", "memcache", 3),
        ("yelp-main", "mysql", 2),
    ]
    .into_iter()
    .map(|(a, b, n)| ((a.to_owned(), b.to_owned()), n))
    .collect();
    assert_eq!(edges(&via_otlp), expected);
    assert_eq!(edges(&direct), expected);
    assert_eq!(
        std::fs::read(out.path().join("a.jsonl")).unwrap(),
        std::fs::read(out.path().join("b.jsonl")).unwrap()
    );
}

#[test]
fn the_import_orders_spans_by_end_time_and_so_keeps_them_on_time() {
    // The SmartThings trace lasts 100 s and lists its spans out of time order: read directly,
    // 72 of its 175 spans come after the watermark has passed their window (10 s lateness);
    // imported, they are ordered by end time and all on time.
    let out = tempfile::tempdir().unwrap();
    let name = "smartthings-oauth-authorization.json";
    let direct = snapshot(
        &fixture(name),
        InputFormat::Zipkin,
        &out.path().join("a.jsonl"),
    );
    assert_eq!((direct.spans_accepted, direct.spans_late), (103, 72));
    let otlp = import(&fixture(name), out.path(), OutputFormat::OtlpProto);
    assert_eq!(otlp, out.path().join("traces.otlp.pb"));
    let imported = snapshot(&otlp, InputFormat::OtlpProto, &out.path().join("b.jsonl"));
    assert_eq!((imported.spans_accepted, imported.spans_late), (175, 0));
    // At most 50 spans, and 1 s of end times, per request.
    assert!(imported.requests >= 4, "{}", imported.requests);
}

#[test]
fn several_span_lists_in_one_gzipped_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lists.json.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::default(),
    );
    for name in ["skew.json", "messaging.json", "ascend.json"] {
        gz.write_all(&std::fs::read(fixture(name)).unwrap())
            .unwrap();
        gz.write_all(b"\n").unwrap();
    }
    gz.finish().unwrap();
    let summary = snapshot(&path, InputFormat::Zipkin, &dir.path().join("s.jsonl"));
    assert_eq!(summary.requests, 3);
    assert_eq!(summary.spans_accepted, 4 + 4 + 8);
    let e = edges(&summary);
    for edge in [
        ("servicea", "serviceb"),
        ("frontend", "backend"),
        ("mobile-gateway", "auth-service"),
    ] {
        assert_eq!(e[&(edge.0.to_owned(), edge.1.to_owned())], 1, "{edge:?}");
    }
}

#[test]
fn the_command_line_and_bad_input() {
    let out = tempfile::tempdir().unwrap();
    let meshwatch = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_meshwatch"))
            .args(args)
            .output()
            .unwrap()
    };
    let ok = meshwatch(&[
        "dataset".as_ref(),
        "import".as_ref(),
        "zipkin".as_ref(),
        fixture("messaging-kafka.json").as_os_str(),
        "--out".as_ref(),
        out.path().as_os_str(),
        "--gzip".as_ref(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(
        stderr.contains("28 Zipkin spans from 1 span lists, 2 services -> 1 OTLP requests"),
        "{stderr}"
    );
    assert!(out.path().join("traces.otlp.jsonl.gz").is_file());

    let bad = out.path().join("bad.json");
    std::fs::write(&bad, b"[{\"traceId\": 1}]").unwrap();
    let failed = meshwatch(&[
        "snapshot".as_ref(),
        "--input".as_ref(),
        bad.as_os_str(),
        "--format".as_ref(),
        "zipkin".as_ref(),
    ]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("span list 1"), "{stderr}");
    assert!(
        stderr.contains("invalid Zipkin v2 JSON span list"),
        "{stderr}"
    );
}
