//! Layered, strict configuration loading.
//!
//! Precedence, lowest first:
//!
//! 1. **defaults** — `T::default()`, serialised and merged like any layer (so a table that a
//!    later layer sets partly keeps what `T::default()` gave its other keys, not what the nested
//!    type's own `Default` would), then a program's own base layer ([`load_with_base`]);
//! 2. **file** — the TOML file given with `--config PATH` (optional);
//! 3. **environment** — `MESHWATCH_<SECTION>__<KEY>` with `__` between nesting levels, names
//!    lowercased: `MESHWATCH_INGEST__WINDOW=30s` sets `ingest.window`,
//!    `MESHWATCH_ADMIN__LISTEN=0.0.0.0:9000` sets `admin.listen`. Variables without `__`
//!    (`MESHWATCH_CACHE` of the scripts) are not configuration and are ignored, so every setting
//!    of a service belongs in a section;
//! 4. **flags** — `--set ingest.window=10s`, repeatable, later ones win.
//!
//! Environment and `--set` values are read as one TOML value where they parse as one (`30`,
//! `true`, `["a", "b"]`, `"quoted"`, `{ a = 1 }`), else as the plain string. A value that parsed
//! as a number or boolean but lands in a string field is read as its text, so
//! `MESHWATCH_GRAPH__DEFAULT_ID=123` works for a string key.
//!
//! Loading is strict and reports every problem at once, in one [`ConfigError`]: unreadable or
//! unparsable sources, every unknown key (from any layer), every value of the wrong type, then
//! every [`Validate`] problem — each with its key path and the file, variable or flag that set
//! it. Services load and validate before they bind a port or open a connection.
//!
//! # Why not the `config` crate
//!
//! The layers are merged here, as `toml::Table`s, rather than with the `config` crate: `config`
//! forgets which source set a key (so an error cannot name `env MESHWATCH_ADMIN__LISTEN`), stops
//! at the first unknown key and has its own value model between the layers and serde. A deep
//! merge of TOML tables is a few dozen lines, keeps the origin of every leaf, and the merged
//! table deserializes with TOML's own semantics, the same as the file.
//!
//! # Rules for config types
//!
//! - Put `#[serde(default)]` on every struct (so keys absent from all layers take the value of
//!   `Default`), and `#[serde(deny_unknown_fields)]` where you like: unknown keys are found
//!   either way (`serde_ignored` for structs that skip them, error rounds for those that deny).
//! - Durations are humantime strings: `#[serde(with = "humantime_serde")]`.
//! - Avoid `#[serde(flatten)]` and untagged enums: serde buffers their input, so unknown keys
//!   inside them cannot be seen.
//! - Embed [`AdminConfig`], [`LogConfig`] and [`ShutdownConfig`] as fields `admin`, `log` and
//!   `shutdown`, and report their problems with [`nested`].
//! - The effective config is printed by `--check-config`: keep secrets out of it (reference a
//!   file, or skip the field when serializing).
//!
//! Kubernetes injects `<SERVICE>_PORT`-style variables for every Service in the namespace; a
//! Service named `meshwatch-…` yields `MESHWATCH_…` variables that would be rejected as unknown
//! keys. Pods running Meshwatch set `enableServiceLinks: false`.

mod common;
mod decode;
mod layers;
mod problem;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use common::{
    AdminConfig, DEFAULT_ADMIN_PORT, LogConfig, LogFormat, MAX_SHUTDOWN_GRACE, ShutdownConfig,
};
pub use layers::{ENV_PREFIX, ENV_SEPARATOR};
pub use problem::{ConfigError, Origin, Problem, ProblemKind};

use layers::Layers;

/// Semantic checks that serde cannot express (ranges, cross-field rules).
///
/// Return one line per problem, `"<key>: <what is wrong>"` with the key relative to the type
/// (`"grace: must be greater than 0"`); [`nested`] prefixes the key of an embedded block, and
/// the loader then names the source that set that key.
pub trait Validate {
    /// Every problem found; empty when the value is valid.
    fn validate(&self) -> Vec<String>;
}

/// The problems of an embedded block, with `prefix.` before each key:
/// `nested("shutdown", &self.shutdown)` turns `grace: ...` into `shutdown.grace: ...`.
pub fn nested<V: Validate + ?Sized>(prefix: &str, block: &V) -> Vec<String> {
    block
        .validate()
        .into_iter()
        .map(|problem| format!("{prefix}.{problem}"))
        .collect()
}

/// The flags every service binary accepts; add them with `#[command(flatten)]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct CommonArgs {
    /// TOML config file (optional; defaults apply to every key it does not set)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Override one setting, e.g. `--set ingest.window=10s`; repeatable, wins over the file and
    /// MESHWATCH_* environment variables
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Load and validate the configuration, print the effective config as TOML and exit
    #[arg(long)]
    pub check_config: bool,
}

/// Loads `T` from defaults, `args.config`, the process environment and `args.set`, and validates
/// it. See the [module docs](self) for precedence and rules.
///
/// # Errors
///
/// [`ConfigError::Invalid`] listing every problem found.
pub fn load<T>(args: &CommonArgs) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default + Validate,
{
    load_with_env(args, std::env::vars_os())
}

/// [`load`] with the environment given explicitly (tests, embedding): only variables starting
/// with [`ENV_PREFIX`] are read.
///
/// # Errors
///
/// [`ConfigError::Invalid`] listing every problem found.
pub fn load_with_env<T, I, K, V>(args: &CommonArgs, env: I) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default + Validate,
    I: IntoIterator<Item = (K, V)>,
    K: Into<OsString>,
    V: Into<OsString>,
{
    load_with_base(args, env, toml::Table::new())
}

/// [`load_with_env`] over a `base` layer of the loading program's own defaults, between
/// `T::default()` and the file.
///
/// `T::default()`, serialised, is the lowest layer: serde alone would fill a table that a layer
/// sets partly from the nested type's own `Default`, losing what `T::default()` put there (the
/// forecaster's consumer name under `stream`, for one: `--set stream.fetch_expires=1s` made the
/// forecaster consume as `detector`).
///
/// # Errors
///
/// [`ConfigError::Invalid`] listing every problem found.
pub fn load_with_base<T, I, K, V>(
    args: &CommonArgs,
    env: I,
    base: toml::Table,
) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default + Validate,
    I: IntoIterator<Item = (K, V)>,
    K: Into<OsString>,
    V: Into<OsString>,
{
    let mut layers = Layers::default();
    // `T::default()` itself is the lowest layer, so that a nested table a layer sets partly
    // keeps the defaults its parent gives it (a role's consumer name, `meshwatch run`'s
    // window), rather than the nested type's own `Default`.
    match toml::Value::try_from(T::default()) {
        Ok(toml::Value::Table(defaults)) => layers.add_base(defaults),
        Ok(other) => {
            return Err(ConfigError::Invalid(vec![Problem {
                kind: ProblemKind::InvalidValue,
                key: None,
                origin: None,
                message: format!("the defaults are not a table but {}", other.type_str()),
            }]));
        }
        Err(error) => {
            return Err(ConfigError::Invalid(vec![Problem {
                kind: ProblemKind::InvalidValue,
                key: None,
                origin: None,
                message: format!("the defaults cannot be written as TOML: {error}"),
            }]));
        }
    }
    layers.add_base(base);
    if let Some(path) = &args.config {
        layers.add_file(path);
    }
    layers.add_env(env);
    layers.add_sets(&args.set);

    let mut problems = std::mem::take(&mut layers.problems);
    if layers.file_failed {
        // Without the file the merged table is incomplete: decoding it would report problems
        // that are not there (required keys, validation of defaults). Report the sources alone.
        return Err(ConfigError::Invalid(problems));
    }
    let (config, decode_problems) = decode::decode::<T>(&mut layers);
    problems.extend(decode_problems);
    if let Some(config) = &config {
        problems.extend(
            config
                .validate()
                .into_iter()
                .map(|line| validation_problem(line, &layers)),
        );
    }
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        None if problems.is_empty() => Err(ConfigError::Invalid(vec![Problem {
            kind: ProblemKind::InvalidValue,
            key: None,
            origin: None,
            message: "the configuration could not be decoded".to_owned(),
        }])),
        _ => Err(ConfigError::Invalid(problems)),
    }
}

/// The effective configuration as TOML, as `--check-config` prints it.
///
/// # Errors
///
/// [`ConfigError::Render`] when TOML cannot represent the value.
pub fn effective_toml<T: Serialize>(config: &T) -> Result<String, ConfigError> {
    toml::to_string_pretty(config).map_err(ConfigError::Render)
}

/// A [`Validate`] line as a problem; a leading `key.path: ` becomes the key, and the layer that
/// set that key its origin.
fn validation_problem(line: String, layers: &Layers) -> Problem {
    let keyed = line.split_once(": ").filter(|(key, _)| {
        !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'))
    });
    match keyed {
        Some((key, message)) => {
            let keys: Vec<String> = key
                .split('[')
                .next()
                .unwrap_or(key)
                .split('.')
                .map(str::to_owned)
                .collect();
            Problem {
                kind: ProblemKind::Validation,
                key: Some(key.to_owned()),
                origin: layers.origin_of(&keys),
                message: message.to_owned(),
            }
        }
        None => Problem {
            kind: ProblemKind::Validation,
            key: None,
            origin: None,
            message: line,
        },
    }
}
