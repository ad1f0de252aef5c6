//! Which attributes the decoders extract, and how repeated keys and fallbacks resolve.
//!
//! One definition for both decoders ([`super::wire`] and [`super::owned`]), so that they cannot
//! disagree:
//! - only string values count (`AnyValue.string_value`); any other value type, an empty
//!   `AnyValue` or a missing value reads as absent;
//! - when a key occurs more than once in one attribute list (the semantic conventions forbid it,
//!   but nothing on the wire prevents it), the last occurrence decides, as the last occurrence of
//!   a scalar field does in protobuf;
//! - a fallback key (`net.peer.name` for `server.address`, `db.system` for `db.system.name`,
//!   `db.name` for `db.namespace`) is used only when the preferred key has no string value;
//! - an empty string is a present value (whether it means anything is decided downstream).

use crate::span::{GraphValues, ResourceKeys, ResourceView, SpanAttrs};

pub use crate::service::{K8S_DEPLOYMENT_NAME, SERVICE_NAME};

/// Per-key slots for the span attributes, before fallbacks are applied.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SpanAttrSlots<'a> {
    peer_service: Option<&'a str>,
    server_address: Option<&'a str>,
    net_peer_name: Option<&'a str>,
    db_system_name: Option<&'a str>,
    db_system: Option<&'a str>,
    db_namespace: Option<&'a str>,
    db_name: Option<&'a str>,
    messaging_system: Option<&'a str>,
    messaging_destination: Option<&'a str>,
}

impl<'a> SpanAttrSlots<'a> {
    /// The slot for `key`, if it is one of the span attributes the graph reads.
    #[inline]
    pub(crate) fn slot(&mut self, key: &[u8]) -> Option<&mut Option<&'a str>> {
        // Dispatch on the length first: most keys of a real span have none of these lengths,
        // and the compiler turns this into a jump on `len` followed by one memcmp.
        let slot = match key.len() {
            7 if key == b"db.name" => &mut self.db_name,
            9 if key == b"db.system" => &mut self.db_system,
            12 if key == b"peer.service" => &mut self.peer_service,
            12 if key == b"db.namespace" => &mut self.db_namespace,
            13 if key == b"net.peer.name" => &mut self.net_peer_name,
            14 if key == b"server.address" => &mut self.server_address,
            14 if key == b"db.system.name" => &mut self.db_system_name,
            16 if key == b"messaging.system" => &mut self.messaging_system,
            26 if key == b"messaging.destination.name" => &mut self.messaging_destination,
            _ => return None,
        };
        Some(slot)
    }

    /// Applies the fallbacks.
    #[inline]
    pub(crate) fn finish(self) -> SpanAttrs<'a> {
        SpanAttrs {
            peer_service: self.peer_service,
            server_address: self.server_address.or(self.net_peer_name),
            db_system: self.db_system_name.or(self.db_system),
            db_namespace: self.db_namespace.or(self.db_name),
            messaging_system: self.messaging_system,
            messaging_destination: self.messaging_destination,
        }
    }
}

/// An empty resource view with one (absent) value per configured graph key and service key.
#[inline]
pub(crate) fn empty_resource<'a>(keys: &ResourceKeys) -> ResourceView<'a> {
    ResourceView {
        service_values: GraphValues::none(keys.service_keys.len()),
        graph_values: GraphValues::none(keys.graph_keys.len()),
    }
}

/// Whether `key` is a resource attribute the graph reads.
#[inline]
pub(crate) fn resource_key_wanted(keys: &ResourceKeys, key: &[u8]) -> bool {
    keys.service_keys.iter().any(|k| k.as_bytes() == key)
        || keys.graph_keys.iter().any(|k| k.as_bytes() == key)
}

/// Records the value of resource attribute `key` (the last occurrence wins). A key may be both a
/// service key and a graph key, or be configured twice: every matching slot is set.
#[inline]
pub(crate) fn set_resource_attr<'a>(
    view: &mut ResourceView<'a>,
    keys: &ResourceKeys,
    key: &[u8],
    value: Option<&'a str>,
) {
    for (slot, k) in view.service_values.iter_mut().zip(&keys.service_keys) {
        if k.as_bytes() == key {
            *slot = value;
        }
    }
    for (slot, k) in view.graph_values.iter_mut().zip(&keys.graph_keys) {
        if k.as_bytes() == key {
            *slot = value;
        }
    }
}
