//! The pure core of Meshwatch (ARCHITECTURE.md §3, §4).
//!
//! Everything here takes time as a parameter and does no I/O, so it is unit-, property- and
//! golden-tested without servers:
//! - [`otlp`]: OTLP trace requests (protobuf wire format, zero-copy, and the owned/JSON form) to
//!   borrowed [`span::SpanView`]s;
//! - [`span`]: the borrowed span and resource views every decoder produces, and their validation;
//! - [`service`]: which service a resource belongs to (configured `service_keys`);
//! - [`aggregate`]: spans to per-window graph snapshots (pairing, windows, watermark);
//! - [`metrics`]: OTLP metrics (protobuf and JSON) to resource samples that join the same
//!   windows as node resource metrics;
//! - [`sketch`]: a mergeable relative-error quantile sketch;
//! - [`snapshot`]: the graph snapshot a window closes into, and its JSON form;
//! - [`zipkin`]: Zipkin v2 JSON spans to an owned OTLP request, and so to the same views;
//! - [`features`]: the versioned feature schema and the encoder of snapshot sequences into model
//!   tensors (ARCHITECTURE.md §4), shared by training datasets and inference.

pub mod aggregate;
pub mod config;
pub mod features;
pub mod labels;
pub mod metrics;
pub mod otlp;
mod pairing;
pub mod service;
pub mod sketch;
pub mod snapshot;
pub mod span;
pub mod window;
pub mod zipkin;

pub use aggregate::{Aggregator, AggregatorState, IngestReport};
pub use config::AggregatorConfig;
pub use metrics::MetricsReport;
pub use snapshot::GraphSnapshot;
