//! Differential fuzzing of the zero-copy OTLP scanner against `prost`.
//!
//! On any input the scanner must not panic, and whenever `prost` decodes the input as an
//! `ExportTraceServiceRequest`, the scanner must accept it too and produce the same views as
//! `prost` + `views_from_owned`. (The reverse is allowed: `prost` also checks the inside of
//! fields the scanner skips without looking, such as the UTF-8 of span names.)
//!
//! A useful seed corpus: a few encodings of `meshwatch_graph::otlp::bench_data::synthetic_request`
//! written into `corpus/wire_vs_prost/`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use meshwatch_graph::otlp::owned::views_from_owned;
use meshwatch_graph::otlp::wire::decode_traces;
use meshwatch_graph::span::{DecodedTraces, ResourceKeys};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let keys = ResourceKeys::default();
    let mut scanned = DecodedTraces::default();
    let scan = decode_traces(data, &keys, &mut scanned);
    if let Ok(full) = ExportTraceServiceRequest::decode(data) {
        assert!(
            scan.is_ok(),
            "scanner rejected what prost accepts: {scan:?}"
        );
        let mut views = DecodedTraces::default();
        views_from_owned(&full, &keys, &mut views);
        assert_eq!(
            scanned, views,
            "scanner and prost + views_from_owned differ"
        );
    }
});
