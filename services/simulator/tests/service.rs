//! The `meshwatch-simulator` binary as a service: strict configuration (`--check-config`, all
//! problems at once, exit 2), admin endpoint (`/healthz`, `/readyz`, `/metrics`), OTLP to an
//! in-process ingest, SIGTERM → drain → exit 0, and a run with a duration that ends by itself.

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshwatch_ingest::{IngestConfig, run};
use meshwatch_runtime::{Readiness, Shutdown};

const BIN: &str = env!("CARGO_BIN_EXE_meshwatch-simulator");

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn free_port() -> u16 {
    TcpListener::bind(loopback())
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn check_config_prints_the_effective_config_or_every_problem() {
    let out = Command::new(BIN)
        .args(["--check-config", "--set", "simulation.topology=trainticket"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("topology = \"trainticket\""), "{text}");
    assert!(
        text.contains("[export]") && text.contains("[run]"),
        "{text}"
    );

    let out = Command::new(BIN)
        .args([
            "--check-config",
            "--set",
            "simulation.rate=-1",
            "--set",
            "run.speed=60",
            "--set",
            "export.bogus=1",
        ])
        .env("MESHWATCH_SIMULATION__TOPOLOGY", "generated:5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    for needle in [
        "simulation.rate",
        "run.speed",
        "export.bogus",
        "simulation.topology",
    ] {
        assert!(err.contains(needle), "{needle} in {err}");
    }
}

async fn get(url: String) -> Option<(u16, String)> {
    let r = reqwest::get(url).await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

async fn accepted_spans(admin: SocketAddr) -> u64 {
    let (_, text) = get(format!("http://{admin}/metrics")).await.unwrap();
    text.lines()
        .find(|l| l.starts_with("meshwatch_ingest_spans_total{outcome=\"accepted\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse::<f64>().unwrap() as u64)
}

fn spawn(admin_port: u16, endpoint: &str, extra: &[&str]) -> Child {
    let mut args = vec![
        "--set".to_owned(),
        format!("admin.listen=\"127.0.0.1:{admin_port}\""),
        "--set".to_owned(),
        format!("export.endpoint=\"{endpoint}\""),
        "--set".to_owned(),
        "simulation.rate=20".to_owned(),
        "--set".to_owned(),
        "shutdown.grace=\"5s\"".to_owned(),
    ];
    for e in extra {
        args.push("--set".to_owned());
        args.push((*e).to_owned());
    }
    Command::new(BIN)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

#[test]
fn serves_admin_sends_otlp_and_drains_on_sigterm() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut c = IngestConfig::default();
        c.admin.listen = loopback();
        c.otlp.grpc_listen = loopback();
        c.otlp.http_listen = loopback();
        c.nats.url = "nats://127.0.0.1:1".to_owned();
        let shutdown = Shutdown::new(Readiness::new());
        let ingest = run(c, &shutdown).await.unwrap();
        let endpoint = format!("http://{}", ingest.grpc.unwrap());

        // Real time, until stopped.
        let port = free_port();
        let mut child = spawn(port, &endpoint, &["simulation.topology=\"sockshop\""]);
        let admin = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut ready = false;
        while Instant::now() < deadline {
            if let Some((200, _)) = get(format!("{admin}/readyz")).await {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "the simulator became ready");
        assert_eq!(
            get(format!("{admin}/healthz")).await.map(|r| r.0),
            Some(200)
        );
        // Spans arrive in real time, as each simulated second ends.
        let mut accepted = 0;
        while Instant::now() < deadline && accepted == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            accepted = accepted_spans(ingest.admin).await;
        }
        assert!(accepted > 0, "the ingest received spans");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (_, metrics) = get(format!("{admin}/metrics")).await.unwrap();
        assert!(
            metrics.contains(
                "meshwatch_simulator_exported_items_total{outcome=\"accepted\",signal=\"traces\"}"
            ),
            "{metrics}"
        );
        assert!(metrics.contains("meshwatch_simulator_traces_total"));
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let code =
            tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10)))
                .await
                .unwrap();
        assert_eq!(code, Some(0), "drained and exited cleanly");

        // A run with a duration, unpaced: ends by itself.
        let before = accepted_spans(ingest.admin).await;
        let port = free_port();
        let mut child = spawn(
            port,
            &endpoint,
            &[
                "simulation.topology=\"socialnetwork\"",
                "run.duration=\"30s\"",
                "run.speed=0",
            ],
        );
        let code =
            tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(30)))
                .await
                .unwrap();
        assert_eq!(code, Some(0));
        assert!(accepted_spans(ingest.admin).await > before + 1000);
        shutdown.trigger("test done");
        shutdown.wait(Duration::from_secs(5)).await;
    });
}
