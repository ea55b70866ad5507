//! Getting one notification to its target: pacing per webhook, retries with
//! backoff, `Retry-After`, and giving up with a reason. No HTTP here (the attempt
//! is a closure), so the timing logic is tested with a paused clock.

use std::{
    collections::hash_map::RandomState,
    future::Future,
    hash::{BuildHasher, Hasher},
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

use crate::{NotifierSettings, NotifierStats};

/// What one attempt to post a notification came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The target accepted it (2xx).
    Delivered,
    /// 429: wait for `retry_after` (or a backoff when it gave none), then retry.
    RateLimited {
        retry_after: Option<Duration>,
        detail: String,
    },
    /// 5xx, 408, a timeout or a connection error: retry after a backoff.
    Retryable(String),
    /// Any other answer (Slack's `invalid_payload`, `no_service`,
    /// `channel_is_archived`…): retrying would get the same answer.
    Permanent(String),
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finished {
    /// The target has it.
    Delivered,
    /// It will not get there: dead-letter with this reason.
    GaveUp(String),
    /// The notifier is shutting down and the next wait would outlast the grace
    /// period: give the delivery back to the queue.
    Stopped,
}

/// When to stop waiting: set to the shutdown deadline when shutdown begins. A wait
/// that would end after it ends at once with [`Stopped`].
#[derive(Clone)]
pub(crate) struct Deadline(watch::Receiver<Option<Instant>>);

/// A wait was cut short by the shutdown deadline.
pub(crate) struct Stopped;

impl Deadline {
    pub(crate) fn channel() -> (watch::Sender<Option<Instant>>, Deadline) {
        let (sender, receiver) = watch::channel(None);
        (sender, Deadline(receiver))
    }

    /// Sleeps until `until`, unless the shutdown deadline comes first.
    pub(crate) async fn sleep_until(&mut self, until: Instant) -> Result<(), Stopped> {
        loop {
            if let Some(deadline) = *self.0.borrow_and_update() {
                if until > deadline {
                    return Err(Stopped);
                }
            }
            tokio::select! {
                () = tokio::time::sleep_until(until) => return Ok(()),
                changed = self.0.changed() => {
                    if changed.is_err() {
                        // The notifier is gone; nobody will wait for this delivery.
                        return Err(Stopped);
                    }
                }
            }
        }
    }
}

/// Spaces requests to one webhook URL: at most one per interval, and none before a
/// 429's `Retry-After` has passed. Shared by every channel that uses the URL, since
/// the target's limit is per URL.
#[derive(Debug)]
pub(crate) struct Pacer {
    interval: Duration,
    next_at: Mutex<Option<Instant>>,
}

impl Pacer {
    pub(crate) fn new(interval: Duration) -> Pacer {
        Pacer {
            interval,
            next_at: Mutex::new(None),
        }
    }

    /// Waits for the next slot and takes it.
    async fn acquire(&self, deadline: &mut Deadline) -> Result<(), Stopped> {
        loop {
            let wait_until = {
                let mut next_at = self.next_at.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                match *next_at {
                    Some(at) if at > now => at,
                    _ => {
                        *next_at = Some(now + self.interval);
                        return Ok(());
                    }
                }
            };
            // Someone else may take the slot first (or a 429 may push it back):
            // look again after waking.
            deadline.sleep_until(wait_until).await?;
        }
    }

    /// No request to this URL before `delay` from now.
    fn hold_off(&self, delay: Duration) {
        let mut next_at = self.next_at.lock().unwrap_or_else(PoisonError::into_inner);
        let until = Instant::now() + delay;
        if next_at.is_none_or(|at| at < until) {
            *next_at = Some(until);
        }
    }
}

/// Attempts, backoffs and caps, from the settings.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) max_rate_limited: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_retry_after: Duration,
}

impl RetryPolicy {
    pub(crate) fn from_settings(settings: &NotifierSettings) -> RetryPolicy {
        RetryPolicy {
            max_attempts: settings.max_attempts.max(1),
            max_rate_limited: settings.max_rate_limited.max(1),
            initial_backoff: Duration::from_millis(settings.initial_backoff_ms),
            max_backoff: Duration::from_millis(settings.max_backoff_ms),
            max_retry_after: Duration::from_secs(settings.max_retry_after_secs),
        }
    }

    /// The wait after the `n`th failure (from 1): doubling from the initial backoff
    /// up to the maximum, then "equal jitter" (between half and all of it), so
    /// notifiers that failed together do not retry together.
    pub(crate) fn backoff(&self, n: u32, jitter: u64) -> Duration {
        let initial = self.initial_backoff.as_millis().min(u128::from(u64::MAX)) as u64;
        let max = (self.max_backoff.as_millis().min(u128::from(u64::MAX)) as u64).max(initial);
        let base = initial
            .saturating_mul(1u64 << n.saturating_sub(1).min(32))
            .min(max);
        let half = base / 2;
        Duration::from_millis(half + jitter % (base - half + 1))
    }
}

/// Random enough for jitter, without a dependency.
fn jitter() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// Delivers with pacing and retries until the target has it, it refuses it, the
/// attempts run out, or shutdown cuts a wait short.
pub(crate) async fn deliver<F, Fut>(
    policy: &RetryPolicy,
    pacer: &Pacer,
    stats: &NotifierStats,
    deadline: &mut Deadline,
    mut attempt: F,
) -> Finished
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Outcome>,
{
    let mut n_failures = 0u32;
    let mut n_rate_limited = 0u32;
    let mut n_attempts = 0u32;
    loop {
        if pacer.acquire(deadline).await.is_err() {
            return Finished::Stopped;
        }
        n_attempts += 1;
        if n_attempts > 1 {
            stats.retried();
        }
        match attempt().await {
            Outcome::Delivered => {
                stats.delivered();
                return Finished::Delivered;
            }
            Outcome::Permanent(detail) => {
                stats.failed();
                return Finished::GaveUp(detail);
            }
            Outcome::RateLimited {
                retry_after,
                detail,
            } => {
                stats.rate_limited();
                n_rate_limited += 1;
                if n_rate_limited >= policy.max_rate_limited {
                    return Finished::GaveUp(format!(
                        "rate limited {n_rate_limited} times in a row; last: {detail}"
                    ));
                }
                let wait = retry_after
                    .unwrap_or_else(|| policy.backoff(n_rate_limited, jitter()))
                    .min(policy.max_retry_after);
                tracing::info!(
                    wait_ms = wait.as_millis() as u64,
                    "target rate limited; holding its requests"
                );
                pacer.hold_off(wait);
            }
            Outcome::Retryable(detail) => {
                stats.failed();
                n_failures += 1;
                n_rate_limited = 0;
                if n_failures >= policy.max_attempts {
                    return Finished::GaveUp(format!(
                        "gave up after {n_failures} failed attempt(s); last: {detail}"
                    ));
                }
                let delay = policy.backoff(n_failures, jitter());
                tracing::info!(
                    attempt = n_failures,
                    delay_ms = delay.as_millis() as u64,
                    error = %detail,
                    "delivery failed; retrying"
                );
                if deadline.sleep_until(Instant::now() + delay).await.is_err() {
                    return Finished::Stopped;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            max_rate_limited: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(60),
        }
    }

    /// Runs `deliver` against scripted outcomes, recording when each attempt began.
    async fn run_script(
        script: Vec<Outcome>,
        pacer: &Pacer,
        deadline: &mut Deadline,
    ) -> (Finished, Vec<Duration>, NotifierStats) {
        let start = Instant::now();
        let stats = NotifierStats::default();
        let times = Arc::new(Mutex::new(Vec::new()));
        let mut script = script.into_iter();
        let finished = deliver(&policy(), pacer, &stats, deadline, || {
            times.lock().unwrap().push(start.elapsed());
            let outcome = script.next().unwrap_or(Outcome::Delivered);
            async move { outcome }
        })
        .await;
        let times = times.lock().unwrap().clone();
        (finished, times, stats)
    }

    fn fail() -> Outcome {
        Outcome::Retryable("HTTP 500: boom".into())
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_equal_jitter() {
        let policy = policy();
        assert_eq!(policy.backoff(1, 0), Duration::from_millis(50));
        assert_eq!(policy.backoff(2, 0), Duration::from_millis(100));
        assert_eq!(policy.backoff(3, 0), Duration::from_millis(150));
        assert_eq!(policy.backoff(40, 0), Duration::from_millis(150));
        for jitter in [1, 77, 12345, u64::MAX] {
            let delay = policy.backoff(3, jitter);
            assert!(delay >= Duration::from_millis(150) && delay <= Duration::from_millis(300));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_are_retried_with_growing_backoff_then_delivered() {
        let pacer = Pacer::new(Duration::ZERO);
        let (_tx, mut deadline) = Deadline::channel();
        let (finished, times, stats) = run_script(
            vec![fail(), fail(), Outcome::Delivered],
            &pacer,
            &mut deadline,
        )
        .await;
        assert_eq!(finished, Finished::Delivered);
        assert_eq!(times.len(), 3);
        let first_gap = times[1] - times[0];
        let second_gap = times[2] - times[1];
        assert!(first_gap >= Duration::from_millis(50) && first_gap <= Duration::from_millis(100));
        assert!(
            second_gap >= Duration::from_millis(100) && second_gap <= Duration::from_millis(200)
        );
        let snapshot = stats.snapshot();
        assert_eq!(
            (snapshot.failed, snapshot.retried, snapshot.delivered),
            (2, 2, 1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_max_attempts_failures_the_delivery_gives_up_with_the_last_reason() {
        let pacer = Pacer::new(Duration::ZERO);
        let (_tx, mut deadline) = Deadline::channel();
        let (finished, times, _) =
            run_script(vec![fail(), fail(), fail(), fail()], &pacer, &mut deadline).await;
        assert_eq!(
            finished,
            Finished::GaveUp("gave up after 3 failed attempt(s); last: HTTP 500: boom".into())
        );
        assert_eq!(times.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_gives_up_at_once() {
        let pacer = Pacer::new(Duration::ZERO);
        let (_tx, mut deadline) = Deadline::channel();
        let refusal = Outcome::Permanent("HTTP 410: channel_is_archived".into());
        let (finished, times, _) = run_script(vec![refusal], &pacer, &mut deadline).await;
        assert_eq!(
            finished,
            Finished::GaveUp("HTTP 410: channel_is_archived".into())
        );
        assert_eq!(times.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_the_next_attempt_and_does_not_use_up_attempts() {
        let pacer = Pacer::new(Duration::from_secs(1));
        let (_tx, mut deadline) = Deadline::channel();
        let limited = || Outcome::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
            detail: "HTTP 429".into(),
        };
        let (finished, times, stats) = run_script(
            vec![limited(), limited(), limited(), Outcome::Delivered],
            &pacer,
            &mut deadline,
        )
        .await;
        assert_eq!(finished, Finished::Delivered, "3 × 429 < max_rate_limited");
        assert_eq!(
            times,
            vec![
                Duration::ZERO,
                Duration::from_secs(7),
                Duration::from_secs(14),
                Duration::from_secs(21)
            ]
        );
        assert_eq!(stats.snapshot().rate_limited, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_webhook_holds_every_notification_to_it() {
        let pacer = Arc::new(Pacer::new(Duration::from_secs(1)));
        let (_tx, mut deadline) = Deadline::channel();
        let start = Instant::now();
        pacer.acquire(&mut deadline).await.ok();
        pacer.hold_off(Duration::from_secs(5));
        pacer.acquire(&mut deadline).await.ok();
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        pacer.acquire(&mut deadline).await.ok();
        assert_eq!(start.elapsed(), Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_senders_to_one_webhook_are_spaced_by_the_interval() {
        let pacer = Arc::new(Pacer::new(Duration::from_secs(1)));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        let (_tx, deadline) = Deadline::channel();
        for _ in 0..5 {
            let pacer = Arc::clone(&pacer);
            let mut deadline = deadline.clone();
            tasks.spawn(async move {
                pacer.acquire(&mut deadline).await.ok();
                start.elapsed()
            });
        }
        let mut times = tasks.join_all().await;
        times.sort();
        let secs: Vec<u64> = times.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_shutdown_deadline_stops_at_once() {
        let pacer = Pacer::new(Duration::ZERO);
        let (tx, mut deadline) = Deadline::channel();
        tx.send(Some(Instant::now() + Duration::from_millis(120)))
            .unwrap();
        let start = Instant::now();
        let (finished, times, _) = run_script(vec![fail(), fail()], &pacer, &mut deadline).await;
        // First backoff (50–100 ms) fits before the deadline; the second (100–200 ms
        // after that) does not.
        assert_eq!(finished, Finished::Stopped);
        assert_eq!(times.len(), 2);
        assert!(start.elapsed() <= Duration::from_millis(120));
    }
}
