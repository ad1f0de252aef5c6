//! OTLP trace requests to [`crate::span::DecodedTraces`].
//!
//! - [`wire`]: a targeted zero-copy scanner of the protobuf encoding of
//!   `ExportTraceServiceRequest` that reads only what the graph needs (the hot path);
//! - [`owned`]: the same views from an owned `opentelemetry-proto` request (OTLP/JSON, and the
//!   reference the scanner is tested against);
//! - [`attrs`]: which attributes both extract, and how repeated keys and fallbacks resolve;
//! - `protojson`: the protobuf JSON mapping shared by the OTLP/JSON decoders of traces and
//!   metrics;
//! - [`bench_data`]: deterministic synthetic requests for decode benchmarks.

pub mod attrs;
pub mod bench_data;
pub mod owned;
pub(crate) mod protojson;
pub mod wire;
