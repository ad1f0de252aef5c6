//! The `meshwatch-forecaster` binary's start-up: its own defaults, invalid configuration
//! (exit 2, every problem named), a missing ONNX Runtime (exit 1, saying how to get it).

use std::process::Command;

fn forecaster() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_meshwatch-forecaster"));
    command.env_remove("ORT_DYLIB_PATH");
    command
}

#[test]
fn check_config_prints_the_forecaster_defaults() -> anyhow::Result<()> {
    let out = forecaster().arg("--check-config").output()?;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout)?;
    for line in [
        "dir = \"models/forecaster\"",
        "listen = \"0.0.0.0:50052\"",
        "listen = \"0.0.0.0:9466\"",
        "consumer = \"forecaster\"",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    Ok(())
}

#[test]
fn invalid_configuration_exits_2_naming_every_problem() -> anyhow::Result<()> {
    let out = forecaster()
        .args([
            "--set",
            "batching.queue_capacity=0",
            "--set",
            "model.execution_provider=tpu",
        ])
        .output()?;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = String::from_utf8(out.stderr)?;
    assert!(text.contains("model.execution_provider"), "{text}");
    Ok(())
}

#[test]
fn a_missing_onnx_runtime_exits_1_saying_how_to_get_it() -> anyhow::Result<()> {
    let out = forecaster()
        .args([
            "--set",
            "stream.enabled=false",
            "--set",
            "grpc.listen=\"127.0.0.1:0\"",
            "--set",
            "admin.listen=\"127.0.0.1:0\"",
            "--set",
            "model.library=\"/nonexistent/libonnxruntime.so\"",
            "--set",
            &format!(
                "model.dir={:?}",
                meshwatch_testkit::models::artifact("forecaster")
                    .display()
                    .to_string()
            ),
        ])
        .output()?;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("/nonexistent/libonnxruntime.so"), "{text}");
    assert!(text.contains("scripts/install-ort.sh"), "{text}");
    Ok(())
}
