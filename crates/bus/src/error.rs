//! The bus's errors, and what a caller should do about each.

use std::fmt;

use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};

/// What a caller should do after a [`BusError`]. The worker's ack / requeue /
/// dead-letter choice and the producer's exit code read this, so that the
/// classification lives in one place instead of in every caller's `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Transient: the same operation may succeed if tried again after a backoff
    /// (a broker nack, a confirm that did not arrive in time).
    Retry,
    /// The channel or the connection is gone: open a new channel, or reconnect with
    /// [`Bus::connect`](crate::Bus::connect) when [`Bus::is_connected`](crate::Bus::is_connected)
    /// says so, then retry. Unacked deliveries come back by themselves.
    Reconnect,
    /// The message itself can never be published or processed (too large, an id
    /// that AMQP cannot carry): dead-letter the input that produced it.
    DeadLetter,
    /// Configuration or topology is wrong (unroutable message, arguments that
    /// disagree with the declared queue, access refused): retrying cannot help, a
    /// person must look.
    Fail,
}

/// An error from the broker side of the bus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// No connection could be made within the configured attempts.
    #[error("could not connect to the AMQP broker after {attempts} attempt(s): {last}")]
    Connect {
        /// How many attempts were made.
        attempts: u32,
        /// Why the last attempt failed (never contains the URL or its password).
        last: String,
    },
    /// The broker or the client library reported an error during `op`.
    #[error("AMQP {op} failed: {source}")]
    Amqp {
        /// The operation, e.g. `queue.declare gate.merge-events`.
        op: String,
        /// The client library's error.
        #[source]
        source: AmqpError,
    },
    /// The broker refused to take responsibility for a published message.
    #[error("the broker nacked the message published to exchange `{exchange}` with routing key `{routing_key}`")]
    Nacked {
        /// Exchange the message was published to.
        exchange: String,
        /// Its routing key.
        routing_key: String,
    },
    /// A mandatory message matched no queue and came back.
    #[error("unroutable: no queue is bound to exchange `{exchange}` for routing key `{routing_key}` ({reply_code} {reply_text})")]
    Unroutable {
        /// Exchange the message was published to.
        exchange: String,
        /// Its routing key.
        routing_key: String,
        /// The broker's reply code (312 NO_ROUTE).
        reply_code: u16,
        /// The broker's reply text.
        reply_text: String,
    },
    /// The broker did not confirm a publish in time (for example while a memory or
    /// disk alarm blocks publishers). The message may or may not have been stored.
    #[error("no publisher confirm within {after_ms} ms")]
    ConfirmTimeout {
        /// The configured confirm timeout.
        after_ms: u64,
    },
    /// The broker did not answer `op` (`basic.cancel`, `connection.close`) in
    /// time. Dropping the connection has the same effect: unacked deliveries
    /// return to their queues.
    #[error("the broker did not answer {op} within {after_ms} ms")]
    NoReply {
        /// The operation that went unanswered.
        op: String,
        /// How long it waited.
        after_ms: u64,
    },
    /// A payload over the configured size limit.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized {
        /// Size of the payload.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A value that AMQP carries as a short string (255 bytes at most) is longer.
    #[error("{field} is {len} bytes long; AMQP allows at most 255")]
    TooLong {
        /// Which value (`message_id`, `routing_key`, …).
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A message could not be turned into JSON (a bug, not bad input).
    #[error("could not encode the message as JSON: {0}")]
    Encode(#[source] serde_json::Error),
    /// An ack, nack or reject could not be sent because the channel is closed; the
    /// broker will redeliver the message.
    #[error("could not {op}: the delivery's channel is closed")]
    ChannelClosed {
        /// `ack`, `requeue` or `reject`.
        op: &'static str,
    },
    /// Settings that cannot work (an empty name, an invalid stream max age).
    #[error("invalid bus settings: {0}")]
    InvalidSettings(String),
}

impl BusError {
    /// What the caller should do about this error.
    pub fn action(&self) -> Action {
        match self {
            BusError::Connect { .. }
            | BusError::Nacked { .. }
            | BusError::ConfirmTimeout { .. } => Action::Retry,
            BusError::Amqp { source, .. } => source.action(),
            BusError::ChannelClosed { .. } | BusError::NoReply { .. } => Action::Reconnect,
            BusError::Oversized { .. } | BusError::TooLong { .. } => Action::DeadLetter,
            BusError::Unroutable { .. } | BusError::Encode(_) | BusError::InvalidSettings(_) => {
                Action::Fail
            }
        }
    }

    /// Runs `operation`, giving up with [`BusError::NoReply`] after `after`.
    pub(crate) async fn within<T>(
        op: impl FnOnce() -> String,
        after: std::time::Duration,
        operation: impl std::future::Future<Output = Result<T, BusError>>,
    ) -> Result<T, BusError> {
        match tokio::time::timeout(after, operation).await {
            Ok(result) => result,
            Err(_) => Err(BusError::NoReply {
                op: op(),
                after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    pub(crate) fn amqp(op: impl Into<String>, source: lapin::Error) -> BusError {
        BusError::Amqp {
            op: op.into(),
            source: AmqpError(source),
        }
    }
}

/// The AMQP client library's error, kept opaque so that no caller depends on
/// lapin: only this crate knows it exists.
pub struct AmqpError(lapin::Error);

impl AmqpError {
    fn action(&self) -> Action {
        match self.0.kind() {
            lapin::ErrorKind::ProtocolError(error) => match error.kind() {
                AMQPErrorKind::Soft(
                    AMQPSoftError::PRECONDITIONFAILED
                    | AMQPSoftError::ACCESSREFUSED
                    | AMQPSoftError::NOTFOUND,
                ) => Action::Fail,
                AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED | AMQPHardError::NOTIMPLEMENTED) => {
                    Action::Fail
                }
                AMQPErrorKind::Soft(_) | AMQPErrorKind::Hard(_) => Action::Reconnect,
            },
            lapin::ErrorKind::ChannelsLimitReached
            | lapin::ErrorKind::InvalidProtocolVersion(_)
            | lapin::ErrorKind::NoDefaultRuntime
            | lapin::ErrorKind::AuthProviderError(_) => Action::Fail,
            _ => Action::Reconnect,
        }
    }
}

impl fmt::Debug for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for AmqpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_tells_the_caller_what_to_do() {
        let nacked = BusError::Nacked {
            exchange: "e".into(),
            routing_key: "k".into(),
        };
        assert_eq!(nacked.action(), Action::Retry);
        let unroutable = BusError::Unroutable {
            exchange: "e".into(),
            routing_key: "k".into(),
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
        };
        assert_eq!(unroutable.action(), Action::Fail);
        assert_eq!(
            BusError::Oversized { size: 2, limit: 1 }.action(),
            Action::DeadLetter
        );
        assert_eq!(
            BusError::ChannelClosed { op: "ack" }.action(),
            Action::Reconnect
        );
        let precondition = lapin::Error::from(lapin::ErrorKind::ProtocolError(
            lapin::protocol::AMQPError::new(
                AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED),
                "inequivalent arg".into(),
            ),
        ));
        assert_eq!(
            BusError::amqp("queue.declare", precondition).action(),
            Action::Fail
        );
        let forced = lapin::Error::from(lapin::ErrorKind::ProtocolError(
            lapin::protocol::AMQPError::new(
                AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED),
                "closed by operator".into(),
            ),
        ));
        assert_eq!(
            BusError::amqp("basic.publish", forced).action(),
            Action::Reconnect
        );
    }
}
