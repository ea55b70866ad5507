//! Consuming with manual acks: deliveries that know how to decode themselves, and
//! how to end (ack, requeue, or dead-letter with a reason).

use std::sync::Arc;

use futures_util::StreamExt;
use lapin::{
    options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions, BasicRejectOptions},
    types::{AMQPValue, FieldTable, LongString},
    BasicProperties, Channel,
};

use gate_core::{Decision, MergeEvent, Outcome};

use crate::{
    bus::BusSettings,
    envelope::{
        self, header_str, header_u64, Rejection, DELIVERY_COUNT_HEADER, GATE_ERROR_HEADER,
        GATE_QUEUE_HEADER, STREAM_OFFSET_HEADER, TRACEPARENT_HEADER,
    },
    BusError, Publisher,
};

/// Where a stream consumer starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOffset {
    /// The oldest message still retained: replay everything.
    First,
    /// The last chunk written: roughly "the most recent few".
    Last,
    /// Only messages written after the consumer starts.
    Next,
    /// A specific offset, e.g. one after the last one a reader processed.
    Offset(u64),
    /// Messages written since this Unix time (seconds).
    Since(u64),
}

/// A queue subscription. Deliveries arrive through [`Consumer::next`]; at most the
/// prefetch count of them are unacked at a time. The subscription's channel stays
/// open while the consumer or any unsettled [`Delivery`] lives; when the last of
/// them goes, the broker requeues whatever was not acked.
pub struct Consumer {
    inner: lapin::Consumer,
    channel: Channel,
    dead_letters: Publisher,
    queue: Arc<str>,
    settings: Arc<BusSettings>,
}

impl Consumer {
    pub(crate) fn new(
        inner: lapin::Consumer,
        channel: Channel,
        dead_letters: Publisher,
        queue: String,
        settings: Arc<BusSettings>,
    ) -> Self {
        Consumer {
            inner,
            channel,
            dead_letters,
            queue: queue.into(),
            settings,
        }
    }

    /// The next delivery. After [`Consumer::cancel`], `None` is the normal end.
    /// Otherwise `None`, or an error with [`Action::Reconnect`](crate::Action::Reconnect),
    /// means the subscription was lost (connection or channel closed, queue
    /// deleted): the caller reconnects and consumes again, and unacked deliveries
    /// are redelivered.
    pub async fn next(&mut self) -> Option<Result<Delivery, BusError>> {
        let item = self.inner.next().await?;
        Some(match item {
            Ok(inner) => Ok(Delivery {
                inner,
                _channel: self.channel.clone(),
                dead_letters: self.dead_letters.clone(),
                queue: Arc::clone(&self.queue),
                settings: Arc::clone(&self.settings),
            }),
            Err(error) => Err(BusError::amqp(format!("consume {}", self.queue), error)),
        })
    }

    /// Stops new deliveries (the first phase of a graceful shutdown); deliveries
    /// already received can still be acked, and `next` ends once the broker
    /// confirms the cancel. A broker that does not answer within
    /// [`REPLY_WAIT`](crate::REPLY_WAIT) gives [`BusError::NoReply`]: a shutdown
    /// then closes the connection, which stops the consumer too.
    pub async fn cancel(&self) -> Result<(), BusError> {
        let cancel = async {
            self.channel
                .basic_cancel(self.inner.tag(), BasicCancelOptions::default())
                .await
                .map_err(|e| BusError::amqp(format!("basic.cancel {}", self.queue), e))
        };
        BusError::within(
            || format!("basic.cancel {}", self.queue),
            crate::REPLY_WAIT,
            cancel,
        )
        .await
    }

    /// The queue this consumer reads.
    pub fn queue(&self) -> &str {
        &self.queue
    }
}

/// How [`Delivery::reject_to_dead_letter`] dead-lettered a message.
#[derive(Debug)]
#[must_use]
pub enum DeadLettered {
    /// Republished to the dead-letter exchange with the reason in `x-gate-error`,
    /// confirmed, then acked.
    WithReason,
    /// The republish failed for a reason a retry would not fix (e.g. nothing bound
    /// to the dead-letter exchange), so the message was rejected without requeue
    /// and the broker dead-lettered it by itself — without the reason header. The
    /// error says why; log it.
    WithoutReason(BusError),
}

/// One message from a queue, with everything the worker needs to decide its fate.
/// Ending it (`ack`, `requeue`, `reject_to_dead_letter`) consumes it, so a delivery
/// cannot be settled twice; dropping it unsettled leaves it unacked until the
/// channel closes, when the broker requeues it.
pub struct Delivery {
    inner: lapin::message::Delivery,
    /// Keeps the channel open until the delivery is settled, even if the consumer
    /// is dropped first (lapin closes a channel with its last handle).
    _channel: Channel,
    dead_letters: Publisher,
    queue: Arc<str>,
    settings: Arc<BusSettings>,
}

impl Delivery {
    /// The raw payload.
    pub fn payload(&self) -> &[u8] {
        &self.inner.data
    }

    /// The payload as a merge event, or why it is not one: over the size limit,
    /// not JSON, an unknown schema version, the wrong shape, or an empty id.
    pub fn merge_event(&self) -> Result<MergeEvent, Rejection> {
        envelope::decode_event(&self.inner.data, self.settings.max_payload_bytes)
    }

    /// The payload as a decision, or why it is not one.
    pub fn decision(&self) -> Result<Decision, Rejection> {
        envelope::decode_decision(&self.inner.data, self.settings.max_payload_bytes)
    }

    /// The payload as an outcome report, or why it is not one.
    pub fn outcome(&self) -> Result<Outcome, Rejection> {
        envelope::decode_outcome(&self.inner.data, self.settings.max_payload_bytes)
    }

    /// The AMQP message id: the event id for every gate message.
    pub fn message_id(&self) -> Option<&str> {
        self.inner
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str())
    }

    /// The routing key it was published with.
    pub fn routing_key(&self) -> &str {
        self.inner.routing_key.as_str()
    }

    /// The W3C trace context the publisher attached, to continue its trace.
    pub fn traceparent(&self) -> Option<&str> {
        header_str(self.headers(), TRACEPARENT_HEADER)
    }

    /// How many times a quorum queue delivered this message before (0 on the first
    /// delivery). Compare with the queue's delivery limit to know a last attempt.
    pub fn delivery_count(&self) -> u64 {
        header_u64(self.headers(), DELIVERY_COUNT_HEADER).unwrap_or(0)
    }

    /// Whether the broker flags this as a redelivery (it may have been processed).
    pub fn redelivered(&self) -> bool {
        self.inner.redelivered
    }

    /// The publish time the producer stamped (Unix seconds).
    pub fn timestamp(&self) -> Option<u64> {
        *self.inner.properties.timestamp()
    }

    /// The content type the producer declared.
    pub fn content_type(&self) -> Option<&str> {
        self.inner
            .properties
            .content_type()
            .as_ref()
            .map(|t| t.as_str())
    }

    /// Whether the producer asked for persistence (`delivery_mode` 2).
    pub fn persistent(&self) -> bool {
        *self.inner.properties.delivery_mode() == Some(2)
    }

    /// The offset of a delivery from a stream, to resume reading after it.
    pub fn stream_offset(&self) -> Option<u64> {
        header_u64(self.headers(), STREAM_OFFSET_HEADER)
    }

    /// A string header, e.g. `x-gate-error` or the broker's `x-first-death-reason`
    /// on a dead letter.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_str(self.headers(), name)
    }

    /// Every header as `name: value` text (values in their AMQP debug form), for
    /// audits that must see all of a message, not only the headers they know.
    pub fn headers_text(&self) -> Vec<String> {
        self.headers()
            .map(|table| {
                table
                    .inner()
                    .iter()
                    .map(|(name, value)| format!("{}: {value:?}", name.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Settles the delivery as done. Fails (and the broker redelivers) when the
    /// channel is already closed.
    pub async fn ack(self) -> Result<(), BusError> {
        settled(
            self.inner.acker.ack(BasicAckOptions::default()).await,
            "ack",
        )
    }

    /// Returns the delivery to its queue for another attempt. On a quorum queue this
    /// counts towards the delivery limit, after which the broker dead-letters it.
    pub async fn requeue(self) -> Result<(), BusError> {
        let options = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        settled(self.inner.acker.nack(options).await, "requeue")
    }

    /// Dead-letters the delivery with `reason` in the `x-gate-error` header.
    ///
    /// The broker adds no custom headers when it dead-letters (only `x-death` and
    /// `x-first-death-*`), so a plain reject would lose the reason. Instead the
    /// message is republished to the dead-letter exchange with its original
    /// properties plus `x-gate-error` and `x-gate-queue`, the publish is confirmed,
    /// and only then is the original acked. A crash between the two leaves a
    /// duplicate in the dead-letter queue, never a loss.
    ///
    /// If the republish fails for a reason a retry would not fix, the delivery is
    /// rejected without requeue so it still leaves the queue (see
    /// [`DeadLettered::WithoutReason`]). If the connection is gone, the error is
    /// returned and the broker redelivers the message later.
    pub async fn reject_to_dead_letter(self, reason: &Rejection) -> Result<DeadLettered, BusError> {
        let properties = self.dead_letter_properties(reason);
        let exchange = self.settings.topology.dead_letter_exchange.clone();
        let published = self
            .dead_letters
            .publish_confirmed(&exchange, self.routing_key(), &self.inner.data, properties)
            .await;
        match published {
            Ok(()) => {
                self.ack().await?;
                Ok(DeadLettered::WithReason)
            }
            Err(error) if error.action() == crate::Action::Reconnect => Err(error),
            Err(error) => {
                let options = BasicRejectOptions { requeue: false };
                settled(self.inner.acker.reject(options).await, "reject")?;
                Ok(DeadLettered::WithoutReason(error))
            }
        }
    }

    fn headers(&self) -> Option<&FieldTable> {
        self.inner.properties.headers().as_ref()
    }

    /// The original's identifying properties and headers, plus the reason. Not a
    /// plain copy: `user_id` would be refused unless it names this connection's
    /// user, and an `expiration` or `priority` has no business on a dead letter.
    fn dead_letter_properties(&self, reason: &Rejection) -> BasicProperties {
        let original = &self.inner.properties;
        let mut headers = self.headers().cloned().unwrap_or_default();
        headers.insert(
            GATE_ERROR_HEADER.into(),
            AMQPValue::LongString(LongString::from(reason.header_value())),
        );
        headers.insert(
            GATE_QUEUE_HEADER.into(),
            AMQPValue::LongString(LongString::from(self.queue.as_bytes())),
        );
        let mut properties = BasicProperties::default()
            .with_headers(headers)
            .with_delivery_mode(2);
        if let Some(value) = original.message_id() {
            properties = properties.with_message_id(value.clone());
        }
        if let Some(value) = original.correlation_id() {
            properties = properties.with_correlation_id(value.clone());
        }
        if let Some(value) = original.content_type() {
            properties = properties.with_content_type(value.clone());
        }
        if let Some(value) = original.content_encoding() {
            properties = properties.with_content_encoding(value.clone());
        }
        if let Some(value) = original.kind() {
            properties = properties.with_type(value.clone());
        }
        if let Some(value) = original.app_id() {
            properties = properties.with_app_id(value.clone());
        }
        if let Some(value) = *original.timestamp() {
            properties = properties.with_timestamp(value);
        }
        properties
    }
}

/// An ack, nack or reject that lapin could not send because the channel is
/// closed reports `Ok(false)`: that is a failure, not a success.
fn settled(result: lapin::Result<bool>, op: &'static str) -> Result<(), BusError> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(BusError::ChannelClosed { op }),
        Err(error) => Err(BusError::amqp(op, error)),
    }
}
