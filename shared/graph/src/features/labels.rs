//! Ground truth per window and node from fault labels ([`crate::labels`]), for datasets and
//! evaluation. A fault `[start_ms, end_ms)` labels every window `[s, s + w)` it overlaps.

use crate::labels::FaultLabel;

use super::{Tensor, TensorTooLarge};

/// Labels of an encoded sequence (T windows, N nodes).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowLabels {
    /// u8 [T, N]: 1 where the node is the root cause (`root_cause` of the label) of a fault
    /// of this graph overlapping the window.
    pub root_cause: Tensor<u8>,
    /// u8 [T]: 1 where any fault of this graph overlaps the window.
    pub any_fault: Tensor<u8>,
    /// i64 [T]: index in the fault type list ([`fault_types`]) of the fault that overlaps the
    /// window longest (ties: the earlier start, then the earlier label); -1 without a fault.
    pub fault_type: Tensor<i64>,
}

/// The fault type vocabulary: the distinct `fault_type`s of `labels`, sorted.
pub fn fault_types(labels: &[FaultLabel]) -> Vec<String> {
    let mut types: Vec<String> = labels.iter().map(|l| l.fault_type.clone()).collect();
    types.sort();
    types.dedup();
    types
}

/// Labels for the windows `window_start_ms` (each `window_ms` long) of graph `graph`, whose
/// nodes are `node_names` (sorted). Labels of other graphs are ignored; a root cause that is
/// not among the nodes labels no node (the window still counts as faulty).
pub fn window_labels(
    labels: &[FaultLabel],
    graph: &str,
    window_ms: u32,
    window_start_ms: &[i64],
    node_names: &[String],
    fault_types: &[String],
) -> Result<WindowLabels, TensorTooLarge> {
    let t_len = window_start_ms.len();
    let mut root_cause = Tensor::filled(&[t_len, node_names.len()], 0u8)?;
    let mut any_fault = Tensor::filled(&[t_len], 0u8)?;
    let mut fault_type = Tensor::filled(&[t_len], -1i64)?;
    let ours: Vec<&FaultLabel> = labels.iter().filter(|l| l.graph == graph).collect();
    for (t, &start) in window_start_ms.iter().enumerate() {
        let end = start.saturating_add(i64::from(window_ms));
        // (overlap, start of the fault) of the best fault so far.
        let mut best: Option<(i64, i64, &str)> = None;
        for label in ours.iter().filter(|l| l.overlaps(start, end)) {
            if let Some(slot) = any_fault.get_mut(&[t]) {
                *slot = 1;
            }
            if let Ok(n) = node_names.binary_search_by(|n| n.as_str().cmp(&label.root_cause))
                && let Some(slot) = root_cause.get_mut(&[t, n])
            {
                *slot = 1;
            }
            let overlap = label.end_ms.min(end) - label.start_ms.max(start);
            let better = match best {
                None => true,
                Some((o, s, _)) => overlap > o || (overlap == o && label.start_ms < s),
            };
            if better {
                best = Some((overlap, label.start_ms, &label.fault_type));
            }
        }
        if let Some((_, _, ty)) = best
            && let Ok(i) = fault_types.binary_search_by(|f| f.as_str().cmp(ty))
            && let Some(slot) = fault_type.get_mut(&[t])
        {
            *slot = i as i64;
        }
    }
    Ok(WindowLabels {
        root_cause,
        any_fault,
        fault_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(graph: &str, start_ms: i64, end_ms: i64, root: &str, ty: &str) -> FaultLabel {
        FaultLabel {
            graph: graph.into(),
            start_ms,
            end_ms,
            root_cause: root.into(),
            callee: None,
            fault_type: ty.into(),
            source: "test".into(),
            detail: None,
        }
    }

    #[test]
    fn faults_label_the_windows_they_overlap() {
        // Windows of 60 s from 0; faults in seconds: a [90, 150) on frontend, cpu; b [100, 300)
        // on cart, latency; c in another graph; d on a service that is not a node.
        let labels = [
            label("g", 90_000, 150_000, "frontend", "cpu"),
            label("g", 100_000, 300_000, "cart", "latency"),
            label("other", 0, 600_000, "frontend", "crash"),
            label("g", 400_000, 401_000, "ghost", "crash"),
        ];
        let types = fault_types(&labels);
        assert_eq!(types, ["cpu", "crash", "latency"]);
        let names: Vec<String> = ["cart", "frontend"].map(String::from).to_vec();
        let starts = [0, 60_000, 120_000, 180_000, 360_000, 420_000];
        let l = window_labels(&labels, "g", 60_000, &starts, &names, &types).expect("small");
        assert_eq!(l.any_fault.data(), [0, 1, 1, 1, 1, 0]);
        // [60, 120): a overlaps 30 s, b 20 s -> cpu; [120, 180): a 30 s, b 60 s -> latency.
        assert_eq!(l.fault_type.data(), [-1, 0, 2, 2, 1, -1]);
        assert_eq!(
            l.root_cause.data(),
            [
                0, 0, /* 60 */ 1, 1, /* 120 */ 1, 1, /* 180 */ 1, 0,
                /* 360 */ 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn equal_overlaps_prefer_the_earlier_fault() {
        let labels = [
            label("g", 30_000, 120_000, "b", "late"),
            label("g", 0, 60_000, "a", "early"),
        ];
        let types = fault_types(&labels);
        // [0, 60): a overlaps 60 s, b 30 s; [60, 120): only b.
        let l = window_labels(&labels, "g", 60_000, &[0, 60_000], &[], &types).expect("small");
        assert_eq!(l.fault_type.data(), [0, 1]);
        let tie = [
            label("g", 30_000, 90_000, "b", "late"),
            label("g", 0, 30_000, "a", "early"),
        ];
        let l = window_labels(&tie, "g", 60_000, &[0], &[], &types).expect("small");
        assert_eq!(
            l.fault_type.data(),
            [0],
            "30 s each: the earlier start wins"
        );
    }
}
