//! The PyTorch eager column: `python -m meshwatch_training latency` on the same inputs, in a
//! child process (`training/meshwatch_training/latency.py`).
//!
//! The interpreter: `--python`, else the first of `MESHWATCH_TRAINING_PYTHON`,
//! `MESHWATCH_PYTHON` and `$MESHWATCH_CACHE/venv-training/bin/python` (cache default
//! `~/.cache/meshwatch`) that exists and imports `torch` and `meshwatch_training`. The training
//! package is found as `training/` in an ancestor of the model directory or of the working
//! directory and put first on `PYTHONPATH` (an interpreter that has it installed needs none).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// An interpreter that imports torch and the training package.
#[derive(Debug, Clone)]
pub struct Torch {
    pub python: PathBuf,
    /// `PYTHONPATH` for the child: the training package first.
    pythonpath: Option<OsString>,
    /// `torch.__version__`.
    pub version: String,
}

/// What `latency` printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorchTiming {
    pub p50_ms: f64,
    pub p99_ms: f64,
    #[serde(default)]
    pub mean_ms: f64,
    pub runs: usize,
    /// On a GPU: the model alone with its inputs already on the device (the times above include
    /// moving the inputs there and the outputs back, as the service does). None on the CPU.
    #[serde(default)]
    pub resident_p50_ms: Option<f64>,
    #[serde(default)]
    pub resident_p99_ms: Option<f64>,
    /// `onnx` (the artifact's weights) or `random` (seeded; latency does not depend on them).
    pub weights: String,
    #[serde(default)]
    pub weights_note: String,
    pub torch: String,
    pub device: String,
}

/// How many runs each side makes after its warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// Exactly this many.
    Count(usize),
    /// Until this much time has passed (at least 3 runs).
    MinTime(Duration),
}

/// `training/` (the directory holding `meshwatch_training/`) in an ancestor of `start`.
fn training_dir_above(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join("training"))
        .find(|dir| dir.join("meshwatch_training/__init__.py").is_file())
}

/// The interpreters to try, in order, with where each came from.
fn candidates(explicit: Option<&Path>) -> Vec<(PathBuf, String)> {
    if let Some(path) = explicit {
        return vec![(path.to_path_buf(), "--python".to_owned())];
    }
    let mut out = Vec::new();
    for var in ["MESHWATCH_TRAINING_PYTHON", "MESHWATCH_PYTHON"] {
        if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            out.push((PathBuf::from(path), var.to_owned()));
        }
    }
    if let Some(cache) = crate::cache_dir() {
        out.push((
            cache.join("venv-training/bin/python"),
            "the training venv".to_owned(),
        ));
    }
    out
}

/// The first usable interpreter (module docs), or why there is none: one reason per candidate.
pub fn find(explicit: Option<&Path>, model_dir: &Path) -> Result<Torch, String> {
    let mut search = vec![
        model_dir
            .canonicalize()
            .unwrap_or_else(|_| model_dir.to_path_buf()),
    ];
    if let Ok(cwd) = std::env::current_dir() {
        search.push(cwd);
    }
    let training = search.iter().find_map(|dir| training_dir_above(dir));
    let pythonpath = training.map(|dir| {
        let rest = std::env::var_os("PYTHONPATH").unwrap_or_default();
        let paths = std::iter::once(dir).chain(std::env::split_paths(&rest));
        std::env::join_paths(paths).unwrap_or_default()
    });
    let mut reasons = Vec::new();
    let candidates = candidates(explicit);
    if candidates.is_empty() {
        return Err("no interpreter to try (--python, MESHWATCH_TRAINING_PYTHON, HOME)".to_owned());
    }
    for (python, origin) in candidates {
        if !python.is_file() {
            reasons.push(format!("{} ({origin}) does not exist", python.display()));
            continue;
        }
        let mut probe = Command::new(&python);
        probe.args([
            "-c",
            "import torch, meshwatch_training.latency; print(torch.__version__)",
        ]);
        if let Some(path) = &pythonpath {
            probe.env("PYTHONPATH", path);
        }
        match probe.output() {
            Ok(out) if out.status.success() => {
                return Ok(Torch {
                    python,
                    pythonpath,
                    version: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
                });
            }
            Ok(out) => reasons.push(format!(
                "{} ({origin}): {}",
                python.display(),
                last_line(&out.stderr)
            )),
            Err(error) => reasons.push(format!("{} ({origin}): {error}", python.display())),
        }
    }
    Err(reasons.join("; "))
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_owned()
}

impl Torch {
    /// Runs `latency` on `inputs` (an `.npz`) with the artifact in `model_dir`.
    pub fn latency(
        &self,
        model_dir: &Path,
        inputs: &Path,
        threads: usize,
        warmup: usize,
        runs: Runs,
        device: &str,
    ) -> anyhow::Result<TorchTiming> {
        let mut command = Command::new(&self.python);
        command
            .args(["-m", "meshwatch_training", "latency", "--artifact"])
            .arg(model_dir)
            .arg("--inputs")
            .arg(inputs)
            .args(["--threads", &threads.to_string()])
            .args(["--warmup", &warmup.to_string()])
            .args(["--device", device]);
        match runs {
            Runs::Count(n) => command.args(["--iterations", &n.to_string()]),
            Runs::MinTime(t) => command.args(["--min-time", &t.as_secs_f64().to_string()]),
        };
        if let Some(path) = &self.pythonpath {
            command.env("PYTHONPATH", path);
        }
        let out = command
            .output()
            .with_context(|| format!("cannot run {}", self.python.display()))?;
        if !out.status.success() {
            bail!(
                "python -m meshwatch_training latency failed ({}): {}",
                out.status,
                last_line(&out.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .context("python -m meshwatch_training latency printed no JSON line")?;
        serde_json::from_str(line)
            .with_context(|| format!("unexpected output of meshwatch_training latency: {line}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interpreter_is_a_reason_not_a_failure() {
        let result = find(
            Some(Path::new("/nonexistent/python")),
            Path::new("/nonexistent/models/detector"),
        );
        let reason = result.map(|t| t.python).expect_err("no such interpreter");
        assert!(
            reason.contains("/nonexistent/python (--python) does not exist"),
            "{reason}"
        );
    }

    #[test]
    fn the_training_package_is_found_above_the_model_directory() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/detector");
        let found = training_dir_above(&models.canonicalize().unwrap_or(models));
        assert!(
            found.is_some_and(|d| d.join("meshwatch_training/latency.py").is_file()),
            "training/ not found"
        );
    }

    #[test]
    fn the_json_line_parses() -> anyhow::Result<()> {
        let line = r#"{"p50_ms": 5.1, "p99_ms": 7.0, "mean_ms": 5.2, "runs": 20, "weights": "onnx", "weights_note": "x", "torch": "1.13.0a0", "device": "cpu", "threads": 1}"#;
        let timing: TorchTiming = serde_json::from_str(line)?;
        assert_eq!(timing.runs, 20);
        assert_eq!(timing.weights, "onnx");
        Ok(())
    }
}
