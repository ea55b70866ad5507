//! `deploy-gate canary serve`: consume canary requests (`canary.request.<repo>` on
//! the events exchange, queued in `topology.canary_queue`), look up the deploy
//! decision, fetch the samples, judge, publish the decision
//! (`canary.<result>.<repo>` on the results exchange) and, on a rollback, one
//! notification per configured channel — each confirmed by the broker — and only
//! then ack the request.
//!
//! The shape is the worker's: an owned semaphore permit per delivery with
//! prefetch = concurrency; reconnect with backoff when the broker goes; on
//! shutdown stop consuming, let in-flight judgements finish for a grace period,
//! and leave the rest unacked (the broker requeues them).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gate_bus::{
    slug, Action, Bus, BusError, BusSettings, DeadLettered, DecisionStore, Delivery, Outgoing,
    Publisher, Redis, RedisSettings, Rejection,
};
use gate_core::{
    Band, CanaryNotice, Consensus, ContextSummary, Decision, Notification, Recommendation,
    Severity, Usage, DECISION_SCHEMA_VERSION, NOTIFICATION_SCHEMA_VERSION,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::decision::{CanaryDecision, CanaryResult};
use crate::judge::{judge, Evidence};
use crate::prometheus::{Prometheus, SourceError};
use crate::request::{CanaryRequest, RequestError, SeriesPair, Source};
use crate::settings::CanarySettings;

/// Message `type` of canary decisions.
pub const KIND_CANARY_DECISION: &str = "canary_decision";
/// Message `type` of canary requests.
pub const KIND_CANARY_REQUEST: &str = "canary_request";
/// Routing-key prefix of canary requests (events exchange) and decisions
/// (results exchange).
pub const CANARY_KEY_PREFIX: &str = "canary";

/// How long in-flight judgements may run after a shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Wait before giving a request back while Redis is unavailable, so an outage
/// does not spin the queue.
const STORE_RETRY_DELAY: Duration = Duration::from_secs(1);
const RECONNECT_INITIAL: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// Routing key of a canary request: `canary.request.<repo-slug>`.
pub fn request_routing_key(repo: &str) -> String {
    format!("{CANARY_KEY_PREFIX}.request.{}", slug(repo))
}

/// Routing key of a canary decision: `canary.<result>.<repo-slug>`, so an
/// orchestrator binds `canary.*.acme-shop` or `canary.rollback.#`.
pub fn decision_routing_key(result: CanaryResult, repo: &str) -> String {
    format!("{CANARY_KEY_PREFIX}.{}.{}", result.as_str(), slug(repo))
}

/// Publishes a canary request with confirms (what an orchestrator does).
pub async fn publish_request(
    publisher: &Publisher,
    settings: &BusSettings,
    request: &CanaryRequest,
) -> Result<(), BusError> {
    let message = Outgoing::json(KIND_CANARY_REQUEST, request.canary_id.as_str(), request)?;
    publisher
        .publish(
            &settings.topology.events_exchange,
            &request_routing_key(&request.repo),
            &message,
        )
        .await
}

/// Publishes a canary decision with confirms.
pub async fn publish_decision(
    publisher: &Publisher,
    settings: &BusSettings,
    decision: &CanaryDecision,
) -> Result<(), BusError> {
    let message = Outgoing::json(KIND_CANARY_DECISION, decision.canary_id.as_str(), decision)?;
    publisher
        .publish(
            &settings.topology.results_exchange,
            &decision_routing_key(decision.result, &decision.repo),
            &message,
        )
        .await
}

/// Where the service finds the broker and Redis (URLs are secrets, kept apart
/// from printable settings).
pub struct ServiceDeps {
    /// `amqp://…`.
    pub amqp_url: String,
    /// Topology and publishing.
    pub bus: BusSettings,
    /// `redis://…`.
    pub redis_url: String,
    /// Key prefix and timeouts of the decision store.
    pub redis: RedisSettings,
}

/// Why the service stopped with an error: something a person must fix.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Settings that cannot work.
    #[error("invalid canary settings: {0}")]
    InvalidSettings(String),
    /// The Redis settings cannot be used.
    #[error("cannot use the redis settings: {0}")]
    Redis(#[source] gate_bus::StoreError),
    /// The broker refused the service in a way retrying cannot fix.
    #[error("the broker refused the canary service: {0}")]
    Broker(#[source] BusError),
}

struct Shared {
    settings: CanarySettings,
    bus: BusSettings,
    store: DecisionStore,
}

/// Runs the canary service until `shutdown` resolves. See the module docs.
pub async fn run(
    settings: CanarySettings,
    deps: ServiceDeps,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    settings.validate().map_err(ServiceError::InvalidSettings)?;
    let redis = Redis::open(&deps.redis_url, deps.redis).map_err(ServiceError::Redis)?;
    let mut bus_settings = deps.bus;
    bus_settings.connect_attempts = 1;
    let shared = Arc::new(Shared {
        settings,
        bus: bus_settings.clone(),
        store: redis.decision_store(),
    });
    let semaphore = Arc::new(Semaphore::new(usize::from(shared.settings.concurrency)));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = RECONNECT_INITIAL;
    loop {
        let connected = tokio::select! {
            biased;
            () = shutdown.as_mut() => break,
            connected = Bus::connect(&deps.amqp_url, bus_settings.clone()) => connected,
        };
        let bus = match connected {
            Ok(bus) => bus,
            Err(error) if error.action() == Action::Fail => {
                return Err(ServiceError::Broker(error));
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot connect to the broker; retrying");
                tokio::select! {
                    biased;
                    () = shutdown.as_mut() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        backoff = RECONNECT_INITIAL;
        let ended = session(&bus, &shared, &semaphore, &mut tasks, shutdown.as_mut()).await;
        match ended {
            SessionEnd::Shutdown => {
                drain(&mut tasks).await;
                let _ = bus.close().await;
                return Ok(());
            }
            SessionEnd::Lost(reason) => {
                tracing::warn!(reason = %reason, "lost the broker: reconnecting; unacked requests will be redelivered");
                let _ = bus.close().await;
            }
            SessionEnd::Fatal(error) => {
                drain(&mut tasks).await;
                let _ = bus.close().await;
                return Err(ServiceError::Broker(error));
            }
        }
    }
    drain(&mut tasks).await;
    Ok(())
}

enum SessionEnd {
    Shutdown,
    Lost(String),
    Fatal(BusError),
}

async fn session(
    bus: &Bus,
    shared: &Arc<Shared>,
    semaphore: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> SessionEnd {
    let lost_or_fatal = |error: BusError| {
        if error.action() == Action::Fail {
            SessionEnd::Fatal(error)
        } else {
            SessionEnd::Lost(error.to_string())
        }
    };
    let queue = bus.settings().topology.canary_queue.clone();
    let publisher = match bus.publisher().await {
        Ok(publisher) => publisher,
        Err(error) => return lost_or_fatal(error),
    };
    let mut consumer = match bus.consume(&queue, shared.settings.concurrency).await {
        Ok(consumer) => consumer,
        Err(error) => return lost_or_fatal(error),
    };
    tracing::info!(queue = %queue, concurrency = shared.settings.concurrency, "consuming canary requests");
    let closed = bus.closed();
    tokio::pin!(closed);
    loop {
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            biased;
            () = shutdown.as_mut() => { let _ = consumer.cancel().await; return SessionEnd::Shutdown; }
            () = closed.as_mut() => return SessionEnd::Lost("the connection to the broker closed".to_string()),
            permit = Arc::clone(semaphore).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return SessionEnd::Lost("the semaphore closed".to_string()),
            },
        };
        let next = tokio::select! {
            biased;
            () = shutdown.as_mut() => { let _ = consumer.cancel().await; return SessionEnd::Shutdown; }
            () = closed.as_mut() => return SessionEnd::Lost("the connection to the broker closed".to_string()),
            next = consumer.next() => next,
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => return SessionEnd::Lost(error.to_string()),
            None => return SessionEnd::Lost(format!("the subscription to {queue} ended")),
        };
        let shared = Arc::clone(shared);
        let publisher = publisher.clone();
        tasks.spawn(async move {
            handle(&shared, &publisher, delivery).await;
            drop(permit);
        });
    }
}

/// Lets in-flight judgements finish for the grace period, then abandons the
/// rest (unacked: the broker requeues them when the connection closes).
async fn drain(tasks: &mut JoinSet<()>) {
    let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            n_left = tasks.len(),
            "shutdown deadline passed: abandoning in-flight canary requests to the broker"
        );
        tasks.shutdown().await;
    }
}

/// How one delivery ends.
enum Fate {
    Ack,
    Requeue(String),
    DeadLetter(Rejection),
}

async fn handle(shared: &Shared, publisher: &Publisher, delivery: Delivery) {
    let message_id = delivery.message_id().unwrap_or("-").to_string();
    let fate = match decode(delivery.payload(), shared.bus.max_payload_bytes) {
        Err(rejection) => {
            tracing::warn!(message_id = %message_id, reason = %rejection, "refusing a bad canary request: dead-lettering it");
            Fate::DeadLetter(rejection)
        }
        Ok(request) => process(shared, publisher, &request).await,
    };
    let settled = match fate {
        Fate::Ack => delivery.ack().await,
        Fate::Requeue(reason) => {
            tracing::info!(message_id = %message_id, reason = %reason, "requeueing the canary request");
            delivery.requeue().await
        }
        Fate::DeadLetter(rejection) => match delivery.reject_to_dead_letter(&rejection).await {
            Ok(DeadLettered::WithReason) => Ok(()),
            Ok(DeadLettered::WithoutReason(error)) => {
                tracing::warn!(message_id = %message_id, error = %error, "dead-lettered without the reason header");
                Ok(())
            }
            Err(error) => Err(error),
        },
    };
    if let Err(error) = settled {
        tracing::warn!(message_id = %message_id, error = %error, "could not settle the canary request; the broker will redeliver it");
    }
}

fn decode(payload: &[u8], limit: usize) -> Result<CanaryRequest, Rejection> {
    if payload.len() > limit {
        return Err(Rejection::Oversized {
            size: payload.len(),
            limit,
        });
    }
    CanaryRequest::from_json(payload).map_err(|error| match error {
        RequestError::UnknownVersion { found } => Rejection::UnknownVersion {
            found,
            supported: crate::request::CANARY_REQUEST_SCHEMA_VERSION,
        },
        other => Rejection::Malformed {
            detail: other.to_string(),
        },
    })
}

async fn process(shared: &Shared, publisher: &Publisher, request: &CanaryRequest) -> Fate {
    let deploy = match shared.store.get(&request.event_id).await {
        Ok(deploy) => deploy,
        Err(error) if error.is_outage() => {
            tokio::time::sleep(STORE_RETRY_DELAY).await;
            return Fate::Requeue(format!("the decision store is unavailable: {error}"));
        }
        Err(error) => {
            tracing::warn!(event_id = %request.event_id, error = %error, "cannot read the deploy decision; judging without it");
            None
        }
    };
    let (samples, notes) = match samples(shared, request).await {
        Ok(found) => found,
        Err(error) => {
            return Fate::DeadLetter(Rejection::Failed {
                detail: error.to_string(),
            })
        }
    };
    let judged_at = gate_core::rfc3339(time::OffsetDateTime::now_utc());
    let decision = judge(
        request,
        Evidence {
            samples: &samples,
            deploy: deploy.as_ref(),
            notes: &notes,
            judged_at: &judged_at,
        },
        &shared.settings,
    );
    match publish_all(shared, publisher, &decision, deploy.as_ref()).await {
        Ok(()) => {
            count_judgement(&decision, !notes.is_empty());
            tracing::info!(
                canary_id = %decision.canary_id,
                event_id = %decision.event_id,
                repo = %decision.repo,
                result = %decision.result,
                score = decision.score.unwrap_or(-1.0),
                "canary judged"
            );
            Fate::Ack
        }
        Err(error) if error.action() == Action::DeadLetter => Fate::DeadLetter(Rejection::Failed {
            detail: format!("the canary decision cannot be published: {error}"),
        }),
        Err(error) => Fate::Requeue(format!("publishing the canary decision failed: {error}")),
    }
}

/// The samples of every metric. A Prometheus outage is not an error: the judge
/// sees no data (a `continue`, or a rollback on the final judgement) with the
/// reason; a query Prometheus refuses is (the request must change).
async fn samples(
    shared: &Shared,
    request: &CanaryRequest,
) -> Result<(std::collections::BTreeMap<String, SeriesPair>, Vec<String>), SourceError> {
    match &request.source {
        Source::Inline { series } => Ok((series.clone(), Vec::new())),
        Source::Prometheus(source) => {
            let timeout = Duration::from_millis(shared.settings.prometheus_timeout_ms);
            let fetched = async {
                let client = Prometheus::new(&source.base_url, timeout)?;
                let end = window_end(source.end.as_deref());
                client
                    .fetch(source, &request.canary, &request.baseline, end)
                    .await
            }
            .await;
            match fetched {
                Ok(samples) => Ok((samples, Vec::new())),
                Err(error) if error.is_transient() => {
                    tracing::warn!(canary_id = %request.canary_id, error = %error, "metrics unavailable");
                    Ok((
                        Default::default(),
                        vec![format!("metrics unavailable: {error}")],
                    ))
                }
                Err(error) => Err(error),
            }
        }
    }
}

/// Counts a judgement for the metrics (`deploy_gate_canary_*`): the service once
/// it is published, the CLI once it is made. `metrics_unavailable`: the source
/// could not be reached, so it was judged without data.
pub fn count_judgement(decision: &CanaryDecision, metrics_unavailable: bool) {
    gate_telemetry::events::CanaryJudged {
        result: decision.result.as_str(),
        score: decision.score,
        metrics_unavailable,
    }
    .emit();
}

/// The end of a Prometheus window: the request's `end`, else now (Unix seconds).
pub fn window_end(end: Option<&str>) -> f64 {
    let at = end
        .and_then(|end| {
            time::OffsetDateTime::parse(end, &time::format_description::well_known::Rfc3339).ok()
        })
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    at.unix_timestamp_nanos() as f64 / 1e9
}

async fn publish_all(
    shared: &Shared,
    publisher: &Publisher,
    decision: &CanaryDecision,
    deploy: Option<&Decision>,
) -> Result<(), BusError> {
    publish_decision(publisher, &shared.bus, decision).await?;
    if decision.result != CanaryResult::Rollback {
        return Ok(());
    }
    for channel in &shared.settings.notify_channels {
        let notification = rollback_notification(decision, deploy, channel);
        publisher
            .publish_notification(
                channel,
                notification.severity,
                &notification.event_id,
                &notification,
                None,
            )
            .await?;
    }
    Ok(())
}

/// The notification of a rollback: the deploy decision (whose rollback plan it
/// carries) with a [`CanaryNotice`] the notifier leads with, under its own id
/// `<event_id>:canary:<canary_id>` so the notifier does not take it for a repeat of
/// the deploy decision's notification.
pub fn rollback_notification(
    decision: &CanaryDecision,
    deploy: Option<&Decision>,
    channel: &str,
) -> Notification {
    let id = format!("{}:canary:{}", decision.event_id, decision.canary_id);
    let critical = decision
        .metrics
        .iter()
        .any(|m| m.critical && m.classification.failed());
    let severity = if critical {
        Severity::Critical
    } else {
        Severity::High
    };
    let mut summary = decision.summary.trim().to_string();
    if let Some(reason) = decision.reasons.first() {
        summary = format!("{summary} Reason: {reason}.");
    }
    let failed = decision
        .metrics
        .iter()
        .filter(|m| m.classification.failed())
        .map(|m| {
            let change = m.change.map_or_else(
                || "from zero".to_string(),
                |c| format!("{:+.1} %", c * 100.0),
            );
            format!(
                "{}{}: {}, {change}",
                m.name,
                if m.critical { " (critical)" } else { "" },
                m.classification.as_str()
            )
        })
        .collect();
    let canary = CanaryNotice {
        result: decision.result.as_str().to_string(),
        canary: decision.canary.name.clone(),
        baseline: decision.baseline.name.clone(),
        score: decision.score,
        summary,
        failed,
    };
    let carried = match deploy {
        Some(deploy) => deploy.clone(),
        None => Decision {
            schema_version: DECISION_SCHEMA_VERSION,
            event_id: decision.event_id.clone(),
            repo: decision.repo.clone(),
            base: "unknown".to_string(),
            head: "unknown".to_string(),
            risk_score: 100,
            band: Band::Block,
            recommendation: Recommendation::Block,
            summary: String::new(),
            risks: Vec::new(),
            rollback_notes: vec![format!(
                "no deploy decision is stored for event {}: roll back with your deploy tool",
                decision.event_id
            )],
            verdicts: Vec::new(),
            consensus: Consensus {
                mode: "canary".to_string(),
                quorum: 0,
                n_model_verdicts: 0,
                agreed: true,
                floor_applied: false,
                notes: Vec::new(),
            },
            usage: Usage::default(),
            cost_usd: Some(0.0),
            cached: false,
            decided_at: decision.judged_at.clone(),
            produced_at: None,
            context: ContextSummary {
                n_files: 0,
                n_commits: 0,
                lines_added: 0,
                lines_removed: 0,
                packed_chars: 0,
                n_omitted: 0,
                omitted: Vec::new(),
            },
            approval: None,
        },
    };
    Notification {
        schema_version: NOTIFICATION_SCHEMA_VERSION,
        event_id: id,
        channel: channel.to_string(),
        severity,
        decision: carried,
        canary: Some(canary),
    }
}
