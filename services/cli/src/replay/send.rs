//! Sending one request to an OTLP endpoint, with the OTLP retry rules: over gRPC
//! (`TraceServiceClient`) UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE and
//! DATA_LOSS are retried, RESOURCE_EXHAUSTED only with a `google.rpc.RetryInfo`; over HTTP
//! (`POST /v1/traces`, protobuf) 429, 502, 503 and 504, and connection failures. A delay the
//! server gives (RetryInfo, `Retry-After` in seconds, or the RetryInfo in an HTTP error body)
//! is honoured; otherwise exponential backoff from 100 ms to 5 s. A request that is still
//! refused after the retry budget, or that gets any other error, has failed.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::ValueEnum;
use meshwatch_ingest::retry_info::{RetryInfo, RpcStatus};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// OTLP/gRPC (`TraceService/Export`, default port 4317).
    Grpc,
    /// OTLP/HTTP, protobuf bodies (`POST /v1/traces`, default port 4318).
    Http,
}

/// The answer to one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Accepted; this many spans of it were not (partial success).
    Accepted { rejected_spans: u64 },
    /// Refused for now, or not reached: retry (after the delay the server asked for, if any).
    Retry {
        after: Option<Duration>,
        /// The server answered (overload); `false` for connection failures.
        refused: bool,
        reason: String,
    },
    /// Failed for good.
    Failed(String),
}

/// What sending one request came to, retries included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `Ok(rejected spans)`, or why it failed.
    pub result: Result<u64, String>,
    /// Retryable refusals the server answered with.
    pub refused: u64,
    /// Attempts after the first.
    pub retries: u64,
}

/// A connection to one OTLP endpoint.
#[derive(Debug, Clone)]
pub enum Sender {
    Grpc(TraceServiceClient<Channel>),
    Http {
        client: reqwest::Client,
        url: String,
    },
}

impl Sender {
    /// A sender for `endpoint` (`http://host:port`; for HTTP `/v1/traces` is appended when it
    /// has no path). Nothing connects until the first request; `timeout` bounds each attempt.
    pub fn new(endpoint: &str, protocol: Protocol, timeout: Duration) -> anyhow::Result<Self> {
        if !endpoint.starts_with("http://") {
            bail!(
                "{endpoint}: expected http://host:port (TLS is not built into this command; \
                 replay to a local collector or ingest)"
            );
        }
        Ok(match protocol {
            Protocol::Grpc => {
                let channel = Endpoint::from_shared(endpoint.to_owned())
                    .with_context(|| format!("invalid endpoint {endpoint}"))?
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .tcp_nodelay(true)
                    .connect_lazy();
                Self::Grpc(TraceServiceClient::new(channel).max_decoding_message_size(4 << 20))
            }
            Protocol::Http => {
                let mut url = reqwest::Url::parse(endpoint)
                    .with_context(|| format!("invalid endpoint {endpoint}"))?;
                if url.path() == "/" || url.path().is_empty() {
                    url.set_path("/v1/traces");
                }
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .tcp_nodelay(true)
                    .build()
                    .context("cannot build the HTTP client")?;
                Self::Http {
                    client,
                    url: url.to_string(),
                }
            }
        })
    }

    /// One attempt. `body` is `request` encoded (HTTP sends it as it is).
    pub async fn attempt(&mut self, request: &ExportTraceServiceRequest, body: &Bytes) -> Attempt {
        match self {
            Self::Grpc(client) => match client.export(request.clone()).await {
                Ok(response) => Attempt::Accepted {
                    rejected_spans: rejected(&response.into_inner()),
                },
                Err(status) => grpc_attempt(&status),
            },
            Self::Http { client, url } => {
                let response = client
                    .post(url.as_str())
                    .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(body.clone())
                    .send()
                    .await;
                let response = match response {
                    Ok(r) => r,
                    Err(e) => {
                        return Attempt::Retry {
                            after: None,
                            refused: false,
                            reason: format!("{e}"),
                        };
                    }
                };
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let bytes = match response.bytes().await {
                    Ok(b) => b,
                    Err(e) => {
                        return Attempt::Retry {
                            after: None,
                            refused: false,
                            reason: format!("reading the response: {e}"),
                        };
                    }
                };
                http_attempt(status, retry_after, &bytes)
            }
        }
    }
}

fn rejected(response: &ExportTraceServiceResponse) -> u64 {
    response
        .partial_success
        .as_ref()
        .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
}

/// The delay of a `google.rpc.RetryInfo` in an encoded `google.rpc.Status`.
pub fn retry_delay(status_bytes: &[u8]) -> Option<Duration> {
    let status = RpcStatus::decode(status_bytes).ok()?;
    status
        .details
        .iter()
        .filter(|d| d.type_url.ends_with("google.rpc.RetryInfo"))
        .find_map(|d| RetryInfo::decode(&d.value[..]).ok()?.retry_delay)
        .map(|d| {
            Duration::from_secs(u64::try_from(d.seconds).unwrap_or(0))
                + Duration::from_nanos(u64::try_from(d.nanos).unwrap_or(0))
        })
}

/// Classifies a gRPC error status.
pub fn grpc_attempt(status: &Status) -> Attempt {
    let delay = retry_delay(status.details());
    let reason = format!("gRPC {:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => Attempt::Retry {
            after: delay,
            // tonic reports a connection it could not make as UNAVAILABLE too.
            refused: !status.message().contains("transport error")
                && !status.message().contains("connect"),
            reason,
        },
        Code::ResourceExhausted if delay.is_some() => Attempt::Retry {
            after: delay,
            refused: true,
            reason,
        },
        _ => Attempt::Failed(reason),
    }
}

/// Classifies an HTTP answer.
pub fn http_attempt(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Attempt {
    match status {
        200..=299 => match ExportTraceServiceResponse::decode(body) {
            Ok(r) => Attempt::Accepted {
                rejected_spans: rejected(&r),
            },
            Err(e) => Attempt::Failed(format!("undecodable OTLP response: {e}")),
        },
        429 | 502 | 503 | 504 => Attempt::Retry {
            after: retry_after.or_else(|| retry_delay(body)),
            refused: true,
            reason: format!("HTTP {status}"),
        },
        _ => {
            let message = RpcStatus::decode(body).map_or_else(
                |_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                |s| s.message,
            );
            Attempt::Failed(format!("HTTP {status}: {message}"))
        }
    }
}

/// Sends `request`, retrying as the rules allow for at most `budget`.
pub async fn deliver(
    sender: &mut Sender,
    request: &ExportTraceServiceRequest,
    budget: Duration,
) -> Delivery {
    let body = Bytes::from(request.encode_to_vec());
    let deadline = Instant::now() + budget;
    let mut backoff = Duration::from_millis(100);
    let (mut refused, mut retries) = (0, 0);
    loop {
        match sender.attempt(request, &body).await {
            Attempt::Accepted { rejected_spans } => {
                return Delivery {
                    result: Ok(rejected_spans),
                    refused,
                    retries,
                };
            }
            Attempt::Failed(reason) => {
                return Delivery {
                    result: Err(reason),
                    refused,
                    retries,
                };
            }
            Attempt::Retry {
                after,
                refused: by_server,
                reason,
            } => {
                refused += u64::from(by_server);
                let wait = after.unwrap_or(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                if Instant::now() + wait > deadline {
                    return Delivery {
                        result: Err(format!("{reason} (gave up after {budget:?} of retries)")),
                        refused,
                        retries,
                    };
                }
                tokio::time::sleep(wait).await;
                retries += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use meshwatch_ingest::retry_info::status_details;

    use super::*;

    #[test]
    fn grpc_codes_follow_the_otlp_rules() {
        let details = status_details(14, "overloaded", Duration::from_secs(5));
        let overloaded = Status::with_details(Code::Unavailable, "overloaded", details.into());
        assert_eq!(
            grpc_attempt(&overloaded),
            Attempt::Retry {
                after: Some(Duration::from_secs(5)),
                refused: true,
                reason: "gRPC Unavailable: overloaded".to_owned()
            }
        );
        assert!(matches!(
            grpc_attempt(&Status::resource_exhausted("too large")),
            Attempt::Failed(_)
        ));
        let details = status_details(8, "slow down", Duration::from_millis(1500));
        let exhausted = Status::with_details(Code::ResourceExhausted, "slow down", details.into());
        assert!(matches!(
            grpc_attempt(&exhausted),
            Attempt::Retry { after: Some(d), .. } if d == Duration::from_millis(1500)
        ));
        assert!(matches!(
            grpc_attempt(&Status::invalid_argument("bad")),
            Attempt::Failed(m) if m.contains("InvalidArgument")
        ));
    }

    #[test]
    fn http_answers_follow_the_otlp_rules() {
        let ok = ExportTraceServiceResponse::default().encode_to_vec();
        assert_eq!(
            http_attempt(200, None, &ok),
            Attempt::Accepted { rejected_spans: 0 }
        );
        let partial = ExportTraceServiceResponse {
            partial_success: Some(
                opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                    rejected_spans: 3,
                    error_message: "late".to_owned(),
                },
            ),
        }
        .encode_to_vec();
        assert_eq!(
            http_attempt(200, None, &partial),
            Attempt::Accepted { rejected_spans: 3 }
        );
        assert!(matches!(
            http_attempt(503, Some(Duration::from_secs(2)), b""),
            Attempt::Retry { after: Some(d), refused: true, .. } if d == Duration::from_secs(2)
        ));
        // No header: the RetryInfo of the body.
        let body = status_details(14, "overloaded", Duration::from_secs(4));
        assert!(matches!(
            http_attempt(503, None, &body),
            Attempt::Retry { after: Some(d), .. } if d == Duration::from_secs(4)
        ));
        let bad = status_details(3, "request contains no spans", Duration::ZERO);
        assert_eq!(
            http_attempt(400, None, &bad),
            Attempt::Failed("HTTP 400: request contains no spans".to_owned())
        );
    }
}
