//! Hand-written inputs for the zero-copy scanner, each also checked against `prost` (`check`).

use meshwatch_graph::otlp::wire::{WireError, WireType, decode_traces};
use meshwatch_graph::span::{DecodedTraces, ResourceKeys};

use super::oracle::{Outcome, check};
use super::raw::*;

fn scan(buf: &[u8]) -> Result<DecodedTraces<'_>, WireError> {
    let mut out = DecodedTraces::default();
    decode_traces(buf, &ResourceKeys::default(), &mut out).map(|()| out)
}

/// Scans `buf`, which must be valid, and checks the result against prost.
fn scan_ok(buf: &[u8]) -> DecodedTraces<'_> {
    assert_eq!(check(buf, &ResourceKeys::default()), Outcome::AllAccepted);
    scan(buf).expect("valid request")
}

/// Scans `buf`, which must be rejected by everyone.
fn scan_err(buf: &[u8]) -> WireError {
    assert_eq!(check(buf, &ResourceKeys::default()), Outcome::AllRejected);
    scan(buf).expect_err("invalid request")
}

#[test]
fn empty_buffer_is_an_empty_request() {
    let out = scan_ok(&[]);
    assert!(out.resources.is_empty() && out.spans.is_empty());
}

#[test]
fn output_is_cleared_first() {
    let buf = request_with_span(&basic_span());
    let mut out = DecodedTraces::default();
    decode_traces(&buf, &ResourceKeys::default(), &mut out).expect("valid");
    decode_traces(&buf, &ResourceKeys::default(), &mut out).expect("valid");
    assert_eq!((out.resources.len(), out.spans.len()), (1, 1));
    decode_traces(&[], &ResourceKeys::default(), &mut out).expect("valid");
    assert!(out.resources.is_empty() && out.spans.is_empty());
}

#[test]
fn basic_span_is_read() {
    let resource = [
        len_field(1, &string_attr("service.name", b"checkout")),
        len_field(1, &string_attr("k8s.deployment.name", b"checkout-v2")),
        len_field(1, &string_attr("k8s.cluster.name", b"prod")),
        len_field(
            1,
            &string_attr("deployment.environment.name", b"production"),
        ),
        len_field(1, &string_attr("other", b"x")),
    ]
    .concat();
    let span = [
        basic_span(),
        len_field(4, &[0x11; 8]),
        len_field(9, &string_attr("server.address", b"cart")),
        len_field(9, &string_attr("net.peer.name", b"ignored-fallback")),
        len_field(9, &string_attr("db.system", b"postgresql")),
        len_field(9, &string_attr("db.name", b"orders")),
        len_field(9, &string_attr("peer.service", b"cart-svc")),
        len_field(9, &string_attr("messaging.system", b"kafka")),
        len_field(
            9,
            &string_attr("messaging.destination.name", b"orders.created"),
        ),
        len_field(15, &varint_field(3, 2)),
    ]
    .concat();
    let buf = request(&resource, &[span]);
    let out = scan_ok(&buf);
    let r = &out.resources[0];
    assert_eq!(
        r.service_values[..],
        [Some("checkout"), Some("checkout-v2"), None]
    );
    assert_eq!(r.graph_values[..], [Some("prod"), Some("production")]);
    let s = &out.spans[0];
    assert_eq!(
        (s.resource, s.trace_id, s.span_id, s.parent_span_id),
        (0, &[0xab; 16][..], &[0xcd; 8][..], &[0x11; 8][..])
    );
    assert_eq!((s.kind, s.status_code), (2, 2));
    assert_eq!(
        (s.start_time_unix_nano, s.end_time_unix_nano),
        (1_700_000_000_000_000_000, 1_700_000_000_100_000_000)
    );
    assert_eq!(s.attrs.server_address, Some("cart"));
    assert_eq!(s.attrs.db_system, Some("postgresql"), "fallback db.system");
    assert_eq!(s.attrs.db_namespace, Some("orders"), "fallback db.name");
    assert_eq!(s.attrs.peer_service, Some("cart-svc"));
    assert_eq!(s.attrs.messaging_system, Some("kafka"));
    assert_eq!(s.attrs.messaging_destination, Some("orders.created"));
}

#[test]
fn wrong_wire_type_for_span_id_is_an_error() {
    let span = [len_field(1, &[1; 16]), varint_field(2, 7)].concat();
    let err = scan_err(&request_with_span(&span));
    assert!(
        matches!(
            err,
            WireError::WrongWireType {
                path: "resource_spans.scope_spans.spans",
                field: 2,
                actual: WireType::Varint,
                expected: WireType::Len,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("resource_spans.scope_spans.spans") && message.contains("field 2"),
        "{message}"
    );
}

#[test]
fn wrong_wire_types_of_other_known_fields_are_errors() {
    // Read fields and known fields the scanner skips alike: kind as LEN, start time as I32,
    // name as VARINT, flags as I64, status as VARINT, events as I32.
    for field in [
        len_field(6, b"x"),
        fixed32_field(7, 1),
        varint_field(5, 1),
        fixed64_field(16, 1),
        varint_field(15, 1),
        fixed32_field(11, 1),
    ] {
        let err = scan_err(&request_with_span(&[basic_span(), field].concat()));
        assert!(matches!(err, WireError::WrongWireType { .. }), "{err:?}");
    }
    // `resource_spans` itself as a varint, and an attribute value as a varint.
    assert!(matches!(
        scan_err(&varint_field(1, 5)),
        WireError::WrongWireType {
            path: "ExportTraceServiceRequest",
            ..
        }
    ));
    let attr = [len_field(1, b"service.name"), varint_field(2, 1)].concat();
    let buf = request(&len_field(1, &attr), &[]);
    assert!(matches!(
        scan_err(&buf),
        WireError::WrongWireType {
            path: "resource_spans.resource.attributes",
            ..
        }
    ));
}

#[test]
fn varints_longer_than_ten_bytes_are_errors() {
    let mut span = basic_span();
    // kind: 11 bytes.
    span.extend(key(6, VARINT));
    span.extend([0x80; 10]);
    span.push(0x01);
    let err = scan_err(&request_with_span(&span));
    assert!(matches!(err, WireError::InvalidVarint { .. }), "{err:?}");

    // Ten bytes whose last carries more than bit 63.
    let mut span = basic_span();
    span.extend(key(6, VARINT));
    span.extend([0xff; 9]);
    span.push(0x02);
    scan_err(&request_with_span(&span));

    // Ten bytes, last one 0x01: u64::MAX; kind keeps its low 32 bits (-1), as in prost.
    let mut span = basic_span();
    span.extend(key(6, VARINT));
    span.extend([0xff; 9]);
    span.push(0x01);
    assert_eq!(scan_ok(&request_with_span(&span)).spans[0].kind, -1);

    // Non-minimal encodings are accepted: kind 3 in five bytes.
    let span = [basic_span(), key(6, VARINT), varint_padded(3, 5)].concat();
    assert_eq!(scan_ok(&request_with_span(&span)).spans[0].kind, 3);

    // A varint cut by the end of the buffer, and a key cut short.
    scan_err(&[key(1, LEN), vec![0x80]].concat());
    scan_err(&[0x80]);
}

#[test]
fn lengths_beyond_the_buffer_are_errors() {
    // span_id says 100 bytes, 3 follow.
    let span = [key(2, LEN), varint(100), vec![1, 2, 3]].concat();
    let err = scan_err(&request_with_span(&span));
    assert!(
        matches!(
            err,
            WireError::Truncated {
                field: 2,
                needed: 100,
                available: 3,
                ..
            }
        ),
        "{err:?}"
    );

    // A length near u64::MAX must not overflow anything.
    let buf = [key(1, LEN), varint(u64::MAX - 1)].concat();
    assert!(matches!(scan_err(&buf), WireError::Truncated { .. }));

    // A field running past the end of its enclosing message (but not of the buffer).
    let span = [len_field(1, &[7; 16]), key(2, LEN), varint(8), vec![9; 4]].concat();
    let mut buf = request_with_span(&span);
    buf.extend(len_field(1, &[0; 10]));
    scan_err(&buf);

    // A fixed64 cut short.
    let span = [key(7, I64), vec![1, 2, 3]].concat();
    scan_err(&request_with_span(&span));
}

#[test]
fn invalid_keys_are_errors() {
    scan_err(&[0x00]); // field 0
    scan_err(&[0x0e]); // wire type 6
    scan_err(&[0x0f]); // wire type 7
    scan_err(&varint(1 << 35)); // key beyond u32
    let err = scan_err(&request_with_span(&[basic_span(), vec![0x07]].concat()));
    assert!(
        matches!(
            err,
            WireError::InvalidKey {
                path: "resource_spans.scope_spans.spans",
                key: 7,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn unknown_fields_of_every_wire_type_are_skipped() {
    let unknown = [
        varint_field(17, u64::MAX),
        fixed64_field(18, 42),
        len_field(19, b"opaque \xff bytes"),
        fixed32_field(20, 7),
        key(21, SGROUP),
        varint_field(1, 5),
        len_field(2, b"in a group"),
        key(3, SGROUP),
        fixed32_field(4, 1),
        key(3, EGROUP),
        key(21, EGROUP),
    ]
    .concat();
    let plain = request_with_span(&basic_span());
    let expected = scan_ok(&plain);
    // In the span, before and after the known fields, and in every other walked message.
    for span in [
        [unknown.clone(), basic_span()].concat(),
        [basic_span(), unknown.clone()].concat(),
    ] {
        assert_eq!(scan_ok(&request_with_span(&span)), expected);
    }
    let status = [unknown.clone(), varint_field(3, 2), unknown.clone()].concat();
    let span = [basic_span(), len_field(15, &status)].concat();
    assert_eq!(scan_ok(&request_with_span(&span)).spans[0].status_code, 2);
    let attr = [
        unknown.clone(),
        string_attr("server.address", b"db"),
        unknown.clone(),
    ]
    .concat();
    let span = [basic_span(), len_field(9, &attr)].concat();
    assert_eq!(
        scan_ok(&request_with_span(&span)).spans[0]
            .attrs
            .server_address,
        Some("db")
    );
    let value = [unknown.clone(), len_field(1, b"svc"), unknown.clone()].concat();
    let attr = [len_field(1, b"service.name"), len_field(2, &value)].concat();
    let resource = [unknown.clone(), len_field(1, &attr)].concat();
    let buf = [
        unknown.clone(),
        request(&resource, &[basic_span()]),
        unknown.clone(),
    ]
    .concat();
    assert_eq!(scan_ok(&buf).resources[0].service_values[0], Some("svc"));
}

#[test]
fn groups_follow_prost() {
    // A stray end-group, an end-group with another field number, and an unterminated group.
    scan_err(&request_with_span(
        &[basic_span(), key(17, EGROUP)].concat(),
    ));
    scan_err(&request_with_span(
        &[basic_span(), key(17, SGROUP), key(18, EGROUP)].concat(),
    ));
    scan_err(&request_with_span(
        &[basic_span(), key(17, SGROUP), varint_field(1, 1)].concat(),
    ));
    // A group as the wire type of a known field.
    scan_err(&request_with_span(
        &[basic_span(), key(6, SGROUP), key(6, EGROUP)].concat(),
    ));
    // An end-group at the top level.
    scan_err(&key(5, EGROUP));

    // Nested groups around prost's recursion limit, in the span and at the top level: the
    // scanner accepts and rejects at exactly the same depth.
    let nested = |depth: usize| {
        let mut g = Vec::new();
        for _ in 0..depth {
            g.extend(key(17, SGROUP));
        }
        g.extend(varint_field(1, 1));
        for _ in 0..depth {
            g.extend(key(17, EGROUP));
        }
        g
    };
    let mut accepted = Vec::new();
    for depth in 90..=101 {
        let in_span = request_with_span(&[basic_span(), nested(depth)].concat());
        let top = nested(depth);
        for buf in [in_span, top] {
            let outcome = check(&buf, &ResourceKeys::default());
            assert_ne!(outcome, Outcome::SkippedFieldRejected);
            accepted.push(outcome == Outcome::AllAccepted);
        }
    }
    assert!(
        accepted.iter().any(|a| *a) && accepted.iter().any(|a| !*a),
        "limit not reached: {accepted:?}"
    );
}

#[test]
fn last_scalar_occurrence_wins() {
    let span = [
        varint_field(6, 3),
        basic_span(), // kind 2, times, ids
        varint_field(6, 4),
        len_field(2, &[0x22; 8]),
        fixed64_field(8, 1_800_000_000_000_000_000),
    ]
    .concat();
    let buf = request_with_span(&span);
    let out = scan_ok(&buf);
    let s = &out.spans[0];
    assert_eq!(
        (s.kind, s.span_id, s.end_time_unix_nano),
        (4, &[0x22; 8][..], 1_800_000_000_000_000_000)
    );
}

#[test]
fn two_status_messages_merge() {
    let with = |statuses: &[Vec<u8>]| {
        let span: Vec<u8> = [basic_span()]
            .into_iter()
            .chain(statuses.iter().map(|s| len_field(15, s)))
            .flatten()
            .collect();
        scan_ok(&request_with_span(&span)).spans[0].status_code
    };
    let error = [len_field(2, b"boom"), varint_field(3, 2)].concat();
    // The second status carries only a message: the code set by the first stays.
    assert_eq!(with(&[error.clone(), len_field(2, b"more")]), 2);
    // The second sets the code: it wins.
    assert_eq!(with(&[error.clone(), varint_field(3, 1)]), 1);
    assert_eq!(with(&[Vec::new(), error]), 2);
    assert_eq!(with(&[]), 0);
}

#[test]
fn zero_length_ids_are_returned_as_empty() {
    let span = [
        len_field(1, &[]),
        len_field(2, &[]),
        len_field(4, &[]),
        varint_field(6, 1),
    ]
    .concat();
    let buf = request_with_span(&span);
    let out = scan_ok(&buf);
    let s = &out.spans[0];
    assert!(s.trace_id.is_empty() && s.span_id.is_empty() && s.parent_span_id.is_empty());
    assert!(s.validate(None, 0).is_err());
}

#[test]
fn attribute_values_merge_and_keep_their_last_member() {
    let attr = |parts: &[Vec<u8>]| {
        let span = [basic_span(), len_field(9, &parts.concat())].concat();
        scan_ok(&request_with_span(&span)).spans[0]
            .attrs
            .peer_service
            .map(str::to_owned)
    };
    let key = len_field(1, b"peer.service");
    // Value before key.
    assert_eq!(
        attr(&[len_field(2, &len_field(1, b"a")), key.clone()]),
        Some("a".into())
    );
    // Value given twice: merged, the later string wins.
    assert_eq!(
        attr(&[
            key.clone(),
            len_field(2, &len_field(1, b"a")),
            len_field(2, &len_field(1, b"b"))
        ]),
        Some("b".into())
    );
    // The later occurrence holds an int: the oneof's last member is not a string.
    assert_eq!(
        attr(&[
            key.clone(),
            len_field(2, &len_field(1, b"a")),
            len_field(2, &varint_field(3, 5))
        ]),
        None
    );
    // Int then string within one AnyValue.
    assert_eq!(
        attr(&[
            key.clone(),
            len_field(2, &[varint_field(3, 5), len_field(1, b"c")].concat())
        ]),
        Some("c".into())
    );
    // A later occurrence without a member leaves the string.
    assert_eq!(
        attr(&[
            key.clone(),
            len_field(2, &len_field(1, b"a")),
            len_field(2, &[])
        ]),
        Some("a".into())
    );
    // Empty value, no value.
    assert_eq!(attr(&[key.clone(), len_field(2, &[])]), None);
    assert_eq!(attr(std::slice::from_ref(&key)), None);
    // Key given twice: the last key decides which attribute this is.
    assert_eq!(
        attr(&[
            key.clone(),
            len_field(1, b"other"),
            len_field(2, &len_field(1, b"a"))
        ]),
        None
    );
    // The same key twice in the list: the last attribute wins, even when it is not a string.
    let span = [
        basic_span(),
        len_field(9, &string_attr("peer.service", b"first")),
        len_field(
            9,
            &[key.clone(), len_field(2, &varint_field(2, 1))].concat(),
        ),
    ]
    .concat();
    assert_eq!(
        scan_ok(&request_with_span(&span)).spans[0]
            .attrs
            .peer_service,
        None
    );
}

#[test]
fn fallback_keys_apply_only_without_the_preferred_string() {
    let span = [
        basic_span(),
        len_field(
            9,
            &[
                len_field(1, b"server.address"),
                len_field(2, &varint_field(3, 1)),
            ]
            .concat(),
        ),
        len_field(9, &string_attr("net.peer.name", b"old-name")),
        len_field(9, &string_attr("db.system.name", b"mysql")),
        len_field(9, &string_attr("db.system", b"old-db")),
    ]
    .concat();
    let buf = request_with_span(&span);
    let out = scan_ok(&buf);
    assert_eq!(out.spans[0].attrs.server_address, Some("old-name"));
    assert_eq!(out.spans[0].attrs.db_system, Some("mysql"));
}

#[test]
fn resource_given_twice_merges_and_may_follow_the_spans() {
    let rs = [
        len_field(2, &len_field(2, &basic_span())),
        len_field(1, &len_field(1, &string_attr("service.name", b"a"))),
        len_field(1, &len_field(1, &string_attr("k8s.cluster.name", b"c1"))),
        len_field(2, &len_field(2, &basic_span())),
    ]
    .concat();
    let buf = [len_field(1, &[]), len_field(1, &rs)].concat();
    let out = scan_ok(&buf);
    assert_eq!(out.resources.len(), 2);
    assert_eq!(out.resources[0].service_values[0], None);
    assert_eq!(out.resources[1].service_values[0], Some("a"));
    assert_eq!(out.resources[1].graph_values[0], Some("c1"));
    assert!(out.spans.iter().all(|s| s.resource == 1));
}

#[test]
fn invalid_utf8_is_an_error_only_where_the_scanner_reads() {
    // In a value the graph reads: rejected by all.
    let resource = len_field(1, &string_attr("service.name", b"bad \xff"));
    let err = scan_err(&request(&resource, &[]));
    assert!(
        matches!(
            err,
            WireError::InvalidUtf8 {
                path: "resource_spans.resource.attributes.value",
                ..
            }
        ),
        "{err:?}"
    );
    let span = [
        basic_span(),
        len_field(9, &string_attr("db.namespace", b"\xc3")),
    ]
    .concat();
    scan_err(&request_with_span(&span));

    // In the span name or an attribute the graph does not read: prost rejects, the scanner
    // skips the field without looking inside (the documented, accepted difference).
    for span in [
        [basic_span(), len_field(5, b"GET \xff")].concat(),
        [
            basic_span(),
            len_field(9, &string_attr("http.route", b"\xff")),
        ]
        .concat(),
    ] {
        let buf = request_with_span(&span);
        assert_eq!(
            check(&buf, &ResourceKeys::default()),
            Outcome::SkippedFieldRejected
        );
        assert_eq!(scan(&buf).expect("accepted").spans.len(), 1);
    }
}

#[test]
fn graph_keys_may_repeat_or_name_the_service() {
    let keys = ResourceKeys {
        graph_keys: vec![
            "service.name".into(),
            "k8s.cluster.name".into(),
            "service.name".into(),
        ],
        ..ResourceKeys::default()
    };
    let resource = [
        len_field(1, &string_attr("service.name", b"svc")),
        len_field(1, &string_attr("k8s.cluster.name", b"prod")),
    ]
    .concat();
    let buf = request(&resource, &[]);
    assert_eq!(check(&buf, &keys), Outcome::AllAccepted);
    let mut out = DecodedTraces::default();
    decode_traces(&buf, &keys, &mut out).expect("valid");
    assert_eq!(out.resources[0].service_values[0], Some("svc"));
    assert_eq!(
        out.resources[0].graph_values[..],
        [Some("svc"), Some("prod"), Some("svc")]
    );
}

#[test]
fn error_messages_name_path_and_offset() {
    let buf = request_with_span(&[basic_span(), key(6, LEN), varint(1), vec![0]].concat());
    let err = scan(&buf).expect_err("invalid");
    let offset = match &err {
        WireError::WrongWireType { offset, .. } => *offset,
        _ => usize::MAX,
    };
    assert!(offset > 0 && offset < buf.len(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "resource_spans.scope_spans.spans: field 6 has wire type LEN, expected VARINT (byte {offset})"
        )
    );
}
