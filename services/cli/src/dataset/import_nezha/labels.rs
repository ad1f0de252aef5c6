//! `fault_list.json` to fault labels (`meshwatch_graph::labels`, `docs/labels.md`).
//!
//! The file maps an hour (`"03"`) to the faults injected in it: `inject_time` (a UTC string),
//! `inject_timestamp` (unix seconds), `inject_pod`, `inject_type`. Per fault one label:
//! - graph: the system (the `k8s.cluster.name` the traces carry, which names their graph);
//! - start: `inject_time` read as UTC; end: start + the fault duration (3 minutes in the Nezha
//!   study);
//! - root cause: the pod's service (pod name without its hash suffix), as the snapshots name
//!   it; `callee` stays empty (Nezha injects every fault, network delay included, on one pod);
//! - fault type: `inject_type` as given (`cpu_contention`, `cpu_consumed`, `network_delay`,
//!   `exception`, `return`);
//! - source: `nezha:<system>/<day>`; detail: the pod, and where `inject_timestamp` disagrees
//!   with `inject_time`, by how much. It is 8 h off in many rows of the TrainTicket day (a time
//!   zone slip) and about 60 s off in a few others, where the traces show the fault starting at
//!   `inject_timestamp`: `inject_time` is used throughout, so treat label edges as uncertain
//!   by a window.
//!
//! Labels are sorted by start, then root cause.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use meshwatch_graph::labels::FaultLabel;
use serde::Deserialize;

use super::time::parse_utc_ns;

#[derive(Debug, Deserialize)]
struct Fault {
    inject_time: String,
    #[serde(default)]
    inject_timestamp: Option<serde_json::Value>,
    inject_pod: String,
    inject_type: String,
}

/// Reads `fault_list.json` into labels.
pub fn read(
    path: &Path,
    system: &str,
    source: &str,
    duration_ms: i64,
) -> anyhow::Result<Vec<FaultLabel>> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let hours: BTreeMap<String, Vec<Fault>> = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a Nezha fault list", path.display()))?;
    let mut labels = Vec::new();
    for (hour, faults) in hours {
        for (i, fault) in faults.into_iter().enumerate() {
            let Some(start_ns) = parse_utc_ns(&fault.inject_time) else {
                bail!(
                    "{}: hour {hour:?}, fault {}: inject_time {:?} is not YYYY-MM-DD HH:MM:SS",
                    path.display(),
                    i + 1,
                    fault.inject_time
                );
            };
            let start_ms = i64::try_from(start_ns / 1_000_000)
                .with_context(|| format!("{}: inject_time out of range", path.display()))?;
            let stamp = match &fault.inject_timestamp {
                Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
                Some(serde_json::Value::Number(n)) => n.as_i64(),
                _ => None,
            };
            let mut detail = format!(
                "pod {}; inject_time {} UTC",
                fault.inject_pod, fault.inject_time
            );
            match stamp {
                Some(s) if s * 1000 != start_ms => detail.push_str(&format!(
                    "; inject_timestamp {s} is {:+} s off inject_time (not used)",
                    s - start_ms / 1000
                )),
                Some(_) => {}
                None => detail.push_str("; no usable inject_timestamp"),
            }
            labels.push(FaultLabel {
                graph: system.to_owned(),
                start_ms,
                end_ms: start_ms + duration_ms,
                root_cause: super::service_name(&fault.inject_pod).to_owned(),
                callee: None,
                fault_type: fault.inject_type,
                source: source.to_owned(),
                detail: Some(detail),
            });
        }
    }
    labels.sort_by(|a, b| {
        (a.start_ms, &a.root_cause, &a.fault_type).cmp(&(b.start_ms, &b.root_cause, &b.fault_type))
    });
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_quirks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fault_list.json");
        std::fs::write(
            &path,
            r#"{"09": [{"inject_time": "2023-01-29 09:03:53", "inject_timestamp": "1674954273",
                        "inject_pod": "ts-basic-service-5dc8d4f9fd-46997", "inject_type": "return"}],
                "08": [{"inject_time": "2023-01-29 08:43:04", "inject_timestamp": 1674981784,
                        "inject_pod": "ts-contacts-service-866bd68c97-xcqfx", "inject_type": "exception"}]}"#,
        )
        .expect("write");
        let labels = read(
            &path,
            "trainticket",
            "nezha:trainticket/2023-01-29",
            180_000,
        )
        .expect("valid");
        assert_eq!(labels.len(), 2);
        let first = &labels[0];
        assert_eq!(first.root_cause, "ts-contacts-service");
        assert_eq!(first.start_ms, 1_674_981_784_000);
        assert_eq!(first.end_ms - first.start_ms, 180_000);
        assert_eq!(first.fault_type, "exception");
        assert_eq!(first.graph, "trainticket");
        assert_eq!(
            first.detail.as_deref(),
            Some("pod ts-contacts-service-866bd68c97-xcqfx; inject_time 2023-01-29 08:43:04 UTC")
        );
        // 09:03:53 UTC is 1674983033; the file says 1674954273: 8 h (less 40 s) off.
        let second = &labels[1];
        assert_eq!(second.start_ms, 1_674_983_033_000);
        assert!(
            second
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("inject_timestamp 1674954273 is -28760 s off")),
            "{:?}",
            second.detail
        );
        std::fs::write(
            &path,
            r#"{"03": [{"inject_time": "yesterday", "inject_pod": "a", "inject_type": "x"}]}"#,
        )
        .expect("write");
        let err = read(&path, "s", "src", 1).expect_err("bad time");
        assert!(err.to_string().contains("inject_time"), "{err}");
    }
}
