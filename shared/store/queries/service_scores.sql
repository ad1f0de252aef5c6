-- A service's anomaly scores over time, oldest first. Parameters: graph, service,
-- from_ms (inclusive), to_ms (exclusive), both Unix ms of window starts.
SELECT graph, service, window_start, window_ms, model_version, score, threshold, is_anomaly,
       present, contributions
FROM anomaly_scores FINAL
WHERE graph = {graph:String}
  AND service = {service:String}
  AND window_start >= fromUnixTimestamp64Milli({from_ms:Int64}, 'UTC')
  AND window_start < fromUnixTimestamp64Milli({to_ms:Int64}, 'UTC')
ORDER BY window_start, model_version
