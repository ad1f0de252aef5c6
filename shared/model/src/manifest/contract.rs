//! The ONNX model contract v1 (ARCHITECTURE.md §5) as tensor specs: what a manifest must
//! declare, with the feature counts of a schema filled in.

use super::{DType, Dim, FeatureSchema, ModelKind, TensorSpec};

/// `format` of a model manifest.
pub const FORMAT: &str = "meshwatch.model";
/// `format_version` this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// f32 `[T, N, F]`
pub const NODE_FEATURES: &str = "node_features";
/// f32 `[T, N]`
pub const NODE_MASK: &str = "node_mask";
/// i64 `[2, E]` (caller, callee)
pub const EDGE_INDEX: &str = "edge_index";
/// f32 `[T, E]`
pub const EDGE_WEIGHT: &str = "edge_weight";
/// f32 `[T, E, Fe]`
pub const EDGE_FEATURES: &str = "edge_features";
/// i64 `[T]`, unix seconds (forecaster only)
pub const WINDOW_START: &str = "window_start";
/// f32 `[N]` (detector)
pub const ANOMALY_SCORE: &str = "anomaly_score";
/// f32 `[N, F]` (detector)
pub const FEATURE_CONTRIBUTION: &str = "feature_contribution";
/// f32 `[H, N, M]` (forecaster)
pub const FORECAST: &str = "forecast";
/// f32 `[H, N, M, 2]` (forecaster; lower, upper)
pub const FORECAST_INTERVAL: &str = "forecast_interval";

fn t() -> Dim {
    Dim::Dynamic("T".to_owned())
}

fn n() -> Dim {
    Dim::Dynamic("N".to_owned())
}

fn e() -> Dim {
    Dim::Dynamic("E".to_owned())
}

fn spec(name: &str, dtype: DType, shape: Vec<Dim>) -> TensorSpec {
    TensorSpec {
        name: name.to_owned(),
        dtype,
        shape,
    }
}

/// The inputs of a `kind` model for `schema`, in contract order.
pub fn expected_inputs(kind: ModelKind, schema: &FeatureSchema) -> Vec<TensorSpec> {
    let f = Dim::Fixed(schema.node_features.len());
    let fe = Dim::Fixed(schema.edge_features.len());
    let mut inputs = vec![
        spec(NODE_FEATURES, DType::F32, vec![t(), n(), f]),
        spec(NODE_MASK, DType::F32, vec![t(), n()]),
        spec(EDGE_INDEX, DType::I64, vec![Dim::Fixed(2), e()]),
        spec(EDGE_WEIGHT, DType::F32, vec![t(), e()]),
        spec(EDGE_FEATURES, DType::F32, vec![t(), e(), fe]),
    ];
    if kind == ModelKind::Forecaster {
        inputs.push(spec(WINDOW_START, DType::I64, vec![t()]));
    }
    inputs
}

/// The outputs of a `kind` model for `schema`; `horizon` is the forecaster's H (an axis named
/// `H` where it is unknown, which no manifest matches).
pub fn expected_outputs(
    kind: ModelKind,
    schema: &FeatureSchema,
    horizon: Option<usize>,
) -> Vec<TensorSpec> {
    match kind {
        ModelKind::Detector => vec![
            spec(ANOMALY_SCORE, DType::F32, vec![n()]),
            spec(
                FEATURE_CONTRIBUTION,
                DType::F32,
                vec![n(), Dim::Fixed(schema.node_features.len())],
            ),
        ],
        ModelKind::Forecaster => {
            let h = || horizon.map_or_else(|| Dim::Dynamic("H".to_owned()), Dim::Fixed);
            let m = || Dim::Fixed(schema.targets.len());
            vec![
                spec(FORECAST, DType::F32, vec![h(), n(), m()]),
                spec(
                    FORECAST_INTERVAL,
                    DType::F32,
                    vec![h(), n(), m(), Dim::Fixed(2)],
                ),
            ]
        }
    }
}
