//! Publishing with confirms: a publish returns only when the broker has taken
//! responsibility for the message, and every way it can fail to is an error.

use std::{sync::Arc, time::Duration};

use lapin::{
    options::{BasicPublishOptions, ConfirmSelectOptions},
    BasicProperties, Channel, Confirmation,
};
use serde::Serialize;

use gate_core::{Decision, MergeEvent, Outcome, Severity};

use crate::{
    bus::BusSettings,
    envelope::Outgoing,
    topology::{
        decision_routing_key, event_routing_key, notify_routing_key, outcome_routing_key, short,
    },
    BusError,
};

/// Message `type` of merge events.
const KIND_EVENT: &str = "merge_event";
/// Message `type` of decisions.
const KIND_DECISION: &str = "decision";
/// Message `type` of notifications.
const KIND_NOTIFICATION: &str = "notification";
/// Message `type` of outcome reports.
const KIND_OUTCOME: &str = "outcome";

/// Publishes gate messages: persistent, `mandatory`, on a channel in confirm mode.
///
/// `Ok` means the broker confirmed the message and routed it to at least one
/// queue; a nack, a return (no queue bound for the key), a confirm that does not
/// come in time, or a closed channel are errors whose
/// [`action`](BusError::action) tells the caller what to do.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    settings: Arc<BusSettings>,
}

impl Publisher {
    pub(crate) async fn new(
        channel: Channel,
        settings: Arc<BusSettings>,
    ) -> Result<Self, BusError> {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| BusError::amqp("confirm.select", e))?;
        Ok(Publisher { channel, settings })
    }

    /// Whether the channel can still publish (a closed one is replaced by
    /// [`crate::Bus::shared_publisher`]).
    pub fn is_open(&self) -> bool {
        self.channel.status().connected()
    }

    /// Enqueues a merge event for the workers (`merge.<repo-slug>` on the events
    /// exchange), with the event id as message id.
    pub async fn publish_event(
        &self,
        event: &MergeEvent,
        traceparent: Option<String>,
    ) -> Result<(), BusError> {
        let message = Outgoing::json(KIND_EVENT, event.event_id.as_str(), event)?
            .with_traceparent(traceparent);
        let exchange = &self.settings.topology.events_exchange;
        self.publish(exchange, &event_routing_key(&event.repo), &message)
            .await
    }

    /// Publishes a decision (`decision.<recommendation>.<repo-slug>` on the results
    /// exchange), with the event id as message id. The decisions log is bound to
    /// `decision.#`, so a decision is routable even when no orchestrator listens.
    pub async fn publish_decision(
        &self,
        decision: &Decision,
        traceparent: Option<String>,
    ) -> Result<(), BusError> {
        let message = Outgoing::json(KIND_DECISION, decision.event_id.as_str(), decision)?
            .with_traceparent(traceparent);
        let key = decision_routing_key(decision.recommendation, &decision.repo);
        self.publish(&self.settings.topology.results_exchange, &key, &message)
            .await
    }

    /// Publishes a notification (`notify.<channel-slug>.<severity>` on the results
    /// exchange) about event `event_id`. The body's shape belongs to the notifier.
    pub async fn publish_notification<T: Serialize>(
        &self,
        channel: &str,
        severity: Severity,
        event_id: &str,
        body: &T,
        traceparent: Option<String>,
    ) -> Result<(), BusError> {
        let message =
            Outgoing::json(KIND_NOTIFICATION, event_id, body)?.with_traceparent(traceparent);
        let key = notify_routing_key(channel, severity);
        self.publish(&self.settings.topology.results_exchange, &key, &message)
            .await
    }

    /// Publishes an outcome report (`outcome.<event_id>` on the results exchange),
    /// with the event id as message id. The outcomes queue is bound to `outcome.#`,
    /// so the report is routable even when no worker runs: it waits in the queue.
    pub async fn publish_outcome(&self, outcome: &Outcome) -> Result<(), BusError> {
        let message = Outgoing::json(KIND_OUTCOME, outcome.event_id.as_str(), outcome)?;
        let key = outcome_routing_key(&outcome.event_id);
        self.publish(&self.settings.topology.results_exchange, &key, &message)
            .await
    }

    /// Publishes any message to any exchange, with the same guarantees and the
    /// same size limit.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        message: &Outgoing,
    ) -> Result<(), BusError> {
        let limit = self.settings.max_payload_bytes;
        if message.len() > limit {
            return Err(BusError::Oversized {
                size: message.len(),
                limit,
            });
        }
        self.publish_confirmed(
            exchange,
            routing_key,
            &message.payload,
            message.properties()?,
        )
        .await
    }

    /// The one place a message leaves the process: publish, then wait for the
    /// confirm and look at what it says. No size check (dead letters keep their
    /// payload whatever its size).
    pub(crate) async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BusError> {
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let exchange_name = short(exchange)?;
        let key = short(routing_key).map_err(|_| BusError::TooLong {
            field: "routing_key",
            len: routing_key.len(),
        })?;
        let confirm = self
            .channel
            .basic_publish(exchange_name, key, options, payload, properties)
            .await
            .map_err(|e| BusError::amqp(format!("basic.publish {exchange} {routing_key}"), e))?;
        let timeout = Duration::from_millis(self.settings.confirm_timeout_ms);
        let confirmation = match tokio::time::timeout(timeout, confirm).await {
            Ok(Ok(confirmation)) => confirmation,
            Ok(Err(error)) => {
                return Err(BusError::amqp(
                    format!("confirm {exchange} {routing_key}"),
                    error,
                ))
            }
            Err(_) => {
                return Err(BusError::ConfirmTimeout {
                    after_ms: self.settings.confirm_timeout_ms,
                })
            }
        };
        let to = || (exchange.to_string(), routing_key.to_string());
        match confirmation {
            // A returned message is acked by the broker too: the ack only says the
            // broker is done with it, not that a queue has it.
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                let (exchange, routing_key) = to();
                Err(BusError::Unroutable {
                    exchange,
                    routing_key,
                    reply_code: returned.reply_code,
                    reply_text: returned.reply_text.as_str().to_string(),
                })
            }
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Nack(None) => {
                let (exchange, routing_key) = to();
                Err(BusError::Nacked {
                    exchange,
                    routing_key,
                })
            }
            // Cannot happen on a channel in confirm mode; treated as a failure rather
            // than a silent success.
            Confirmation::NotRequested => Err(BusError::InvalidSettings(
                "the publishing channel is not in confirm mode".to_string(),
            )),
        }
    }
}
