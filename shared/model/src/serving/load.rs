//! Loading a model for serving: load, parity replay and warm-up on a blocking thread.

use std::path::PathBuf;
use std::sync::Arc;

use ndarray::{Array1, Array2, Array3};

use super::{Current, ModelInfo, ServingOptions};
use crate::error::ModelError;
use crate::io::ModelInputs;
use crate::manifest::ModelKind;
use crate::model::{LoadOptions, Model};
use crate::parity;

/// `f` on a blocking thread; a panic in it becomes an error.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ModelError> + Send + 'static,
) -> Result<T, ModelError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|error| {
            Err(ModelError::Ort {
                context: "loading the model",
                message: format!("the loading thread failed: {error}"),
            })
        })
}

/// Loads, checks and warms up the model in `dir`, off the reactor.
pub(super) async fn prepare(
    dir: PathBuf,
    kind: ModelKind,
    options: ServingOptions,
) -> Result<Current, ModelError> {
    blocking(move || {
        let load = LoadOptions {
            kind: Some(kind),
            ..options.load
        };
        let model = Model::load(&dir, &load)?;
        if options.verify_parity {
            parity::run_cases(&model, &dir)?.check()?;
        }
        model.run(&warm_up_inputs(&model))?;
        let info = Arc::new(ModelInfo::of(&model));
        Ok(Current {
            model: Arc::new(model),
            info,
        })
    })
    .await
}

/// A small synthetic graph for the warm-up run: T windows (the manifest's), 3 nodes calling
/// each other in a chain (2 edges), all present; `window_start` for the forecaster.
fn warm_up_inputs(model: &Model) -> ModelInputs {
    let manifest = model.manifest();
    let (t, n, e) = (manifest.steps, 3, 2);
    let (f, fe) = (manifest.node_features.len(), manifest.edge_features.len());
    let value = |i: usize| f32::from(u8::try_from(i % 7).unwrap_or(0)) / 7.0;
    let window_s = i64::try_from(manifest.window_ms / 1000).unwrap_or(1).max(1);
    ModelInputs {
        node_features: Array3::from_shape_fn((t, n, f), |(a, b, c)| value(a + b + c)),
        node_mask: Array2::ones((t, n)),
        edge_index: Array2::from_shape_fn((2, e), |(row, edge)| {
            i64::try_from(edge + row).unwrap_or(0)
        }),
        edge_weight: Array2::ones((t, e)),
        edge_features: Array3::from_shape_fn((t, e, fe), |(a, b, c)| value(a + b + c)),
        window_start: (model.kind() == ModelKind::Forecaster).then(|| {
            // 2025-01-06T00:00:00Z and the windows after it
            Array1::from_shape_fn(t, |i| {
                1_736_121_600 + window_s * i64::try_from(i).unwrap_or(0)
            })
        }),
    }
}
