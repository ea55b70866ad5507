//! What can go wrong producing an event, and what the caller should do about it.

use gate_bus::{Action, BusError};
use gate_core::EventError;

/// Why an event was not enqueued, or the webhook server could not run.
///
/// Messages name the thing at fault and never contain a secret (AMQP URLs, tokens,
/// webhook secrets), so a CLI can print them as they are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerError {
    /// The serialized event is larger than the bus accepts.
    #[error("merge event {event_id} is {size} bytes, over the bus payload limit of {limit} bytes: lower the context budget (context.budget_chars, now {budget_chars} characters) so less diff is packed, or raise amqp.max_payload_bytes on every component")]
    Oversized {
        /// The event's id.
        event_id: String,
        /// Its size as JSON, in bytes.
        size: usize,
        /// `BusSettings::max_payload_bytes`.
        limit: usize,
        /// The budget its diff was packed into.
        budget_chars: usize,
    },
    /// The event is not one a worker would accept (empty id, repo or head, unknown
    /// schema version).
    #[error("invalid merge event: {0}")]
    InvalidEvent(#[from] EventError),
    /// The broker did not take the event: not confirmed, nacked, unroutable, or the
    /// connection is gone.
    #[error("merge event {event_id} was not enqueued: {source}")]
    Bus {
        /// The event's id.
        event_id: String,
        /// What the bus said (boxed: lapin's errors are large).
        #[source]
        source: Box<BusError>,
    },
    /// Settings that cannot work (no webhook secret set, a bad API URL).
    #[error("invalid producer settings: {0}")]
    Config(String),
    /// The webhook server could not use its listener.
    #[error("webhook server: {doing}: {source}")]
    Io {
        /// What was being done.
        doing: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl ProducerError {
    /// Whether trying again later may succeed: the broker nacked, did not confirm in
    /// time, or the connection dropped. Why: `deploy-gate enqueue` retries these (and
    /// otherwise exits as a usage or configuration error), and the webhook answers
    /// them 503 so the sender delivers again, the rest 4xx/500.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProducerError::Bus { source, .. } => {
                matches!(source.action(), Action::Retry | Action::Reconnect)
            }
            ProducerError::Io { .. } => true,
            ProducerError::Oversized { .. }
            | ProducerError::InvalidEvent(_)
            | ProducerError::Config(_) => false,
        }
    }

    /// A failed publish of `event`; too large, it names the event's context
    /// budget, the knob that shrinks it.
    pub(crate) fn publishing(event: &gate_core::MergeEvent, source: BusError) -> ProducerError {
        match ProducerError::bus(&event.event_id, source) {
            ProducerError::Oversized {
                event_id,
                size,
                limit,
                ..
            } => ProducerError::Oversized {
                event_id,
                size,
                limit,
                budget_chars: event.context.budget_chars,
            },
            other => other,
        }
    }

    pub(crate) fn bus(event_id: &str, source: BusError) -> ProducerError {
        match source {
            BusError::Oversized { size, limit } => ProducerError::Oversized {
                event_id: event_id.to_owned(),
                size,
                limit,
                budget_chars: 0,
            },
            source => ProducerError::Bus {
                event_id: event_id.to_owned(),
                source: Box::new(source),
            },
        }
    }
}
