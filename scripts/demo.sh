#!/usr/bin/env bash
# The README's first command: the whole pipeline in one process on the embedded default.
# Fetches ONNX Runtime (PyPI wheel, into the cache), builds the `meshwatch` CLI, and runs
# `meshwatch demo`: the all-in-one (ingest, detector, forecaster, aggregator; in-process bus,
# SQLite) driven by the fault-injection simulator — 45 simulated minutes of Online Boutique,
# four faults from minute 20 — then a report of the incidents found beside the faults, the
# root-cause ranks, the forecast error, and where the results are.
#
#   scripts/demo.sh                     # the default demo (well under a minute after the build)
#   scripts/demo.sh --duration 30m --faults 'latency:service=cartservice,factor=10,start=20m,duration=4m'
#
# Arguments go to `meshwatch demo` (`meshwatch demo --help`; docs/all-in-one.md). Needs only a
# Rust toolchain (rust-toolchain.toml pins it) and Python 3 with pip (for the ONNX Runtime
# wheel). The build goes to $CARGO_TARGET_DIR (default $MESHWATCH_CACHE/target, outside the
# clone); the results to $MESHWATCH_CACHE/demo/ (meshwatch.db, labels.jsonl, report.json).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$MESHWATCH_REPO_ROOT"
have cargo || die "cargo not found; install Rust with rustup (the toolchain is pinned in rust-toolchain.toml)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MESHWATCH_CACHE/target}"

section "ONNX Runtime"
ORT_DYLIB_PATH="$("$MESHWATCH_SCRIPTS_DIR/install-ort.sh")"
export ORT_DYLIB_PATH

section "build meshwatch (release; the first build takes a few minutes)"
cargo build --release --locked -p meshwatch-cli

section "meshwatch demo"
out=(--out "$MESHWATCH_CACHE/demo")
for arg in "$@"; do
    [[ "$arg" == --out || "$arg" == --out=* ]] && out=()
done
exec "$CARGO_TARGET_DIR/release/meshwatch" demo "${out[@]}" "$@"
