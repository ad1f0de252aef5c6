#!/usr/bin/env python3
"""Send a small deterministic trace workload over OTLP with the real OpenTelemetry Python SDK.

Used by the Rust system tests as a third-party OTLP client of the ingest service:

    $MESHWATCH_PYTHON tests/python/send_otlp.py --protocol grpc --endpoint http://127.0.0.1:4317 --traces 20
    $MESHWATCH_PYTHON tests/python/send_otlp.py --protocol http --endpoint http://127.0.0.1:4318 --traces 20

(``scripts/install-python-otel.sh`` installs the SDK; ``scripts/test.sh`` exports MESHWATCH_PYTHON.)

Topology, one trace per iteration, each service with its own TracerProvider and Resource
(``service.name``, ``k8s.cluster.name`` = ``py-cluster`` by default) and its own exporter:

    frontend  SERVER  GET /checkout                      (root; the caller is the virtual `user`)
    frontend  CLIENT  POST /api/checkout                 -> checkout
    checkout  SERVER  POST /api/checkout
    checkout  CLIENT  SELECT orders  db.system=postgresql db.namespace=orders   (no server span)
    checkout  CLIENT  POST /api/charge                   -> payments
    payments  SERVER  POST /api/charge                   every 5th one: status ERROR

The context crosses "process" boundaries as in real services: the caller injects W3C
``traceparent`` into a dict, the callee extracts it (no real HTTP). Times are fixed offsets from a
base time (default: so that the last span ends one second before the send starts), and trace and
span ids come from a seeded generator: the same flags give the same spans.

Exporting: every provider is force-flushed and shut down; the exit status is 1 when any export
failed (endpoint down, refused, timed out) or any span was not exported, and 0 otherwise. The last
line on stdout is a JSON summary (also printed on failure, with "ok": false): spans per service and
kind, the expected nodes and edges with call and error counts, and what the exporters reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

try:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    from opentelemetry.version import __version__ as OTEL_VERSION
except ImportError as exc:  # pragma: no cover - environment problem, reported clearly
    sys.exit(
        f"send_otlp.py: the OpenTelemetry SDK is not importable ({exc}); run "
        "scripts/install-python-otel.sh and use $MESHWATCH_CACHE/venv/bin/python"
    )

SERVICES = ("frontend", "checkout", "payments")
ERROR_EVERY = 5
# Offsets (ms) of each span inside one trace: (start, end). Client spans last longer than the
# server spans they call, so the client-minus-server gap is positive on every remote edge.
T_FRONTEND_SERVER = (0, 60)
T_FRONTEND_CLIENT = (2, 56)
T_CHECKOUT_SERVER = (4, 52)  # gap on frontend -> checkout: 54 - 48 = 6 ms
T_DB_CLIENT = (6, 16)
T_PAYMENTS_CLIENT = (18, 50)
T_PAYMENTS_SERVER = (21, 46)  # gap on checkout -> payments: 32 - 25 = 7 ms
TRACE_LENGTH_MS = T_FRONTEND_SERVER[1]

log = logging.getLogger("send_otlp")


class SeededIds(IdGenerator):
    """Deterministic ids: SHA-256 of (seed, counter), never zero. Shared by all providers."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._n = 0
        self._lock = threading.Lock()

    def _next(self, nbytes: int) -> int:
        with self._lock:
            self._n += 1
            n = self._n
        digest = hashlib.sha256(f"meshwatch-send-otlp:{self._seed}:{n}".encode()).digest()
        return int.from_bytes(digest[:nbytes], "big") or 1

    def generate_span_id(self) -> int:
        return self._next(8)

    def generate_trace_id(self) -> int:
        return self._next(16)


class RecordingExporter(SpanExporter):
    """Wraps a real exporter and counts what it acknowledged, since span processors drop results."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.calls = 0
        self.exported_spans = 0
        self.failed_calls = 0
        self.failed_spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception as exc:  # noqa: BLE001 - an exporter must not raise; count it as failed
            log.error("exporter raised: %r", exc)
            result = SpanExportResult.FAILURE
        with self._lock:
            self.calls += 1
            if result == SpanExportResult.SUCCESS:
                self.exported_spans += len(spans)
            else:
                self.failed_calls += 1
                self.failed_spans += len(spans)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


def traces_url(endpoint: str) -> str:
    """OTLP/HTTP: a base URL (no path) gets the standard /v1/traces path; a full URL is kept."""
    parts = urlsplit(endpoint)
    if parts.path in ("", "/"):
        return urlunsplit((parts.scheme, parts.netloc, "/v1/traces", parts.query, parts.fragment))
    return endpoint


def make_exporter(protocol: str, endpoint: str, timeout: float, compression: str) -> SpanExporter:
    if protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        parts = urlsplit(endpoint)
        return OTLPSpanExporter(
            endpoint=endpoint,
            insecure=parts.scheme != "https",
            timeout=timeout,
            compression=grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression,
        )
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=traces_url(endpoint),
        timeout=timeout,
        compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
    )


def resource(service: str, cluster: str) -> Resource:
    # Built directly (not Resource.create) so OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME in the
    # environment cannot change what the test expects.
    return Resource(
        {
            "service.name": service,
            "k8s.cluster.name": cluster,
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.language": "python",
            "telemetry.sdk.version": OTEL_VERSION,
        }
    )


def carrier_from(span: trace.Span) -> dict[str, str]:
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def context_from(carrier: dict[str, str]):
    return TraceContextTextMapPropagator().extract(carrier)


def run_workload(tracers: dict[str, trace.Tracer], n: int, base_ns: int, interval_ns: int) -> int:
    """Emits n traces; returns how many payments server spans got status ERROR."""
    ms = 1_000_000
    errors = 0
    fe, co, pay = tracers["frontend"], tracers["checkout"], tracers["payments"]
    for i in range(n):
        t0 = base_ns + i * interval_ns

        def at(offsets: tuple[int, int], t0: int = t0) -> tuple[int, int]:
            return t0 + offsets[0] * ms, t0 + offsets[1] * ms

        s, e = at(T_FRONTEND_SERVER)
        root = fe.start_span(
            "GET /checkout",
            kind=SpanKind.SERVER,
            start_time=s,
            attributes={
                "http.request.method": "GET",
                "http.route": "/checkout",
                "url.scheme": "http",
                "http.response.status_code": 200,
            },
        )
        root_end = e

        s, e = at(T_FRONTEND_CLIENT)
        fe_client = fe.start_span(
            "POST /api/checkout",
            context=trace.set_span_in_context(root),
            kind=SpanKind.CLIENT,
            start_time=s,
            attributes={
                "http.request.method": "POST",
                "server.address": "checkout",
                "server.port": 8080,
                "url.full": "http://checkout:8080/api/checkout",
                "http.response.status_code": 200,
            },
        )
        fe_client_end = e

        # --- checkout process: the parent arrives as a W3C traceparent header.
        s, e = at(T_CHECKOUT_SERVER)
        co_server = co.start_span(
            "POST /api/checkout",
            context=context_from(carrier_from(fe_client)),
            kind=SpanKind.SERVER,
            start_time=s,
            attributes={
                "http.request.method": "POST",
                "http.route": "/api/checkout",
                "url.scheme": "http",
                "http.response.status_code": 200,
            },
        )
        co_server_end = e
        co_ctx = trace.set_span_in_context(co_server)

        s, e = at(T_DB_CLIENT)
        db = co.start_span(
            "SELECT orders",
            context=co_ctx,
            kind=SpanKind.CLIENT,
            start_time=s,
            attributes={"db.system": "postgresql", "db.namespace": "orders"},
        )
        db.end(end_time=e)

        s, e = at(T_PAYMENTS_CLIENT)
        pay_client = co.start_span(
            "POST /api/charge",
            context=co_ctx,
            kind=SpanKind.CLIENT,
            start_time=s,
            attributes={
                "http.request.method": "POST",
                "server.address": "payments",
                "server.port": 8080,
                "url.full": "http://payments:8080/api/charge",
            },
        )
        pay_client_end = e

        # --- payments process.
        failed = (i + 1) % ERROR_EVERY == 0
        s, e = at(T_PAYMENTS_SERVER)
        pay_server = pay.start_span(
            "POST /api/charge",
            context=context_from(carrier_from(pay_client)),
            kind=SpanKind.SERVER,
            start_time=s,
            attributes={
                "http.request.method": "POST",
                "http.route": "/api/charge",
                "url.scheme": "http",
                "http.response.status_code": 500 if failed else 200,
            },
        )
        if failed:
            pay_server.set_status(Status(StatusCode.ERROR, "card declined"))
            errors += 1
        pay_server.end(end_time=e)

        pay_client.end(end_time=pay_client_end)
        co_server.end(end_time=co_server_end)
        fe_client.end(end_time=fe_client_end)
        root.end(end_time=root_end)
    return errors


def expected(n: int, errors: int, cluster: str) -> dict:
    def dur(t: tuple[int, int]) -> int:
        return t[1] - t[0]

    return {
        "graph": cluster,
        "spans": {
            "total": 6 * n,
            "by_service": {
                "frontend": {"SERVER": n, "CLIENT": n},
                "checkout": {"SERVER": n, "CLIENT": 2 * n},
                "payments": {"SERVER": n},
            },
        },
        "nodes": [
            {"name": "user", "kind": "user"},
            {"name": "frontend", "kind": "service", "requests": n, "errors": 0, "server_ms": dur(T_FRONTEND_SERVER)},
            {"name": "checkout", "kind": "service", "requests": n, "errors": 0, "server_ms": dur(T_CHECKOUT_SERVER)},
            {
                "name": "payments",
                "kind": "service",
                "requests": n,
                "errors": errors,
                "server_ms": dur(T_PAYMENTS_SERVER),
            },
            {
                "name": "postgresql/orders",
                "kind": "database",
                "requests": n,
                "errors": 0,
                "attributes": {"db.system": "postgresql", "db.namespace": "orders"},
            },
        ],
        # Errors: only the payments SERVER span carries status ERROR (its client span does not).
        "edges": [
            {"caller": "user", "callee": "frontend", "calls": n, "errors": 0, "server_ms": dur(T_FRONTEND_SERVER)},
            {
                "caller": "frontend",
                "callee": "checkout",
                "calls": n,
                "errors": 0,
                "client_ms": dur(T_FRONTEND_CLIENT),
                "server_ms": dur(T_CHECKOUT_SERVER),
            },
            {
                "caller": "checkout",
                "callee": "postgresql/orders",
                "calls": n,
                "errors": 0,
                "client_ms": dur(T_DB_CLIENT),
                "virtual": "database",
            },
            {
                "caller": "checkout",
                "callee": "payments",
                "calls": n,
                "errors": errors,
                "client_ms": dur(T_PAYMENTS_CLIENT),
                "server_ms": dur(T_PAYMENTS_SERVER),
            },
        ],
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Send a deterministic 3-service OTLP trace workload with the OpenTelemetry SDK."
    )
    p.add_argument("--protocol", choices=("grpc", "http"), required=True)
    p.add_argument(
        "--endpoint",
        required=True,
        help="grpc: http://HOST:PORT; http: http://HOST:PORT (then /v1/traces is added) or a full URL",
    )
    p.add_argument("--traces", type=int, required=True, help="number of traces (>= 1)")
    p.add_argument("--cluster", default="py-cluster", help="k8s.cluster.name (default py-cluster)")
    p.add_argument("--seed", type=int, default=1, help="seed of the trace/span id generator")
    p.add_argument("--start-unix-nano", type=int, help="start of the first trace (default: see above)")
    p.add_argument("--interval-ms", type=int, default=10, help="time between trace starts")
    p.add_argument("--processor", choices=("batch", "simple"), default="batch")
    p.add_argument("--compression", choices=("none", "gzip"), default="none")
    p.add_argument("--timeout", type=float, default=10.0, help="export timeout in seconds")
    args = p.parse_args(argv)
    if args.traces < 1:
        p.error("--traces must be >= 1")
    if args.interval_ms < 0:
        p.error("--interval-ms must be >= 0")
    if not urlsplit(args.endpoint).netloc:
        p.error(f"--endpoint {args.endpoint!r} is not a URL like http://127.0.0.1:4317")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    ids = SeededIds(args.seed)
    exporters: dict[str, RecordingExporter] = {}
    providers: dict[str, TracerProvider] = {}
    tracers: dict[str, trace.Tracer] = {}
    for service in SERVICES:
        exporter = RecordingExporter(make_exporter(args.protocol, args.endpoint, args.timeout, args.compression))
        provider = TracerProvider(resource=resource(service, args.cluster), sampler=ALWAYS_ON, id_generator=ids)
        processor = BatchSpanProcessor(exporter) if args.processor == "batch" else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        exporters[service], providers[service] = exporter, provider
        tracers[service] = provider.get_tracer("meshwatch.tests.send_otlp", "1")

    interval_ns = args.interval_ms * 1_000_000
    span_ns = (args.traces - 1) * interval_ns + TRACE_LENGTH_MS * 1_000_000
    base_ns = args.start_unix_nano if args.start_unix_nano is not None else time.time_ns() - span_ns - 1_000_000_000

    started = time.monotonic()
    errors = run_workload(tracers, args.traces, base_ns, interval_ns)
    flushed = {}
    for service, provider in providers.items():
        flushed[service] = provider.force_flush(timeout_millis=int((args.timeout + 5) * 1000))
        provider.shutdown()
    took = time.monotonic() - started

    want = expected(args.traces, errors, args.cluster)
    by_service = want["spans"]["by_service"]
    export = {}
    problems = []
    for service, exporter in exporters.items():
        sent = sum(by_service[service].values())
        export[service] = {
            "spans": sent,
            "exported_spans": exporter.exported_spans,
            "export_calls": exporter.calls,
            "failed_calls": exporter.failed_calls,
            "failed_spans": exporter.failed_spans,
            "flushed": flushed[service],
        }
        if exporter.failed_calls or exporter.exported_spans != sent or not flushed[service]:
            problems.append(
                f"{service}: {exporter.exported_spans}/{sent} spans exported, "
                f"{exporter.failed_calls} failed export calls, flush {'ok' if flushed[service] else 'timed out'}"
            )

    summary = {
        "ok": not problems,
        "protocol": args.protocol,
        "endpoint": traces_url(args.endpoint) if args.protocol == "http" else args.endpoint,
        "compression": args.compression,
        "processor": args.processor,
        "traces": args.traces,
        "seed": args.seed,
        "first_start_unix_nano": str(base_ns),
        "last_end_unix_nano": str(base_ns + span_ns),
        "interval_ms": args.interval_ms,
        "error_every": ERROR_EVERY,
        **want,
        "export": export,
        "seconds": round(took, 3),
        "sdk_version": OTEL_VERSION,
    }
    print(json.dumps(summary, separators=(",", ":"), sort_keys=False), flush=True)
    if problems:
        print(
            f"send_otlp.py: export to {summary['endpoint']} over {args.protocol} failed: " + "; ".join(problems),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
