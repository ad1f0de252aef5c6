#!/usr/bin/env bash
# Install the ONNX Runtime shared library (CPU) into $MESHWATCH_CACHE/ort and print its path.
#
# The `ort` crate is built with `load-dynamic`: Meshwatch finds the library at run time, from
# the configuration or ORT_DYLIB_PATH. PyPI's onnxruntime wheel carries the official build of
# the library (as libonnxruntime.so.<version>); this script downloads the wheel with pip (no
# install, no venv) and unpacks it. Idempotent: a second run only checks the library is there.
#
#   export ORT_DYLIB_PATH="$(scripts/install-ort.sh)"
#
# Knobs:
#   ORT_PYTHON   interpreter whose pip downloads the wheel (default: the first python3 on PATH)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ORT_VERSION="1.31.1"

main() {
    local dir="$MESHWATCH_CACHE/ort"
    local unpacked="$dir/onnxruntime-$ORT_VERSION"
    local lib="$unpacked/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
    if [[ ! -f "$lib" ]]; then
        with_cache_lock _install_locked "$dir" "$unpacked" "$lib"
    fi
    [[ -f "$lib" ]] || die "onnxruntime $ORT_VERSION unpacked but $lib is missing"
    log "onnxruntime $ORT_VERSION ($lib)"
    printf '%s\n' "$lib"
}

_install_locked() {
    local dir="$1" unpacked="$2" lib="$3"
    # another run may have finished while this one waited for the lock
    if [[ -f "$lib" ]]; then
        return 0
    fi
    local python="${ORT_PYTHON:-python3}"
    have "$python" || die "$python not found; install Python 3 with pip (or set ORT_PYTHON)"
    "$python" -m pip --version >/dev/null 2>&1 ||
        die "$python has no pip (Debian: apt-get install python3-pip), or set ORT_PYTHON"
    ensure_dir "$dir"
    local wheel
    wheel="$(_find_wheel "$dir")"
    if [[ -z "$wheel" ]]; then
        log "downloading onnxruntime==$ORT_VERSION into $dir"
        "$python" -m pip download --disable-pip-version-check --no-input -q --no-deps \
            "onnxruntime==$ORT_VERSION" --only-binary :all: -d "$dir" ||
            die "pip download onnxruntime==$ORT_VERSION failed (is there a wheel for this platform and $("$python" --version 2>&1)?)"
        wheel="$(_find_wheel "$dir")"
        [[ -n "$wheel" ]] || die "pip download finished but no onnxruntime-$ORT_VERSION wheel is in $dir"
    fi
    log "unpacking $(basename "$wheel")"
    rm -rf "$unpacked.tmp"
    "$python" -m zipfile -e "$wheel" "$unpacked.tmp" || die "cannot unpack $wheel"
    [[ -f "$unpacked.tmp/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" ]] ||
        die "$wheel has no onnxruntime/capi/libonnxruntime.so.$ORT_VERSION (not a Linux wheel?)"
    rm -rf "$unpacked"
    mv "$unpacked.tmp" "$unpacked"
}

# _find_wheel DIR: print the newest downloaded wheel of this version, if any.
_find_wheel() {
    local wheel
    for wheel in "$1"/onnxruntime-"$ORT_VERSION"-*.whl; do
        if [[ -f "$wheel" ]]; then
            printf '%s\n' "$wheel"
            return 0
        fi
    done
}

main "$@"
