//! Fault labels: the one dataset-independent format in which imported datasets and the simulator
//! record injected faults, and from which training datasets and evaluations read ground truth
//! (`docs/labels.md`). A labels file is JSON lines, one [`FaultLabel`] per line.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultLabel {
    /// Graph id the fault happened in (as the ingest names graphs).
    pub graph: String,
    /// Start of the fault, unix milliseconds (inclusive).
    pub start_ms: i64,
    /// End of the fault, unix milliseconds (exclusive).
    pub end_ms: i64,
    /// Root-cause service (as named in the snapshots).
    pub root_cause: String,
    /// For a fault on one call edge (network delay between two services): the callee; the root
    /// cause is then the caller side of that edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callee: Option<String>,
    /// Fault type, lower snake case (e.g. `cpu_contention`, `network_delay`, `latency`,
    /// `error_burst`, `crash`, `memory_leak`, `exception`, `return`).
    pub fault_type: String,
    /// Where the label comes from (e.g. `nezha:onlineboutique/2022-08-22`, `simulator:seed=7`).
    pub source: String,
    /// Free-form detail (original pod, injected parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl FaultLabel {
    /// Whether the fault is active at any time in `[start_ms, end_ms)`.
    pub fn overlaps(&self, start_ms: i64, end_ms: i64) -> bool {
        self.start_ms < end_ms && start_ms < self.end_ms
    }
}

/// Errors reading or writing labels.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("labels line {line}: {source}")]
    Parse {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("labels line {line}: end_ms must be after start_ms")]
    EmptyInterval { line: usize },
    #[error("cannot read or write labels: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads a labels file (JSON lines; blank lines ignored).
pub fn read_labels(reader: impl BufRead) -> Result<Vec<FaultLabel>, LabelsError> {
    let mut labels = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let label: FaultLabel =
            serde_json::from_str(&line).map_err(|source| LabelsError::Parse {
                line: i + 1,
                source,
            })?;
        if label.end_ms <= label.start_ms {
            return Err(LabelsError::EmptyInterval { line: i + 1 });
        }
        labels.push(label);
    }
    Ok(labels)
}

/// Writes labels as JSON lines.
pub fn write_labels<'a>(
    mut writer: impl Write,
    labels: impl IntoIterator<Item = &'a FaultLabel>,
) -> Result<(), LabelsError> {
    for label in labels {
        serde_json::to_writer(&mut writer, label).map_err(std::io::Error::from)?;
        writer.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> FaultLabel {
        FaultLabel {
            graph: "onlineboutique".into(),
            start_ms: 1_000,
            end_ms: 181_000,
            root_cause: "frontend".into(),
            callee: None,
            fault_type: "cpu_contention".into(),
            source: "nezha:onlineboutique/2022-08-22".into(),
            detail: Some("pod frontend-579b9bff58-t2dbm".into()),
        }
    }

    #[test]
    fn round_trips_and_checks_intervals() {
        let mut buf = Vec::new();
        write_labels(&mut buf, [&label()]).expect("in memory");
        let back = read_labels(&buf[..]).expect("valid");
        assert_eq!(back, vec![label()]);
        let bad = br#"{"graph":"g","start_ms":5,"end_ms":5,"root_cause":"a","fault_type":"x","source":"s"}"#;
        assert!(matches!(
            read_labels(&bad[..]),
            Err(LabelsError::EmptyInterval { line: 1 })
        ));
        assert!(matches!(
            read_labels(&b"{"[..]),
            Err(LabelsError::Parse { line: 1, .. })
        ));
    }

    #[test]
    fn overlap_is_half_open() {
        let l = label();
        assert!(l.overlaps(0, 1_001));
        assert!(!l.overlaps(0, 1_000));
        assert!(!l.overlaps(181_000, 200_000));
    }
}
