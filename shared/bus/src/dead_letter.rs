//! Dead letters: a message that can never be stored goes to `meshwatch.v1.dlq.<kind>` with
//! the reason, the consumer and its original subject as headers, and is terminated.

use std::time::Duration;

use crate::envelope::{HEADER_CONTENT_TYPE, HEADER_MSG_ID};
use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{AckKind, Context, Message};

/// Header naming why a message went to the dead-letter subject.
pub const HEADER_REASON: &str = "Meshwatch-Dead-Letter-Reason";
/// Header naming the consumer that gave up on a dead letter.
pub const HEADER_CONSUMER: &str = "Meshwatch-Consumer";
/// Header naming the subject a dead letter was first published on.
pub const HEADER_ORIGINAL_SUBJECT: &str = "Meshwatch-Original-Subject";

/// What became of a message given to [`send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Published as a dead letter and terminated.
    DeadLettered,
    /// NATS did not take the dead letter: the message was nak'ed and comes back.
    Redelivered,
}

impl Sent {
    /// Metric label: `dead_letter` or `abandoned`.
    pub fn label(self) -> &'static str {
        match self {
            Self::DeadLettered => "dead_letter",
            Self::Redelivered => "abandoned",
        }
    }
}

/// Publishes `message` to `subject` (`Names::dlq_subject`) with `reason` (`Nats-Msg-Id` =
/// `dlq:<consumer>:<stream sequence>`, so a repeat is de-duplicated), then terminates it. When
/// NATS does not take the dead letter, the message is nak'ed with `retry` (delivered again, and
/// dead-lettered again once NATS takes it).
pub async fn send(
    context: &Context,
    subject: &str,
    consumer: &str,
    message: &Message,
    reason: &str,
    retry: Duration,
) -> Sent {
    let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
    tracing::warn!(subject = %message.subject, sequence, reason, "dead-lettering a message");
    let mut headers = HeaderMap::new();
    let id = format!("dlq:{consumer}:{sequence}");
    headers.insert(HEADER_MSG_ID, id.as_str());
    headers.insert(HEADER_REASON, sanitize_header(reason).as_str());
    headers.insert(HEADER_CONSUMER, consumer);
    headers.insert(HEADER_ORIGINAL_SUBJECT, message.subject.as_str());
    if let Some(original) = &message.headers
        && let Some(content_type) = original.get(HEADER_CONTENT_TYPE)
    {
        headers.insert(HEADER_CONTENT_TYPE, content_type.as_str());
    }
    let publish = PublishMessage::build()
        .payload(message.payload.clone())
        .headers(headers);
    let published = match context.send_publish(subject.to_owned(), publish).await {
        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = published {
        tracing::warn!(%error, subject, "cannot publish the dead letter");
        if let Err(error) = message.ack_with(AckKind::Nak(Some(retry))).await {
            tracing::debug!(%error, "nak failed");
        }
        return Sent::Redelivered;
    }
    if let Err(error) = message.ack_with(AckKind::Term).await {
        tracing::warn!(%error, "terminating the dead letter failed");
    }
    Sent::DeadLettered
}

/// A header value: printable ASCII only, at most 512 bytes.
pub fn sanitize_header(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(512)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_sanitized() {
        assert_eq!(sanitize_header("a\nb\tc é"), "a?b?c ?");
        assert_eq!(sanitize_header(&"x".repeat(600)).len(), 512);
    }
}
