//! The worker's counters: in memory, lock-free, readable by tests, and exported
//! through `gate-telemetry` at the same points, so logs, tests and dashboards
//! count the same things.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

/// A shared handle on one worker's counters. Cloning is cheap and every clone sees
/// the same numbers: put one in [`WorkerDeps`](crate::WorkerDeps), keep another.
#[derive(Debug, Clone, Default)]
pub struct WorkerStats {
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    decided: AtomicU64,
    dead_lettered: AtomicU64,
    redelivered: AtomicU64,
    republished_from_store: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    redis_errors: AtomicU64,
    publish_failures: AtomicU64,
    requeued: AtomicU64,
    reconnects: AtomicU64,
    models_skipped: AtomicU64,
}

/// The counters at one moment. Each is monotonic over the worker's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Deliveries taken from the events queue, bad ones included.
    pub received: u64,
    /// Decisions made by analysis (not republished from the store).
    pub decided: u64,
    /// Deliveries sent to the dead-letter queue (bad input, or a decision that can
    /// never be published).
    pub dead_lettered: u64,
    /// Deliveries the broker flagged as redelivered.
    pub redelivered: u64,
    /// Events answered with the decision already stored for them, at no analysis
    /// cost.
    pub republished_from_store: u64,
    /// Analyses whose model verdicts all came from the verdict cache.
    pub cache_hits: u64,
    /// Analyses that had to ask the models.
    pub cache_misses: u64,
    /// Failed Redis operations (outages and bad values); the worker went on
    /// without the store each time.
    pub redis_errors: u64,
    /// Publishes of decisions or notifications that failed; the event was requeued
    /// (or dead-lettered when the message can never be published).
    pub publish_failures: u64,
    /// Deliveries returned to the queue: a failed publish, a shutdown deadline, a
    /// bug caught in processing.
    pub requeued: u64,
    /// Times the worker connected again after losing the broker.
    pub reconnects: u64,
    /// Decisions made without asking any model because the policy found the change
    /// trivial (docs, tests or comments only): the money cost control saved.
    pub models_skipped: u64,
}

/// One counter, named where it is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    Received,
    Decided,
    DeadLettered,
    Redelivered,
    RepublishedFromStore,
    CacheHits,
    CacheMisses,
    RedisErrors,
    PublishFailures,
    Requeued,
    Reconnects,
    ModelsSkipped,
}

impl WorkerStats {
    /// Fresh counters, all zero.
    pub fn new() -> WorkerStats {
        WorkerStats::default()
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let c = &*self.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            received: read(&c.received),
            decided: read(&c.decided),
            dead_lettered: read(&c.dead_lettered),
            redelivered: read(&c.redelivered),
            republished_from_store: read(&c.republished_from_store),
            cache_hits: read(&c.cache_hits),
            cache_misses: read(&c.cache_misses),
            redis_errors: read(&c.redis_errors),
            publish_failures: read(&c.publish_failures),
            requeued: read(&c.requeued),
            reconnects: read(&c.reconnects),
            models_skipped: read(&c.models_skipped),
        }
    }

    pub(crate) fn count(&self, counter: Counter) {
        let c = &*self.counters;
        let atomic = match counter {
            Counter::Received => &c.received,
            Counter::Decided => &c.decided,
            Counter::DeadLettered => &c.dead_lettered,
            Counter::Redelivered => &c.redelivered,
            Counter::RepublishedFromStore => &c.republished_from_store,
            Counter::CacheHits => &c.cache_hits,
            Counter::CacheMisses => &c.cache_misses,
            Counter::RedisErrors => &c.redis_errors,
            Counter::PublishFailures => &c.publish_failures,
            Counter::Requeued => &c.requeued,
            Counter::Reconnects => &c.reconnects,
            Counter::ModelsSkipped => &c.models_skipped,
        };
        atomic.fetch_add(1, Ordering::Relaxed);
        export(counter);
    }
}

/// The same count in the process-wide registry that `/metrics` serves.
/// `Received` and `Redelivered` are exported by [`gate_telemetry::events::EventReceived`]
/// at the delivery, which knows both at once.
fn export(counter: Counter) {
    use gate_telemetry::events::{
        BrokerFailed, BrokerReconnected, EventFate, RedisFailed, VerdictCacheLookup,
    };
    match counter {
        Counter::Received | Counter::Redelivered => {}
        Counter::Decided => EventFate::Decided.emit(),
        Counter::DeadLettered => EventFate::DeadLettered.emit(),
        Counter::RepublishedFromStore => EventFate::Republished.emit(),
        Counter::CacheHits => VerdictCacheLookup { hit: true }.emit(),
        Counter::CacheMisses => VerdictCacheLookup { hit: false }.emit(),
        Counter::RedisErrors => RedisFailed.emit(),
        Counter::PublishFailures => BrokerFailed {
            operation: "publish",
        }
        .emit(),
        Counter::Requeued => EventFate::Requeued.emit(),
        Counter::Reconnects => BrokerReconnected.emit(),
        Counter::ModelsSkipped => EventFate::ModelsSkipped.emit(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_counts_into_the_same_counters() {
        let stats = WorkerStats::new();
        let clone = stats.clone();
        clone.count(Counter::Received);
        clone.count(Counter::Received);
        stats.count(Counter::CacheHits);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.received, 2);
        assert_eq!(snapshot.cache_hits, 1);
        assert_eq!(snapshot.decided, 0);
    }
}
