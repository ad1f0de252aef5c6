# shellcheck shell=bash disable=SC2034 # globals here are used by the scripts that source this file
# Common helpers for the Meshwatch scripts. Source it; do not execute it.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Everything the scripts install or start lives under one cache directory:
#
#   MESHWATCH_CACHE   default: $HOME/.cache/meshwatch
#     venv/           Python virtual environment (nats-server, OpenTelemetry SDK, ...)
#     venv/.stamps/   one stamp per pinned requirements set; a matching stamp skips pip
#     run/            runtime state of local services (pid files, logs, data, *.env)
#     target/         default CARGO_TARGET_DIR of scripts/test.sh
#
# Environment knobs:
#   MESHWATCH_BOOTSTRAP_PYTHON   interpreter that creates the venv (default: python3)
#   MESHWATCH_QUIET=1            silence info logs (warnings and errors still go to stderr)

if [[ -n "${MESHWATCH_LIB_SOURCED:-}" ]]; then
    return 0
fi
MESHWATCH_LIB_SOURCED=1

MESHWATCH_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MESHWATCH_REPO_ROOT="$(cd "$MESHWATCH_SCRIPTS_DIR/.." && pwd)"
MESHWATCH_CACHE="${MESHWATCH_CACHE:-$HOME/.cache/meshwatch}"
MESHWATCH_VENV="$MESHWATCH_CACHE/venv"
MESHWATCH_RUN="$MESHWATCH_CACHE/run"
MESHWATCH_BOOTSTRAP_PYTHON="${MESHWATCH_BOOTSTRAP_PYTHON:-python3}"
export MESHWATCH_CACHE

# --- logging ----------------------------------------------------------------------------------

log() {
    if [[ "${MESHWATCH_QUIET:-0}" != 1 ]]; then
        printf '[meshwatch] %s\n' "$*" >&2
    fi
}

warn() {
    printf '[meshwatch] warning: %s\n' "$*" >&2
}

die() {
    printf '[meshwatch] error: %s\n' "$*" >&2
    exit 1
}

# section TITLE: a visible header in long outputs (CI logs).
section() {
    printf '\n==> %s\n' "$*" >&2
}

# --- small utilities ----------------------------------------------------------------------------

ensure_dir() {
    mkdir -p "$@"
}

have() {
    command -v "$1" >/dev/null 2>&1
}

# free_port: print a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
    "$MESHWATCH_BOOTSTRAP_PYTHON" - <<'PY'
import socket
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
PY
}

# port_in_use PORT: true when something accepts connections on 127.0.0.1:PORT.
port_in_use() {
    "$MESHWATCH_BOOTSTRAP_PYTHON" - "$1" <<'PY'
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.settimeout(0.5)
    sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

# launch_detached LOGFILE CMD...: runs CMD in the background out of the caller's process group
# (setsid when available: a Ctrl-C in the caller's terminal does not kill it), stdin detached,
# stdout/stderr appended to LOGFILE (so `$(script start)` does not wait for it). Sets
# LAUNCHED_PID to the pid started (with setsid it can be a short-lived parent: servers that
# write their own pid file should be tracked by that).
launch_detached() {
    local logfile="$1"
    shift
    local launcher=()
    if have setsid; then
        launcher=(setsid)
    fi
    # The daemon must not inherit a caller's descriptors (a lock held on one would be held as
    # long as the daemon runs): close every one above stderr in the child first.
    (
        local fd
        for fd in /proc/self/fd/*; do
            fd="${fd##*/}"
            if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then
                eval "exec ${fd}>&-" 2>/dev/null || true
            fi
        done
        exec "${launcher[@]}" "$@" </dev/null >>"$logfile" 2>&1
    ) &
    LAUNCHED_PID=$!
}

# url_ok URL: true when GET URL answers 2xx within 2 s.
url_ok() {
    if have curl; then
        curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
    else
        "$MESHWATCH_BOOTSTRAP_PYTHON" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if 200 <= r.status < 300 else 1)
PY
    fi
}

# wait_for_url URL TIMEOUT_SECONDS [PID]: poll until URL answers 2xx; fail after the timeout,
# or at once when PID (if given) has exited.
wait_for_url() {
    local url="$1" timeout="${2:-30}" pid="${3:-}"
    local deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        if url_ok "$url"; then
            return 0
        fi
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            warn "process $pid exited while waiting for $url"
            return 1
        fi
        sleep 0.2
    done
    warn "timed out after ${timeout}s waiting for $url"
    return 1
}

# pid_alive PID [NAME]: true when PID runs and (if NAME is given) its command line contains NAME.
pid_alive() {
    local pid="$1" name="${2:-}"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -n "$name" ]]; then
        local args
        args="$(ps -o args= -p "$pid" 2>/dev/null || true)"
        [[ "$args" == *"$name"* ]] || return 1
    fi
    return 0
}

# stop_pid PID [TIMEOUT]: SIGTERM, wait, then SIGKILL.
stop_pid() {
    local pid="$1" timeout="${2:-10}"
    kill -TERM "$pid" 2>/dev/null || return 0
    local deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            warn "pid $pid ignored SIGTERM for ${timeout}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
}

# with_cache_lock CMD...: run CMD while holding an exclusive lock on the cache directory, so
# concurrent runs (two terminals, parallel CI jobs on one runner) do not install into the same
# venv at once. Without flock(1) the command runs unlocked.
with_cache_lock() {
    ensure_dir "$MESHWATCH_CACHE"
    if have flock; then
        (
            flock -w 900 9 || die "could not lock $MESHWATCH_CACHE/.lock within 900s"
            "$@"
        ) 9>"$MESHWATCH_CACHE/.lock"
    else
        "$@"
    fi
}

# --- Python virtual environment -------------------------------------------------------------------

venv_python() {
    printf '%s\n' "$MESHWATCH_VENV/bin/python"
}

_venv_usable() {
    [[ -x "$MESHWATCH_VENV/bin/python" ]] &&
        "$MESHWATCH_VENV/bin/python" -c 'import sys, pip' >/dev/null 2>&1
}

# ensure_venv: create $MESHWATCH_CACHE/venv once; recreate it only when it is broken
# (for example when the interpreter it was made from has gone).
ensure_venv() {
    if _venv_usable; then
        return 0
    fi
    have "$MESHWATCH_BOOTSTRAP_PYTHON" ||
        die "$MESHWATCH_BOOTSTRAP_PYTHON not found; install Python 3.9+ (Debian: apt-get install python3 python3-venv)"
    if [[ -e "$MESHWATCH_VENV" ]]; then
        warn "venv at $MESHWATCH_VENV is unusable; recreating it"
        rm -rf "$MESHWATCH_VENV"
    fi
    log "creating venv $MESHWATCH_VENV ($("$MESHWATCH_BOOTSTRAP_PYTHON" --version 2>&1))"
    ensure_dir "$MESHWATCH_CACHE"
    "$MESHWATCH_BOOTSTRAP_PYTHON" -m venv "$MESHWATCH_VENV" ||
        die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    _venv_usable || die "the new venv at $MESHWATCH_VENV has no working pip"
}

# pip_install_pinned NAME REQUIREMENTS_FILE: install an exactly pinned requirements file into the
# venv once. The stamp records a hash of the file and the interpreter version; when both match,
# nothing runs (no network). pip check runs after every install.
pip_install_pinned() {
    local name="$1" req="$2"
    [[ -f "$req" ]] || die "requirements file $req not found"
    with_cache_lock _pip_install_pinned_locked "$name" "$req"
}

_pip_install_pinned_locked() {
    local name="$1" req="$2"
    ensure_venv
    local py stamp want
    py="$(venv_python)"
    stamp="$MESHWATCH_VENV/.stamps/$name"
    want="$(
        {
            "$py" -c 'import sys; print(sys.version)'
            cat "$req"
        } | "$py" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
    )"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        log "$name: up to date ($(basename "$req"))"
        return 0
    fi
    log "$name: installing $(basename "$req") into $MESHWATCH_VENV"
    "$py" -m pip install --disable-pip-version-check --no-input --quiet \
        --only-binary=:all: --requirement "$req" ||
        die "$name: pip install -r $req failed"
    "$py" -m pip check --disable-pip-version-check >/dev/null ||
        die "$name: pip check reports broken requirements in $MESHWATCH_VENV"
    ensure_dir "$MESHWATCH_VENV/.stamps"
    printf '%s\n' "$want" >"$stamp.tmp"
    mv "$stamp.tmp" "$stamp"
}
