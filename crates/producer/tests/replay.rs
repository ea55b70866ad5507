//! Replay protection and listener limits of the webhook receiver, over real HTTP
//! against the real local RabbitMQ and Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use gate_git::ContextOptions;
use gate_producer::merge_event;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{WebhookApp, EVENTS_SECRET};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A small signed MergeEvent body with this id.
fn event_body(event_id: &str) -> Vec<u8> {
    let set = gate_git::PatchSet {
        repo: "acme/shop".to_owned(),
        base: "a".repeat(40),
        head: "b".repeat(40),
        n_commits: 1,
        files: vec![gate_git::FilePatch {
            path: "README.md".to_owned(),
            old_path: None,
            status: gate_core::FileStatus::Modified,
            additions: 1,
            deletions: 1,
            binary: false,
            patch: Some("@@ -1 +1 @@\n-old\n+new".to_owned()),
        }],
        ..gate_git::PatchSet::default()
    };
    struct NoVisitor;
    impl gate_core::DiffVisitor for NoVisitor {
        fn line(&mut self, _: &gate_core::ChangedFile, _: gate_core::LineKind, _: u32, _: &str) {}
    }
    let context = gate_git::build_context_from_patches(
        &set,
        &ContextOptions::default(),
        &gate_core::Redactor::new(),
        &mut NoVisitor,
    )
    .unwrap();
    serde_json::to_vec(&merge_event(
        context,
        Some(event_id.to_owned()),
        None,
        "acme-bus",
    ))
    .unwrap()
}

#[tokio::test]
async fn a_replayed_signed_event_enqueues_nothing_and_a_new_delivery_of_it_does() {
    let mut app = WebhookApp::spawn(|_| {}).await;
    let body = event_body("bus-replay-1");
    let sent_at = now();
    let first = app
        .post_event_stamped(body.clone(), EVENTS_SECRET, "dlv-1", sent_at)
        .await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    let (delivery, _) = app.next_event().await;
    assert_eq!(delivery.message_id(), Some("bus-replay-1"));

    // The captured request, byte for byte.
    let replay = app
        .post_event_stamped(body.clone(), EVENTS_SECRET, "dlv-1", sent_at)
        .await;
    assert_eq!(replay.status, 200, "{:?}", replay.body);
    assert_eq!(replay.body["status"], "duplicate");
    assert_eq!(replay.body["event_id"], "bus-replay-1");
    assert!(app.nothing_enqueued().await, "a replay enqueues nothing");

    // Remembered in Redis, where every receiver behind a load balancer looks.
    let marks = app
        .replay_redis
        .marks("webhook-delivery", Duration::from_secs(60));
    assert!(marks.contains("events:dlv-1").await.unwrap());

    // The sender's own retry is a new delivery (new id, new signature).
    let retry = app
        .post_event_stamped(body, EVENTS_SECRET, "dlv-2", now())
        .await;
    assert_eq!(retry.status, 202, "{:?}", retry.body);
    app.next_event().await;
    app.stop().await;
}

#[tokio::test]
async fn a_stale_or_restamped_event_is_401_and_nothing_is_enqueued() {
    let mut app = WebhookApp::spawn(|settings| settings.events_max_skew_secs = 60).await;
    let body = event_body("bus-stale");

    let stale = app
        .post_event_stamped(body.clone(), EVENTS_SECRET, "dlv-old", now() - 3_600)
        .await;
    assert_eq!(stale.status, 401, "{:?}", stale.body);
    assert!(
        stale.body["error"]
            .as_str()
            .unwrap()
            .contains("X-Gate-Timestamp"),
        "{:?}",
        stale.body
    );

    // A fresh timestamp put on an old signature: the signature covers it.
    let mut headers = common::event_headers(&body, EVENTS_SECRET, "dlv-old", now() - 3_600);
    for (name, value) in &mut headers {
        if *name == "x-gate-timestamp" {
            *value = now().to_string();
        }
    }
    let restamped = app.post("/events", &headers, body.clone()).await;
    assert_eq!(restamped.status, 401, "{:?}", restamped.body);
    assert!(restamped.body["error"]
        .as_str()
        .unwrap()
        .contains("X-Gate-Signature-256"));

    // Another delivery id on the same signature: refused the same way.
    let mut headers = common::event_headers(&body, EVENTS_SECRET, "dlv-a", now());
    for (name, value) in &mut headers {
        if *name == "x-gate-delivery" {
            *value = "dlv-b".to_owned();
        }
    }
    assert_eq!(
        app.post("/events", &headers, body.clone()).await.status,
        401
    );

    // Unstamped (body-only signature, the old form): refused, naming the header.
    let unstamped = app
        .post(
            "/events",
            &[
                ("content-type", "application/json".to_owned()),
                (
                    "x-gate-signature-256",
                    gate_testkit::github::sign(EVENTS_SECRET, &body),
                ),
            ],
            body,
        )
        .await;
    assert_eq!(unstamped.status, 401);
    assert!(unstamped.body["error"]
        .as_str()
        .unwrap()
        .contains("X-Gate-Delivery"));
    assert!(app.nothing_enqueued().await);
    app.stop().await;
}

#[tokio::test]
async fn a_failed_event_delivery_is_forgotten_so_its_redelivery_is_enqueued() {
    let mut app = WebhookApp::spawn(|_| {}).await;
    let malformed = b"{\"schema_version\": 1}".to_vec();
    let sent_at = now();
    let answer = app
        .post_event_stamped(malformed, EVENTS_SECRET, "dlv-fix", sent_at)
        .await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    // The sender fixes its event and delivers again under the same delivery id.
    let fixed = app
        .post_event_stamped(event_body("bus-fixed"), EVENTS_SECRET, "dlv-fix", now())
        .await;
    assert_eq!(fixed.status, 202, "{:?}", fixed.body);
    app.next_event().await;
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = WebhookApp::spawn(|settings| settings.read_timeout_ms = 300).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"POST /events HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest))
        .await
        .expect("the receiver closed the connection");
    let text = String::from_utf8_lossy(&rest);
    assert!(
        read.is_err() || !text.starts_with("HTTP/1.1 2"),
        "no success for half a request: {text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_event_is_413_before_its_signature_is_checked() {
    let app = WebhookApp::spawn(|settings| settings.max_body_bytes = 4_096).await;
    let body = vec![b'x'; 64 * 1024];
    let answer = app
        .post_event_stamped(body, EVENTS_SECRET, "dlv-big", now())
        .await;
    assert_eq!(answer.status, 413);
    let error: &Value = &answer.body["error"];
    assert!(error.as_str().unwrap().contains("4096"), "{error}");
    app.stop().await;
}
