//! wait, watch and approve against the real local RabbitMQ and Redis, with the
//! worker played by the test: it stores a decision, then publishes it, as the
//! real one does.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    ops::ControlFlow,
    time::{Duration, Instant},
};

use gate_bus::StreamOffset;
use gate_core::{Approval, Recommendation};
use gate_orchestrator::{
    approve, wait, watch, ApproveError, WaitError, WaitTarget, WatchFilter, WatchFrom, WatchStop,
    Watched,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use common::{decision, sha, Fleet, SECRET_PASSWORD};

const GENEROUS: Duration = Duration::from_secs(10);

#[tokio::test]
async fn wait_finds_a_decision_stored_before_it_started() {
    let fleet = Fleet::start(|_| {}).await;
    let stored = decision("ev-stored", "acme/shop", &sha(1), 90);
    // Stored and never published again: only the store can answer.
    fleet.store(&stored).await;

    let started = Instant::now();
    let found = wait(
        &fleet.deps(),
        WaitTarget::Event("ev-stored".into()),
        GENEROUS,
    )
    .await
    .unwrap();
    assert_eq!(found, stored);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a store hit answers at once: {:?}",
        started.elapsed()
    );
    fleet.cleanup().await;
}

#[tokio::test]
async fn wait_receives_a_decision_published_after_it_started() {
    let fleet = Fleet::start(|_| {}).await;
    let deps = fleet.deps();
    let waiter =
        tokio::spawn(
            async move { wait(&deps, WaitTarget::Event("ev-later".into()), GENEROUS).await },
        );
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Other events' decisions pass through the same queue and are ignored.
    fleet
        .decide(&decision("ev-other", "acme/shop", &sha(2), 10))
        .await;
    let later = decision("ev-later", "acme/shop", &sha(3), 90);
    fleet.decide(&later).await;
    assert_eq!(waiter.await.unwrap().unwrap(), later);
    fleet.cleanup().await;
}

#[tokio::test]
async fn wait_never_misses_a_decision_made_while_it_starts() {
    // The store and the private queue alone close the race: no log replay.
    let fleet = Fleet::start(|settings| settings.replay_on_store_miss = false).await;
    let deps = fleet.deps();
    for i in 0..50u64 {
        let event_id = format!("ev-race-{i}");
        let made = decision(&event_id, "acme/shop", &sha(i), 90);
        let waiter = {
            let deps = deps.clone();
            tokio::spawn(async move { wait(&deps, WaitTarget::Event(event_id), GENEROUS).await })
        };
        // Spread the worker's store-then-publish over the waiter's connect, bind
        // and look.
        tokio::time::sleep(Duration::from_millis((i * 7) % 60)).await;
        fleet.decide(&made).await;
        let found = waiter
            .await
            .unwrap()
            .unwrap_or_else(|error| panic!("iteration {i}: {error}"));
        assert_eq!(found, made, "iteration {i}");
    }
    fleet.cleanup().await;
}

#[tokio::test]
async fn wait_without_a_store_never_misses_a_decision_published_while_it_starts() {
    // No Redis at all: the replay of the decisions log closes the race.
    let fleet = Fleet::start(|_| {}).await;
    let deps = fleet.deps_without_store();
    for i in 0..50u64 {
        let event_id = format!("ev-race-{i}");
        let made = decision(&event_id, "acme/shop", &sha(i), 10);
        let waiter = {
            let deps = deps.clone();
            tokio::spawn(async move { wait(&deps, WaitTarget::Event(event_id), GENEROUS).await })
        };
        tokio::time::sleep(Duration::from_millis((i * 7) % 60)).await;
        fleet.publish(&made).await;
        let found = waiter
            .await
            .unwrap()
            .unwrap_or_else(|error| panic!("iteration {i}: {error}"));
        assert_eq!(found, made, "iteration {i}");
    }
    fleet.cleanup().await;
}

#[tokio::test]
async fn wait_by_repository_and_head_finds_the_stored_decision_through_the_index() {
    let fleet = Fleet::start(|_| {}).await;
    let head = sha(0xabc);
    let stored = decision("ev-head", "Acme/Shop", &head, 90);
    fleet.store(&stored).await;
    let found = wait(
        &fleet.deps(),
        WaitTarget::Head {
            repo: "acme/shop".into(),
            sha: head.to_ascii_uppercase(),
        },
        GENEROUS,
    )
    .await
    .unwrap();
    assert_eq!(found, stored);
    fleet.cleanup().await;
}

#[tokio::test]
async fn wait_by_repository_and_head_ignores_other_commits_and_repositories() {
    let fleet = Fleet::start(|_| {}).await;
    let head = sha(0xdef);
    let deps = fleet.deps();
    let target = WaitTarget::Head {
        repo: "acme/shop".into(),
        sha: head.clone(),
    };
    let waiter = tokio::spawn(async move { wait(&deps, target, GENEROUS).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    fleet
        .decide(&decision("ev-other-commit", "acme/shop", &sha(1), 10))
        .await;
    fleet
        .decide(&decision("ev-same-slug", "acme.shop", &head, 10))
        .await;
    fleet
        .decide(&decision("ev-other-repo", "acme/api", &head, 10))
        .await;
    let wanted = decision("ev-wanted", "acme/shop", &head, 90);
    fleet.decide(&wanted).await;
    assert_eq!(waiter.await.unwrap().unwrap(), wanted);
    fleet.cleanup().await;
}

#[tokio::test]
async fn wait_times_out_promptly_when_no_decision_comes() {
    let fleet = Fleet::start(|_| {}).await;
    let started = Instant::now();
    let error = wait(
        &fleet.deps(),
        WaitTarget::Event("ev-never".into()),
        Duration::from_millis(400),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, WaitError::Timeout { after } if after == Duration::from_millis(400)),
        "{error}"
    );
    assert!(error.is_retryable());
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    fleet.cleanup().await;
}

#[tokio::test]
async fn wait_refuses_an_empty_target_without_touching_the_broker() {
    let fleet = Fleet::start(|_| {}).await;
    let error = wait(
        &fleet.deps(),
        WaitTarget::Event(String::new()),
        Duration::from_secs(1),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, WaitError::InvalidTarget(_)), "{error}");
    assert!(!error.is_retryable());
    fleet.cleanup().await;
}

#[tokio::test]
async fn wait_finds_in_the_log_a_decision_the_worker_could_not_store() {
    // Redis is up for the waiter but was not for the worker: the store misses,
    // and the decision was published before the wait began.
    let fleet = Fleet::start(|_| {}).await;
    let unstored = decision("ev-unstored", "acme/shop", &sha(4), 90);
    fleet.publish(&unstored).await;
    let found = wait(
        &fleet.deps(),
        WaitTarget::Event("ev-unstored".into()),
        GENEROUS,
    )
    .await
    .unwrap();
    assert_eq!(found, unstored);
    fleet.cleanup().await;
}

#[tokio::test]
async fn wait_with_redis_down_finds_an_earlier_decision_in_the_log_and_a_later_one_on_the_queue() {
    let fleet = Fleet::start(|_| {}).await;
    let deps = fleet.deps_with_redis_down();
    let earlier = decision("ev-earlier", "acme/shop", &sha(5), 90);
    fleet.decide(&earlier).await;
    let found = wait(&deps, WaitTarget::Event("ev-earlier".into()), GENEROUS)
        .await
        .unwrap();
    assert_eq!(found, earlier);

    let waiter = {
        let deps = deps.clone();
        tokio::spawn(async move {
            wait(
                &deps,
                WaitTarget::Head {
                    repo: "acme/shop".into(),
                    sha: sha(6),
                },
                GENEROUS,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let later = decision("ev-later", "acme/shop", &sha(6), 10);
    fleet.publish(&later).await;
    assert_eq!(waiter.await.unwrap().unwrap(), later);
    fleet.cleanup().await;
}

#[tokio::test]
async fn wait_prefers_a_persons_decision_over_the_automatic_one_in_the_log() {
    let fleet = Fleet::start(|_| {}).await;
    let automatic = decision("ev-held", "acme/shop", &sha(7), 60);
    let mut approved = automatic.clone();
    approved.recommendation = Recommendation::Deploy;
    approved.consensus.mode = "human".into();
    approved.approval = Some(Approval {
        by: "alice".into(),
        reason: "verified".into(),
        at: "2025-01-01T00:00:05Z".into(),
        superseded: Recommendation::Hold,
    });
    fleet.publish(&automatic).await;
    fleet.publish(&approved).await;
    let found = wait(
        &fleet.deps_without_store(),
        WaitTarget::Event("ev-held".into()),
        GENEROUS,
    )
    .await
    .unwrap();
    assert_eq!(found, approved);
    fleet.cleanup().await;
}

#[tokio::test]
async fn watch_from_the_beginning_replays_earlier_decisions_of_one_repository() {
    let fleet = Fleet::start(|_| {}).await;
    for (i, repo) in [
        "acme/shop",
        "acme/api",
        "acme/shop",
        "acme/api",
        "acme/shop",
    ]
    .into_iter()
    .enumerate()
    {
        fleet
            .decide(&decision(&format!("ev-{i}"), repo, &sha(i as u64), 10))
            .await;
    }
    let mut seen: Vec<Watched> = Vec::new();
    let end = tokio::time::timeout(
        GENEROUS,
        watch(
            &fleet.deps(),
            WatchFilter {
                repo: Some("ACME/shop".into()),
            },
            WatchFrom::Beginning,
            |watched| {
                seen.push(watched);
                if seen.len() == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
            std::future::pending(),
        ),
    )
    .await
    .expect("three decisions within the timeout")
    .unwrap();

    let ids: Vec<&str> = seen.iter().map(|w| w.decision.event_id.as_str()).collect();
    assert_eq!(ids, ["ev-0", "ev-2", "ev-4"]);
    let offsets: Vec<u64> = seen.iter().map(|w| w.offset.unwrap()).collect();
    assert_eq!(offsets, [0, 2, 4], "offsets in the log");
    assert_eq!(end.stopped_by, WatchStop::Handler);
    assert_eq!(end.n_decisions, 3);
    assert_eq!(end.next_offset, Some(5));
    fleet.cleanup().await;
}

#[tokio::test]
async fn watch_from_now_sees_only_new_decisions_and_says_where_to_resume() {
    let fleet = Fleet::start(|_| {}).await;
    fleet
        .decide(&decision("ev-old", "acme/shop", &sha(1), 90))
        .await;

    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Watched>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let deps = fleet.deps();
    let watcher = tokio::spawn(async move {
        watch(
            &deps,
            WatchFilter::default(),
            WatchFrom::Now,
            move |watched| {
                let _ = seen_tx.send(watched);
                ControlFlow::Continue(())
            },
            async move {
                let _ = stop_rx.await;
            },
        )
        .await
    });

    // Probe until the watcher is reading: with `Now` it cannot see earlier ones.
    let mut n_probes = 0u64;
    let first = loop {
        assert!(n_probes < 50, "the watcher never saw a probe");
        fleet
            .publish(&decision(
                &format!("ev-probe-{n_probes}"),
                "acme/probe",
                &sha(9),
                10,
            ))
            .await;
        n_probes += 1;
        if let Ok(Some(watched)) =
            tokio::time::timeout(Duration::from_millis(300), seen_rx.recv()).await
        {
            break watched;
        }
    };
    assert!(
        first.decision.event_id.starts_with("ev-probe-"),
        "{first:?}"
    );

    let new = decision("ev-new", "acme/shop", &sha(2), 10);
    fleet.decide(&new).await;
    let new_offset = loop {
        let watched = tokio::time::timeout(GENEROUS, seen_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_ne!(watched.decision.event_id, "ev-old", "an earlier decision");
        if watched.decision.event_id == "ev-new" {
            assert_eq!(watched.decision, new);
            break watched.offset.unwrap();
        }
    };

    stop_tx.send(()).unwrap();
    let end = tokio::time::timeout(GENEROUS, watcher)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(end.stopped_by, WatchStop::Shutdown);
    assert_eq!(end.next_offset, Some(new_offset + 1));

    // Resuming from there sees what came after, and nothing before.
    let after = decision("ev-after", "acme/shop", &sha(3), 10);
    fleet.decide(&after).await;
    let mut resumed = Vec::new();
    tokio::time::timeout(
        GENEROUS,
        watch(
            &fleet.deps(),
            WatchFilter::default(),
            WatchFrom::Offset(new_offset + 1),
            |watched| {
                resumed.push(watched.decision.event_id);
                ControlFlow::Break(())
            },
            std::future::pending(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resumed, ["ev-after"]);
    fleet.cleanup().await;
}

fn decision_schema() -> jsonschema::Validator {
    let path = format!(
        "{}/../../schemas/decision.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

#[tokio::test]
async fn approve_supersedes_the_automatic_decision_in_the_store_and_the_log() {
    let fleet = Fleet::start(|_| {}).await;
    let head = sha(0x77);
    let automatic = decision("ev-block", "acme/shop", &head, 90);
    assert_eq!(automatic.recommendation, Recommendation::Block);
    fleet.decide(&automatic).await;
    // An orchestrator listening for this repository's decisions.
    let queue = fleet
        .bus
        .private_results_queue(&["decision.*.acme-shop".to_string()])
        .await
        .unwrap();
    let mut listener = fleet.bus.consume(&queue, 10).await.unwrap();

    let human = approve(
        &fleet.deps(),
        "ev-block",
        "alice",
        "verified on staging",
        Recommendation::Deploy,
    )
    .await
    .unwrap();
    assert_eq!(human.recommendation, Recommendation::Deploy);
    assert_eq!(human.consensus.mode, "human");
    assert_eq!(human.risk_score, automatic.risk_score);
    assert!(human.summary.contains("alice") && human.summary.contains("verified on staging"));
    let approval = human.approval.clone().unwrap();
    assert_eq!(approval.by, "alice");
    assert_eq!(approval.superseded, Recommendation::Block);

    // The store answers with the person's decision; the automatic one is kept.
    let store = fleet.redis.decision_store();
    assert_eq!(store.get("ev-block").await.unwrap(), Some(human.clone()));
    assert_eq!(
        store.get_superseded("ev-block").await.unwrap(),
        Some(automatic.clone())
    );

    // Published as decision.deploy.<repo>, valid against the public schema.
    let delivery = tokio::time::timeout(GENEROUS, listener.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(delivery.routing_key(), "decision.deploy.acme-shop");
    assert_eq!(delivery.message_id(), Some("ev-block"));
    let json: Value = serde_json::from_slice(delivery.payload()).unwrap();
    assert_eq!(json["approval"]["by"], "alice");
    let schema = decision_schema();
    let violations: Vec<String> = schema
        .iter_errors(&json)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(violations.is_empty(), "{violations:#?}\n{json:#}");
    assert_eq!(delivery.decision().unwrap(), human);
    delivery.ack().await.unwrap();

    // Recorded in the log after the automatic decision.
    let mut log = fleet
        .bus
        .consume_stream(&fleet.topology().decisions_log, 10, StreamOffset::First)
        .await
        .unwrap();
    let mut logged = Vec::new();
    while logged.len() < 2 {
        let entry = tokio::time::timeout(GENEROUS, log.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        logged.push(entry.decision().unwrap());
        entry.ack().await.unwrap();
    }
    assert_eq!(logged, [automatic, human.clone()]);

    // A wait started now gets the person's decision, by event and by head.
    let deps = fleet.deps();
    assert_eq!(
        wait(&deps, WaitTarget::Event("ev-block".into()), GENEROUS)
            .await
            .unwrap(),
        human
    );
    assert_eq!(
        wait(
            &deps,
            WaitTarget::Head {
                repo: "acme/shop".into(),
                sha: head
            },
            GENEROUS
        )
        .await
        .unwrap(),
        human
    );
    fleet.cleanup().await;
}

#[tokio::test]
async fn an_override_of_an_approval_still_supersedes_the_automatic_decision() {
    let fleet = Fleet::start(|_| {}).await;
    let automatic = decision("ev-hold", "acme/shop", &sha(8), 60);
    assert_eq!(automatic.recommendation, Recommendation::Hold);
    fleet.decide(&automatic).await;
    let deps = fleet.deps();
    approve(
        &deps,
        "ev-hold",
        "alice",
        "looks fine",
        Recommendation::Deploy,
    )
    .await
    .unwrap();
    let overridden = approve(
        &deps,
        "ev-hold",
        "bob",
        "incident in progress",
        Recommendation::Block,
    )
    .await
    .unwrap();
    let approval = overridden.approval.clone().unwrap();
    assert_eq!(approval.by, "bob");
    assert_eq!(approval.superseded, Recommendation::Hold);
    assert!(
        !overridden.summary.contains("alice"),
        "built from the automatic decision: {}",
        overridden.summary
    );
    let store = fleet.redis.decision_store();
    assert_eq!(store.get("ev-hold").await.unwrap(), Some(overridden));
    assert_eq!(
        store.get_superseded("ev-hold").await.unwrap(),
        Some(automatic)
    );
    fleet.cleanup().await;
}

#[tokio::test]
async fn approving_an_unknown_event_is_not_found_and_publishes_nothing() {
    let fleet = Fleet::start(|_| {}).await;
    let error = approve(
        &fleet.deps(),
        "ev-unknown",
        "alice",
        "why not",
        Recommendation::Deploy,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, ApproveError::NotFound { event_id } if event_id == "ev-unknown"),
        "{error}"
    );
    assert!(!error.is_retryable());
    let mut log = fleet
        .bus
        .consume_stream(&fleet.topology().decisions_log, 10, StreamOffset::First)
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), log.next())
            .await
            .is_err(),
        "nothing was logged"
    );
    fleet.cleanup().await;
}

#[tokio::test]
async fn approving_without_a_store_is_refused() {
    let fleet = Fleet::start(|_| {}).await;
    fleet
        .decide(&decision("ev-1", "acme/shop", &sha(1), 90))
        .await;
    let error = approve(
        &fleet.deps_without_store(),
        "ev-1",
        "alice",
        "why not",
        Recommendation::Deploy,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ApproveError::NoStore), "{error}");
    fleet.cleanup().await;
}

#[tokio::test]
async fn wait_answers_from_the_store_while_the_broker_is_unreachable() {
    let fleet = Fleet::start(|_| {}).await;
    let stored = decision("ev-no-broker", "acme/shop", &sha(1), 90);
    fleet.store(&stored).await;
    let started = Instant::now();
    let found = wait(
        &fleet.deps_with_broker_down(),
        WaitTarget::Event("ev-no-broker".into()),
        GENEROUS,
    )
    .await
    .unwrap();
    assert_eq!(found, stored);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    fleet.cleanup().await;
}

#[tokio::test]
async fn wait_reports_an_unreachable_broker_at_the_deadline_without_its_password() {
    let fleet = Fleet::start(|_| {}).await;
    let started = Instant::now();
    let error = wait(
        &fleet.deps_with_broker_down(),
        WaitTarget::Event("ev-nothing".into()),
        Duration::from_secs(1),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, WaitError::Bus(_)), "{error}");
    assert!(error.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(3));
    let printed = format!("{error} {error:?}");
    assert!(!printed.contains(SECRET_PASSWORD), "{printed}");
    fleet.cleanup().await;
}

#[tokio::test]
async fn watch_keeps_trying_an_unreachable_broker_until_shutdown() {
    let fleet = Fleet::start(|_| {}).await;
    let end = tokio::time::timeout(
        GENEROUS,
        watch(
            &fleet.deps_with_broker_down(),
            WatchFilter::default(),
            WatchFrom::Beginning,
            |_| ControlFlow::Continue(()),
            tokio::time::sleep(Duration::from_millis(800)),
        ),
    )
    .await
    .expect("shutdown ends the watch")
    .unwrap();
    assert_eq!(end.stopped_by, WatchStop::Shutdown);
    assert_eq!(end.n_decisions, 0);
    assert_eq!(end.next_offset, None);
    fleet.cleanup().await;
}
