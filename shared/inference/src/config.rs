//! Configuration of an inference service: one type for both services, with per-service
//! defaults (model directory, ports, consumer name) from the [`Role`] parameter.

use std::fmt;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use meshwatch_bus::NatsConfig;
use meshwatch_bus::consumer::PullSettings;
use meshwatch_bus::subjects::consumers;
use meshwatch_model::{ExecutionProvider, LoadOptions, ModelKind, ServingOptions};
use meshwatch_runtime::service::ServiceConfig;
use meshwatch_runtime::{AdminConfig, LogConfig, ShutdownConfig, Validate, nested};
use serde::{Deserialize, Serialize};

use crate::limits::Limits;

/// Which service a configuration belongs to: its model kind and defaults.
pub trait Role: Send + Sync + 'static {
    /// The model kind served.
    const KIND: ModelKind;
    /// Binary and log name (`meshwatch-detector`).
    const NAME: &'static str;
    /// Default model directory.
    const MODEL_DIR: &'static str;
    /// Default gRPC port.
    const GRPC_PORT: u16;
    /// Default admin (metrics, probes) port.
    const ADMIN_PORT: u16;
    /// Durable consumer on the snapshots stream.
    const CONSUMER: &'static str;
}

/// The detector service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Detector;

impl Role for Detector {
    const KIND: ModelKind = ModelKind::Detector;
    const NAME: &'static str = "meshwatch-detector";
    const MODEL_DIR: &'static str = "models/detector";
    const GRPC_PORT: u16 = 50051;
    const ADMIN_PORT: u16 = 9465;
    const CONSUMER: &'static str = consumers::DETECTOR;
}

/// The forecaster service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forecaster;

impl Role for Forecaster {
    const KIND: ModelKind = ModelKind::Forecaster;
    const NAME: &'static str = "meshwatch-forecaster";
    const MODEL_DIR: &'static str = "models/forecaster";
    const GRPC_PORT: u16 = 50052;
    const ADMIN_PORT: u16 = 9466;
    const CONSUMER: &'static str = consumers::FORECASTER;
}

/// The whole configuration of `meshwatch-detector` / `meshwatch-forecaster`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, bound = "")]
pub struct InferenceConfig<R: Role> {
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
    pub nats: NatsConfig,
    pub model: ModelConfig,
    pub batching: BatchingConfig,
    pub grpc: GrpcConfig,
    pub stream: StreamConfig,
    pub limits: Limits,
    #[serde(skip)]
    role: PhantomData<R>,
}

impl<R: Role> Clone for InferenceConfig<R> {
    fn clone(&self) -> Self {
        Self {
            admin: self.admin.clone(),
            log: self.log.clone(),
            shutdown: self.shutdown.clone(),
            nats: self.nats.clone(),
            model: self.model.clone(),
            batching: self.batching.clone(),
            grpc: self.grpc.clone(),
            stream: self.stream.clone(),
            limits: self.limits.clone(),
            role: PhantomData,
        }
    }
}

impl<R: Role> fmt::Debug for InferenceConfig<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InferenceConfig")
            .field("role", &R::NAME)
            .field("admin", &self.admin)
            .field("log", &self.log)
            .field("shutdown", &self.shutdown)
            .field("nats", &self.nats)
            .field("model", &self.model)
            .field("batching", &self.batching)
            .field("grpc", &self.grpc)
            .field("stream", &self.stream)
            .field("limits", &self.limits)
            .finish()
    }
}

impl<R: Role> Default for InferenceConfig<R> {
    fn default() -> Self {
        Self {
            admin: AdminConfig {
                listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, R::ADMIN_PORT)),
            },
            log: LogConfig::default(),
            shutdown: ShutdownConfig::default(),
            nats: NatsConfig::default(),
            model: ModelConfig {
                dir: PathBuf::from(R::MODEL_DIR),
                ..ModelConfig::default()
            },
            batching: BatchingConfig::default(),
            grpc: GrpcConfig {
                listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, R::GRPC_PORT)),
                ..GrpcConfig::default()
            },
            stream: StreamConfig {
                consumer: R::CONSUMER.to_owned(),
                ..StreamConfig::default()
            },
            limits: Limits::default(),
            role: PhantomData,
        }
    }
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    Cpu,
    Cuda,
}

/// What to do when the CUDA execution provider is asked for but cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unavailable {
    /// Refuse to start (exit 1, the error says why).
    Fail,
    /// Run on the CPU (logged; `meshwatch_model_info{provider="cpu"}` says so).
    FallbackToCpu,
}

/// The model artifact and ONNX Runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Artifact directory (`model.onnx`, `manifest.json`, parity vectors). Watched for new
    /// versions (see `reload_interval`).
    pub dir: PathBuf,
    /// Variant file of the artifact to serve (e.g. `int8`), instead of `model.onnx`.
    pub variant: Option<String>,
    /// The ONNX Runtime shared library; absent: `ORT_DYLIB_PATH`.
    pub library: Option<PathBuf>,
    /// `cpu` or `cuda`.
    pub execution_provider: Provider,
    /// CUDA device.
    pub cuda_device_id: i32,
    /// Bound of the CUDA memory arena in bytes; absent: ONNX Runtime's default (no bound).
    pub cuda_memory_limit_bytes: Option<u64>,
    /// With `cuda` but no usable CUDA execution provider: `fail` or `fallback-to-cpu`.
    pub on_unavailable: Unavailable,
    /// Threads per session within an operator (1 suits small graphs on small machines).
    pub intra_threads: usize,
    /// Sessions in the pool: batches run at the same time.
    pub sessions: usize,
    /// Replay the artifact's parity vectors before serving it (at start and on reload); a
    /// mismatch refuses the model.
    pub verify_parity: bool,
    /// How often the directory is checked for a new model version; `0s` turns hot reload off.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    /// Longest wait for a free session before a request fails with UNAVAILABLE.
    #[serde(with = "humantime_serde")]
    pub session_wait: Duration,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("models/detector"),
            variant: None,
            library: None,
            execution_provider: Provider::Cpu,
            cuda_device_id: 0,
            cuda_memory_limit_bytes: None,
            on_unavailable: Unavailable::Fail,
            intra_threads: 1,
            sessions: 1,
            verify_parity: true,
            reload_interval: Duration::from_secs(30),
            session_wait: Duration::from_secs(1),
        }
    }
}

impl Validate for ModelConfig {
    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.dir.as_os_str().is_empty() {
            problems.push("dir: must not be empty".to_owned());
        }
        if self.sessions == 0 || self.sessions > 64 {
            problems.push("sessions: must be between 1 and 64".to_owned());
        }
        if self.intra_threads > 256 {
            problems.push("intra_threads: must be at most 256 (0: all cores)".to_owned());
        }
        if self.cuda_device_id < 0 {
            problems.push("cuda_device_id: must not be negative".to_owned());
        }
        if self.session_wait.is_zero() {
            problems.push("session_wait: must be greater than 0".to_owned());
        }
        if !self.reload_interval.is_zero() && self.reload_interval < Duration::from_millis(100) {
            problems.push("reload_interval: must be 0s (off) or at least 100ms".to_owned());
        }
        problems
    }
}

/// Micro-batching: concurrent requests and graphs run as one disjoint-union graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchingConfig {
    /// Stop collecting a batch at this many nodes.
    pub max_nodes: usize,
    /// How long the first request of a batch waits for others; `0s` runs each at once.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// Requests waiting for the model; beyond it a request fails at once with UNAVAILABLE.
    pub queue_capacity: usize,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        Self {
            max_nodes: 4096,
            max_wait: Duration::from_millis(2),
            queue_capacity: 256,
        }
    }
}

impl Validate for BatchingConfig {
    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_nodes == 0 {
            problems.push("max_nodes: must be at least 1".to_owned());
        }
        if self.max_wait > Duration::from_secs(1) {
            problems.push("max_wait: must be at most 1s".to_owned());
        }
        if self.queue_capacity == 0 {
            problems.push("queue_capacity: must be at least 1".to_owned());
        }
        problems
    }
}

/// The gRPC API (`meshwatch.v1.Detector/Detect`, `meshwatch.v1.Forecaster/Forecast`, health,
/// reflection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Serve `grpc.reflection.v1` (for grpcurl and similar tools).
    pub reflection: bool,
    /// Longest a request may take when the caller sets no deadline.
    #[serde(with = "humantime_serde")]
    pub default_timeout: Duration,
    /// Requests handled at once per connection.
    pub concurrency_per_connection: usize,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 50051)),
            reflection: true,
            default_timeout: Duration::from_secs(10),
            concurrency_per_connection: 64,
        }
    }
}

impl Validate for GrpcConfig {
    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.default_timeout.is_zero() {
            problems.push("default_timeout: must be greater than 0".to_owned());
        }
        if self.concurrency_per_connection == 0 {
            problems.push("concurrency_per_connection: must be at least 1".to_owned());
        }
        problems
    }
}

/// The streaming path: snapshots from JetStream, reports back to JetStream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    pub enabled: bool,
    /// Durable consumer name on the snapshots stream (shared by the replicas of one service).
    pub consumer: String,
    /// Messages fetched per pull.
    pub fetch_batch: usize,
    /// How long a pull waits for messages.
    #[serde(with = "humantime_serde")]
    pub fetch_expires: Duration,
    /// Unacknowledged messages the server lets this consumer have.
    pub max_ack_pending: i64,
    /// Time before an unacknowledged message is redelivered.
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Deliveries of a message that keeps failing before it goes to the dead-letter subject;
    /// -1: unlimited.
    pub max_deliver: i64,
    /// Graphs whose history is kept; the least recently updated one is forgotten beyond it.
    pub max_graphs: usize,
    /// Windows kept beyond T per graph: a snapshot redelivered up to this many windows behind
    /// the newest (its consumer died with it in hand; it comes back after `ack_wait`) is still
    /// scored with its whole history. Later ones are dropped (`too_old`). Cover
    /// `ack_wait / window` with some room.
    pub late_windows: usize,
    /// Contributions per node in published anomaly reports.
    pub top_contributions: usize,
    /// Backoff after a failed publish or pull, doubled up to 30 s.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            consumer: consumers::DETECTOR.to_owned(),
            fetch_batch: 64,
            fetch_expires: Duration::from_secs(1),
            max_ack_pending: 1024,
            ack_wait: Duration::from_secs(60),
            max_deliver: 5,
            max_graphs: 10_000,
            late_windows: 12,
            top_contributions: 5,
            retry_backoff: Duration::from_millis(500),
        }
    }
}

impl StreamConfig {
    /// The consumer and pull settings, as `meshwatch_bus::consumer` takes them.
    pub fn pull_settings(&self) -> PullSettings<'_> {
        PullSettings {
            consumer: &self.consumer,
            fetch_batch: self.fetch_batch,
            fetch_expires: self.fetch_expires,
            max_ack_pending: self.max_ack_pending,
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver,
            retry_backoff: self.retry_backoff,
        }
    }
}

impl Validate for StreamConfig {
    fn validate(&self) -> Vec<String> {
        let mut problems = self.pull_settings().problems();
        if self.max_graphs == 0 {
            problems.push("max_graphs: must be at least 1".to_owned());
        }
        if self.late_windows > 1_000 {
            problems.push("late_windows: must be at most 1000".to_owned());
        }
        problems
    }
}

impl<R: Role> Validate for InferenceConfig<R> {
    fn validate(&self) -> Vec<String> {
        let mut problems = nested("admin", &self.admin);
        problems.extend(nested("log", &self.log));
        problems.extend(nested("shutdown", &self.shutdown));
        problems.extend(
            self.nats
                .validate()
                .into_iter()
                .map(|p| format!("nats.{p}")),
        );
        problems.extend(nested("model", &self.model));
        problems.extend(nested("batching", &self.batching));
        problems.extend(nested("grpc", &self.grpc));
        problems.extend(nested("stream", &self.stream));
        problems.extend(nested("limits", &self.limits));
        if !self.grpc.enabled && !self.stream.enabled {
            problems.push("grpc.enabled, stream.enabled: at least one must be true".to_owned());
        }
        if self.stream.top_contributions > self.limits.max_top_contributions {
            problems.push(format!(
                "stream.top_contributions: must be at most limits.max_top_contributions ({})",
                self.limits.max_top_contributions
            ));
        }
        problems
    }
}

impl<R: Role> ServiceConfig for InferenceConfig<R> {
    fn log(&self) -> &LogConfig {
        &self.log
    }

    fn grace(&self) -> Duration {
        self.shutdown.grace
    }
}

impl<R: Role> InferenceConfig<R> {
    /// How the model server loads and batches.
    pub fn serving_options(&self) -> ServingOptions {
        let execution_provider = match self.model.execution_provider {
            Provider::Cpu => ExecutionProvider::Cpu,
            Provider::Cuda => ExecutionProvider::Cuda {
                device_id: self.model.cuda_device_id,
                memory_limit_bytes: self.model.cuda_memory_limit_bytes,
            },
        };
        ServingOptions {
            load: LoadOptions {
                library: self.model.library.clone(),
                kind: Some(R::KIND),
                execution_provider,
                fallback_to_cpu: self.model.on_unavailable == Unavailable::FallbackToCpu,
                intra_threads: self.model.intra_threads,
                sessions: self.model.sessions,
                variant: self.model.variant.clone(),
                profile: None,
            },
            max_batch_nodes: self.batching.max_nodes,
            max_batch_wait: self.batching.max_wait,
            queue_capacity: self.batching.queue_capacity,
            session_wait: self.model.session_wait,
            verify_parity: self.model.verify_parity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_per_role() {
        let d = InferenceConfig::<Detector>::default();
        assert!(d.validate().is_empty(), "{:?}", d.validate());
        assert_eq!(d.model.dir, PathBuf::from("models/detector"));
        assert_eq!(d.grpc.listen.port(), 50051);
        assert_eq!(d.stream.consumer, "detector");
        let f = InferenceConfig::<Forecaster>::default();
        assert!(f.validate().is_empty(), "{:?}", f.validate());
        assert_eq!(f.model.dir, PathBuf::from("models/forecaster"));
        assert_eq!(f.grpc.listen.port(), 50052);
        assert_eq!(f.admin.listen.port(), 9466);
        assert_eq!(f.stream.consumer, "forecaster");
        assert_eq!(f.serving_options().load.kind, Some(ModelKind::Forecaster));
    }

    #[test]
    fn a_partly_set_stream_table_keeps_the_roles_consumer() {
        let args = meshwatch_runtime::CommonArgs {
            set: vec!["stream.fetch_expires=3s".to_owned()],
            ..meshwatch_runtime::CommonArgs::default()
        };
        let f: InferenceConfig<Forecaster> =
            meshwatch_runtime::load_with_env(&args, std::iter::empty::<(String, String)>())
                .expect("valid");
        assert_eq!(f.stream.consumer, "forecaster");
        assert_eq!(f.stream.fetch_expires, Duration::from_secs(3));
        assert_eq!(f.model.dir, PathBuf::from("models/forecaster"));
    }

    #[test]
    fn bad_values_are_named() {
        let mut c = InferenceConfig::<Detector>::default();
        c.model.sessions = 0;
        c.model.reload_interval = Duration::from_millis(5);
        c.batching.queue_capacity = 0;
        c.stream.consumer = "a.b".to_owned();
        c.grpc.enabled = false;
        c.stream.enabled = false;
        let problems = c.validate();
        for key in [
            "model.sessions",
            "model.reload_interval",
            "batching.queue_capacity",
            "stream.consumer",
            "grpc.enabled, stream.enabled",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(key)),
                "{key} not in {problems:?}"
            );
        }
    }

    #[test]
    fn cuda_settings_reach_the_load_options() {
        let mut c = InferenceConfig::<Detector>::default();
        c.model.execution_provider = Provider::Cuda;
        c.model.cuda_device_id = 1;
        c.model.cuda_memory_limit_bytes = Some(1 << 30);
        c.model.on_unavailable = Unavailable::FallbackToCpu;
        let load = c.serving_options().load;
        assert_eq!(
            load.execution_provider,
            ExecutionProvider::Cuda {
                device_id: 1,
                memory_limit_bytes: Some(1 << 30)
            }
        );
        assert!(load.fallback_to_cpu);
    }

    #[test]
    fn the_effective_config_round_trips() {
        let c = InferenceConfig::<Forecaster>::default();
        let text = meshwatch_runtime::effective_toml(&c).expect("serialises");
        let back: InferenceConfig<Forecaster> = toml_from(&text);
        assert_eq!(back.model, c.model);
        assert_eq!(back.grpc, c.grpc);
        assert_eq!(back.stream, c.stream);
    }

    fn toml_from(text: &str) -> InferenceConfig<Forecaster> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).expect("write");
        let args = meshwatch_runtime::CommonArgs {
            config: Some(path),
            ..Default::default()
        };
        meshwatch_runtime::load_with_env(&args, Vec::<(String, String)>::new()).expect("loads")
    }
}
