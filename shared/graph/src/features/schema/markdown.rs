//! The schema as the Markdown tables of `docs/dataset-format.md` (checked by
//! `shared/graph/tests/dataset_doc.rs`).

use super::{
    EDGE_FEATURE_COUNT, EDGE_FEATURES, FEATURE_SCHEMA_VERSION, Feature, NODE_FEATURE_COUNT,
    NODE_FEATURES, TARGET_COUNT, TARGETS, Transform,
};

/// The schema as Markdown tables: the block between the `feature-schema` markers of
/// `docs/dataset-format.md`.
pub fn schema_markdown() -> String {
    let mut s = format!(
        "Feature schema version **{FEATURE_SCHEMA_VERSION}** (`FEATURE_SCHEMA_VERSION` in \
         `shared/graph/src/features/schema.rs`).\n\n"
    );
    s.push_str(&format!(
        "Node features, `node_features[t, n, f]`, F = {NODE_FEATURE_COUNT}:\n\n"
    ));
    push_features(&mut s, &NODE_FEATURES);
    s.push_str(&format!(
        "\nEdge features, `edge_features[t, e, f]`, Fe = {EDGE_FEATURE_COUNT}:\n\n"
    ));
    push_features(&mut s, &EDGE_FEATURES);
    s.push_str(&format!(
        "\nForecast targets, `targets[t, n, m]`, M = {TARGET_COUNT}, raw values (no transform):\n\n"
    ));
    s.push_str("| m | name | unit | meaning |\n|---:|---|---|---|\n");
    for (i, t) in TARGETS.iter().enumerate() {
        s.push_str(&format!(
            "| {i} | `{}` | {} | {} |\n",
            t.name, t.unit, t.meaning
        ));
    }
    s.push_str("\nTransforms (x is the raw statistic; a non-finite x gives 0):\n\n");
    s.push_str("| transform | value |\n|---|---|\n");
    for t in [
        Transform::Log1p,
        Transform::SignedLog1p,
        Transform::Ratio,
        Transform::Presence,
        Transform::OneHot,
    ] {
        s.push_str(&format!("| `{}` | {} |\n", t.name(), t.formula()));
    }
    s
}

fn push_features<S>(s: &mut String, features: &[Feature<S>]) {
    s.push_str("| f | name | transform | raw statistic |\n|---:|---|---|---|\n");
    for (i, f) in features.iter().enumerate() {
        s.push_str(&format!(
            "| {i} | `{}` | `{}` | {} |\n",
            f.name,
            f.transform.name(),
            f.meaning
        ));
    }
}
