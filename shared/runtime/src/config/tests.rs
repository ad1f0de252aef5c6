//! Loader tests: every layer is given explicitly, the real environment is never read.

use std::ffi::OsString;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TestConfig {
    admin: AdminConfig,
    log: LogConfig,
    shutdown: ShutdownConfig,
    ingest: IngestSection,
}

/// Deliberately without `deny_unknown_fields`: its unknown keys are found by `serde_ignored`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct IngestSection {
    #[serde(with = "humantime_serde")]
    window: Duration,
    max_spans: u64,
    graph_keys: Vec<String>,
    default_graph: String,
    ratio: f64,
    routes: Vec<Route>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Route {
    name: String,
    weight: u32,
}

impl Default for IngestSection {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(30),
            max_spans: 1000,
            graph_keys: vec!["k8s.cluster.name".to_owned()],
            default_graph: "default".to_owned(),
            ratio: 0.5,
            routes: Vec::new(),
        }
    }
}

impl Validate for TestConfig {
    fn validate(&self) -> Vec<String> {
        let mut problems = nested("admin", &self.admin);
        problems.extend(nested("log", &self.log));
        problems.extend(nested("shutdown", &self.shutdown));
        if self.ingest.max_spans == 0 {
            problems.push("ingest.max_spans: must be greater than 0".to_owned());
        }
        if self.ingest.window < Duration::from_secs(1) {
            problems.push("ingest.window: must be at least 1s".to_owned());
        }
        problems
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    args: CommonArgs,
    path: std::path::PathBuf,
}

fn fixture(file: Option<&str>, sets: &[&str]) -> anyhow::Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("meshwatch.toml");
    let config = match file {
        Some(text) => {
            std::fs::write(&path, text)?;
            Some(path.clone())
        }
        None => None,
    };
    let args = CommonArgs {
        config,
        set: sets.iter().map(|s| (*s).to_owned()).collect(),
        check_config: false,
    };
    Ok(Fixture {
        _dir: dir,
        args,
        path,
    })
}

fn load_test(
    file: Option<&str>,
    env: &[(&str, &str)],
    sets: &[&str],
) -> anyhow::Result<(Result<TestConfig, ConfigError>, Fixture)> {
    let fixture = fixture(file, sets)?;
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Ok((load_with_env(&fixture.args, env), fixture))
}

fn problems(result: Result<TestConfig, ConfigError>) -> anyhow::Result<Vec<Problem>> {
    match result {
        Ok(config) => anyhow::bail!("expected a config error, got {config:?}"),
        Err(error) => Ok(error.problems().to_vec()),
    }
}

fn find<'a>(problems: &'a [Problem], kind: ProblemKind, key: &str) -> Option<&'a Problem> {
    problems
        .iter()
        .find(|p| p.kind == kind && p.key.as_deref() == Some(key))
}

#[test]
fn no_sources_give_the_defaults() -> anyhow::Result<()> {
    let (result, _f) = load_test(None, &[("PATH", "/usr/bin"), ("HOME", "/root")], &[])?;
    assert_eq!(result?, TestConfig::default());
    Ok(())
}

#[test]
fn variables_without_a_section_are_not_configuration() -> anyhow::Result<()> {
    // The scripts' own variables share the prefix; they must not be read as unknown keys.
    let env = [
        ("MESHWATCH_CACHE", "/tmp/cache"),
        ("MESHWATCH_PYTHON", "/usr/bin/python3"),
    ];
    let (result, _f) = load_test(None, &env, &[])?;
    assert_eq!(result?, TestConfig::default());
    Ok(())
}

#[test]
fn file_is_below_env_which_is_below_set() -> anyhow::Result<()> {
    let file = r#"
        [ingest]
        window = "60s"
        max_spans = 10
        default_graph = "from-file"
    "#;
    let env = [
        ("MESHWATCH_INGEST__WINDOW", "30s"),
        ("MESHWATCH_INGEST__MAX_SPANS", "20"),
    ];
    let (result, _f) = load_test(Some(file), &env, &["ingest.window=10s"])?;
    let config = result?;
    assert_eq!(config.ingest.window, Duration::from_secs(10), "--set wins");
    assert_eq!(config.ingest.max_spans, 20, "env wins over the file");
    assert_eq!(
        config.ingest.default_graph, "from-file",
        "file wins over defaults"
    );
    assert_eq!(config.ingest.ratio, 0.5, "defaults fill the rest");
    Ok(())
}

#[test]
fn later_set_flags_win() -> anyhow::Result<()> {
    let sets = ["ingest.max_spans=1", "ingest.max_spans=2"];
    let (result, _f) = load_test(None, &[], &sets)?;
    assert_eq!(result?.ingest.max_spans, 2);
    Ok(())
}

#[test]
fn env_nests_with_double_underscore_and_parses_values() -> anyhow::Result<()> {
    let env = [
        ("MESHWATCH_ADMIN__LISTEN", "127.0.0.1:9999"),
        ("MESHWATCH_LOG__FORMAT", "json"),
        ("MESHWATCH_INGEST__GRAPH_KEYS", r#"["a", "b"]"#),
        // Parses as a TOML integer, but the field is a string: read as its text.
        ("MESHWATCH_INGEST__DEFAULT_GRAPH", "123"),
        // An integer where a float is wanted is fine too.
        ("MESHWATCH_INGEST__RATIO", "1"),
        ("OTHER_ADMIN__LISTEN", "ignored"),
    ];
    let (result, _f) = load_test(None, &env, &[])?;
    let config = result?;
    assert_eq!(config.admin.listen, "127.0.0.1:9999".parse()?);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.ingest.graph_keys, ["a", "b"]);
    assert_eq!(config.ingest.default_graph, "123");
    assert_eq!(config.ingest.ratio, 1.0);
    Ok(())
}

#[test]
fn unknown_keys_from_every_layer_are_reported_together() -> anyhow::Result<()> {
    let file = r#"
        surprise = true          # root struct denies unknown fields
        [admin]
        lisen = "0.0.0.0:1"      # AdminConfig denies unknown fields
        [ingest]
        bogus = 1                # IngestSection ignores them: found by serde_ignored
        window = "10s"
    "#;
    let env = [("MESHWATCH_SHUTDOWN__GRACEFUL", "1s")];
    let (result, f) = load_test(Some(file), &env, &["ingest.nope=2"])?;
    let problems = problems(result)?;
    let file_origin = Some(Origin::File(f.path.clone()));
    let expected = [
        ("surprise", file_origin.clone()),
        ("admin.lisen", file_origin.clone()),
        ("ingest.bogus", file_origin),
        (
            "shutdown.graceful",
            Some(Origin::Env("MESHWATCH_SHUTDOWN__GRACEFUL".to_owned())),
        ),
        ("ingest.nope", Some(Origin::Set("ingest.nope".to_owned()))),
    ];
    for (key, origin) in &expected {
        let problem = find(&problems, ProblemKind::UnknownKey, key)
            .ok_or_else(|| anyhow::anyhow!("`{key}` not reported in {problems:#?}"))?;
        assert_eq!(&problem.origin, origin, "origin of {key}");
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    Ok(())
}

#[test]
fn type_errors_name_key_and_source() -> anyhow::Result<()> {
    let file = r#"
        [ingest]
        max_spans = "many"
        graph_keys = ["ok", 5]
        [admin]
        listen = 5
    "#;
    let env = [("MESHWATCH_SHUTDOWN__GRACE", "soon")];
    let (result, f) = load_test(Some(file), &env, &[])?;
    let problems = problems(result)?;
    let file_origin = Some(Origin::File(f.path.clone()));

    let max_spans = find(&problems, ProblemKind::InvalidValue, "ingest.max_spans")
        .ok_or_else(|| anyhow::anyhow!("max_spans not reported: {problems:#?}"))?;
    assert_eq!(max_spans.origin, file_origin);
    assert!(max_spans.message.contains("invalid type"), "{max_spans}");

    let keys = find(&problems, ProblemKind::InvalidValue, "ingest.graph_keys[1]")
        .ok_or_else(|| anyhow::anyhow!("graph_keys[1] not reported: {problems:#?}"))?;
    assert_eq!(keys.origin, file_origin);

    assert!(find(&problems, ProblemKind::InvalidValue, "admin.listen").is_some());

    let grace = find(&problems, ProblemKind::InvalidValue, "shutdown.grace")
        .ok_or_else(|| anyhow::anyhow!("grace not reported: {problems:#?}"))?;
    assert_eq!(
        grace.origin,
        Some(Origin::Env("MESHWATCH_SHUTDOWN__GRACE".to_owned()))
    );
    assert_eq!(problems.len(), 4, "{problems:#?}");
    Ok(())
}

#[test]
fn validation_problems_are_reported_all_at_once() -> anyhow::Result<()> {
    let file = "[ingest]\nmax_spans = 0\n";
    let env = [("MESHWATCH_LOG__LEVEL", "info,meshwatch=loud")];
    let sets = ["shutdown.grace=0s", "ingest.window=10ms"];
    let (result, f) = load_test(Some(file), &env, &sets)?;
    let problems = problems(result)?;
    let expected = [
        (
            "log.level",
            Some(Origin::Env("MESHWATCH_LOG__LEVEL".to_owned())),
        ),
        (
            "shutdown.grace",
            Some(Origin::Set("shutdown.grace".to_owned())),
        ),
        ("ingest.max_spans", Some(Origin::File(f.path.clone()))),
        (
            "ingest.window",
            Some(Origin::Set("ingest.window".to_owned())),
        ),
    ];
    for (key, origin) in &expected {
        let problem = find(&problems, ProblemKind::Validation, key)
            .ok_or_else(|| anyhow::anyhow!("`{key}` not reported in {problems:#?}"))?;
        assert_eq!(&problem.origin, origin, "origin of {key}");
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    Ok(())
}

#[test]
fn structural_and_validation_problems_are_reported_together() -> anyhow::Result<()> {
    let file = "[ingest]\nmax_spans = 0\nbogus = 1\n";
    let (result, _f) = load_test(Some(file), &[], &["shutdown.grace=nope"])?;
    let problems = problems(result)?;
    assert!(find(&problems, ProblemKind::UnknownKey, "ingest.bogus").is_some());
    assert!(find(&problems, ProblemKind::InvalidValue, "shutdown.grace").is_some());
    assert!(find(&problems, ProblemKind::Validation, "ingest.max_spans").is_some());
    assert_eq!(problems.len(), 3, "{problems:#?}");
    Ok(())
}

#[test]
fn display_lists_one_problem_per_line() -> anyhow::Result<()> {
    let env = [
        ("MESHWATCH_ADMIN__PORT", "1"),
        ("MESHWATCH_SHUTDOWN__GRACE", "0s"),
    ];
    let (result, _f) = load_test(None, &env, &[])?;
    let Err(error) = result else {
        anyhow::bail!("expected an error");
    };
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "invalid configuration, 2 problems:",
            "  - unknown key `admin.port` (from env MESHWATCH_ADMIN__PORT)",
            "  - `shutdown.grace`: must be greater than 0 (from env MESHWATCH_SHUTDOWN__GRACE)",
        ],
    );
    Ok(())
}

#[test]
fn source_problems_are_reported() -> anyhow::Result<()> {
    let fixture = fixture(Some("[ingest\nwindow = 1"), &["no-equals-sign", "a..b=1"])?;
    let env: Vec<(OsString, OsString)> = vec![
        ("MESHWATCH_INGEST____WINDOW".into(), "1s".into()),
        #[cfg(unix)]
        ("MESHWATCH_LOG__LEVEL".into(), non_utf8()),
    ];
    let result: Result<TestConfig, _> = load_with_env(&fixture.args, env);
    let problems = problems(result)?;
    assert!(problems.iter().all(|p| p.kind == ProblemKind::Source));
    let parse = problems
        .iter()
        .find(|p| p.origin == Some(Origin::File(fixture.path.clone())))
        .ok_or_else(|| anyhow::anyhow!("file problem missing: {problems:#?}"))?;
    assert!(parse.message.contains("line 1"), "{parse}");
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("no-equals-sign"))
    );
    assert!(problems.iter().any(|p| p.message.contains("`a..b`")));
    assert!(
        problems
            .iter()
            .any(|p| { p.origin == Some(Origin::Env("MESHWATCH_INGEST____WINDOW".to_owned())) })
    );
    let expected = if cfg!(unix) { 5 } else { 4 };
    assert_eq!(problems.len(), expected, "{problems:#?}");
    Ok(())
}

#[cfg(unix)]
fn non_utf8() -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec(vec![0x66, 0x6f, 0xff])
}

#[test]
fn missing_file_is_reported() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let args = CommonArgs {
        config: Some(dir.path().join("absent.toml")),
        ..CommonArgs::default()
    };
    let result: Result<TestConfig, _> = load_with_env(&args, Vec::<(String, String)>::new());
    let problems = problems(result)?;
    assert_eq!(problems.len(), 1);
    assert!(problems[0].message.starts_with("cannot read config file"));
    Ok(())
}

#[test]
fn effective_toml_round_trips() -> anyhow::Result<()> {
    let env = [
        ("MESHWATCH_INGEST__GRAPH_KEYS", r#"["x", "y"]"#),
        ("MESHWATCH_LOG__FORMAT", "json"),
    ];
    let (result, _f) = load_test(None, &env, &["shutdown.grace=1m 30s", "ingest.ratio=0.25"])?;
    let config = result?;
    let rendered = effective_toml(&config)?;
    assert!(rendered.contains("grace = \"1m 30s\""), "{rendered}");

    let (reloaded, _f) = load_test(Some(&rendered), &[], &[])?;
    assert_eq!(reloaded?, config);
    Ok(())
}

/// A struct without `#[serde(default)]`: its `Default`, the lowest layer, still gives every key
/// (nothing is "missing"), and an invalid value is reported once, with its path.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Required {
    name: String,
    count: u32,
}

impl Validate for Required {
    fn validate(&self) -> Vec<String> {
        Vec::new()
    }
}

#[test]
fn keys_of_no_layer_come_from_the_default_even_without_serde_defaults() -> anyhow::Result<()> {
    let invalid = fixture(Some("count = -1\n"), &[])?;
    let result: Result<Required, _> = load_with_env(&invalid.args, Vec::<(String, String)>::new());
    let Err(error) = result else {
        anyhow::bail!("expected an error");
    };
    let problems = error.problems();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        find(problems, ProblemKind::InvalidValue, "count").is_some(),
        "{error}"
    );
    let valid = fixture(Some("count = 3\n"), &[])?;
    let config: Required = load_with_env(&valid.args, Vec::<(String, String)>::new())?;
    assert_eq!((config.name.as_str(), config.count), ("", 3));
    Ok(())
}

#[test]
fn problems_inside_arrays_of_tables() -> anyhow::Result<()> {
    let file = r#"
        [[ingest.routes]]
        name = "a"
        colour = "red"
        [[ingest.routes]]
        name = "b"
        weight = "heavy"
        [[ingest.routes]]
        name = "c"
        weight = 3
        shape = "round"
    "#;
    let (result, _f) = load_test(Some(file), &[], &[])?;
    let problems = problems(result)?;
    assert!(
        find(
            &problems,
            ProblemKind::UnknownKey,
            "ingest.routes[0].colour"
        )
        .is_some()
    );
    assert!(find(&problems, ProblemKind::UnknownKey, "ingest.routes[2].shape").is_some());
    assert!(
        find(
            &problems,
            ProblemKind::InvalidValue,
            "ingest.routes[1].weight"
        )
        .is_some()
    );
    assert_eq!(problems.len(), 3, "{problems:#?}");

    let good = "[[ingest.routes]]\nname = \"a\"\nweight = 2\n";
    let (result, _f) = load_test(Some(good), &[], &[])?;
    assert_eq!(
        result?.ingest.routes,
        [Route {
            name: "a".to_owned(),
            weight: 2
        }]
    );
    Ok(())
}

/// A parent whose `Default` gives a nested table values other than the nested type's own.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ParentConfig {
    ingest: IngestSection,
}

impl Default for ParentConfig {
    fn default() -> Self {
        Self {
            ingest: IngestSection {
                window: Duration::from_secs(10),
                default_graph: "parent".to_owned(),
                ..IngestSection::default()
            },
        }
    }
}

impl Validate for ParentConfig {
    fn validate(&self) -> Vec<String> {
        Vec::new()
    }
}

#[test]
fn a_partly_set_table_keeps_the_parents_defaults() -> anyhow::Result<()> {
    let sets = fixture(None, &["ingest.max_spans=7"])?;
    let config: ParentConfig = load_with_env(&sets.args, std::iter::empty::<(String, String)>())?;
    assert_eq!(config.ingest.max_spans, 7);
    assert_eq!(config.ingest.window, Duration::from_secs(10));
    assert_eq!(config.ingest.default_graph, "parent");
    // A file setting the same table partly: the same.
    let file = fixture(Some("[ingest]\nratio = 0.9\n"), &[])?;
    let config: ParentConfig = load_with_env(&file.args, std::iter::empty::<(String, String)>())?;
    assert_eq!(config.ingest.ratio, 0.9);
    assert_eq!(config.ingest.default_graph, "parent");
    Ok(())
}

#[test]
fn a_base_layer_sits_between_the_defaults_and_the_file() -> anyhow::Result<()> {
    let base: toml::Table = toml::from_str("[ingest]\ndefault_graph = \"base\"\nmax_spans = 5\n")?;
    let file = fixture(Some("[ingest]\nmax_spans = 9\n"), &[])?;
    let config: TestConfig =
        load_with_base(&file.args, std::iter::empty::<(String, String)>(), base)?;
    assert_eq!(config.ingest.default_graph, "base");
    assert_eq!(config.ingest.max_spans, 9);
    assert_eq!(config.ingest.window, Duration::from_secs(30));
    Ok(())
}
