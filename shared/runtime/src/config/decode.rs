//! Deserializing the merged table into the service's config type, collecting every problem.
//!
//! serde stops at the first error, so decoding runs in rounds: each round deserializes the whole
//! table through `serde_ignored` (which reports keys that a struct without `deny_unknown_fields`
//! skipped) and `serde_path_to_error` (which names the key of the error). After an error the
//! offending key is removed from the table — an unknown key simply disappears, a bad value falls
//! back to its default — and the next round looks for the next problem. Each round removes or
//! rewrites one key, so the number of rounds is bounded by the number of keys.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use toml::Value;

use super::layers::{KeyPath, Layers, Seg};
use super::problem::{Problem, ProblemKind};

/// Hard cap on decoding rounds, far above the key count of any real config.
const MAX_ROUNDS: usize = 10_000;

/// Decodes `layers.table` into `T`. Returns the value when one could be built (possibly with
/// bad keys removed) and every unknown-key and invalid-value problem found on the way.
pub(crate) fn decode<T: DeserializeOwned>(layers: &mut Layers) -> (Option<T>, Vec<Problem>) {
    let mut unknown: BTreeSet<KeyPath> = BTreeSet::new();
    let mut invalid: Vec<Problem> = Vec::new();
    let mut removed: BTreeSet<KeyPath> = BTreeSet::new();
    let mut decoded = None;

    for _ in 0..MAX_ROUNDS {
        let mut ignored = Vec::new();
        let result = {
            let mut on_ignored = |path: serde_ignored::Path<'_>| {
                let mut segs = Vec::new();
                ignored_path(&path, &mut segs);
                ignored.push(KeyPath(segs));
            };
            let de = serde_ignored::Deserializer::new(
                Value::Table(layers.table.clone()),
                &mut on_ignored,
            );
            serde_path_to_error::deserialize::<_, T>(de)
        };
        unknown.extend(ignored);
        let error = match result {
            Ok(value) => {
                decoded = Some(value);
                break;
            }
            Err(error) => error,
        };
        let path = error_path(error.path());
        let message = error.inner().message().trim_end().to_owned();
        let keys = path.keys();

        if let Some(field) = quoted_after(&message, "unknown field `") {
            // `deny_unknown_fields`. serde_path_to_error already ends the path with the key it
            // captured; make sure of it rather than remove the parent table.
            let mut path = path;
            if path.0.last() != Some(&Seg::Key(field.to_owned())) {
                path.0.push(Seg::Key(field.to_owned()));
            }
            let gone = layers.remove(&path);
            unknown.insert(path);
            if gone.is_some() {
                continue;
            }
            break;
        }
        if let Some(field) = quoted_after(&message, "missing field `") {
            let mut full = path;
            full.0.push(Seg::Key(field.to_owned()));
            // When the key is missing because an invalid value was set aside, that value is
            // already reported.
            if !removed.contains(&full) {
                invalid.push(Problem {
                    kind: ProblemKind::MissingKey,
                    key: Some(full.to_string()),
                    origin: None,
                    message: "missing required key".to_owned(),
                });
            }
            // Nothing to remove: decoding cannot get past a missing required key.
            break;
        }
        if path.0.len() == keys.len() && layers.unguess(&keys) {
            // An environment/`--set` value such as `123` was read as a number; try its text.
            continue;
        }
        invalid.push(Problem {
            kind: ProblemKind::InvalidValue,
            key: (!path.is_root()).then(|| path.to_string()),
            origin: layers.origin_of(&keys),
            message,
        });
        match layers.remove(&path) {
            Some(gone) => removed.insert(gone),
            None => break,
        };
    }

    let mut problems: Vec<Problem> = unknown
        .into_iter()
        .map(|path| Problem {
            kind: ProblemKind::UnknownKey,
            origin: layers.origin_of(&path.keys()),
            key: Some(path.to_string()),
            message: "unknown key".to_owned(),
        })
        .collect();
    problems.extend(invalid);
    (decoded, problems)
}

/// The name in serde's "unknown field `x`, ..." and "missing field `x`" messages.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

fn error_path(path: &serde_path_to_error::Path) -> KeyPath {
    KeyPath(
        path.iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect(),
    )
}

fn ignored_path(path: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
    match path {
        serde_ignored::Path::Root => {}
        serde_ignored::Path::Seq { parent, index } => {
            ignored_path(parent, out);
            out.push(Seg::Index(*index));
        }
        serde_ignored::Path::Map { parent, key } => {
            ignored_path(parent, out);
            out.push(Seg::Key(key.clone()));
        }
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_path(parent, out),
    }
}
