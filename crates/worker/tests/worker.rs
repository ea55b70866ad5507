//! The worker against the real local RabbitMQ and Redis, with the mock model server
//! behind a real Anthropic provider: decisions and notifications for real changes,
//! idempotent redelivery, the verdict cache, poison messages, a model outage, a
//! Redis outage, a broker that closes the connection, and graceful shutdown.

#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::BTreeMap, collections::BTreeSet, net::SocketAddr, time::Duration};

use gate_bus::{Bus, StreamOffset, GATE_ERROR_HEADER};
use gate_core::{Recommendation, Severity};
use gate_mock_llm::{Fault, MockConfig};
use gate_worker::WorkerSettings;

use common::{
    close_connections_from_the_broker, destructive_migration, docs_change, docs_variant, event,
    eventually, free_port, http_get, next_within, nothing_within, Fleet, RunningWorker, TcpProxy,
    AMQP_URL, MODEL_ATTEMPTS, TRACEPARENT,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docs_change_deploys_and_a_destructive_migration_blocks_with_a_notification() {
    let mut fleet = Fleet::start().await;
    let health = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let settings = WorkerSettings {
        health_listen: Some(health),
        ..fleet.worker_settings()
    };
    let worker = RunningWorker::spawn(settings, fleet.worker_deps());

    fleet.publish(&event("ev-docs", docs_change())).await;
    let docs = fleet.next_result(15).await;
    assert_eq!(docs.routing_key, "decision.deploy.acme-shop");
    assert_eq!(docs.message_id.as_deref(), Some("ev-docs"));
    assert_eq!(
        docs.traceparent.as_deref(),
        Some(TRACEPARENT),
        "the trace follows the event"
    );
    let decision = docs.decision.unwrap();
    assert_eq!(decision.recommendation, Recommendation::Deploy);
    assert_eq!(decision.verdicts.len(), 2, "rules and the model");
    assert!(!decision.cached);
    assert!(fleet.quiet_for(300).await, "no notification for a deploy");

    fleet
        .publish(&event("ev-drop", destructive_migration()))
        .await;
    let seen = fleet.results_until_decisions(1, 15).await;
    let mut seen = seen.into_iter();
    let block = seen.next().unwrap();
    assert_eq!(block.routing_key, "decision.block.acme-shop");
    let decision = block.decision.unwrap();
    assert_eq!(decision.recommendation, Recommendation::Block);
    assert!(decision
        .risks
        .iter()
        .any(|r| r.severity == Severity::Critical));
    let notification = match seen.next() {
        Some(notification) => notification,
        None => fleet.next_result(5).await,
    };
    assert_eq!(notification.routing_key, "notify.deploys.critical");
    assert_eq!(notification.traceparent.as_deref(), Some(TRACEPARENT));
    let notification = notification.notification.unwrap();
    assert_eq!(notification.channel, "deploys");
    assert_eq!(notification.severity, Severity::Critical);
    assert_eq!(notification.decision, decision);
    assert!(fleet.quiet_for(300).await, "one notification per channel");

    // Both decisions are kept in the stream for audit, whoever listened.
    let mut log = fleet
        .observer
        .consume_stream(&fleet.topology().decisions_log, 10, StreamOffset::First)
        .await
        .unwrap();
    let mut logged = BTreeMap::new();
    while logged.len() < 2 {
        let delivery = next_within(&mut log, 10).await;
        logged.insert(
            delivery.message_id().unwrap().to_string(),
            delivery.routing_key().to_string(),
        );
        delivery.ack().await.unwrap();
    }
    assert_eq!(logged["ev-docs"], "decision.deploy.acme-shop");
    assert_eq!(logged["ev-drop"], "decision.block.acme-shop");

    assert_eq!(fleet.stored_decision("ev-drop").await, Some(decision));
    let (status, body) = http_get(health, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("consuming"), "{body}");
    assert_eq!(http_get(health, "/healthz").await.0, 200);

    let stats = worker.stats.snapshot();
    assert_eq!((stats.received, stats.decided), (2, 2), "{stats:?}");
    let (result, _) = worker.stop().await;
    result.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_twice_is_analysed_once_and_its_stored_decision_republished() {
    let mut fleet = Fleet::start().await;
    // Both copies are queued before the worker starts, so they are in flight
    // together: the worker's per-event lock makes the second wait for the first.
    let twice = event("ev-twice", docs_change());
    fleet.publish(&twice).await;
    fleet.publish(&twice).await;
    let worker = RunningWorker::spawn(fleet.worker_settings(), fleet.worker_deps());

    let seen = fleet.results_until_decisions(2, 15).await;
    assert!(fleet.quiet_for(500).await, "exactly two publishes");
    let decisions: Vec<_> = seen.iter().filter_map(|s| s.decision.clone()).collect();
    assert_eq!(decisions.len(), 2);
    assert_eq!(
        decisions[0], decisions[1],
        "the redelivery republishes the stored decision, byte for byte the same answer"
    );
    assert_eq!(
        fleet.mock.requests().len(),
        1,
        "one analysis, one model call"
    );
    assert_eq!(
        fleet.stored_decision("ev-twice").await.as_ref(),
        Some(&decisions[0])
    );

    let stats = worker.stats.snapshot();
    assert_eq!(stats.received, 2);
    assert_eq!(stats.decided, 1);
    assert_eq!(stats.republished_from_store, 1);
    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_event_with_an_identical_diff_is_answered_from_the_verdict_cache() {
    let mut fleet = Fleet::start().await;
    let worker = RunningWorker::spawn(fleet.worker_settings(), fleet.worker_deps());

    fleet.publish(&event("ev-first", docs_change())).await;
    let first = fleet.next_result(15).await.decision.unwrap();
    assert!(!first.cached);
    assert_eq!(fleet.mock.requests().len(), 1);

    // Another event, another repository name, the same change.
    let mut same_diff = docs_change();
    same_diff.repo = "acme/shop-fork".to_string();
    fleet.publish(&event("ev-second", same_diff)).await;
    let second = fleet.next_result(15).await;
    assert_eq!(second.routing_key, "decision.deploy.acme-shop-fork");
    let second = second.decision.unwrap();
    assert!(second.cached, "served from the verdict cache");
    assert_eq!(fleet.mock.requests().len(), 1, "no model call");
    assert_eq!(second.recommendation, first.recommendation);
    assert_eq!(second.risk_score, first.risk_score);
    assert_eq!(second.verdicts[1].summary, first.verdicts[1].summary);
    assert_eq!(
        second.verdicts[1].usage.input_tokens, 0,
        "a cached verdict costs nothing now"
    );
    assert_eq!(second.cost_usd, Some(0.0));

    let stats = worker.stats.snapshot();
    assert_eq!((stats.cache_misses, stats.cache_hits), (1, 1));
    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_with_their_reason_and_the_worker_goes_on() {
    let mut fleet = Fleet::start().await;
    let mut deps = fleet.worker_deps();
    deps.bus.max_payload_bytes = 64 * 1024;
    let worker = RunningWorker::spawn(fleet.worker_settings(), deps);

    fleet.publish_raw("bad-json", b"{not json".to_vec()).await;
    fleet
        .publish_raw(
            "bad-version",
            br#"{"schema_version": 99, "event_id": "x", "from": "the future"}"#.to_vec(),
        )
        .await;
    let mut huge = serde_json::to_value(event("too-big", docs_change())).unwrap();
    huge["context"]["packed_diff"] = serde_json::Value::from("+x\n".repeat(40_000));
    fleet
        .publish_raw("too-big", serde_json::to_vec(&huge).unwrap())
        .await;
    fleet.publish(&event("ev-good", docs_change())).await;

    let good = fleet.next_result(15).await;
    assert_eq!(good.message_id.as_deref(), Some("ev-good"));
    assert!(good.decision.is_some());

    let mut dead = fleet
        .observer
        .consume(&fleet.topology().dead_letter_queue, 10)
        .await
        .unwrap();
    let mut reasons = BTreeMap::new();
    for _ in 0..3 {
        let delivery = next_within(&mut dead, 10).await;
        reasons.insert(
            delivery.message_id().unwrap().to_string(),
            delivery
                .header(GATE_ERROR_HEADER)
                .unwrap_or_default()
                .to_string(),
        );
        delivery.ack().await.unwrap();
    }
    assert!(
        reasons["bad-json"].starts_with("malformed: "),
        "{reasons:?}"
    );
    assert!(
        reasons["bad-version"].starts_with("unknown_version: "),
        "{reasons:?}"
    );
    assert!(reasons["too-big"].starts_with("oversized: "), "{reasons:?}");
    assert!(nothing_within(&mut dead, 500).await, "no poison loop");
    assert!(fleet.quiet_for(300).await, "no decision for bad input");

    let stats = worker.stats.snapshot();
    assert_eq!(stats.dead_lettered, 3);
    assert_eq!(stats.decided, 1);
    assert!(!worker.is_finished(), "the worker is still running");
    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_outage_holds_with_the_reason_and_is_never_cached() {
    let mut fleet = Fleet::start().await;
    let worker = RunningWorker::spawn(fleet.worker_settings(), fleet.worker_deps());

    // Every attempt of the first analysis fails.
    fleet.mock.push_fault(Fault::ServerError, MODEL_ATTEMPTS);
    fleet.publish(&event("ev-outage", docs_change())).await;
    let seen = fleet.results_until_decisions(1, 15).await;
    let held = seen[0].decision.clone().unwrap();
    assert_eq!(
        held.recommendation,
        Recommendation::Hold,
        "never deploy on a failed analysis"
    );
    assert_eq!(held.verdicts.len(), 1, "only the rules verdict");
    assert!(
        held.consensus
            .notes
            .iter()
            .any(|n| n.contains("gave no verdict") && n.contains("500")),
        "{:?}",
        held.consensus.notes
    );
    assert!(held.summary.contains("required"), "{}", held.summary);
    assert_eq!(fleet.mock.requests().len(), MODEL_ATTEMPTS);
    // A hold is notified.
    let notified = seen
        .into_iter()
        .chain(std::iter::once(fleet.next_result(5).await))
        .find(|s| s.notification.is_some())
        .unwrap();
    assert!(notified.routing_key.starts_with("notify.deploys."));

    // The failure was not cached: the same diff asks the model again, and deploys.
    fleet
        .publish(&event("ev-after-outage", docs_change()))
        .await;
    let recovered = fleet.next_result(15).await.decision.unwrap();
    assert_eq!(recovered.recommendation, Recommendation::Deploy);
    assert!(!recovered.cached);
    assert_eq!(fleet.mock.requests().len(), MODEL_ATTEMPTS + 1);
    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_keep_flowing_while_redis_is_unreachable() {
    let mut fleet = Fleet::start().await;
    let mut deps = fleet.worker_deps();
    deps.redis_url = format!("redis://127.0.0.1:{}/", free_port());
    let worker = RunningWorker::spawn(fleet.worker_settings(), deps);

    for n in 0..3 {
        fleet
            .publish(&event(&format!("ev-{n}"), docs_variant(n)))
            .await;
    }
    let seen = fleet.results_until_decisions(3, 20).await;
    let ids: BTreeSet<_> = seen.iter().filter_map(|s| s.message_id.clone()).collect();
    assert_eq!(ids.len(), 3);
    let stats = worker.stats.snapshot();
    assert_eq!(stats.decided, 3);
    assert!(stats.redis_errors >= 1, "{stats:?}");
    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_waits_for_redis_and_republishes_its_stored_decision() {
    let mut fleet = Fleet::start().await;
    // The first attempt decided, stored and published; then its ack was lost.
    let once = event("ev-redelivered", docs_variant(0));
    let worker = RunningWorker::spawn(fleet.worker_settings(), fleet.worker_deps());
    fleet.publish(&once).await;
    let first = fleet.results_until_decisions(1, 20).await;
    let first = first.iter().find_map(|s| s.decision.clone()).unwrap();
    worker.stop().await.0.unwrap();
    // The event comes back flagged as redelivered: a consumer took it and went
    // away without acking.
    fleet.publish(&once).await;
    let taker = Bus::connect(AMQP_URL, fleet.bus_settings.clone())
        .await
        .unwrap();
    let mut consumer = taker
        .consume(&fleet.topology().events_queue, 1)
        .await
        .unwrap();
    let taken = next_within(&mut consumer, 10).await;
    drop((taken, consumer));
    // Closing may race with the channel the drop closes; either way it is gone.
    let _ = taker.close().await;

    // Redis is out when a worker gets the redelivery, and back a second later.
    let mut proxy = TcpProxy::start(SocketAddr::from(([127, 0, 0, 1], 6379))).await;
    proxy.stop().await;
    let mut deps = fleet.worker_deps();
    deps.redis_url = format!("redis://{}/", proxy.addr);
    let worker = RunningWorker::spawn(fleet.worker_settings(), deps);
    let resumed = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        proxy.resume().await;
        proxy
    });
    let again = fleet.results_until_decisions(1, 20).await;
    let again = again.iter().find_map(|s| s.decision.clone()).unwrap();
    assert_eq!(
        again, first,
        "the redelivery republished the stored decision, not a second analysis made without the store"
    );
    // The worker counts the republish once its publish is confirmed, which can
    // come after the observer has the decision: wait for the count, then check it.
    let counted = worker.stats.clone();
    eventually(10, "the republish is counted", || {
        counted.snapshot().republished_from_store >= 1
    })
    .await;
    let stats = worker.stats.snapshot();
    assert_eq!((stats.redelivered, stats.decided), (1, 0), "{stats:?}");
    assert_eq!(stats.republished_from_store, 1);
    assert_eq!(
        fleet.mock.requests().len(),
        1,
        "one analysis, one model call"
    );
    worker.stop().await.0.unwrap();
    drop(resumed.await.unwrap());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_uses_redis_again_by_itself_when_it_returns() {
    let mut fleet = Fleet::start().await;
    let mut proxy = TcpProxy::start(SocketAddr::from(([127, 0, 0, 1], 6379))).await;
    let mut deps = fleet.worker_deps();
    deps.redis_url = format!("redis://{}/", proxy.addr);
    let worker = RunningWorker::spawn(fleet.worker_settings(), deps);

    fleet.publish(&event("ev-before", docs_variant(0))).await;
    fleet.next_result(15).await;
    assert!(fleet.stored_decision("ev-before").await.is_some());

    proxy.stop().await;
    for n in 1..=2 {
        fleet
            .publish(&event(&format!("ev-down-{n}"), docs_variant(n)))
            .await;
    }
    fleet.results_until_decisions(2, 20).await;
    assert!(worker.stats.snapshot().redis_errors >= 1);
    assert!(fleet.stored_decision("ev-down-1").await.is_none());

    proxy.resume().await;
    let mut recovered_at = None;
    for n in 3..40 {
        let id = format!("ev-back-{n}");
        fleet.publish(&event(&id, docs_variant(n))).await;
        fleet.next_result(15).await;
        if fleet.stored_decision(&id).await.is_some() {
            recovered_at = Some(n);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered_at.is_some(), "the decision store is used again");
    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_by_the_broker_is_reconnected_and_every_event_gets_its_decision() {
    let mut fleet = Fleet::start().await;
    // 40 events of 400 ms each, 4 at a time: about 4 s of work, and the close
    // (rabbitmqctl takes a second or two) lands in the middle of it.
    fleet.mock.set_config(MockConfig {
        latency_ms: 400,
        ..MockConfig::default()
    });
    let worker = RunningWorker::spawn(fleet.worker_settings(), fleet.worker_deps());
    let ids: BTreeSet<String> = (0..40).map(|n| format!("ev-{n:02}")).collect();
    for (n, id) in ids.iter().enumerate() {
        fleet.publish(&event(id, docs_variant(n))).await;
    }

    let mut seen = fleet.results_until_decisions(4, 20).await;
    let closed = close_connections_from_the_broker(&fleet.worker_connection_name());
    assert_eq!(closed, 1, "the worker's connection");
    let stats = worker.stats.clone();
    eventually(10, "the worker reconnects", || {
        stats.snapshot().reconnects >= 1
    })
    .await;

    let mut decided: BTreeMap<String, Vec<_>> = BTreeMap::new();
    loop {
        for s in seen.drain(..) {
            if let Some(decision) = s.decision {
                decided
                    .entry(decision.event_id.clone())
                    .or_default()
                    .push(decision);
            }
        }
        if decided.len() == ids.len() {
            break;
        }
        seen.push(fleet.next_result(20).await);
    }
    assert_eq!(decided.keys().cloned().collect::<BTreeSet<_>>(), ids);
    for (id, decisions) in &decided {
        let stored = fleet.stored_decision(id).await.unwrap();
        assert!(
            decisions.iter().all(|d| *d == stored),
            "{id}: a republished decision is the stored one"
        );
    }
    let stats = worker.stats.snapshot();
    // In-flight events of the dead connection came back; the per-event lock and
    // the decision store made their second round a republish, not an analysis.
    assert!(
        stats.redelivered >= 1,
        "the close hit work in flight: {stats:?}"
    );
    assert_eq!(
        stats.decided as usize,
        ids.len(),
        "each event analysed once: {stats:?}"
    );
    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_events_finish_and_returns_ok() {
    let mut fleet = Fleet::start().await;
    fleet.mock.set_config(MockConfig {
        latency_ms: 1_500,
        ..MockConfig::default()
    });
    let worker = RunningWorker::spawn(fleet.worker_settings(), fleet.worker_deps());
    for n in 0..3 {
        fleet
            .publish(&event(&format!("ev-{n}"), docs_variant(n)))
            .await;
    }
    let mock = &fleet.mock;
    eventually(10, "three analyses in flight", || {
        mock.requests().len() == 3
    })
    .await;

    let (result, took) = worker.stop().await;
    result.unwrap();
    assert!(
        took >= Duration::from_millis(500),
        "it waited for the work: {took:?}"
    );
    let seen = fleet.results_until_decisions(3, 5).await;
    assert_eq!(seen.len(), 3);

    // Nothing is left behind in the events queue.
    let bus = Bus::connect(AMQP_URL, fleet.bus_settings.clone())
        .await
        .unwrap();
    let mut events = bus
        .consume(&fleet.topology().events_queue, 10)
        .await
        .unwrap();
    assert!(nothing_within(&mut events, 500).await);
    bus.close().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_past_its_deadline_requeues_the_unfinished_events_and_nothing_is_lost() {
    let mut fleet = Fleet::start().await;
    fleet.mock.set_config(MockConfig {
        latency_ms: 10_000,
        ..MockConfig::default()
    });
    let settings = WorkerSettings {
        shutdown_grace_secs: 1,
        ..fleet.worker_settings()
    };
    let worker = RunningWorker::spawn(settings.clone(), fleet.worker_deps());
    for n in 0..2 {
        fleet
            .publish(&event(&format!("ev-{n}"), docs_variant(n)))
            .await;
    }
    let mock = &fleet.mock;
    eventually(10, "two analyses in flight", || mock.requests().len() == 2).await;

    let stats = worker.stats.clone();
    let (result, took) = worker.stop().await;
    result.unwrap();
    assert!(
        took < Duration::from_secs(8),
        "the deadline is kept: {took:?}"
    );
    assert_eq!(stats.snapshot().requeued, 2);
    assert!(fleet.quiet_for(300).await, "no decision was published");

    // Another worker, with a fast model, decides both.
    fleet.mock.set_config(MockConfig::default());
    let next = RunningWorker::spawn(settings, fleet.worker_deps());
    let seen = fleet.results_until_decisions(2, 15).await;
    let ids: BTreeSet<_> = seen.iter().filter_map(|s| s.message_id.clone()).collect();
    assert_eq!(
        ids,
        BTreeSet::from(["ev-0".to_string(), "ev-1".to_string()])
    );
    next.stop().await.0.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_cannot_reach_the_broker_is_alive_but_not_ready_and_still_stops() {
    let fleet = Fleet::start().await;
    let health = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let settings = WorkerSettings {
        health_listen: Some(health),
        ..fleet.worker_settings()
    };
    let mut deps = fleet.worker_deps();
    deps.amqp_url = format!("amqp://guest:secret-password@127.0.0.1:{}/%2f", free_port());
    let worker = RunningWorker::spawn(settings, deps);

    let mut readiness = (0, String::new());
    for _ in 0..50 {
        readiness = http_get(health, "/readyz").await;
        if readiness.1.contains("last error") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = readiness;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("connecting to the broker"), "{body}");
    assert!(!body.contains("secret-password"), "{body}");
    assert_eq!(http_get(health, "/healthz").await.0, 200);

    let (result, took) = worker.stop().await;
    result.unwrap();
    assert!(took < Duration::from_secs(2), "{took:?}");
    fleet.cleanup().await;
}
