//! Starting an inference service in this process, as its binary would, for the system tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use meshwatch_inference::{InferenceConfig, Role, Running};
use meshwatch_runtime::{Readiness, Shutdown, ShutdownReport};

/// A config for tests: loopback ports picked by the OS, the model in `dir`, gRPC on, the
/// stream off (tests that want it set `nats` and `stream.enabled`).
pub fn config<R: Role>(dir: &Path) -> anyhow::Result<InferenceConfig<R>> {
    let mut config = InferenceConfig::<R>::default();
    config.admin.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.grpc.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.model.dir = dir.to_path_buf();
    config.model.library = Some(meshwatch_testkit::models::ort_library()?);
    config.model.reload_interval = Duration::ZERO;
    config.stream.enabled = false;
    config.shutdown.grace = Duration::from_secs(10);
    Ok(config)
}

/// A started service and its shutdown handle.
pub struct Service {
    pub running: Running,
    pub shutdown: Shutdown,
}

impl Service {
    pub async fn start<R: Role>(config: InferenceConfig<R>) -> anyhow::Result<Self> {
        let shutdown = Shutdown::new(Readiness::new());
        let running = meshwatch_inference::run(config, &shutdown).await?;
        Ok(Self { running, shutdown })
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.running.grpc.expect("grpc enabled"))
    }

    pub async fn stop(self) -> ShutdownReport {
        self.shutdown.trigger("test");
        self.shutdown.wait(Duration::from_secs(15)).await
    }
}
