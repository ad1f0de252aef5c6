#!/usr/bin/env bash
# The project's test command: installs the local services the tests need into the cache, starts
# them, and runs every check. Exits non-zero when any step fails.
#
#   scripts/test.sh
#
# Steps: install (nats-server, ClickHouse (chdb), OpenTelemetry Python SDK, ONNX Runtime, training
# venv) -> start NATS and ClickHouse -> cargo fmt --check ->
# cargo clippy -D warnings -> self-test of tests/python/send_otlp.py (against an in-process OTLP
# receiver) -> tests (cargo nextest when installed, else cargo test) -> doc tests -> training
# package (training/: ruff + pytest, in $MESHWATCH_CACHE/venv-training, against the CLI binary the
# test step built).
# All steps run even after a failure, so one run shows every problem; MESHWATCH_FAIL_FAST=1 stops
# at the first failing step.
#
# Exported to the cargo commands (tests read these):
#   NATS_URL            nats://127.0.0.1:<port> of a JetStream-enabled server started for this run
#   NATS_MONITOR_URL    its HTTP monitoring endpoint
#   CLICKHOUSE_URL      http://127.0.0.1:<port> of a ClickHouse 26.9 started for this run
#                       (scripts/clickhouse.sh)
#   MESHWATCH_PYTHON    $MESHWATCH_CACHE/venv/bin/python, with the OpenTelemetry SDK + OTLP exporters
#   MESHWATCH_TRAINING_PYTHON  $MESHWATCH_CACHE/venv-training/bin/python (Debian's torch 1.13,
#                       scripts/install-training.sh)
#   MESHWATCH_BIN       $CARGO_TARGET_DIR/debug/meshwatch, for the training tests only
#   MESHWATCH_CACHE     the cache directory (default $HOME/.cache/meshwatch)
#   CARGO_TARGET_DIR    default $MESHWATCH_CACHE/target (outside the clone)
#   RUST_BACKTRACE      1 unless already set
#
# A NATS or ClickHouse server this script starts is stopped when it exits; one that was already
# running (from `scripts/nats.sh start`, `scripts/clickhouse.sh start`) is reused and left running.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$MESHWATCH_REPO_ROOT"

FAILED_STEPS=()
STEP_REPORT=()
STARTED_NATS=0
STARTED_CLICKHOUSE=0

cleanup() {
    local rc=$?
    if ((STARTED_NATS)); then
        "$MESHWATCH_SCRIPTS_DIR/nats.sh" stop || warn "could not stop NATS"
    fi
    if ((STARTED_CLICKHOUSE)); then
        "$MESHWATCH_SCRIPTS_DIR/clickhouse.sh" stop || warn "could not stop ClickHouse"
    fi
    exit "$rc"
}

# step NAME CMD...: run one check under a header; record its result and duration.
step() {
    local name="$1"
    shift
    section "$name: $*"
    local start=$SECONDS rc=0
    "$@" || rc=$?
    local took=$((SECONDS - start))
    if ((rc == 0)); then
        STEP_REPORT+=("ok      ${took}s  $name")
    else
        STEP_REPORT+=("FAILED  ${took}s  $name (exit $rc)")
        FAILED_STEPS+=("$name")
        if [[ "${MESHWATCH_FAIL_FAST:-0}" == 1 ]]; then
            summary
            exit 1
        fi
    fi
}

# training_checks: lint and test the Python training package with the CLI the tests step built.
training_checks() {
    local py="$MESHWATCH_TRAINING_PYTHON"
    (
        cd "$MESHWATCH_REPO_ROOT/training"
        "$py" -m ruff check --no-cache .
        "$py" -m ruff format --no-cache --check .
        MESHWATCH_BIN="$CARGO_TARGET_DIR/debug/meshwatch" "$py" -m pytest -q -p no:cacheprovider
    )
}

summary() {
    section "summary"
    local line
    for line in "${STEP_REPORT[@]}"; do
        printf '  %s\n' "$line" >&2
    done
}

main() {
    have cargo || die "cargo not found; install Rust with rustup (the toolchain is pinned in rust-toolchain.toml)"

    section "environment"
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MESHWATCH_CACHE/target}"
    export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
    log "repo            $MESHWATCH_REPO_ROOT"
    log "cache           $MESHWATCH_CACHE"
    log "target dir      $CARGO_TARGET_DIR"
    log "toolchain       $(rustc --version 2>&1) / $(cargo --version 2>&1)"

    section "install local services"
    "$MESHWATCH_SCRIPTS_DIR/install-nats.sh" >/dev/null
    "$MESHWATCH_SCRIPTS_DIR/install-clickhouse.sh" >/dev/null
    MESHWATCH_PYTHON="$("$MESHWATCH_SCRIPTS_DIR/install-python-otel.sh")"
    export MESHWATCH_PYTHON
    log "MESHWATCH_PYTHON=$MESHWATCH_PYTHON"
    # ONNX Runtime for the Rust side (shared/model, `meshwatch model check`): its tests fail without it.
    ORT_DYLIB_PATH="$("$MESHWATCH_SCRIPTS_DIR/install-ort.sh")"
    export ORT_DYLIB_PATH
    log "ORT_DYLIB_PATH=$ORT_DYLIB_PATH"
    MESHWATCH_TRAINING_PYTHON="$("$MESHWATCH_SCRIPTS_DIR/install-training.sh")"
    export MESHWATCH_TRAINING_PYTHON
    log "MESHWATCH_TRAINING_PYTHON=$MESHWATCH_TRAINING_PYTHON"

    section "start NATS"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if "$MESHWATCH_SCRIPTS_DIR/nats.sh" status >/dev/null 2>&1; then
        log "a NATS server is already running; reusing it and leaving it running"
    else
        STARTED_NATS=1
    fi
    "$MESHWATCH_SCRIPTS_DIR/nats.sh" start >/dev/null
    # shellcheck disable=SC1091 # written at run time by nats.sh
    set -a && source "$MESHWATCH_RUN/nats.env" && set +a
    export NATS_URL NATS_MONITOR_URL
    log "NATS_URL=$NATS_URL"

    section "start ClickHouse"
    if "$MESHWATCH_SCRIPTS_DIR/clickhouse.sh" status >/dev/null 2>&1; then
        log "a ClickHouse server is already running; reusing it and leaving it running"
    else
        STARTED_CLICKHOUSE=1
    fi
    "$MESHWATCH_SCRIPTS_DIR/clickhouse.sh" start >/dev/null
    # shellcheck disable=SC1091 # written at run time by clickhouse.sh
    set -a && source "$MESHWATCH_RUN/clickhouse.env" && set +a
    export CLICKHOUSE_URL
    log "CLICKHOUSE_URL=$CLICKHOUSE_URL"

    step "rustfmt" cargo fmt --all -- --check
    step "clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
    step "python OTLP client self-test" "$MESHWATCH_PYTHON" -m unittest discover -s tests/python -t tests/python
    if cargo nextest --version >/dev/null 2>&1; then
        log "test runner: cargo-nextest ($(cargo nextest --version 2>/dev/null | head -n 1))"
        step "tests (nextest)" cargo nextest run --workspace --locked --no-fail-fast
    else
        log "test runner: cargo test (cargo-nextest is not installed)"
        # --all-targets runs everything but doc tests, which the next step runs, as with nextest.
        step "tests (cargo test)" cargo test --workspace --all-targets --locked --no-fail-fast
    fi
    step "doc tests" cargo test --workspace --doc --locked
    # After the tests step: it built $CARGO_TARGET_DIR/debug/meshwatch, which the training tests run.
    step "training (ruff + pytest)" training_checks
    # After the tests step too: the chart's config files are read by the debug binaries.
    step "deploy (chart, kustomize, Dockerfile, dashboards)" "$MESHWATCH_SCRIPTS_DIR/test-deploy.sh"

    summary
    if ((${#FAILED_STEPS[@]} > 0)); then
        printf '\n[meshwatch] FAILED: %s\n' "${FAILED_STEPS[*]}" >&2
        exit 1
    fi
    printf '\n[meshwatch] all checks passed\n' >&2
}

main "$@"
