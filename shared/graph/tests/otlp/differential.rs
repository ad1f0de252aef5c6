//! The scanner against `prost`: random requests, unusual but valid encodings, and corrupted
//! encodings. See `oracle.rs` for the two references and the one accepted difference.

use meshwatch_graph::otlp::bench_data::synthetic_request;
use meshwatch_graph::otlp::owned::views_from_owned;
use meshwatch_graph::otlp::wire::decode_traces;
use meshwatch_graph::span::{DecodedTraces, ResourceKeys};
use proptest::prelude::*;
use prost::Message;

use super::generate;
use super::oracle::{Outcome, check};
use super::raw::{self, Msg, Rng};

proptest! {
    #![proptest_config(generate::config(512))]

    /// prost's own encoding: the scanner's views equal prost + views_from_owned.
    #[test]
    fn scanner_equals_prost_on_random_requests(req in generate::request(), keys in generate::keys()) {
        let buf = req.encode_to_vec();
        let mut scanned = DecodedTraces::default();
        decode_traces(&buf, &keys, &mut scanned).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut reference = DecodedTraces::default();
        views_from_owned(&req, &keys, &mut reference);
        prop_assert_eq!(&scanned, &reference);
        prop_assert_eq!(check(&buf, &keys), Outcome::AllAccepted);
    }

    /// Valid encodings prost never writes: fields out of order, scalars repeated, message fields
    /// split, unknown fields of every wire type (groups too), non-minimal varints.
    #[test]
    fn scanner_equals_prost_on_unusual_encodings(
        req in generate::request(),
        keys in generate::keys(),
        seed in raw::seed(),
    ) {
        let buf = req.encode_to_vec();
        let mut tree = raw::parse(&buf, Msg::Request).map_err(TestCaseError::fail)?;
        raw::mutate(&mut tree, Msg::Request, &mut Rng(seed));
        let mutated = raw::encode(&tree);
        prop_assert_eq!(check(&mutated, &keys), Outcome::AllAccepted);
    }

    /// Corrupted encodings: never a panic; the scanner decides as the reduced decode does, and
    /// whenever prost accepts, the scanner accepts with equal views.
    #[test]
    fn scanner_is_safe_and_consistent_on_corrupted_input(
        req in generate::request(),
        keys in generate::keys(),
        seed in raw::seed(),
    ) {
        let mut rng = Rng(seed);
        let buf = req.encode_to_vec();
        let mut tree = raw::parse(&buf, Msg::Request).map_err(TestCaseError::fail)?;
        if rng.chance(50) {
            raw::mutate(&mut tree, Msg::Request, &mut rng);
        }
        let mut corrupted = raw::encode(&tree);
        for _ in 0..=rng.below(3) {
            raw::corrupt(&mut corrupted, &mut rng);
        }
        check(&corrupted, &keys);
    }

    /// Arbitrary bytes.
    #[test]
    fn scanner_is_safe_on_arbitrary_bytes(buf in proptest::collection::vec(any::<u8>(), 0..256)) {
        check(&buf, &ResourceKeys::default());
    }
}

/// Every truncation and every single-bit flip of a realistic request, with a count of which
/// path each input took (so the test shows it exercised acceptance and rejection).
#[test]
fn every_truncation_and_bit_flip_of_a_realistic_request() {
    let keys = ResourceKeys::default();
    let buf = synthetic_request(3, 6, 2, 6, 7).encode_to_vec();
    assert_eq!(check(&buf, &keys), Outcome::AllAccepted);
    let mut outcomes = std::collections::HashMap::<Outcome, usize>::new();
    for len in 0..buf.len() {
        *outcomes.entry(check(&buf[..len], &keys)).or_default() += 1;
    }
    // Truncating between two top-level fields leaves a valid request.
    assert!(
        outcomes.get(&Outcome::AllAccepted).copied().unwrap_or(0) >= 3,
        "{outcomes:?}"
    );
    assert!(
        outcomes.get(&Outcome::AllRejected).copied().unwrap_or(0) > buf.len() / 2,
        "{outcomes:?}"
    );

    let mut flips = std::collections::HashMap::<Outcome, usize>::new();
    let mut flipped = buf.clone();
    for i in 0..buf.len() {
        for bit in 0..8 {
            flipped[i] ^= 1 << bit;
            *flips.entry(check(&flipped, &keys)).or_default() += 1;
            flipped[i] ^= 1 << bit;
        }
    }
    // Flips inside ids, times and unread strings keep the request valid; flips in the span
    // name can break its UTF-8, which only prost sees; flips in structure break it.
    for outcome in [
        Outcome::AllAccepted,
        Outcome::SkippedFieldRejected,
        Outcome::AllRejected,
    ] {
        assert!(
            flips.get(&outcome).copied().unwrap_or(0) > 0,
            "{outcome:?} never seen: {flips:?}"
        );
    }
}

/// The synthetic benchmark requests decode identically through both paths, and their client
/// and server spans pair.
#[test]
fn synthetic_requests_decode_identically_and_pair() {
    let keys = ResourceKeys::default();
    for (services, per_resource) in [(50, 20), (5000, 1), (1, 1000)] {
        let req = synthetic_request(services, 1000, per_resource, 10, 42);
        assert_eq!(
            req,
            synthetic_request(services, 1000, per_resource, 10, 42),
            "deterministic"
        );
        let buf = req.encode_to_vec();
        assert_eq!(check(&buf, &keys), Outcome::AllAccepted);

        let mut views = DecodedTraces::default();
        decode_traces(&buf, &keys, &mut views).expect("valid request");
        assert_eq!(views.spans.len(), 1000);
        assert!(views.resources.iter().all(|r| r.service_values[0].is_some()
            && r.service_values[1].is_some()
            && r.graph_values.iter().all(Option::is_some)));
        let counts_per_resource =
            views
                .spans
                .iter()
                .fold(vec![0usize; views.resources.len()], |mut counts, s| {
                    counts[s.resource as usize] += 1;
                    counts
                });
        assert!(
            counts_per_resource
                .iter()
                .all(|&n| n >= 1 && n <= per_resource)
        );

        // Every server span with a parent has a client span with that id, in the same trace,
        // in another service.
        let clients: std::collections::HashMap<(&[u8], &[u8]), u32> = views
            .spans
            .iter()
            .filter(|s| s.kind == 3)
            .map(|s| ((s.trace_id, s.span_id), s.resource))
            .collect();
        let mut paired = 0;
        for server in views
            .spans
            .iter()
            .filter(|s| s.kind == 2 && !s.parent_span_id.is_empty())
        {
            let client = clients
                .get(&(server.trace_id, server.parent_span_id))
                .expect("paired client");
            if services > 1 {
                let caller = views.resources[*client as usize].service_values[0];
                assert_ne!(
                    caller,
                    views.resources[server.resource as usize].service_values[0]
                );
            }
            paired += 1;
        }
        assert!(paired > 200, "{paired} pairs");
        assert!(views.spans.iter().all(|s| s.validate(None, 0).is_ok()));
    }
}

/// Views of a second request can reuse the allocations of the first.
#[test]
fn recycled_views_keep_their_capacity() {
    let keys = ResourceKeys::default();
    let first = synthetic_request(10, 100, 10, 4, 1).encode_to_vec();
    let mut views = DecodedTraces::default();
    decode_traces(&first, &keys, &mut views).expect("valid request");
    let capacity = views.spans.capacity();
    let second = synthetic_request(10, 50, 10, 4, 2).encode_to_vec();
    let mut views = views.recycle();
    assert!(views.spans.is_empty() && views.spans.capacity() >= capacity);
    decode_traces(&second, &keys, &mut views).expect("valid request");
    assert_eq!(views.spans.len(), 50);
    assert!(views.spans.capacity() >= capacity);
}
