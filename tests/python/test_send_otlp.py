"""Self-test of send_otlp.py against an in-process OTLP receiver (gRPC and HTTP).

Checks that what the receiver gets matches the JSON summary the Rust system tests compare with:
span kinds per service, parent links across the three TracerProviders, the database client span,
error statuses, client/server durations, determinism for a fixed seed and start time, and a
non-zero exit with "ok": false when nothing listens.

    $MESHWATCH_PYTHON -m unittest discover -s tests/python -v
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import unittest
from collections import Counter
from pathlib import Path

from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_sink import GrpcSink, HttpSink

SCRIPT = Path(__file__).resolve().parent / "send_otlp.py"
START = 1_700_000_000_000_000_000
KIND = {trace_pb2.Span.SPAN_KIND_SERVER: "SERVER", trace_pb2.Span.SPAN_KIND_CLIENT: "CLIENT"}


def run(protocol: str, endpoint: str, *extra: str, traces: int = 12) -> tuple[int, dict, str]:
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--protocol",
            protocol,
            "--endpoint",
            endpoint,
            "--traces",
            str(traces),
            "--start-unix-nano",
            str(START),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines else {}
    return proc.returncode, summary, proc.stderr


def flatten(requests) -> list[tuple[dict[str, str], trace_pb2.Span]]:
    out = []
    for request in requests:
        for rs in request.resource_spans:
            attrs = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                out.extend((attrs, span) for span in ss.spans)
    return out


def span_attrs(span: trace_pb2.Span) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in span.attributes}


def ms(span: trace_pb2.Span) -> float:
    return (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6


def derive(spans) -> dict:
    """Graph facts computed from the received spans, independently of send_otlp.py."""
    by_service: dict[str, Counter] = {}
    clients = {}
    for attrs, span in spans:
        by_service.setdefault(attrs["service.name"], Counter())[KIND[span.kind]] += 1
        if span.kind == trace_pb2.Span.SPAN_KIND_CLIENT:
            clients[(span.trace_id, span.span_id)] = (attrs["service.name"], span)
    edges: dict[tuple[str, str], dict] = {}

    def edge(caller: str, callee: str) -> dict:
        return edges.setdefault((caller, callee), {"calls": 0, "errors": 0, "client_ms": set(), "server_ms": set()})

    requests, errors = Counter(), Counter()
    for attrs, span in spans:
        service = attrs["service.name"]
        failed = span.status.code == trace_pb2.Status.STATUS_CODE_ERROR
        if span.kind == trace_pb2.Span.SPAN_KIND_SERVER:
            requests[service] += 1
            errors[service] += failed
            if not span.parent_span_id:
                e = edge("user", service)
            else:
                caller, client = clients[(span.trace_id, span.parent_span_id)]
                failed = failed or client.status.code == trace_pb2.Status.STATUS_CODE_ERROR
                e = edge(caller, service)
                e["client_ms"].add(ms(client))
            e["calls"] += 1
            e["errors"] += failed
            e["server_ms"].add(ms(span))
        elif "db.system" in span_attrs(span):
            a = span_attrs(span)
            db = f"{a['db.system']}/{a['db.namespace']}"
            e = edge(service, db)
            e["calls"] += 1
            e["errors"] += failed
            e["client_ms"].add(ms(span))
            requests[db] += 1
            errors[db] += failed
    return {"by_service": by_service, "edges": edges, "requests": requests, "errors": errors}


class SendOtlpTest(unittest.TestCase):
    def check(self, sink_type, protocol: str, *extra: str) -> list:
        traces = 12
        with sink_type() as sink:
            rc, summary, stderr = run(protocol, sink.endpoint, *extra, traces=traces)
            requests = sink.recorder.requests
        self.assertEqual(rc, 0, stderr)
        self.assertTrue(summary["ok"], summary)
        spans = flatten(requests)
        self.assertEqual(len(spans), summary["spans"]["total"])
        self.assertEqual(len(spans), 6 * traces)
        self.assertEqual(len({s.trace_id for _, s in spans}), traces)
        for attrs, span in spans:
            self.assertEqual(attrs["k8s.cluster.name"], "py-cluster")
            self.assertEqual(len(span.trace_id), 16)
            self.assertEqual(len(span.span_id), 8)
            self.assertGreaterEqual(span.start_time_unix_nano, START)
        # One resource per request: each service exports through its own provider.
        for request in requests:
            self.assertEqual(
                len(
                    {
                        tuple(sorted((kv.key, kv.value.string_value) for kv in rs.resource.attributes))
                        for rs in request.resource_spans
                    }
                ),
                1,
            )

        got = derive(spans)
        self.assertEqual({k: dict(v) for k, v in got["by_service"].items()}, summary["spans"]["by_service"])
        want_edges = {(e["caller"], e["callee"]): e for e in summary["edges"]}
        self.assertEqual(set(got["edges"]), set(want_edges))
        for key, e in got["edges"].items():
            want = want_edges[key]
            self.assertEqual(e["calls"], want["calls"], key)
            self.assertEqual(e["errors"], want["errors"], key)
            if "client_ms" in want:
                self.assertEqual(e["client_ms"], {float(want["client_ms"])}, key)
            if "server_ms" in want:
                self.assertEqual(e["server_ms"], {float(want["server_ms"])}, key)
        self.assertEqual(want_edges[("checkout", "payments")]["errors"], traces // 5)
        for node in summary["nodes"]:
            if node["kind"] == "user":
                continue
            self.assertEqual(got["requests"][node["name"]], node["requests"], node)
            self.assertEqual(got["errors"][node["name"]], node["errors"], node)
        return sorted(
            (s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind, s.start_time_unix_nano, s.end_time_unix_nano)
            for _, s in spans
        )

    def test_grpc(self) -> None:
        first = self.check(GrpcSink, "grpc")
        again = self.check(GrpcSink, "grpc", "--processor", "simple", "--compression", "gzip")
        self.assertEqual(first, again, "same seed and start time must give the same spans")

    def test_http(self) -> None:
        first = self.check(HttpSink, "http")
        gz = self.check(HttpSink, "http", "--compression", "gzip")
        self.assertEqual(first, gz)

    def test_other_seed_other_ids(self) -> None:
        a = self.check(HttpSink, "http", "--seed", "1")
        b = self.check(HttpSink, "http", "--seed", "2")
        self.assertNotEqual({x[0] for x in a}, {x[0] for x in b})

    def test_nothing_listening_fails(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        for protocol in ("grpc", "http"):
            rc, summary, stderr = run(protocol, f"http://127.0.0.1:{port}", "--timeout", "1", traces=3)
            self.assertEqual(rc, 1, protocol)
            self.assertFalse(summary["ok"])
            self.assertIn("failed", stderr)


if __name__ == "__main__":
    unittest.main()
