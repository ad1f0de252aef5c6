//! Request limits of the inference services (ARCHITECTURE.md §8): how large a window of
//! snapshots a caller may send, and how many contributions it may ask for. A request beyond a
//! limit is refused with `INVALID_ARGUMENT` naming the field ([`crate::window::RequestError`]).

use serde::{Deserialize, Serialize};

/// Default [`Limits::max_windows`].
pub const DEFAULT_MAX_WINDOWS: usize = 64;
/// Default [`Limits::max_nodes`].
pub const DEFAULT_MAX_NODES: usize = 10_000;
/// Default [`Limits::max_edges`].
pub const DEFAULT_MAX_EDGES: usize = 50_000;
/// Default [`Limits::max_message_bytes`]: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Default [`Limits::default_top_contributions`].
pub const DEFAULT_TOP_CONTRIBUTIONS: usize = 5;
/// Default [`Limits::max_top_contributions`]: every node feature of schema v1.
pub const DEFAULT_MAX_TOP_CONTRIBUTIONS: usize = 29;

/// Limits on one request (a config block of the detector and the forecaster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most snapshots (windows) in one request.
    pub max_windows: usize,
    /// Most nodes, in any one snapshot and in the union over the window fed to the model.
    pub max_nodes: usize,
    /// Most edges, in any one snapshot and in the union over the window fed to the model.
    pub max_edges: usize,
    /// Largest encoded request message, bytes (gRPC decoding limit).
    pub max_message_bytes: usize,
    /// Contributions per node when the request asks for 0.
    pub default_top_contributions: usize,
    /// Most contributions per node a request may ask for; larger requests are capped.
    pub max_top_contributions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_windows: DEFAULT_MAX_WINDOWS,
            max_nodes: DEFAULT_MAX_NODES,
            max_edges: DEFAULT_MAX_EDGES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            default_top_contributions: DEFAULT_TOP_CONTRIBUTIONS,
            max_top_contributions: DEFAULT_MAX_TOP_CONTRIBUTIONS,
        }
    }
}

impl Limits {
    /// Every problem of these limits, one line each as `"<key>: <what is wrong>"`
    /// ([`meshwatch_runtime::Validate`] style); empty when they are usable.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut at_least_one = |key: &str, value: usize| {
            if value == 0 {
                problems.push(format!("{key}: must be at least 1"));
            }
        };
        at_least_one("max_windows", self.max_windows);
        at_least_one("max_nodes", self.max_nodes);
        at_least_one("max_edges", self.max_edges);
        at_least_one("max_message_bytes", self.max_message_bytes);
        at_least_one("max_top_contributions", self.max_top_contributions);
        if self.default_top_contributions > self.max_top_contributions {
            problems.push(format!(
                "default_top_contributions: {} exceeds max_top_contributions ({})",
                self.default_top_contributions, self.max_top_contributions
            ));
        }
        problems
    }

    /// Contributions per node for a request asking for `requested` (0: the default); more
    /// than [`Limits::max_top_contributions`] is an error naming `top_contributions`.
    pub fn top_contributions(&self, requested: u32) -> Result<usize, crate::window::RequestError> {
        let requested = usize::try_from(requested).unwrap_or(usize::MAX);
        match requested {
            0 => Ok(self.default_top_contributions),
            k if k <= self.max_top_contributions => Ok(k),
            k => Err(crate::window::RequestError::new(
                "top_contributions",
                format!(
                    "{k} is more than the limit of {}",
                    self.max_top_contributions
                ),
            )),
        }
    }
}

impl meshwatch_runtime::Validate for Limits {
    fn validate(&self) -> Vec<String> {
        Limits::validate(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let limits = Limits::default();
        assert_eq!(limits.max_windows, 64);
        assert_eq!(limits.max_nodes, 10_000);
        assert_eq!(limits.max_edges, 50_000);
        assert_eq!(limits.max_message_bytes, 16 << 20);
        assert_eq!(limits.default_top_contributions, 5);
        assert_eq!(limits.max_top_contributions, 29);
        assert!(limits.validate().is_empty());
        assert!(meshwatch_runtime::Validate::validate(&limits).is_empty());
    }

    #[test]
    fn every_problem_is_reported() {
        let limits = Limits {
            max_windows: 0,
            max_nodes: 0,
            max_edges: 0,
            max_message_bytes: 0,
            default_top_contributions: 3,
            max_top_contributions: 0,
        };
        assert_eq!(
            limits.validate(),
            vec![
                "max_windows: must be at least 1",
                "max_nodes: must be at least 1",
                "max_edges: must be at least 1",
                "max_message_bytes: must be at least 1",
                "max_top_contributions: must be at least 1",
                "default_top_contributions: 3 exceeds max_top_contributions (0)",
            ]
        );
    }

    #[test]
    fn default_above_max_is_a_problem() {
        let limits = Limits {
            default_top_contributions: 30,
            ..Limits::default()
        };
        assert_eq!(
            limits.validate(),
            vec!["default_top_contributions: 30 exceeds max_top_contributions (29)"]
        );
    }

    #[test]
    fn top_contributions_defaults_and_limits() {
        let limits = Limits::default();
        assert_eq!(limits.top_contributions(0), Ok(5));
        assert_eq!(limits.top_contributions(1), Ok(1));
        assert_eq!(limits.top_contributions(29), Ok(29));
        for too_many in [30, u32::MAX] {
            let error = limits
                .top_contributions(too_many)
                .expect_err("over the limit");
            assert_eq!(error.field, "top_contributions");
        }
    }

    /// Deserializes `Limits` from key/value pairs through serde's own value deserializers.
    fn from_pairs(pairs: &[(&'static str, u64)]) -> Result<Limits, serde::de::value::Error> {
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error, MapDeserializer};
        let de: MapDeserializer<'_, _, Error> = MapDeserializer::new(
            pairs
                .iter()
                .map(|&(k, v)| (k.into_deserializer(), v.into_deserializer())),
        );
        Limits::deserialize(de)
    }

    #[test]
    fn absent_keys_take_defaults() {
        let limits = from_pairs(&[("max_windows", 8)]).expect("valid limits");
        assert_eq!(
            limits,
            Limits {
                max_windows: 8,
                ..Limits::default()
            }
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = from_pairs(&[("max_window", 3)]).expect_err("unknown key");
        assert!(error.to_string().contains("max_window"), "{error}");
    }
}
