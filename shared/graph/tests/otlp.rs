//! OTLP decoding: the zero-copy protobuf scanner against `prost`, and OTLP/JSON.

mod otlp {
    mod differential;
    mod generate;
    mod json;
    mod oracle;
    mod raw;
    mod wire_cases;
}
