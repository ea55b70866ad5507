//! One delivery, from the queue to its ack: decode, look for a stored decision,
//! analyze (rules, then cached or fresh model verdicts), decide, store, publish,
//! and only then settle.

use std::{panic::AssertUnwindSafe, sync::Arc};

use futures_util::FutureExt;
use gate_bus::{
    Action, BusError, DeadLettered, Delivery, Insert, Publisher, Rejection, VerdictKey,
};
use gate_core::{
    Bands, ConsensusPolicy, Decision, DeployContext, MergeEvent, ModelOutcome, Notification,
    Policy, Severity, Usage, Verdict, NOTIFICATION_SCHEMA_VERSION, PROMPT_VERSION,
};
use gate_models::{Analyzer, Rules};
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::{
    locks::{KeyGuard, KeyedLocks},
    stats::{Counter, WorkerStats},
    stores::Stores,
    NotifyPolicy,
};

/// How long a redelivered event waits for Redis to say whether it was decided
/// before it is decided without the store.
const REDELIVERY_STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Version of the verdict cache key's layout: bump it when the parts change.
const VERDICT_KEY_LAYOUT: &str = "deploy-gate verdict key v2";

/// Everything the per-delivery tasks share, for the worker's whole life (across
/// reconnections).
pub(crate) struct Shared {
    pub(crate) analyzers: Vec<Box<dyn Analyzer>>,
    pub(crate) rules: Rules,
    pub(crate) bands: Bands,
    pub(crate) consensus: ConsensusPolicy,
    pub(crate) policy_version: String,
    /// Applied after the consensus; its version is part of every verdict key.
    pub(crate) policy: Policy,
    pub(crate) notify: NotifyPolicy,
    pub(crate) stores: Stores,
    pub(crate) stats: WorkerStats,
    /// One analysis per event id at a time in this process.
    pub(crate) event_locks: KeyedLocks,
    /// One model round per content at a time in this process.
    pub(crate) verdict_locks: KeyedLocks,
    /// The model ids, sorted, as JSON: part of every verdict key.
    pub(crate) model_set: String,
}

impl Shared {
    /// The sorted model set as one key part, so that the order of the providers in
    /// the config does not change the key.
    pub(crate) fn model_set(analyzers: &[Box<dyn Analyzer>]) -> String {
        let mut ids: Vec<String> = analyzers.iter().map(|a| a.id()).collect();
        ids.sort();
        serde_json::Value::from(ids).to_string()
    }
}

/// How a delivery ends.
#[derive(Debug)]
enum Outcome {
    /// The decision (and notifications) are confirmed: ack.
    Ack,
    /// Try again later: requeue (the delivery limit ends a message that never
    /// succeeds).
    Requeue(String),
    /// The message can never be handled: dead-letter it with the reason.
    DeadLetter(Rejection),
}

/// Handles one delivery to the end, holding `permit` (one unit of the worker's
/// concurrency) until it is settled. When `force` turns true (the shutdown
/// deadline passed), unfinished work is abandoned and the delivery requeued.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    publisher: Publisher,
    delivery: Delivery,
    permit: OwnedSemaphorePermit,
    mut force: watch::Receiver<bool>,
) {
    let stats = &shared.stats;
    stats.count(Counter::Received);
    if delivery.redelivered() {
        stats.count(Counter::Redelivered);
    }
    gate_telemetry::events::EventReceived {
        redelivered: delivery.redelivered(),
    }
    .emit();
    let outcome = match delivery.merge_event() {
        Err(rejection) => {
            tracing::warn!(
                message_id = delivery.message_id().unwrap_or("-"),
                reason = %rejection,
                "refusing a bad merge event: dead-lettering it"
            );
            Outcome::DeadLetter(rejection)
        }
        Ok(event) => {
            let traceparent = delivery.traceparent().map(str::to_owned);
            // The worker span: a child of the producer's, parent of the cache
            // lookup, the model calls, the consensus and the publish.
            let span = tracing::info_span!(
                "process",
                otel.name = "gate.merge-events process",
                otel.kind = "consumer",
                messaging.system = "rabbitmq",
                event_id = %event.event_id,
                repo = %event.context.repo,
                redelivered = delivery.redelivered(),
            );
            gate_telemetry::trace::continue_trace(&span, traceparent.as_deref());
            let work = AssertUnwindSafe(tracing::Instrument::instrument(
                decide_and_publish(
                    &shared,
                    &publisher,
                    &event,
                    delivery.redelivered(),
                    traceparent,
                ),
                span,
            ))
            .catch_unwind();
            tokio::select! {
                finished = work => finished.unwrap_or_else(|_| {
                    tracing::error!(event_id = %event.event_id, "processing the event panicked (a bug): requeueing it");
                    Outcome::Requeue("processing panicked".to_string())
                }),
                () = raised(&mut force) => {
                    Outcome::Requeue("the shutdown deadline passed".to_string())
                }
            }
        }
    };
    settle(&shared.stats, delivery, outcome).await;
    drop(permit);
}

/// Resolves once `flag` is true (or its sender is gone, which means the same: the
/// worker is going away).
pub(crate) async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}

async fn settle(stats: &WorkerStats, delivery: Delivery, outcome: Outcome) {
    let message_id = delivery.message_id().unwrap_or("-").to_string();
    let settled = match outcome {
        Outcome::Ack => delivery.ack().await,
        Outcome::Requeue(reason) => {
            stats.count(Counter::Requeued);
            tracing::info!(message_id = %message_id, reason = %reason, "requeueing the event");
            delivery.requeue().await
        }
        Outcome::DeadLetter(rejection) => match delivery.reject_to_dead_letter(&rejection).await {
            Ok(DeadLettered::WithReason) => {
                stats.count(Counter::DeadLettered);
                Ok(())
            }
            Ok(DeadLettered::WithoutReason(error)) => {
                stats.count(Counter::DeadLettered);
                tracing::warn!(
                    message_id = %message_id,
                    error = %error,
                    "dead-lettered without the reason header: the reason could not be published"
                );
                Ok(())
            }
            Err(error) => Err(error),
        },
    };
    if let Err(error) = settled {
        // The channel is gone: the broker redelivers the message, and the decision
        // store makes the redelivery cheap.
        tracing::warn!(message_id = %message_id, error = %error, "could not settle the delivery; the broker will redeliver it");
    }
}

/// Everything between a valid event and its ack.
async fn decide_and_publish(
    shared: &Shared,
    publisher: &Publisher,
    event: &MergeEvent,
    redelivered: bool,
    traceparent: Option<String>,
) -> Outcome {
    let _event_lock = shared.event_locks.lock(&event.event_id).await;
    // A redelivered event's stored decision is waited for (Redis may be back in a
    // moment); a fresh event's is read under its locks, in the round trip that
    // reads its cached verdicts.
    let stored = if redelivered {
        stored_decision_of_redelivery(shared, &event.event_id).await
    } else {
        None
    };
    let analysed = match stored {
        Some(stored) => Analysed::Stored(Box::new(stored)),
        None => {
            analyze(
                shared,
                event,
                (!redelivered).then_some(event.event_id.as_str()),
            )
            .await
        }
    };
    let (decision, to_cache) = match analysed {
        Analysed::Decided(decision, to_cache) => (*decision, to_cache),
        Analysed::Stored(stored) => {
            return republish(shared, publisher, event, &stored, traceparent).await
        }
    };
    shared.stats.count(Counter::Decided);
    // The fresh verdicts are cached in the decision's round trip, still under the
    // content lock, so an event with the same content waiting on it finds them.
    let verdicts: Vec<(&VerdictKey, &Verdict)> = to_cache
        .verdicts
        .iter()
        .map(|(key, verdict)| (key, verdict))
        .collect();
    let inserted = shared.stores.insert_caching(&decision, &verdicts).await;
    drop(to_cache);
    let decision = match inserted {
        Some(Insert::AlreadyDecided(first)) => {
            tracing::info!(event_id = %event.event_id, "another worker decided this event first: publishing its decision");
            *first
        }
        Some(Insert::Stored) | None => decision,
    };
    match publish(shared, publisher, &decision, traceparent).await {
        Ok(()) => {
            gate_telemetry::events::DecisionPublished {
                recommendation: decision.recommendation.as_str(),
                risk_score: decision.risk_score,
                cached: decision.cached,
                since_produced: since(&event.produced_at),
            }
            .emit();
            tracing::info!(
                event_id = %event.event_id,
                repo = %decision.repo,
                recommendation = %decision.recommendation,
                risk_score = decision.risk_score,
                cached = decision.cached,
                "decided"
            );
            Outcome::Ack
        }
        Err(error) => publish_failed(shared, &event.event_id, error),
    }
}

/// Publishes the decision already stored for `event` again (a redelivery, or the
/// same event enqueued twice): no analysis, the same answer.
async fn republish(
    shared: &Shared,
    publisher: &Publisher,
    event: &MergeEvent,
    stored: &Decision,
    traceparent: Option<String>,
) -> Outcome {
    tracing::info!(event_id = %event.event_id, "already decided: republishing the stored decision");
    match publish(shared, publisher, stored, traceparent).await {
        Ok(()) => {
            shared.stats.count(Counter::RepublishedFromStore);
            Outcome::Ack
        }
        Err(error) => publish_failed(shared, &event.event_id, error),
    }
}

/// The stored decision of a redelivered event, waiting up to
/// [`REDELIVERY_STORE_WAIT`] for a Redis that cannot say. A redelivery may follow
/// a decision that was stored and published before the ack was lost (a crash, a
/// cut connection): analysing it again without asking the store would publish a
/// second, different decision for the event. Past the wait the event is decided
/// without the store (Redis stays an optimisation); the shutdown deadline cuts the
/// wait short and requeues the event.
async fn stored_decision_of_redelivery(shared: &Shared, event_id: &str) -> Option<Decision> {
    let started = tokio::time::Instant::now();
    let mut waiting = false;
    loop {
        if let Some(known) = shared.stores.known_decision(event_id).await {
            if waiting {
                tracing::info!(
                    event_id,
                    "redis answered: going on with the redelivered event"
                );
            }
            return known;
        }
        if started.elapsed() >= REDELIVERY_STORE_WAIT {
            tracing::warn!(event_id, "redis still cannot say whether this redelivered event was decided: deciding it without the store");
            return None;
        }
        if !waiting {
            tracing::warn!(
                event_id,
                "redelivered event and redis cannot say whether it was decided: waiting for redis"
            );
            waiting = true;
        }
        tokio::time::sleep(shared.stores.retry_interval()).await;
    }
}

/// Time since an RFC 3339 `produced_at`; `None` when it cannot be read or lies in
/// the future.
fn since(produced_at: &str) -> Option<std::time::Duration> {
    let produced =
        time::OffsetDateTime::parse(produced_at, &time::format_description::well_known::Rfc3339)
            .ok()?;
    let elapsed = time::OffsetDateTime::now_utc() - produced;
    std::time::Duration::try_from(elapsed).ok()
}

fn publish_failed(shared: &Shared, event_id: &str, error: BusError) -> Outcome {
    shared.stats.count(Counter::PublishFailures);
    tracing::warn!(event_id = %event_id, error = %error, "publishing the decision failed");
    if error.action() == Action::DeadLetter {
        // Too large or an id AMQP cannot carry: no retry will ever publish it.
        Outcome::DeadLetter(Rejection::Failed {
            detail: format!("the decision cannot be published: {error}"),
        })
    } else {
        Outcome::Requeue(error.to_string())
    }
}

/// Fresh model verdicts to cache with the decision, and the content lock to hold
/// until they are.
#[derive(Default)]
struct ToCache<'a> {
    verdicts: Vec<(VerdictKey, Verdict)>,
    _content_lock: Option<KeyGuard<'a>>,
}

/// What [`analyze`] came to.
enum Analysed<'a> {
    /// The event already had a decision: publish it again.
    Stored(Box<Decision>),
    /// A new decision, with the fresh verdicts to cache beside it.
    Decided(Box<Decision>, ToCache<'a>),
}

/// The rules verdict, the model outcomes (cached or fresh, or none when the policy
/// finds the change trivial), the consensus and the policy; with the fresh
/// verdicts to cache. When `stored_of` names the event, its stored decision is
/// read first, in the verdict cache's round trip, and wins if there is one.
async fn analyze<'a>(
    shared: &'a Shared,
    event: &MergeEvent,
    stored_of: Option<&str>,
) -> Analysed<'a> {
    let context = &event.context;
    let rules = shared.rules.verdict(context);
    let plan = shared.policy.plan(
        context,
        &rules,
        shared.bands,
        &shared.consensus,
        shared.analyzers.len(),
    );
    let (outcomes, cached, to_cache) = if plan.skips_models() || shared.analyzers.is_empty() {
        if stored_of.is_some() {
            if let (Some(stored), _) = shared.stores.lookup(stored_of, &[]).await {
                return Analysed::Stored(Box::new(stored));
            }
        }
        if plan.skips_models() {
            shared.stats.count(Counter::ModelsSkipped);
        }
        (Vec::new(), false, ToCache::default())
    } else {
        match model_outcomes(shared, context, &rules, stored_of).await {
            ModelOutcomes::Stored(stored) => return Analysed::Stored(stored),
            ModelOutcomes::Found {
                outcomes,
                cached,
                to_cache,
            } => (outcomes, cached, to_cache),
        }
    };
    let decided_at = gate_core::rfc3339(time::OffsetDateTime::now_utc());
    let consensus_span = tracing::info_span!(
        "consensus",
        n_model_verdicts = tracing::field::Empty,
        agreed = tracing::field::Empty,
        floor_applied = tracing::field::Empty,
        risk_score = tracing::field::Empty,
    );
    let mut decision = consensus_span
        .in_scope(|| plan.decide(&event.event_id, context, &decided_at, rules, outcomes));
    decision.produced_at = Some(event.produced_at.clone());
    consensus_span.record("n_model_verdicts", decision.consensus.n_model_verdicts);
    consensus_span.record("agreed", decision.consensus.agreed);
    consensus_span.record("floor_applied", decision.consensus.floor_applied);
    consensus_span.record("risk_score", decision.risk_score);
    gate_telemetry::events::ConsensusReached {
        disagreed: !decision.consensus.agreed,
        floor_raised: decision.consensus.floor_applied,
    }
    .emit();
    if cached {
        decision.cached = true;
        decision.consensus.notes.push(
            "model verdicts reused from the verdict cache: no model was asked, nothing was spent"
                .to_string(),
        );
    }
    Analysed::Decided(Box::new(decision), to_cache)
}

/// What [`model_outcomes`] found.
enum ModelOutcomes<'a> {
    /// The event's stored decision (asked for, and there).
    Stored(Box<Decision>),
    /// The outcomes, whether they all came from the cache, and what to cache.
    Found {
        outcomes: Vec<ModelOutcome>,
        cached: bool,
        to_cache: ToCache<'a>,
    },
}

/// The models' outcomes for `context`: from the verdict cache when every model's
/// verdict is there (`true`), otherwise from asking them all (`false`). Verdicts
/// are cached only when every model answered: a failure is never cached, so the
/// next event with the same content asks again. Fresh verdicts come back to be
/// cached, with the content lock.
///
/// Under the content lock, one round trip reads every model's cached verdict and,
/// when `stored_of` names the event, its stored decision, which then wins.
async fn model_outcomes<'a>(
    shared: &'a Shared,
    context: &DeployContext,
    rules: &Verdict,
    stored_of: Option<&str>,
) -> ModelOutcomes<'a> {
    let parts = key_parts(
        &shared.model_set,
        &shared.policy_version,
        shared.policy.version(),
        &shared.bands,
        context,
    );
    let set_key = VerdictKey::from_parts(&parts);
    let content_lock = shared.verdict_locks.lock(set_key.as_str()).await;
    let keys: Vec<(String, VerdictKey)> = shared
        .analyzers
        .iter()
        .map(|analyzer| {
            let id = analyzer.id();
            let key =
                VerdictKey::from_parts(parts.iter().map(Vec::as_slice).chain([id.as_bytes()]));
            (id, key)
        })
        .collect();

    let lookup_span = tracing::info_span!(
        "verdict cache lookup",
        db.system.name = "redis",
        hit = tracing::field::Empty,
    );
    let key_refs: Vec<&VerdictKey> = keys.iter().map(|(_, key)| key).collect();
    let (stored, found) = tracing::Instrument::instrument(
        shared.stores.lookup(stored_of, &key_refs),
        lookup_span.clone(),
    )
    .await;
    if let Some(stored) = stored {
        return ModelOutcomes::Stored(Box::new(stored));
    }
    let cached: Vec<ModelOutcome> = keys
        .iter()
        .zip(found)
        .map_while(|((id, _), verdict)| {
            verdict.map(|verdict| ModelOutcome {
                analyzer: id.clone(),
                result: Ok(reused(verdict)),
            })
        })
        .collect();
    lookup_span.record("hit", cached.len() == keys.len());
    if cached.len() == keys.len() {
        shared.stats.count(Counter::CacheHits);
        return ModelOutcomes::Found {
            outcomes: cached,
            cached: true,
            to_cache: ToCache::default(),
        };
    }

    shared.stats.count(Counter::CacheMisses);
    let outcomes = gate_models::ask_all(&shared.analyzers, context, rules).await;
    let mut verdicts = Vec::new();
    if outcomes.iter().all(|outcome| outcome.result.is_ok()) {
        for ((_, key), outcome) in keys.into_iter().zip(&outcomes) {
            if let Ok(verdict) = &outcome.result {
                verdicts.push((key, verdict.clone()));
            }
        }
    }
    ModelOutcomes::Found {
        outcomes,
        cached: false,
        to_cache: ToCache {
            verdicts,
            _content_lock: Some(content_lock),
        },
    }
}

/// A cached verdict as this decision's: it cost nothing and took no time now, so
/// summing decisions' costs gives what was really spent.
fn reused(mut verdict: Verdict) -> Verdict {
    verdict.usage = Usage {
        cost_usd: Some(0.0),
        ..Usage::default()
    };
    verdict.latency_ms = 0;
    verdict
}

/// Everything that changes a model's answer for this content: the prompt and
/// rules versions (the rules findings are the models' hints), the model set, the
/// prompt and provider settings' version, `POLICY_VERSION` (a changed policy never
/// serves a verdict given under the old one), the bands, and the content the
/// prompt shows. Not the event id, the repository or the commit ids: the same
/// change elsewhere is the same risk.
fn key_parts(
    model_set: &str,
    policy_version: &str,
    policy: &str,
    bands: &Bands,
    context: &DeployContext,
) -> Vec<Vec<u8>> {
    let json = |value: serde_json::Result<String>| value.unwrap_or_default().into_bytes();
    let messages: Vec<&str> = context.commits.iter().map(|c| c.message.as_str()).collect();
    vec![
        VERDICT_KEY_LAYOUT.as_bytes().to_vec(),
        PROMPT_VERSION.as_bytes().to_vec(),
        gate_rules::RULES_VERSION.as_bytes().to_vec(),
        model_set.as_bytes().to_vec(),
        policy_version.as_bytes().to_vec(),
        policy.as_bytes().to_vec(),
        json(serde_json::to_string(bands)),
        context.packed_diff.as_bytes().to_vec(),
        json(serde_json::to_string(&context.files)),
        json(serde_json::to_string(&context.dep_changes)),
        json(serde_json::to_string(&context.secrets)),
        json(serde_json::to_string(&context.omitted)),
        json(serde_json::to_string(&messages)),
    ]
}

/// Publishes the decision, then one notification per channel when the decision
/// is at or above the notify threshold, each confirmed, all carrying the event's
/// trace context.
async fn publish(
    shared: &Shared,
    publisher: &Publisher,
    decision: &Decision,
    traceparent: Option<String>,
) -> Result<(), BusError> {
    let span = tracing::info_span!(
        "publish",
        otel.name = "gate.results publish",
        otel.kind = "producer",
        messaging.system = "rabbitmq",
        recommendation = %decision.recommendation,
    );
    // The decision and its notifications name the publish span as their parent;
    // without export they carry the event's own trace context on.
    let traceparent = gate_telemetry::trace::traceparent(&span).or(traceparent);
    tracing::Instrument::instrument(
        publish_traced(shared, publisher, decision, traceparent),
        span,
    )
    .await
}

async fn publish_traced(
    shared: &Shared,
    publisher: &Publisher,
    decision: &Decision,
    traceparent: Option<String>,
) -> Result<(), BusError> {
    publisher
        .publish_decision(decision, traceparent.clone())
        .await?;
    // The policy's thresholds per channel, when it has them; else [worker.notify].
    let channels = match shared.policy.notify_channels(decision.recommendation) {
        Some(channels) => channels,
        None if decision.recommendation < shared.notify.min_recommendation => Vec::new(),
        None => shared.notify.channels.clone(),
    };
    if channels.is_empty() {
        return Ok(());
    }
    let severity = decision
        .risks
        .iter()
        .map(|risk| risk.severity)
        .max()
        .unwrap_or(Severity::Info);
    for channel in &channels {
        let notification = Notification {
            schema_version: NOTIFICATION_SCHEMA_VERSION,
            event_id: decision.event_id.clone(),
            channel: channel.clone(),
            severity,
            decision: decision.clone(),
            canary: None,
        };
        publisher
            .publish_notification(
                channel,
                severity,
                &decision.event_id,
                &notification,
                traceparent.clone(),
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use gate_core::{ChangedFile, CommitInfo, FileClass, FileStatus};

    use super::*;

    fn context(diff: &str, sha: &str) -> DeployContext {
        DeployContext {
            repo: "acme/shop".into(),
            base: "a".repeat(40),
            head: sha.repeat(40),
            head_is_merge: false,
            root_commit: false,
            commits: vec![CommitInfo {
                sha: sha.repeat(40),
                author: "Dev".into(),
                message: "Change".into(),
                merge: false,
            }],
            n_commits: 1,
            files: vec![ChangedFile {
                path: "src/app.rs".into(),
                old_path: None,
                status: FileStatus::Modified,
                additions: 1,
                deletions: 0,
                binary: false,
                class: FileClass::Code,
            }],
            lines_added: 1,
            lines_removed: 0,
            packed_diff: diff.into(),
            budget_chars: 12_000,
            est_tokens: 1,
            omitted: vec![],
            n_omitted: 0,
            dep_changes: vec![],
            secrets: vec![],
        }
    }

    fn key(policy_version: &str, context: &DeployContext) -> VerdictKey {
        key_with(policy_version, &Policy::default(), context)
    }

    fn key_with(policy_version: &str, policy: &Policy, context: &DeployContext) -> VerdictKey {
        let parts = key_parts(
            r#"["anthropic/m"]"#,
            policy_version,
            policy.version(),
            &Bands::default(),
            context,
        );
        VerdictKey::from_parts(&parts)
    }

    #[test]
    fn the_same_diff_in_another_range_has_the_same_key_and_a_new_policy_does_not() {
        let here = context("+a\n", "b");
        let elsewhere = context("+a\n", "c");
        assert_eq!(key("p1", &here), key("p1", &elsewhere));
        assert_ne!(key("p1", &here), key("p2", &here));
        assert_ne!(key("p1", &here), key("p1", &context("+b\n", "b")));
        let stricter = Policy::parse("always_hold = [\"schema\"]\n", "policy.toml").unwrap();
        assert_ne!(key("p1", &here), key_with("p1", &stricter, &here));
    }

    #[test]
    fn a_reused_verdict_costs_nothing_now() {
        let verdict = Verdict {
            analyzer: "anthropic/m".into(),
            risk_score: 5,
            recommendation: gate_core::Recommendation::Deploy,
            summary: "fine".into(),
            risks: vec![],
            rollback_notes: vec![],
            latency_ms: 900,
            usage: Usage {
                input_tokens: 1_000,
                output_tokens: 100,
                cost_usd: Some(0.01),
                ..Usage::default()
            },
        };
        let reused = reused(verdict);
        assert_eq!(reused.usage.input_tokens, 0);
        assert_eq!(reused.usage.cost_usd, Some(0.0));
        assert_eq!(reused.latency_ms, 0);
    }
}
