#!/usr/bin/env python3
"""Send resource metrics (and a few spans) for two services with the real OpenTelemetry Python SDK.

Used by the Rust tests as a third-party OTLP metrics client of the ingest service:

    $MESHWATCH_PYTHON tests/python/send_metrics.py --protocol grpc --endpoint http://127.0.0.1:4317
    $MESHWATCH_PYTHON tests/python/send_metrics.py --protocol http --endpoint http://127.0.0.1:4318

(``scripts/install-python-otel.sh`` installs the SDK.) Each service has its own MeterProvider and
TracerProvider with the same Resource (``service.name``, ``k8s.cluster.name`` = ``py-metrics`` by
default) and its own exporters:

    frontend  container.cpu.utilization   ObservableGauge, 1     (gauge, double)
              container.memory.usage      ObservableGauge, By    (gauge, int)
              container.network.io        ObservableCounter, By  (cumulative sum, per network.io.direction)
              http.server.active_requests ObservableGauge        (not in the mapping: ignored)
    payments  process.cpu.time            Counter, s             (cumulative sum, per cpu.mode)
              process.memory.usage        ObservableUpDownCounter, By (cumulative non-monotonic sum)

First every service sends ``--spans`` root SERVER spans ending just before the metrics start (so
that the snapshots hold spans and metrics together), then ``--collections`` collections of every
MeterProvider run ``--interval`` seconds apart (``force_flush``: collect and export), each with its
own values. Every export is recorded (the data points exactly as the SDK exported them), and the
summary derives from them what the ingest must report per service and window of ``--window-ms``
(docs/resource-metrics.md): gauge and up-down-counter levels averaged over the window's points;
counters as the increase from the series' previous point over the time between them, summed over
the series (so a service's first collection gives no rate); nothing else (memory utilisation,
restarts, payments' network) is reported.

The exit status is 1 when any export failed; the last line on stdout is a JSON summary (also on
failure, with "ok": false).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import threading
import time
from collections import defaultdict
from urllib.parse import urlsplit, urlunsplit

try:
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.sdk.metrics import (
        Counter,
        Histogram,
        MeterProvider,
        ObservableCounter,
        ObservableGauge,
        ObservableUpDownCounter,
        UpDownCounter,
    )
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Gauge,
        MetricExporter,
        MetricExportResult,
        MetricsData,
        PeriodicExportingMetricReader,
        Sum,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON
    from opentelemetry.trace import SpanKind
    from opentelemetry.version import __version__ as OTEL_VERSION
except ImportError as exc:  # pragma: no cover - environment problem, reported clearly
    sys.exit(
        f"send_metrics.py: the OpenTelemetry SDK is not importable ({exc}); run "
        "scripts/install-python-otel.sh and use $MESHWATCH_CACHE/venv/bin/python"
    )

# The trace side (exporter wrapper, exporter factory, resource) is send_otlp.py's.
from send_otlp import RecordingExporter, make_exporter, resource  # noqa: E402

SERVICES = ("frontend", "payments")
# Values per collection (index = collection number).
FRONTEND_CPU = (0.25, 0.5, 0.125, 0.75)
FRONTEND_MEMORY = (200 * 2**20, 210 * 2**20, 190 * 2**20, 220 * 2**20)
FRONTEND_RX = (10_000, 60_000, 160_000, 200_000)
FRONTEND_TX = (5_000, 7_000, 7_000, 12_000)
PAYMENTS_CPU_USER = (0.5, 0.75, 1.0, 0.25)  # seconds added before each collection
PAYMENTS_CPU_SYSTEM = (0.125, 0.0, 0.25, 0.5)
PAYMENTS_MEMORY = (64 * 2**20, 80 * 2**20, 72 * 2**20, 96 * 2**20)

log = logging.getLogger("send_metrics")

ALL_CUMULATIVE = {
    Counter: AggregationTemporality.CUMULATIVE,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    Histogram: AggregationTemporality.CUMULATIVE,
    ObservableCounter: AggregationTemporality.CUMULATIVE,
    ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
}


class RecordingMetricExporter(MetricExporter):
    """Wraps a real exporter; records every data point it was asked to export, and the result."""

    def __init__(self, inner: MetricExporter) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self._lock = threading.Lock()
        self.calls = 0
        self.failed_calls = 0
        self.points: list[dict] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs) -> MetricExportResult:
        points = []
        for rm in metrics_data.resource_metrics:
            service = rm.resource.attributes.get("service.name")
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    data = metric.data
                    kind = "gauge" if isinstance(data, Gauge) else "sum" if isinstance(data, Sum) else "other"
                    for dp in data.data_points:
                        points.append(
                            {
                                "service": service,
                                "metric": metric.name,
                                "kind": kind,
                                "monotonic": bool(getattr(data, "is_monotonic", False)),
                                "temporality": getattr(getattr(data, "aggregation_temporality", None), "name", None),
                                "attributes": dict(dp.attributes or {}),
                                "start_time_unix_nano": int(dp.start_time_unix_nano or 0),
                                "time_unix_nano": int(dp.time_unix_nano),
                                "value": dp.value,
                            }
                        )
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:  # noqa: BLE001 - an exporter must not raise; count it as failed
            log.error("metric exporter raised: %r", exc)
            result = MetricExportResult.FAILURE
        with self._lock:
            self.calls += 1
            if result == MetricExportResult.SUCCESS:
                self.points.extend(points)
            else:
                self.failed_calls += 1
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def metrics_url(endpoint: str) -> str:
    """OTLP/HTTP: a base URL (no path) gets the standard /v1/metrics path; a full URL is kept."""
    parts = urlsplit(endpoint)
    if parts.path in ("", "/"):
        return urlunsplit((parts.scheme, parts.netloc, "/v1/metrics", parts.query, parts.fragment))
    return endpoint


def make_metric_exporter(protocol: str, endpoint: str, timeout: float, compression: str) -> MetricExporter:
    if protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(
            endpoint=endpoint,
            insecure=urlsplit(endpoint).scheme != "https",
            timeout=timeout,
            compression=grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression,
            preferred_temporality=ALL_CUMULATIVE,
        )
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(
        endpoint=metrics_url(endpoint),
        timeout=timeout,
        compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
        preferred_temporality=ALL_CUMULATIVE,
    )


class Workload:
    """The instruments of both services; ``step`` sets the values of the next collection."""

    def __init__(self, providers: dict[str, MeterProvider]) -> None:
        self.i = 0
        fe = providers["frontend"].get_meter("meshwatch.tests.send_metrics", "1")
        pay = providers["payments"].get_meter("meshwatch.tests.send_metrics", "1")
        fe.create_observable_gauge(
            "container.cpu.utilization", [self._frontend_cpu], unit="1", description="CPU busy fraction"
        )
        fe.create_observable_gauge("container.memory.usage", [self._frontend_memory], unit="By")
        fe.create_observable_counter("container.network.io", [self._frontend_network], unit="By")
        fe.create_observable_gauge("http.server.active_requests", [lambda _o: [Observation(3)]])
        self.payments_cpu = pay.create_counter("process.cpu.time", unit="s")
        pay.create_observable_up_down_counter("process.memory.usage", [self._payments_memory], unit="By")

    def _frontend_cpu(self, _options: CallbackOptions):
        return [Observation(FRONTEND_CPU[self.i])]

    def _frontend_memory(self, _options: CallbackOptions):
        return [Observation(FRONTEND_MEMORY[self.i])]

    def _frontend_network(self, _options: CallbackOptions):
        return [
            Observation(FRONTEND_RX[self.i], {"network.io.direction": "receive"}),
            Observation(FRONTEND_TX[self.i], {"network.io.direction": "transmit"}),
        ]

    def _payments_memory(self, _options: CallbackOptions):
        return [Observation(PAYMENTS_MEMORY[self.i])]

    def step(self, i: int) -> None:
        self.i = i
        self.payments_cpu.add(PAYMENTS_CPU_USER[i], {"cpu.mode": "user"})
        if PAYMENTS_CPU_SYSTEM[i] > 0:
            self.payments_cpu.add(PAYMENTS_CPU_SYSTEM[i], {"cpu.mode": "system"})


LEVELS = {
    "container.cpu.utilization": "cpu_utilization",
    "container.memory.usage": "memory_bytes",
    "process.memory.usage": "memory_bytes",
}


def expected(points: list[dict], window_ms: int) -> list[dict]:
    """What the ingest must report per (service, window) for this workload (one instance per
    service, at most one point per series and window): see the module docstring."""
    levels: dict[tuple, list[float]] = defaultdict(list)
    rates: dict[tuple, float] = defaultdict(float)
    windows: set[tuple] = set()
    last: dict[tuple, dict] = {}
    for p in sorted(points, key=lambda p: p["time_unix_nano"]):
        window = p["time_unix_nano"] // 1_000_000 // window_ms * window_ms
        key = (p["service"], window)
        name = p["metric"]
        if name in LEVELS:
            windows.add(key)
            levels[key + (LEVELS[name],)].append(float(p["value"]))
        elif name in ("container.network.io", "process.cpu.time"):
            windows.add(key)
            series = (p["service"], name, tuple(sorted(p["attributes"].items())))
            prev = last.get(series)
            last[series] = p
            if prev is None:
                continue
            field = (
                "cpu_utilization"
                if name == "process.cpu.time"
                else "network_rx_bytes_per_s"
                if p["attributes"].get("network.io.direction") == "receive"
                else "network_tx_bytes_per_s"
            )
            seconds = (p["time_unix_nano"] - prev["time_unix_nano"]) / 1e9
            increase = p["value"] - prev["value"] if p["value"] >= prev["value"] else p["value"]
            rates[key + (field,)] += increase / seconds
    out = []
    fields = ("cpu_utilization", "memory_bytes", "network_rx_bytes_per_s", "network_tx_bytes_per_s")
    for service, window in sorted(windows):
        row: dict = {"service": service, "window_start_ms": window}
        for field in fields:
            values = levels.get((service, window, field))
            if values:
                row[field] = math.fsum(values) / len(values)
            elif (service, window, field) in rates:
                row[field] = rates[(service, window, field)]
            else:
                row[field] = None
        row["memory_utilization"] = None
        row["restarts"] = None
        out.append(row)
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Send resource metrics for two services with the OpenTelemetry SDK.")
    p.add_argument("--protocol", choices=("grpc", "http"), required=True)
    p.add_argument(
        "--endpoint",
        required=True,
        help="grpc: http://HOST:PORT; http: http://HOST:PORT (then /v1/metrics is added) or a full URL",
    )
    p.add_argument("--cluster", default="py-metrics", help="k8s.cluster.name (default py-metrics)")
    p.add_argument("--collections", type=int, default=3, help=f"collections (1..{len(FRONTEND_CPU)})")
    p.add_argument("--interval", type=float, default=1.5, help="seconds between collections")
    p.add_argument("--spans", type=int, default=5, help="root SERVER spans per service, sent first")
    p.add_argument("--window-ms", type=int, default=1000, help="the ingest's window, for the expectations")
    p.add_argument("--compression", choices=("none", "gzip"), default="none")
    p.add_argument("--timeout", type=float, default=10.0, help="export timeout in seconds")
    args = p.parse_args(argv)
    if not 1 <= args.collections <= len(FRONTEND_CPU):
        p.error(f"--collections must be in 1..{len(FRONTEND_CPU)}")
    if args.interval < 0 or args.spans < 0 or args.window_ms < 1:
        p.error("--interval, --spans must be >= 0 and --window-ms >= 1")
    if not urlsplit(args.endpoint).netloc:
        p.error(f"--endpoint {args.endpoint!r} is not a URL like http://127.0.0.1:4317")
    return args


def send_spans(args: argparse.Namespace) -> tuple[dict, list[str]]:
    """Each service: ``--spans`` root SERVER spans of 10 ms, ending 100 ms before now."""
    export, problems = {}, []
    end = time.time_ns() - 100_000_000
    for service in SERVICES:
        exporter = RecordingExporter(make_exporter(args.protocol, args.endpoint, args.timeout, args.compression))
        provider = TracerProvider(resource=resource(service, args.cluster), sampler=ALWAYS_ON)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("meshwatch.tests.send_metrics", "1")
        for i in range(args.spans):
            t = end - i * 1_000_000
            tracer.start_span(f"GET /{service}", kind=SpanKind.SERVER, start_time=t - 10_000_000).end(end_time=t)
        provider.shutdown()
        export[service] = {"spans": args.spans, "exported_spans": exporter.exported_spans}
        if exporter.failed_calls or exporter.exported_spans != args.spans:
            problems.append(f"{service}: {exporter.exported_spans}/{args.spans} spans exported")
    return export, problems


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    span_export, problems = send_spans(args)

    exporters: dict[str, RecordingMetricExporter] = {}
    providers: dict[str, MeterProvider] = {}
    for service in SERVICES:
        exporter = RecordingMetricExporter(
            make_metric_exporter(args.protocol, args.endpoint, args.timeout, args.compression)
        )
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)
        providers[service] = MeterProvider(resource=resource(service, args.cluster), metric_readers=[reader])
        exporters[service] = exporter
    workload = Workload(providers)
    for i in range(args.collections):
        if i > 0:
            time.sleep(args.interval)
        workload.step(i)
        for service in SERVICES:
            providers[service].force_flush(timeout_millis=int((args.timeout + 5) * 1000))
    for provider in providers.values():
        provider.shutdown()

    points = [p for e in exporters.values() for p in e.points]
    export = {}
    for service, exporter in exporters.items():
        export[service] = {
            **span_export.get(service, {}),
            "metric_export_calls": exporter.calls,
            "failed_metric_export_calls": exporter.failed_calls,
            "data_points": len(exporter.points),
        }
        if exporter.failed_calls or exporter.calls < args.collections:
            problems.append(
                f"{service}: {exporter.failed_calls} of {exporter.calls} metric exports failed "
                f"({args.collections} collections)"
            )
    summary = {
        "ok": not problems,
        "protocol": args.protocol,
        "endpoint": metrics_url(args.endpoint) if args.protocol == "http" else args.endpoint,
        "compression": args.compression,
        "graph": args.cluster,
        "window_ms": args.window_ms,
        "collections": args.collections,
        "spans": {"total": args.spans * len(SERVICES), "per_service": args.spans},
        "data_points": len(points),
        "ignored_data_points": sum(1 for p in points if p["metric"] == "http.server.active_requests"),
        "expected": expected(points, args.window_ms),
        "points": points,
        "export": export,
        "seconds": round(time.monotonic() - started, 3),
        "sdk_version": OTEL_VERSION,
    }
    print(json.dumps(summary, separators=(",", ":")), flush=True)
    if problems:
        print(f"send_metrics.py: export over {args.protocol} failed: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
