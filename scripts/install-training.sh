#!/usr/bin/env bash
# Install the Python environment of the training package (training/, issue 4):
#   - Debian's PyTorch 1.13, scikit-learn, statsmodels, SciPy (apt: python3-torch python3-onnx
#     python3-sklearn python3-statsmodels python3-scipy) into /usr/bin/python3, when they are
#     missing (needs root, or sudo): built against Debian's numpy 1.24, like torch;
#   - $MESHWATCH_CACHE/venv-training, made with `/usr/bin/python3 -m venv --system-site-packages`
#     so it sees torch, onnx and Debian's numpy;
#   - onnxruntime, a newer onnx (its quantisation tools need onnx.reference), pytest + ruff,
#     exactly pinned in scripts/requirements/training.txt, and the package itself
#     (`pip install -e training --no-deps`).
# Prints the venv's python path on stdout. Idempotent: a second run checks a stamp and imports.
#
#   scripts/install-training.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SYSTEM_PYTHON=/usr/bin/python3
SYSTEM_PACKAGES=(python3-torch python3-onnx python3-venv python3-sklearn python3-statsmodels python3-scipy)
TRAINING_VENV="$MESHWATCH_CACHE/venv-training"
TRAINING_REQ="$MESHWATCH_SCRIPTS_DIR/requirements/training.txt"

system_torch_ok() {
    "$SYSTEM_PYTHON" -c 'import torch, onnx, numpy, sklearn, statsmodels, scipy' >/dev/null 2>&1
}

install_system_torch() {
    if system_torch_ok; then
        return 0
    fi
    [[ -x "$SYSTEM_PYTHON" ]] || die "$SYSTEM_PYTHON not found (Debian: apt-get install python3 python3-venv)"
    have apt-get || die "torch is missing from $SYSTEM_PYTHON and apt-get is not available"
    local sudo=()
    if ((EUID != 0)); then
        have sudo || die "installing python3-torch needs root (or sudo)"
        sudo=(sudo)
    fi
    log "installing Debian's ${SYSTEM_PACKAGES[*]} (apt-get)"
    if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${SYSTEM_PACKAGES[@]}" >/dev/null; then
        log "apt-get install failed; running apt-get update and retrying"
        "${sudo[@]}" apt-get update -q >/dev/null || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${SYSTEM_PACKAGES[@]}" >/dev/null ||
            die "apt-get install ${SYSTEM_PACKAGES[*]} failed"
    fi
    system_torch_ok || die "torch/onnx/numpy still do not import in $SYSTEM_PYTHON"
}

venv_ok() {
    [[ -x "$TRAINING_VENV/bin/python" ]] &&
        "$TRAINING_VENV/bin/python" -c 'import pip, torch, onnx, numpy' >/dev/null 2>&1
}

install_venv() {
    if ! venv_ok; then
        if [[ -e "$TRAINING_VENV" ]]; then
            warn "venv at $TRAINING_VENV is unusable; recreating it"
            rm -rf "$TRAINING_VENV"
        fi
        log "creating $TRAINING_VENV ($("$SYSTEM_PYTHON" --version 2>&1), --system-site-packages)"
        "$SYSTEM_PYTHON" -m venv --system-site-packages "$TRAINING_VENV" ||
            die "venv creation failed (Debian: apt-get install python3-venv)"
        venv_ok || die "the new venv at $TRAINING_VENV does not import pip, torch, onnx and numpy"
    fi
    local py="$TRAINING_VENV/bin/python" stamp="$TRAINING_VENV/.stamps/training" want
    want="$(
        {
            "$py" -c 'import sys; print(sys.version)'
            cat "$TRAINING_REQ" "$MESHWATCH_REPO_ROOT/training/pyproject.toml"
            printf '%s\n' "$MESHWATCH_REPO_ROOT"
        } | "$py" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
    )"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        log "training venv: up to date"
        return 0
    fi
    log "training venv: installing $(basename "$TRAINING_REQ") and training/ (editable)"
    "$py" -m pip install --disable-pip-version-check --no-input --quiet \
        --only-binary=:all: --requirement "$TRAINING_REQ" ||
        die "pip install -r $TRAINING_REQ failed"
    # --no-deps: numpy and torch are Debian's; pip must not replace them.
    "$py" -m pip install --disable-pip-version-check --no-input --quiet --no-deps \
        --no-build-isolation --editable "$MESHWATCH_REPO_ROOT/training" ||
        die "pip install -e training failed"
    mkdir -p "$TRAINING_VENV/.stamps"
    printf '%s\n' "$want" >"$stamp.tmp"
    mv "$stamp.tmp" "$stamp"
}

main() {
    with_cache_lock install_system_torch
    with_cache_lock install_venv
    local py="$TRAINING_VENV/bin/python"
    "$py" - <<'PY' || die "the training venv $TRAINING_VENV is broken"
import sys
import numpy, onnx, onnxruntime, sklearn, statsmodels, torch  # noqa: E401
import meshwatch_training  # noqa: F401
print(f"[meshwatch] torch=={torch.__version__} onnx=={onnx.__version__} "
      f"onnxruntime=={onnxruntime.__version__} numpy=={numpy.__version__}",
      file=sys.stderr)
PY
    printf '%s\n' "$py"
}

main "$@"
