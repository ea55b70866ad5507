//! The process-wide registry: every metric deploy-gate exports, created once.
//!
//! Process-wide on purpose (like vector's internal events): a 429 is seen deep in
//! a model provider's transport, a delivery in the worker, and neither should
//! thread a registry through its constructors to count it.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};

/// OpenTelemetry's advised buckets for `gen_ai.client.token.usage`.
const TOKEN_BUCKETS: &[f64] = &[
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];
/// OpenTelemetry's advised buckets for `gen_ai.client.operation.duration`.
const MODEL_SECONDS_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// From a cached answer (tens of ms) to a slow model round with retries.
const DECISION_SECONDS_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// The default band edges (25, 50, 75) are bucket bounds.
const RISK_BUCKETS: &[f64] = &[10.0, 25.0, 40.0, 50.0, 60.0, 75.0, 90.0, 100.0];
/// Time spent waiting for a provider's rate limiter.
const WAIT_SECONDS_BUCKETS: &[f64] = &[0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0];

/// The gen_ai attributes of a model call, in Prometheus spelling.
const GEN_AI: &[&str] = &[
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
];

pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) events_received: IntCounter,
    pub(crate) events_redelivered: IntCounter,
    pub(crate) events_decided: IntCounter,
    pub(crate) events_dead_lettered: IntCounter,
    pub(crate) events_requeued: IntCounter,
    pub(crate) decisions: IntCounterVec,
    pub(crate) decisions_republished: IntCounter,
    pub(crate) decision_risk_score: Histogram,
    pub(crate) decision_duration: Histogram,
    pub(crate) verdict_cache_lookups: IntCounterVec,
    pub(crate) model_calls_skipped: IntCounter,
    pub(crate) redis_errors: IntCounter,
    pub(crate) broker_errors: IntCounterVec,
    pub(crate) broker_reconnects: IntCounter,
    pub(crate) model_calls: IntCounterVec,
    pub(crate) token_usage: HistogramVec,
    pub(crate) operation_duration: HistogramVec,
    pub(crate) model_cost: prometheus::CounterVec,
    pub(crate) model_rate_limited: IntCounterVec,
    pub(crate) model_retries: IntCounterVec,
    pub(crate) model_rate_limit_wait: HistogramVec,
    pub(crate) fleet_limit_outages: IntCounterVec,
    pub(crate) notifications: IntCounterVec,
    pub(crate) consensus_disagreements: IntCounter,
    pub(crate) rules_floor_raises: IntCounter,
    pub(crate) producer_enqueued: IntCounter,
    pub(crate) producer_confirmed: IntCounter,
    pub(crate) producer_failed: IntCounterVec,
    pub(crate) webhook_requests: IntCounterVec,
    pub(crate) queue_messages: prometheus::IntGaugeVec,
    pub(crate) queue_consumers: prometheus::IntGaugeVec,
    pub(crate) canary_judgements: IntCounterVec,
    pub(crate) canary_score: Histogram,
    pub(crate) canary_metrics_unavailable: IntCounter,
}

/// The registry, created on first use.
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let metrics = Metrics::new();
        metrics.touch_closed_label_sets();
        metrics
    })
}

/// The registry's current values, for the OTLP push.
pub(crate) fn gather() -> Vec<prometheus::proto::MetricFamily> {
    metrics().registry.gather()
}

/// Everything counted so far in this process, in the Prometheus text exposition
/// format 0.0.4 (served with [`CONTENT_TYPE`](crate::CONTENT_TYPE)).
pub fn render() -> String {
    let families = metrics().registry.gather();
    let mut buffer = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&families, &mut buffer) {
        tracing::warn!(error = %error, "cannot encode the metrics");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

impl Metrics {
    /// Series whose label values are a closed set start at 0, as Prometheus
    /// advises: `rate()` and `increase()` see the first one, and every name a
    /// dashboard queries is served from the start.
    fn touch_closed_label_sets(&self) {
        for result in ["hit", "miss"] {
            self.verdict_cache_lookups.with_label_values(&[result]);
        }
        self.broker_errors.with_label_values(&["publish"]);
        for result in [
            "delivered",
            "failed",
            "rate_limited",
            "retried",
            "dead_lettered",
            "duplicate_skipped",
        ] {
            self.notifications.with_label_values(&[result]);
        }
        for reason in ["retryable", "rejected"] {
            self.producer_failed.with_label_values(&[reason]);
        }
        for result in ["promote", "continue", "rollback"] {
            self.canary_judgements.with_label_values(&[result]);
        }
    }

    fn new() -> Metrics {
        let registry = Registry::new();
        let reg = Registrar(&registry);
        Metrics {
            events_received: reg.counter(
                "deploy_gate_events_received_total",
                "Merge-event deliveries taken from the events queue, bad ones included.",
            ),
            events_redelivered: reg.counter(
                "deploy_gate_events_redelivered_total",
                "Deliveries the broker flagged as redelivered.",
            ),
            events_decided: reg.counter(
                "deploy_gate_events_decided_total",
                "Events decided by analysis (not republished from the decision store).",
            ),
            events_dead_lettered: reg.counter(
                "deploy_gate_events_dead_lettered_total",
                "Deliveries sent to the dead-letter queue (bad input, or a decision that can never be published).",
            ),
            events_requeued: reg.counter(
                "deploy_gate_events_requeued_total",
                "Deliveries returned to the queue (failed publish, shutdown deadline, caught bug).",
            ),
            decisions: reg.counter_vec(
                "deploy_gate_decisions_total",
                "Decisions made by analysis and confirmed by the broker, by recommendation and by whether every model verdict came from the verdict cache.",
                &["recommendation", "cached"],
            ),
            decisions_republished: reg.counter(
                "deploy_gate_decisions_republished_total",
                "Redelivered events answered with their stored decision, at no analysis cost.",
            ),
            decision_risk_score: reg.histogram(
                "deploy_gate_decision_risk_score",
                "Risk score (0-100) of the decisions published.",
                RISK_BUCKETS,
            ),
            decision_duration: reg.histogram(
                "deploy_gate_decision_duration_seconds",
                "End to end: from the event's produced_at to the broker's confirm of its decision.",
                DECISION_SECONDS_BUCKETS,
            ),
            verdict_cache_lookups: reg.counter_vec(
                "deploy_gate_verdict_cache_lookups_total",
                "Verdict cache lookups for analyses that need models: result hit (every model's verdict cached) or miss.",
                &["result"],
            ),
            model_calls_skipped: reg.counter(
                "deploy_gate_model_calls_skipped_total",
                "Decisions made without asking any model: the policy found the change trivial.",
            ),
            redis_errors: reg.counter(
                "deploy_gate_redis_errors_total",
                "Failed Redis operations; the process went on without the store each time.",
            ),
            broker_errors: reg.counter_vec(
                "deploy_gate_broker_errors_total",
                "Failed broker operations, by operation.",
                &["operation"],
            ),
            broker_reconnects: reg.counter(
                "deploy_gate_broker_reconnects_total",
                "Broker connections re-established after one was lost.",
            ),
            model_calls: reg.counter_vec(
                "deploy_gate_model_calls_total",
                "Model analyses (retries and a repair turn included in one), by provider, model and outcome (ok, or the error type).",
                &["gen_ai_provider_name", "gen_ai_request_model", "outcome"],
            ),
            token_usage: reg.histogram_vec(
                "gen_ai_client_token_usage",
                "OpenTelemetry gen_ai.client.token.usage: tokens per analysis by gen_ai.token.type (input, output; cache_read and cache_write are deploy-gate extensions).",
                &[GEN_AI, &["gen_ai_token_type"]].concat(),
                TOKEN_BUCKETS,
            ),
            operation_duration: reg.histogram_vec(
                "gen_ai_client_operation_duration_seconds",
                "OpenTelemetry gen_ai.client.operation.duration: wall time of an analysis, retries and rate-limit waits included; error_type is empty on success.",
                &[GEN_AI, &["error_type"]].concat(),
                MODEL_SECONDS_BUCKETS,
            ),
            model_cost: reg.float_counter_vec(
                "deploy_gate_model_cost_usd_total",
                "What the model calls cost, in US dollars, by the configured price table.",
                &["gen_ai_provider_name", "gen_ai_request_model"],
            ),
            model_rate_limited: reg.counter_vec(
                "deploy_gate_model_rate_limited_total",
                "HTTP 429 answers received from a model provider (each attempt counts).",
                &["gen_ai_provider_name"],
            ),
            model_retries: reg.counter_vec(
                "deploy_gate_model_retries_total",
                "Model requests sent again after a retryable failure.",
                &["gen_ai_provider_name"],
            ),
            model_rate_limit_wait: reg.histogram_vec(
                "deploy_gate_model_rate_limit_wait_seconds",
                "Time a model request waited for its provider's rate limiter (token and request budgets, 429 pauses).",
                &["gen_ai_provider_name"],
                WAIT_SECONDS_BUCKETS,
            ),
            fleet_limit_outages: reg.counter_vec(
                "deploy_gate_fleet_rate_limit_outages_total",
                "Times the fleet's shared rate-limit budget in Redis became unreachable and this process fell back to its share of a provider's limits.",
                &["gen_ai_provider_name"],
            ),
            notifications: reg.counter_vec(
                "deploy_gate_notifications_total",
                "Notifier delivery attempts by result: delivered, failed, rate_limited (429), retried, dead_lettered, duplicate_skipped.",
                &["result"],
            ),
            consensus_disagreements: reg.counter(
                "deploy_gate_consensus_disagreements_total",
                "Decisions whose model verdicts disagreed (different recommendations, or scores further apart than consensus.max_spread).",
            ),
            rules_floor_raises: reg.counter(
                "deploy_gate_rules_floor_raises_total",
                "Decisions whose score the rules analyzer's floor raised above what the models said.",
            ),
            producer_enqueued: reg.counter(
                "deploy_gate_producer_events_enqueued_total",
                "Merge events a producer (enqueue, the webhook, the library) handed to the broker.",
            ),
            producer_confirmed: reg.counter(
                "deploy_gate_producer_events_confirmed_total",
                "Merge events the broker confirmed and routed.",
            ),
            producer_failed: reg.counter_vec(
                "deploy_gate_producer_events_failed_total",
                "Merge events not enqueued, by reason: retryable (broker unreachable, not confirmed) or rejected (oversized, unroutable).",
                &["reason"],
            ),
            webhook_requests: reg.counter_vec(
                "deploy_gate_webhook_requests_total",
                "Requests to the webhook receiver, by route (github, events, healthz, other) and HTTP status answered.",
                &["route", "status"],
            ),
            queue_messages: reg.gauge_vec(
                "deploy_gate_queue_messages",
                "Messages ready in a queue, as the broker last reported them to this worker.",
                &["queue"],
            ),
            queue_consumers: reg.gauge_vec(
                "deploy_gate_queue_consumers",
                "Consumers of a queue, as the broker last reported them to this worker.",
                &["queue"],
            ),
            canary_judgements: reg.counter_vec(
                "deploy_gate_canary_judgements_total",
                "Canary judgements made (canary serve: published), by result: promote, continue or rollback.",
                &["result"],
            ),
            canary_score: reg.histogram(
                "deploy_gate_canary_score",
                "Weighted score (0-100) of the canary judgements that had one.",
                RISK_BUCKETS,
            ),
            canary_metrics_unavailable: reg.counter(
                "deploy_gate_canary_metrics_unavailable_total",
                "Canary judgements made without metrics because the Prometheus source could not be reached.",
            ),
            registry,
        }
    }
}

/// Creates and registers metrics. The names are constants of this file, so a
/// failure is a bug caught by the first test that renders.
struct Registrar<'a>(&'a Registry);

impl Registrar<'_> {
    fn register<M: prometheus::core::Collector + Clone + 'static>(&self, metric: M) -> M {
        if let Err(error) = self.0.register(Box::new(metric.clone())) {
            tracing::error!(error = %error, "a metric could not be registered (a bug)");
        }
        metric
    }

    #[allow(clippy::expect_used)]
    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.register(IntCounter::new(name, help).expect("a valid metric name"))
    }

    #[allow(clippy::expect_used)]
    fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.register(IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric"))
    }

    #[allow(clippy::expect_used)]
    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::IntGaugeVec {
        self.register(
            prometheus::IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric"),
        )
    }

    #[allow(clippy::expect_used)]
    fn float_counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::CounterVec {
        self.register(
            prometheus::CounterVec::new(Opts::new(name, help), labels).expect("a valid metric"),
        )
    }

    #[allow(clippy::expect_used)]
    fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.register(Histogram::with_opts(opts).expect("a valid metric"))
    }

    #[allow(clippy::expect_used)]
    fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.register(HistogramVec::new(opts, labels).expect("a valid metric"))
    }
}
