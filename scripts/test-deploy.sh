#!/usr/bin/env bash
# The deployment checks: the Helm chart (helm/meshwatch), the Kustomize manifests and examples
# (k8s/), the Dockerfile (deploy/docker/) and the Grafana dashboards, rendered and validated
# offline (no cluster, no Docker engine). Exits non-zero when any check fails.
#
#   scripts/test-deploy.sh [PYTEST_ARGS...]
#
# Installs into $MESHWATCH_CACHE/venv-deploy (once; a stamp skips pip afterwards):
# helm-python-sdk (the Helm v4 SDK: lint, render), kubernetes-validate (offline Kubernetes
# schemas), pytest and ruff, exactly pinned in deploy/tests/requirements.txt. Then lints the
# Python of deploy/ (ruff) and runs deploy/tests/:
#   - the chart rendered for every helm/meshwatch/ci/*-values.yaml and checked object by object
#     with kubernetes-validate --strict against Kubernetes $MESHWATCH_KUBE_VERSION (1.33.0),
#     assertions on the rendered objects, helm lint, invalid values refused by the schema;
#   - `kubectl kustomize` of k8s/base and each overlay, validated the same way, and the examples;
#   - static checks of deploy/docker/Dockerfile and .dockerignore;
#   - the dashboards' SQL run against the real schema in a ClickHouse 26.9 (scripts/clickhouse.sh;
#     one already running, or CLICKHOUSE_URL, is reused), their PromQL against the metric names
#     in the sources;
#   - the rendered config files read by each service's --check-config: the binaries must be
#     there (MESHWATCH_BIN_DIR, else $CARGO_TARGET_DIR/{release,debug}; nothing is built here:
#     scripts/test.sh builds them first); without them those checks fail, naming what is missing.
#
# Knobs:
#   MESHWATCH_KUBE_VERSION=1.33.0   Kubernetes version to validate against
#   MESHWATCH_DEPLOY_CLICKHOUSE=0   do not start a ClickHouse (use CLICKHOUSE_URL's; without one the SQL checks fail)
#   MESHWATCH_BIN_DIR               directory with the meshwatch-* binaries
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEPLOY_VENV="$MESHWATCH_CACHE/venv-deploy"
DEPLOY_REQ="$MESHWATCH_REPO_ROOT/deploy/tests/requirements.txt"
STARTED_CLICKHOUSE=0

deploy_venv_ok() {
    [[ -x "$DEPLOY_VENV/bin/python" ]] && "$DEPLOY_VENV/bin/python" -c 'import pip' >/dev/null 2>&1
}

install_deploy_venv() {
    if ! deploy_venv_ok; then
        have "$MESHWATCH_BOOTSTRAP_PYTHON" ||
            die "$MESHWATCH_BOOTSTRAP_PYTHON not found; install Python 3.11+ (Debian: apt-get install python3 python3-venv)"
        if [[ -e "$DEPLOY_VENV" ]]; then
            warn "venv at $DEPLOY_VENV is unusable; recreating it"
            rm -rf "$DEPLOY_VENV"
        fi
        log "creating $DEPLOY_VENV ($("$MESHWATCH_BOOTSTRAP_PYTHON" --version 2>&1))"
        "$MESHWATCH_BOOTSTRAP_PYTHON" -m venv "$DEPLOY_VENV" ||
            die "python3 -m venv failed (Debian: apt-get install python3-venv)"
        deploy_venv_ok || die "the new venv at $DEPLOY_VENV has no working pip"
    fi
    local py="$DEPLOY_VENV/bin/python" stamp="$DEPLOY_VENV/.stamps/deploy" want
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "the deployment checks need Python 3.11+ (tomllib); set MESHWATCH_BOOTSTRAP_PYTHON"
    want="$(
        {
            "$py" -c 'import sys; print(sys.version)'
            cat "$DEPLOY_REQ"
        } | "$py" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
    )"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        log "deploy venv: up to date"
        return 0
    fi
    log "deploy venv: installing $(basename "$DEPLOY_REQ")"
    "$py" -m pip install --disable-pip-version-check --no-input --quiet \
        --only-binary=:all: --requirement "$DEPLOY_REQ" ||
        die "pip install -r $DEPLOY_REQ failed"
    "$py" -m pip check --disable-pip-version-check >/dev/null ||
        die "pip check reports broken requirements in $DEPLOY_VENV"
    mkdir -p "$DEPLOY_VENV/.stamps"
    printf '%s\n' "$want" >"$stamp.tmp"
    mv "$stamp.tmp" "$stamp"
}

cleanup() {
    local rc=$?
    if ((STARTED_CLICKHOUSE)); then
        "$MESHWATCH_SCRIPTS_DIR/clickhouse.sh" stop >/dev/null || warn "could not stop ClickHouse"
    fi
    exit "$rc"
}

start_clickhouse() {
    if [[ -n "${CLICKHOUSE_URL:-}" ]]; then
        log "ClickHouse: using CLICKHOUSE_URL=$CLICKHOUSE_URL"
        return 0
    fi
    if [[ "${MESHWATCH_DEPLOY_CLICKHOUSE:-1}" == 0 ]]; then
        warn "MESHWATCH_DEPLOY_CLICKHOUSE=0: the dashboards' SQL is not run against ClickHouse"
        return 0
    fi
    "$MESHWATCH_SCRIPTS_DIR/install-clickhouse.sh" >/dev/null
    if "$MESHWATCH_SCRIPTS_DIR/clickhouse.sh" status >/dev/null 2>&1; then
        log "ClickHouse: reusing the running server (left running)"
    else
        STARTED_CLICKHOUSE=1
    fi
    "$MESHWATCH_SCRIPTS_DIR/clickhouse.sh" start >/dev/null
    # shellcheck disable=SC1091 # written at run time by clickhouse.sh
    set -a && source "$MESHWATCH_RUN/clickhouse.env" && set +a
    export CLICKHOUSE_URL
    log "ClickHouse: $CLICKHOUSE_URL"
}

main() {
    cd "$MESHWATCH_REPO_ROOT"
    section "deploy checks: install"
    with_cache_lock install_deploy_venv
    have kubectl || die "kubectl not found: it builds the Kustomize overlays (kubectl kustomize); install the kubectl client"
    export MESHWATCH_KUBE_VERSION="${MESHWATCH_KUBE_VERSION:-1.33.0}"
    log "helm-python-sdk $("$DEPLOY_VENV/bin/python" -c 'import helm_python as h; print(h.helm_sdk_version())'), kubernetes-validate against Kubernetes $MESHWATCH_KUBE_VERSION, $(kubectl version --client 2>/dev/null | head -n 1)"

    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    start_clickhouse

    section "deploy checks: ruff (deploy/)"
    "$DEPLOY_VENV/bin/ruff" check --no-cache deploy
    "$DEPLOY_VENV/bin/ruff" format --no-cache --check deploy

    section "deploy checks: deploy/tests"
    "$DEPLOY_VENV/bin/python" -m pytest -q -p no:cacheprovider --rootdir=deploy/tests deploy/tests "$@"
}

main "$@"
