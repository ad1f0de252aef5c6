//! The pure core of Meshwatch (ARCHITECTURE.md §3, §4).
//!
//! Everything here takes time as a parameter and does no I/O, so it is unit-, property- and
//! golden-tested without servers:
//! - [`otlp`]: OTLP trace requests (protobuf wire format, zero-copy, and the owned/JSON form) to
//!   borrowed [`span::SpanView`]s;
//! - [`span`]: the borrowed span and resource views every decoder produces, and their validation;
//! - [`aggregate`]: spans to per-window graph snapshots (pairing, windows, watermark);
//! - [`sketch`]: a mergeable relative-error quantile sketch;
//! - [`snapshot`]: the graph snapshot a window closes into, and its JSON form.

pub mod aggregate;
pub mod config;
pub mod labels;
pub mod otlp;
mod pairing;
pub mod sketch;
pub mod snapshot;
pub mod span;
pub mod window;

pub use aggregate::{Aggregator, AggregatorState, IngestReport};
pub use config::AggregatorConfig;
pub use snapshot::GraphSnapshot;
