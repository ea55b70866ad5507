//! Client-side rate limits per provider and model: governor quotas for requests,
//! input tokens and output tokens per minute, limits learned from the provider's
//! headers, and a shared pause that a 429's `retry-after` imposes on every caller.
//!
//! In a fleet, the limits are the fleet's: a [`FleetLimiter`] (Redis, implemented
//! outside this crate) is asked after the local check, so the process's own
//! governor stays a cheap first gate and the shared budget the authority. When the
//! fleet's budget cannot be reached, each process keeps to its share of the limits
//! (`fleet_share`, or `1 / expected_workers`) until it can again.
//!
//! Token budgets are reserved before a call from the estimate (input) and
//! `max_tokens` (output), and settled after it with the usage the provider
//! reported: the difference is given back to (or taken from) the fleet's budget.
//! Failed attempts keep their reservation: a provider may have counted them.
//!
//! Time comes from tokio's clock, so `tokio::time::pause()` drives it in tests.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use crate::config::RateLimitSettings;
use crate::BoxFuture;

/// One budget of a request, as the fleet's limiter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetBudget {
    /// `requests`, `input_tokens` or `output_tokens`: part of the budget's key.
    pub name: &'static str,
    /// The limit in force (configured or learned) for the whole fleet.
    pub per_minute: u32,
    /// How much of it this request takes.
    pub amount: u64,
}

/// What the fleet's limiter answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetAdmission {
    /// Every budget had room; the amounts are taken.
    Admitted,
    /// Nothing was taken: ask again after this long (a budget is spent, or the
    /// provider is paused for the fleet).
    Wait(Duration),
    /// The shared budget cannot be reached: keep to this process's share.
    Unavailable,
}

/// The fleet's shared budgets and pauses, keyed by `scope` (`provider/model`).
/// Implemented over Redis by the worker (the bus crate's fleet limits); this crate
/// knows only this trait.
pub trait FleetLimiter: Send + Sync {
    /// Takes every budget at once, or none: `Admitted`, or how long to wait. Also
    /// answers `Wait` while the scope is paused, even with no budgets.
    fn acquire<'a>(
        &'a self,
        scope: &'a str,
        budgets: &'a [FleetBudget],
    ) -> BoxFuture<'a, FleetAdmission>;

    /// Corrects a reservation: `actual` was used where `reserved.amount` was taken.
    /// Best effort.
    fn settle<'a>(
        &'a self,
        scope: &'a str,
        reserved: FleetBudget,
        actual: u64,
    ) -> BoxFuture<'a, ()>;

    /// Pauses `scope` for every process (a 429's `retry-after`). Pauses only grow.
    /// Best effort.
    fn pause<'a>(&'a self, scope: &'a str, duration: Duration) -> BoxFuture<'a, ()>;
}

/// The fleet limiter a provider's limits are shared through, and under what name.
struct Fleet {
    limiter: Arc<dyn FleetLimiter>,
    provider: &'static str,
    scope: String,
}

/// What one [`ProviderLimiter::acquire`] took, for [`ProviderLimiter::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reservation {
    /// Token budgets taken from the fleet (`None`: not from the fleet, nothing to
    /// settle there).
    input: Option<FleetBudget>,
    output: Option<FleetBudget>,
}

/// Fraction of a learned limit the client aims for, so that clock skew and
/// in-flight requests do not reach the provider's limit.
const LEARNED_HEADROOM: f64 = 0.96;

/// Below this share of a window left, callers space out what remains until reset.
const LOW_WATER: f64 = 0.05;

#[derive(Debug, Clone)]
struct TokioClock {
    start: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

type Gov = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// One limited dimension: a per-minute limit and the governor enforcing it.
struct Dimension {
    per_minute: u32,
    burst: u32,
    gov: Arc<Gov>,
    configured: bool,
}

impl Dimension {
    fn new(per_minute: u32, clock: &TokioClock, configured: bool) -> Option<Dimension> {
        let per_minute_nz = NonZeroU32::new(per_minute)?;
        // Ten seconds' worth of burst: smooth enough that the provider's own bucket
        // never empties, large enough that one big request rarely needs splitting.
        let burst = per_minute.div_ceil(6).max(1);
        let quota = Quota::per_minute(per_minute_nz).allow_burst(NonZeroU32::new(burst)?);
        Some(Dimension {
            per_minute,
            burst,
            gov: Arc::new(RateLimiter::direct_with_clock(quota, clock.clone())),
            configured,
        })
    }
}

/// A window the provider reported: its limit, what is left, and when it refills.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Window {
    /// The limit of the window.
    pub limit: Option<u64>,
    /// What is left of it.
    pub remaining: Option<u64>,
    /// When it is back to full.
    pub reset_in: Option<Duration>,
}

/// The rate-limit facts of one response, from either provider's headers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateHeaders {
    /// Requests per minute.
    pub requests: Window,
    /// Input tokens per minute (OpenAI's combined `tokens` window lands here).
    pub input_tokens: Window,
    /// Output tokens per minute.
    pub output_tokens: Window,
    /// `retry-after` (or `retry-after-ms`).
    pub retry_after: Option<Duration>,
}

/// Reads `anthropic-ratelimit-*`, `x-ratelimit-*` and `retry-after` headers.
pub fn parse_rate_headers(headers: &HeaderMap) -> RateHeaders {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let num = |name: &str| get(name).and_then(|v| v.parse::<u64>().ok());
    let anthropic_window = |kind: &str| Window {
        limit: num(&format!("anthropic-ratelimit-{kind}-limit")),
        remaining: num(&format!("anthropic-ratelimit-{kind}-remaining")),
        reset_in: get(&format!("anthropic-ratelimit-{kind}-reset")).and_then(until_rfc3339),
    };
    let openai_window = |kind: &str| Window {
        limit: num(&format!("x-ratelimit-limit-{kind}")),
        remaining: num(&format!("x-ratelimit-remaining-{kind}")),
        reset_in: get(&format!("x-ratelimit-reset-{kind}")).and_then(parse_go_duration),
    };
    let pick = |a: Window, b: Window| {
        if a.limit.is_some() || a.remaining.is_some() {
            a
        } else {
            b
        }
    };
    let retry_after = get("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
        .or_else(|| {
            get("retry-after")
                .and_then(|v| v.parse::<f64>().ok())
                .map(|s| Duration::from_secs_f64(s.max(0.0)))
        });
    RateHeaders {
        requests: pick(anthropic_window("requests"), openai_window("requests")),
        input_tokens: pick(anthropic_window("input-tokens"), openai_window("tokens")),
        output_tokens: anthropic_window("output-tokens"),
        retry_after,
    }
}

fn until_rfc3339(value: &str) -> Option<Duration> {
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).ok()?;
    let left = at - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

/// Parses OpenAI's reset durations: `1s`, `6m0s`, `20ms`, `1h2m3.5s`.
fn parse_go_duration(value: &str) -> Option<Duration> {
    let mut total = 0.0f64;
    let mut number = String::new();
    let mut chars = value.chars().peekable();
    let mut seen = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let amount: f64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        total += amount * unit;
        seen = true;
    }
    (seen && number.is_empty()).then(|| Duration::from_secs_f64(total))
}

/// The limits of one provider and model, shared by every analysis that calls it.
pub struct ProviderLimiter {
    clock: TokioClock,
    learn: bool,
    requests: RwLock<Option<Dimension>>,
    input_tokens: RwLock<Option<Dimension>>,
    output_tokens: RwLock<Option<Dimension>>,
    paused_until: Mutex<Option<Instant>>,
    /// Shares the limits with the fleet when set (workers only) and allowed.
    fleet: OnceLock<Fleet>,
    fleet_allowed: bool,
    /// The share of each limit kept to while the fleet's budget is unreachable.
    share: f64,
    /// Governors at `share` of the limits in force, rebuilt when those change.
    fallback: Mutex<Option<Arc<Fallback>>>,
    /// The fleet's budget is unreachable (one warning per outage).
    fleet_down: AtomicBool,
}

/// This process's share of the limits, enforced while the fleet's budget is away.
struct Fallback {
    limits: (Option<u32>, Option<u32>, Option<u32>),
    requests: RwLock<Option<Dimension>>,
    input_tokens: RwLock<Option<Dimension>>,
    output_tokens: RwLock<Option<Dimension>>,
}

impl std::fmt::Debug for ProviderLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limit = |dim: &RwLock<Option<Dimension>>| {
            dim.read()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|d| d.per_minute)
        };
        f.debug_struct("ProviderLimiter")
            .field("requests_per_minute", &limit(&self.requests))
            .field("input_tokens_per_minute", &limit(&self.input_tokens))
            .field("output_tokens_per_minute", &limit(&self.output_tokens))
            .finish()
    }
}

impl ProviderLimiter {
    /// Limits from settings; unset ones stay open until learned from headers.
    pub fn new(settings: &RateLimitSettings) -> ProviderLimiter {
        let clock = TokioClock {
            start: Instant::now(),
        };
        let dim = |limit: Option<u32>| limit.and_then(|l| Dimension::new(l, &clock, true));
        ProviderLimiter {
            requests: RwLock::new(dim(settings.requests_per_minute)),
            input_tokens: RwLock::new(dim(settings.input_tokens_per_minute)),
            output_tokens: RwLock::new(dim(settings.output_tokens_per_minute)),
            learn: settings.learn_from_headers,
            paused_until: Mutex::new(None),
            clock,
            fleet: OnceLock::new(),
            fleet_allowed: settings.fleet,
            share: settings.fallback_share(),
            fallback: Mutex::new(None),
            fleet_down: AtomicBool::new(false),
        }
    }

    /// Shares these limits with the fleet through `limiter`, under
    /// `provider/model`. Does nothing when the settings say `fleet = false`, or
    /// when a fleet limiter is already attached. Returns whether it is attached.
    pub fn share_with_fleet(
        &self,
        limiter: Arc<dyn FleetLimiter>,
        provider: &'static str,
        model: &str,
    ) -> bool {
        if !self.fleet_allowed {
            return false;
        }
        self.fleet
            .set(Fleet {
                limiter,
                provider,
                scope: format!("{provider}/{model}"),
            })
            .is_ok()
    }

    /// Whether the limits are shared with a fleet and its budget is reachable
    /// (as of the last call).
    pub fn fleet_reachable(&self) -> bool {
        self.fleet.get().is_some() && !self.fleet_down.load(Ordering::Relaxed)
    }

    /// The limits in force (configured or learned): requests, input and output
    /// tokens per minute.
    pub fn limits(&self) -> (Option<u32>, Option<u32>, Option<u32>) {
        let limit = |dim: &RwLock<Option<Dimension>>| {
            dim.read()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|d| d.per_minute)
        };
        (
            limit(&self.requests),
            limit(&self.input_tokens),
            limit(&self.output_tokens),
        )
    }

    /// Waits until one request of about `input_tokens` in and `output_tokens` out may
    /// be sent. A request larger than a quota's burst takes it in several bursts
    /// instead of failing.
    ///
    /// With a fleet, the local governors go first (cheap), then the fleet's budget
    /// (one Redis round trip when there is room); when that budget is unreachable,
    /// this process's share of the limits instead.
    pub async fn acquire(&self, input_tokens: u64, output_tokens: u64) -> Reservation {
        loop {
            self.wait_for_pause().await;
            Self::take(&self.requests, &self.clock, 1).await;
            Self::take(&self.input_tokens, &self.clock, input_tokens).await;
            Self::take(&self.output_tokens, &self.clock, output_tokens).await;
            let reservation = match self.fleet.get() {
                Some(fleet) => self.acquire_fleet(fleet, input_tokens, output_tokens).await,
                None => Reservation::default(),
            };
            // A 429 seen by another caller while we waited pauses us too.
            if !self.is_paused() {
                return reservation;
            }
        }
    }

    async fn acquire_fleet(&self, fleet: &Fleet, input: u64, output: u64) -> Reservation {
        let (requests, input_limit, output_limit) = self.limits();
        let budget = |name, limit: Option<u32>, amount| {
            limit.map(|per_minute| FleetBudget {
                name,
                per_minute,
                amount,
            })
        };
        let input_budget = budget("input_tokens", input_limit, input);
        let output_budget = budget("output_tokens", output_limit, output);
        let budgets: Vec<FleetBudget> =
            [budget("requests", requests, 1), input_budget, output_budget]
                .into_iter()
                .flatten()
                .filter(|b| b.amount > 0)
                .collect();
        loop {
            match fleet.limiter.acquire(&fleet.scope, &budgets).await {
                FleetAdmission::Admitted => {
                    self.fleet_is_up(fleet);
                    return Reservation {
                        input: input_budget,
                        output: output_budget,
                    };
                }
                FleetAdmission::Wait(wait) => {
                    self.fleet_is_up(fleet);
                    // A little jitter, so that the fleet's waiters do not all ask
                    // again in the same millisecond.
                    let jitter = Duration::from_millis(crate::transport::random_u64() % 16);
                    tokio::time::sleep(wait + jitter).await;
                }
                FleetAdmission::Unavailable => {
                    if !self.fleet_down.swap(true, Ordering::Relaxed) {
                        gate_telemetry::events::FleetLimitUnavailable {
                            provider: fleet.provider,
                            scope: &fleet.scope,
                            share: self.share,
                        }
                        .emit();
                    }
                    let fallback = self.fallback();
                    Self::take(&fallback.requests, &self.clock, 1).await;
                    Self::take(&fallback.input_tokens, &self.clock, input).await;
                    Self::take(&fallback.output_tokens, &self.clock, output).await;
                    return Reservation::default();
                }
            }
        }
    }

    fn fleet_is_up(&self, fleet: &Fleet) {
        if self.fleet_down.swap(false, Ordering::Relaxed) {
            gate_telemetry::events::FleetLimitRestored {
                provider: fleet.provider,
                scope: &fleet.scope,
            }
            .emit();
        }
    }

    /// Governors at this process's share of the limits in force.
    fn fallback(&self) -> Arc<Fallback> {
        let limits = self.limits();
        let mut slot = self.fallback.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(fallback) = slot.as_ref().filter(|f| f.limits == limits) {
            return Arc::clone(fallback);
        }
        let share = |limit: Option<u32>| {
            limit.and_then(|l| {
                let part = ((f64::from(l) * self.share).floor() as u32).max(1);
                Dimension::new(part, &self.clock, true)
            })
        };
        let fallback = Arc::new(Fallback {
            limits,
            requests: RwLock::new(share(limits.0)),
            input_tokens: RwLock::new(share(limits.1)),
            output_tokens: RwLock::new(share(limits.2)),
        });
        *slot = Some(Arc::clone(&fallback));
        fallback
    }

    /// The limits this process keeps to while the fleet's budget is unreachable:
    /// requests, input and output tokens per minute.
    pub fn fallback_limits(&self) -> (Option<u32>, Option<u32>, Option<u32>) {
        let fallback = self.fallback();
        let limit = |dim: &RwLock<Option<Dimension>>| {
            dim.read()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|d| d.per_minute)
        };
        (
            limit(&fallback.requests),
            limit(&fallback.input_tokens),
            limit(&fallback.output_tokens),
        )
    }

    /// Settles a call's token reservation with the usage the provider reported:
    /// the fleet's budgets get back what was reserved and not used, or pay what was
    /// used beyond it. Local governors keep the estimate (they cannot give back).
    pub async fn settle(&self, reservation: Reservation, input_tokens: u64, output_tokens: u64) {
        let Some(fleet) = self.fleet.get() else {
            return;
        };
        for (reserved, actual) in [
            (reservation.input, input_tokens),
            (reservation.output, output_tokens),
        ] {
            if let Some(reserved) = reserved.filter(|r| r.amount != actual) {
                fleet.limiter.settle(&fleet.scope, reserved, actual).await;
            }
        }
    }

    /// Pauses every caller in this process and, with a fleet, every process of it,
    /// for a 429's `retry-after`.
    pub async fn pause_fleet(&self, duration: Duration) {
        self.pause_all(duration);
        if let Some(fleet) = self.fleet.get() {
            fleet.limiter.pause(&fleet.scope, duration).await;
        }
    }

    fn is_paused(&self) -> bool {
        self.paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| until > Instant::now())
    }

    async fn wait_for_pause(&self) {
        loop {
            let until = *self
                .paused_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }

    async fn take(dimension: &RwLock<Option<Dimension>>, clock: &TokioClock, amount: u64) {
        let Some((gov, burst)) = dimension
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|d| (Arc::clone(&d.gov), d.burst))
        else {
            return;
        };
        let mut left = amount;
        while left > 0 {
            let chunk = left.min(u64::from(burst)) as u32;
            let Some(n) = NonZeroU32::new(chunk) else {
                return;
            };
            loop {
                match gov.check_n(n) {
                    Ok(Ok(())) => break,
                    Ok(Err(not_until)) => {
                        tokio::time::sleep(not_until.wait_time_from(clock.now())).await
                    }
                    // Cannot happen: chunks are at most the burst. Do not spin.
                    Err(_) => return,
                }
            }
            left -= u64::from(chunk);
        }
    }

    /// Pauses every caller for `duration` (a 429's `retry-after`). Pauses only grow.
    pub fn pause_all(&self, duration: Duration) {
        let until = Instant::now() + duration;
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }

    /// Learns from a response's headers: adopts announced limits that were not
    /// configured, and when a window runs low spaces out what is left of it.
    pub fn observe(&self, headers: &RateHeaders) {
        let dims = [
            (&self.requests, headers.requests),
            (&self.input_tokens, headers.input_tokens),
            (&self.output_tokens, headers.output_tokens),
        ];
        for (dimension, window) in dims {
            if self.learn {
                if let Some(limit) = window.limit.and_then(|l| u32::try_from(l).ok()) {
                    let target = ((f64::from(limit) * LEARNED_HEADROOM) as u32).max(1);
                    let mut slot = dimension.write().unwrap_or_else(PoisonError::into_inner);
                    let replace = match slot.as_ref() {
                        None => true,
                        Some(current) => !current.configured && current.per_minute != target,
                    };
                    if replace {
                        *slot = Dimension::new(target, &self.clock, false);
                    }
                }
            }
            if let (Some(limit), Some(remaining), Some(reset_in)) =
                (window.limit, window.remaining, window.reset_in)
            {
                if remaining == 0 {
                    self.pause_all(reset_in);
                } else if (remaining as f64) < limit as f64 * LOW_WATER {
                    self.pause_all(reset_in / (remaining as u32 + 1));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration("abc"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_beyond_the_burst_wait_for_the_quota() {
        let limiter = ProviderLimiter::new(&RateLimitSettings {
            requests_per_minute: Some(60),
            ..Default::default()
        });
        let started = Instant::now();
        for _ in 0..20 {
            limiter.acquire(0, 0).await;
        }
        // Burst of 10, then one a second.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(9) && waited <= Duration::from_secs(11),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_larger_than_the_token_burst_is_admitted_in_pieces() {
        let limiter = ProviderLimiter::new(&RateLimitSettings {
            input_tokens_per_minute: Some(6_000),
            ..Default::default()
        });
        let started = Instant::now();
        limiter.acquire(5_000, 0).await;
        // Burst 1,000 tokens, 100 a second: 4,000 more tokens take 40 s.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(39) && waited <= Duration::from_secs(41),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_caller() {
        let limiter = Arc::new(ProviderLimiter::new(&RateLimitSettings::default()));
        limiter.pause_all(Duration::from_secs(7));
        let started = Instant::now();
        let other = Arc::clone(&limiter);
        let handle = tokio::spawn(async move { other.acquire(1, 1).await });
        limiter.acquire(1, 1).await;
        handle.await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(7));
    }

    /// A fleet limiter whose answers the test scripts, and that records settles and
    /// pauses.
    #[derive(Default)]
    struct ScriptedFleet {
        reachable: AtomicBool,
        n_asked: Mutex<u64>,
        settled: Mutex<Vec<(FleetBudget, u64)>>,
        paused: Mutex<Vec<Duration>>,
    }

    impl FleetLimiter for ScriptedFleet {
        fn acquire<'a>(
            &'a self,
            _scope: &'a str,
            _budgets: &'a [FleetBudget],
        ) -> BoxFuture<'a, FleetAdmission> {
            *self.n_asked.lock().unwrap() += 1;
            let answer = if self.reachable.load(Ordering::Relaxed) {
                FleetAdmission::Admitted
            } else {
                FleetAdmission::Unavailable
            };
            Box::pin(async move { answer })
        }

        fn settle<'a>(
            &'a self,
            _scope: &'a str,
            reserved: FleetBudget,
            actual: u64,
        ) -> BoxFuture<'a, ()> {
            self.settled.lock().unwrap().push((reserved, actual));
            Box::pin(async {})
        }

        fn pause<'a>(&'a self, _scope: &'a str, duration: Duration) -> BoxFuture<'a, ()> {
            self.paused.lock().unwrap().push(duration);
            Box::pin(async {})
        }
    }

    /// Time `n` back-to-back acquisitions take.
    async fn time_of(limiter: &ProviderLimiter, n: usize) -> Duration {
        let started = Instant::now();
        for _ in 0..n {
            let _ = limiter.acquire(0, 0).await;
        }
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn without_the_fleet_budget_a_worker_keeps_to_its_share_until_it_is_back() {
        let limiter = ProviderLimiter::new(&RateLimitSettings {
            requests_per_minute: Some(120),
            expected_workers: NonZeroU32::new(4).unwrap(),
            ..Default::default()
        });
        let fleet = Arc::new(ScriptedFleet::default());
        assert!(limiter.share_with_fleet(fleet.clone(), "anthropic", "m"));
        // Redis is down: a quarter of 120 a minute, 30 (a burst of 5, then one
        // every 2 s), although the local limiter alone would allow a burst of 20.
        assert_eq!(limiter.fallback_limits(), (Some(30), None, None));
        let waited = time_of(&limiter, 10).await;
        assert!(!limiter.fleet_reachable());
        assert!(waited >= Duration::from_secs(9), "{waited:?}");
        // Redis is back: the shared budget decides again, and the share is not
        // applied (the local limiter's burst of 20 has refilled meanwhile).
        fleet.reachable.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let waited = time_of(&limiter, 10).await;
        assert!(limiter.fleet_reachable());
        assert_eq!(waited, Duration::ZERO);
        assert_eq!(*fleet.n_asked.lock().unwrap(), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fleet_setting_of_false_keeps_the_limits_to_the_process() {
        let limiter = ProviderLimiter::new(&RateLimitSettings {
            requests_per_minute: Some(120),
            fleet: false,
            ..Default::default()
        });
        let fleet = Arc::new(ScriptedFleet::default());
        assert!(!limiter.share_with_fleet(fleet.clone(), "anthropic", "m"));
        let _ = limiter.acquire(10, 10).await;
        assert_eq!(*fleet.n_asked.lock().unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn token_reservations_are_settled_with_the_reported_usage_and_pauses_reach_the_fleet() {
        let limiter = ProviderLimiter::new(&RateLimitSettings {
            input_tokens_per_minute: Some(100_000),
            output_tokens_per_minute: Some(20_000),
            ..Default::default()
        });
        let fleet = Arc::new(ScriptedFleet::default());
        fleet.reachable.store(true, Ordering::Relaxed);
        assert!(limiter.share_with_fleet(fleet.clone(), "anthropic", "m"));
        let reservation = limiter.acquire(1_000, 1_024).await;
        limiter.settle(reservation, 1_200, 300).await;
        let settled = fleet.settled.lock().unwrap().clone();
        let of = |name: &str| {
            settled
                .iter()
                .find(|(budget, _)| budget.name == name)
                .map(|(budget, actual)| (budget.amount, *actual))
        };
        assert_eq!(of("input_tokens"), Some((1_000, 1_200)));
        assert_eq!(of("output_tokens"), Some((1_024, 300)));
        // What was taken from the process's share (Redis down) is not settled.
        fleet.reachable.store(false, Ordering::Relaxed);
        let reservation = limiter.acquire(1_000, 1_024).await;
        limiter.settle(reservation, 1, 1).await;
        assert_eq!(fleet.settled.lock().unwrap().len(), 2);
        limiter.pause_fleet(Duration::from_secs(3)).await;
        assert_eq!(*fleet.paused.lock().unwrap(), vec![Duration::from_secs(3)]);
    }

    #[test]
    fn limits_are_learned_from_headers_unless_configured() {
        let limiter = ProviderLimiter::new(&RateLimitSettings {
            requests_per_minute: Some(50),
            ..Default::default()
        });
        let headers = RateHeaders {
            requests: Window {
                limit: Some(1000),
                remaining: Some(999),
                reset_in: None,
            },
            input_tokens: Window {
                limit: Some(100_000),
                remaining: Some(90_000),
                reset_in: None,
            },
            ..Default::default()
        };
        limiter.observe(&headers);
        assert_eq!(limiter.limits(), (Some(50), Some(96_000), None));
    }
}
