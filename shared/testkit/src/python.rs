//! The Python interpreter with the OpenTelemetry SDK and OTLP exporters (a real third-party
//! OTLP client, `tests/python/send_otlp.py`), and a runner for child processes with a timeout.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How to get the interpreter the tests look for.
const INSTALL_HINT: &str = "install it with `scripts/install-python-otel.sh` (it prints the \
     interpreter's path; `scripts/test.sh` exports it as MESHWATCH_PYTHON)";

/// The project's cache directory: `MESHWATCH_CACHE`, else `$HOME/.cache/meshwatch` (as
/// `scripts/lib.sh` has it).
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MESHWATCH_CACHE").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither MESHWATCH_CACHE nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache/meshwatch"))
}

/// The interpreter: `MESHWATCH_PYTHON`, else `venv/bin/python` in [`cache_dir`]; checked to
/// import the OpenTelemetry SDK and both OTLP trace exporters.
pub fn python() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("MESHWATCH_PYTHON").filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => cache_dir()?.join("venv/bin/python"),
    };
    if !path.is_file() {
        bail!(
            "no Python interpreter at {}; {INSTALL_HINT}",
            path.display()
        );
    }
    let check = run_with_timeout(
        Command::new(&path).args([
            "-c",
            "import opentelemetry.sdk.trace, \
             opentelemetry.exporter.otlp.proto.grpc.trace_exporter, \
             opentelemetry.exporter.otlp.proto.http.trace_exporter",
        ]),
        Duration::from_secs(60),
    )?;
    if !check.status.success() {
        bail!(
            "{} cannot import the OpenTelemetry SDK and OTLP exporters ({}); {INSTALL_HINT}",
            path.display(),
            check.stderr.trim()
        );
    }
    Ok(path)
}

/// What a finished child process left.
#[derive(Debug)]
pub struct CommandOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end with stdin closed and stdout/stderr captured; kills it and fails
/// when it runs longer than `timeout`. Blocking: call it from `spawn_blocking` in async tests.
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> anyhow::Result<CommandOutput> {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {shown}"))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = stderr.join().unwrap_or_default();
            bail!("{shown} did not finish within {timeout:?}; stderr: {err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(CommandOutput {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Runs one of the project's Python OTLP clients (`tests/python/send_*.py`) with `args` under
/// [`python`], and returns its JSON summary (the last line it prints); fails unless it exited 0
/// with `"ok": true`, showing its output.
pub async fn run_client(script: &Path, args: Vec<String>) -> anyhow::Result<serde_json::Value> {
    let python = python()?;
    let name = script.file_name().map_or_else(
        || script.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut command = Command::new(python);
    command.arg(script).args(args);
    let output = tokio::task::spawn_blocking(move || {
        run_with_timeout(&mut command, Duration::from_secs(90))
    })
    .await??;
    let last = output.stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(last).with_context(|| {
        format!(
            "{name} printed no JSON summary (exit {}); stdout: {}; stderr: {}",
            output.status, output.stdout, output.stderr
        )
    })?;
    anyhow::ensure!(
        output.status.success() && summary.get("ok") == Some(&serde_json::Value::Bool(true)),
        "{name} failed (exit {}): {}; stderr: {}",
        output.status,
        last,
        output.stderr
    );
    Ok(summary)
}
