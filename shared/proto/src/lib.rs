//! Meshwatch's protobuf contract (`proto/meshwatch/v1/*.proto`), generated at build time by
//! `tonic-prost-build` with a vendored `protoc`, plus conversions to and from the domain types
//! of `meshwatch-graph`.
//!
//! - [`v1`]: the generated messages, enums, gRPC clients and servers of package `meshwatch.v1`;
//! - [`convert`]: [`meshwatch_graph::snapshot::GraphSnapshot`] ⇄ [`v1::GraphSnapshot`], with
//!   [`ConvertError`] naming the offending field;
//! - constants naming the schema, messages and content types used in NATS headers
//!   (ARCHITECTURE.md §6).
//!
//! The `.proto` files are the single source of truth; field numbers never change, and a breaking
//! change creates `meshwatch.v2`.

pub mod convert;

pub use convert::{ConvertError, decode_snapshot, encode_snapshot, latency_summary};

/// Generated code of protobuf package `meshwatch.v1`.
#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/meshwatch.v1.rs"));
}

/// The schema (protobuf package) every message of this crate belongs to; the value of the
/// `Meshwatch-Schema` header.
pub const SCHEMA: &str = "meshwatch.v1";

/// Prefix of every content type: the full message name follows it.
pub const PROTOBUF_CONTENT_TYPE_PREFIX: &str = "application/x-protobuf; proto=";

/// Full protobuf name of the graph snapshot message.
pub const SNAPSHOT_MESSAGE: &str = "meshwatch.v1.GraphSnapshot";

/// Content type of a protobuf-encoded [`v1::GraphSnapshot`].
pub const SNAPSHOT_CONTENT_TYPE: &str = "application/x-protobuf; proto=meshwatch.v1.GraphSnapshot";

/// Encoded `google.protobuf.FileDescriptorSet` of every `.proto` file compiled into this crate
/// (for gRPC reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/meshwatch_descriptor.bin"));

/// The content type of a protobuf message with the given full name (`meshwatch.v1.<Name>`).
pub fn content_type(full_message_name: &str) -> String {
    format!("{PROTOBUF_CONTENT_TYPE_PREFIX}{full_message_name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Name;

    #[test]
    fn constants_match_generated_names() {
        assert_eq!(v1::GraphSnapshot::full_name(), SNAPSHOT_MESSAGE);
        assert_eq!(v1::GraphSnapshot::PACKAGE, SCHEMA);
        assert_eq!(content_type(SNAPSHOT_MESSAGE), SNAPSHOT_CONTENT_TYPE);
    }

    #[test]
    fn descriptor_set_is_embedded() {
        assert!(!FILE_DESCRIPTOR_SET.is_empty());
        let needle = b"meshwatch/v1/graph.proto";
        assert!(
            FILE_DESCRIPTOR_SET
                .windows(needle.len())
                .any(|w| w == needle),
            "descriptor set lacks graph.proto"
        );
    }
}
