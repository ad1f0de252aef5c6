//! The check of an ONNX session's inputs and outputs against the manifest's tensor specs.

use std::path::Path;

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use crate::error::ModelError;
use crate::manifest::{DType, Dim, Manifest, TensorSpec};

/// Compares the session's inputs and outputs with the manifest's specs: the same names, element
/// types and ranks; a dimension the manifest fixes must be that size or dynamic in the graph,
/// and a dimension the manifest declares dynamic must be dynamic in the graph.
pub(super) fn verify_session(
    file: &Path,
    session: &Session,
    manifest: &Manifest,
) -> Result<(), ModelError> {
    let mut problems = Vec::new();
    for (what, outlets, specs) in [
        ("input", session.inputs(), &manifest.inputs),
        ("output", session.outputs(), &manifest.outputs),
    ] {
        for outlet in outlets {
            if !specs.iter().any(|s| s.name == outlet.name()) {
                problems.push(format!(
                    "the graph has {what} {:?}, the manifest does not",
                    outlet.name()
                ));
            }
        }
        for spec in specs {
            match outlets.iter().find(|o| o.name() == spec.name) {
                None => problems.push(format!("the graph has no {what} {:?}", spec.name)),
                Some(outlet) => compare_outlet(what, spec, outlet.dtype(), &mut problems),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ModelError::SessionMismatch {
            path: file.to_path_buf(),
            problems,
        })
    }
}

fn compare_outlet(what: &str, spec: &TensorSpec, dtype: &ValueType, problems: &mut Vec<String>) {
    let ValueType::Tensor { ty, shape, .. } = dtype else {
        problems.push(format!(
            "{what} {:?} is not a tensor in the graph",
            spec.name
        ));
        return;
    };
    let want = match spec.dtype {
        DType::F32 => Some(TensorElementType::Float32),
        DType::I64 => Some(TensorElementType::Int64),
        DType::Other(_) => None,
    };
    if want != Some(*ty) {
        problems.push(format!(
            "{what} {:?}: element type {ty:?} in the graph, {} in the manifest",
            spec.name, spec.dtype
        ));
    }
    let dims: &[i64] = shape;
    let fits = dims.len() == spec.shape.len()
        && dims.iter().zip(&spec.shape).all(|(&graph, dim)| match dim {
            Dim::Fixed(size) => graph < 0 || usize::try_from(graph).is_ok_and(|g| g == *size),
            Dim::Dynamic(_) => graph < 0,
        });
    if !fits {
        problems.push(format!(
            "{what} {:?}: shape {dims:?} in the graph (-1: dynamic), {} in the manifest",
            spec.name,
            crate::manifest::shape_string(&spec.shape)
        ));
    }
}
