-- The latest incidents of a graph: the newest state of each incident opened since a time,
-- most recently updated first. Parameters: graph, since_ms (Unix ms), limit.
SELECT graph, incident_id, kind, status, opened_at, updated_at, resolved_at, severity,
       services, root_causes.service, root_causes.score, root_causes.evidence, version
FROM incidents FINAL
WHERE graph = {graph:String}
  AND opened_at >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')
ORDER BY updated_at DESC, incident_id
LIMIT {limit:UInt32}
