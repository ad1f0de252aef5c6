#!/usr/bin/env bash
# Install the OpenTelemetry Python SDK and the OTLP exporters (gRPC + HTTP/protobuf), exactly
# pinned in scripts/requirements/otel.txt, and numpy (scripts/requirements/data.txt, to read the
# datasets `meshwatch dataset build` writes) into $MESHWATCH_CACHE/venv. Used by tests/python/.
# Idempotent: a second run only checks the stamp and imports the packages.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
    pip_install_pinned otel "$MESHWATCH_SCRIPTS_DIR/requirements/otel.txt"
    pip_install_pinned data "$MESHWATCH_SCRIPTS_DIR/requirements/data.txt"
    local py
    py="$(venv_python)"
    "$py" - <<'PY' || die "the OpenTelemetry packages or numpy in $MESHWATCH_VENV do not import"
import importlib.metadata as md
import sys
import grpc  # noqa: F401
import google.protobuf  # noqa: F401
from opentelemetry.sdk.trace import TracerProvider  # noqa: F401
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: F401
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as H  # noqa: F401
import numpy  # noqa: F401
names = ["opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-grpc",
         "opentelemetry-exporter-otlp-proto-http", "protobuf", "grpcio", "numpy"]
print("[meshwatch] " + " ".join(f"{n}=={md.version(n)}" for n in names), file=sys.stderr)
PY
    printf '%s\n' "$py"
}

main "$@"
