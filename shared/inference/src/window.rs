//! A window of one graph, checked and encoded into the model contract's inputs
//! (ARCHITECTURE.md §4, §5).
//!
//! Two paths build a [`Window`], and both end in the same encoder
//! ([`meshwatch_graph::features`]), so a gRPC request and the stream give the model the same
//! tensors for the same snapshots:
//!
//! - [`from_snapshots`]: the snapshots of a gRPC request, checked against [`Limits`] with every
//!   problem naming its field (`snapshots[3].window_ms`), ready to become `INVALID_ARGUMENT`;
//! - [`from_steps`]: the feature steps kept by the streaming path's
//!   [`History`](crate::history::History).
//!
//! A window is always exactly T steps (the model's window length) ending at the last window;
//! windows without a snapshot are masked steps.

use std::collections::HashSet;

use meshwatch_graph::features::{
    EncodeError, EncodedSequence, StepFeatures, Tensor, encode, encode_snapshots,
};
use meshwatch_graph::snapshot::GraphSnapshot;
use meshwatch_model::{ModelInputs, ModelKind};
use meshwatch_proto::ConvertError;
use meshwatch_proto::v1;
use ndarray::{Array, ArrayD, Dimension, IxDyn};

use crate::limits::Limits;

/// An invalid request: the field path and what is wrong (gRPC `INVALID_ARGUMENT` names the
/// field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RequestError {
    /// Path of the offending field in the request (`snapshots[3].nodes[2].latency_sketch`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl RequestError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A checked, encoded window of one graph.
#[derive(Debug, Clone)]
pub struct Window {
    /// Graph id.
    pub graph: String,
    /// Window length, ms.
    pub window_ms: u32,
    /// The T encoded steps, oldest first; the last one is the scored (or forecast-from) window.
    pub encoded: EncodedSequence,
    /// The model contract's inputs of `encoded` ([`model_inputs`]).
    pub inputs: ModelInputs,
}

impl Window {
    /// Start of the last window (the one scored, or forecast from), unix ms.
    pub fn last_window_start_ms(&self) -> i64 {
        self.encoded
            .window_start_ms
            .last()
            .copied()
            .unwrap_or_default()
    }

    /// Steps that were observed (a snapshot with at least one node or edge); the others are
    /// masked.
    pub fn observed_steps(&self) -> usize {
        self.encoded
            .step_mask
            .data()
            .iter()
            .filter(|&&m| m > 0.5)
            .count()
    }

    /// T: steps fed to the model.
    pub fn steps(&self) -> usize {
        self.encoded.steps()
    }

    /// Moves the inputs out (to the model server, without a copy), leaving empty arrays; the
    /// rest of the window still makes the report.
    pub fn take_inputs(&mut self) -> ModelInputs {
        let empty = ModelInputs {
            node_features: ndarray::Array3::zeros((0, 0, 0)),
            node_mask: ndarray::Array2::zeros((0, 0)),
            edge_index: ndarray::Array2::zeros((2, 0)),
            edge_weight: ndarray::Array2::zeros((0, 0)),
            edge_features: ndarray::Array3::zeros((0, 0, 0)),
            window_start: None,
        };
        std::mem::replace(&mut self.inputs, empty)
    }
}

/// From a gRPC request's snapshots (oldest first).
///
/// `steps` is T of the model (0 is read as 1): fewer windows are padded at the front with
/// masked (missing) steps, and the window is always exactly T steps ending at the last
/// snapshot's window; snapshots older than that are ignored (but still checked). Windows missing
/// between snapshots become masked steps.
///
/// Checks, in this order, each naming its field:
/// - `snapshots`: at least one snapshot, at most [`Limits::max_windows`];
/// - per snapshot `i`: `snapshots[i].graph` not empty and the same as the first's;
///   `snapshots[i].window_ms` positive and the same as the first's;
///   `snapshots[i].window_start_ms` strictly after the previous one's and a whole number of
///   windows after the first's; `snapshots[i].nodes` / `snapshots[i].edges` at most
///   [`Limits::max_nodes`] / [`Limits::max_edges`];
/// - every snapshot decodes: a [`ConvertError`] becomes `snapshots[i].<its field>`;
/// - `snapshots`: the union of nodes (node names and edge endpoints) and of edges over the T
///   windows is within the limits, and not empty (the model needs at least one node).
pub fn from_snapshots(
    snapshots: &[v1::GraphSnapshot],
    kind: ModelKind,
    steps: usize,
    limits: &Limits,
) -> Result<Window, RequestError> {
    let steps = steps.max(1);
    let (first, last) = match (snapshots.first(), snapshots.last()) {
        (Some(first), Some(last)) => (first, last),
        _ => {
            return Err(RequestError::new(
                "snapshots",
                "at least one snapshot is required",
            ));
        }
    };
    if snapshots.len() > limits.max_windows {
        return Err(RequestError::new(
            "snapshots",
            format!(
                "{} snapshots exceed the limit of {} windows",
                snapshots.len(),
                limits.max_windows
            ),
        ));
    }
    check_headers(snapshots, first, limits)?;

    // First window fed to the model: T - 1 windows before the last snapshot's.
    let window_ms = first.window_ms;
    let span = i128::from(window_ms) * (steps as i128 - 1);
    let first_start = i64::try_from(i128::from(last.window_start_ms) - span).map_err(|_| {
        RequestError::new(
            format!("snapshots[{}].window_start_ms", snapshots.len() - 1),
            format!("too early for a window of {steps} steps"),
        )
    })?;

    // Decode every snapshot (the ignored ones too: a request is valid or not as a whole), and
    // place the recent ones on their step.
    let mut slots: Vec<Option<GraphSnapshot>> = vec![None; steps];
    for (i, snapshot) in snapshots.iter().enumerate() {
        let decoded = GraphSnapshot::try_from(snapshot).map_err(|e| convert_error(i, &e))?;
        if snapshot.window_start_ms < first_start {
            continue;
        }
        // Aligned and within [first_start, last start]: checked above.
        let offset = (i128::from(snapshot.window_start_ms) - i128::from(first_start))
            / i128::from(window_ms);
        if let Some(slot) = usize::try_from(offset).ok().and_then(|t| slots.get_mut(t)) {
            *slot = Some(decoded);
        }
    }
    check_union(&slots, limits)?;

    let refs: Vec<Option<&GraphSnapshot>> = slots.iter().map(Option::as_ref).collect();
    let encoded = encode_snapshots(window_ms, first_start, &refs)
        .map_err(|e| encode_error("snapshots", &e))?;
    if encoded.node_count() == 0 {
        return Err(RequestError::new("snapshots", "no nodes in the window"));
    }
    let inputs = model_inputs(&encoded, kind);
    Ok(Window {
        graph: first.graph.clone(),
        window_ms,
        encoded,
        inputs,
    })
}

/// From feature steps (the streaming path's history): exactly these steps (already T long,
/// missing ones masked, window starts strictly increasing), encoded. Problems name the field
/// `history`.
pub fn from_steps(
    graph: &str,
    window_ms: u32,
    steps: &[StepFeatures],
    kind: ModelKind,
) -> Result<Window, RequestError> {
    let encoded = encode(window_ms, steps).map_err(|e| encode_error("history", &e))?;
    if encoded.node_count() == 0 {
        return Err(RequestError::new("history", "no nodes in the window"));
    }
    let inputs = model_inputs(&encoded, kind);
    Ok(Window {
        graph: graph.to_owned(),
        window_ms,
        encoded,
        inputs,
    })
}

/// The model contract's inputs of an encoded sequence (`window_start` only for the
/// forecaster). The tensors are copied as they are; a hand-built sequence whose tensors do not
/// have the contract's ranks yields empty arrays, which [`ModelInputs::validate`] refuses.
pub fn model_inputs(encoded: &EncodedSequence, kind: ModelKind) -> ModelInputs {
    ModelInputs {
        node_features: to_array(&encoded.node_features),
        node_mask: to_array(&encoded.node_mask),
        edge_index: to_array(&encoded.edge_index),
        edge_weight: to_array(&encoded.edge_weight),
        edge_features: to_array(&encoded.edge_features),
        window_start: match kind {
            ModelKind::Forecaster => Some(to_array(&encoded.window_start)),
            ModelKind::Detector => None,
        },
    }
}

/// A tensor as an ndarray array of rank `D`; an empty array if the ranks differ.
fn to_array<T: Clone + Default, D: Dimension>(tensor: &Tensor<T>) -> Array<T, D> {
    ArrayD::from_shape_vec(IxDyn(tensor.shape()), tensor.data().to_vec())
        .ok()
        .and_then(|a| a.into_dimensionality::<D>().ok())
        .unwrap_or_else(|| Array::default(D::zeros(D::NDIM.unwrap_or(0))))
}

/// Graph, window length, window start and size checks of every snapshot.
fn check_headers(
    snapshots: &[v1::GraphSnapshot],
    first: &v1::GraphSnapshot,
    limits: &Limits,
) -> Result<(), RequestError> {
    let mut previous_start: Option<i64> = None;
    for (i, s) in snapshots.iter().enumerate() {
        let field = |name: &str| format!("snapshots[{i}].{name}");
        if s.graph.is_empty() {
            return Err(RequestError::new(field("graph"), "must not be empty"));
        }
        if s.graph != first.graph {
            return Err(RequestError::new(
                field("graph"),
                format!(
                    "graph {:?} differs from snapshots[0]'s {:?}",
                    s.graph, first.graph
                ),
            ));
        }
        if s.window_ms == 0 {
            return Err(RequestError::new(field("window_ms"), "must be positive"));
        }
        if s.window_ms != first.window_ms {
            return Err(RequestError::new(
                field("window_ms"),
                format!(
                    "{} ms differs from snapshots[0]'s {} ms",
                    s.window_ms, first.window_ms
                ),
            ));
        }
        if let Some(previous) = previous_start
            && s.window_start_ms <= previous
        {
            return Err(RequestError::new(
                field("window_start_ms"),
                format!(
                    "{} is not after snapshots[{}]'s {previous}",
                    s.window_start_ms,
                    i - 1
                ),
            ));
        }
        previous_start = Some(s.window_start_ms);
        let offset = i128::from(s.window_start_ms) - i128::from(first.window_start_ms);
        if offset % i128::from(first.window_ms) != 0 {
            return Err(RequestError::new(
                field("window_start_ms"),
                format!(
                    "{} is not a whole number of {} ms windows after snapshots[0]'s {}",
                    s.window_start_ms, first.window_ms, first.window_start_ms
                ),
            ));
        }
        if s.nodes.len() > limits.max_nodes {
            return Err(RequestError::new(
                field("nodes"),
                format!(
                    "{} nodes exceed the limit of {}",
                    s.nodes.len(),
                    limits.max_nodes
                ),
            ));
        }
        if s.edges.len() > limits.max_edges {
            return Err(RequestError::new(
                field("edges"),
                format!(
                    "{} edges exceed the limit of {}",
                    s.edges.len(),
                    limits.max_edges
                ),
            ));
        }
    }
    Ok(())
}

/// The union of nodes (names and edge endpoints, as the encoder counts them) and of edges over
/// the window, against the limits.
fn check_union(slots: &[Option<GraphSnapshot>], limits: &Limits) -> Result<(), RequestError> {
    let mut nodes: HashSet<&str> = HashSet::new();
    let mut edges: HashSet<(&str, &str)> = HashSet::new();
    for s in slots.iter().flatten() {
        nodes.extend(s.nodes.iter().map(|n| n.name.as_str()));
        for e in &s.edges {
            nodes.insert(&e.caller);
            nodes.insert(&e.callee);
            edges.insert((&e.caller, &e.callee));
        }
    }
    if nodes.len() > limits.max_nodes {
        return Err(RequestError::new(
            "snapshots",
            format!(
                "{} distinct nodes in the window exceed the limit of {}",
                nodes.len(),
                limits.max_nodes
            ),
        ));
    }
    if edges.len() > limits.max_edges {
        return Err(RequestError::new(
            "snapshots",
            format!(
                "{} distinct edges in the window exceed the limit of {}",
                edges.len(),
                limits.max_edges
            ),
        ));
    }
    Ok(())
}

/// A decode error of snapshot `i`, its field under `snapshots[i]`.
fn convert_error(i: usize, error: &ConvertError) -> RequestError {
    let text = error.to_string();
    match error.field() {
        Some(field) => {
            let message = text
                .strip_prefix(field)
                .and_then(|rest| rest.strip_prefix(": "))
                .unwrap_or(&text);
            RequestError::new(format!("snapshots[{i}].{field}"), message)
        }
        None => RequestError::new(format!("snapshots[{i}]"), text),
    }
}

/// An encoder error: after the checks only a tensor too large for memory (or, from a
/// history, steps out of order) can remain.
fn encode_error(field: &str, error: &EncodeError) -> RequestError {
    RequestError::new(field, error.to_string())
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
