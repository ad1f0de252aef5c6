-- The graph at a time, nodes: every node of the window that starts at at_ms.
-- Parameters: graph, at_ms (Unix ms of the window start).
SELECT graph, window_start, window_ms, service, kind, requests, errors, latency_p50_ms,
       latency_p95_ms, latency_p99_ms, latency_mean_ms, out_calls, out_errors,
       out_latency_p99_ms, in_gap_p99_ms, spans, cpu_utilization, memory_bytes
FROM graph_nodes FINAL
WHERE graph = {graph:String}
  AND window_start = fromUnixTimestamp64Milli({at_ms:Int64}, 'UTC')
ORDER BY service
