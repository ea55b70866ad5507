//! Waiting for the decision of one merge, without a race between looking for it
//! and listening for it.
//!
//! Order of one attempt:
//!
//! 1. **bind** — connect and declare a private queue (exclusive: RabbitMQ deletes
//!    it with the connection) bound to the results exchange, and start consuming
//!    it. From here on every decision published reaches the queue.
//! 2. **look** — ask the decision store (by event id, or through the head index).
//!    A decision published before step 1 was stored before it was published (the
//!    worker stores, then publishes), so it is found here.
//! 3. **replay** — when the store cannot answer (none configured, Redis down) or,
//!    by default, has nothing, also read the `gate.decisions.log` stream from
//!    `replay_lookback_secs` ago: a decision published before step 1 by a worker
//!    that could not store it is still in the log.
//! 4. **wait** — take the first matching decision from the queue or the replay.
//!
//! If the connection is lost, the attempt starts over from step 1 until the
//! deadline; while the broker is unreachable the store alone is asked.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gate_bus::{slug, Action, Bus, BusError, Consumer, Delivery, StreamOffset};
use gate_core::Decision;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::{
    deps::{close_quietly, OrchestratorDeps},
    WaitError,
};

/// How long the replay must stay quiet after it found a decision before that
/// decision is taken: a person's decision later in the log supersedes the
/// automatic one, so the replay reads on until it has caught up.
const REPLAY_SETTLE: Duration = Duration::from_millis(250);

/// Which decision to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitTarget {
    /// The decision for this event id (what `deploy-gate enqueue` printed). The
    /// repository is unknown, so the private queue is bound to `decision.#` and
    /// filtered by message id: every decision of the fleet passes through it
    /// while the wait lasts.
    Event(String),
    /// The decision for the newest event of this repository whose head commit is
    /// `sha` (the full sha, compared without case; the repository too). The queue
    /// is bound to `decision.*.<repo-slug>` only.
    Head {
        /// Repository name, as in the merge event (`acme/shop`).
        repo: String,
        /// Full head commit sha.
        sha: String,
    },
}

impl WaitTarget {
    fn validate(&self) -> Result<(), WaitError> {
        let empty = |what: &str| WaitError::InvalidTarget(format!("the {what} is empty"));
        match self {
            WaitTarget::Event(id) if id.trim().is_empty() => Err(empty("event id")),
            WaitTarget::Head { repo, .. } if repo.trim().is_empty() => Err(empty("repository")),
            WaitTarget::Head { sha, .. } if sha.trim().is_empty() => Err(empty("sha")),
            _ => Ok(()),
        }
    }

    /// Binding keys on the results exchange (`decision.<rec>.<repo-slug>`).
    fn binding_keys(&self) -> Vec<String> {
        match self {
            WaitTarget::Event(_) => vec!["decision.#".to_string()],
            WaitTarget::Head { repo, .. } => vec![format!("decision.*.{}", slug(repo))],
        }
    }

    /// Whether a message with this id can be the decision, before decoding it.
    fn may_match(&self, message_id: Option<&str>) -> bool {
        match (self, message_id) {
            (WaitTarget::Event(id), Some(message_id)) => message_id == id,
            _ => true,
        }
    }

    pub(crate) fn matches(&self, decision: &Decision) -> bool {
        match self {
            WaitTarget::Event(id) => decision.event_id == *id,
            WaitTarget::Head { repo, sha } => {
                decision.repo.eq_ignore_ascii_case(repo) && decision.head.eq_ignore_ascii_case(sha)
            }
        }
    }
}

/// Waits until the decision for `target` exists and returns it, for at most
/// `timeout` (connecting included).
///
/// Race-free: the queue is bound before the store is asked (see the module
/// documentation), so a decision published before `wait` started is found in the
/// store — or, without a store, in the decisions log — and one published after is
/// received.
///
/// The answer is the decision *at the time*: if the automatic decision is found
/// first, it is returned even if a person supersedes it a moment later (the
/// orchestrator asked and got the answer of that moment; a later `wait` returns
/// the person's decision from the store). A person's decision found in the store
/// or together with the automatic one in the log is preferred to the automatic
/// one.
///
/// Every error means "no decision" ([`WaitError::Timeout`] when nothing came,
/// [`WaitError::Bus`] when the broker refused us or was unreachable at the
/// deadline); never treat one as permission to deploy. Dropping the future is
/// safe: the connection and its private queue go with it.
pub async fn wait(
    deps: &OrchestratorDeps,
    target: WaitTarget,
    timeout: Duration,
) -> Result<Decision, WaitError> {
    target.validate()?;
    let deadline = Instant::now() + timeout;
    let mut progress = Progress::default();
    let outcome =
        tokio::time::timeout_at(deadline, wait_until_decided(deps, &target, &mut progress)).await;
    match outcome {
        Ok(result) => result,
        // The replay may have found a decision and been waiting for it to settle.
        Err(_) => match (progress.candidate, progress.broker_down) {
            (Some(decision), _) => Ok(decision),
            (None, Some(error)) => Err(WaitError::Bus(error)),
            (None, None) => Err(WaitError::Timeout { after: timeout }),
        },
    }
}

/// What a wait learned so far, kept outside the future the deadline cancels.
#[derive(Default)]
struct Progress {
    /// The latest failure to reach the broker, while it lasts.
    broker_down: Option<BusError>,
    /// A decision the replay found, kept while the replay catches up.
    candidate: Option<Decision>,
}

/// Why one attempt ended without a decision.
enum Interrupted {
    /// The broker failed or could not be reached.
    Bus(BusError),
    /// The connection or a consumer ended; connect again.
    Lost(&'static str),
}

impl From<BusError> for Interrupted {
    fn from(error: BusError) -> Self {
        Interrupted::Bus(error)
    }
}

async fn wait_until_decided(
    deps: &OrchestratorDeps,
    target: &WaitTarget,
    progress: &mut Progress,
) -> Result<Decision, WaitError> {
    let mut n_failures = 0u32;
    loop {
        match attempt(deps, target, progress).await {
            Ok(decision) => return Ok(decision),
            Err(Interrupted::Bus(error)) if error.action() == Action::Fail => {
                return Err(WaitError::Bus(error))
            }
            Err(Interrupted::Bus(error)) => {
                warn!(%error, "cannot wait on the broker; asking the store, then connecting again");
                progress.broker_down = Some(error);
            }
            Err(Interrupted::Lost(what)) => {
                warn!(
                    what,
                    "lost the subscription while waiting; connecting again"
                );
            }
        }
        // While the broker is away, the store may still have the answer.
        if let StoreLook::Hit(decision) = look_in_store(deps, target).await {
            return Ok(*decision);
        }
        n_failures = n_failures.saturating_add(1);
        tokio::time::sleep(deps.backoff(n_failures)).await;
    }
}

/// One connection: bind, look, replay, wait.
async fn attempt(
    deps: &OrchestratorDeps,
    target: &WaitTarget,
    progress: &mut Progress,
) -> Result<Decision, Interrupted> {
    let bus = deps.connect_once().await?;
    let result = attempt_on(deps, target, progress, &bus).await;
    close_quietly(&bus).await;
    result
}

async fn attempt_on(
    deps: &OrchestratorDeps,
    target: &WaitTarget,
    progress: &mut Progress,
    bus: &Bus,
) -> Result<Decision, Interrupted> {
    let settings = deps.settings();
    let queue = bus.private_results_queue(&target.binding_keys()).await?;
    let mut live = bus.consume(&queue, settings.prefetch).await?;
    progress.broker_down = None;

    // Bound: every decision published from now on reaches `live`.
    let replay_since = match look_in_store(deps, target).await {
        StoreLook::Hit(decision) => return Ok(prefer(progress.candidate.take(), *decision)),
        StoreLook::Miss if !settings.replay_on_store_miss => None,
        StoreLook::Miss | StoreLook::Unavailable => replay_since(settings.replay_lookback_secs),
    };
    let mut replay = match replay_since {
        None => None,
        Some(since) => {
            let log = &deps.bus_settings().topology.decisions_log;
            match bus
                .consume_stream(log, settings.prefetch, StreamOffset::Since(since))
                .await
            {
                Ok(consumer) => Some(consumer),
                Err(error) if !bus.is_connected() => return Err(error.into()),
                Err(error) => {
                    warn!(%error, "cannot replay the decisions log; waiting on the queue only");
                    None
                }
            }
        }
    };

    let closed = bus.closed();
    tokio::pin!(closed);
    let mut settle_at: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            item = live.next() => {
                let delivery = match item {
                    Some(Ok(delivery)) => delivery,
                    Some(Err(error)) => return Err(error.into()),
                    None => return Err(Interrupted::Lost("the private queue's consumer ended")),
                };
                if let Some(decision) = take_if_matching(target, delivery).await? {
                    return Ok(prefer(progress.candidate.take(), decision));
                }
            }
            item = next_or_never(&mut replay) => match item {
                Some(Ok(delivery)) => {
                    if let Some(decision) = take_if_matching(target, delivery).await? {
                        progress.candidate = Some(prefer(progress.candidate.take(), decision));
                    }
                    if progress.candidate.is_some() {
                        settle_at = Some(Instant::now() + REPLAY_SETTLE);
                    }
                }
                Some(Err(error)) => {
                    warn!(%error, "the replay of the decisions log failed; waiting on the queue only");
                    replay = None;
                    if let Some(decision) = progress.candidate.take() {
                        return Ok(decision);
                    }
                }
                None => {
                    replay = None;
                    if let Some(decision) = progress.candidate.take() {
                        return Ok(decision);
                    }
                }
            },
            () = sleep_until_or_never(settle_at) => {
                settle_at = None;
                if let Some(decision) = progress.candidate.take() {
                    return Ok(decision);
                }
            }
            () = &mut closed => return Err(Interrupted::Lost("the connection closed")),
        }
    }
}

/// What the decision store said.
enum StoreLook {
    Hit(Box<Decision>),
    Miss,
    /// No store configured, or it failed: it cannot tell whether a decision exists.
    Unavailable,
}

async fn look_in_store(deps: &OrchestratorDeps, target: &WaitTarget) -> StoreLook {
    let Some(store) = deps.decision_store() else {
        return StoreLook::Unavailable;
    };
    let found = match target {
        WaitTarget::Event(id) => store.get(id).await,
        WaitTarget::Head { repo, sha } => store.get_by_head(repo, sha).await,
    };
    match found {
        Ok(Some(decision)) if target.matches(&decision) => StoreLook::Hit(Box::new(decision)),
        Ok(_) => StoreLook::Miss,
        Err(error) => {
            warn!(%error, "the decision store cannot answer; relying on the broker");
            StoreLook::Unavailable
        }
    }
}

/// Acks a delivery and returns its decision if it is the one waited for.
/// Messages that are not decisions are skipped: they are not ours to judge.
async fn take_if_matching(
    target: &WaitTarget,
    delivery: Delivery,
) -> Result<Option<Decision>, BusError> {
    let decision = if target.may_match(delivery.message_id()) {
        match delivery.decision() {
            Ok(decision) if target.matches(&decision) => {
                crate::received_span(&decision, delivery.traceparent()).in_scope(|| {});
                Some(decision)
            }
            Ok(_) => None,
            Err(rejection) => {
                debug!(%rejection, routing_key = delivery.routing_key(), "skipping a message that is not a decision");
                None
            }
        }
    } else {
        None
    };
    let acked = delivery.ack().await;
    match (decision, acked) {
        // The decision is in hand; a failed ack only costs a redelivery nobody reads.
        (Some(decision), _) => Ok(Some(decision)),
        (None, Ok(())) => Ok(None),
        (None, Err(error)) => Err(error),
    }
}

/// A person's decision wins over an automatic one; otherwise the newer one does.
fn prefer(earlier: Option<Decision>, later: Decision) -> Decision {
    match earlier {
        Some(earlier) if earlier.approval.is_some() && later.approval.is_none() => earlier,
        _ => later,
    }
}

/// The Unix time `lookback_secs` ago, or `None` when replay is off.
fn replay_since(lookback_secs: u64) -> Option<u64> {
    if lookback_secs == 0 {
        return None;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    Some(now.saturating_sub(lookback_secs))
}

async fn next_or_never(consumer: &mut Option<Consumer>) -> Option<Result<Delivery, BusError>> {
    match consumer {
        Some(consumer) => consumer.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_bind_the_keys_they_can_filter() {
        assert_eq!(
            WaitTarget::Event("ev-1".into()).binding_keys(),
            vec!["decision.#"]
        );
        let head = WaitTarget::Head {
            repo: "Acme/Shop.web".into(),
            sha: "ABC".into(),
        };
        assert_eq!(head.binding_keys(), vec!["decision.*.acme-shop-web"]);
        assert!(WaitTarget::Event("ev-1".into()).may_match(Some("ev-1")));
        assert!(!WaitTarget::Event("ev-1".into()).may_match(Some("ev-2")));
        assert!(WaitTarget::Event("ev-1".into()).may_match(None));
    }

    #[test]
    fn empty_targets_are_refused() {
        assert!(WaitTarget::Event(" ".into()).validate().is_err());
        let no_sha = WaitTarget::Head {
            repo: "acme/shop".into(),
            sha: String::new(),
        };
        assert!(matches!(
            no_sha.validate(),
            Err(WaitError::InvalidTarget(reason)) if reason.contains("sha")
        ));
    }

    #[test]
    fn replay_starts_lookback_seconds_ago_or_not_at_all() {
        assert_eq!(replay_since(0), None);
        let since = replay_since(3600).expect("replay on");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        assert!(since <= now - 3600 && since >= now - 3601);
    }
}
