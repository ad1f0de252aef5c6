#!/usr/bin/env bash
# Install a real ClickHouse 26.9 server into $MESHWATCH_CACHE/venv-clickhouse and print the path
# of its launcher, `meshwatch-clickhouse-serve`.
#
# PyPI's chdb-core 26.9.0 (~180 MB wheel) contains the whole ClickHouse server. Its public Python
# API refuses to listen, but its low-level entry point (`chdb._chdb.query`) runs
# `SYSTEM START LISTEN HTTP`, which serves the standard ClickHouse HTTP interface: the same SQL,
# engines, codecs, TTLs and wire formats as `clickhouse-server`. The launcher written here keeps
# that one recipe in one place; scripts/clickhouse.sh and the tests' harness
# (shared/testkit/src/clickhouse.rs) both run it:
#
#   meshwatch-clickhouse-serve DIR PORT [--exit-with-parent]
#
# It writes DIR/config.xml (HTTP on 127.0.0.1:PORT only) and its pid to DIR/server.pid, keeps
# its data in DIR/data (which survives a restart), and runs until it is terminated (SIGTERM: gone within ~3 s). With
# --exit-with-parent it also exits when its parent process has gone (the tests use that, so a
# crashed test binary leaves no server behind).
#
# A venv of its own, not $MESHWATCH_CACHE/venv: chdb-core declares pandas and pyarrow as
# requirements that the server does not need, so it is installed with --no-deps, which `pip check`
# in the shared venv would report as broken. Idempotent: a second run only checks the stamp and
# the import.
#
# Override: MESHWATCH_CLICKHOUSE_SERVE=/path/to/launcher skips the install (a launcher with the
# same arguments). Or run your own ClickHouse and give its URL in CLICKHOUSE_URL to the tests.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHDB_VERSION="26.9.0"
CLICKHOUSE_VENV="$MESHWATCH_CACHE/venv-clickhouse"
SERVE="$CLICKHOUSE_VENV/bin/meshwatch-clickhouse-serve"

# The launcher. Changing this text re-runs the install (it is part of the stamp).
serve_program() {
    cat <<'PY'
"""Serve ClickHouse's HTTP interface from chdb-core (written by scripts/install-clickhouse.sh).

usage: meshwatch-clickhouse-serve DIR PORT [--exit-with-parent]
"""

import os
import sys
import threading
import time


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--exit-with-parent"]
    if len(args) != 2 or not args[1].isdigit():
        print(__doc__.strip(), file=sys.stderr)
        return 2
    directory, port = os.path.abspath(args[0]), int(args[1])
    os.makedirs(os.path.join(directory, "data"), exist_ok=True)
    # The embedded server reads config.xml from its working directory.
    config = (
        "<clickhouse><http_port>%d</http_port><listen_host>127.0.0.1</listen_host>"
        "<logger><level>warning</level></logger></clickhouse>\n" % port
    )
    with open(os.path.join(directory, "config.xml"), "w", encoding="utf-8") as f:
        f.write(config)
    with open(os.path.join(directory, "server.pid"), "w", encoding="utf-8") as f:
        f.write("%d\n" % os.getpid())
    os.chdir(directory)
    if "--exit-with-parent" in sys.argv[1:]:
        parent = os.getppid()

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(0)

        threading.Thread(target=watch, daemon=True).start()
    import chdb._chdb as c  # noqa: PLC0415 (after chdir: it reads ./config.xml)

    # The listener runs while a query runs: one that sleeps for ~95 years.
    r = c.query(
        "SYSTEM START LISTEN HTTP; SELECT sleep(3) FROM numbers(1000000000) "
        "SETTINGS max_block_size=1, max_execution_time=0",
        "CSV",
        path=os.path.join(directory, "data"),
    )
    print("clickhouse listener ended: " + (r.error_message() if r.has_error() else ""), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
PY
}

install_locked() {
    local py="$CLICKHOUSE_VENV/bin/python"
    if ! [[ -x "$py" ]] || ! "$py" -c 'import pip' >/dev/null 2>&1; then
        have "$MESHWATCH_BOOTSTRAP_PYTHON" ||
            die "$MESHWATCH_BOOTSTRAP_PYTHON not found; install Python 3.9+ (Debian: apt-get install python3 python3-venv)"
        rm -rf "$CLICKHOUSE_VENV"
        log "creating venv $CLICKHOUSE_VENV"
        "$MESHWATCH_BOOTSTRAP_PYTHON" -m venv "$CLICKHOUSE_VENV" ||
            die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    fi
    local stamp="$CLICKHOUSE_VENV/.stamps/clickhouse" want
    want="$(
        {
            "$py" -c 'import sys; print(sys.version)'
            printf 'chdb-core==%s\n' "$CHDB_VERSION"
            serve_program
        } | "$py" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
    )"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$SERVE" ]]; then
        log "clickhouse: up to date (chdb-core==$CHDB_VERSION)"
        return 0
    fi
    log "clickhouse: installing chdb-core==$CHDB_VERSION (~180 MB) into $CLICKHOUSE_VENV"
    "$py" -m pip install --disable-pip-version-check --no-input --quiet \
        --only-binary=:all: --no-deps "chdb-core==$CHDB_VERSION" ||
        die "clickhouse: pip install chdb-core==$CHDB_VERSION failed (wheels exist for Linux x86_64 and aarch64, macOS)"
    {
        printf '#!%s\n' "$py"
        serve_program
    } >"$SERVE.tmp"
    chmod +x "$SERVE.tmp"
    mv "$SERVE.tmp" "$SERVE"
    ensure_dir "$CLICKHOUSE_VENV/.stamps"
    printf '%s\n' "$want" >"$stamp.tmp"
    mv "$stamp.tmp" "$stamp"
}

main() {
    local serve
    if [[ -n "${MESHWATCH_CLICKHOUSE_SERVE:-}" ]]; then
        serve="$MESHWATCH_CLICKHOUSE_SERVE"
        [[ -x "$serve" ]] || die "MESHWATCH_CLICKHOUSE_SERVE=$serve is not an executable file"
    else
        with_cache_lock install_locked
        serve="$SERVE"
        local version
        version="$("$CLICKHOUSE_VENV/bin/python" -c 'import importlib.metadata as m, chdb._chdb; print(m.version("chdb-core"))' 2>&1)" ||
            die "chdb-core in $CLICKHOUSE_VENV does not import: $version"
        [[ "$version" == "$CHDB_VERSION" ]] ||
            die "expected chdb-core $CHDB_VERSION in $CLICKHOUSE_VENV, found $version"
        log "chdb-core $version (ClickHouse 26.9) launcher $serve"
    fi
    printf '%s\n' "$serve"
}

main "$@"
