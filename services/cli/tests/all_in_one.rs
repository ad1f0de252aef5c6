//! `meshwatch run` and `meshwatch demo` as a user runs them, with the committed models on ONNX
//! Runtime and the SQLite sink: traffic in over OTLP, every window stored (scores and forecasts
//! for each graph window, also the windows the ingest flushes at SIGTERM), the demo's report
//! naming the injected fault's root cause, and bad configurations refused with exit 2.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshwatch_testkit::models::{artifact, ort_library};
use meshwatch_testkit::ports::free_addrs;

const BIN: &str = env!("CARGO_BIN_EXE_meshwatch");

/// The committed models, wherever the test runs.
fn model_sets() -> Vec<String> {
    vec![
        format!("detector.model.dir={}", artifact("detector").display()),
        format!("forecaster.model.dir={}", artifact("forecaster").display()),
    ]
}

fn with_sets(command: &mut Command, sets: &[String]) {
    for set in sets {
        command.arg("--set").arg(set);
    }
}

/// Distinct window starts of a table's time column.
fn windows(db: &Path, table: &str, column: &str) -> Vec<i64> {
    let connection = rusqlite::Connection::open(db).unwrap();
    let mut statement = connection
        .prepare(&format!(
            "SELECT DISTINCT {column} FROM {table} ORDER BY {column}"
        ))
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A `meshwatch run` child, killed if the test ends early.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_ready(admin: std::net::SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            panic!("meshwatch run exited early ({status}): {stderr}");
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(admin) {
            use std::io::Write;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = write!(
                stream,
                "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if response.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "meshwatch run not ready in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn run_scores_and_stores_every_window_and_drains_on_sigterm() {
    let ort = ort_library().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let addrs = free_addrs(7).unwrap();
    let mut sets = model_sets();
    sets.extend([
        format!("ingest.otlp.grpc_listen={}", addrs[0]),
        format!("ingest.otlp.http_listen={}", addrs[1]),
        format!("ingest.admin.listen={}", addrs[2]),
        format!("detector.admin.listen={}", addrs[3]),
        format!("forecaster.admin.listen={}", addrs[4]),
        format!("detector.grpc.listen={}", addrs[5]),
        format!("forecaster.grpc.listen={}", addrs[6]),
        format!("aggregator.sink.sqlite.path={}", db.display()),
    ]);
    let mut command = Command::new(BIN);
    command
        .arg("run")
        .env("ORT_DYLIB_PATH", &ort)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    with_sets(&mut command, &sets);
    let mut run = Running(command.spawn().unwrap());
    wait_ready(addrs[2], &mut run.0);

    // Six simulated minutes, unpaced: 36 windows of 10 s.
    let status = Command::new(BIN)
        .args([
            "simulate",
            "--endpoint",
            &format!("http://{}", addrs[0]),
            "--speed",
            "0",
            "--duration",
            "6m",
            "--rate",
            "10",
            "--faults",
            "error_burst:service=paymentservice,rate=0.5,start=4m,duration=1m",
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "simulate: {status}");

    // SIGTERM: the ingest flushes its open windows; the pipeline scores and stores them.
    let pid = run.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = run.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit 60 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    run.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "exit after SIGTERM: {stderr}");

    let graph = windows(&db, "graph_nodes", "window_start");
    assert!(
        (35..=38).contains(&graph.len()),
        "{} graph windows: {graph:?}",
        graph.len()
    );
    // Every window of the graph was scored and forecast, none twice.
    assert_eq!(windows(&db, "anomaly_scores", "window_start"), graph);
    assert_eq!(windows(&db, "forecasts", "issued_at"), graph);
    let connection = rusqlite::Connection::open(&db).unwrap();
    let mut unscored = connection
        .prepare(
            "SELECT n.window_start, n.service, n.kind, n.requests, n.spans FROM graph_nodes n \
             LEFT JOIN anomaly_scores s ON s.window_start = n.window_start AND s.service = n.service \
             WHERE s.service IS NULL",
        )
        .unwrap();
    let unscored: Vec<(i64, String, String, i64, i64)> = unscored
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(unscored.is_empty(), "nodes without a score: {unscored:?}");
    for w in graph.windows(2) {
        assert_eq!(w[1] - w[0], 10_000, "10 s windows, no gap: {graph:?}");
    }
}

#[test]
fn run_refuses_settings_it_does_not_use_and_prints_its_effective_configuration() {
    let out = Command::new(BIN)
        .args([
            "run",
            "--set",
            "detector.nats.url=nats://elsewhere:4222",
            "--set",
            "ingest.graph.windw=10s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("detector.nats"), "{stderr}");
    assert!(stderr.contains("windw"), "{stderr}");

    let out = Command::new(BIN)
        .args(["run", "--check-config"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bus = \"in-process\""), "{text}");
    assert!(text.contains("window = \"10s\""), "{text}");
    assert!(text.contains("kind = \"sqlite\""), "{text}");
}

fn report(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn demo_reports_the_injected_fault_with_its_root_cause() {
    let ort = ort_library().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out_dir: PathBuf = dir.path().join("demo");
    let mut command = Command::new(BIN);
    command
        .args([
            "demo",
            "--duration",
            "24m",
            "--faults",
            "error_burst:service=paymentservice,rate=0.5,start=18m,duration=3m",
            "--out",
        ])
        .arg(&out_dir)
        .env("ORT_DYLIB_PATH", &ort);
    with_sets(&mut command, &model_sets());
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo: {stderr}");
    assert!(stderr.contains("all-in-one up"), "{stderr}");
    assert!(stdout.contains("Injected faults:"), "{stdout}");
    assert!(stdout.contains("Incidents found"), "{stdout}");
    assert!(stdout.contains("sqlite3 "), "{stdout}");

    let report = report(&out_dir);
    let faults = report["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 1, "{report}");
    let fault = &faults[0];
    assert_eq!(fault["root_cause"], "paymentservice");
    assert_eq!(fault["detected"], true, "{report}");
    assert_eq!(fault["root_cause_rank"], 1, "{report}");
    assert_eq!(report["detection_rate"], 1.0);
    assert_eq!(report["root_cause_top1_rate"], 1.0);
    assert_eq!(report["false_alarms"], 0, "{report}");
    // The matching incident is stored as the report says.
    let db = out_dir.join("meshwatch.db");
    assert_eq!(report["database"], db.display().to_string());
    let incident = fault["incidents"][0].as_str().unwrap();
    let causes: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT root_causes FROM incidents WHERE incident_id = ?1",
            [incident],
            |row| row.get(0),
        )
        .unwrap();
    assert!(
        causes.starts_with("[{\"service\":\"paymentservice\""),
        "{causes}"
    );
    // Forecast error for each observed target, one window ahead, on every window.
    let forecast = report["forecast"].as_array().unwrap();
    for metric in ["request_rate", "latency_p99_ms", "error_ratio"] {
        let row = forecast
            .iter()
            .find(|f| f["metric"] == metric && f["horizon"] == 1)
            .unwrap_or_else(|| panic!("no {metric} h=1 in {report}"));
        assert!(row["points"].as_u64().unwrap() > 100, "{row}");
        assert!(row["mae"].as_f64().unwrap().is_finite(), "{row}");
    }
    let graph = windows(&db, "graph_nodes", "window_start");
    assert_eq!(windows(&db, "anomaly_scores", "window_start"), graph);
    assert_eq!(report["windows_scored"], graph.len());
}

#[test]
fn demo_refuses_a_topology_without_faults_and_a_bad_fault() {
    let out = Command::new(BIN)
        .args(["demo", "--topology", "sockshop"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--faults"), "{stderr}");

    let out = Command::new(BIN)
        .args([
            "demo",
            "--faults",
            "latency:service=nosuchservice,start=1m,duration=1m",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nosuchservice"), "{stderr}");
}
