//! The fleet end to end: real `deploy-gate` processes (enqueue, worker, notify,
//! webhook, wait, watch, approve) on the real local RabbitMQ and Redis, with the
//! mock model API, mock Slack and mock GitHub standing in for the outside world.
//! Each test runs under its own prefix of names and keys (see `fleet_harness`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gate_core::MergeEvent;
use gate_testkit::github::{
    delivery_headers, Comparison, MockCommit, MockFile, MockGitHub, PushEvent,
};
use gate_testkit::proxy::FaultProxy;
use gate_testkit::slack::validate_blocks;
use serde_json::Value;

use crate::fleet_harness::{
    amqp_url_via, app_repo, commit_code, commit_docs, commit_drop_table, context_of, eventually,
    free_port, http_post, lines_of, merge_event, redis_url_via, wait_for_listener, Fleet,
    FleetOptions, LogReader, REPO_NAME,
};

const RABBITMQ: &str = "127.0.0.1:5672";
const REDIS: &str = "127.0.0.1:6379";

fn with_models() -> FleetOptions {
    FleetOptions { models: true }
}

fn rules_only() -> FleetOptions {
    FleetOptions::default()
}

/// Asserts that every event of `ids` has exactly one distinct decision in the
/// log (identical copies allowed: a redelivery republishes the stored one) and
/// that the log holds nothing else. Returns how many extra identical copies it saw.
fn assert_one_decision_per_event(log: &LogReader, ids: &BTreeSet<String>) -> usize {
    let by_event = log.by_event();
    let logged: BTreeSet<String> = by_event.keys().cloned().collect();
    let missing: Vec<&String> = ids.difference(&logged).collect();
    let unexpected: Vec<&String> = logged.difference(ids).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "missing decisions: {missing:?}; decisions for unknown events: {unexpected:?}"
    );
    let mut n_duplicates = 0;
    for (event_id, copies) in &by_event {
        let first = &copies[0];
        for copy in &copies[1..] {
            assert_eq!(
                (
                    &copy["decided_at"],
                    &copy["risk_score"],
                    &copy["recommendation"]
                ),
                (
                    &first["decided_at"],
                    &first["risk_score"],
                    &first["recommendation"]
                ),
                "{event_id} has two different decisions in the log"
            );
            assert_eq!(copy, first, "{event_id}: copies differ");
        }
        n_duplicates += copies.len() - 1;
    }
    n_duplicates
}

/// The Slack messages that mention `event_id` (the context line names the event).
fn messages_about<'a>(
    messages: &'a [gate_testkit::slack::SlackRequest],
    event_id: &str,
) -> Vec<&'a Value> {
    messages
        .iter()
        .map(|m| &m.body)
        .filter(|body| body.to_string().contains(event_id))
        .collect()
}

#[test]
fn enqueue_then_wait_exits_0_for_docs_and_1_for_a_destructive_migration_and_slack_hears_of_the_block_only(
) {
    let fleet = Fleet::start(with_models());
    let worker = fleet.spawn_worker(&[]);
    let notifier = fleet.spawn_notifier(&[]);
    let repo = app_repo();

    commit_docs(&repo, 1);
    let docs_id = format!("{}docs", fleet.prefix);
    fleet.enqueue(&repo, &docs_id);
    let docs = fleet.wait_for(&docs_id, 0);
    assert_eq!(docs["recommendation"], "deploy", "{docs:#}");
    assert_eq!(docs["repo"], REPO_NAME);
    assert_eq!(docs["head"], repo.head());
    commit_drop_table(&repo);
    let block_id = format!("{}drop", fleet.prefix);
    fleet.enqueue(&repo, &block_id);
    let block = fleet.wait_for(&block_id, 1);
    assert_eq!(block["recommendation"], "block", "{block:#}");
    assert!(
        block["risks"].to_string().contains("DROP TABLE"),
        "{block:#}"
    );
    let analyzers: Vec<&str> = block["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["analyzer"].as_str().unwrap())
        .collect();
    assert!(
        analyzers.len() == 2 && analyzers[1].starts_with("anthropic/"),
        "rules and the mock model decided: {analyzers:?}"
    );
    assert!(fleet.model_calls() >= 1);

    fleet.wait_for_slack(1, Duration::from_secs(30));
    // Anything late (a duplicate, or the docs change) would arrive in this time.
    std::thread::sleep(Duration::from_millis(1500));
    let messages = fleet.slack_messages();
    assert_eq!(
        messages.len(),
        1,
        "exactly one Slack message: {:#?}",
        messages.iter().map(|m| &m.body).collect::<Vec<_>>()
    );
    assert_eq!(
        fleet.slack.requests().len(),
        1,
        "no request was refused or retried"
    );
    let body = &messages[0].body;
    let blocks = body["blocks"].as_array().expect("a Block Kit message");
    validate_blocks(blocks).unwrap();
    let text = body.to_string();
    assert!(
        text.contains(&block_id),
        "the message names the event: {body:#}"
    );
    assert!(
        text.contains("block") && text.contains(&block["head"].as_str().unwrap()[..7]),
        "recommendation and commit: {body:#}"
    );
    assert!(!text.contains(&docs_id), "{body:#}");
    assert!(fleet.is_running(worker) && fleet.is_running(notifier));
}

#[test]
fn the_same_event_twice_is_one_decision_and_one_model_call_and_a_twin_diff_comes_from_the_verdict_cache(
) {
    let fleet = Fleet::start(with_models());
    let repo = app_repo();
    commit_code(&repo, 1, "");
    let event_id = format!("{}once", fleet.prefix);
    // Both copies wait in the queue before any worker runs, so they are handled
    // at the same time (concurrency 4), the hardest case for idempotency.
    fleet.enqueue(&repo, &event_id);
    fleet.enqueue(&repo, &event_id);
    let _worker = fleet.spawn_worker(&[]);

    let first = fleet.wait_for(&event_id, 0);
    assert_eq!(first["cached"], false, "{first:#}");
    let mut log = fleet.log_reader();
    log.read_until(
        Duration::from_secs(30),
        "both copies of the event answered",
        |entries| {
            entries
                .iter()
                .filter(|d| d["event_id"] == event_id.as_str())
                .count()
                >= 2
        },
    );
    log.drain(Duration::from_millis(500));
    let copies = log.of(&event_id);
    assert_eq!(copies.len(), 2, "one answer per enqueued copy");
    for copy in &copies {
        assert_eq!(
            copy, &first,
            "the second answer is the stored decision, republished"
        );
    }
    assert_eq!(fleet.stored_decision(&event_id).as_ref(), Some(&first));
    assert_eq!(fleet.model_calls(), 1, "the model was asked once");

    let twin_id = format!("{}twin", fleet.prefix);
    fleet.enqueue(&repo, &twin_id);
    let twin = fleet.wait_for(&twin_id, 0);
    assert_eq!(twin["cached"], true, "{twin:#}");
    assert_eq!(twin["risk_score"], first["risk_score"]);
    assert_eq!(twin["cost_usd"].as_f64(), Some(0.0), "{twin:#}");
    assert_ne!(twin["decided_at"], Value::Null);
    assert_eq!(fleet.model_calls(), 1, "the verdict cache answered");
}

#[test]
fn poison_messages_are_dead_lettered_with_their_reason_and_the_worker_goes_on() {
    let fleet = Fleet::start(rules_only());
    let worker = fleet.spawn_worker(&[]);
    let routing_key = gate_bus::event_routing_key(REPO_NAME);
    fleet.publish_raw(&routing_key, "poison-not-json", b"{not json");
    fleet.publish_raw(
        &routing_key,
        "poison-future",
        br#"{"schema_version": 99, "event_id": "from-the-future"}"#,
    );

    let mut dead = fleet.dead_letters(2, Duration::from_secs(30));
    dead.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    assert_eq!(dead[0].message_id.as_deref(), Some("poison-future"));
    let reason = dead[0].reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("unknown_version:") && reason.contains("99"),
        "{reason}"
    );
    assert!(dead[0].payload.starts_with(br#"{"schema_version": 99"#));
    assert_eq!(dead[1].message_id.as_deref(), Some("poison-not-json"));
    let reason = dead[1].reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with("malformed:"), "{reason}");
    assert_eq!(dead[1].payload, b"{not json");
    assert!(fleet.is_running(worker), "the worker survived the poison");

    let repo = app_repo();
    commit_docs(&repo, 1);
    let good_id = format!("{}good", fleet.prefix);
    fleet.enqueue(&repo, &good_id);
    fleet.wait_for(&good_id, 0);
    let mut log = fleet.log_reader();
    let ids = BTreeSet::from([good_id]);
    log.read_all_of(&ids, Duration::from_secs(10));
    log.drain(Duration::from_millis(300));
    assert_eq!(assert_one_decision_per_event(&log, &ids), 0);
}

#[test]
fn a_worker_killed_mid_run_and_restarted_leaves_exactly_one_decision_per_event() {
    const N_EVENTS: usize = 200;
    let fleet = Fleet::start(rules_only());
    let docs = app_repo();
    commit_docs(&docs, 1);
    let docs_context = context_of(&docs);
    let drop = app_repo();
    commit_drop_table(&drop);
    let drop_context = context_of(&drop);
    // Every fourth event blocks, so decisions and notifications are both in play.
    let events: Vec<MergeEvent> = (0..N_EVENTS)
        .map(|idx| {
            let context = if idx % 4 == 3 {
                &drop_context
            } else {
                &docs_context
            };
            merge_event(&format!("{}ev-{idx:03}", fleet.prefix), context)
        })
        .collect();
    let ids: BTreeSet<String> = events.iter().map(|e| e.event_id.clone()).collect();
    fleet.publish_events(&events);

    let mut log = fleet.log_reader();
    let worker = fleet.spawn_worker(&[]);
    // Killed once its own log says it decided a few events (the file is written at
    // once; the decisions log shows them later): by then it has more in flight
    // (prefetch 4) and most of the queue still to go.
    eventually(Duration::from_secs(60), "the first decisions", || {
        fleet.log(worker).matches(" decided ").count() >= 20
    });
    fleet.kill(worker);
    log.drain(Duration::from_millis(1000));
    let decided_before_kill: BTreeSet<String> = log.by_event().keys().cloned().collect();
    assert!(
        decided_before_kill.len() < N_EVENTS,
        "the worker finished all {N_EVENTS} events before it was killed: kill it earlier"
    );

    let started = Instant::now();
    let _restarted = fleet.spawn_worker(&[]);
    log.read_all_of(&ids, Duration::from_secs(60));
    log.drain(Duration::from_millis(1000));
    let n_duplicates = assert_one_decision_per_event(&log, &ids);
    eprintln!(
        "SIGKILL test: {} of {N_EVENTS} events decided before the kill; the restarted worker finished the rest in {:?}; {} identical republished copies in the log",
        decided_before_kill.len(),
        started.elapsed(),
        n_duplicates
    );
    for event_id in &ids {
        let stored = fleet.stored_decision(event_id).expect("a stored decision");
        assert_eq!(&stored, &log.of(event_id)[0], "{event_id}");
    }
}

#[test]
fn with_redis_cut_decisions_keep_flowing_and_the_store_is_used_again_when_it_returns() {
    let fleet = Fleet::start(with_models());
    let proxy = FaultProxy::start(REDIS.parse::<SocketAddr>().unwrap());
    let redis_url = redis_url_via(proxy.addr());
    let worker = fleet.spawn_worker(&[("DEPLOY_GATE__REDIS__URL", &redis_url)]);
    let repo = app_repo();

    commit_code(&repo, 0, "");
    let before = format!("{}before", fleet.prefix);
    fleet.enqueue(&repo, &before);
    fleet.wait_for(&before, 0);
    assert!(
        fleet.stored_decision(&before).is_some(),
        "Redis works before the cut"
    );

    proxy.cut();
    let cut_at = Instant::now();
    for n in 1..=3 {
        commit_code(&repo, n, "");
        let event_id = format!("{}during-{n}", fleet.prefix);
        fleet.enqueue(&repo, &event_id);
        let decision = fleet.wait_for(&event_id, 0);
        assert_eq!(decision["recommendation"], "deploy");
        assert!(
            fleet.stored_decision(&event_id).is_none(),
            "the worker cannot have stored {event_id}: the cut did not cut"
        );
    }
    let during = cut_at.elapsed();
    assert!(
        during < Duration::from_secs(30),
        "3 decisions took {during:?}"
    );
    assert_eq!(fleet.model_calls(), 4);

    proxy.restore();
    // The worker tries Redis again on its next operations; the first events after
    // the restore may still be decided without it.
    let mut recovered = None;
    for n in 10..30 {
        commit_code(&repo, n, "");
        let event_id = format!("{}after-{n}", fleet.prefix);
        fleet.enqueue(&repo, &event_id);
        fleet.wait_for(&event_id, 0);
        if fleet.stored_decision(&event_id).is_some() {
            recovered = Some((n - 10, event_id));
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (n_unstored, recovered_id) = recovered.expect("the worker never stored a decision again");
    eprintln!("Redis test: {n_unstored} event(s) after the restore were decided before the store was back");

    // Re-enqueued, the event is answered from the store: the same decision, no
    // model call (a re-analysis would carry a new decided_at).
    let calls = fleet.model_calls();
    fleet.enqueue(&repo, &recovered_id);
    let mut log = fleet.log_reader();
    log.read_until(
        Duration::from_secs(30),
        "the re-enqueued event answered",
        |entries| {
            entries
                .iter()
                .filter(|d| d["event_id"] == recovered_id.as_str())
                .count()
                >= 2
        },
    );
    let copies = log.of(&recovered_id);
    assert_eq!(copies[0], copies[1], "republished from the store");
    assert_eq!(fleet.model_calls(), calls, "no second model call");

    let worker_log = fleet.log(worker);
    assert_eq!(
        worker_log.matches("redis is unavailable").count(),
        1,
        "one warning per outage:\n{worker_log}"
    );
    assert!(
        worker_log.contains("redis is reachable again"),
        "{worker_log}"
    );
    assert!(fleet.is_running(worker));
}

#[test]
fn with_the_broker_connection_cut_the_worker_and_notifier_reconnect_and_nothing_is_lost() {
    let fleet = Fleet::start(rules_only());
    let proxy = FaultProxy::start(RABBITMQ.parse::<SocketAddr>().unwrap());
    let amqp_url = amqp_url_via(proxy.addr());
    let env = [("DEPLOY_GATE__AMQP__URL", amqp_url.as_str())];
    let worker = fleet.spawn_worker(&env);
    let notifier = fleet.spawn_notifier(&env);
    eventually(
        Duration::from_secs(30),
        "worker and notifier connected",
        || fleet.log(worker).contains("consuming") && fleet.log(notifier).contains("consuming"),
    );

    let docs = app_repo();
    commit_docs(&docs, 1);
    let docs_context = context_of(&docs);
    let drop = app_repo();
    commit_drop_table(&drop);
    let drop_context = context_of(&drop);
    let make = |range: std::ops::Range<usize>| -> Vec<MergeEvent> {
        range
            .map(|idx| {
                let (kind, context) = if idx % 2 == 1 {
                    ("block", &drop_context)
                } else {
                    ("docs", &docs_context)
                };
                merge_event(&format!("{}{kind}-{idx:02}", fleet.prefix), context)
            })
            .collect()
    };
    let first_batch = make(0..10);
    let second_batch = make(10..20);
    let all: Vec<MergeEvent> = first_batch.iter().chain(&second_batch).cloned().collect();
    let ids: BTreeSet<String> = all.iter().map(|e| e.event_id.clone()).collect();
    let block_ids: Vec<String> = all
        .iter()
        .filter(|e| e.event_id.contains("block-"))
        .map(|e| e.event_id.clone())
        .collect();

    let mut log = fleet.log_reader();
    fleet.publish_events(&first_batch);
    log.read_until(Duration::from_secs(30), "the first decisions", |entries| {
        entries.len() >= 2
    });
    let accepted_before = proxy.n_accepted();
    proxy.cut();
    // Published straight to the broker while the fleet is cut off from it.
    fleet.publish_events(&second_batch);
    std::thread::sleep(Duration::from_secs(1));
    proxy.restore();

    log.read_all_of(&ids, Duration::from_secs(60));
    log.drain(Duration::from_millis(1000));
    let n_duplicates = assert_one_decision_per_event(&log, &ids);
    for block_id in &block_ids {
        assert_eq!(log.of(block_id)[0]["recommendation"], "block");
    }

    fleet.wait_for_slack(block_ids.len(), Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(1500));
    let messages = fleet.slack_messages();
    for block_id in &block_ids {
        assert_eq!(
            messages_about(&messages, block_id).len(),
            1,
            "{block_id} is notified exactly once"
        );
    }
    assert_eq!(
        messages.len(),
        block_ids.len(),
        "one Slack message per block, nothing for the docs changes"
    );
    for message in &messages {
        validate_blocks(message.body["blocks"].as_array().unwrap()).unwrap();
    }

    assert!(
        proxy.n_accepted() >= accepted_before + 2,
        "both processes connected again through the proxy ({} connections before the cut, {} after)",
        accepted_before,
        proxy.n_accepted()
    );
    assert!(fleet.is_running(worker) && fleet.is_running(notifier));
    assert!(
        fleet.log(worker).contains("reconnected to the broker"),
        "{}",
        fleet.log(worker)
    );
    assert!(
        fleet.log(notifier).contains("reconnected to the broker"),
        "{}",
        fleet.log(notifier)
    );
    eprintln!("broker cut test: {n_duplicates} identical republished copies in the log");
}

#[test]
fn a_webhook_with_a_bad_signature_enqueues_nothing_and_a_good_push_gets_a_decision() {
    const SECRET: &str = "webhook-secret-for-e2e";
    const TOKEN: &str = "ghp_e2eTestTokenNotReal";
    let fleet = Fleet::start(rules_only());
    let github = fleet.block_on(MockGitHub::start(TOKEN)).unwrap();
    fleet.append_config(&format!(
        "[webhook]\napi_base_url = \"{}\"\n",
        github.base_url()
    ));
    let (base, head) = ("a".repeat(40), "b".repeat(40));
    let commit = MockCommit::new(&head, &base, "docs: how to run the shop", "Ada Lovelace");
    github.script_compare(
        REPO_NAME,
        &base,
        &head,
        Comparison::new(
            &base,
            vec![commit.clone()],
            vec![MockFile::with_patch(
                "README.md",
                "modified",
                "@@ -1,2 +1,3 @@\n # shop\n A small shop.\n+Run it with `flask run`.",
            )],
        ),
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let _webhook = fleet.spawn(
        &["webhook", "--listen", &addr],
        &[("GITHUB_WEBHOOK_SECRET", SECRET), ("GITHUB_TOKEN", TOKEN)],
    );
    wait_for_listener(&addr, Duration::from_secs(30));
    let body = PushEvent {
        repo: REPO_NAME.to_string(),
        git_ref: "refs/heads/main".to_string(),
        before: base.clone(),
        after: head.clone(),
        commits: vec![commit],
    }
    .to_json();

    let bad_delivery = "0b5e7f1c-0000-4000-8000-00000000bad1";
    let headers = delivery_headers("push", bad_delivery, "not-the-secret", &body);
    let (status, answer) = http_post(&addr, "/github", &headers, &body);
    assert_eq!(status, 401, "{answer}");
    assert!(
        fleet.events_queue_stays_empty(1000),
        "a delivery with a bad signature enqueued something"
    );
    assert!(github.requests().is_empty(), "nothing was fetched for it");

    let good_delivery = "0b5e7f1c-0000-4000-8000-00000000600d";
    let headers = delivery_headers("push", good_delivery, SECRET, &body);
    let (status, answer) = http_post(&addr, "/github", &headers, &body);
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let event_id = format!("gh-{good_delivery}");
    assert_eq!(answer["event_id"], event_id.as_str());

    let _worker = fleet.spawn_worker(&[]);
    let decision = fleet.wait_for(&event_id, 0);
    assert_eq!(decision["repo"], REPO_NAME);
    assert_eq!(decision["base"], base.as_str());
    assert_eq!(decision["head"], head.as_str());
    assert_eq!(decision["recommendation"], "deploy", "{decision:#}");

    let never = fleet.run(&[
        "wait",
        "--event",
        &format!("gh-{bad_delivery}"),
        "--timeout",
        "2s",
    ]);
    assert_eq!(
        never.code,
        3,
        "no decision for the bad delivery: {}",
        never.all_output()
    );
}

#[test]
fn approving_a_hold_makes_wait_return_the_human_decision_and_watch_streams_both() {
    let fleet = Fleet::start(with_models());
    let _worker = fleet.spawn_worker(&[]);
    let repo = app_repo();
    commit_code(&repo, 1, "MOCK:score=60");
    let event_id = format!("{}held", fleet.prefix);
    fleet.enqueue(&repo, &event_id);
    let held = fleet.wait_for(&event_id, 0);
    assert_eq!(held["recommendation"], "hold", "{held:#}");
    assert!(held.get("approval").is_none());
    let strict = fleet.wait(&event_id, &["--fail-on", "hold"]);
    assert_eq!(strict.code, 4, "{}", strict.all_output());

    // Another repository's decision, which `watch --repo` must leave out.
    let other = fleet.run(&[
        "enqueue",
        "--repo",
        repo.path().to_str().unwrap(),
        "--repo-name",
        "acme/other",
        "--event-id",
        &format!("{}other", fleet.prefix),
    ]);
    assert_eq!(other.code, 0, "{}", other.all_output());
    fleet.wait_for(&format!("{}other", fleet.prefix), 0);

    let approved = fleet.run(&[
        "approve",
        &event_id,
        "--by",
        "alice",
        "--reason",
        "rollback plan reviewed",
    ]);
    assert_eq!(approved.code, 0, "{}", approved.all_output());
    let approved = approved.decision();
    assert_eq!(approved["recommendation"], "deploy");
    assert_eq!(approved["approval"]["by"], "alice");
    assert_eq!(approved["approval"]["superseded"], "hold");

    let after = fleet.wait_for(&event_id, 0);
    assert_eq!(after["recommendation"], "deploy", "{after:#}");
    assert_eq!(after["approval"]["by"], "alice");
    assert_eq!(after["approval"]["reason"], "rollback plan reviewed");

    let (watch, stdout) =
        fleet.spawn_with_stdout(&["watch", "--from", "beginning", "--repo", REPO_NAME], &[]);
    let lines = lines_of(stdout);
    let mut watched: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while watched.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "watch printed {watched:#?} and then nothing within 30 s:\n{}",
                fleet.log(watch)
            )
        });
        let decision: Value = serde_json::from_str(&line)
            .unwrap_or_else(|err| panic!("watch printed a line that is not JSON ({err}): {line}"));
        crate::fleet_harness::assert_valid_decision(&decision);
        watched.push(decision);
    }
    assert_eq!(fleet.terminate(watch, Duration::from_secs(10)), Some(0));
    // Whatever it printed before it stopped.
    watched.extend(
        lines
            .try_iter()
            .map(|line| serde_json::from_str::<Value>(&line).unwrap()),
    );
    assert!(
        watched.iter().all(|d| d["repo"] == REPO_NAME),
        "watch --repo printed another repository's decision: {watched:#?}"
    );
    assert_eq!(watched.len(), 2, "{watched:#?}");
    assert_eq!(watched[0], held, "the automatic hold first");
    assert_eq!(watched[1], approved, "then the person's decision");
}
