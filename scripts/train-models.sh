#!/usr/bin/env bash
# Train the shipped models, models/detector and models/forecaster, from the public Nezha data
# (FSE 2023, MIT licence): both Online Boutique days and the TrainTicket day, imported and encoded
# by the Rust CLI (the feature code the services run), 10 s windows. No fault label is used in
# training. docs/models.md says what the models are and how they were evaluated.
#
#   scripts/train-models.sh [NEZHA_DIR]        # default: ../shared/data/nezha beside the repo
#
# Knobs: MESHWATCH_MODELS_OUT (default: models/ of the repo), MESHWATCH_TRAIN_SET (extra
# `section.key=value` overrides for both models, space-separated), MESHWATCH_TRAIN_MODELS (which
# to train, default "detector forecaster").
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NEZHA="${1:-$MESHWATCH_REPO_ROOT/../shared/data/nezha}"
OUT="${MESHWATCH_MODELS_OUT:-$MESHWATCH_REPO_ROOT/models}"
[[ -d "$NEZHA/onlineboutique" && -d "$NEZHA/trainticket" ]] ||
    die "$NEZHA is not the Nezha data set (expected onlineboutique/ and trainticket/ in it)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MESHWATCH_CACHE/target}"

section "build meshwatch (release)"
cargo build --release --locked -p meshwatch-cli
meshwatch="$CARGO_TARGET_DIR/release/meshwatch"
py="$("$MESHWATCH_SCRIPTS_DIR/install-training.sh")"

work="$(mktemp -d "${TMPDIR:-/tmp}/meshwatch-train.XXXXXX")"
trap 'rm -rf "$work"' EXIT

section "import and encode"
days=(onlineboutique/2022-08-22 onlineboutique/2022-08-23 trainticket/2023-01-29)
build=(dataset build --format otlp-proto --metrics-format otlp-proto --window 10s --steps 17
    --labels "$work/labels.jsonl" --out "$work/dataset")
: >"$work/labels.jsonl"
for day in "${days[@]}"; do
    dir="$work/import/${day//\//_}"
    "$meshwatch" dataset import nezha "$NEZHA/$day" --out "$dir" --format otlp-proto
    cat "$dir/labels.jsonl" >>"$work/labels.jsonl"
    build+=(--traces "$dir/traces.otlp.pb" --metrics "$dir/metrics.otlp.pb")
done
"$meshwatch" "${build[@]}"

read -r -a extra <<<"${MESHWATCH_TRAIN_SET:-}"
sets=(--set "data.source=\"Nezha (FSE 2023, MIT): ${days[*]}, imported and encoded by scripts/train-models.sh (10 s windows)\"")
for s in "${extra[@]}"; do
    sets+=(--set "$s")
done
read -r -a kinds <<<"${MESHWATCH_TRAIN_MODELS:-detector forecaster}"
for kind in "${kinds[@]}"; do
    [[ "$kind" == detector || "$kind" == forecaster ]] || die "unknown model $kind"
    section "train and export the $kind"
    rm -rf "${OUT:?}/$kind.new"
    "$py" -m meshwatch_training train --config "$MESHWATCH_REPO_ROOT/training/configs/$kind.toml" \
        --dataset "$work/dataset" --out "$OUT/$kind.new" "${sets[@]}"
    rm -rf "${OUT:?}/$kind"
    mv "$OUT/$kind.new" "$OUT/$kind"
done
log "models written to $OUT (${kinds[*]})"
