//! The layers above the defaults — file, environment, `--set` — merged into one TOML table, with
//! the origin of every leaf remembered for error messages.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::Path;

use toml::{Table, Value};

use super::problem::{Origin, Problem, ProblemKind};

/// Prefix of the environment variables that configure a service.
pub const ENV_PREFIX: &str = "MESHWATCH_";

/// Separator between nesting levels in an environment variable name (`MESHWATCH_ADMIN__LISTEN`).
pub const ENV_SEPARATOR: &str = "__";

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Seg {
    /// A table key (or an enum variant name, which TOML writes as a key).
    Key(String),
    /// An array index.
    Index(usize),
}

/// A path into the merged table, as serde reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KeyPath(pub(crate) Vec<Seg>);

impl KeyPath {
    /// The leading table keys, up to the first array index: the part that names a value a layer
    /// set, and that can be removed from the table.
    pub(crate) fn keys(&self) -> Vec<String> {
        self.0
            .iter()
            .map_while(|seg| match seg {
                Seg::Key(key) => Some(key.clone()),
                Seg::Index(_) => None,
            })
            .collect()
    }

    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) if i == 0 => f.write_str(key)?,
                Seg::Key(key) => write!(f, ".{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// File < environment < `--set`, merged key by key.
#[derive(Debug, Default)]
pub(crate) struct Layers {
    /// The merged user-supplied values (defaults come from serde, see the module docs).
    pub(crate) table: Table,
    /// Which layer set each leaf, by key path.
    origins: BTreeMap<Vec<String>, Origin>,
    /// Raw text of environment/`--set` values that parsed as a non-string TOML value, so that a
    /// value such as `123` can still be read as a string where the config type wants one.
    guessed: BTreeMap<Vec<String>, String>,
    /// Problems found while reading the layers.
    pub(crate) problems: Vec<Problem>,
    /// The file could not be read or parsed, so the merged table is incomplete.
    pub(crate) file_failed: bool,
}

impl Layers {
    /// Merges the loading program's own defaults (the lowest layer).
    pub(crate) fn add_base(&mut self, table: Table) {
        self.merge(Vec::new(), Value::Table(table), &Origin::Base, None);
    }

    /// Reads and merges the TOML file at `path`.
    pub(crate) fn add_file(&mut self, path: &Path) {
        let origin = Origin::File(path.to_owned());
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                self.file_failed = true;
                self.source_problem(format!("cannot read config file: {error}"), origin);
                return;
            }
        };
        match toml::from_str::<Table>(&text) {
            Ok(table) => self.merge(Vec::new(), Value::Table(table), &origin, None),
            Err(error) => {
                self.file_failed = true;
                let position = error
                    .span()
                    .map(|span| {
                        let (line, column) = line_column(&text, span.start);
                        format!(" at line {line}, column {column}")
                    })
                    .unwrap_or_default();
                let message = error.message().trim_end().replace('\n', "; ");
                self.source_problem(format!("invalid toml{position}: {message}"), origin);
            }
        }
    }

    /// Merges every `MESHWATCH_<SECTION>__*` variable, in name order so the result does not depend on the
    /// order the OS lists them in (`MESHWATCH_A` is applied before `MESHWATCH_A__B`).
    pub(crate) fn add_env<I, K, V>(&mut self, vars: I)
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let mut ours: Vec<(String, OsString)> = vars
            .into_iter()
            .filter_map(|(name, value)| {
                let name = name.into().into_string().ok()?;
                // Only `MESHWATCH_<SECTION>__<KEY>` configures a service: every setting lives
                // in a section, and variables without the separator (`MESHWATCH_CACHE` of the
                // scripts, say) belong to other tools.
                let configures = name
                    .strip_prefix(ENV_PREFIX)
                    .is_some_and(|rest| rest.contains(ENV_SEPARATOR));
                configures.then(|| (name, value.into()))
            })
            .collect();
        ours.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, value) in ours {
            let origin = Origin::Env(name.clone());
            let Some(value) = value.to_str() else {
                self.source_problem("value is not valid utf-8".to_owned(), origin);
                continue;
            };
            let rest = &name[ENV_PREFIX.len()..];
            let key: Vec<String> = rest.split(ENV_SEPARATOR).map(str::to_lowercase).collect();
            if key.iter().any(String::is_empty) {
                self.source_problem(
                    format!(
                        "cannot map the name to a key: empty segment between `{ENV_SEPARATOR}`"
                    ),
                    origin,
                );
                continue;
            }
            self.set_raw(key, value, origin);
        }
    }

    /// Merges `--set KEY=VALUE` overrides, in the order given (a later one wins).
    pub(crate) fn add_sets(&mut self, sets: &[String]) {
        for set in sets {
            let Some((key, value)) = set.split_once('=') else {
                self.problems.push(Problem {
                    kind: ProblemKind::Source,
                    key: None,
                    origin: None,
                    message: format!("invalid --set `{set}`: expected KEY=VALUE"),
                });
                continue;
            };
            let key = key.trim();
            let segments: Vec<String> = key.split('.').map(str::to_owned).collect();
            if segments
                .iter()
                .any(|s| s.is_empty() || s.contains(char::is_whitespace))
            {
                self.problems.push(Problem {
                    kind: ProblemKind::Source,
                    key: None,
                    origin: None,
                    message: format!("invalid --set key `{key}`: expected a dotted path like a.b"),
                });
                continue;
            }
            self.set_raw(segments, value, Origin::Set(key.to_owned()));
        }
    }

    /// The layer that set `key` or the nearest table above it.
    pub(crate) fn origin_of(&self, key: &[String]) -> Option<Origin> {
        (0..=key.len())
            .rev()
            .find_map(|len| self.origins.get(&key[..len]))
            .cloned()
    }

    /// Replaces a guessed non-string value at `key` by its raw text. Returns false when the
    /// value at `key` was not guessed (so there is nothing else to try).
    pub(crate) fn unguess(&mut self, key: &[String]) -> bool {
        let Some(raw) = self.guessed.remove(key) else {
            return false;
        };
        let Some((last, parents)) = key.split_last() else {
            return false;
        };
        match table_at(&mut self.table, parents) {
            Some(table) => table.insert(last.clone(), Value::String(raw)).is_some(),
            None => false,
        }
    }

    /// Removes the value at `path` from the merged table, looking into arrays of tables on the
    /// way; a path that ends in an array index removes the whole array (removing one element
    /// would shift the indices of the others). Returns the path removed, if there was a value.
    pub(crate) fn remove(&mut self, path: &KeyPath) -> Option<KeyPath> {
        let mut path = path.clone();
        while matches!(path.0.last(), Some(Seg::Index(_))) {
            path.0.pop();
        }
        remove_at(&mut self.table, &path.0).then_some(path)
    }

    fn source_problem(&mut self, message: String, origin: Origin) {
        self.problems.push(Problem {
            kind: ProblemKind::Source,
            key: None,
            origin: Some(origin),
            message,
        });
    }

    /// Sets `key` from an environment or `--set` value: TOML where it parses as one value
    /// (`30`, `true`, `["a", "b"]`, `"quoted"`), else the text itself as a string.
    fn set_raw(&mut self, key: Vec<String>, raw: &str, origin: Origin) {
        let value = parse_value(raw);
        let guessed = (!value.is_str()).then(|| raw.to_owned());
        self.merge(key, value, &origin, guessed);
    }

    /// Deep-merges `value` at `key`: tables merge key by key, anything else replaces what lower
    /// layers had there.
    fn merge(&mut self, key: Vec<String>, value: Value, origin: &Origin, guessed: Option<String>) {
        match value {
            Value::Table(table) if table.is_empty() => {
                // An empty table (`[admin]` with no keys) still names a key, so an unknown empty
                // section is reported; it never wipes what a lower layer put there.
                if !key.is_empty() && ensure_table(&mut self.table, &key).is_some() {
                    self.origins.entry(key).or_insert_with(|| origin.clone());
                }
            }
            Value::Table(table) => {
                for (k, v) in table {
                    let mut child = key.clone();
                    child.push(k);
                    self.merge(child, v, origin, None);
                }
            }
            value => {
                let Some((last, parents)) = key.split_last() else {
                    return;
                };
                let Some(table) = ensure_table(&mut self.table, parents) else {
                    return;
                };
                table.insert(last.clone(), value);
                self.origins.retain(|k, _| !k.starts_with(&key));
                self.guessed.retain(|k, _| !k.starts_with(&key));
                if let Some(raw) = guessed {
                    self.guessed.insert(key.clone(), raw);
                }
                self.origins.insert(key, origin.clone());
            }
        }
    }
}

/// Parses an environment or `--set` value as a single TOML value, else keeps it as a string.
fn parse_value(raw: &str) -> Value {
    let document = format!("v = {raw}");
    match toml::from_str::<Table>(&document) {
        Ok(mut table) if table.len() == 1 => table
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        _ => Value::String(raw.to_owned()),
    }
}

/// The table at `path`, creating tables on the way and replacing non-table values (a higher
/// layer that sets `a.b` overrides a lower layer's `a = 1`). `None` only if that invariant broke.
fn ensure_table<'a>(table: &'a mut Table, path: &[String]) -> Option<&'a mut Table> {
    let Some((first, rest)) = path.split_first() else {
        return Some(table);
    };
    if !table.get(first).is_some_and(Value::is_table) {
        table.insert(first.clone(), Value::Table(Table::new()));
    }
    ensure_table(table.get_mut(first)?.as_table_mut()?, rest)
}

/// Removes the key at the end of `path`, following table keys and array indices.
fn remove_at(table: &mut Table, path: &[Seg]) -> bool {
    match path {
        [Seg::Key(last)] => table.remove(last).is_some(),
        [Seg::Key(key), rest @ ..] => table
            .get_mut(key)
            .is_some_and(|value| remove_in_value(value, rest)),
        _ => false,
    }
}

fn remove_in_value(value: &mut Value, path: &[Seg]) -> bool {
    match (value, path) {
        (Value::Table(table), [Seg::Key(_), ..]) => remove_at(table, path),
        (Value::Array(array), [Seg::Index(index), rest @ ..]) => array
            .get_mut(*index)
            .is_some_and(|element| remove_in_value(element, rest)),
        _ => false,
    }
}

/// The existing table at `path`, if every step is a table.
fn table_at<'a>(mut table: &'a mut Table, path: &[String]) -> Option<&'a mut Table> {
    for key in path {
        table = table.get_mut(key)?.as_table_mut()?;
    }
    Some(table)
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
