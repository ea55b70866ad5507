//! The notifier against the real local RabbitMQ and Redis and the mock Slack:
//! Block Kit, pacing, Retry-After, retries, dead letters, exactly-once delivery,
//! the generic webhook, broker reconnects and shutdown.

#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::BTreeMap, process::Command, time::Duration};

use gate_bus::{Outgoing, GATE_ERROR_HEADER};
use gate_core::{Notification, Recommendation};
use gate_notifier::{ChannelSettings, Env, NotifierError, NotifierSettings, Remedy};
use gate_testkit::slack::{validate_blocks, SlackFault};
use serde_json::Value;

use common::{fast_settings, notification, slack_channel, TestWorld};

/// Every mrkdwn / plain text in a Block Kit message, joined.
fn block_texts(body: &Value) -> String {
    let mut texts = vec![];
    for block in body["blocks"].as_array().unwrap() {
        texts.extend(block["text"]["text"].as_str().map(str::to_string));
        for item in block["fields"]
            .as_array()
            .into_iter()
            .chain(block["elements"].as_array())
            .flatten()
        {
            texts.extend(item["text"].as_str().map(str::to_string));
        }
    }
    texts.join("\n")
}

/// The next dead letter's message id and `x-gate-error`, within `secs`.
async fn next_dead_letter(consumer: &mut gate_bus::Consumer, secs: u64) -> (String, String) {
    let delivery = tokio::time::timeout(Duration::from_secs(secs), consumer.next())
        .await
        .unwrap_or_else(|_| panic!("no dead letter within {secs} s"))
        .expect("consumer ended")
        .expect("delivery error");
    let id = delivery.message_id().unwrap_or_default().to_string();
    let reason = delivery
        .header(GATE_ERROR_HEADER)
        .unwrap_or_default()
        .to_string();
    delivery.ack().await.unwrap();
    (id, reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_notification_reaches_slack_as_valid_block_kit_with_the_risk_and_the_revert_command(
) {
    let world = TestWorld::start().await;
    let url = world.slack.webhook_url();
    let env = Env::from_pairs([("SLACK_OPS", url.as_str())]);
    let notifier = world.start_notifier(
        fast_settings(&[("ops", slack_channel("SLACK_OPS"))]),
        world.deps(env),
    );
    world.publish(&notification("ev-block", "ops")).await;

    let messages = world
        .slack
        .wait_for_messages(1, Duration::from_secs(10))
        .await;
    assert_eq!(messages.len(), 1);
    let body = &messages[0].body;
    assert_eq!(messages[0].headers["content-type"], "application/json");
    validate_blocks(body["blocks"].as_array().unwrap()).expect("valid Block Kit");
    let header = body["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        header.contains("BLOCK") && header.contains("92/100"),
        "{header}"
    );
    let texts = block_texts(body);
    for expected in [
        "acme/shop",
        "`bbbbbbb`",
        "Drops the users.legacy column &amp; its data.",
        ":red_circle: *critical* · schema — A column is dropped: &lt;irreversible&gt; without a backup.",
        "`db/migrations/002_drop.sql:1`",
        "• `git revert bbbbbbbbbbbb`",
        "• Restore the column from the nightly backup.",
        "event `ev-block` · decided 2025-01-01T00:00:01Z",
    ] {
        assert!(texts.contains(expected), "missing {expected:?} in:\n{texts}");
    }
    let fallback = body["text"].as_str().unwrap();
    assert!(
        fallback.starts_with("BLOCK: acme/shop at bbbbbbb scored 92/100."),
        "{fallback}"
    );

    let stats = notifier.wait_for_stats(5, |s| s.delivered == 1).await;
    assert_eq!(
        (stats.failed, stats.dead_lettered, stats.retried),
        (0, 0, 0)
    );
    notifier.stop().await.unwrap();
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_no_earlier_than_its_retry_after() {
    let world = TestWorld::start().await;
    let url = world.slack.webhook_url();
    world.slack.push_fault(
        SlackFault::RateLimited {
            retry_after_secs: 2,
        },
        1,
    );
    let notifier = world.start_notifier(
        fast_settings(&[("ops", slack_channel("SLACK_OPS"))]),
        world.deps(Env::from_pairs([("SLACK_OPS", url.as_str())])),
    );
    world.publish(&notification("ev-429", "ops")).await;

    world
        .slack
        .wait_for_messages(1, Duration::from_secs(15))
        .await;
    let requests = world.slack.requests_to(&url);
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 200]);
    let gap = requests[1].arrived_at - requests[0].arrived_at;
    assert!(
        gap >= Duration::from_millis(1_950),
        "retried {gap:?} after a 429 with Retry-After: 2"
    );
    let stats = notifier.wait_for_stats(5, |s| s.delivered == 1).await;
    assert_eq!((stats.rate_limited, stats.retried, stats.failed), (1, 1, 0));
    notifier.stop().await.unwrap();
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_429s_holds_every_notification_to_the_webhook_until_it_passes() {
    let world = TestWorld::start().await;
    let url = world.slack.webhook_url();
    world.slack.rate_limit_for(Duration::from_millis(1_500), 1);
    let notifier = world.start_notifier(
        fast_settings(&[("ops", slack_channel("SLACK_OPS"))]),
        world.deps(Env::from_pairs([("SLACK_OPS", url.as_str())])),
    );
    for idx in 0..3 {
        world
            .publish(&notification(&format!("ev-burst-{idx}"), "ops"))
            .await;
    }

    world
        .slack
        .wait_for_messages(3, Duration::from_secs(15))
        .await;
    let requests = world.slack.requests();
    let first = requests[0].arrived_at;
    assert!(
        requests.iter().all(|r| {
            let since = r.arrived_at - first;
            since < Duration::from_millis(200) || since >= Duration::from_millis(950)
        }),
        "a request went out while the webhook said to wait"
    );
    assert!(
        requests.len() <= 9,
        "{} requests for 3 messages",
        requests.len()
    );
    let stats = notifier.wait_for_stats(5, |s| s.delivered == 3).await;
    assert!(stats.rate_limited >= 3, "{stats:?}");
    assert_eq!(stats.dead_lettered, 0);
    notifier.stop().await.unwrap();
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_until_slack_accepts_the_message() {
    let world = TestWorld::start().await;
    let url = world.slack.webhook_url();
    world.slack.push_fault(SlackFault::ServerError, 2);
    let notifier = world.start_notifier(
        fast_settings(&[("ops", slack_channel("SLACK_OPS"))]),
        world.deps(Env::from_pairs([("SLACK_OPS", url.as_str())])),
    );
    world.publish(&notification("ev-5xx", "ops")).await;

    world
        .slack
        .wait_for_messages(1, Duration::from_secs(10))
        .await;
    let statuses: Vec<u16> = world.slack.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 200]);
    let stats = notifier.wait_for_stats(5, |s| s.delivered == 1).await;
    assert_eq!(
        (stats.failed, stats.retried, stats.dead_lettered),
        (2, 2, 0)
    );
    notifier.stop().await.unwrap();
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_that_keeps_failing_dead_letters_the_notification_after_max_attempts() {
    let world = TestWorld::start().await;
    let url = world.slack.webhook_url();
    world.slack.push_fault(SlackFault::ServerError, 10);
    let mut dead_letters = world.dead_letters().await;
    let settings = NotifierSettings {
        max_attempts: 3,
        ..fast_settings(&[("ops", slack_channel("SLACK_OPS"))])
    };
    let notifier = world.start_notifier(
        settings,
        world.deps(Env::from_pairs([("SLACK_OPS", url.as_str())])),
    );
    world.publish(&notification("ev-down", "ops")).await;

    let (id, reason) = next_dead_letter(&mut dead_letters, 10).await;
    assert_eq!(id, "ev-down");
    assert_eq!(
        reason,
        "failed: channel `ops` (slack): gave up after 3 failed attempt(s); last: HTTP 500: internal_error"
    );
    assert_eq!(world.slack.requests().len(), 3);
    let stats = notifier.wait_for_stats(5, |s| s.dead_lettered == 1).await;
    assert_eq!((stats.failed, stats.delivered), (3, 0));
    notifier.stop().await.unwrap();
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_channel_dead_letters_the_notification_at_once() {
    let world = TestWorld::start().await;
    let url = world.slack.webhook_url();
    world.slack.push_fault(SlackFault::ChannelArchived, 1);
    let mut dead_letters = world.dead_letters().await;
    let notifier = world.start_notifier(
        fast_settings(&[("ops", slack_channel("SLACK_OPS"))]),
        world.deps(Env::from_pairs([("SLACK_OPS", url.as_str())])),
    );
    world.publish(&notification("ev-archived", "ops")).await;

    let (id, reason) = next_dead_letter(&mut dead_letters, 10).await;
    assert_eq!(id, "ev-archived");
    assert_eq!(
        reason,
        "failed: channel `ops` (slack): HTTP 410: channel_is_archived"
    );
    assert_eq!(world.slack.requests().len(), 1, "no retry after a 410");
    notifier.wait_for_stats(5, |s| s.dead_lettered == 1).await;
    notifier.stop().await.unwrap();
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_notifications_to_one_webhook_arrive_at_least_a_second_apart() {
    let world = TestWorld::start().await;
    let url = world.slack.webhook_url();
    // Two channels on the same webhook share its pace.
    let settings = NotifierSettings {
        min_interval_ms: 1_000,
        ..fast_settings(&[
            ("ops", slack_channel("SLACK_OPS")),
            ("ops-too", slack_channel("SLACK_OPS")),
        ])
    };
    let notifier = world.start_notifier(
        settings,
        world.deps(Env::from_pairs([("SLACK_OPS", url.as_str())])),
    );
    for idx in 0..5 {
        let channel = if idx % 2 == 0 { "ops" } else { "ops-too" };
        world
            .publish(&notification(&format!("ev-rate-{idx}"), channel))
            .await;
    }

    let messages = world
        .slack
        .wait_for_messages(5, Duration::from_secs(20))
        .await;
    let mut arrivals: Vec<_> = messages.iter().map(|m| m.arrived_at).collect();
    arrivals.sort();
    let tolerance = Duration::from_millis(30);
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap + tolerance >= Duration::from_secs(1),
            "two messages {gap:?} apart"
        );
    }
    assert!(arrivals[4] - arrivals[0] + tolerance >= Duration::from_secs(4));
    notifier.wait_for_stats(5, |s| s.delivered == 5).await;
    notifier.stop().await.unwrap();
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_published_twice_is_delivered_once() {
    let world = TestWorld::start().await;
    let url = world.slack.webhook_url();
    let notifier = world.start_notifier(
        fast_settings(&[("ops", slack_channel("SLACK_OPS"))]),
        world.deps(Env::from_pairs([("SLACK_OPS", url.as_str())])),
    );
    let twice = notification("ev-twice", "ops");
    world.publish(&twice).await;
    world.publish(&twice).await;

    let stats = notifier
        .wait_for_stats(10, |s| s.delivered + s.duplicates_skipped == 2)
        .await;
    assert_eq!((stats.delivered, stats.duplicates_skipped), (1, 1));
    assert_eq!(world.slack.messages().len(), 1);

    // A later redelivery (another notifier process, hours later) is skipped too.
    notifier.stop().await.unwrap();
    let again = world.start_notifier(
        fast_settings(&[("ops", slack_channel("SLACK_OPS"))]),
        world.deps(Env::from_pairs([("SLACK_OPS", url.as_str())])),
    );
    world.publish(&twice).await;
    again
        .wait_for_stats(10, |s| s.duplicates_skipped == 1)
        .await;
    assert_eq!(world.slack.messages().len(), 1);
    again.stop().await.unwrap();
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generic_webhook_target_receives_the_notification_json() {
    let world = TestWorld::start().await;
    let url = world.slack.json_webhook_url();
    let channel = ChannelSettings::Webhook {
        url_env: "AUDIT_URL".into(),
        headers: BTreeMap::from([("X-Team".to_string(), "platform".to_string())]),
        secret_headers_env: BTreeMap::from([(
            "Authorization".to_string(),
            "AUDIT_TOKEN".to_string(),
        )]),
    };
    let env = Env::from_pairs([
        ("AUDIT_URL", url.as_str()),
        ("AUDIT_TOKEN", "Bearer s3cret"),
    ]);
    let notifier = world.start_notifier(fast_settings(&[("audit", channel)]), world.deps(env));
    let sent = notification("ev-json", "audit");
    world.publish(&sent).await;

    let messages = world
        .slack
        .wait_for_messages(1, Duration::from_secs(10))
        .await;
    let received: Notification = serde_json::from_value(messages[0].body.clone()).unwrap();
    assert_eq!(received, sent);
    assert_eq!(received.decision.recommendation, Recommendation::Block);
    let headers = &messages[0].headers;
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["idempotency-key"], "audit:ev-json");
    assert_eq!(headers["x-team"], "platform");
    assert_eq!(headers["authorization"], "Bearer s3cret");
    notifier.wait_for_stats(5, |s| s.delivered == 1).await;
    notifier.stop().await.unwrap();
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_notifications_and_unknown_channels_are_dead_lettered_with_the_reason() {
    let world = TestWorld::start().await;
    let url = world.slack.webhook_url();
    let mut dead_letters = world.dead_letters().await;
    let notifier = world.start_notifier(
        fast_settings(&[("ops", slack_channel("SLACK_OPS"))]),
        world.deps(Env::from_pairs([("SLACK_OPS", url.as_str())])),
    );
    let garbage = Outgoing::bytes("notification", "ev-garbage", b"{not json".to_vec());
    world
        .publisher
        .publish(
            &world.bus_settings.topology.results_exchange,
            "notify.ops.critical",
            &garbage,
        )
        .await
        .unwrap();
    world.publish(&notification("ev-nowhere", "nowhere")).await;

    let mut reasons = BTreeMap::new();
    for _ in 0..2 {
        let (id, reason) = next_dead_letter(&mut dead_letters, 10).await;
        reasons.insert(id, reason);
    }
    assert!(
        reasons["ev-garbage"].starts_with("malformed: "),
        "{reasons:?}"
    );
    assert_eq!(
        reasons["ev-nowhere"],
        "failed: unknown channel `nowhere`: not in notify.channels"
    );
    assert!(world.slack.requests().is_empty());
    let stats = notifier.wait_for_stats(5, |s| s.dead_lettered == 2).await;
    assert_eq!(stats.delivered, 0);
    notifier.stop().await.unwrap();
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_notifications_are_still_delivered_and_counted() {
    let world = TestWorld::start().await;
    let url = world.slack.webhook_url();
    let mut deps = world.deps(Env::from_pairs([("SLACK_OPS", url.as_str())]));
    // Nothing listens on port 1.
    deps.redis_url = "redis://127.0.0.1:1/".to_string();
    let notifier =
        world.start_notifier(fast_settings(&[("ops", slack_channel("SLACK_OPS"))]), deps);
    world.publish(&notification("ev-no-redis", "ops")).await;

    world
        .slack
        .wait_for_messages(1, Duration::from_secs(10))
        .await;
    let stats = notifier.wait_for_stats(5, |s| s.delivered == 1).await;
    assert_eq!(stats.dedup_unavailable, 1);
    notifier.stop().await.unwrap();
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_redelivered_after_the_connection_dropped_is_not_posted_again_even_with_redis_down()
{
    let world = TestWorld::start().await;
    let url = world.slack.webhook_url();
    let mut deps = world.deps(Env::from_pairs([("SLACK_OPS", url.as_str())]));
    // Nothing listens on port 1: no delivered marks.
    deps.redis_url = "redis://127.0.0.1:1/".to_string();
    let notifier =
        world.start_notifier(fast_settings(&[("ops", slack_channel("SLACK_OPS"))]), deps);
    // Slack holds the notification back while its connection is closed under it:
    // it is posted after the burst, its ack fails, and the broker gives it back.
    // The burst outlasts the two rabbitmqctl calls below (about a second each on a
    // 2-core machine; at 1.5 s the close could come after the ack) and ends before
    // the notifier's attempts run out (5, a second apart by the Retry-After).
    world.slack.rate_limit_for(Duration::from_millis(3000), 1);
    world.publish(&notification("ev-once", "ops")).await;
    world
        .slack
        .wait_for_requests(1, Duration::from_secs(10))
        .await;
    let name = format!("{}notifier", world.prefix);
    assert_eq!(close_connections_from_the_broker(&name), 1);

    let stats = notifier
        .wait_for_stats(20, |s| s.reconnects == 1 && s.duplicates_skipped == 1)
        .await;
    assert_eq!(stats.delivered, 1, "{stats:?}");
    assert_eq!(
        world.slack.messages().len(),
        1,
        "the redelivered copy was posted again"
    );
    notifier.stop().await.unwrap();
    world.cleanup().await;
}

/// Closes, from the broker side, every connection whose client properties contain
/// `name`, as `rabbitmqctl close_connection` does for an operator.
fn close_connections_from_the_broker(name: &str) -> usize {
    let listing = Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "pid",
            "client_properties",
            "--quiet",
            "--no-table-headers",
        ])
        .output()
        .expect("rabbitmqctl must be available (run as root)");
    assert!(listing.status.success());
    let mut n_closed = 0;
    for line in String::from_utf8_lossy(&listing.stdout).lines() {
        let Some((pid, properties)) = line.split_once('\t') else {
            continue;
        };
        if !properties.contains(name) {
            continue;
        }
        let closed = Command::new("rabbitmqctl")
            .args([
                "close_connection",
                pid.trim(),
                "deploy-gate test: broker-side close",
            ])
            .output()
            .unwrap();
        assert!(closed.status.success());
        n_closed += 1;
    }
    n_closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifier_reconnects_after_the_broker_closes_its_connection() {
    let world = TestWorld::start().await;
    let url = world.slack.webhook_url();
    let notifier = world.start_notifier(
        fast_settings(&[("ops", slack_channel("SLACK_OPS"))]),
        world.deps(Env::from_pairs([("SLACK_OPS", url.as_str())])),
    );
    world.publish(&notification("ev-before", "ops")).await;
    world
        .slack
        .wait_for_messages(1, Duration::from_secs(10))
        .await;

    let name = format!("{}notifier", world.prefix);
    assert_eq!(close_connections_from_the_broker(&name), 1);
    notifier.wait_for_stats(15, |s| s.reconnects == 1).await;
    world.publish(&notification("ev-after", "ops")).await;

    let messages = world
        .slack
        .wait_for_messages(2, Duration::from_secs(10))
        .await;
    let ids: Vec<&str> = messages
        .iter()
        .map(|m| m.body["blocks"].to_string().contains("ev-after"))
        .map(|after| if after { "ev-after" } else { "ev-before" })
        .collect();
    assert_eq!(ids, vec!["ev-before", "ev-after"]);
    notifier.stop().await.unwrap();
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_a_notification_waiting_out_a_long_retry_after_goes_back_to_the_queue() {
    let world = TestWorld::start().await;
    let url = world.slack.webhook_url();
    world.slack.push_fault(
        SlackFault::RateLimited {
            retry_after_secs: 60,
        },
        1,
    );
    let settings = NotifierSettings {
        shutdown_grace_secs: 1,
        ..fast_settings(&[("ops", slack_channel("SLACK_OPS"))])
    };
    let notifier = world.start_notifier(
        settings,
        world.deps(Env::from_pairs([("SLACK_OPS", url.as_str())])),
    );
    world.publish(&notification("ev-parked", "ops")).await;
    world
        .slack
        .wait_for_requests(1, Duration::from_secs(10))
        .await;

    let started = std::time::Instant::now();
    notifier.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    let mut queue = world
        .bus
        .consume(&world.bus_settings.topology.notifications_queue, 1)
        .await
        .unwrap();
    let back = tokio::time::timeout(Duration::from_secs(5), queue.next())
        .await
        .expect("the notification is back in the queue")
        .unwrap()
        .unwrap();
    assert_eq!(back.message_id(), Some("ev-parked"));
    back.ack().await.unwrap();
    assert_eq!(world.slack.messages().len(), 0);
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_whose_webhook_variable_is_missing_stops_the_notifier_at_start() {
    let world = TestWorld::start().await;
    let notifier = world.start_notifier(
        fast_settings(&[("ops", slack_channel("SLACK_OPS_MISSING"))]),
        world.deps(Env::from_pairs([("OTHER", "x")])),
    );
    let error = notifier.stop().await.unwrap_err();
    assert!(matches!(error, NotifierError::MissingEnv { .. }), "{error}");
    assert_eq!(error.remedy(), Remedy::FixConfiguration);
    assert_eq!(
        error.to_string(),
        "notify.channels.ops: environment variable SLACK_OPS_MISSING is not set"
    );

    let bad_url = world.start_notifier(
        fast_settings(&[("ops", slack_channel("SLACK_OPS"))]),
        world.deps(Env::from_pairs([(
            "SLACK_OPS",
            "hooks.slack.com/services/T/B/s3cret",
        )])),
    );
    let error = bad_url.stop().await.unwrap_err();
    assert!(!error.to_string().contains("s3cret"), "{error}");
    world.cleanup().await;
}
