//! Outcome reports through the real worker, broker and Redis: an orchestrator
//! publishes `outcome.<event_id>` on the results exchange, the worker's outcome
//! consumer stores it next to the decision and acks it; a bad report is
//! dead-lettered with its reason; a report that arrives while Redis is away is
//! held and stored when Redis returns.

#![allow(clippy::unwrap_used)]

mod common;

use std::{net::SocketAddr, time::Duration};

use gate_bus::{Outgoing, GATE_ERROR_HEADER};
use gate_core::{Outcome, OutcomeResult};

use common::{docs_change, event, next_within, nothing_within, Fleet, RunningWorker, TcpProxy};

fn outcome(event_id: &str, result: OutcomeResult, note: &str, at: &str) -> Outcome {
    Outcome::from_json(
        serde_json::json!({"event_id": event_id, "result": result, "note": note, "at": at})
            .to_string()
            .as_bytes(),
    )
    .unwrap()
}

/// Publishes `outcome` as an orchestrator does, with confirms.
async fn report(fleet: &Fleet, outcome: &Outcome) {
    let publisher = fleet.observer.publisher().await.unwrap();
    publisher.publish_outcome(outcome).await.unwrap();
}

/// The outcomes stored for `event_id`, once there are `n` of them.
async fn stored_outcomes(fleet: &Fleet, event_id: &str, n: usize, secs: u64) -> Vec<Outcome> {
    let store = fleet.redis.outcome_store();
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let outcomes = store.get(event_id).await.unwrap();
        if outcomes.len() >= n {
            return outcomes;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} outcomes stored for {event_id} within {secs} s: {outcomes:?}",
            outcomes.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_outcome_is_stored_next_to_the_decision_and_acked() {
    let mut fleet = Fleet::start().await;
    let worker = RunningWorker::spawn(fleet.worker_settings(), fleet.worker_deps());
    fleet.publish(&event("ev-1", docs_change())).await;
    fleet.next_result(15).await;
    assert!(fleet.stored_decision("ev-1").await.is_some());

    let deployed = outcome(
        "ev-1",
        OutcomeResult::Deployed,
        "shipped",
        "2026-03-01T10:00:00Z",
    );
    let rolled_back = outcome(
        "ev-1",
        OutcomeResult::RolledBack,
        "5xx on checkout",
        "2026-03-01T10:20:00+01:00",
    );
    report(&fleet, &deployed).await;
    report(&fleet, &rolled_back).await;
    // At least once: a redelivered report overwrites itself, never adds a duplicate.
    report(&fleet, &deployed).await;

    let stored = stored_outcomes(&fleet, "ev-1", 2, 15).await;
    assert_eq!(stored, vec![deployed.clone(), rolled_back.clone()]);
    assert_eq!(stored[1].at, "2026-03-01T09:20:00Z", "normalised to UTC");

    // Every report was acked: once the worker is gone, nothing is left in the queue.
    worker.stop().await.0.unwrap();
    let mut left = fleet
        .observer
        .consume(&fleet.topology().outcomes_queue, 10)
        .await
        .unwrap();
    assert!(
        nothing_within(&mut left, 500).await,
        "no report left unacked"
    );
    assert_eq!(
        fleet.redis.outcome_store().get("ev-1").await.unwrap().len(),
        2
    );
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_sent_while_no_worker_runs_waits_in_its_queue() {
    let fleet = Fleet::start().await;
    let incident = outcome(
        "ev-early",
        OutcomeResult::Incident,
        "INC-42",
        "2026-03-02T08:00:00Z",
    );
    report(&fleet, &incident).await;
    let worker = RunningWorker::spawn(fleet.worker_settings(), fleet.worker_deps());
    let stored = stored_outcomes(&fleet, "ev-early", 1, 15).await;
    assert_eq!(stored, vec![incident]);
    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_report_is_dead_lettered_with_its_reason_and_the_next_one_is_stored() {
    let fleet = Fleet::start().await;
    let worker = RunningWorker::spawn(fleet.worker_settings(), fleet.worker_deps());
    let publisher = fleet.observer.publisher().await.unwrap();
    let results = &fleet.topology().results_exchange;
    for (id, payload) in [
        (
            "bad-result",
            r#"{"event_id": "ev-x", "result": "exploded", "at": "2026-03-01T10:00:00Z"}"#,
        ),
        (
            "bad-version",
            r#"{"schema_version": 7, "event_id": "ev-x"}"#,
        ),
        (
            "bad-time",
            r#"{"event_id": "ev-x", "result": "deployed", "at": "last tuesday"}"#,
        ),
    ] {
        publisher
            .publish(
                results,
                "outcome.ev-x",
                &Outgoing::bytes("outcome", id, payload.as_bytes().to_vec()),
            )
            .await
            .unwrap();
    }
    let good = outcome("ev-x", OutcomeResult::Deployed, "", "2026-03-01T10:00:00Z");
    report(&fleet, &good).await;
    assert_eq!(stored_outcomes(&fleet, "ev-x", 1, 15).await, vec![good]);

    let mut dead = fleet
        .observer
        .consume(&fleet.topology().dead_letter_queue, 10)
        .await
        .unwrap();
    let mut reasons = std::collections::BTreeMap::new();
    for _ in 0..3 {
        let delivery = next_within(&mut dead, 10).await;
        reasons.insert(
            delivery.message_id().unwrap().to_string(),
            delivery.header(GATE_ERROR_HEADER).unwrap().to_string(),
        );
        delivery.ack().await.unwrap();
    }
    assert!(
        reasons["bad-result"].starts_with("malformed: "),
        "{reasons:?}"
    );
    assert!(
        reasons["bad-version"].starts_with("unknown_version: schema_version 7"),
        "{reasons:?}"
    );
    assert!(
        reasons["bad-time"].starts_with("malformed: "),
        "{reasons:?}"
    );
    assert!(nothing_within(&mut dead, 300).await, "no poison loop");
    assert_eq!(worker.stats.snapshot().dead_lettered, 3);
    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_held_while_redis_is_away_and_stored_when_it_returns() {
    let fleet = Fleet::start().await;
    let mut proxy = TcpProxy::start(SocketAddr::from(([127, 0, 0, 1], 6379))).await;
    let mut deps = fleet.worker_deps();
    deps.redis_url = format!("redis://{}/", proxy.addr);
    let worker = RunningWorker::spawn(fleet.worker_settings(), deps);

    proxy.stop().await;
    let rolled_back = outcome(
        "ev-away",
        OutcomeResult::RolledBack,
        "latency",
        "2026-03-03T12:00:00Z",
    );
    report(&fleet, &rolled_back).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(fleet
        .redis
        .outcome_store()
        .get("ev-away")
        .await
        .unwrap()
        .is_empty());
    assert!(worker.stats.snapshot().redis_errors >= 1);

    proxy.resume().await;
    assert_eq!(
        stored_outcomes(&fleet, "ev-away", 1, 20).await,
        vec![rolled_back]
    );
    assert_eq!(
        worker.stats.snapshot().dead_lettered,
        0,
        "held, not dropped"
    );
    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
}
