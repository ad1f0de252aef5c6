//! The workspace's binaries (`meshwatch`, `meshwatch-ingest`, ...) for system tests that run
//! them as separate processes, from a package that does not build them itself (Cargo sets
//! `CARGO_BIN_EXE_<name>` only for the binaries of the package under test).
//!
//! A test executable lives in `<target>/<profile>/deps/`; the binaries of the same build are
//! in its parent directory, `<target>/<profile>/`. `MESHWATCH_BIN_DIR` overrides that (for
//! release binaries, or binaries built elsewhere). `cargo test --workspace --all-targets` (what
//! CI runs) builds every binary before it runs the tests; `cargo test -p <one package>` does
//! not, hence the error that says how to build them.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The environment variable naming a directory of built binaries.
pub const BIN_DIR_ENV: &str = "MESHWATCH_BIN_DIR";

/// The directory the binaries are looked up in: `MESHWATCH_BIN_DIR` when set, else the
/// directory of the build the running test executable belongs to.
pub fn dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            bail!("{BIN_DIR_ENV}={} is not a directory", dir.display());
        }
        return Ok(dir);
    }
    let exe = std::env::current_exe().context("cannot locate the test executable")?;
    build_dir_of(&exe)
        .with_context(|| format!("{} is not in a cargo target directory", exe.display()))
}

/// `<target>/<profile>` for an executable in `<target>/<profile>/deps` (a test) or in
/// `<target>/<profile>` itself (a binary or an example's parent).
fn build_dir_of(exe: &Path) -> Option<PathBuf> {
    let parent = exe.parent()?;
    if parent.file_name().is_some_and(|name| name == "deps") {
        parent.parent().map(Path::to_path_buf)
    } else {
        Some(parent.to_path_buf())
    }
}

/// The path of the workspace binary `name` (e.g. `meshwatch-ingest`); an error naming the
/// command that builds it when it is missing.
pub fn path(name: &str) -> anyhow::Result<PathBuf> {
    let dir = dir()?;
    let file = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !file.is_file() {
        let overridden = std::env::var_os(BIN_DIR_ENV).is_some_and(|d| !d.is_empty());
        bail!(missing(name, &file, overridden));
    }
    Ok(file)
}

/// The message for a binary that is not at `file`.
fn missing(name: &str, file: &Path, overridden: bool) -> String {
    let hint = if overridden {
        format!("build it into {BIN_DIR_ENV}, or unset {BIN_DIR_ENV}")
    } else {
        "run `cargo build --workspace --bins` first (`cargo test --workspace --all-targets` \
         builds them too), with the same profile and CARGO_TARGET_DIR as the tests"
            .to_owned()
    };
    format!("the binary {name} is not at {}: {hint}", file.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_executable_finds_the_binaries_of_its_build() {
        assert_eq!(
            build_dir_of(Path::new("/t/debug/deps/pipeline_e2e-0123abcd")),
            Some(PathBuf::from("/t/debug"))
        );
        assert_eq!(
            build_dir_of(Path::new("/t/release/meshwatch")),
            Some(PathBuf::from("/t/release"))
        );
    }

    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let message = missing(
            "meshwatch-ingest",
            Path::new("/t/debug/meshwatch-ingest"),
            false,
        );
        assert!(
            message.contains("cargo build --workspace --bins"),
            "{message}"
        );
        assert!(message.contains("/t/debug/meshwatch-ingest"), "{message}");
        let message = missing("meshwatch", Path::new("/opt/bin/meshwatch"), true);
        assert!(message.contains(BIN_DIR_ENV), "{message}");
    }

    #[test]
    fn a_binary_of_this_build_is_found_or_named_in_the_error() {
        match path("meshwatch-no-such-binary") {
            Ok(found) => panic!("found {}", found.display()),
            Err(error) => assert!(
                error.to_string().contains("meshwatch-no-such-binary"),
                "{error}"
            ),
        }
    }
}
