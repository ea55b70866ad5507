//! The bus against the real local RabbitMQ (3.10): topology, envelopes, confirms,
//! dead-lettering, streams, delivery limits and connection loss.

#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::BTreeSet, process::Command, time::Duration};

use gate_bus::{
    Action, Bus, BusError, DeadLettered, Outgoing, Rejection, StreamOffset, GATE_ERROR_HEADER,
};
use gate_core::{Recommendation, Severity};

use common::{next_within, nothing_within, sample_decision, sample_event, TestBus, AMQP_URL};

#[tokio::test]
async fn declaring_the_topology_twice_is_idempotent() {
    let test = TestBus::start(|_| {}).await;
    test.bus
        .declare_topology()
        .await
        .expect("second declaration on the same connection");
    let other = test.another(|_| {}).await;
    other
        .declare_topology()
        .await
        .expect("declaration from another process");

    let publisher = other.publisher().await.unwrap();
    publisher
        .publish_event(&sample_event("ev-1", "acme/shop"), None)
        .await
        .unwrap();
    let mut consumer = test
        .bus
        .consume(&test.topology().events_queue, 1)
        .await
        .unwrap();
    let delivery = next_within(&mut consumer, 5).await;
    assert_eq!(delivery.message_id(), Some("ev-1"));
    delivery.ack().await.unwrap();

    other.close().await.unwrap();
    test.cleanup().await;
}

#[tokio::test]
async fn a_component_with_other_queue_arguments_fails_at_once_instead_of_retrying() {
    let test = TestBus::start(|_| {}).await;
    let started = std::time::Instant::now();
    let mut settings = test.settings.clone();
    settings.topology.events_delivery_limit += 1;
    settings.connect_attempts = 5;
    settings.connect_backoff_initial_ms = 1_000;
    let error = Bus::connect(AMQP_URL, settings)
        .await
        .err()
        .expect("inequivalent arguments");
    assert_eq!(error.action(), Action::Fail, "{error}");
    assert!(error.to_string().contains("PRECONDITION"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no retries: {:?}",
        started.elapsed()
    );
    test.cleanup().await;
}

#[tokio::test]
async fn a_published_merge_event_is_consumed_with_all_properties_intact() {
    let test = TestBus::start(|_| {}).await;
    let event = sample_event("ev-props", "Acme/Shop.web");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string();
    let publisher = test.bus.publisher().await.unwrap();
    publisher
        .publish_event(&event, Some(traceparent.clone()))
        .await
        .unwrap();

    let mut consumer = test
        .bus
        .consume(&test.topology().events_queue, 4)
        .await
        .unwrap();
    let delivery = next_within(&mut consumer, 5).await;
    assert_eq!(delivery.merge_event().unwrap(), event);
    assert_eq!(delivery.message_id(), Some("ev-props"));
    assert_eq!(delivery.content_type(), Some("application/json"));
    assert!(delivery.persistent());
    assert_eq!(delivery.traceparent(), Some(traceparent.as_str()));
    assert_eq!(delivery.routing_key(), "merge.acme-shop-web");
    assert_eq!(delivery.delivery_count(), 0);
    assert!(!delivery.redelivered());
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    let stamped = delivery.timestamp().expect("timestamp");
    assert!(
        stamped.abs_diff(now) < 60,
        "timestamp {stamped} vs now {now}"
    );
    delivery.ack().await.unwrap();
    assert!(
        nothing_within(&mut consumer, 300).await,
        "acked message is gone"
    );
    test.cleanup().await;
}

#[tokio::test]
async fn an_unroutable_mandatory_publish_is_an_error_not_a_silent_ok() {
    let test = TestBus::start(|_| {}).await;
    let publisher = test.bus.publisher().await.unwrap();
    let message = Outgoing::json("merge_event", "ev-lost", &sample_event("ev-lost", "r")).unwrap();
    let error = publisher
        .publish(
            &test.topology().events_exchange,
            "not-a-merge.key",
            &message,
        )
        .await
        .expect_err("no queue is bound for this key");
    assert!(
        matches!(
            error,
            BusError::Unroutable {
                reply_code: 312,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.action(), Action::Fail);

    // The channel survives a return: the next publish goes through.
    publisher
        .publish_event(&sample_event("ev-ok", "r"), None)
        .await
        .unwrap();
    test.cleanup().await;
}

#[tokio::test]
async fn an_oversized_payload_is_refused_on_publish() {
    let test = TestBus::start(|settings| settings.max_payload_bytes = 1024).await;
    let mut event = sample_event("ev-big", "acme/shop");
    event.context.packed_diff = "x".repeat(4096);
    let publisher = test.bus.publisher().await.unwrap();
    let error = publisher
        .publish_event(&event, None)
        .await
        .expect_err("over the limit");
    assert!(
        matches!(error, BusError::Oversized { limit: 1024, .. }),
        "{error}"
    );
    assert_eq!(error.action(), Action::DeadLetter);
    test.cleanup().await;
}

#[tokio::test]
async fn an_oversized_payload_is_dead_lettered_on_consume_with_the_reason_header() {
    let test = TestBus::start(|settings| settings.max_payload_bytes = 1024).await;
    // A producer with a larger limit than the workers' gets it onto the queue.
    let lax_producer = test
        .another(|settings| settings.max_payload_bytes = 1024 * 1024)
        .await;
    let mut event = sample_event("ev-big", "acme/shop");
    event.context.packed_diff = "x".repeat(4096);
    lax_producer
        .publisher()
        .await
        .unwrap()
        .publish_event(&event, None)
        .await
        .unwrap();

    let mut consumer = test
        .bus
        .consume(&test.topology().events_queue, 1)
        .await
        .unwrap();
    let delivery = next_within(&mut consumer, 5).await;
    let rejection = delivery.merge_event().expect_err("over the worker's limit");
    assert_eq!(rejection.code(), "oversized");
    let outcome = delivery.reject_to_dead_letter(&rejection).await.unwrap();
    assert!(matches!(outcome, DeadLettered::WithReason), "{outcome:?}");
    assert!(
        nothing_within(&mut consumer, 300).await,
        "the original was acked"
    );

    let mut dead = test
        .bus
        .consume(&test.topology().dead_letter_queue, 1)
        .await
        .unwrap();
    let letter = next_within(&mut dead, 5).await;
    let reason = letter.header(GATE_ERROR_HEADER).expect("reason header");
    assert!(reason.starts_with("oversized: payload of "), "{reason}");
    assert!(reason.contains("limit of 1024 bytes"), "{reason}");
    assert_eq!(
        letter.header("x-gate-queue"),
        Some(test.topology().events_queue.as_str())
    );
    assert_eq!(letter.message_id(), Some("ev-big"));
    assert_eq!(letter.routing_key(), "merge.acme-shop");
    assert!(letter.persistent());
    assert_eq!(
        letter.payload(),
        serde_json::to_vec(&event).unwrap().as_slice()
    );
    letter.ack().await.unwrap();

    lax_producer.close().await.unwrap();
    test.cleanup().await;
}

#[tokio::test]
async fn a_malformed_payload_and_an_unknown_schema_version_are_dead_lettered_with_the_reason() {
    let test = TestBus::start(|_| {}).await;
    let publisher = test.bus.publisher().await.unwrap();
    let exchange = &test.topology().events_exchange;
    let poison = [
        ("ev-garbage", b"this is not json".to_vec(), "malformed: "),
        (
            "ev-future",
            br#"{"schema_version": 2, "event_id": "ev-future"}"#.to_vec(),
            "unknown_version: ",
        ),
        (
            "ev-shape",
            br#"{"schema_version": 1, "event_id": "ev-shape"}"#.to_vec(),
            "malformed: ",
        ),
    ];
    for (id, payload, _) in &poison {
        let message = Outgoing::bytes("merge_event", *id, payload.clone());
        publisher
            .publish(exchange, "merge.acme-shop", &message)
            .await
            .unwrap();
    }

    let mut consumer = test
        .bus
        .consume(&test.topology().events_queue, 1)
        .await
        .unwrap();
    for _ in &poison {
        let delivery = next_within(&mut consumer, 5).await;
        let rejection = delivery.merge_event().expect_err("poison");
        let outcome = delivery.reject_to_dead_letter(&rejection).await.unwrap();
        assert!(matches!(outcome, DeadLettered::WithReason), "{outcome:?}");
    }

    let mut dead = test
        .bus
        .consume(&test.topology().dead_letter_queue, 10)
        .await
        .unwrap();
    for (id, payload, reason_start) in &poison {
        let letter = next_within(&mut dead, 5).await;
        assert_eq!(letter.message_id(), Some(*id));
        assert_eq!(letter.payload(), payload.as_slice());
        let reason = letter.header(GATE_ERROR_HEADER).expect("reason header");
        assert!(reason.starts_with(reason_start), "{id}: {reason}");
        letter.ack().await.unwrap();
    }
    test.cleanup().await;
}

#[tokio::test]
async fn a_block_decision_reaches_block_listeners_and_the_decisions_log() {
    let test = TestBus::start(|_| {}).await;
    let blocks = test
        .bus
        .private_results_queue(&["decision.block.#".to_string()])
        .await
        .unwrap();
    let deploys = test
        .bus
        .private_results_queue(&["decision.deploy.#".to_string()])
        .await
        .unwrap();
    let decision = sample_decision("ev-block", "acme/shop", 90);
    assert_eq!(decision.recommendation, Recommendation::Block);
    let publisher = test.bus.publisher().await.unwrap();
    publisher.publish_decision(&decision, None).await.unwrap();

    let mut block_listener = test.bus.consume(&blocks, 1).await.unwrap();
    let delivery = next_within(&mut block_listener, 5).await;
    assert_eq!(delivery.routing_key(), "decision.block.acme-shop");
    assert_eq!(delivery.decision().unwrap(), decision);
    delivery.ack().await.unwrap();
    let mut deploy_listener = test.bus.consume(&deploys, 1).await.unwrap();
    assert!(
        nothing_within(&mut deploy_listener, 300).await,
        "a block is not a deploy"
    );

    let mut log = test
        .bus
        .consume_stream(&test.topology().decisions_log, 10, StreamOffset::First)
        .await
        .unwrap();
    let entry = next_within(&mut log, 5).await;
    assert_eq!(entry.decision().unwrap(), decision);
    assert_eq!(entry.message_id(), Some("ev-block"));
    assert_eq!(entry.stream_offset(), Some(0));
    entry.ack().await.unwrap();
    test.cleanup().await;
}

#[tokio::test]
async fn a_notification_reaches_the_notifications_queue_with_its_routing_key() {
    let test = TestBus::start(|_| {}).await;
    let publisher = test.bus.publisher().await.unwrap();
    let body = serde_json::json!({"text": "blocked"});
    publisher
        .publish_notification("#deploys", Severity::Critical, "ev-n", &body, None)
        .await
        .unwrap();
    let mut consumer = test
        .bus
        .consume(&test.topology().notifications_queue, 1)
        .await
        .unwrap();
    let delivery = next_within(&mut consumer, 5).await;
    assert_eq!(delivery.routing_key(), "notify.deploys.critical");
    assert_eq!(delivery.message_id(), Some("ev-n"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(delivery.payload()).unwrap(),
        body
    );
    delivery.ack().await.unwrap();
    test.cleanup().await;
}

#[tokio::test]
async fn the_delivery_limit_dead_letters_a_message_redelivered_too_often() {
    let limit = 2;
    let test = TestBus::start(|settings| settings.topology.events_delivery_limit = limit).await;
    let publisher = test.bus.publisher().await.unwrap();
    publisher
        .publish_event(&sample_event("ev-loop", "acme/shop"), None)
        .await
        .unwrap();

    let mut consumer = test
        .bus
        .consume(&test.topology().events_queue, 1)
        .await
        .unwrap();
    let mut counts = Vec::new();
    loop {
        let Ok(Some(delivery)) =
            tokio::time::timeout(Duration::from_secs(2), consumer.next()).await
        else {
            break;
        };
        let delivery = delivery.unwrap();
        counts.push(delivery.delivery_count());
        delivery.requeue().await.unwrap();
        assert!(
            counts.len() <= 10,
            "the delivery limit never stopped the loop: {counts:?}"
        );
    }
    // RabbitMQ 3.10: the first delivery has no x-delivery-count, each return adds one,
    // and the message is dead-lettered once the count exceeds the limit.
    assert_eq!(counts, vec![0, 1, 2], "deliveries seen");

    let mut dead = test
        .bus
        .consume(&test.topology().dead_letter_queue, 1)
        .await
        .unwrap();
    let letter = next_within(&mut dead, 5).await;
    assert_eq!(letter.message_id(), Some("ev-loop"));
    assert_eq!(
        letter.header("x-first-death-reason"),
        Some("delivery_limit")
    );
    assert_eq!(
        letter.header(GATE_ERROR_HEADER),
        None,
        "the broker adds no reason of ours"
    );
    letter.ack().await.unwrap();
    test.cleanup().await;
}

#[tokio::test]
async fn a_poison_message_still_leaves_the_queue_when_its_reason_cannot_be_published() {
    let test = TestBus::start(|_| {}).await;
    let topology = test.topology().clone();
    // An operator unbinds the dead-letter queue: the republish with the reason is
    // unroutable, so the delivery is rejected and the broker dead-letters it.
    let admin = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = admin.create_channel().await.unwrap();
    channel
        .queue_unbind(
            topology.dead_letter_queue.as_str().into(),
            topology.dead_letter_exchange.as_str().into(),
            "".into(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();

    let publisher = test.bus.publisher().await.unwrap();
    let message = Outgoing::bytes("merge_event", "ev-poison", b"{".to_vec());
    publisher
        .publish(&topology.events_exchange, "merge.r", &message)
        .await
        .unwrap();
    let mut consumer = test.bus.consume(&topology.events_queue, 1).await.unwrap();
    let delivery = next_within(&mut consumer, 5).await;
    let rejection = delivery.merge_event().expect_err("poison");
    let outcome = delivery.reject_to_dead_letter(&rejection).await.unwrap();
    match outcome {
        DeadLettered::WithoutReason(error) => {
            assert!(matches!(error, BusError::Unroutable { .. }), "{error}")
        }
        DeadLettered::WithReason => panic!("nothing is bound to the dead-letter exchange"),
    }
    assert!(
        nothing_within(&mut consumer, 500).await,
        "the poison message does not loop"
    );
    admin.close(200, "bye".into()).await.unwrap();
    test.cleanup().await;
}

#[tokio::test]
async fn a_consumer_can_be_cancelled_for_a_graceful_shutdown() {
    let test = TestBus::start(|_| {}).await;
    let publisher = test.bus.publisher().await.unwrap();
    for id in ["ev-a", "ev-b"] {
        publisher
            .publish_event(&sample_event(id, "r"), None)
            .await
            .unwrap();
    }
    let mut consumer = test
        .bus
        .consume(&test.topology().events_queue, 1)
        .await
        .unwrap();
    let in_flight = next_within(&mut consumer, 5).await;
    consumer.cancel().await.unwrap();
    in_flight
        .ack()
        .await
        .expect("in-flight work can still be acked after cancel");
    let rest = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .unwrap();
    assert!(rest.is_none(), "a cancelled consumer ends");
    drop(consumer);

    let mut again = test
        .bus
        .consume(&test.topology().events_queue, 1)
        .await
        .unwrap();
    assert_eq!(next_within(&mut again, 5).await.message_id(), Some("ev-b"));
    test.cleanup().await;
}

#[tokio::test]
async fn connecting_to_a_closed_port_gives_up_after_the_configured_attempts() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut settings = common::test_settings(&common::unique_prefix());
    settings.connect_attempts = 3;
    settings.connect_backoff_initial_ms = 10;
    let started = std::time::Instant::now();
    let url = format!("amqp://guest:secret-password@127.0.0.1:{port}/%2f");
    let error = Bus::connect(&url, settings)
        .await
        .err()
        .expect("nothing listens there");
    assert!(
        matches!(error, BusError::Connect { attempts: 3, .. }),
        "{error}"
    );
    assert_eq!(error.action(), Action::Retry);
    assert!(!error.to_string().contains("secret-password"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// Closes, from the broker side, every connection whose name starts with `prefix`,
/// as `rabbitmqctl close_connection` does for an operator.
fn close_connections_from_the_broker(prefix: &str) -> usize {
    // The JSON formatter prints pids in a form `close_connection` does not accept,
    // so read the plain tab-separated listing: `<pid>\t<client properties>`.
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
        if !properties.contains(prefix) {
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
async fn a_connection_closed_by_the_broker_is_noticed_and_a_new_one_loses_nothing() {
    let test = TestBus::start(|_| {}).await;
    let publisher = test.bus.publisher().await.unwrap();
    let ids: BTreeSet<String> = (0..20).map(|i| format!("ev-{i:02}")).collect();
    for id in &ids {
        publisher
            .publish_event(&sample_event(id, "acme/shop"), None)
            .await
            .unwrap();
    }
    // Two deliveries in flight, unacked, when the connection dies.
    let mut consumer = test
        .bus
        .consume(&test.topology().events_queue, 2)
        .await
        .unwrap();
    let in_flight = [
        next_within(&mut consumer, 5).await,
        next_within(&mut consumer, 5).await,
    ];

    assert_eq!(close_connections_from_the_broker(&test.prefix), 1);
    tokio::time::timeout(Duration::from_secs(10), test.bus.closed())
        .await
        .expect("the bus notices the close");
    assert!(!test.bus.is_connected());
    let ended = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .unwrap();
    assert!(
        matches!(&ended, None | Some(Err(_))),
        "the consumer stream ends or errors when its connection dies"
    );
    if let Some(Err(error)) = &ended {
        assert_eq!(error.action(), Action::Reconnect, "{error}");
    }
    let late = publisher
        .publish_event(&sample_event("ev-late", "acme/shop"), None)
        .await;
    let error = late.expect_err("a publish on a dead connection is an error");
    assert_eq!(error.action(), Action::Reconnect, "{error}");
    for delivery in in_flight {
        let error = delivery
            .ack()
            .await
            .expect_err("an ack on a dead channel is an error");
        assert_eq!(error.action(), Action::Reconnect, "{error}");
    }

    // Reconnect: a new connection redeclares the topology; every confirmed event is
    // still there, the two in flight redelivered.
    let bus = Bus::connect(AMQP_URL, test.settings.clone()).await.unwrap();
    bus.publisher()
        .await
        .unwrap()
        .publish_event(&sample_event("ev-after", "acme/shop"), None)
        .await
        .unwrap();
    let mut consumer = bus
        .consume(&test.topology().events_queue, 10)
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut n_redelivered = 0;
    while seen.len() < ids.len() + 1 {
        let delivery = next_within(&mut consumer, 5).await;
        if delivery.redelivered() {
            n_redelivered += 1;
            // Quorum queues count a return on connection loss as a delivery.
            assert_eq!(delivery.delivery_count(), 1);
        }
        seen.insert(delivery.message_id().unwrap().to_string());
        delivery.ack().await.unwrap();
    }
    let mut expected = ids.clone();
    expected.insert("ev-after".to_string());
    assert_eq!(seen, expected);
    assert_eq!(n_redelivered, 2, "the two unacked deliveries came back");
    assert!(
        nothing_within(&mut consumer, 300).await,
        "no duplicates beyond them"
    );
    bus.close().await.unwrap();
    test.cleanup().await;
}

#[test]
fn rejections_map_to_the_header_the_dead_letter_queue_shows() {
    let rejection = Rejection::from(gate_core::MergeEvent::from_json(b"{}").unwrap_err());
    assert_eq!(rejection.code(), "malformed");
}

#[tokio::test]
async fn a_full_events_queue_nacks_the_publish_as_backpressure() {
    let test = TestBus::start(|settings| settings.topology.events_max_length = Some(1)).await;
    let publisher = test.bus.publisher().await.unwrap();
    // RabbitMQ 3.10 quorum queues notice the limit one message late: with
    // x-max-length 1 the queue takes two, and nacks from the third on.
    for id in ["ev-1", "ev-2"] {
        publisher
            .publish_event(&sample_event(id, "r"), None)
            .await
            .unwrap();
    }
    let error = publisher
        .publish_event(&sample_event("ev-3", "r"), None)
        .await
        .expect_err("reject-publish nacks when the queue is full");
    assert!(matches!(error, BusError::Nacked { .. }), "{error}");
    assert_eq!(error.action(), Action::Retry);

    let mut consumer = test
        .bus
        .consume(&test.topology().events_queue, 2)
        .await
        .unwrap();
    for _ in 0..2 {
        next_within(&mut consumer, 5).await.ack().await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match publisher
            .publish_event(&sample_event("ev-3", "r"), None)
            .await
        {
            Ok(()) => break,
            Err(error) if std::time::Instant::now() < deadline => {
                assert_eq!(error.action(), Action::Retry, "{error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("the drained queue still refuses: {error}"),
        }
    }
    assert_eq!(
        next_within(&mut consumer, 5).await.message_id(),
        Some("ev-3")
    );
    test.cleanup().await;
}
