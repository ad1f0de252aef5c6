//! `meshwatch snapshot --metrics`: OTLP metrics join the nodes of the same graph and window as
//! resource metrics, exactly as in the ingest; without them no node carries `resources`.

use std::path::Path;
use std::process::Command;

fn meshwatch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_meshwatch"))
        .args(args)
        .output()
        .expect("meshwatch runs")
}

fn snapshots(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("output written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn metrics_join_their_nodes_as_resources() {
    let dir = tempfile::tempdir().expect("temp dir");
    let day = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/nezha-raw/onlineboutique/2022-08-22"
    );
    let out = dir.path().join("import");
    let import = meshwatch(&[
        "dataset",
        "import",
        "nezha",
        day,
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let traces = out.join("traces.otlp.jsonl");
    let metrics = out.join("metrics.otlp.jsonl");

    let with = dir.path().join("with.jsonl");
    let run = meshwatch(&[
        "snapshot",
        "--input",
        traces.to_str().expect("utf-8"),
        "--metrics",
        metrics.to_str().expect("utf-8"),
        "--output",
        with.to_str().expect("utf-8"),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let with = snapshots(&with);
    let resources: Vec<&serde_json::Value> = with
        .iter()
        .flat_map(|s| s["nodes"].as_array().expect("nodes"))
        .filter_map(|n| n.get("resources"))
        .collect();
    assert!(!resources.is_empty(), "no node carries resource metrics");
    for r in &resources {
        let cpu = r["cpu_utilization"]
            .as_f64()
            .expect("cpu utilisation present");
        assert!((0.0..=1.0).contains(&cpu), "{r}");
        assert!(
            r["memory_bytes"].as_f64().expect("memory present") > 0.0,
            "{r}"
        );
    }

    let without = dir.path().join("without.jsonl");
    let run = meshwatch(&[
        "snapshot",
        "--input",
        traces.to_str().expect("utf-8"),
        "--output",
        without.to_str().expect("utf-8"),
    ]);
    assert!(run.status.success());
    let without = snapshots(&without);
    assert!(
        without
            .iter()
            .flat_map(|s| s["nodes"].as_array().expect("nodes"))
            .all(|n| n.get("resources").is_none())
    );
}
