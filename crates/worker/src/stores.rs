//! The decision store and the verdict cache as the worker uses them: optional.
//! Every failure is counted and shrugged off (the worker decides without them),
//! an outage is warned about once, not once per event, and while Redis is down
//! only one operation per retry interval tries it, so a hung Redis does not cost
//! every event a timeout.

use std::{
    future::Future,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use gate_bus::{DecisionStore, Insert, Redis, StoreError, VerdictKey};
use gate_core::{Decision, Verdict};

use crate::stats::{Counter, WorkerStats};

/// Redis through the worker's eyes.
pub(crate) struct Stores {
    decisions: DecisionStore,
    outage: Outage,
    stats: WorkerStats,
}

/// Whether Redis is down, and when to try it again.
struct Outage {
    retry_interval: Duration,
    /// `Some(next try)` while down.
    state: Mutex<Option<Instant>>,
}

impl Stores {
    pub(crate) fn new(redis: &Redis, retry_interval: Duration, stats: WorkerStats) -> Stores {
        Stores {
            decisions: redis.decision_store(),
            outage: Outage {
                retry_interval,
                state: Mutex::new(None),
            },
            stats,
        }
    }

    /// The decision stored for `event_id` as far as Redis can say: `Some(None)`
    /// when it has none, `None` when it cannot say (down, or skipped while known
    /// down).
    pub(crate) async fn known_decision(&self, event_id: &str) -> Option<Option<Decision>> {
        self.call("read the stored decision", self.decisions.get(event_id))
            .await
    }

    /// How long a Redis known to be down is left alone between two tries.
    pub(crate) fn retry_interval(&self) -> Duration {
        self.outage.retry_interval
    }

    /// Stores `decision` unless the event has one, and caches `verdicts`, in one
    /// round trip; `None` when Redis cannot say, and the caller publishes its own
    /// decision without the idempotency store.
    pub(crate) async fn insert_caching(
        &self,
        decision: &Decision,
        verdicts: &[(&VerdictKey, &Verdict)],
    ) -> Option<Insert> {
        self.call(
            "store the decision",
            self.decisions.insert_caching(decision, verdicts),
        )
        .await
    }

    /// The decision stored for `event_id` (when given) and the verdicts cached
    /// under `keys`, in one round trip: `None`s where there is none or Redis cannot
    /// say. A value that does not parse counts as a Redis error, is warned about
    /// and reads as a miss.
    pub(crate) async fn lookup(
        &self,
        event_id: Option<&str>,
        keys: &[&VerdictKey],
    ) -> (Option<Decision>, Vec<Option<Verdict>>) {
        let Some(found) = self
            .call(
                "read the stored decision and the verdict cache",
                self.decisions.lookup(event_id, keys),
            )
            .await
        else {
            return (None, vec![None; keys.len()]);
        };
        let decision = self.usable(found.decision);
        let verdicts = found
            .verdicts
            .into_iter()
            .map(|verdict| self.usable(verdict))
            .collect();
        (decision, verdicts)
    }

    /// The value of one slot of a lookup; a bad one is counted and warned about.
    fn usable<T>(&self, slot: Result<Option<T>, StoreError>) -> Option<T> {
        slot.unwrap_or_else(|error| {
            self.stats.count(Counter::RedisErrors);
            tracing::warn!(error = %error, "ignoring a stored value that cannot be read");
            None
        })
    }

    /// Runs one store operation unless Redis is known down and it is not yet time
    /// to try again. The operation is a future that does nothing until polled, so
    /// skipping it costs nothing.
    async fn call<T>(
        &self,
        what: &'static str,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Option<T> {
        if !self.outage.may_try(Instant::now()) {
            return None;
        }
        match operation.await {
            Ok(value) => {
                if self.outage.recovered() {
                    tracing::info!("redis is reachable again: the decision store and the verdict cache are back in use");
                }
                Some(value)
            }
            Err(error) => {
                self.stats.count(Counter::RedisErrors);
                if error.is_outage() {
                    if self.outage.failed(Instant::now()) {
                        tracing::warn!(
                            error = %error,
                            "redis is unavailable: deciding without the decision store and the verdict cache until it returns"
                        );
                    }
                } else {
                    tracing::warn!(error = %error, "could not {what}; going on without it");
                }
                None
            }
        }
    }
}

impl Outage {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether an operation may go to Redis now. While down, the first caller
    /// after the retry time goes (and pushes the next try out); the rest skip.
    fn may_try(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match *state {
            None => true,
            Some(next_try) if now >= next_try => {
                *state = Some(now + self.retry_interval);
                true
            }
            Some(_) => false,
        }
    }

    /// Records a failure; true when it starts an outage (warn once).
    fn failed(&self, now: Instant) -> bool {
        let mut state = self.lock();
        let started = state.is_none();
        *state = Some(now + self.retry_interval);
        started
    }

    /// Records a success; true when it ends an outage.
    fn recovered(&self) -> bool {
        self.lock().take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_reported_once_probed_once_per_interval_and_ends_on_success() {
        let outage = Outage {
            retry_interval: Duration::from_secs(1),
            state: Mutex::new(None),
        };
        let start = Instant::now();
        assert!(outage.may_try(start));
        assert!(outage.failed(start), "the first failure starts the outage");
        assert!(!outage.failed(start), "later ones do not warn again");
        assert!(!outage.may_try(start + Duration::from_millis(500)));
        let probe = start + Duration::from_millis(1_100);
        assert!(outage.may_try(probe), "one probe after the interval");
        assert!(!outage.may_try(probe), "and only one");
        assert!(outage.recovered());
        assert!(!outage.recovered());
        assert!(outage.may_try(probe));
    }
}
