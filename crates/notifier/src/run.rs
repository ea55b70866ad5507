//! The consume loop: connect (and reconnect), take notifications off the queue,
//! hand each to a task that delivers it and then acks, dead-letters or requeues,
//! and shut down in two phases.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, PoisonError, Weak},
    time::{Duration, Instant as StdInstant},
};

use gate_bus::{Action, Bus, Consumer, DeadLettered, Delivery, Rejection};
use gate_core::{Notification, NOTIFICATION_SCHEMA_VERSION};
use serde::Deserialize;
use tokio::{
    sync::{watch, OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
    time::Instant,
};

use crate::{
    delivery::{deliver, Deadline, Finished, RetryPolicy},
    target::Targets,
    NotifierDeps, NotifierError, NotifierSettings, NotifierStats,
};

/// How long tasks cut short by the shutdown deadline get to give their delivery
/// back before they are aborted.
const REQUEUE_GRACE: Duration = Duration::from_millis(500);
/// A connection that lived this long resets the reconnect backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(5);
/// Longest wait between reconnect rounds.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(30);

/// What every delivery task shares.
struct Shared {
    targets: Targets,
    in_flight: InFlight,
    recently_delivered: RecentlyDelivered,
    policy: RetryPolicy,
    stats: NotifierStats,
    max_payload_bytes: usize,
}

/// Runs the notifier until `shutdown` resolves: consumes the notifications queue
/// (`topology.notifications_queue`, bound to `notify.#`) and delivers each
/// notification to its channel's target.
///
/// Per notification: malformed → dead-lettered with the reason; unknown channel →
/// dead-lettered; already delivered to that channel (Redis) → acked and skipped;
/// otherwise posted, paced to one request per `min_interval_ms` per webhook URL,
/// retried on 5xx / timeouts / connection errors with backoff and on 429 after
/// `Retry-After`, and dead-lettered with the reason when the target refuses it (any
/// other 4xx) or `max_attempts` failures pass. A notification is acked only after
/// its target answered 2xx (and the delivery was remembered), or after it was
/// dead-lettered with confirms, so none is lost silently.
///
/// Exactly once per (event id, channel) under redelivery: the delivered mark
/// (Redis, `SET NX` with `dedup_ttl_secs`, written after the 2xx) is checked before
/// posting, and two copies in one process are handled one after the other. The
/// windows where one duplicate gets through:
/// - a crash (or a Redis failure) after the target's 2xx and before the mark is
///   written: the redelivered copy is posted again;
/// - two copies handled at the same moment by two notifier processes (check and
///   mark are not one atomic claim).
///
/// While Redis is down every notification is delivered without the check (at
/// least once), counted in `dedup_unavailable`, unless this process delivered it
/// in the last 10 minutes (it remembers its own deliveries: the copy the broker
/// gives back after the notifier's connection dropped). Generic webhooks get an
/// `Idempotency-Key: <channel>:<event id>` header so the receiver can drop such a
/// duplicate; Slack has no such header.
///
/// The broker connection is re-established with backoff whenever it drops;
/// unacked notifications come back by themselves. On `shutdown`: stop consuming,
/// let in-flight notifications finish for `shutdown_grace_secs` (a retry or
/// pacing wait that would end later gives its notification back to the queue at
/// once), then abort the rest, whose notifications the broker requeues when the
/// connection closes.
///
/// Returns an error only for what a restart cannot fix: bad settings, a missing
/// secret, a broker that refuses the topology or the credentials.
pub async fn run(
    settings: NotifierSettings,
    deps: NotifierDeps,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NotifierError> {
    settings.validate()?;
    deps.bus.topology.validate().map_err(NotifierError::Bus)?;
    let targets = Targets::build(&settings, &deps)?;
    let shared = Arc::new(Shared {
        targets,
        in_flight: InFlight::default(),
        recently_delivered: RecentlyDelivered::new(Duration::from_secs(
            settings.dedup_ttl_secs.min(RECENTLY_DELIVERED_SECS),
        )),
        policy: RetryPolicy::from_settings(&settings),
        stats: deps.stats.clone(),
        max_payload_bytes: deps.bus.max_payload_bytes,
    });
    let queue = deps.bus.topology.notifications_queue.clone();
    let permits = Arc::new(Semaphore::new(usize::from(settings.concurrency)));
    let (deadline_tx, deadline) = Deadline::channel();
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);

    let mut n_failed_rounds = 0u32;
    let mut connected_before = false;
    let result = 'connection: loop {
        let connected = tokio::select! {
            () = &mut shutdown => break 'connection Ok(None),
            connected = connect(&deps, &queue, settings.concurrency) => connected,
        };
        let (bus, mut consumer) = match connected {
            Ok(pair) => pair,
            Err(error) if error.action() == Action::Fail => {
                break 'connection Err(NotifierError::Bus(error));
            }
            Err(error) => {
                n_failed_rounds = n_failed_rounds.saturating_add(1);
                let delay = reconnect_backoff(settings.reconnect_backoff_ms, n_failed_rounds);
                tracing::warn!(
                    error = %error,
                    retry_in_ms = delay.as_millis() as u64,
                    "cannot reach the broker; retrying"
                );
                tokio::select! {
                    () = &mut shutdown => break 'connection Ok(None),
                    () = tokio::time::sleep(delay) => continue 'connection,
                }
            }
        };
        let connected_at = Instant::now();
        if connected_before {
            shared.stats.reconnected();
            tracing::info!(queue = %queue, "reconnected to the broker");
        } else {
            tracing::info!(queue = %queue, "consuming notifications");
        }
        connected_before = true;

        loop {
            while let Some(joined) = tasks.try_join_next() {
                report_panic(joined);
            }
            let step = tokio::select! {
                () = &mut shutdown => Step::Shutdown,
                () = bus.closed() => Step::Lost,
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(permit) => Step::Permit(permit),
                    // The semaphore is never closed; treat it as a lost connection.
                    Err(_) => Step::Lost,
                },
            };
            let permit = match step {
                Step::Permit(permit) => permit,
                Step::Shutdown => break 'connection Ok(Some((bus, consumer))),
                Step::Lost => break,
            };
            let next = tokio::select! {
                () = &mut shutdown => None,
                () = bus.closed() => Some(None),
                next = consumer.next() => Some(next),
            };
            match next {
                None => break 'connection Ok(Some((bus, consumer))),
                Some(Some(Ok(delivery))) => {
                    let shared = Arc::clone(&shared);
                    let deadline = deadline.clone();
                    tasks.spawn(handle(shared, delivery, permit, deadline));
                }
                Some(Some(Err(error))) => {
                    tracing::warn!(error = %error, "the notifications subscription failed");
                    break;
                }
                Some(None) => {
                    tracing::warn!("the notifications subscription ended");
                    break;
                }
            }
        }
        tracing::warn!("lost the broker connection; reconnecting");
        // In-flight tasks carry on; their acks fail on the dead channel and the
        // broker redelivers those notifications, which the delivered marks skip.
        let _ = bus.close().await;
        // A connection that dies right after it was made (a broker that cancels
        // every consumer, a flapping network) must not become a reconnect storm.
        if connected_at.elapsed() >= STABLE_CONNECTION {
            n_failed_rounds = 0;
        } else {
            n_failed_rounds = n_failed_rounds.saturating_add(1);
            let delay = reconnect_backoff(settings.reconnect_backoff_ms, n_failed_rounds);
            tokio::select! {
                () = &mut shutdown => break 'connection Ok(None),
                () = tokio::time::sleep(delay) => {}
            }
        }
    };

    let connection = match result {
        Ok(connection) => connection,
        Err(error) => {
            drain(&mut tasks, &deadline_tx, Duration::ZERO).await;
            return Err(error);
        }
    };
    // Phase 1: stop taking work.
    if let Some((_, consumer)) = &connection {
        cancel(consumer).await;
    }
    tracing::info!(
        in_flight = tasks.len(),
        grace_secs = settings.shutdown_grace_secs,
        "shutting down"
    );
    // Phase 2: drain until the deadline, then give back or abort the rest.
    drain(
        &mut tasks,
        &deadline_tx,
        Duration::from_secs(settings.shutdown_grace_secs),
    )
    .await;
    if let Some((bus, consumer)) = connection {
        drop(consumer);
        let _ = bus.close().await;
    }
    Ok(())
}

/// What the consume loop does next.
enum Step {
    Permit(OwnedSemaphorePermit),
    Shutdown,
    Lost,
}

/// One connection round: connect (with the bus's own attempts and backoff) and
/// subscribe.
async fn connect(
    deps: &NotifierDeps,
    queue: &str,
    prefetch: u16,
) -> Result<(Bus, Consumer), gate_bus::BusError> {
    let bus = Bus::connect(&deps.amqp_url, deps.bus.clone()).await?;
    match bus.consume(queue, prefetch).await {
        Ok(consumer) => Ok((bus, consumer)),
        Err(error) => {
            let _ = bus.close().await;
            Err(error)
        }
    }
}

fn reconnect_backoff(initial_ms: u64, round: u32) -> Duration {
    let initial = Duration::from_millis(initial_ms.max(1));
    initial
        .saturating_mul(1u32 << round.saturating_sub(1).min(16))
        .min(MAX_RECONNECT_BACKOFF)
}

async fn cancel(consumer: &Consumer) {
    if let Err(error) = consumer.cancel().await {
        tracing::warn!(error = %error, "could not cancel the subscription");
    }
}

/// Lets tasks finish until `grace` has passed; then every task waiting for a
/// retry or a pacing slot gives its notification back, and whatever still runs
/// (a request in flight) is aborted.
async fn drain(
    tasks: &mut JoinSet<()>,
    deadline_tx: &watch::Sender<Option<Instant>>,
    grace: Duration,
) {
    let deadline = Instant::now() + grace;
    let _ = deadline_tx.send(Some(deadline));
    let hard_stop = tokio::time::sleep_until(deadline + REQUEUE_GRACE);
    tokio::pin!(hard_stop);
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(joined) => report_panic(joined),
                None => return,
            },
            () = &mut hard_stop => {
                tracing::warn!(
                    n_aborted = tasks.len(),
                    "shutdown deadline passed; in-flight notifications go back to the queue"
                );
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                return;
            }
        }
    }
}

fn report_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        if error.is_panic() {
            tracing::error!(error = %error, "a notification task panicked; the broker will redeliver its notification");
        }
    }
}

/// One notification, from delivery to ack, in a consumer span that continues the
/// merge's trace (the `traceparent` the worker put on the notification).
async fn handle(
    shared: Arc<Shared>,
    delivery: Delivery,
    permit: OwnedSemaphorePermit,
    deadline: Deadline,
) {
    let span = tracing::info_span!(
        "notify",
        otel.name = "gate.notifications process",
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        event_id = delivery.message_id().unwrap_or("-"),
    );
    gate_telemetry::trace::continue_trace(&span, delivery.traceparent());
    tracing::Instrument::instrument(handle_traced(shared, delivery, permit, deadline), span).await;
}

async fn handle_traced(
    shared: Arc<Shared>,
    delivery: Delivery,
    _permit: OwnedSemaphorePermit,
    mut deadline: Deadline,
) {
    let started = StdInstant::now();
    let notification = match decode(delivery.payload(), shared.max_payload_bytes) {
        Ok(notification) => notification,
        Err(rejection) => {
            tracing::warn!(reason = %rejection, message_id = ?delivery.message_id(), "malformed notification");
            dead_letter(&shared.stats, delivery, &rejection).await;
            return;
        }
    };
    let event_id = notification.event_id.as_str();
    let Some(target) = shared.targets.get(&notification.channel) else {
        let rejection = Rejection::Failed {
            detail: format!(
                "unknown channel `{}`: not in notify.channels",
                notification.channel
            ),
        };
        tracing::warn!(event_id, channel = %notification.channel, "notification for an unknown channel");
        dead_letter(&shared.stats, delivery, &rejection).await;
        return;
    };
    let delivery_id = delivery_id(&notification);
    // Two copies of one notification in this process at once (published twice,
    // or redelivered while the first is still being posted): the second waits for
    // the first, then finds its mark.
    let in_flight_key = format!("{}\n{delivery_id}", target.channel);
    let _in_flight = shared.in_flight.lock(in_flight_key.clone()).await;
    // This process posted it moments ago and lost the broker connection before
    // the ack: the copy the broker gave back is skipped even when Redis cannot
    // say (its mark may not have been written).
    if shared.recently_delivered.contains(&in_flight_key) {
        shared.stats.duplicate_skipped();
        tracing::info!(event_id, channel = %target.channel, "delivered by this notifier moments ago; skipping the redelivered copy");
        settle(delivery.ack().await, event_id);
        return;
    }
    let mut without_marks = false;
    match target.delivered.contains(&delivery_id).await {
        Ok(true) => {
            shared.stats.duplicate_skipped();
            tracing::info!(event_id, channel = %target.channel, "already delivered; skipping the redelivered copy");
            settle(delivery.ack().await, event_id);
            return;
        }
        Ok(false) => {}
        Err(error) => {
            without_marks = true;
            shared.stats.dedup_unavailable();
            tracing::warn!(event_id, error = %error, "delivered marks unavailable; delivering at least once");
        }
    }
    let body = match target.body(&notification) {
        Ok(body) => body,
        Err(detail) => {
            dead_letter(&shared.stats, delivery, &Rejection::Failed { detail }).await;
            return;
        }
    };
    let idempotency_key = format!("{}:{delivery_id}", target.channel);
    let client = shared.targets.client();
    let finished = deliver(
        &shared.policy,
        &target.pacer,
        &shared.stats,
        &mut deadline,
        || target.post(client, body.clone(), &idempotency_key),
    )
    .await;
    match finished {
        Finished::Delivered => {
            shared.recently_delivered.insert(in_flight_key);
            // The window: a crash here, after the 2xx and before the mark, means
            // one duplicate when the notification is redelivered.
            match target.delivered.insert(&delivery_id, &notification).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(event_id, channel = %target.channel, "delivered twice: another copy was in flight at the same time");
                }
                Err(error) => {
                    if !without_marks {
                        shared.stats.dedup_unavailable();
                    }
                    tracing::warn!(event_id, error = %error, "could not remember the delivery; a redelivery would post it again");
                }
            }
            tracing::info!(
                event_id,
                channel = %target.channel,
                kind = %target.kind,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "notification delivered"
            );
            settle(delivery.ack().await, event_id);
        }
        Finished::GaveUp(reason) => {
            let rejection = Rejection::Failed {
                detail: format!("channel `{}` ({}): {reason}", target.channel, target.kind),
            };
            tracing::warn!(event_id, reason = %rejection, "notification not deliverable");
            dead_letter(&shared.stats, delivery, &rejection).await;
        }
        Finished::Stopped => {
            tracing::info!(
                event_id,
                "shutting down: notification goes back to the queue"
            );
            settle(delivery.requeue().await, event_id);
        }
    }
}

/// How long this process remembers its own deliveries (at most; never longer
/// than `dedup_ttl_secs`).
const RECENTLY_DELIVERED_SECS: u64 = 600;

/// The (channel, delivery id) pairs this process delivered lately: the dedup that
/// needs no Redis, for the common redelivery — the notifier's own broker
/// connection dropped between the 2xx and the ack, and the broker hands the copy
/// back to the same process, maybe while Redis is out. Entries expire after the
/// window; the map is pruned as it grows.
struct RecentlyDelivered {
    window: Duration,
    delivered: std::sync::Mutex<HashMap<String, StdInstant>>,
}

impl RecentlyDelivered {
    fn new(window: Duration) -> RecentlyDelivered {
        RecentlyDelivered {
            window,
            delivered: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn contains(&self, key: &str) -> bool {
        let delivered = self
            .delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        delivered
            .get(key)
            .is_some_and(|at| at.elapsed() < self.window)
    }

    fn insert(&self, key: String) {
        let mut delivered = self
            .delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if delivered.len() >= 1_024 && delivered.len().is_power_of_two() {
            delivered.retain(|_, at| at.elapsed() < self.window);
        }
        delivered.insert(key, StdInstant::now());
    }
}

/// One lock per (channel, delivery id) being handled in this process.
#[derive(Default)]
struct InFlight {
    locks: std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl InFlight {
    async fn lock(&self, key: String) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            locks.retain(|_, lock| lock.strong_count() > 0);
            match locks.get(&key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(key, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

/// The idempotency key of a delivery within its channel: the event id, and for a
/// person's approval or override (a second notification about the same event)
/// the time of the approval, so it is not mistaken for a duplicate.
fn delivery_id(notification: &Notification) -> String {
    match &notification.decision.approval {
        None => notification.event_id.clone(),
        Some(approval) => format!("{}:approval:{}", notification.event_id, approval.at),
    }
}

/// A notification from a payload: size, then `schema_version`, then shape, then
/// the fields the notifier needs.
fn decode(payload: &[u8], max_payload_bytes: usize) -> Result<Notification, Rejection> {
    #[derive(Deserialize)]
    struct VersionOnly {
        schema_version: u64,
    }
    if payload.len() > max_payload_bytes {
        return Err(Rejection::Oversized {
            size: payload.len(),
            limit: max_payload_bytes,
        });
    }
    let malformed = |error: serde_json::Error| Rejection::Malformed {
        detail: error.to_string(),
    };
    let version: VersionOnly = serde_json::from_slice(payload).map_err(malformed)?;
    if version.schema_version != u64::from(NOTIFICATION_SCHEMA_VERSION) {
        return Err(Rejection::UnknownVersion {
            found: version.schema_version,
            supported: NOTIFICATION_SCHEMA_VERSION,
        });
    }
    let notification: Notification = serde_json::from_slice(payload).map_err(malformed)?;
    if notification.event_id.trim().is_empty() {
        return Err(Rejection::EmptyField { field: "event_id" });
    }
    if notification.channel.trim().is_empty() {
        return Err(Rejection::EmptyField { field: "channel" });
    }
    // A canary notice has its own id, `<deploy event id>:canary:<canary id>`, so it is
    // not taken for a repeat of the deploy decision's notification.
    let own_id = match &notification.canary {
        None => notification.decision.event_id == notification.event_id,
        Some(_) => notification
            .event_id
            .strip_prefix(notification.decision.event_id.as_str())
            .is_some_and(|rest| rest.starts_with(":canary:")),
    };
    if !own_id {
        return Err(Rejection::Malformed {
            detail: if notification.canary.is_some() {
                "event_id of a canary notice is not <decision.event_id>:canary:<id>"
            } else {
                "event_id differs from decision.event_id"
            }
            .to_string(),
        });
    }
    Ok(notification)
}

async fn dead_letter(stats: &NotifierStats, delivery: Delivery, rejection: &Rejection) {
    let message_id = delivery.message_id().map(str::to_string);
    match delivery.reject_to_dead_letter(rejection).await {
        Ok(DeadLettered::WithReason) => stats.dead_lettered(),
        Ok(DeadLettered::WithoutReason(error)) => {
            stats.dead_lettered();
            tracing::error!(message_id = ?message_id, error = %error, reason = %rejection, "dead-lettered without the reason header");
        }
        Err(error) => {
            tracing::warn!(message_id = ?message_id, error = %error, "could not dead-letter; the broker will redeliver");
        }
    }
}

fn settle(result: Result<(), gate_bus::BusError>, event_id: &str) {
    if let Err(error) = result {
        tracing::warn!(event_id, error = %error, "could not settle the delivery; the broker will redeliver it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_checks_size_then_version_then_shape_then_ids() {
        assert_eq!(decode(b"{}", 1).unwrap_err().code(), "oversized");
        assert_eq!(decode(b"nope", 100).unwrap_err().code(), "malformed");
        assert_eq!(
            decode(br#"{"schema_version": 7}"#, 100).unwrap_err(),
            Rejection::UnknownVersion {
                found: 7,
                supported: NOTIFICATION_SCHEMA_VERSION
            }
        );
        assert_eq!(
            decode(br#"{"schema_version": 1, "event_id": "x"}"#, 100)
                .unwrap_err()
                .code(),
            "malformed"
        );
    }

    #[test]
    fn reconnect_backoff_doubles_to_thirty_seconds() {
        assert_eq!(reconnect_backoff(1_000, 1), Duration::from_secs(1));
        assert_eq!(reconnect_backoff(1_000, 3), Duration::from_secs(4));
        assert_eq!(reconnect_backoff(1_000, 60), MAX_RECONNECT_BACKOFF);
    }
}
