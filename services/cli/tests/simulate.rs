//! `meshwatch simulate` as a user runs it: files out, then `meshwatch snapshot` over them.
//! Same seed, same bytes (JSON and protobuf); both encodings give the same snapshots; the
//! labels file names the injected fault; the fault's mark is in the snapshot JSON.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use meshwatch_graph::labels::read_labels;

const BIN: &str = env!("CARGO_BIN_EXE_meshwatch");
/// 2025-01-06T08:00:00Z, the default start for files.
const START_MS: i64 = 1_736_150_400_000;

fn meshwatch(args: &[&str]) {
    let out = Command::new(BIN).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "meshwatch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn simulate(dir: &Path, format: &str, seed: &str) {
    meshwatch(&[
        "simulate",
        "--topology",
        "onlineboutique",
        "--duration",
        "6m",
        "--rate",
        "15",
        "--seed",
        seed,
        "--format",
        format,
        "--faults",
        "latency:service=currencyservice,factor=5,start=3m,duration=2m",
        "--out",
        dir.to_str().unwrap(),
    ]);
}

fn snapshot(input: &Path, format: &str, output: &Path) -> Vec<serde_json::Value> {
    meshwatch(&[
        "snapshot",
        "--input",
        input.to_str().unwrap(),
        "--format",
        format,
        "--output",
        output.to_str().unwrap(),
    ]);
    std::fs::read_to_string(output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn files_are_reproducible_and_snapshots_show_the_fault() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    simulate(&a, "otlp-json", "3");
    simulate(&b, "otlp-json", "3");
    simulate(&c, "otlp-proto", "3");
    for name in ["traces.otlp.jsonl", "metrics.otlp.jsonl", "labels.jsonl"] {
        let x = std::fs::read(a.join(name)).unwrap();
        assert!(!x.is_empty(), "{name}");
        assert!(x == std::fs::read(b.join(name)).unwrap(), "{name} differs");
    }
    assert!(c.join("traces.otlp.pb").is_file() && c.join("metrics.otlp.pb").is_file());

    let json = snapshot(
        &a.join("traces.otlp.jsonl"),
        "otlp-json",
        &tmp.path().join("a.jsonl"),
    );
    let proto = snapshot(
        &c.join("traces.otlp.pb"),
        "otlp-proto",
        &tmp.path().join("c.jsonl"),
    );
    assert_eq!(json, proto, "both encodings carry the same spans");
    // Six one-minute windows, and a seventh with the last spans of the traces that began
    // before the end of the run.
    assert_eq!(json.len(), 7);
    let spans = |w: &serde_json::Value| w["stats"]["spans"].as_u64().unwrap();
    assert!(spans(&json[6]) * 20 < spans(&json[5]));

    let labels = read_labels(std::io::BufReader::new(
        std::fs::File::open(a.join("labels.jsonl")).unwrap(),
    ))
    .unwrap();
    assert_eq!(labels.len(), 1);
    let l = &labels[0];
    assert_eq!(
        (
            l.graph.as_str(),
            l.root_cause.as_str(),
            l.fault_type.as_str()
        ),
        ("onlineboutique", "currencyservice", "latency")
    );
    assert_eq!(
        (l.start_ms, l.end_ms),
        (START_MS + 180_000, START_MS + 300_000)
    );

    // The mark: currencyservice's p90 about 5× in the windows of the fault only.
    let p90 = |w: &serde_json::Value| {
        w["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["service"] == "currencyservice")
            .map(|n| n["latency_ms"]["p90"].as_f64().unwrap())
            .unwrap()
    };
    let base = (p90(&json[1]) + p90(&json[2])) / 2.0;
    for w in &json[3..5] {
        let x = p90(w) / base;
        assert!((3.5..6.5).contains(&x), "{x}");
        assert!(w["window_start_ms"].as_i64().unwrap() >= l.start_ms);
    }
    assert!(p90(&json[5]) / base < 1.3);
    assert_eq!(
        json[6]["window_start_ms"].as_i64().unwrap(),
        START_MS + 360_000
    );
    for w in &json {
        assert_eq!(w["graph"], "onlineboutique");
        assert_eq!(w["stats"]["late"], 0);
    }
}

#[test]
fn bad_flags_are_refused() {
    for args in [
        vec!["simulate", "--topology", "nosuch", "--out", "/tmp/x"],
        vec![
            "simulate",
            "--faults",
            "latency:service=nosuch,start=1m,duration=1m",
            "--out",
            "/tmp/x",
        ],
        vec![
            "simulate",
            "--duration",
            "5m",
            "--random-faults",
            "5",
            "--out",
            "/tmp/x",
        ],
        vec!["simulate"],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn resource_faults_show_in_the_snapshots_resource_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sim");
    meshwatch(&[
        "simulate",
        "--topology",
        "onlineboutique",
        "--duration",
        "13m",
        "--rate",
        "15",
        "--faults",
        "cpu_contention:service=currencyservice,start=3m,duration=3m;memory_leak:service=cartservice,start=7m,duration=4m",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let output = tmp.path().join("snapshots.jsonl");
    meshwatch(&[
        "snapshot",
        "--input",
        dir.join("traces.otlp.jsonl").to_str().unwrap(),
        "--metrics",
        dir.join("metrics.otlp.jsonl").to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    let windows: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let resource = |minute: usize, service: &str, key: &str| {
        windows[minute]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["service"] == service)
            .and_then(|n| n["resources"][key].as_f64())
            .unwrap_or_else(|| panic!("{service} {key} at minute {minute}"))
    };
    // CPU: the hog's share on top of the service's own load, in the fault's windows only.
    let cpu_before = resource(2, "currencyservice", "cpu_utilization");
    assert!(cpu_before < 0.5, "{cpu_before}");
    for m in 4..6 {
        let cpu = resource(m, "currencyservice", "cpu_utilization");
        assert!(cpu > cpu_before + 0.5, "minute {m}: {cpu}");
    }
    assert!(resource(7, "currencyservice", "cpu_utilization") < 0.5);
    // Memory: grows through the leak, back after the restart.
    let mem_before = resource(6, "cartservice", "memory_bytes");
    assert!(resource(8, "cartservice", "memory_bytes") > mem_before * 1.5);
    assert!(resource(10, "cartservice", "memory_bytes") > mem_before * 2.5);
    // (The sample at 11:00 still covers the last 15 s of the leak: samples are means over the
    // interval that ends at their timestamp.)
    assert!(resource(12, "cartservice", "memory_bytes") < mem_before * 1.2);
    let restarts: f64 = (10..13)
        .map(|m| resource(m, "cartservice", "restarts"))
        .sum();
    assert_eq!(restarts, 1.0);
}
