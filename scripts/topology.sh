#!/usr/bin/env bash
# Start, stop or query the whole Meshwatch pipeline on this machine, as in production: a real NATS
# with JetStream, a real ClickHouse 26.9, and the four services as separate processes on loopback.
#
#   scripts/topology.sh start            build (release), start NATS + ClickHouse if needed, migrate,
#                                        then aggregator, forecaster, detector, ingest (each ready
#                                        before the next: traffic is taken only once all are up)
#   scripts/topology.sh stop             SIGTERM in pipeline order (ingest, detector, forecaster,
#                                        aggregator), each drained before the next stops; then NATS
#                                        and ClickHouse if this script started them
#   scripts/topology.sh status           each process, its pid and readiness (exit 1 unless all ready)
#   scripts/topology.sh logs [SERVICE]   the last lines of every log (or one: ingest, detector,
#                                        forecaster, aggregator, nats, clickhouse)
#
# State lives in $MESHWATCH_CACHE/run/topology/: topology.env (URLs, ports, what was started),
# <service>.pid and <service>.log. See docs/topology.md.
#
# Environment (defaults in brackets):
#   MESHWATCH_BIN_DIR                  use the binaries there instead of building
#                                      ($CARGO_TARGET_DIR/release after `cargo build --release`)
#   CARGO_TARGET_DIR                   [$MESHWATCH_CACHE/target]
#   ORT_DYLIB_PATH                     ONNX Runtime library [scripts/install-ort.sh installs one]
#   MESHWATCH_INGEST_GRPC_PORT         [4317]  OTLP/gRPC
#   MESHWATCH_INGEST_HTTP_PORT         [4318]  OTLP/HTTP
#   MESHWATCH_INGEST_ADMIN_PORT        [9464]
#   MESHWATCH_DETECTOR_GRPC_PORT       [50051]
#   MESHWATCH_DETECTOR_ADMIN_PORT      [9465]
#   MESHWATCH_FORECASTER_GRPC_PORT     [50052]
#   MESHWATCH_FORECASTER_ADMIN_PORT    [9466]
#   MESHWATCH_AGGREGATOR_ADMIN_PORT    [9467]
#   MESHWATCH_GRAPH_WINDOW             [10s]   the ingest's window (the shipped models: 10 s)
#   MESHWATCH_DATABASE                 [meshwatch]  ClickHouse database
#   MESHWATCH_NAMESPACE                [none]  NATS subject and stream prefix
#   MESHWATCH_INGEST_SET, MESHWATCH_DETECTOR_SET, MESHWATCH_FORECASTER_SET,
#   MESHWATCH_AGGREGATOR_SET           extra settings, whitespace-separated key=value items, passed
#                                      as --set (e.g. 'thresholds.calibration_windows=30')
#   MESHWATCH_TOPOLOGY_READY_TIMEOUT   [120]   seconds each service may take to become ready
#   MESHWATCH_TOPOLOGY_DRAIN_TIMEOUT   [60]    seconds `stop` waits for a consumer to catch up
#   MESHWATCH_TOPOLOGY_LOG_LINES       [40]    lines per log for `logs`
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOPO_DIR="$MESHWATCH_RUN/topology"
TOPO_ENV="$TOPO_DIR/topology.env"
# Start order; `stop` goes the other way.
SERVICES=(aggregator forecaster detector ingest)
STOP_ORDER=(ingest detector forecaster aggregator)

usage() {
    printf 'usage: %s start|stop|status|logs [SERVICE]\n' "$(basename "$0")" >&2
    exit 2
}

# --- settings -----------------------------------------------------------------------------------

INGEST_GRPC_PORT="${MESHWATCH_INGEST_GRPC_PORT:-4317}"
INGEST_HTTP_PORT="${MESHWATCH_INGEST_HTTP_PORT:-4318}"
INGEST_ADMIN_PORT="${MESHWATCH_INGEST_ADMIN_PORT:-9464}"
DETECTOR_GRPC_PORT="${MESHWATCH_DETECTOR_GRPC_PORT:-50051}"
DETECTOR_ADMIN_PORT="${MESHWATCH_DETECTOR_ADMIN_PORT:-9465}"
FORECASTER_GRPC_PORT="${MESHWATCH_FORECASTER_GRPC_PORT:-50052}"
FORECASTER_ADMIN_PORT="${MESHWATCH_FORECASTER_ADMIN_PORT:-9466}"
AGGREGATOR_ADMIN_PORT="${MESHWATCH_AGGREGATOR_ADMIN_PORT:-9467}"
GRAPH_WINDOW="${MESHWATCH_GRAPH_WINDOW:-10s}"
DATABASE="${MESHWATCH_DATABASE:-meshwatch}"
NAMESPACE="${MESHWATCH_NAMESPACE:-}"
READY_TIMEOUT="${MESHWATCH_TOPOLOGY_READY_TIMEOUT:-120}"
DRAIN_TIMEOUT="${MESHWATCH_TOPOLOGY_DRAIN_TIMEOUT:-60}"

binary_of() {
    case "$1" in
        ingest) printf 'meshwatch-ingest\n' ;;
        detector) printf 'meshwatch-detector\n' ;;
        forecaster) printf 'meshwatch-forecaster\n' ;;
        aggregator) printf 'meshwatch-aggregator\n' ;;
        *) die "unknown service $1" ;;
    esac
}

admin_port_of() {
    case "$1" in
        ingest) printf '%s\n' "$INGEST_ADMIN_PORT" ;;
        detector) printf '%s\n' "$DETECTOR_ADMIN_PORT" ;;
        forecaster) printf '%s\n' "$FORECASTER_ADMIN_PORT" ;;
        aggregator) printf '%s\n' "$AGGREGATOR_ADMIN_PORT" ;;
        *) die "unknown service $1" ;;
    esac
}

# The durable consumers that read what SERVICE publishes (stop waits for them to catch up).
downstream_consumers_of() {
    case "$1" in
        ingest) printf '%s\n' detector forecaster aggregator-snapshots ;;
        detector | forecaster) printf '%s\n' aggregator-results ;;
        *) ;;
    esac
}

# Reads topology.env into TOPO_* variables (ports recorded at start win over the environment,
# so `status` and `stop` find what `start` started); returns 1 when there is none.
read_state() {
    [[ -f "$TOPO_ENV" ]] || return 1
    local key value
    while IFS='=' read -r key value; do
        case "$key" in
            STARTED_NATS) TOPO_STARTED_NATS="$value" ;;
            STARTED_CLICKHOUSE) TOPO_STARTED_CLICKHOUSE="$value" ;;
            NATS_URL) TOPO_NATS_URL="$value" ;;
            NATS_MONITOR_URL) TOPO_NATS_MONITOR_URL="$value" ;;
            CLICKHOUSE_URL) TOPO_CLICKHOUSE_URL="$value" ;;
            MESHWATCH_DATABASE) DATABASE="$value" ;;
            MESHWATCH_NAMESPACE) NAMESPACE="$value" ;;
            INGEST_ADMIN_PORT) INGEST_ADMIN_PORT="$value" ;;
            DETECTOR_ADMIN_PORT) DETECTOR_ADMIN_PORT="$value" ;;
            FORECASTER_ADMIN_PORT) FORECASTER_ADMIN_PORT="$value" ;;
            AGGREGATOR_ADMIN_PORT) AGGREGATOR_ADMIN_PORT="$value" ;;
        esac
    done <"$TOPO_ENV"
}

service_pid() {
    local file="$TOPO_DIR/$1.pid"
    [[ -s "$file" ]] && cat "$file"
}

service_alive() {
    local pid
    pid="$(service_pid "$1" || true)"
    [[ -n "$pid" ]] && pid_alive "$pid" "$(binary_of "$1")"
}

readyz_url() {
    printf 'http://127.0.0.1:%s/readyz\n' "$(admin_port_of "$1")"
}

# --- binaries -----------------------------------------------------------------------------------

resolve_bin_dir() {
    if [[ -n "${MESHWATCH_BIN_DIR:-}" ]]; then
        BIN_DIR="$MESHWATCH_BIN_DIR"
        log "using the binaries in $BIN_DIR (MESHWATCH_BIN_DIR)"
    else
        have cargo || die "cargo not found; install Rust with rustup, or set MESHWATCH_BIN_DIR to built binaries"
        export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MESHWATCH_CACHE/target}"
        log "building the release binaries into $CARGO_TARGET_DIR/release"
        (cd "$MESHWATCH_REPO_ROOT" && cargo build --release --locked -p meshwatch-ingest \
            -p meshwatch-detector -p meshwatch-forecaster -p meshwatch-aggregator -p meshwatch-cli) ||
            die "cargo build --release failed"
        BIN_DIR="$CARGO_TARGET_DIR/release"
    fi
    local bin
    for bin in meshwatch meshwatch-ingest meshwatch-detector meshwatch-forecaster meshwatch-aggregator; do
        [[ -x "$BIN_DIR/$bin" ]] ||
            die "$BIN_DIR/$bin not found; build it with \`cargo build --release -p meshwatch-cli -p meshwatch-ingest -p meshwatch-detector -p meshwatch-forecaster -p meshwatch-aggregator\` or point MESHWATCH_BIN_DIR at the binaries"
    done
}

# --- start --------------------------------------------------------------------------------------

# The --set flags of SERVICE (printed one per line).
service_args() {
    local svc="$1" extra
    local common=("nats.url=$TOPO_NATS_URL" "log.format=pretty")
    if [[ -n "$NAMESPACE" ]]; then
        common+=("nats.namespace=$NAMESPACE")
    fi
    local own=()
    case "$svc" in
        ingest)
            own=(
                "otlp.grpc_listen=127.0.0.1:$INGEST_GRPC_PORT"
                "otlp.http_listen=127.0.0.1:$INGEST_HTTP_PORT"
                "admin.listen=127.0.0.1:$INGEST_ADMIN_PORT"
                "graph.window=$GRAPH_WINDOW"
            )
            extra="${MESHWATCH_INGEST_SET:-}"
            ;;
        detector)
            own=(
                "grpc.listen=127.0.0.1:$DETECTOR_GRPC_PORT"
                "admin.listen=127.0.0.1:$DETECTOR_ADMIN_PORT"
                "model.dir=$MESHWATCH_REPO_ROOT/models/detector"
                "model.library=$ORT_LIBRARY"
            )
            extra="${MESHWATCH_DETECTOR_SET:-}"
            ;;
        forecaster)
            own=(
                "grpc.listen=127.0.0.1:$FORECASTER_GRPC_PORT"
                "admin.listen=127.0.0.1:$FORECASTER_ADMIN_PORT"
                "model.dir=$MESHWATCH_REPO_ROOT/models/forecaster"
                "model.library=$ORT_LIBRARY"
            )
            extra="${MESHWATCH_FORECASTER_SET:-}"
            ;;
        aggregator)
            own=(
                "admin.listen=127.0.0.1:$AGGREGATOR_ADMIN_PORT"
                "sink.kind=clickhouse"
                "sink.clickhouse.url=$TOPO_CLICKHOUSE_URL"
                "sink.clickhouse.database=$DATABASE"
            )
            extra="${MESHWATCH_AGGREGATOR_SET:-}"
            ;;
    esac
    local kv
    for kv in "${common[@]}" "${own[@]}"; do
        printf -- '--set\n%s\n' "$kv"
    done
    # Word splitting on purpose: whitespace-separated key=value items.
    # shellcheck disable=SC2086
    for kv in $extra; do
        printf -- '--set\n%s\n' "$kv"
    done
}

check_ports_free() {
    local port
    for port in "$INGEST_GRPC_PORT" "$INGEST_HTTP_PORT" "$INGEST_ADMIN_PORT" "$DETECTOR_GRPC_PORT" \
        "$DETECTOR_ADMIN_PORT" "$FORECASTER_GRPC_PORT" "$FORECASTER_ADMIN_PORT" "$AGGREGATOR_ADMIN_PORT"; do
        if port_in_use "$port"; then
            die "port $port on 127.0.0.1 is already in use (override it, see docs/topology.md)"
        fi
    done
}

start_service() {
    local svc="$1" bin args=()
    bin="$BIN_DIR/$(binary_of "$svc")"
    mapfile -t args < <(service_args "$svc")
    local logfile="$TOPO_DIR/$svc.log" pidfile="$TOPO_DIR/$svc.pid"
    rm -f "$pidfile"
    printf '\n=== %s: %s %s\n' "$(date -u +%FT%TZ)" "$bin" "${args[*]}" >>"$logfile"
    # The small shell writes its own pid and execs the service, so the pid file names the
    # service itself (with setsid the launched pid can be a short-lived parent).
    # shellcheck disable=SC2016 # expanded by the inner shell
    launch_detached "$logfile" bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$bin" "${args[@]}"
    local pid="" deadline=$((SECONDS + 10))
    while [[ -z "$pid" ]]; do
        [[ -s "$pidfile" ]] && pid="$(cat "$pidfile")"
        if [[ -z "$pid" ]] && ((SECONDS >= deadline)); then
            tail -n 20 "$logfile" >&2 || true
            die "$svc did not start (no pid file after 10s)"
        fi
        [[ -n "$pid" ]] || sleep 0.1
    done
    log "$svc: pid $pid, waiting for $(readyz_url "$svc")"
    if ! wait_for_url "$(readyz_url "$svc")" "$READY_TIMEOUT" "$pid"; then
        warn "$svc not ready; last lines of $logfile:"
        tail -n 30 "$logfile" >&2 || true
        return 1
    fi
    log "$svc ready"
}

cmd_start() {
    ensure_dir "$TOPO_DIR"
    if read_state; then
        local svc running=0
        for svc in "${SERVICES[@]}"; do
            if service_alive "$svc"; then running=$((running + 1)); fi
        done
        if ((running == ${#SERVICES[@]})); then
            log "the topology is already running"
            cmd_status
            return $?
        fi
        if ((running > 0)); then
            die "the topology runs only in part ($running of ${#SERVICES[@]} services); run '$0 stop' first"
        fi
        warn "stale state in $TOPO_DIR (no service runs); starting afresh"
        TOPO_STARTED_NATS="" TOPO_STARTED_CLICKHOUSE=""
    fi

    resolve_bin_dir
    if [[ -n "${ORT_DYLIB_PATH:-}" ]]; then
        ORT_LIBRARY="$ORT_DYLIB_PATH"
    else
        ORT_LIBRARY="$("$MESHWATCH_SCRIPTS_DIR/install-ort.sh")"
    fi
    [[ -f "$ORT_LIBRARY" ]] || die "ONNX Runtime library $ORT_LIBRARY not found (scripts/install-ort.sh)"
    check_ports_free

    # NATS and ClickHouse: reuse running ones, else start them (and remember to stop them).
    local started_nats=0 started_clickhouse=0
    if ! "$MESHWATCH_SCRIPTS_DIR/nats.sh" status >/dev/null 2>&1; then
        started_nats=1
    fi
    "$MESHWATCH_SCRIPTS_DIR/nats.sh" start >/dev/null
    if ! "$MESHWATCH_SCRIPTS_DIR/clickhouse.sh" status >/dev/null 2>&1; then
        started_clickhouse=1
    fi
    if ! "$MESHWATCH_SCRIPTS_DIR/clickhouse.sh" start >/dev/null; then
        if ((started_nats)); then "$MESHWATCH_SCRIPTS_DIR/nats.sh" stop || true; fi
        die "ClickHouse did not start"
    fi
    local NATS_URL="" NATS_MONITOR_URL="" CLICKHOUSE_URL=""
    # shellcheck disable=SC1091 # written at run time by nats.sh and clickhouse.sh
    source "$MESHWATCH_RUN/nats.env"
    # shellcheck disable=SC1091
    source "$MESHWATCH_RUN/clickhouse.env"
    TOPO_NATS_URL="$NATS_URL"
    TOPO_NATS_MONITOR_URL="$NATS_MONITOR_URL"
    TOPO_CLICKHOUSE_URL="$CLICKHOUSE_URL"

    {
        printf 'STARTED_NATS=%s\n' "$started_nats"
        printf 'STARTED_CLICKHOUSE=%s\n' "$started_clickhouse"
        printf 'NATS_URL=%s\n' "$TOPO_NATS_URL"
        printf 'NATS_MONITOR_URL=%s\n' "$TOPO_NATS_MONITOR_URL"
        printf 'CLICKHOUSE_URL=%s\n' "$TOPO_CLICKHOUSE_URL"
        printf 'MESHWATCH_DATABASE=%s\n' "$DATABASE"
        printf 'MESHWATCH_NAMESPACE=%s\n' "$NAMESPACE"
        printf 'MESHWATCH_BIN_DIR=%s\n' "$BIN_DIR"
        printf 'OTLP_GRPC_ENDPOINT=http://127.0.0.1:%s\n' "$INGEST_GRPC_PORT"
        printf 'OTLP_HTTP_ENDPOINT=http://127.0.0.1:%s\n' "$INGEST_HTTP_PORT"
        printf 'DETECTOR_GRPC=127.0.0.1:%s\n' "$DETECTOR_GRPC_PORT"
        printf 'FORECASTER_GRPC=127.0.0.1:%s\n' "$FORECASTER_GRPC_PORT"
        printf 'INGEST_ADMIN_PORT=%s\n' "$INGEST_ADMIN_PORT"
        printf 'DETECTOR_ADMIN_PORT=%s\n' "$DETECTOR_ADMIN_PORT"
        printf 'FORECASTER_ADMIN_PORT=%s\n' "$FORECASTER_ADMIN_PORT"
        printf 'AGGREGATOR_ADMIN_PORT=%s\n' "$AGGREGATOR_ADMIN_PORT"
    } >"$TOPO_ENV.tmp"
    mv "$TOPO_ENV.tmp" "$TOPO_ENV"

    log "applying the schema to $TOPO_CLICKHOUSE_URL (database $DATABASE)"
    "$BIN_DIR/meshwatch" migrate --url "$TOPO_CLICKHOUSE_URL" --database "$DATABASE" >&2 ||
        die "meshwatch migrate failed"

    local svc
    for svc in "${SERVICES[@]}"; do
        if ! start_service "$svc"; then
            warn "stopping what was started"
            cmd_stop || true
            exit 1
        fi
    done
    log "topology ready: send OTLP to http://127.0.0.1:$INGEST_GRPC_PORT (gRPC) or http://127.0.0.1:$INGEST_HTTP_PORT (HTTP)"
    cat "$TOPO_ENV"
}

# --- stop ---------------------------------------------------------------------------------------

# Prints "pending ack_pending" summed over the consumers named in $@ (of this namespace's
# streams), from the NATS monitoring endpoint; nothing when it cannot be read.
consumer_backlog() {
    [[ -n "${TOPO_NATS_MONITOR_URL:-}" ]] || return 0
    local prefix=""
    [[ -n "$NAMESPACE" ]] && prefix="${NAMESPACE}_"
    curl -fsS --max-time 2 "$TOPO_NATS_MONITOR_URL/jsz?consumers=true" 2>/dev/null |
        "$MESHWATCH_BOOTSTRAP_PYTHON" -c '
import json, sys
prefix, wanted = sys.argv[1], set(sys.argv[2:])
streams = {prefix + "MESHWATCH_SNAPSHOTS", prefix + "MESHWATCH_RESULTS"}
doc = json.load(sys.stdin)
pending = ack = 0
for account in doc.get("account_details") or []:
    for stream in account.get("stream_detail") or []:
        if stream.get("name") not in streams:
            continue
        for consumer in stream.get("consumer_detail") or []:
            if consumer.get("name") in wanted:
                pending += consumer.get("num_pending", 0)
                ack += consumer.get("num_ack_pending", 0)
print(pending, ack)
' "$prefix" "$@" 2>/dev/null || true
}

# wait_drained SERVICE: waits (up to the drain timeout) until the consumers reading what SERVICE
# published have nothing pending, so stopping the next service loses no work in flight.
wait_drained() {
    local consumers=()
    mapfile -t consumers < <(downstream_consumers_of "$1")
    ((${#consumers[@]} > 0)) || return 0
    local deadline=$((SECONDS + DRAIN_TIMEOUT)) backlog=""
    while ((SECONDS < deadline)); do
        backlog="$(consumer_backlog "${consumers[@]}")"
        [[ -n "$backlog" ]] || return 0
        [[ "$backlog" == "0 0" ]] && return 0
        sleep 0.5
    done
    warn "${consumers[*]} still have work pending (pending, unacked: $backlog) after ${DRAIN_TIMEOUT}s; stopping anyway (JetStream keeps it for the next start)"
}

cmd_stop() {
    if ! read_state; then
        log "no topology recorded in $TOPO_ENV; nothing to stop"
        return 0
    fi
    local svc pid
    for svc in "${STOP_ORDER[@]}"; do
        if service_alive "$svc"; then
            pid="$(service_pid "$svc")"
            log "stopping $svc (pid $pid)"
            # Longer than the services' default shutdown.grace (25 s).
            stop_pid "$pid" 35
            # What it published is consumed before its consumers stop.
            wait_drained "$svc"
        fi
        rm -f "$TOPO_DIR/$svc.pid"
    done
    if [[ "${TOPO_STARTED_NATS:-0}" == 1 ]]; then
        "$MESHWATCH_SCRIPTS_DIR/nats.sh" stop || warn "could not stop NATS"
    fi
    if [[ "${TOPO_STARTED_CLICKHOUSE:-0}" == 1 ]]; then
        "$MESHWATCH_SCRIPTS_DIR/clickhouse.sh" stop || warn "could not stop ClickHouse"
    fi
    rm -f "$TOPO_ENV"
    log "topology stopped (logs kept in $TOPO_DIR)"
}

# --- status and logs ----------------------------------------------------------------------------

cmd_status() {
    if ! read_state; then
        log "the topology is not running (no $TOPO_ENV)"
        return 1
    fi
    local ok=0 svc pid state
    if "$MESHWATCH_SCRIPTS_DIR/nats.sh" status >/dev/null 2>&1; then
        printf '%-11s %-8s %s\n' nats healthy "${TOPO_NATS_URL:-}"
    else
        printf '%-11s %-8s %s\n' nats DOWN "${TOPO_NATS_URL:-}"
        ok=1
    fi
    if "$MESHWATCH_SCRIPTS_DIR/clickhouse.sh" status >/dev/null 2>&1; then
        printf '%-11s %-8s %s (database %s)\n' clickhouse healthy "${TOPO_CLICKHOUSE_URL:-}" "$DATABASE"
    else
        printf '%-11s %-8s %s\n' clickhouse DOWN "${TOPO_CLICKHOUSE_URL:-}"
        ok=1
    fi
    for svc in "${SERVICES[@]}"; do
        pid="$(service_pid "$svc" || true)"
        if ! service_alive "$svc"; then
            state=DOWN
            ok=1
        elif url_ok "$(readyz_url "$svc")"; then
            state=ready
        else
            state="NOT-READY"
            ok=1
        fi
        printf '%-11s %-8s pid %-8s %s\n' "$svc" "$state" "${pid:--}" "$(readyz_url "$svc")"
    done
    return "$ok"
}

cmd_logs() {
    local which="${1:-}" lines="${MESHWATCH_TOPOLOGY_LOG_LINES:-40}" files=() name
    case "$which" in
        "") for name in "${SERVICES[@]}"; do files+=("$TOPO_DIR/$name.log"); done ;;
        ingest | detector | forecaster | aggregator) files=("$TOPO_DIR/$which.log") ;;
        nats | clickhouse)
            local env="$MESHWATCH_RUN/$which.env" key value
            [[ -f "$env" ]] || die "$which is not running (no $env)"
            while IFS='=' read -r key value; do
                if [[ "$key" == NATS_LOG || "$key" == CLICKHOUSE_LOG ]]; then files=("$value"); fi
            done <"$env"
            ;;
        *) die "unknown service $which (ingest, detector, forecaster, aggregator, nats, clickhouse)" ;;
    esac
    local file
    for file in "${files[@]}"; do
        printf '==> %s <==\n' "$file"
        if [[ -f "$file" ]]; then tail -n "$lines" "$file"; else printf '(no log)\n'; fi
    done
}

# fd 9: launch_detached closes it in the processes it starts, so no service holds the lock.
with_topology_lock() {
    if have flock; then
        (
            flock -w 300 9 || die "could not lock $TOPO_DIR/topology.lock within 300s"
            "$@"
        ) 9>"$TOPO_DIR/topology.lock"
    else
        "$@"
    fi
}

main() {
    [[ $# -ge 1 ]] || usage
    ensure_dir "$TOPO_DIR"
    case "$1" in
        start | stop | status) [[ $# -eq 1 ]] || usage ;;
        logs) [[ $# -le 2 ]] || usage ;;
        *) usage ;;
    esac
    case "$1" in
        start) with_topology_lock cmd_start ;;
        stop) with_topology_lock cmd_stop ;;
        status) cmd_status ;;
        logs) cmd_logs "${2:-}" ;;
    esac
}

main "$@"
