//! Replay protection: every delivery id a receiver accepted is remembered for
//! `webhook.replay_window_secs`, so the same delivery sent again (a captured
//! request replayed, or a redelivery of one that was already enqueued) enqueues
//! nothing.
//!
//! Where ids are remembered: Redis (`SET NX EX` under `<key_prefix>webhook-delivery:`),
//! shared by every receiver behind a load balancer and kept across restarts; and,
//! always, a bounded in-process set, which is what remains when Redis is down (then
//! a replay reaching another receiver, or this one after a restart, is not caught —
//! the worker's decision store still makes it one decision per event id).
//!
//! Only deliveries that enqueued an event stay remembered. One answered with an
//! error is forgotten again ([`ReplayGuard::release`]): GitHub's "Redeliver" of a
//! failed delivery must be enqueued for real. One that was ignored (another branch,
//! another event type) is forgotten too: sent again, it is ignored again.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gate_bus::Marks;

/// What [`ReplayGuard::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// First time seen within the window: go on.
    New,
    /// Seen before within the window: enqueue nothing.
    Duplicate,
}

/// Remembers delivery ids. See the module documentation.
pub(crate) struct ReplayGuard {
    marks: Option<Marks>,
    local: Mutex<LocalMarks>,
    /// Set while Redis is failing, so an outage is logged once, not per request.
    redis_down: AtomicBool,
}

impl ReplayGuard {
    /// A guard remembering ids for `window`, in `marks` (Redis) when given and in
    /// at most `capacity` ids in memory.
    pub(crate) fn new(marks: Option<Marks>, window: Duration, capacity: usize) -> ReplayGuard {
        ReplayGuard {
            marks,
            local: Mutex::new(LocalMarks::new(window, capacity)),
            redis_down: AtomicBool::new(false),
        }
    }

    /// Claims `id` (already namespaced: `github:<id>`, `events:<id>`).
    pub(crate) async fn claim(&self, id: &str) -> Claim {
        let seen_here = self.local().insert(id, Instant::now());
        if !seen_here {
            return Claim::Duplicate;
        }
        let Some(marks) = &self.marks else {
            return Claim::New;
        };
        match marks.insert(id).await {
            Ok(true) => {
                self.redis_recovered();
                Claim::New
            }
            Ok(false) => {
                self.redis_recovered();
                Claim::Duplicate
            }
            Err(error) => {
                if !self.redis_down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "replay protection: Redis unavailable; remembering delivery ids in this process only");
                }
                Claim::New
            }
        }
    }

    /// Forgets `id`: its delivery was answered with an error and may come again.
    pub(crate) async fn release(&self, id: &str) {
        self.local().remove(id);
        if let Some(marks) = &self.marks {
            if let Err(error) = marks.remove(id).await {
                tracing::debug!(%error, "replay protection: could not forget a failed delivery in Redis");
            }
        }
    }

    fn redis_recovered(&self) {
        if self.redis_down.swap(false, Ordering::Relaxed) {
            tracing::info!("replay protection: Redis is back");
        }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, LocalMarks> {
        self.local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Ids seen in the last `window`, at most `capacity` of them (the oldest go first
/// when full: a flood of fresh ids cannot grow memory).
struct LocalMarks {
    window: Duration,
    capacity: usize,
    seen: HashMap<String, Instant>,
    order: VecDeque<(String, Instant)>,
}

impl LocalMarks {
    fn new(window: Duration, capacity: usize) -> LocalMarks {
        LocalMarks {
            window,
            capacity: capacity.max(1),
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Remembers `id` at `now`; false when it was already remembered.
    fn insert(&mut self, id: &str, now: Instant) -> bool {
        self.expire(now);
        if self.seen.contains_key(id) {
            return false;
        }
        while self.seen.len() >= self.capacity {
            let Some((oldest, at)) = self.order.pop_front() else {
                break;
            };
            if self.seen.get(&oldest) == Some(&at) {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(id.to_owned(), now);
        self.order.push_back((id.to_owned(), now));
        true
    }

    fn remove(&mut self, id: &str) {
        self.seen.remove(id);
    }

    fn expire(&mut self, now: Instant) {
        while let Some((id, at)) = self.order.front() {
            if now.duration_since(*at) < self.window {
                break;
            }
            if self.seen.get(id) == Some(at) {
                self.seen.remove(id);
            }
            self.order.pop_front();
        }
        // Entries removed by `remove` stay in `order` until they expire; bound it.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let seen = &self.seen;
            self.order.retain(|(id, at)| seen.get(id) == Some(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_remembered_for_the_window_then_forgotten() {
        let mut marks = LocalMarks::new(Duration::from_secs(60), 10);
        let start = Instant::now();
        assert!(marks.insert("a", start));
        assert!(!marks.insert("a", start + Duration::from_secs(59)));
        assert!(marks.insert("a", start + Duration::from_secs(61)));
    }

    #[test]
    fn a_released_id_may_come_again() {
        let mut marks = LocalMarks::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        assert!(marks.insert("a", now));
        marks.remove("a");
        assert!(marks.insert("a", now));
        assert!(!marks.insert("a", now));
    }

    #[test]
    fn memory_is_bounded_by_the_capacity() {
        let mut marks = LocalMarks::new(Duration::from_secs(3600), 3);
        let now = Instant::now();
        for idx in 0..1_000 {
            assert!(marks.insert(&format!("id-{idx}"), now));
        }
        assert!(marks.seen.len() <= 3);
        assert!(marks.order.len() <= 6);
        assert!(!marks.insert("id-999", now), "the newest ids are kept");
    }

    #[tokio::test]
    async fn while_redis_is_down_the_process_remembers() {
        let down = gate_bus::Redis::open(
            "redis://127.0.0.1:1/0",
            gate_bus::RedisSettings {
                op_timeout_ms: 100,
                ..gate_bus::RedisSettings::default()
            },
        )
        .expect("a well-formed URL");
        let marks = down.marks("webhook-delivery", Duration::from_secs(60));
        let guard = ReplayGuard::new(Some(marks), Duration::from_secs(60), 100);
        assert_eq!(guard.claim("github:7").await, Claim::New);
        assert_eq!(guard.claim("github:7").await, Claim::Duplicate);
    }

    #[tokio::test]
    async fn without_redis_the_process_remembers() {
        let guard = ReplayGuard::new(None, Duration::from_secs(60), 100);
        assert_eq!(guard.claim("github:1").await, Claim::New);
        assert_eq!(guard.claim("github:1").await, Claim::Duplicate);
        guard.release("github:1").await;
        assert_eq!(guard.claim("github:1").await, Claim::New);
    }
}
