-- The graph at a time, scores: every node's score in the window that starts at at_ms,
-- anomalies first. Parameters: graph, at_ms (Unix ms of the window start).
SELECT graph, service, window_start, window_ms, model_version, score, threshold, is_anomaly,
       present, contributions
FROM anomaly_scores FINAL
WHERE graph = {graph:String}
  AND window_start = fromUnixTimestamp64Milli({at_ms:Int64}, 'UTC')
ORDER BY is_anomaly DESC, score DESC, service
