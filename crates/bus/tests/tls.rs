//! `amqps://` and `rediss://` through a TLS-terminating proxy (testkit) in front of
//! the real local RabbitMQ and Redis: with the test's CA configured the fleet's
//! traffic works end to end; a server certificate the client does not trust is a
//! clear error naming the URL, password masked.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use gate_bus::{Bus, Outgoing, Redis, RedisSettings};
use gate_testkit::tls::{TestCa, TlsProxy};

use common::{test_settings, unique_prefix};

const RABBITMQ: &str = "127.0.0.1:5672";
const REDIS: &str = "127.0.0.1:6379";

async fn proxy(ca: &TestCa, upstream: &str) -> TlsProxy {
    TlsProxy::start(ca, upstream.parse::<SocketAddr>().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn amqps_with_the_ca_configured_publishes_and_consumes() {
    let ca = TestCa::new("deploy-gate test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let proxy = proxy(&ca, RABBITMQ).await;
    let url = format!("amqps://guest:guest@127.0.0.1:{}/%2f", proxy.addr().port());
    let mut settings = test_settings(&unique_prefix());
    settings.tls_ca_file = Some(ca_file.to_str().unwrap().to_owned());

    let bus = Bus::connect(&url, settings.clone())
        .await
        .expect("amqps:// with the test CA connects");
    let topology = settings.topology.clone();
    let mut consumer = bus.consume(&topology.events_queue, 1).await.unwrap();
    let publisher = bus.publisher().await.unwrap();
    publisher
        .publish(
            &topology.events_exchange,
            "merge.acme-shop",
            &Outgoing::bytes("merge_event", "tls-1", b"{\"over\":\"tls\"}".to_vec()),
        )
        .await
        .expect("confirmed through TLS");
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(delivery.payload(), b"{\"over\":\"tls\"}");
    assert_eq!(delivery.message_id(), Some("tls-1"));
    delivery.ack().await.unwrap();
    bus.delete_topology().await.unwrap();
    bus.close().await.unwrap();
}

#[tokio::test]
async fn amqps_to_an_untrusted_certificate_fails_naming_the_url_without_its_password() {
    let untrusted = TestCa::new("a CA nobody configured");
    let proxy = proxy(&untrusted, RABBITMQ).await;
    let url = format!(
        "amqps://gate:pw-FAKE-amqp@127.0.0.1:{}/%2f",
        proxy.addr().port()
    );
    let mut settings = test_settings(&unique_prefix());
    settings.connect_attempts = 1;
    let error = match Bus::connect(&url, settings).await {
        Ok(_) => panic!("a certificate from an untrusted CA must not be accepted"),
        Err(error) => error.to_string(),
    };
    let named = format!("amqps://gate:****@127.0.0.1:{}/%2f", proxy.addr().port());
    assert!(error.contains(&named), "{error}");
    assert!(!error.contains("pw-FAKE-amqp"), "{error}");
    assert!(
        error.to_lowercase().contains("certificate")
            || error.to_lowercase().contains("unknownissuer"),
        "says why: {error}"
    );
}

#[tokio::test]
async fn rediss_with_the_ca_configured_sets_and_reads() {
    let ca = TestCa::new("deploy-gate test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let proxy = proxy(&ca, REDIS).await;
    let settings = RedisSettings {
        key_prefix: format!("{}gate:", unique_prefix()),
        op_timeout_ms: 2_000,
        tls_ca_file: Some(ca_file.to_str().unwrap().to_owned()),
        ..RedisSettings::default()
    };
    let url = format!("rediss://127.0.0.1:{}/0", proxy.addr().port());
    let redis = Redis::open(&url, settings).unwrap();
    redis
        .ping()
        .await
        .expect("rediss:// with the test CA answers");
    let marks = redis.marks("tls", Duration::from_secs(60));
    assert!(marks.insert("written-over-tls").await.unwrap());
    assert!(marks.contains("written-over-tls").await.unwrap());
    assert!(!marks.insert("written-over-tls").await.unwrap());
    assert_eq!(redis.delete_all_keys().await.unwrap(), 1);
}

#[tokio::test]
async fn rediss_to_an_untrusted_certificate_fails_naming_the_url_without_its_password() {
    let trusted = TestCa::new("the configured CA");
    let untrusted = TestCa::new("a CA nobody configured");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = trusted.write_pem(dir.path(), "ca.pem");
    let proxy = proxy(&untrusted, REDIS).await;
    let settings = RedisSettings {
        op_timeout_ms: 2_000,
        tls_ca_file: Some(ca_file.to_str().unwrap().to_owned()),
        ..RedisSettings::default()
    };
    let url = format!(
        "rediss://:pw-FAKE-redis@127.0.0.1:{}/0",
        proxy.addr().port()
    );
    let redis = Redis::open(&url, settings).unwrap();
    let error = redis
        .ping()
        .await
        .expect_err("a certificate from an untrusted CA must not be accepted")
        .to_string();
    let named = format!("rediss://:****@127.0.0.1:{}/0", proxy.addr().port());
    assert!(error.contains(&named), "{error}");
    assert!(!error.contains("pw-FAKE-redis"), "{error}");
}
