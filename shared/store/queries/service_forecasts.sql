-- A service's forecasts over time: every forecast point whose target window starts in
-- [from_ms, to_ms), by metric, target time and horizon. Parameters: graph, service, from_ms,
-- to_ms (Unix ms).
SELECT graph, service, metric, issued_at, target_time, horizon, value, lower, upper,
       model_version
FROM forecasts FINAL
WHERE graph = {graph:String}
  AND service = {service:String}
  AND target_time >= fromUnixTimestamp64Milli({from_ms:Int64}, 'UTC')
  AND target_time < fromUnixTimestamp64Milli({to_ms:Int64}, 'UTC')
ORDER BY metric, target_time, horizon, model_version
