#!/usr/bin/env bash
# End-to-end delay of the production topology on this machine (issue 6's benchmark): the four
# services as separate processes (scripts/topology.sh) on a real NATS and ClickHouse, fed in real
# time (`meshwatch simulate --speed 1`) with one fault, then measured in ClickHouse from the
# rows' `inserted_at` (the server's clock when the row arrived; same machine, same clock):
#
#   - window end → score row, → forecast row, → incident row (median, p99): at speed 1 a
#     window's last span arrives at its end, so this is the delay the pipeline adds after the
#     last span of a window (closing at end + allowed lateness, publish, both models, the
#     aggregator's batch, the insert);
#   - fault start → first incident row: what an SRE waits for, from the first faulty span.
#
# A span arriving at the start of a window waits one window (10 s) more than the last one.
#
#   scripts/bench-pipeline.sh            # 6 simulated minutes, a fault from minute 4 (~7 minutes)
#
# Needs what scripts/topology.sh needs (it builds the release binaries). Leaves nothing running
# that it started. Results: docs/benchmarks.md ("Pipeline (issue 6)").
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION="${MESHWATCH_BENCH_DURATION:-6m}"
FAULT="${MESHWATCH_BENCH_FAULT:-errors:service=paymentservice,rate=0.5,start=4m,duration=90s}"
CULPRIT="$(sed -n 's/^[a-z_]*:service=\([^,]*\).*/\1/p' <<<"$FAULT")"
DATABASE="${MESHWATCH_DATABASE:-meshwatch_bench_$(date +%s)}"
export MESHWATCH_DATABASE="$DATABASE"
STARTED=0

cleanup() {
    local rc=$?
    if ((STARTED)); then
        "$MESHWATCH_SCRIPTS_DIR/topology.sh" stop >&2 || warn "topology stop failed"
    fi
    exit "$rc"
}

query() {
    curl -fsS "$CLICKHOUSE_URL/?database=$DATABASE" --data-binary "$1"
}

main() {
    cd "$MESHWATCH_REPO_ROOT"
    have curl || die "curl is needed"
    trap cleanup EXIT
    section "start the topology (database $DATABASE)"
    "$MESHWATCH_SCRIPTS_DIR/topology.sh" status >/dev/null 2>&1 &&
        die "a topology is already running; stop it first (scripts/topology.sh stop)"
    STARTED=1
    "$MESHWATCH_SCRIPTS_DIR/topology.sh" start >&2
    local env="$MESHWATCH_RUN/topology/topology.env"
    CLICKHOUSE_URL="$(sed -n 's/^CLICKHOUSE_URL=//p' "$env")"
    [[ -n "$CLICKHOUSE_URL" ]] || die "no CLICKHOUSE_URL in $env"
    local bin="${MESHWATCH_BIN_DIR:-${CARGO_TARGET_DIR:-$MESHWATCH_CACHE/target}/release}"
    # Every version of an incident is a row; merges would keep only the newest, and with it
    # the time its first version arrived would be lost.
    query "SYSTEM STOP MERGES $DATABASE.incidents" >/dev/null

    section "simulate $DURATION in real time with $FAULT"
    local labels
    labels="$(mktemp)"
    "$bin/meshwatch" simulate --topology onlineboutique --duration "$DURATION" --speed 1 \
        --seed 3 --metrics-interval 10s --daily-amplitude 0 --faults "$FAULT" \
        --endpoint "http://127.0.0.1:${MESHWATCH_INGEST_GRPC_PORT:-4317}" --labels "$labels" >&2
    log "waiting 30 s for the last windows (lateness, idle flush) to be stored"
    sleep 30

    local fault_start fault_end
    fault_start="$(sed -n 's/.*"start_ms":\([0-9]*\).*/\1/p' "$labels" | head -n 1)"
    fault_end="$(sed -n 's/.*"end_ms":\([0-9]*\).*/\1/p' "$labels" | head -n 1)"
    rm -f "$labels"
    [[ -n "$fault_start" && -n "$fault_end" ]] || die "the simulator wrote no fault label"

    section "results"
    local delay="toUnixTimestamp64Milli(inserted_at) - (toUnixTimestamp64Milli(window_start) + window_ms)"
    printf '| path | rows | median ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|\n'
    query "SELECT 'window end → score row', count(), round(quantile(0.5)($delay)), round(quantile(0.99)($delay)), max($delay) FROM anomaly_scores FORMAT TSV" |
        awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}'
    query "SELECT 'window end → forecast row', count(), round(quantile(0.5)(d)), round(quantile(0.99)(d)), max(d) FROM (SELECT toUnixTimestamp64Milli(inserted_at) - (toUnixTimestamp64Milli(issued_at) + 10000) AS d FROM forecasts) FORMAT TSV" |
        awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}'
    query "SELECT 'window end → incident row', count(), round(quantile(0.5)(d)), round(quantile(0.99)(d)), max(d) FROM (SELECT toUnixTimestamp64Milli(inserted_at) - (toUnixTimestamp64Milli(updated_at) + 10000) AS d FROM incidents WHERE kind = 'detected') FORMAT TSV" |
        awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}'
    query "SELECT 'fault start → the incident over it, first row', count(), min(toUnixTimestamp64Milli(inserted_at)) - $fault_start, '', '' FROM incidents WHERE kind = 'detected' AND toUnixTimestamp64Milli(opened_at) >= $fault_start - 10000 AND toUnixTimestamp64Milli(opened_at) <= $fault_end FORMAT TSV" |
        awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}'
    query "SELECT 'fault start → the culprit flagged (score row)', count(), min(toUnixTimestamp64Milli(inserted_at)) - $fault_start, '', '' FROM anomaly_scores WHERE is_anomaly AND service = '$CULPRIT' AND toUnixTimestamp64Milli(window_start) >= $fault_start - 10000 AND toUnixTimestamp64Milli(window_start) <= $fault_end FORMAT TSV" |
        awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}'
    query "SELECT 'fault windows flagged', countIf(is_anomaly), count(), '', '' FROM anomaly_scores FINAL WHERE service = '$CULPRIT' AND toUnixTimestamp64Milli(window_start) + window_ms > $fault_start AND toUnixTimestamp64Milli(window_start) < $fault_end FORMAT TSV" |
        awk -F'\t' '{printf "| %s | %s of %s | | | |\n", $1, $2, $3}'
    printf '\nincidents (FINAL):\n'
    query "SELECT opened_at, resolved_at, status, services, root_causes.service AS causes FROM incidents FINAL WHERE kind = 'detected' ORDER BY opened_at FORMAT PrettyCompactMonoBlock"
}

main "$@"
