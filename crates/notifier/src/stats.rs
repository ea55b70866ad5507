//! What the notifier did, counted, so tests and dashboards see the same numbers
//! the logs tell.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use gate_telemetry::events::NotificationResult;
use serde::Serialize;

/// Live counters of one notifier. Cheap to clone (all clones share the counts):
/// pass one in [`NotifierDeps`](crate::NotifierDeps), keep another to read.
#[derive(Debug, Clone, Default)]
pub struct NotifierStats {
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    duplicates_skipped: AtomicU64,
    rate_limited: AtomicU64,
    dedup_unavailable: AtomicU64,
    reconnects: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Notifications a target accepted (2xx).
    pub delivered: u64,
    /// Attempts that failed: 5xx, timeouts, connection errors and refusals (4xx
    /// other than 429). One notification can count several times.
    pub failed: u64,
    /// Attempts made after an earlier attempt of the same notification failed or
    /// was rate limited.
    pub retried: u64,
    /// Notifications dead-lettered: malformed, for an unknown channel, refused by
    /// the target, or out of attempts.
    pub dead_lettered: u64,
    /// Redelivered notifications skipped because Redis says they were delivered.
    pub duplicates_skipped: u64,
    /// 429 answers received.
    pub rate_limited: u64,
    /// Notifications handled without the delivered-marks store (Redis down or
    /// failing): delivered at least once instead of exactly once.
    pub dedup_unavailable: u64,
    /// Broker connections re-established after one was lost.
    pub reconnects: u64,
}

impl NotifierStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            delivered: get(&c.delivered),
            failed: get(&c.failed),
            retried: get(&c.retried),
            dead_lettered: get(&c.dead_lettered),
            duplicates_skipped: get(&c.duplicates_skipped),
            rate_limited: get(&c.rate_limited),
            dedup_unavailable: get(&c.dedup_unavailable),
            reconnects: get(&c.reconnects),
        }
    }

    pub(crate) fn delivered(&self) {
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        NotificationResult::Delivered.emit();
    }
    pub(crate) fn failed(&self) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        NotificationResult::Failed.emit();
    }
    pub(crate) fn retried(&self) {
        self.counters.retried.fetch_add(1, Ordering::Relaxed);
        NotificationResult::Retried.emit();
    }
    pub(crate) fn dead_lettered(&self) {
        self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
        NotificationResult::DeadLettered.emit();
    }
    pub(crate) fn duplicate_skipped(&self) {
        self.counters
            .duplicates_skipped
            .fetch_add(1, Ordering::Relaxed);
        NotificationResult::DuplicateSkipped.emit();
    }
    pub(crate) fn rate_limited(&self) {
        self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        NotificationResult::RateLimited.emit();
    }
    pub(crate) fn dedup_unavailable(&self) {
        self.counters
            .dedup_unavailable
            .fetch_add(1, Ordering::Relaxed);
        gate_telemetry::events::RedisFailed.emit();
    }
    pub(crate) fn reconnected(&self) {
        self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        gate_telemetry::events::BrokerReconnected.emit();
    }
}
