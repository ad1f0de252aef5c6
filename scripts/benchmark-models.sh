#!/usr/bin/env bash
# The model benchmark of docs/models.md: the detector, its ablations and the baselines, the
# forecaster and its baselines, on Nezha Online Boutique (train on 2022-08-22, test on
# 2022-08-23), Nezha TrainTicket (2023-01-29: the first 14 faults for training, the last 14 for
# testing) and simulated Online Boutique (3 fault-free hours for training, 12 faults in the next 3).
# Writes docs/reports/<name>.json and .md (the detector, its ablations and the anomaly baselines)
# and docs/reports/<name>-forecast.json and .md (the forecasters). About an hour on 2 cores.
#
#   scripts/benchmark-models.sh [NEZHA_DIR] [NAME ...]   # NAME: nezha-onlineboutique,
#                                                        # nezha-trainticket, sim-onlineboutique
#
# Knobs: MESHWATCH_BENCH_SEEDS (default 2), MESHWATCH_BENCH_SET (extra section.key=value
# overrides, space-separated), MESHWATCH_REPORTS (default docs/reports).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NEZHA="${1:-$MESHWATCH_REPO_ROOT/../shared/data/nezha}"
shift || true
names=("$@")
((${#names[@]})) || names=(nezha-onlineboutique nezha-trainticket sim-onlineboutique)
REPORTS="${MESHWATCH_REPORTS:-$MESHWATCH_REPO_ROOT/docs/reports}"
SEEDS="${MESHWATCH_BENCH_SEEDS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MESHWATCH_CACHE/target}"

cargo build --release --locked -p meshwatch-cli
meshwatch="$CARGO_TARGET_DIR/release/meshwatch"
py="$("$MESHWATCH_SCRIPTS_DIR/install-training.sh")"
ensure_dir "$REPORTS"
work="$(mktemp -d "${TMPDIR:-/tmp}/meshwatch-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

read -r -a extra <<<"${MESHWATCH_BENCH_SET:-}"
sets=()
for s in "${extra[@]}"; do
    sets+=(--set "$s")
done
bench() {
    local name="$1"
    shift
    section "benchmark $name: detection"
    "$py" -m meshwatch_training benchmark --meshwatch "$meshwatch" --seeds "$SEEDS" \
        --methods detector,ablations,baselines --out "$REPORTS/$name.json" \
        --title "Meshwatch model benchmark: $name, anomaly detection" "$@" "${sets[@]}"
    section "benchmark $name: forecast"
    "$py" -m meshwatch_training benchmark --meshwatch "$meshwatch" --methods forecast \
        --out "$REPORTS/$name-forecast.json" \
        --title "Meshwatch model benchmark: $name, forecast" "$@" "${sets[@]}"
}

for name in "${names[@]}"; do
    case "$name" in
    nezha-onlineboutique)
        bench "$name" --format nezha --window 10s \
            --traces "$NEZHA/onlineboutique/2022-08-22" --traces "$NEZHA/onlineboutique/2022-08-23" \
            --train-range ..2022-08-23T00:00:00Z --test-range 2022-08-23T00:00:00Z..
        ;;
    nezha-trainticket)
        bench "$name" --format nezha --window 10s --traces "$NEZHA/trainticket/2023-01-29" \
            --train-range ..2023-01-29T10:18:00Z --test-range 2023-01-29T10:18:00Z..
        ;;
    sim-onlineboutique)
        "$meshwatch" simulate --topology onlineboutique --duration 6h --rate 10 --seed 11 \
            --faults "$MESHWATCH_REPO_ROOT/training/benchmarks/sim-onlineboutique.toml" \
            --format otlp-proto --out "$work/sim"
        bench "$name" --format otlp --window 60s --traces "$work/sim/traces.otlp.pb" \
            --metrics "$work/sim/metrics.otlp.pb" --labels "$work/sim/labels.jsonl" \
            --drop-traceless no --train-range ..2025-01-06T11:00:00Z \
            --test-range 2025-01-06T11:00:00Z..
        rm -rf "$work/sim"
        ;;
    *) die "unknown benchmark $name" ;;
    esac
done
log "reports in $REPORTS"
