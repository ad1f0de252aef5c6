//! `meshwatch model check` run as a user runs it (`CARGO_BIN_EXE_meshwatch`) on the committed
//! artifact `models/detector` and on tampered copies.
//!
//! Needs the ONNX Runtime library: `export ORT_DYLIB_PATH="$(scripts/install-ort.sh)"`; without
//! it the tests fail (they never skip).

use std::process::{Command, Output};

use anyhow::{Context, Result, ensure};
use meshwatch_testkit::models::{artifact, copy_artifact, ort_library};

fn meshwatch(args: &[&std::ffi::OsStr]) -> Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_meshwatch"))
        .args(args)
        .output()
        .context("running meshwatch")
}

#[test]
fn the_committed_detector_passes() -> Result<()> {
    let library = ort_library()?;
    let dir = artifact("detector");
    let output = meshwatch(&["model".as_ref(), "check".as_ref(), dir.as_os_str()])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "exit {}: {stdout}{stderr}",
        output.status
    );
    ensure!(stdout.contains("detector \"detector\""), "{stdout}");
    ensure!(
        stdout.contains("output anomaly_score: max abs error"),
        "{stdout}"
    );
    ensure!(
        stdout.contains("output feature_contribution: max abs error"),
        "{stdout}"
    );
    ensure!(!stdout.contains("FAIL"), "{stdout}");
    ensure!(
        stdout.lines().last().is_some_and(|l| l.starts_with("ok: ")),
        "{stdout}"
    );

    // the same with the library given as a flag instead of the environment
    let output = Command::new(env!("CARGO_BIN_EXE_meshwatch"))
        .args(["model".as_ref(), "check".as_ref(), dir.as_os_str()])
        .arg("--ort-library")
        .arg(&library)
        .env_remove("ORT_DYLIB_PATH")
        .output()?;
    ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[test]
fn a_tampered_parity_output_fails_with_the_worst_element() -> Result<()> {
    ort_library()?;
    let copy = copy_artifact("detector")?;
    let path = copy.path().join("parity.json");
    let mut parity: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let value = &mut parity["cases"][0]["outputs"]["anomaly_score"]["data"][0];
    *value = (value.as_f64().context("a number")? + 0.5).into();
    std::fs::write(&path, serde_json::to_string(&parity)?)?;

    let output = meshwatch(&["model".as_ref(), "check".as_ref(), copy.path().as_os_str()])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.code() == Some(1),
        "exit {}: {stdout}{stderr}",
        output.status
    );
    ensure!(stdout.contains("FAIL case"), "{stdout}");
    ensure!(stdout.contains("output anomaly_score"), "{stdout}");
    ensure!(stderr.contains("parity mismatch"), "{stderr}");
    ensure!(stderr.contains("1 element(s) beyond tolerance"), "{stderr}");
    Ok(())
}

#[test]
fn a_tampered_manifest_is_refused() -> Result<()> {
    ort_library()?;
    let copy = copy_artifact("detector")?;
    let path = copy.path().join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    manifest["sha256"] = "f".repeat(64).into();
    manifest["edge_features"][0] = "calls_per_minute".into();
    std::fs::write(&path, serde_json::to_string(&manifest)?)?;

    let output = meshwatch(&["model".as_ref(), "check".as_ref(), copy.path().as_os_str()])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.code() == Some(1),
        "exit {}: {stderr}",
        output.status
    );
    ensure!(stderr.contains("does not match this build"), "{stderr}");
    ensure!(stderr.contains("\"calls_per_minute\""), "{stderr}");
    Ok(())
}

#[test]
fn without_a_library_the_error_says_how_to_install_one() -> Result<()> {
    let dir = artifact("detector");
    let output = Command::new(env!("CARGO_BIN_EXE_meshwatch"))
        .args(["model".as_ref(), "check".as_ref(), dir.as_os_str()])
        .env_remove("ORT_DYLIB_PATH")
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.code() == Some(1),
        "exit {}: {stderr}",
        output.status
    );
    ensure!(
        stderr.contains("no onnx runtime library configured"),
        "{stderr}"
    );
    ensure!(stderr.contains("scripts/install-ort.sh"), "{stderr}");
    ensure!(!stderr.contains("panicked"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_meshwatch"))
        .args(["model".as_ref(), "check".as_ref(), dir.as_os_str()])
        .args(["--ort-library", "/nonexistent/libonnxruntime.so"])
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.code() == Some(1),
        "exit {}: {stderr}",
        output.status
    );
    ensure!(
        stderr.contains("/nonexistent/libonnxruntime.so"),
        "{stderr}"
    );
    ensure!(stderr.contains("does not exist"), "{stderr}");
    Ok(())
}
