#!/usr/bin/env bash
# Start, stop or query a local ClickHouse 26.9 (HTTP interface) on loopback.
#
#   scripts/clickhouse.sh start    start one (or reuse the live one) and print its env lines
#   scripts/clickhouse.sh stop     stop it (no-op when none runs)
#   scripts/clickhouse.sh status   print its env lines and exit 0 when healthy, else exit 1
#
# The server is the one scripts/install-clickhouse.sh installs (PyPI chdb-core 26.9.0 serving the
# standard HTTP interface); it has no native TCP port, so use the HTTP interface (the `clickhouse`
# crate, curl, any HTTP client):
#
#   curl -sS "$CLICKHOUSE_URL" --data-binary 'SELECT version()'
#
# State lives in $MESHWATCH_CACHE/run:
#   clickhouse.env           CLICKHOUSE_URL, CLICKHOUSE_PORT, CLICKHOUSE_PID, ... (source it with set -a)
#   clickhouse-<port>/       config.xml, data/, server.pid and the log (clickhouse.log)
#
# Environment:
#   CLICKHOUSE_PORT            HTTP port (default: a free one)
#   CLICKHOUSE_START_TIMEOUT   seconds to wait for /ping (default 60)
#   CLICKHOUSE_KEEP_DATA=1     keep the data of an earlier server on the same port; by default a
#                              fresh start begins with no databases, so test runs see no old tables
#   MESHWATCH_CLICKHOUSE_SERVE use this launcher instead of the installed one (same arguments)
#
# Usage from another script:
#   scripts/clickhouse.sh start >/dev/null && set -a && . "$MESHWATCH_CACHE/run/clickhouse.env" && set +a
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CH_ENV_FILE="$MESHWATCH_RUN/clickhouse.env"
# What the server's command line contains (pid_alive checks it before signalling a pid).
CH_PROCESS_NAME="clickhouse-serve"

usage() {
    printf 'usage: %s start|stop|status\n' "$(basename "$0")" >&2
    exit 2
}

# Reads clickhouse.env into REC_* variables; returns 1 when there is no record.
read_record() {
    REC_PID="" REC_PORT="" REC_URL=""
    [[ -f "$CH_ENV_FILE" ]] || return 1
    local key value
    while IFS='=' read -r key value; do
        case "$key" in
            CLICKHOUSE_PID) REC_PID="$value" ;;
            CLICKHOUSE_PORT) REC_PORT="$value" ;;
            CLICKHOUSE_URL) REC_URL="$value" ;;
        esac
    done <"$CH_ENV_FILE"
    [[ -n "$REC_PID" && -n "$REC_PORT" && -n "$REC_URL" ]]
}

# True when the recorded server process runs and answers /ping.
record_healthy() {
    read_record || return 1
    pid_alive "$REC_PID" "$CH_PROCESS_NAME" || return 1
    url_ok "$REC_URL/ping"
}

cmd_start() {
    if record_healthy; then
        if [[ -n "${CLICKHOUSE_PORT:-}" && "$CLICKHOUSE_PORT" != "$REC_PORT" ]]; then
            die "a ClickHouse server already runs on port $REC_PORT (pid $REC_PID), CLICKHOUSE_PORT=$CLICKHOUSE_PORT asked for another; run '$0 stop' first"
        fi
        log "reusing ClickHouse at $REC_URL (pid $REC_PID)"
        cat "$CH_ENV_FILE"
        return 0
    fi
    if read_record && pid_alive "$REC_PID" "$CH_PROCESS_NAME"; then
        warn "recorded ClickHouse (pid $REC_PID) runs but is not healthy; restarting it"
        stop_pid "$REC_PID" 15
    fi
    rm -f "$CH_ENV_FILE"

    local serve
    serve="$("$MESHWATCH_SCRIPTS_DIR/install-clickhouse.sh")"

    local port="${CLICKHOUSE_PORT:-}"
    [[ -n "$port" ]] || port="$(free_port)"
    if port_in_use "$port"; then
        die "port $port on 127.0.0.1 is already in use"
    fi

    local dir="$MESHWATCH_RUN/clickhouse-$port"
    if [[ "${CLICKHOUSE_KEEP_DATA:-0}" != 1 ]]; then
        rm -rf "$dir/data"
    fi
    ensure_dir "$dir/data"
    rm -f "$dir/server.pid"
    local logfile="$dir/clickhouse.log"
    : >"$logfile"

    launch_detached "$logfile" "$serve" "$dir" "$port"
    local launched=$LAUNCHED_PID

    # Wait for /ping. The launcher writes its own pid file; that pid is the one to record (with
    # setsid the launched pid can be a short-lived parent).
    local timeout="${CLICKHOUSE_START_TIMEOUT:-60}"
    local url="http://127.0.0.1:$port"
    local deadline=$((SECONDS + timeout)) pid=""
    while :; do
        [[ -s "$dir/server.pid" ]] && pid="$(cat "$dir/server.pid")"
        if url_ok "$url/ping" && pid_alive "$pid" "$CH_PROCESS_NAME"; then
            break
        fi
        if ! kill -0 "$launched" 2>/dev/null && ! pid_alive "$pid" "$CH_PROCESS_NAME"; then
            warn "ClickHouse exited during start-up; last lines of $logfile:"
            tail -n 20 "$logfile" >&2 || true
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            warn "ClickHouse not answering $url/ping after ${timeout}s; last lines of $logfile:"
            tail -n 20 "$logfile" >&2 || true
            if pid_alive "$pid" "$CH_PROCESS_NAME"; then stop_pid "$pid" 15; fi
            stop_pid "$launched" 5
            exit 1
        fi
        sleep 0.2
    done

    {
        printf 'CLICKHOUSE_URL=%s\n' "$url"
        printf 'CLICKHOUSE_PORT=%s\n' "$port"
        printf 'CLICKHOUSE_PID=%s\n' "$pid"
        printf 'CLICKHOUSE_DIR=%s\n' "$dir"
        printf 'CLICKHOUSE_LOG=%s\n' "$logfile"
    } >"$CH_ENV_FILE.tmp"
    mv "$CH_ENV_FILE.tmp" "$CH_ENV_FILE"
    log "ClickHouse 26.9 (HTTP) at $url (pid $pid, data $dir/data, log $logfile)"
    cat "$CH_ENV_FILE"
}

cmd_stop() {
    if ! read_record; then
        log "no ClickHouse server recorded in $CH_ENV_FILE; nothing to stop"
        rm -f "$CH_ENV_FILE"
        return 0
    fi
    if pid_alive "$REC_PID" "$CH_PROCESS_NAME"; then
        log "stopping ClickHouse at $REC_URL (pid $REC_PID)"
        # It ends its listener query within ~3 s of SIGTERM.
        stop_pid "$REC_PID" 15
    else
        log "recorded ClickHouse (pid $REC_PID) is not running"
    fi
    rm -f "$CH_ENV_FILE"
}

cmd_status() {
    if record_healthy; then
        log "ClickHouse healthy at $REC_URL (pid $REC_PID)"
        cat "$CH_ENV_FILE"
        return 0
    fi
    if read_record && pid_alive "$REC_PID" "$CH_PROCESS_NAME"; then
        log "ClickHouse (pid $REC_PID) runs but does not answer $REC_URL/ping"
    else
        log "ClickHouse is not running"
    fi
    return 1
}

with_run_lock() {
    if have flock; then
        (
            flock -w 120 8 || die "could not lock $MESHWATCH_RUN/clickhouse.lock within 120s"
            "$@"
        ) 8>"$MESHWATCH_RUN/clickhouse.lock"
    else
        "$@"
    fi
}

main() {
    [[ $# -eq 1 ]] || usage
    ensure_dir "$MESHWATCH_RUN"
    # One start/stop at a time per cache directory.
    case "$1" in
        start) with_run_lock cmd_start ;;
        stop) with_run_lock cmd_stop ;;
        status) cmd_status ;;
        *) usage ;;
    esac
}

main "$@"
