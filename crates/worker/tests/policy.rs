//! The policy in the worker, against the real local RabbitMQ and Redis and the mock
//! model: a changed policy re-analyses an identical diff (POLICY_VERSION is in the
//! verdict cache key), trivial changes are decided without any model call, path
//! rules raise the consensus' answer, and notify thresholds pick the channels.

#![allow(clippy::unwrap_used)]

mod common;

use gate_core::{Policy, Recommendation};

use common::{docs_change, event, no_skip_policy, Fleet, RunningWorker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_policy_never_serves_a_verdict_given_under_the_old_one() {
    let mut fleet = Fleet::start().await;
    let first_policy = no_skip_policy();
    let worker = RunningWorker::spawn(fleet.worker_settings(), fleet.worker_deps());
    fleet.publish(&event("ev-before", docs_change())).await;
    let before = fleet.next_result(15).await.decision.unwrap();
    assert!(!before.cached);
    assert_eq!(fleet.mock.requests().len(), 1);
    worker.stop().await.0.unwrap();

    // Same diff, same prompt and models (`policy_version` unchanged), new policy.
    let changed = Policy::parse(
        "skip_models_when_trivial = false\nalways_hold = [\"secrets\", \"schema\"]\n",
        "changed policy",
    )
    .unwrap();
    assert_ne!(changed.version(), first_policy.version());
    let deps = gate_worker::WorkerDeps {
        policy: changed.clone(),
        ..fleet.worker_deps()
    };
    let worker = RunningWorker::spawn(fleet.worker_settings(), deps);
    fleet.publish(&event("ev-after", docs_change())).await;
    let after = fleet.next_result(15).await.decision.unwrap();
    assert!(!after.cached, "re-analysed under the new policy");
    assert_eq!(
        fleet.mock.requests().len(),
        2,
        "the mock model saw a second request"
    );
    let stats = worker.stats.snapshot();
    assert_eq!((stats.cache_misses, stats.cache_hits), (1, 0));

    // And under the new policy, the same diff is a cache hit again.
    fleet.publish(&event("ev-again", docs_change())).await;
    let again = fleet.next_result(15).await.decision.unwrap();
    assert!(again.cached);
    assert_eq!(fleet.mock.requests().len(), 2);
    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docs_only_change_is_decided_without_any_model_call() {
    let mut fleet = Fleet::start().await;
    let deps = gate_worker::WorkerDeps {
        policy: Policy::default(),
        ..fleet.worker_deps()
    };
    let worker = RunningWorker::spawn(fleet.worker_settings(), deps);
    fleet.publish(&event("ev-docs", docs_change())).await;
    let decision = fleet.next_result(15).await.decision.unwrap();
    assert_eq!(decision.recommendation, Recommendation::Deploy);
    assert_eq!(decision.consensus.n_model_verdicts, 0);
    assert_eq!(decision.consensus.quorum, 0);
    assert_eq!(decision.verdicts.len(), 1, "the rules verdict alone");
    assert!(
        decision.consensus.notes[0].starts_with("models skipped: docs-only change"),
        "{:?}",
        decision.consensus.notes
    );
    assert_eq!(decision.cost_usd, Some(0.0));
    assert!(fleet.mock.requests().is_empty(), "no model request");
    let stats = worker.stats.snapshot();
    assert_eq!(stats.models_skipped, 1);
    assert_eq!((stats.cache_misses, stats.cache_hits), (0, 0));
    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_rules_raise_the_answer_and_notify_thresholds_pick_the_channels() {
    let mut fleet = Fleet::start().await;
    let policy = Policy::parse(
        r#"
[notify]
deploys = "hold"
audit = "block"

[[path]]
glob = "README.md"
min_recommendation = "hold"
reason = "the front page is reviewed"
"#,
        "test policy",
    )
    .unwrap();
    let deps = gate_worker::WorkerDeps {
        policy,
        ..fleet.worker_deps()
    };
    let worker = RunningWorker::spawn(fleet.worker_settings(), deps);
    fleet.publish(&event("ev-readme", docs_change())).await;
    let seen = fleet.results_until_decisions(1, 15).await;
    let decision = seen
        .iter()
        .find_map(|s| s.decision.clone())
        .expect("a decision");
    assert_eq!(decision.recommendation, Recommendation::Hold);
    assert!(
        decision
            .consensus
            .notes
            .iter()
            .any(|n| n.starts_with("policy: path[0] `README.md` requires at least hold")),
        "{:?}",
        decision.consensus.notes
    );
    // The notification may arrive before or after the decision.
    let mut routing_keys: Vec<String> = seen
        .iter()
        .filter(|s| s.notification.is_some())
        .map(|s| s.routing_key.clone())
        .collect();
    while routing_keys.is_empty() {
        let next = fleet.next_result(10).await;
        if next.notification.is_some() {
            routing_keys.push(next.routing_key);
        }
    }
    assert!(
        routing_keys[0].starts_with("notify.deploys."),
        "{routing_keys:?}"
    );
    assert!(
        fleet.quiet_for(500).await,
        "audit starts at block: not told"
    );
    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
}
