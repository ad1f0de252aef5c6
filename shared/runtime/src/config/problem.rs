//! The error type of config loading: every problem found, each with the key and the source that
//! set it.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A default of the program that loads the configuration, over the types' own defaults
    /// ([`crate::load_with_base`]).
    Base,
    /// The TOML file given with `--config`.
    File(PathBuf),
    /// An environment variable (its name; values are never echoed, they may be secrets).
    Env(String),
    /// A `--set KEY=VALUE` flag (its key; the value is never echoed).
    Set(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Base => f.write_str("built-in default"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Env(name) => write!(f, "env {name}"),
            Self::Set(key) => write!(f, "--set {key}"),
        }
    }
}

/// What kind of problem a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProblemKind {
    /// A source could not be read or parsed (missing file, TOML syntax, malformed `--set`).
    Source,
    /// A key that the service's config type does not have.
    UnknownKey,
    /// A key that the config type requires (no default) and no layer set.
    MissingKey,
    /// A value of the wrong type or format.
    InvalidValue,
    /// A value that parsed but that [`Validate`](super::Validate) rejected.
    Validation,
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind of problem this is.
    pub kind: ProblemKind,
    /// The dotted key path (`ingest.window`, `peers[2]`), where known.
    pub key: Option<String>,
    /// The source that set the offending value, where known.
    pub origin: Option<Origin>,
    /// What is wrong, lowercase.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.key) {
            (ProblemKind::UnknownKey, Some(key)) => write!(f, "unknown key `{key}`")?,
            (ProblemKind::MissingKey, Some(key)) => write!(f, "missing required key `{key}`")?,
            (ProblemKind::InvalidValue, Some(key)) => {
                write!(f, "invalid value for `{key}`: {}", self.message)?;
            }
            (ProblemKind::Validation, Some(key)) => write!(f, "`{key}`: {}", self.message)?,
            (_, Some(key)) => write!(f, "`{key}`: {}", self.message)?,
            (_, None) => f.write_str(&self.message)?,
        }
        if let Some(origin) = &self.origin {
            write!(f, " (from {origin})")?;
        }
        Ok(())
    }
}

/// Why the configuration could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// One or more problems in the layered configuration; `Display` lists all of them, one per
    /// line.
    #[error("invalid configuration, {}:{}", Count(.0.len()), List(.0))]
    Invalid(Vec<Problem>),
    /// The effective configuration could not be written as TOML (a config type that TOML cannot
    /// represent, such as `None` inside an array or an integer above `i64::MAX`).
    #[error("cannot render the effective configuration as toml")]
    Render(#[source] toml::ser::Error),
}

impl ConfigError {
    /// The problems behind [`ConfigError::Invalid`]; empty for other variants.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid(problems) => problems,
            Self::Render(_) => &[],
        }
    }
}

struct Count(usize);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("1 problem"),
            n => write!(f, "{n} problems"),
        }
    }
}

struct List<'a>(&'a [Problem]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}
