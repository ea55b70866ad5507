//! The library API against the real local RabbitMQ: what `enqueue` publishes, and
//! what it refuses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use gate_bus::{Action, BusError};
use gate_core::{MergeEvent, Redactor};
use gate_git::{build_context, ContextOptions, Range};
use gate_producer::{ci_event_id, enqueue, merge_event, Producer, ProducerError};
use gate_testkit::TestRepo;
use serde_json::Value;

use common::{
    assert_valid, merge_event_schema, next_within, nothing_within, TestBus, FAKE_AWS_KEY,
};

struct NoVisitor;
impl gate_core::DiffVisitor for NoVisitor {
    fn line(&mut self, _: &gate_core::ChangedFile, _: gate_core::LineKind, _: u32, _: &str) {}
}

/// A merge event built like `deploy-gate enqueue` builds it: from a real repository.
fn event_from_repo(event_id: Option<String>, budget_chars: usize) -> MergeEvent {
    let repo = TestRepo::new();
    repo.write("README.md", "# shop\n").commit("init");
    repo.write(
        "db/migrations/002_drop.sql",
        "ALTER TABLE users DROP COLUMN legacy;\n",
    )
    .write(
        "config/prod.env",
        &format!("AWS_ACCESS_KEY_ID={FAKE_AWS_KEY}\n"),
    )
    .write("src/big.rs", &"fn filler() {}\n".repeat(2_000))
    .commit("Drop the legacy column");
    let options = ContextOptions {
        budget_chars,
        repo_name: Some("acme/shop".to_owned()),
        ..ContextOptions::default()
    };
    let context = build_context(
        repo.path(),
        &Range::default(),
        &options,
        &Redactor::new(),
        &mut NoVisitor,
    )
    .unwrap();
    merge_event(context, event_id, Some("refs/heads/main".to_owned()), "cli")
}

#[tokio::test]
async fn enqueue_publishes_a_merge_event_that_validates_against_the_schema() {
    let test = TestBus::start(|_| {}).await;
    let mut events = test.events().await;
    let env: HashMap<&str, &str> = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_RUN_ID", "777"),
        ("GITHUB_RUN_ATTEMPT", "1"),
    ]
    .into();
    let mut event = event_from_repo(None, 12_000);
    event.event_id = ci_event_id(&|name| env.get(name).map(|v| (*v).to_owned()), &event.head)
        .expect("GitHub Actions is recognised");
    assert!(
        event.event_id.starts_with("gha-777-1-"),
        "{}",
        event.event_id
    );

    enqueue(&test.bus, &event).await.unwrap();

    let delivery = next_within(&mut events, 5).await;
    assert_eq!(delivery.message_id(), Some(event.event_id.as_str()));
    assert!(delivery.persistent());
    assert_eq!(delivery.content_type(), Some("application/json"));
    assert_eq!(delivery.routing_key(), "merge.acme-shop");
    let json: Value = serde_json::from_slice(delivery.payload()).unwrap();
    assert_valid(&merge_event_schema(), &json);
    assert_eq!(delivery.merge_event().unwrap(), event);
    let text = String::from_utf8_lossy(delivery.payload());
    assert!(
        !text.contains(FAKE_AWS_KEY),
        "the key never reaches the queue"
    );
    assert_eq!(json["source"], "cli");
    assert_eq!(json["git_ref"], "refs/heads/main");
    delivery.ack().await.unwrap();
    test.cleanup().await;
}

#[tokio::test]
async fn an_event_without_an_id_gets_a_fresh_one_and_a_producer_shares_its_channel() {
    let test = TestBus::start(|_| {}).await;
    let mut events = test.events().await;
    let first = event_from_repo(None, 12_000);
    let second = event_from_repo(None, 12_000);
    assert!(first.event_id.starts_with("evt-"));
    assert_ne!(first.event_id, second.event_id);

    let producer = Producer::new(&test.bus).await.unwrap();
    let shared = producer.clone();
    let (a, b) = tokio::join!(
        producer.enqueue(&first, None),
        shared.enqueue(
            &second,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned())
        )
    );
    a.unwrap();
    b.unwrap();
    let mut ids = vec![
        next_within(&mut events, 5)
            .await
            .message_id()
            .unwrap()
            .to_owned(),
        next_within(&mut events, 5)
            .await
            .message_id()
            .unwrap()
            .to_owned(),
    ];
    ids.sort();
    let mut expected = vec![first.event_id.clone(), second.event_id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    test.cleanup().await;
}

#[tokio::test]
async fn an_oversized_event_is_refused_with_a_clear_error_and_nothing_is_published() {
    let test = TestBus::start(|settings| settings.max_payload_bytes = 4_096).await;
    let mut events = test.events().await;
    let event = event_from_repo(Some("ev-too-big".to_owned()), 12_000);

    let error = enqueue(&test.bus, &event).await.unwrap_err();
    let ProducerError::Oversized {
        size,
        limit,
        budget_chars,
        ..
    } = &error
    else {
        panic!("expected Oversized, got {error:?}");
    };
    assert_eq!((*limit, *budget_chars), (4_096, 12_000));
    assert!(*size > 4_096);
    let message = error.to_string();
    for words in [
        &format!("{size} bytes"),
        "limit of 4096 bytes",
        "budget_chars",
        "ev-too-big",
    ] {
        assert!(message.contains(words), "{words:?} not in: {message}");
    }
    assert!(!error.is_retryable());
    assert!(nothing_within(&mut events, 500).await, "nothing published");

    // A smaller budget makes the same change fit.
    let smaller = event_from_repo(Some("ev-fits".to_owned()), 1_500);
    enqueue(&test.bus, &smaller).await.unwrap();
    assert_eq!(
        next_within(&mut events, 5).await.message_id(),
        Some("ev-fits")
    );
    test.cleanup().await;
}

#[tokio::test]
async fn an_unroutable_event_is_an_error_not_a_silent_ok() {
    let test = TestBus::start(|settings| {
        settings.topology.events_binding = "nothing-matches.#".to_owned();
    })
    .await;
    let event = event_from_repo(Some("ev-lost".to_owned()), 12_000);
    let error = enqueue(&test.bus, &event).await.unwrap_err();
    match &error {
        ProducerError::Bus { event_id, source } => {
            assert_eq!(event_id, "ev-lost");
            assert!(
                matches!(**source, BusError::Unroutable { .. }),
                "{source:?}"
            );
            assert_eq!(source.action(), Action::Fail);
        }
        other => panic!("expected an unroutable bus error, got {other:?}"),
    }
    assert!(error.to_string().contains("unroutable"), "{error}");
    assert!(!error.is_retryable());
    test.cleanup().await;
}

#[tokio::test]
async fn an_event_a_worker_would_reject_is_refused_before_publishing() {
    let test = TestBus::start(|_| {}).await;
    let mut events = test.events().await;
    let mut event = event_from_repo(Some("ev-bad".to_owned()), 12_000);
    event.head = " ".to_owned();
    let error = enqueue(&test.bus, &event).await.unwrap_err();
    assert!(matches!(error, ProducerError::InvalidEvent(_)), "{error:?}");
    assert!(error.to_string().contains("head"), "{error}");
    assert!(nothing_within(&mut events, 300).await);
    test.cleanup().await;
}

/// Closes, from the broker side, every connection whose name contains `name`, as
/// `rabbitmqctl close_connection` does for an operator; returns how many.
fn close_connections_from_the_broker(name: &str) -> usize {
    // The JSON formatter prints pids in a form `close_connection` does not accept,
    // so read the plain tab-separated listing: `<pid>\t<client properties>`.
    let listing = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "pid",
            "client_properties",
            "--quiet",
            "--no-table-headers",
        ])
        .output()
        .expect("rabbitmqctl must be available (run as root)");
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let mut n_closed = 0;
    for line in String::from_utf8_lossy(&listing.stdout).lines() {
        let Some((pid, properties)) = line.split_once('\t') else {
            continue;
        };
        if !properties.contains(name) {
            continue;
        }
        let closed = std::process::Command::new("rabbitmqctl")
            .args([
                "close_connection",
                pid.trim(),
                "deploy-gate test: broker-side close",
            ])
            .output()
            .unwrap();
        assert!(
            closed.status.success(),
            "{}",
            String::from_utf8_lossy(&closed.stderr)
        );
        n_closed += 1;
    }
    n_closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_that_owns_its_connection_reconnects_when_the_broker_closes_it() {
    let test = TestBus::start(|_| {}).await;
    let mut events = test.events().await;
    let mut settings = test.settings.clone();
    settings.connection_name = format!("{}producer", settings.connection_name);
    let producer = Producer::connect(common::AMQP_URL, settings.clone())
        .await
        .unwrap();
    let first = event_from_repo(Some("ev-before".to_owned()), 12_000);
    producer.enqueue(&first, None).await.unwrap();
    assert_eq!(
        next_within(&mut events, 5).await.message_id(),
        Some("ev-before")
    );

    assert_eq!(
        close_connections_from_the_broker(&settings.connection_name),
        1
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while producer.is_connected().await != Some(false) {
        assert!(std::time::Instant::now() < deadline, "the close is noticed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let second = event_from_repo(Some("ev-after".to_owned()), 12_000);
    producer.enqueue(&second, None).await.unwrap();
    assert_eq!(
        next_within(&mut events, 5).await.message_id(),
        Some("ev-after")
    );
    assert_eq!(producer.is_connected().await, Some(true));
    producer.close().await;
    test.cleanup().await;
}
