//! `docs/dataset-format.md` lists the feature schema as generated from the Rust const arrays
//! (`meshwatch_graph::features::schema::schema_markdown`): the block between its
//! `feature-schema` markers must be exactly that, so the documentation cannot drift from the
//! code. After an intended schema change, paste the text this test prints into the document.

#![allow(clippy::panic)]

use std::path::Path;

use meshwatch_graph::features::schema::schema_markdown;

const BEGIN: &str =
    "<!-- feature-schema:begin (generated: shared/graph/tests/dataset_doc.rs) -->\n";
const END: &str = "<!-- feature-schema:end -->";

#[test]
fn doc_lists_the_feature_schema_of_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dataset-format.md");
    let doc = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let want = schema_markdown();
    let Some(start) = doc.find(BEGIN).map(|i| i + BEGIN.len()) else {
        panic!(
            "{} has no line {BEGIN:?}; the block to put between the markers:\n{want}",
            path.display()
        );
    };
    let Some(len) = doc[start..].find(END) else {
        panic!(
            "{} has no line {END:?} after the begin marker",
            path.display()
        );
    };
    let got = doc[start..start + len].trim_end();
    assert!(
        got == want.trim_end(),
        "the feature schema in {} differs from the code; replace the block between the \
         markers with:\n{want}",
        path.display()
    );
}
