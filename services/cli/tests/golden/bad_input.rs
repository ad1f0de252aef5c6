//! Bad inputs of `meshwatch snapshot`: each stops the run with an exact error and exit
//! status 1, except invalid spans, which are counted and reported while the run goes on.

use crate::check::{assert_same_output, lines};
use crate::{FIXTURES, fixture, oracle, read, snapshot, snapshot_ok, stderr, to_protobuf};

/// The output expected when the command stops before request `bad` (0-based): the snapshots
/// that the requests before it closed, a prefix of the full output.
fn written_before(name: &str, bad: usize) -> Vec<u8> {
    let exp = oracle::expected(&oracle::read_spans(&read(&fixture(name))), 60_000, 10_000);
    let closed = exp
        .order
        .iter()
        .filter(|k| exp.windows[*k].closed_after < bad)
        .count();
    let full = snapshot_ok(&fixture(name), "otlp-json");
    full.split_inclusive(|&b| b == b'\n')
        .take(closed)
        .flatten()
        .copied()
        .collect()
}

/// A torn JSON line stops the run at that line; snapshots closed before it stay written.
#[test]
fn invalid_json_line_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = FIXTURES[0];
    let json = read(&fixture(name));
    let records: Vec<&[u8]> = json.split_inclusive(|&b| b == b'\n').collect();
    // Line 21 cut after 100 bytes, as a crashed writer leaves it; the rest follows.
    let mut input = records[..20].concat();
    input.extend_from_slice(&records[20][..100]);
    input.push(b'\n');
    input.extend(records[20..].concat());
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, &input).expect("write");
    let output = dir.path().join("out.jsonl");
    let out = snapshot(&path, "otlp-json", &output, &["--window", "60s"]);
    assert_eq!(out.status.code(), Some(1));
    // The line's newline ends the record inside a string; the decoder's position is within the
    // record.
    let serde =
        "control character (\\u0000-\\u001F) found while parsing a string at line 2 column 0";
    assert_eq!(
        stderr(&out),
        format!("meshwatch: error: line 21: invalid OTLP/JSON trace request: {serde}\n")
    );
    let written = read(&output);
    assert_eq!(lines_of(&written), 1, "the window lines 1-20 closed");
    assert_same_output("partial output", &written, &written_before(name, 20));
}

fn lines_of(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// A protobuf file cut inside its last record, inside a length prefix, or whose record holds a
/// truncated message.
#[test]
fn truncated_protobuf_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = FIXTURES[0];
    let json = read(&fixture(name));
    let (proto, lengths) = to_protobuf(&json, oracle::read_spans(&json).len());
    let output = dir.path().join("out.jsonl");
    let path = dir.path().join("in.pb");

    std::fs::write(&path, &proto[..proto.len() - 100]).expect("write");
    let out = snapshot(&path, "otlp-proto", &output, &["--window", "60s"]);
    assert_eq!(out.status.code(), Some(1));
    let last = lengths.len();
    assert_eq!(
        stderr(&out),
        format!(
            "meshwatch: error: record {last}: truncated (expected {} bytes): \
             failed to fill whole buffer\n",
            lengths[last - 1]
        )
    );
    let written = read(&output);
    assert_eq!(lines_of(&written), 1, "the window records 1-21 closed");
    assert_same_output("partial output", &written, &written_before(name, last - 1));

    // The first record's length needs two varint bytes; only the first is there.
    assert!(lengths[0] >= 128);
    std::fs::write(&path, &proto[..1]).expect("write");
    let out = snapshot(&path, "otlp-proto", &output, &["--window", "60s"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "meshwatch: error: truncated length prefix\n");
    assert_eq!(read(&output), b"");

    // A complete record whose message is cut: resource_spans (field 1) claims 5 bytes, has 1.
    std::fs::write(&path, [3, 0x0a, 5, 1]).expect("write");
    let out = snapshot(&path, "otlp-proto", &output, &["--window", "60s"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "meshwatch: error: record 1: invalid OTLP protobuf trace request: \
         ExportTraceServiceRequest: field 1 at byte 2 needs 5 bytes, 1 left\n"
    );
    assert_eq!(read(&output), b"");
}

/// Empty and blank inputs are errors (the output file is created, and stays empty); a missing
/// input is an error before any output file is created.
#[test]
fn empty_and_missing_inputs_are_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (file, content, format) in [
        ("empty.jsonl", &b""[..], "otlp-json"),
        ("blank.jsonl", &b"\n  \n\n"[..], "otlp-json"),
        ("empty.pb", &b""[..], "otlp-proto"),
    ] {
        let path = dir.path().join(file);
        std::fs::write(&path, content).expect("write");
        let output = dir.path().join(format!("{file}.out"));
        let out = snapshot(&path, format, &output, &["--window", "60s"]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let msg = format!(
            "meshwatch: error: {} holds no trace requests\n",
            path.display()
        );
        assert_eq!(stderr(&out), msg);
        assert_eq!(read(&output), b"", "{file}");
    }

    let path = dir.path().join("missing.jsonl");
    let output = dir.path().join("missing.out");
    let out = snapshot(&path, "otlp-json", &output, &["--window", "60s"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "meshwatch: error: cannot open {}: No such file or directory (os error 2)\n",
            path.display()
        )
    );
    assert!(!output.exists(), "nothing is created for a missing input");
}

/// An invalid span is reported on stderr, the run goes on, and the rejection is counted in the
/// next snapshot its graph emits (whatever window that snapshot is for).
#[test]
fn rejected_span_is_reported_and_counted_in_the_next_snapshot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = FIXTURES[0];
    // One span of the fixture's graph whose trace id is all zero.
    let bad = serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "frontend"}},
            {"key": "k8s.cluster.name", "value": {"stringValue": "onlineboutique"}},
        ]},
        "scopeSpans": [{"spans": [{
            "traceId": "00000000000000000000000000000000",
            "spanId": "0000000000000001",
            "startTimeUnixNano": "1661140339000000000",
            "endTimeUnixNano": "1661140339000000001",
        }]}],
    }]});
    let mut input = format!("{bad}\n").into_bytes();
    input.extend(read(&fixture(name)));
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, &input).expect("write");
    let output = dir.path().join("out.jsonl");
    let out = snapshot(&path, "otlp-json", &output, &["--window", "60s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "meshwatch: line 1: 1 spans rejected: trace_id must be 16 bytes and not all zero; \
         first rejected span at index 0 (invalid_trace_id)\n"
    );
    let mut want = lines(&snapshot_ok(&fixture(name), "otlp-json"));
    want[0]["stats"]["rejected"] = 1.into();
    assert_eq!(lines(&read(&output)), want);
}
