//! The committed model artifacts (`models/<name>`) and the ONNX Runtime library the tests of
//! `meshwatch-model` and `meshwatch model check` run them with.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// `models/<name>` at the repository root.
pub fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(name)
}

/// A copy of `models/<name>` (its files) in a temporary directory, for tampering with.
pub fn copy_artifact(name: &str) -> anyhow::Result<tempfile::TempDir> {
    let copy = tempfile::tempdir()?;
    let dir = artifact(name);
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), copy.path().join(entry.file_name()))?;
        }
    }
    Ok(copy)
}

/// The ONNX Runtime library from `ORT_DYLIB_PATH`; an error (never a skip) without it.
pub fn ort_library() -> anyhow::Result<PathBuf> {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => bail!(
            "ORT_DYLIB_PATH is not set: these tests need ONNX Runtime; run \
             `export ORT_DYLIB_PATH=\"$(scripts/install-ort.sh)\"` first"
        ),
    }
}
