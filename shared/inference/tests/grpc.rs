//! The gRPC API with a real tonic client, the committed models and ONNX Runtime: good requests
//! of both services, every class of bad input, deadlines, health, reflection and a hot reload
//! under load.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use meshwatch_inference::grpc::{ApiState, DetectorApi};
use meshwatch_inference::metrics::ServiceMetrics;
use meshwatch_inference::{Detector, Forecaster};
use meshwatch_model::{LoadOptions, Model, ModelKind, ModelOutputs};
use meshwatch_proto::v1;
use meshwatch_proto::v1::detector_client::DetectorClient;
use meshwatch_proto::v1::detector_server::Detector as _;
use meshwatch_proto::v1::forecaster_client::ForecasterClient;
use meshwatch_testkit::models::{artifact, copy_artifact};
use meshwatch_testkit::synthetic::{proto_snapshot, proto_window};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use support::{Service, config};

const EPOCH: i64 = 1_764_000_000_000;
const WINDOW: u32 = 10_000;

async fn detector(service: &Service) -> DetectorClient<tonic::transport::Channel> {
    DetectorClient::connect(service.grpc_url())
        .await
        .expect("connect")
}

fn detect(snapshots: Vec<v1::GraphSnapshot>) -> v1::DetectRequest {
    v1::DetectRequest {
        snapshots,
        top_contributions: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detect_scores_every_node_and_names_the_model() -> anyhow::Result<()> {
    let service = Service::start(config::<Detector>(&artifact("detector"))?).await?;
    let mut client = detector(&service).await;
    let mut request = detect(proto_window("shop", EPOCH, WINDOW, 0, 12, 4));
    // The fault: svc-2 twenty times slower in the last window.
    request.snapshots[11] = proto_snapshot("shop", EPOCH, WINDOW, 11, 4, Some((2, 20.0)));
    request.top_contributions = 3;
    let report = client
        .detect(request)
        .await?
        .into_inner()
        .report
        .expect("a report");
    assert_eq!(report.graph, "shop");
    assert_eq!(report.window_start_ms, EPOCH + 11 * i64::from(WINDOW));
    assert_eq!(report.window_ms, WINDOW);
    assert_eq!((report.steps, report.observed_steps), (12, 12));
    let model = report.model.clone().expect("model ref");
    assert_eq!(model.name, "detector");
    assert!(model.version.starts_with("sha256:"), "{}", model.version);
    assert_eq!(model.execution_provider, "cpu");
    let names: Vec<&str> = report.scores.iter().map(|s| s.node.as_str()).collect();
    assert_eq!(names, ["frontend", "svc-1", "svc-2", "svc-3", "user"]);
    let edges: Vec<(&str, &str)> = report
        .edges
        .iter()
        .map(|e| (e.caller.as_str(), e.callee.as_str()))
        .collect();
    assert_eq!(
        edges,
        [
            ("frontend", "svc-1"),
            ("svc-1", "svc-2"),
            ("svc-2", "svc-3"),
            ("user", "frontend")
        ]
    );
    for score in &report.scores {
        assert!(score.score.is_finite());
        assert!(score.present);
        assert_eq!(score.contributions.len(), 3, "{}", score.node);
    }
    // An edge without calls in the last window is not in the report's call graph.
    let mut quiet = proto_window("shop", EPOCH, WINDOW, 0, 12, 4);
    quiet[11].edges.retain(|e| e.callee != "svc-3");
    let report_quiet = client
        .detect(detect(quiet))
        .await?
        .into_inner()
        .report
        .expect("a report");
    assert_eq!(report_quiet.edges.len(), 3);
    assert!(report_quiet.edges.iter().all(|e| e.callee != "svc-3"));

    // The service path computes what the model computes on the same window: encoded here,
    // run directly through ONNX Runtime.
    let mut faulty = proto_window("shop", EPOCH, WINDOW, 0, 11, 4);
    faulty.push(proto_snapshot(
        "shop",
        EPOCH,
        WINDOW,
        11,
        4,
        Some((2, 20.0)),
    ));
    let window = meshwatch_inference::window::from_snapshots(
        &faulty,
        ModelKind::Detector,
        12,
        &meshwatch_inference::limits::Limits::default(),
    )?;
    let model = Model::load(
        &artifact("detector"),
        &LoadOptions {
            library: Some(meshwatch_testkit::models::ort_library()?),
            ..LoadOptions::default()
        },
    )?;
    let ModelOutputs::Detector { anomaly_score, .. } = model.run(&window.inputs)? else {
        panic!("detector outputs expected");
    };
    for (n, name) in window.encoded.node_names.iter().enumerate() {
        let served = report
            .scores
            .iter()
            .find(|s| &s.node == name)
            .expect("every node scored");
        assert!(
            (served.score - anomaly_score[n]).abs() <= 1e-5,
            "{name}: served {} direct {}",
            served.score,
            anomaly_score[n]
        );
    }
    // And the fault shows: the slow service's score moves.
    let calm = client
        .detect(detect(proto_window("shop", EPOCH, WINDOW, 0, 12, 4)))
        .await?
        .into_inner()
        .report
        .expect("a report");
    let svc2 = |r: &v1::AnomalyReport| {
        r.scores
            .iter()
            .find(|s| s.node == "svc-2")
            .map(|s| s.score)
            .expect("svc-2")
    };
    assert!(
        (svc2(&report) - svc2(&calm)).abs() > 1e-4,
        "slow {} vs calm {}",
        svc2(&report),
        svc2(&calm)
    );
    assert!(service.stop().await.is_clean());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecast_gives_h_steps_per_metric_with_intervals() -> anyhow::Result<()> {
    let service = Service::start(config::<Forecaster>(&artifact("forecaster"))?).await?;
    let mut client = ForecasterClient::connect(service.grpc_url()).await?;
    // Fewer windows than T, with a gap: padded and masked.
    let mut snapshots = proto_window("shop", EPOCH, WINDOW, 0, 6, 3);
    snapshots.remove(2);
    let report = client
        .forecast(v1::ForecastRequest { snapshots })
        .await?
        .into_inner()
        .report
        .expect("a report");
    let horizon = service.running.server.info().horizon.expect("H");
    assert_eq!(report.horizon as usize, horizon);
    assert_eq!(report.steps as usize, service.running.server.info().steps);
    assert_eq!(report.observed_steps, 5);
    assert_eq!(report.forecasts.len(), 4);
    let targets = &service.running.server.info().targets;
    for node in &report.forecasts {
        assert_eq!(node.metrics.len(), targets.len(), "{}", node.node);
        for (metric, name) in node.metrics.iter().zip(targets) {
            assert_eq!(&metric.metric, name);
            assert_eq!(metric.points.len(), horizon);
            for (h, point) in metric.points.iter().enumerate() {
                assert_eq!(point.horizon as usize, h + 1);
                assert_eq!(
                    point.target_window_start_ms,
                    EPOCH + (5 + h as i64 + 1) * i64::from(WINDOW)
                );
                assert!(
                    point.value.is_finite() && point.lower.is_finite() && point.upper.is_finite()
                );
            }
        }
    }
    assert!(service.stop().await.is_clean());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_invalid_argument_naming_the_field() -> anyhow::Result<()> {
    let mut cfg = config::<Detector>(&artifact("detector"))?;
    cfg.limits.max_windows = 16;
    cfg.limits.max_nodes = 8;
    let service = Service::start(cfg).await?;
    let mut client = detector(&service).await;

    let window = || proto_window("shop", EPOCH, WINDOW, 0, 4, 3);
    let mut cases: Vec<(&str, v1::DetectRequest, &str)> = Vec::new();
    cases.push(("no snapshots", detect(Vec::new()), "snapshots"));
    cases.push((
        "too many windows",
        detect(proto_window("shop", EPOCH, WINDOW, 0, 17, 2)),
        "snapshots",
    ));
    let mut other_graph = window();
    other_graph[2].graph = "other".to_owned();
    cases.push(("two graphs", detect(other_graph), "snapshots[2].graph"));
    let mut no_graph = window();
    for s in &mut no_graph {
        s.graph.clear();
    }
    cases.push(("empty graph id", detect(no_graph), "snapshots[0].graph"));
    let mut window_ms = window();
    window_ms[1].window_ms = 5_000;
    cases.push(("window length", detect(window_ms), "snapshots[1].window_ms"));
    let mut backwards = window();
    backwards.swap(1, 2);
    cases.push((
        "not increasing",
        detect(backwards),
        "snapshots[2].window_start_ms",
    ));
    let mut misaligned = window();
    misaligned[3].window_start_ms += 1;
    cases.push((
        "misaligned",
        detect(misaligned),
        "snapshots[3].window_start_ms",
    ));
    cases.push((
        "too many nodes",
        detect(proto_window("shop", EPOCH, WINDOW, 0, 2, 9)),
        "nodes",
    ));
    let mut top = detect(window());
    top.top_contributions = 1000;
    cases.push(("top contributions", top, "top_contributions"));
    let mut empty = window();
    for s in &mut empty {
        s.nodes.clear();
        s.edges.clear();
    }
    cases.push(("no nodes", detect(empty), "snapshots"));

    for (what, request, field) in cases {
        let status = client
            .detect(request)
            .await
            .expect_err(&format!("{what}: accepted"));
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(
            status.message().contains(field),
            "{what}: {:?} does not name {field}",
            status.message()
        );
    }

    // The service still answers good requests.
    let report = client.detect(detect(window())).await?.into_inner().report;
    assert!(report.is_some());
    assert!(service.stop().await.is_clean());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_size_limit_is_refused_before_decoding() -> anyhow::Result<()> {
    let request = detect(proto_window("shop", EPOCH, WINDOW, 0, 12, 6));
    let size = prost::Message::encoded_len(&request);
    let mut cfg = config::<Detector>(&artifact("detector"))?;
    cfg.limits.max_message_bytes = size / 2;
    let service = Service::start(cfg).await?;
    let mut client = detector(&service).await;
    let status = client
        .detect(request)
        .await
        .expect_err("oversized request accepted");
    // tonic's own check, before the message is decoded: OUT_OF_RANGE.
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("message length too large"),
        "{status:?}"
    );
    // Half the windows fit.
    let report = client
        .detect(detect(proto_window("shop", EPOCH, WINDOW, 0, 5, 6)))
        .await?
        .into_inner()
        .report;
    assert!(report.is_some());
    assert!(service.stop().await.is_clean());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_too_short_is_honoured() -> anyhow::Result<()> {
    let service = Service::start(config::<Detector>(&artifact("detector"))?).await?;
    let mut client = detector(&service).await;
    let short = || {
        let mut request =
            tonic::Request::new(detect(proto_window("shop", EPOCH, WINDOW, 0, 12, 50)));
        // The header itself (not `set_timeout`, whose client-side timer would answer first):
        // the server must honour it.
        request
            .metadata_mut()
            .insert("grpc-timeout", "1u".parse().expect("ascii"));
        request
    };
    // Over the wire the deadline passes while tonic still reads the request: tonic's own
    // timer answers, with CANCELLED "Timeout expired".
    let status = client.detect(short()).await.expect_err("1 µs was enough");
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert!(status.message().contains("Timeout expired"), "{status:?}");
    // Once the request is read, the service's own deadline answers DEADLINE_EXCEEDED.
    let slot = std::sync::Arc::new(std::sync::OnceLock::new());
    let _ = slot.set(service.running.server.clone());
    let api = DetectorApi(std::sync::Arc::new(ApiState::new(
        slot,
        meshwatch_inference::limits::Limits::default(),
        Duration::from_secs(10),
        ServiceMetrics::register()?,
    )));
    let status = api.detect(short()).await.expect_err("1 µs was enough");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // With a sane deadline the same request succeeds.
    let mut request = tonic::Request::new(detect(proto_window("shop", EPOCH, WINDOW, 0, 12, 50)));
    request.set_timeout(Duration::from_secs(10));
    assert!(client.detect(request).await?.into_inner().report.is_some());
    assert!(service.stop().await.is_clean());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_still_loading_is_unavailable() -> anyhow::Result<()> {
    let api = DetectorApi(std::sync::Arc::new(ApiState::new(
        std::sync::Arc::new(std::sync::OnceLock::new()),
        meshwatch_inference::limits::Limits::default(),
        Duration::from_secs(10),
        ServiceMetrics::register()?,
    )));
    let status = api
        .detect(tonic::Request::new(detect(proto_window(
            "shop", EPOCH, WINDOW, 0, 2, 2,
        ))))
        .await
        .expect_err("no model yet");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("loading"), "{status:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection() -> anyhow::Result<()> {
    let service = Service::start(config::<Forecaster>(&artifact("forecaster"))?).await?;
    let channel = tonic::transport::Endpoint::from_shared(service.grpc_url())?
        .connect()
        .await?;
    let mut health = HealthClient::new(channel.clone());
    for name in ["", "meshwatch.v1.Forecaster"] {
        let status = health
            .check(HealthCheckRequest {
                service: name.to_owned(),
            })
            .await?
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{name:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "meshwatch.v1.Detector".to_owned(),
        })
        .await
        .expect_err("the forecaster does not serve the detector");
    assert_eq!(unknown.code(), Code::NotFound);

    // Reflection lists the service.
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await?
        .into_inner();
    let response = responses.message().await?.expect("a response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "meshwatch.v1.Forecaster"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "grpc.health.v1.Health"),
        "{names:?}"
    );
    assert!(service.stop().await.is_clean());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_fails_no_request() -> anyhow::Result<()> {
    let dir = copy_artifact("detector")?;
    let mut cfg = config::<Detector>(dir.path())?;
    cfg.model.reload_interval = Duration::from_millis(200);
    let service = Service::start(cfg).await?;
    let before = service.running.server.info().version.clone();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut client = detector(&service).await;
        let stop = Arc::clone(&stop);
        let ok = Arc::clone(&ok);
        clients.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let report = client
                    .detect(detect(proto_window("shop", EPOCH, WINDOW, 0, 12, 5)))
                    .await?
                    .into_inner()
                    .report
                    .expect("a report");
                ok.fetch_add(1, Ordering::Relaxed);
                versions.push(report.model.expect("model").version);
            }
            anyhow::Ok(versions)
        }));
    }
    // A bad version first (the model file does not match the manifest's sha256): refused, the
    // old one keeps serving.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let manifest_path = dir.path().join("manifest.json");
    let original = std::fs::read_to_string(&manifest_path)?;
    let mut bad: serde_json::Value = serde_json::from_str(&original)?;
    bad["sha256"] = serde_json::Value::String("0".repeat(64));
    bad["version"] = serde_json::Value::String("broken".to_owned());
    write_atomically(&manifest_path, &serde_json::to_string_pretty(&bad)?)?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(service.running.server.info().version, before);

    // Then a good new version.
    let mut good: serde_json::Value = serde_json::from_str(&original)?;
    good["version"] = serde_json::Value::String("v2".to_owned());
    write_atomically(&manifest_path, &serde_json::to_string_pretty(&good)?)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while service.running.server.info().version != "v2" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "v2 was never loaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for client in clients {
        let versions = client.await??;
        // Each client's requests are sequential: once one was answered by v2, every later one
        // is too.
        if let Some(first) = versions.iter().position(|v| v == "v2") {
            assert!(versions[first..].iter().all(|v| v == "v2"), "{versions:?}");
        }
        seen.extend(versions);
    }
    assert!(ok.load(Ordering::Relaxed) > 4);
    assert!(seen.iter().any(|v| v == &before), "{seen:?}");
    assert!(seen.iter().any(|v| v == "v2"), "no answer from v2");
    assert!(!seen.iter().any(|v| v == "broken"));
    assert!(service.stop().await.is_clean());
    Ok(())
}

fn write_atomically(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuda_without_a_gpu_fails_or_falls_back_as_configured() -> anyhow::Result<()> {
    use meshwatch_inference::config::{Provider, Unavailable};

    let mut cfg = config::<Detector>(&artifact("detector"))?;
    cfg.model.execution_provider = Provider::Cuda;
    cfg.model.on_unavailable = Unavailable::Fail;
    let error = match Service::start(cfg).await {
        Ok(_) => anyhow::bail!("started with CUDA on a machine without a usable CUDA provider"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.to_lowercase().contains("cuda"), "{error}");

    let mut cfg = config::<Detector>(&artifact("detector"))?;
    cfg.model.execution_provider = Provider::Cuda;
    cfg.model.on_unavailable = Unavailable::FallbackToCpu;
    let service = Service::start(cfg).await?;
    let mut client = detector(&service).await;
    let report = client
        .detect(detect(proto_window("shop", EPOCH, WINDOW, 0, 12, 4)))
        .await?
        .into_inner()
        .report
        .expect("a report");
    let model = report.model.clone().expect("model ref");
    assert_eq!(model.execution_provider, "cpu");
    // The same scores as a CPU service.
    let cpu = Service::start(config::<Detector>(&artifact("detector"))?).await?;
    let expected = detector(&cpu)
        .await
        .detect(detect(proto_window("shop", EPOCH, WINDOW, 0, 12, 4)))
        .await?
        .into_inner()
        .report
        .expect("a report");
    for (a, b) in report.scores.iter().zip(&expected.scores) {
        assert_eq!(a.node, b.node);
        assert!(
            (a.score - b.score).abs() <= 1e-6,
            "{}: {} vs {}",
            a.node,
            a.score,
            b.score
        );
    }
    // The metric names the provider really in use.
    let metrics = meshwatch_runtime::metrics::encode_text();
    let info = metrics
        .lines()
        .find(|l| {
            l.starts_with("meshwatch_model_info{")
                && l.contains(&format!("version=\"{}\"", model.version))
                && l.ends_with(" 1")
        })
        .unwrap_or_default()
        .to_owned();
    assert!(info.contains("provider=\"cpu\""), "{info:?}\n{metrics}");
    assert!(cpu.stop().await.is_clean());
    assert!(service.stop().await.is_clean());
    Ok(())
}

/// Health over the service's whole life: NOT_SERVING while the model loads (held here by a
/// manifest that is a FIFO nobody writes yet), SERVING once warm, NOT_SERVING to a watcher when
/// the drain starts — and the open watch stream does not hold the shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_loading_serving_and_draining() -> anyhow::Result<()> {
    use meshwatch_runtime::{Readiness, Shutdown};

    let dir = copy_artifact("detector")?;
    let manifest = dir.path().join("manifest.json");
    let text = std::fs::read(&manifest)?;
    std::fs::remove_file(&manifest)?;
    let fifo = std::process::Command::new("mkfifo")
        .arg(&manifest)
        .status()?;
    anyhow::ensure!(fifo.success(), "mkfifo failed");

    let mut cfg = config::<Detector>(dir.path())?;
    let addr = meshwatch_testkit::free_addr()?;
    cfg.grpc.listen = addr;
    let shutdown = Shutdown::new(Readiness::new());
    let starting = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { meshwatch_inference::run(cfg, &shutdown).await })
    };
    let url = format!("http://{addr}");
    let channel = loop {
        match tonic::transport::Endpoint::from_shared(url.clone())?
            .connect()
            .await
        {
            Ok(channel) => break channel,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let mut health = HealthClient::new(channel.clone());
    let check = |name: &'static str| HealthCheckRequest {
        service: name.to_owned(),
    };
    for name in ["", "meshwatch.v1.Detector"] {
        let status = health.check(check(name)).await?.into_inner().status;
        assert_eq!(
            status,
            ServingStatus::NotServing as i32,
            "{name:?} while loading"
        );
    }
    let status = DetectorClient::new(channel.clone())
        .detect(detect(proto_window("shop", EPOCH, WINDOW, 0, 2, 2)))
        .await
        .expect_err("no model yet");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    // Let the load go on: the FIFO gets the manifest, and a regular file takes its place.
    let writer = {
        let manifest = manifest.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut fifo = std::fs::OpenOptions::new().write(true).open(&manifest)?;
            let regular = manifest.with_extension("regular");
            std::fs::write(&regular, &text)?;
            std::fs::rename(&regular, &manifest)?;
            fifo.write_all(&text)
        })
    };
    let running = starting.await??;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    assert_eq!(running.grpc, Some(addr));
    for name in ["", "meshwatch.v1.Detector"] {
        let status = health.check(check(name)).await?.into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "{name:?} when warm");
    }

    let mut watch = health
        .watch(check("meshwatch.v1.Detector"))
        .await?
        .into_inner();
    let first = watch.message().await?.expect("current status");
    assert_eq!(first.status, ServingStatus::Serving as i32);
    shutdown.trigger("test");
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .map_err(|_| anyhow::anyhow!("no status change on drain"))??
        .expect("a status");
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    let report = shutdown.wait(Duration::from_secs(10)).await;
    assert!(report.is_clean(), "{report:?}");
    Ok(())
}
