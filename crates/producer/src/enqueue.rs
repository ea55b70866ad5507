//! Putting a merge event on the bus: size and shape checked first, then one publish
//! with confirms and `mandatory`.

use std::fmt;
use std::sync::Arc;

use gate_bus::{Action, Bus, BusError, BusSettings, Publisher};
use gate_core::MergeEvent;
use tokio::sync::Mutex;

use crate::ProducerError;

/// Enqueues one event on `bus` (the CLI, an event bus's adapter): publishes on the
/// bus's shared confirm channel ([`Bus::shared_publisher`]) and returns only when
/// the broker confirmed the event *and* routed it to a queue.
///
/// Refused before anything is sent: an event larger than the bus's
/// `max_payload_bytes` ([`ProducerError::Oversized`], naming both sizes and how to
/// shrink the event) and an event a worker would reject. A broker nack, an
/// unroutable return (no queue bound) or a missing confirm is an error; see
/// [`ProducerError::is_retryable`].
pub async fn enqueue(bus: &Bus, event: &MergeEvent) -> Result<(), ProducerError> {
    let publisher = bus
        .shared_publisher()
        .await
        .map_err(|source| ProducerError::bus(&event.event_id, source))?;
    Producer::with_publisher(publisher)
        .enqueue(event, None)
        .await
}

/// A long-lived enqueuer for processes that publish many events (the webhook
/// receiver, a bus adapter, benchmarks): one confirm channel shared by every task.
/// Cloning is cheap and shares it.
///
/// Made with [`Producer::connect`] it owns its connection and reconnects once when a
/// publish finds it gone, so a broker restart costs one failed attempt at most; made
/// with [`Producer::new`] from the caller's [`Bus`], reconnecting is the caller's job.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where to reconnect, when this producer owns its connection.
    reconnect: Option<Reconnect>,
    state: Mutex<State>,
}

/// The AMQP URL is a secret: kept here, never printed.
struct Reconnect {
    url: String,
    settings: BusSettings,
}

struct State {
    /// The owned connection, if any.
    bus: Option<Bus>,
    publisher: Publisher,
    /// Bumped at every reconnect, so concurrent failures reconnect once.
    generation: u64,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("owns_connection", &self.inner.reconnect.is_some())
            .finish()
    }
}

impl Producer {
    /// A producer publishing on a new confirm channel of `bus`.
    pub async fn new(bus: &Bus) -> Result<Producer, ProducerError> {
        let publisher = bus
            .publisher()
            .await
            .map_err(|source| ProducerError::bus("(none yet)", source))?;
        Ok(Producer::with_publisher(publisher))
    }

    /// A producer over an existing publisher; reconnecting is the caller's job.
    fn with_publisher(publisher: Publisher) -> Producer {
        Producer {
            inner: Arc::new(Inner {
                reconnect: None,
                state: Mutex::new(State {
                    bus: None,
                    publisher,
                    generation: 0,
                }),
            }),
        }
    }

    /// A producer with a connection of its own to `url` (a secret: never logged),
    /// which it re-opens when a publish finds it lost. Connecting declares the
    /// topology, with the retries `settings` allow.
    pub async fn connect(url: &str, settings: BusSettings) -> Result<Producer, ProducerError> {
        let (bus, publisher) = open(url, &settings).await?;
        Ok(Producer {
            inner: Arc::new(Inner {
                reconnect: Some(Reconnect {
                    url: url.to_owned(),
                    settings,
                }),
                state: Mutex::new(State {
                    bus: Some(bus),
                    publisher,
                    generation: 0,
                }),
            }),
        })
    }

    /// Enqueues `event` (see [`enqueue`]), carrying `traceparent` (W3C trace
    /// context) so the merge's trace continues in the worker.
    ///
    /// With an owned connection, a publish that fails because the connection or
    /// channel is gone is retried once on a fresh connection, with the same event id:
    /// if the first attempt did reach the queue after all, the worker's idempotency
    /// turns the duplicate into the same decision.
    ///
    /// It is the producer span of the merge's trace: a root, or a child of
    /// `traceparent` (a CI job's or a webhook sender's), and the worker's parent.
    pub async fn enqueue(
        &self,
        event: &MergeEvent,
        traceparent: Option<String>,
    ) -> Result<(), ProducerError> {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "enqueue",
            otel.name = "gate.events publish",
            otel.kind = "producer",
            messaging.system = "rabbitmq",
            messaging.operation.type = "send",
            event_id = %event.event_id,
            repo = %event.context.repo,
        );
        gate_telemetry::trace::continue_trace(&span, traceparent.as_deref());
        // Without export, the caller's trace context is passed on unchanged.
        let traceparent = gate_telemetry::trace::traceparent(&span).or(traceparent);
        let result = self.publish_once(event, traceparent).instrument(span).await;
        match &result {
            Ok(()) => gate_telemetry::events::ProducerEvent::Confirmed.emit(),
            Err(error) => gate_telemetry::events::ProducerEvent::Failed {
                retryable: error.is_retryable(),
            }
            .emit(),
        }
        result
    }

    async fn publish_once(
        &self,
        event: &MergeEvent,
        traceparent: Option<String>,
    ) -> Result<(), ProducerError> {
        // What a worker would refuse (empty id, repo or head; unknown schema
        // version). The size is checked where the payload is serialized, once,
        // before anything is sent (the publisher's limit is the bus's).
        event.check()?;
        let (publisher, generation) = {
            let state = self.inner.state.lock().await;
            (state.publisher.clone(), state.generation)
        };
        let published = publisher.publish_event(event, traceparent.clone()).await;
        // Handed to the broker, unless refused for its size before anything left.
        if !matches!(published, Err(BusError::Oversized { .. })) {
            gate_telemetry::events::ProducerEvent::Enqueued.emit();
        }
        let error = match published {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        if error.action() != Action::Reconnect || self.inner.reconnect.is_none() {
            return Err(ProducerError::publishing(event, error));
        }
        tracing::warn!(event_id = %event.event_id, %error, "publish failed; reconnecting to the broker once");
        let publisher = self.reconnect(generation, &event.event_id).await?;
        publisher
            .publish_event(event, traceparent)
            .await
            .map_err(|source| ProducerError::publishing(event, source))
    }

    /// Whether the owned connection is open; `None` for a producer on the caller's
    /// bus. For health endpoints.
    pub async fn is_connected(&self) -> Option<bool> {
        let state = self.inner.state.lock().await;
        state.bus.as_ref().map(Bus::is_connected)
    }

    /// Closes the owned connection, if any (the end of a graceful shutdown).
    pub async fn close(&self) {
        let state = self.inner.state.lock().await;
        if let Some(bus) = &state.bus {
            let _ = bus.close().await;
        }
    }

    async fn reconnect(&self, failed: u64, event_id: &str) -> Result<Publisher, ProducerError> {
        let Some(reconnect) = &self.inner.reconnect else {
            let state = self.inner.state.lock().await;
            return Ok(state.publisher.clone());
        };
        let mut state = self.inner.state.lock().await;
        if state.generation != failed {
            // Another task reconnected while this one waited for the lock.
            return Ok(state.publisher.clone());
        }
        let (bus, publisher) =
            open(&reconnect.url, &reconnect.settings)
                .await
                .map_err(|error| match error {
                    ProducerError::Bus { source, .. } => ProducerError::bus(event_id, *source),
                    other => other,
                })?;
        if let Some(old) = state.bus.replace(bus) {
            let _ = old.close().await;
        }
        state.publisher = publisher.clone();
        state.generation += 1;
        Ok(publisher)
    }
}

async fn open(url: &str, settings: &BusSettings) -> Result<(Bus, Publisher), ProducerError> {
    let bus = Bus::connect(url, settings.clone())
        .await
        .map_err(|source| ProducerError::bus("(none yet)", source))?;
    let publisher = bus
        .publisher()
        .await
        .map_err(|source| ProducerError::bus("(none yet)", source))?;
    Ok((bus, publisher))
}
