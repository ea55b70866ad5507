//! One type per notable thing a process does. [`emit`](EventReceived::emit)
//! counts it in the registry and logs it at debug level; the call sites keep
//! their own info/warn lines, which say more than a counter can.

use std::time::Duration;

use crate::metrics::metrics;

/// `gen_ai.operation.name` of every model analysis: a chat completion (Anthropic
/// Messages and OpenAI chat completions alike).
const OPERATION_CHAT: &str = "chat";

/// A merge-event delivery was taken from the events queue.
#[derive(Debug, Clone, Copy)]
pub struct EventReceived {
    /// The broker flagged it as redelivered.
    pub redelivered: bool,
}

impl EventReceived {
    /// Counts it.
    pub fn emit(self) {
        let m = metrics();
        m.events_received.inc();
        if self.redelivered {
            m.events_redelivered.inc();
        }
        tracing::debug!(redelivered = self.redelivered, "event received");
    }
}

/// Something that happened to an event, counted without labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFate {
    /// Decided by analysis.
    Decided,
    /// Sent to the dead-letter queue.
    DeadLettered,
    /// Returned to the queue.
    Requeued,
    /// Answered with its stored decision.
    Republished,
    /// Decided without asking any model (the policy found it trivial).
    ModelsSkipped,
}

impl EventFate {
    /// Counts it.
    pub fn emit(self) {
        let m = metrics();
        let counter = match self {
            EventFate::Decided => &m.events_decided,
            EventFate::DeadLettered => &m.events_dead_lettered,
            EventFate::Requeued => &m.events_requeued,
            EventFate::Republished => &m.decisions_republished,
            EventFate::ModelsSkipped => &m.model_calls_skipped,
        };
        counter.inc();
        tracing::debug!(fate = ?self, "event fate");
    }
}

/// A decision made by analysis was confirmed by the broker.
#[derive(Debug, Clone, Copy)]
pub struct DecisionPublished<'a> {
    /// `deploy`, `hold` or `block`.
    pub recommendation: &'a str,
    /// 0–100.
    pub risk_score: u8,
    /// Every model verdict came from the verdict cache.
    pub cached: bool,
    /// From the event's `produced_at` to the confirm; `None` when `produced_at`
    /// is unreadable or in the future (a producer's clock ahead of ours).
    pub since_produced: Option<Duration>,
}

impl DecisionPublished<'_> {
    /// Counts it and records its score and latency.
    pub fn emit(self) {
        let m = metrics();
        m.decisions
            .with_label_values(&[
                self.recommendation,
                if self.cached { "true" } else { "false" },
            ])
            .inc();
        m.decision_risk_score.observe(f64::from(self.risk_score));
        if let Some(latency) = self.since_produced {
            m.decision_duration.observe(latency.as_secs_f64());
        }
        tracing::debug!(
            recommendation = self.recommendation,
            risk_score = self.risk_score,
            cached = self.cached,
            "decision published"
        );
    }
}

/// The verdict cache was asked for an analysis' model verdicts.
#[derive(Debug, Clone, Copy)]
pub struct VerdictCacheLookup {
    /// Every model's verdict was there.
    pub hit: bool,
}

impl VerdictCacheLookup {
    /// Counts it.
    pub fn emit(self) {
        let result = if self.hit { "hit" } else { "miss" };
        metrics()
            .verdict_cache_lookups
            .with_label_values(&[result])
            .inc();
        tracing::debug!(result, "verdict cache lookup");
    }
}

/// A Redis operation failed (the caller went on without the store).
#[derive(Debug, Clone, Copy)]
pub struct RedisFailed;

impl RedisFailed {
    /// Counts it.
    pub fn emit(self) {
        metrics().redis_errors.inc();
    }
}

/// A broker operation failed.
#[derive(Debug, Clone, Copy)]
pub struct BrokerFailed {
    /// `publish`, `connect`, `settle`, …
    pub operation: &'static str,
}

impl BrokerFailed {
    /// Counts it.
    pub fn emit(self) {
        metrics()
            .broker_errors
            .with_label_values(&[self.operation])
            .inc();
    }
}

/// A lost broker connection was re-established.
#[derive(Debug, Clone, Copy)]
pub struct BrokerReconnected;

impl BrokerReconnected {
    /// Counts it.
    pub fn emit(self) {
        metrics().broker_reconnects.inc();
    }
}

/// Tokens of one analysis, by OpenTelemetry `gen_ai.token.type`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokens {
    /// `input`: uncached input tokens.
    pub input: u64,
    /// `output`.
    pub output: u64,
    /// `cache_read` (deploy-gate extension): input tokens read from the
    /// provider's prompt cache.
    pub cache_read: u64,
    /// `cache_write` (deploy-gate extension): input tokens written to it.
    pub cache_write: u64,
}

/// One model analysis ended (retries and a repair turn included).
#[derive(Debug, Clone, Copy)]
pub struct ModelCallFinished<'a> {
    /// `gen_ai.provider.name`: `anthropic`, `openai`.
    pub provider: &'a str,
    /// `gen_ai.request.model`: the model id as configured.
    pub model: &'a str,
    /// `None` on success, else the error type (`rate_limited`, `timeout`, …).
    pub error_type: Option<&'a str>,
    /// Wall time, retries and rate-limit waits included.
    pub duration: Duration,
    /// Tokens used (recorded on success only, as the conventions say).
    pub tokens: Tokens,
    /// What it cost, when the price is known.
    pub cost_usd: Option<f64>,
}

impl ModelCallFinished<'_> {
    /// Counts the call and records its duration, tokens and cost.
    pub fn emit(self) {
        let m = metrics();
        let outcome = self.error_type.unwrap_or("ok");
        m.model_calls
            .with_label_values(&[self.provider, self.model, outcome])
            .inc();
        m.operation_duration
            .with_label_values(&[
                OPERATION_CHAT,
                self.provider,
                self.model,
                self.error_type.unwrap_or(""),
            ])
            .observe(self.duration.as_secs_f64());
        if self.error_type.is_none() {
            let t = self.tokens;
            let types = [
                ("input", t.input, true),
                ("output", t.output, true),
                ("cache_read", t.cache_read, t.cache_read > 0),
                ("cache_write", t.cache_write, t.cache_write > 0),
            ];
            for (token_type, n, record) in types {
                if record {
                    // Token counts stay far below 2^53: exact as f64.
                    #[allow(clippy::cast_precision_loss)]
                    let n = n as f64;
                    m.token_usage
                        .with_label_values(&[OPERATION_CHAT, self.provider, self.model, token_type])
                        .observe(n);
                }
            }
        }
        if let Some(cost) = self.cost_usd.filter(|c| c.is_finite() && *c > 0.0) {
            m.model_cost
                .with_label_values(&[self.provider, self.model])
                .inc_by(cost);
        }
        tracing::debug!(
            provider = self.provider,
            model = self.model,
            outcome,
            duration_ms = u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
            "model call finished"
        );
    }
}

/// A model provider answered 429.
#[derive(Debug, Clone, Copy)]
pub struct ModelRateLimited<'a> {
    /// `gen_ai.provider.name`.
    pub provider: &'a str,
}

impl ModelRateLimited<'_> {
    /// Counts it.
    pub fn emit(self) {
        metrics()
            .model_rate_limited
            .with_label_values(&[self.provider])
            .inc();
        tracing::debug!(provider = self.provider, "model provider answered 429");
    }
}

/// A model request is sent again after a retryable failure.
#[derive(Debug, Clone, Copy)]
pub struct ModelRetried<'a> {
    /// `gen_ai.provider.name`.
    pub provider: &'a str,
}

impl ModelRetried<'_> {
    /// Counts it.
    pub fn emit(self) {
        metrics()
            .model_retries
            .with_label_values(&[self.provider])
            .inc();
    }
}

/// The fleet's shared rate-limit budget (Redis) cannot be reached: this process
/// keeps to its share of the provider's limits until it can. Emitted once per
/// outage and provider.
#[derive(Debug, Clone, Copy)]
pub struct FleetLimitUnavailable<'a> {
    /// `gen_ai.provider.name`.
    pub provider: &'a str,
    /// `provider/model`.
    pub scope: &'a str,
    /// The share of each limit kept to meanwhile.
    pub share: f64,
}

impl FleetLimitUnavailable<'_> {
    /// Logs a warning and counts the outage.
    pub fn emit(self) {
        metrics()
            .fleet_limit_outages
            .with_label_values(&[self.provider])
            .inc();
        tracing::warn!(
            provider = self.provider,
            scope = self.scope,
            share = self.share,
            "the fleet's rate-limit budget in Redis is unreachable: keeping to this worker's share of the limits until it is back"
        );
    }
}

/// The fleet's shared rate-limit budget is reachable again after an outage.
#[derive(Debug, Clone, Copy)]
pub struct FleetLimitRestored<'a> {
    /// `gen_ai.provider.name`.
    pub provider: &'a str,
    /// `provider/model`.
    pub scope: &'a str,
}

impl FleetLimitRestored<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::info!(
            provider = self.provider,
            scope = self.scope,
            "the fleet's rate-limit budget in Redis is back: sharing the limits again"
        );
    }
}

/// A model request waited for its provider's rate limiter.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitWaited<'a> {
    /// `gen_ai.provider.name`.
    pub provider: &'a str,
    /// How long.
    pub waited: Duration,
}

impl RateLimitWaited<'_> {
    /// Records it.
    pub fn emit(self) {
        metrics()
            .model_rate_limit_wait
            .with_label_values(&[self.provider])
            .observe(self.waited.as_secs_f64());
    }
}

/// What became of one notifier delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationResult {
    /// The target accepted it (2xx).
    Delivered,
    /// 5xx, timeout, connection error or refusal.
    Failed,
    /// The target answered 429.
    RateLimited,
    /// An attempt after an earlier one failed.
    Retried,
    /// Dead-lettered: malformed, unknown channel, refused, out of attempts.
    DeadLettered,
    /// A redelivery skipped because it was delivered already.
    DuplicateSkipped,
}

impl NotificationResult {
    /// Counts it.
    pub fn emit(self) {
        let result = match self {
            NotificationResult::Delivered => "delivered",
            NotificationResult::Failed => "failed",
            NotificationResult::RateLimited => "rate_limited",
            NotificationResult::Retried => "retried",
            NotificationResult::DeadLettered => "dead_lettered",
            NotificationResult::DuplicateSkipped => "duplicate_skipped",
        };
        metrics().notifications.with_label_values(&[result]).inc();
        tracing::debug!(result, "notification attempt");
    }
}

/// The worker combined the verdicts of an analysis into a decision.
#[derive(Debug, Clone, Copy)]
pub struct ConsensusReached {
    /// The model verdicts disagreed (recommendations, or scores too far apart).
    pub disagreed: bool,
    /// The rules analyzer's floor raised the score.
    pub floor_raised: bool,
}

impl ConsensusReached {
    /// Counts a disagreement and a floor raise.
    pub fn emit(self) {
        let m = metrics();
        if self.disagreed {
            m.consensus_disagreements.inc();
        }
        if self.floor_raised {
            m.rules_floor_raises.inc();
        }
        tracing::debug!(
            disagreed = self.disagreed,
            floor_raised = self.floor_raised,
            "consensus reached"
        );
    }
}

/// What became of a merge event a producer publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerEvent {
    /// Handed to the broker.
    Enqueued,
    /// Confirmed and routed by the broker.
    Confirmed,
    /// Not enqueued; `retryable` when trying again later may succeed.
    Failed {
        /// Broker unreachable or not confirming (true), or the event refused (false).
        retryable: bool,
    },
}

impl ProducerEvent {
    /// Counts it.
    pub fn emit(self) {
        let m = metrics();
        match self {
            ProducerEvent::Enqueued => m.producer_enqueued.inc(),
            ProducerEvent::Confirmed => m.producer_confirmed.inc(),
            ProducerEvent::Failed { retryable } => m
                .producer_failed
                .with_label_values(&[if retryable { "retryable" } else { "rejected" }])
                .inc(),
        }
    }
}

/// The webhook receiver answered a request.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The request path; anything but the receiver's routes counts as `other`.
    pub path: &'a str,
    /// The HTTP status answered.
    pub status: u16,
}

impl WebhookRequest<'_> {
    /// Counts it.
    pub fn emit(self) {
        let route = match self.path {
            "/github" => "github",
            "/events" => "events",
            "/healthz" => "healthz",
            _ => "other",
        };
        metrics()
            .webhook_requests
            .with_label_values(&[route, &self.status.to_string()])
            .inc();
    }
}

/// The broker reported a queue's backlog and consumers.
#[derive(Debug, Clone, Copy)]
pub struct QueueObserved<'a> {
    /// The queue's name.
    pub queue: &'a str,
    /// Messages ready for delivery.
    pub messages: u64,
    /// Consumers subscribed.
    pub consumers: u64,
}

impl QueueObserved<'_> {
    /// Records it.
    pub fn emit(self) {
        let m = metrics();
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        m.queue_messages
            .with_label_values(&[self.queue])
            .set(gauge(self.messages));
        m.queue_consumers
            .with_label_values(&[self.queue])
            .set(gauge(self.consumers));
    }
}

/// A canary was judged against its baseline.
#[derive(Debug, Clone, Copy)]
pub struct CanaryJudged<'a> {
    /// `promote`, `continue` or `rollback`.
    pub result: &'a str,
    /// The weighted score 0–100, when any metric had data.
    pub score: Option<f64>,
    /// The metrics source could not be reached: judged without data.
    pub metrics_unavailable: bool,
}

impl CanaryJudged<'_> {
    /// Counts it and records its score.
    pub fn emit(self) {
        let m = metrics();
        m.canary_judgements.with_label_values(&[self.result]).inc();
        if let Some(score) = self.score {
            m.canary_score.observe(score);
        }
        if self.metrics_unavailable {
            m.canary_metrics_unavailable.inc();
        }
        tracing::debug!(
            result = self.result,
            score = self.score,
            metrics_unavailable = self.metrics_unavailable,
            "canary judged"
        );
    }
}
