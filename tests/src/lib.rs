//! System tests of Meshwatch (`tests/tests/*.rs`): real third-party OTLP clients (the Rust
//! `opentelemetry-otlp` exporter, the Python SDK via `tests/python/send_otlp.py`) send traces to
//! a running ingest, which publishes graph snapshots to a real NATS JetStream; the tests read
//! them back and check nodes and edges against what was sent.
//!
//! Prerequisites (`scripts/test.sh` provides them; without them the tests fail with a hint):
//! a `nats-server` (`NATS_URL`, or `scripts/install-nats.sh`) and the Python SDK
//! (`MESHWATCH_PYTHON`, or `scripts/install-python-otel.sh`). The harness is `meshwatch-testkit`.
