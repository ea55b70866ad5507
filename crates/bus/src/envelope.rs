//! Envelopes: how a payload travels (properties, headers, size limit), and why an
//! incoming one is refused.

use lapin::{
    types::{AMQPValue, FieldTable, LongString, ShortString},
    BasicProperties,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use gate_core::{Decision, EventError, MergeEvent, Outcome, OutcomeError, DECISION_SCHEMA_VERSION};

use crate::BusError;

/// Header carrying the W3C trace context from producer to orchestrator.
pub(crate) const TRACEPARENT_HEADER: &str = "traceparent";
/// Header carrying why a message was dead-lettered by a gate component.
pub const GATE_ERROR_HEADER: &str = "x-gate-error";
/// Header naming the queue a gate component dead-lettered a message from.
pub(crate) const GATE_QUEUE_HEADER: &str = "x-gate-queue";
/// Header in which quorum queues count earlier deliveries of a message.
pub(crate) const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";
/// Header in which streams give a delivery's offset.
pub(crate) const STREAM_OFFSET_HEADER: &str = "x-stream-offset";
/// Longest `x-gate-error` value: the reason is for a person, not a payload dump.
const MAX_REASON_BYTES: usize = 1024;
/// AMQP `delivery_mode` of a message the broker writes to disk.
const PERSISTENT: u8 = 2;

/// A message ready to publish: a payload and the properties every gate message
/// carries.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub(crate) payload: Vec<u8>,
    pub(crate) message_id: String,
    pub(crate) kind: &'static str,
    pub(crate) traceparent: Option<String>,
}

impl Outgoing {
    /// A JSON message. `message_id` is the event id the message is about, so every
    /// hop of one merge shares it and duplicates can be recognised.
    pub fn json<T: Serialize>(
        kind: &'static str,
        message_id: impl Into<String>,
        body: &T,
    ) -> Result<Outgoing, BusError> {
        let payload = serde_json::to_vec(body).map_err(BusError::Encode)?;
        Ok(Outgoing {
            payload,
            message_id: message_id.into(),
            kind,
            traceparent: None,
        })
    }

    /// A message from bytes that are already JSON (forwarding, replay, tests that
    /// need a payload no serializer would write).
    pub fn bytes(kind: &'static str, message_id: impl Into<String>, payload: Vec<u8>) -> Outgoing {
        Outgoing {
            payload,
            message_id: message_id.into(),
            kind,
            traceparent: None,
        }
    }

    /// Carries a W3C `traceparent` so one trace follows the merge across processes.
    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Outgoing {
        self.traceparent = traceparent;
        self
    }

    /// The payload size, which the publisher checks against the limit.
    pub(crate) fn len(&self) -> usize {
        self.payload.len()
    }

    /// The AMQP properties: persistent, JSON, stamped, identified.
    pub(crate) fn properties(&self) -> Result<BasicProperties, BusError> {
        let message_id =
            ShortString::try_new(self.message_id.as_str()).map_err(|_| BusError::TooLong {
                field: "message_id",
                len: self.message_id.len(),
            })?;
        let mut headers = FieldTable::default();
        if let Some(traceparent) = &self.traceparent {
            headers.insert(
                TRACEPARENT_HEADER.into(),
                AMQPValue::LongString(LongString::from(traceparent.as_str())),
            );
        }
        let kind = ShortString::try_new(self.kind).map_err(|_| BusError::TooLong {
            field: "type",
            len: self.kind.len(),
        })?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Ok(BasicProperties::default()
            .with_message_id(message_id)
            .with_content_type("application/json".into())
            .with_delivery_mode(PERSISTENT)
            .with_timestamp(u64::try_from(now).unwrap_or(0))
            .with_type(kind)
            .with_app_id("deploy-gate".into())
            .with_headers(headers))
    }
}

/// Why an incoming message is refused. Its `Display` is the `x-gate-error` header
/// value (`<code>: <detail>`), so a person reading the dead-letter queue sees the
/// same words the worker logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The payload is larger than the configured limit.
    #[error("oversized: payload of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized {
        /// Payload size.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// Not JSON, or not the expected shape.
    #[error("malformed: {detail}")]
    Malformed {
        /// The parser's complaint (positions and field names, never payload text).
        detail: String,
    },
    /// A `schema_version` this build does not read.
    #[error("unknown_version: schema_version {found} (this build reads {supported})")]
    UnknownVersion {
        /// The version in the payload.
        found: u64,
        /// The version this build reads.
        supported: u32,
    },
    /// A required field is empty.
    #[error("empty_field: `{field}` is empty")]
    EmptyField {
        /// The field's name.
        field: &'static str,
    },
    /// Processing failed past its retries (e.g. a webhook target that keeps
    /// answering 5xx): the message is fine but cannot be handled now.
    #[error("failed: {detail}")]
    Failed {
        /// What failed.
        detail: String,
    },
}

impl Rejection {
    /// A short machine-readable code: `oversized`, `malformed`, `unknown_version`,
    /// `empty_field` or `failed`, for metrics labels and alert rules.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Oversized { .. } => "oversized",
            Rejection::Malformed { .. } => "malformed",
            Rejection::UnknownVersion { .. } => "unknown_version",
            Rejection::EmptyField { .. } => "empty_field",
            Rejection::Failed { .. } => "failed",
        }
    }

    /// The `x-gate-error` header value: the `Display`, cut to 1 KiB.
    pub fn header_value(&self) -> String {
        let mut value = self.to_string();
        if value.len() > MAX_REASON_BYTES {
            let mut cut = MAX_REASON_BYTES - '…'.len_utf8();
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
            value.push('…');
        }
        value
    }
}

impl From<EventError> for Rejection {
    fn from(error: EventError) -> Self {
        match error {
            EventError::Malformed(error) => Rejection::Malformed {
                detail: error.to_string(),
            },
            EventError::UnknownVersion { found } => Rejection::UnknownVersion {
                found,
                supported: gate_core::EVENT_SCHEMA_VERSION,
            },
            EventError::EmptyField(field) => Rejection::EmptyField { field },
        }
    }
}

/// Checks the size limit before anything parses the payload.
pub(crate) fn check_size(payload: &[u8], limit: usize) -> Result<(), Rejection> {
    if payload.len() > limit {
        return Err(Rejection::Oversized {
            size: payload.len(),
            limit,
        });
    }
    Ok(())
}

/// Decodes a merge event: size first, then [`MergeEvent::from_json`] (version, then
/// shape, then required fields). What [`Delivery::merge_event`](crate::Delivery::merge_event)
/// does with a delivery's body; public so that anything holding the bytes (a replay
/// tool, the fuzz targets) decodes them the same way.
pub fn decode_event(payload: &[u8], limit: usize) -> Result<MergeEvent, Rejection> {
    check_size(payload, limit)?;
    Ok(MergeEvent::from_json(payload)?)
}

/// Decodes a decision: size, then version, then shape, like a merge event.
pub fn decode_decision(payload: &[u8], limit: usize) -> Result<Decision, Rejection> {
    check_size(payload, limit)?;
    let decision: Decision = decode_versioned(payload, DECISION_SCHEMA_VERSION)?;
    if decision.event_id.trim().is_empty() {
        return Err(Rejection::EmptyField { field: "event_id" });
    }
    Ok(decision)
}

/// Decodes an outcome report: size, then [`Outcome::from_json`] (version when
/// present, shape, event id, time; the note redacted and cut).
pub fn decode_outcome(payload: &[u8], limit: usize) -> Result<Outcome, Rejection> {
    check_size(payload, limit)?;
    Outcome::from_json(payload).map_err(|error| match error {
        OutcomeError::UnknownVersion { found } => Rejection::UnknownVersion {
            found,
            supported: gate_core::OUTCOME_SCHEMA_VERSION,
        },
        OutcomeError::EmptyField(field) => Rejection::EmptyField { field },
        other => Rejection::Malformed {
            detail: other.to_string(),
        },
    })
}

/// Decodes any payload with a `schema_version`, checking the version before the
/// shape so a future message says "unknown version", not "unknown field".
pub(crate) fn decode_versioned<T: DeserializeOwned>(
    payload: &[u8],
    supported: u32,
) -> Result<T, Rejection> {
    #[derive(Deserialize)]
    struct VersionOnly {
        schema_version: u64,
    }
    let malformed = |error: serde_json::Error| Rejection::Malformed {
        detail: error.to_string(),
    };
    let version: VersionOnly = serde_json::from_slice(payload).map_err(malformed)?;
    if version.schema_version != u64::from(supported) {
        return Err(Rejection::UnknownVersion {
            found: version.schema_version,
            supported,
        });
    }
    serde_json::from_slice(payload).map_err(malformed)
}

/// A header as text, when it is a string.
pub(crate) fn header_str<'a>(headers: Option<&'a FieldTable>, name: &str) -> Option<&'a str> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(value) => std::str::from_utf8(value.as_bytes()).ok(),
        AMQPValue::ShortString(value) => Some(value.as_str()),
        _ => None,
    }
}

/// A header as an unsigned number, whatever integer type the broker chose.
pub(crate) fn header_u64(headers: Option<&FieldTable>, name: &str) -> Option<u64> {
    match headers?.inner().get(name)? {
        AMQPValue::ShortShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::Timestamp(v) => Some(*v),
        AMQPValue::ShortShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_read_as_code_then_detail() {
        let oversized = Rejection::Oversized { size: 10, limit: 5 };
        assert_eq!(oversized.code(), "oversized");
        assert!(oversized.header_value().starts_with("oversized: "));
        let long = Rejection::Failed {
            detail: "é".repeat(2000),
        };
        let value = long.header_value();
        assert!(value.len() <= MAX_REASON_BYTES && value.ends_with('…'));
    }

    #[test]
    fn event_decoding_checks_size_then_version_then_shape() {
        assert_eq!(
            decode_event(b"{}", 1).unwrap_err(),
            Rejection::Oversized { size: 2, limit: 1 }
        );
        assert_eq!(
            decode_event(b"not json", 100).unwrap_err().code(),
            "malformed"
        );
        let future = br#"{"schema_version": 99, "whatever": true}"#;
        assert_eq!(
            decode_event(future, 100).unwrap_err(),
            Rejection::UnknownVersion {
                found: 99,
                supported: 1
            }
        );
        let wrong_shape = br#"{"schema_version": 1, "event_id": "x"}"#;
        assert_eq!(
            decode_event(wrong_shape, 100).unwrap_err().code(),
            "malformed"
        );
    }

    #[test]
    fn a_message_id_longer_than_amqp_allows_is_refused_not_a_panic() {
        let outgoing = Outgoing::bytes("merge_event", "x".repeat(256), b"{}".to_vec());
        let error = outgoing.properties().unwrap_err();
        assert!(matches!(
            error,
            BusError::TooLong {
                field: "message_id",
                len: 256
            }
        ));
    }
}
