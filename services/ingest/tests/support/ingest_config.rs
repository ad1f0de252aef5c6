//! Ingest configs for in-process test ingests publishing to a real NATS; shared by the ingest's,
//! the CLI's and the system tests through `#[path]` (needs only `meshwatch-ingest`).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use meshwatch_ingest::IngestConfig;

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Loopback ports chosen by the OS, NATS at `nats_url` under `namespace` (2 s connect timeout),
/// a 50 ms pipeline tick, a 10 s grace and `producer` as the snapshots' producer; the windows
/// are the defaults.
pub fn nats_config(nats_url: &str, namespace: &str, producer: &str) -> IngestConfig {
    let mut c = IngestConfig::default();
    c.admin.listen = loopback();
    c.otlp.grpc_listen = loopback();
    c.otlp.http_listen = loopback();
    c.nats.url = nats_url.to_owned();
    c.nats.namespace = Some(namespace.to_owned());
    c.nats.connect_timeout = Duration::from_secs(2);
    c.pipeline.tick = Duration::from_millis(50);
    c.shutdown.grace = Duration::from_secs(10);
    c.graph.producer = Some(producer.to_owned());
    c
}

/// [`nats_config`] with 1 s windows with 1 s allowed lateness and a 2 s idle flush, so that a
/// window closes about 2 s after the last request of a workload; a 5 s NATS request timeout and
/// publish retries backing off from 50 ms to 500 ms.
pub fn short_window_config(nats_url: &str, namespace: &str, producer: &str) -> IngestConfig {
    let mut c = nats_config(nats_url, namespace, producer);
    c.nats.request_timeout = Duration::from_secs(5);
    c.graph.window = Duration::from_secs(1);
    c.graph.allowed_lateness = Duration::from_secs(1);
    c.graph.idle_flush = Duration::from_secs(2);
    c.buffer.retry_initial_backoff = Duration::from_millis(50);
    c.buffer.retry_max_backoff = Duration::from_millis(500);
    c
}
