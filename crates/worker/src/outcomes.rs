//! The worker's second consumer: outcome reports (`outcome.<event_id>` on the
//! results exchange, routed to the outcomes queue), stored next to the decision in
//! Redis and acked only once stored.
//!
//! It runs as a task of its own beside the event consumer, on the same connection,
//! for as long as the session lasts: a lost connection ends both (the reports
//! come back on the next one), and a shutdown stops it with the event consumer.
//! Reports are tiny and rare, so they are handled one at a time.
//!
//! Unlike the decision store, which the worker can decide without, an outcome has
//! no other home: while Redis is down the report is held (and retried with
//! backoff) rather than acked, and goes back to the queue if the session ends
//! first. A report that is not an outcome is dead-lettered with its reason.

use std::time::Duration;

use gate_bus::{Bus, BusError, Consumer, DeadLettered, Delivery, OutcomeStore, Rejection};
use gate_core::Outcome;
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    process::raised,
    stats::{Counter, WorkerStats},
};

/// Unacked reports the broker may push ahead of the one being stored.
const PREFETCH: u16 = 16;
/// First wait before storing a report again after Redis failed.
const RETRY_INITIAL: Duration = Duration::from_millis(100);
/// Longest wait between two attempts while Redis stays down.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The running outcome consumer of one session. Dropping it (the session ends)
/// tells the task to stop taking reports: the one being stored is finished or
/// returned to the queue, the rest go back when the channel closes.
pub(crate) struct OutcomeTask {
    stop: watch::Sender<bool>,
    _task: JoinHandle<()>,
}

impl Drop for OutcomeTask {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Subscribes to the outcomes queue on `bus` and spawns the task that stores each
/// report. An error means the subscription could not start; the caller treats it
/// like a failure to consume events (reconnect, or stop when the broker refuses).
pub(crate) async fn start(
    bus: &Bus,
    store: OutcomeStore,
    stats: WorkerStats,
) -> Result<OutcomeTask, BusError> {
    let queue = bus.settings().topology.outcomes_queue.clone();
    let consumer = bus.consume(&queue, PREFETCH).await?;
    let (stop, stopped) = watch::channel(false);
    tracing::info!(queue = %queue, "consuming outcome reports");
    let task = tokio::spawn(consume(consumer, store, stats, stopped));
    Ok(OutcomeTask { stop, _task: task })
}

async fn consume(
    mut consumer: Consumer,
    store: OutcomeStore,
    stats: WorkerStats,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let next = tokio::select! {
            biased;
            () = raised(&mut stopped) => break,
            next = consumer.next() => next,
        };
        match next {
            Some(Ok(delivery)) => handle(&store, &stats, delivery, &mut stopped).await,
            Some(Err(error)) => {
                tracing::debug!(error = %error, "the outcome subscription ended");
                return;
            }
            None => return,
        }
    }
    // Stop the broker pushing more; what it already pushed returns to the queue
    // when the channel closes with the consumer.
    let _ = consumer.cancel().await;
}

/// Stores one report, then acks it; dead-letters one that is not an outcome.
async fn handle(
    store: &OutcomeStore,
    stats: &WorkerStats,
    delivery: Delivery,
    stopped: &mut watch::Receiver<bool>,
) {
    let outcome = match delivery.outcome() {
        Ok(outcome) => outcome,
        Err(rejection) => {
            tracing::warn!(
                message_id = delivery.message_id().unwrap_or("-"),
                reason = %rejection,
                "refusing a bad outcome report: dead-lettering it"
            );
            dead_letter(stats, delivery, &rejection).await;
            return;
        }
    };
    match store_until_stored(store, stats, &outcome, stopped).await {
        Stored::Yes => {
            tracing::info!(
                event_id = %outcome.event_id,
                result = %outcome.result,
                "outcome stored"
            );
            if let Err(error) = delivery.ack().await {
                // The broker redelivers it; storing it again overwrites the same field.
                tracing::warn!(event_id = %outcome.event_id, error = %error, "could not ack a stored outcome; it will be stored again");
            }
        }
        Stored::Stopped => {
            let _ = delivery.requeue().await;
        }
        Stored::Never(detail) => {
            let rejection = Rejection::Failed { detail };
            dead_letter(stats, delivery, &rejection).await;
        }
    }
}

/// How storing a report ended.
enum Stored {
    Yes,
    /// The session ended while Redis was failing: give the report back.
    Stopped,
    /// Redis refused it for a reason retrying does not fix.
    Never(String),
}

async fn store_until_stored(
    store: &OutcomeStore,
    stats: &WorkerStats,
    outcome: &Outcome,
    stopped: &mut watch::Receiver<bool>,
) -> Stored {
    let mut wait = RETRY_INITIAL;
    let mut warned = false;
    loop {
        let error = match store.record(outcome).await {
            Ok(()) => return Stored::Yes,
            Err(error) => error,
        };
        stats.count(Counter::RedisErrors);
        if !error.is_outage() {
            tracing::error!(event_id = %outcome.event_id, error = %error, "redis refused an outcome: dead-lettering it");
            return Stored::Never(format!("redis refused the outcome: {error}"));
        }
        if !warned {
            tracing::warn!(event_id = %outcome.event_id, error = %error, "redis is unavailable: holding the outcome report until it returns");
            warned = true;
        }
        tokio::select! {
            biased;
            () = raised(stopped) => return Stored::Stopped,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(RETRY_MAX);
    }
}

async fn dead_letter(stats: &WorkerStats, delivery: Delivery, rejection: &Rejection) {
    stats.count(Counter::DeadLettered);
    match delivery.reject_to_dead_letter(rejection).await {
        Ok(DeadLettered::WithReason) => {}
        Ok(DeadLettered::WithoutReason(error)) => {
            tracing::warn!(error = %error, "the outcome report was dead-lettered without its reason header");
        }
        Err(error) => {
            tracing::warn!(error = %error, "could not dead-letter an outcome report; the broker will redeliver it");
        }
    }
}
