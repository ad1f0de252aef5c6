-- The graph at a time, edges: every edge of the window that starts at at_ms.
-- Parameters: graph, at_ms (Unix ms of the window start).
SELECT graph, window_start, window_ms, caller, callee, connection_type, calls, errors,
       paired_calls, client_p50_ms, client_p99_ms, server_p99_ms, gap_p99_ms
FROM graph_edges FINAL
WHERE graph = {graph:String}
  AND window_start = fromUnixTimestamp64Milli({at_ms:Int64}, 'UTC')
ORDER BY caller, callee
