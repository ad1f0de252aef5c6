//! Loading the ONNX Runtime library, once per process.
//!
//! `ort` is built with `load-dynamic`: the library is a file found at run time, never linked.
//! `ort::init()` without a library panics, so this module resolves the path itself (the
//! caller's configuration, else `ORT_DYLIB_PATH`), checks that the file exists, and only then
//! calls `ort::init_from`. No `ort` API (not even an `ort::Error`) is touched before that.
//!
//! ONNX Runtime is process-wide: the first successful load fixes the library and the
//! environment every later session uses. A later request for another library is an error; a
//! failed attempt (missing file, not a library, wrong version) leaves nothing behind, so a
//! corrected path can still load.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;

use crate::error::ModelError;

/// Environment variable naming the ONNX Runtime library (`scripts/install-ort.sh` prints it).
pub const ORT_DYLIB_PATH: &str = "ORT_DYLIB_PATH";

/// The library loaded in this process and the environment built on it.
struct Loaded {
    path: PathBuf,
    environment: Result<Environment, String>,
}

static RUNTIME: Mutex<Option<Loaded>> = Mutex::new(None);

/// Where the library comes from: `configured` if given, else `ORT_DYLIB_PATH`. The file must
/// exist. Does not load anything.
pub fn resolve_library(configured: Option<&Path>) -> Result<PathBuf, ModelError> {
    resolve(configured, std::env::var_os(ORT_DYLIB_PATH))
}

fn resolve(configured: Option<&Path>, env: Option<OsString>) -> Result<PathBuf, ModelError> {
    let (path, origin) = match (configured, env) {
        (Some(path), _) => (path.to_path_buf(), "the configuration"),
        (None, Some(value)) if !value.is_empty() => (PathBuf::from(value), ORT_DYLIB_PATH),
        (None, _) => return Err(ModelError::LibraryNotConfigured),
    };
    if !path.is_file() {
        return Err(ModelError::LibraryMissing { path, origin });
    }
    std::fs::canonicalize(&path).map_err(|e| ModelError::io(&path, e))
}

/// The library this process has loaded, if any.
pub fn loaded_library() -> Option<PathBuf> {
    lock().as_ref().map(|loaded| loaded.path.clone())
}

/// The process's ONNX Runtime environment, loading the library on first use (see
/// [`resolve_library`]). Without a configured path and without `ORT_DYLIB_PATH`, an already
/// loaded library is used.
pub fn environment(configured: Option<&Path>) -> Result<Environment, ModelError> {
    let mut state = lock();
    let requested = resolve_library(configured);
    if let Some(loaded) = state.as_ref() {
        match requested {
            Ok(path) if path != loaded.path => {
                return Err(ModelError::LibraryConflict {
                    loaded: loaded.path.clone(),
                    requested: path,
                });
            }
            Ok(_) | Err(ModelError::LibraryNotConfigured) => {}
            Err(error) => return Err(error),
        }
        return loaded
            .environment
            .clone()
            .map_err(|message| ModelError::Ort {
                context: "creating the environment",
                message,
            });
    }
    let path = requested?;
    let builder = ort::init_from(&path).map_err(|e| ModelError::LibraryLoad {
        path: path.clone(),
        message: e.to_string(),
    })?;
    // The library is loaded now and cannot be replaced: remember it even if the environment
    // fails, so that a later call reports the same failure instead of loading another one.
    let environment = builder
        .with_name("meshwatch")
        .with_telemetry(false)
        .build()
        .map_err(|e| e.to_string());
    match &environment {
        Ok(_) => tracing::info!(library = %path.display(), "onnx runtime loaded"),
        Err(error) => {
            tracing::error!(library = %path.display(), %error, "onnx runtime environment failed")
        }
    }
    let result = environment.clone().map_err(|message| ModelError::Ort {
        context: "creating the environment",
        message,
    });
    *state = Some(Loaded { path, environment });
    result
}

fn lock() -> std::sync::MutexGuard<'static, Option<Loaded>> {
    // The state is a plain value written once; a panic elsewhere cannot leave it half-written.
    RUNTIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_path_wins_over_the_environment() {
        let missing = Path::new("/nonexistent/configured.so");
        let error = resolve(Some(missing), Some("/nonexistent/env.so".into())).err();
        assert!(
            matches!(&error, Some(ModelError::LibraryMissing { path, origin: "the configuration" }) if path == missing),
            "{error:?}"
        );
    }

    #[test]
    fn the_environment_is_used_without_a_configured_path() {
        let error = resolve(None, Some("/nonexistent/env.so".into())).err();
        assert!(
            matches!(
                &error,
                Some(ModelError::LibraryMissing {
                    origin: ORT_DYLIB_PATH,
                    ..
                })
            ),
            "{error:?}"
        );
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("scripts/install-ort.sh"), "{message}");
    }

    #[test]
    fn nothing_configured_says_how_to_install() {
        for env in [None, Some(OsString::new())] {
            let error = resolve(None, env).err();
            assert!(
                matches!(error, Some(ModelError::LibraryNotConfigured)),
                "{error:?}"
            );
        }
        let message = ModelError::LibraryNotConfigured.to_string();
        assert!(message.contains("scripts/install-ort.sh") && message.contains(ORT_DYLIB_PATH));
    }

    #[test]
    fn an_existing_file_resolves_to_its_canonical_path() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("lib.so");
        std::fs::write(&file, b"")?;
        let resolved = resolve(Some(&dir.path().join(".").join("lib.so")), None);
        assert_eq!(resolved.ok(), Some(std::fs::canonicalize(&file)?));
        Ok(())
    }
}
