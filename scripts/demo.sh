#!/usr/bin/env bash
# The README's first command: builds the `meshwatch` CLI and runs the ingest's graph code over
# bundled real traces (TrainTicket and Online Boutique minutes from the Nezha study, one of them
# during an injected CPU fault), printing a summary of the service graphs it finds.
#
#   scripts/demo.sh
#
# Needs only a Rust toolchain (rust-toolchain.toml pins it). The build goes to
# $CARGO_TARGET_DIR (default $MESHWATCH_CACHE/target, outside the clone); the snapshots, one
# JSON object per graph and window (docs/snapshot-json.md), to $MESHWATCH_CACHE/demo/.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$MESHWATCH_REPO_ROOT"
have cargo || die "cargo not found; install Rust with rustup (the toolchain is pinned in rust-toolchain.toml)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MESHWATCH_CACHE/target}"

section "build meshwatch (release; the first build takes a few minutes)"
cargo build --release --locked -p meshwatch-cli
meshwatch="$CARGO_TARGET_DIR/release/meshwatch"

out="$MESHWATCH_CACHE/demo"
ensure_dir "$out"
for sample in \
    trainticket-2023-01-29-0850-faultfree \
    onlineboutique-2022-08-22-0353 \
    onlineboutique-2022-08-22-0354-frontend-cpu-contention; do
    section "meshwatch snapshot: $sample"
    "$meshwatch" snapshot \
        --input "tests/fixtures/nezha/$sample.otlp.jsonl" \
        --window 60s \
        --output "$out/$sample.snapshots.jsonl" \
        --summary
done

section "done"
log "snapshots: $out/*.snapshots.jsonl (one JSON object per graph and 60-s window; docs/snapshot-json.md)"
log "compare the two Online Boutique minutes: frontend's latency under the injected CPU fault, e.g."
log "  jq -c '.nodes[] | select(.service==\"frontend\") | {requests, latency_ms}' $out/onlineboutique-*.snapshots.jsonl"
