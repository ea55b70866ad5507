//! Test harness: a worker on the real local RabbitMQ and Redis under names and keys
//! no other test shares, the mock model server in front of a real Anthropic
//! provider, an observer that sees every decision and notification, deploy
//! contexts built from real git repositories, and cleanup that runs even when a
//! test fails.

#![allow(dead_code, clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use gate_bus::{Bus, BusSettings, Consumer, Delivery, Outgoing, Redis, RedisSettings, Topology};
use gate_core::{
    Bands, ChangedFile, ConsensusPolicy, Decision, DeployContext, DiffVisitor, LineKind,
    MergeEvent, Notification, Policy, Redactor, EVENT_SCHEMA_VERSION,
};
use gate_git::{ContextOptions, Range};
use gate_mock_llm::{MockConfig, MockServer};
use gate_models::{
    Analyzer, AnthropicProvider, AnthropicSettings, ApiKey, HttpSettings, PriceTable,
    PromptSettings, ProviderSetup, RetrySettings,
};
use gate_testkit::TestRepo;
use gate_worker::{WorkerDeps, WorkerError, WorkerSettings, WorkerStats};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::{JoinHandle, JoinSet},
};

/// The machine's RabbitMQ. Tests fail, never skip, when it is not there.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The machine's Redis.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379/";
/// The trace context the tests' events carry.
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A prefix no other test run uses: `t-<16 hex>-`.
pub fn unique_prefix() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("t-{hex}-")
}

/// A local port nothing listens on (right now).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One test's world: a prefixed topology, a key prefix in Redis, the mock model,
/// and an observer connection with a private queue bound to every decision and
/// notification.
pub struct Fleet {
    pub prefix: String,
    pub bus_settings: BusSettings,
    pub redis_settings: RedisSettings,
    pub observer: Bus,
    pub results: Consumer,
    pub redis: Redis,
    pub mock: MockServer,
    cleaned: bool,
}

impl Fleet {
    pub async fn start() -> Fleet {
        let prefix = unique_prefix();
        let bus_settings = BusSettings {
            topology: Topology::default().with_prefix(&prefix),
            connect_attempts: 3,
            connect_backoff_initial_ms: 50,
            connection_name: format!("observer-{prefix}"),
            ..BusSettings::default()
        };
        let observer = Bus::connect(AMQP_URL, bus_settings.clone())
            .await
            .expect("RabbitMQ must be running at 127.0.0.1:5672 with guest/guest");
        let queue = observer
            .private_results_queue(&["decision.#".to_string(), "notify.#".to_string()])
            .await
            .unwrap();
        let results = observer.consume(&queue, 100).await.unwrap();
        let redis_settings = RedisSettings {
            key_prefix: format!("{prefix}gate:"),
            ..RedisSettings::default()
        };
        let redis = Redis::open(REDIS_URL, redis_settings.clone()).unwrap();
        let mut ping = redis.ping().await;
        for _ in 0..10 {
            if ping.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            ping = redis.ping().await;
        }
        ping.expect("Redis must be running at 127.0.0.1:6379");
        let mock = MockServer::start(MockConfig::default())
            .await
            .expect("mock model server on loopback");
        Fleet {
            prefix,
            bus_settings,
            redis_settings,
            observer,
            results,
            redis,
            mock,
            cleaned: false,
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.bus_settings.topology
    }

    /// The connection name of this test's workers, to find them in `rabbitmqctl`.
    pub fn worker_connection_name(&self) -> String {
        format!("{}worker", self.prefix)
    }

    /// Settings that keep tests fast: short backoffs and grace.
    pub fn worker_settings(&self) -> WorkerSettings {
        WorkerSettings {
            concurrency: 4,
            shutdown_grace_secs: 5,
            reconnect_backoff_initial_ms: 50,
            reconnect_backoff_max_ms: 500,
            redis_retry_interval_ms: 200,
            ..WorkerSettings::default()
        }
    }

    /// A worker on this test's topology and keys, asking the mock model.
    pub fn worker_deps(&self) -> WorkerDeps {
        WorkerDeps {
            amqp_url: AMQP_URL.to_string(),
            bus: BusSettings {
                connection_name: self.worker_connection_name(),
                ..self.bus_settings.clone()
            },
            redis_url: REDIS_URL.to_string(),
            redis: self.redis_settings.clone(),
            analyzers: vec![Box::new(anthropic(&self.mock)) as Box<dyn Analyzer>],
            bands: Bands::default(),
            consensus: ConsensusPolicy::default(),
            policy_version: "test-policy-1".to_string(),
            // These tests exercise the cache and the outages with docs changes, so
            // the models must be asked for them: no skipping trivial changes here.
            policy: no_skip_policy(),
            stats: WorkerStats::new(),
        }
    }

    /// Enqueues `event` with the test trace context, as the producer does.
    pub async fn publish(&self, event: &MergeEvent) {
        let publisher = self.observer.publisher().await.unwrap();
        publisher
            .publish_event(event, Some(TRACEPARENT.to_string()))
            .await
            .unwrap();
    }

    /// Enqueues raw bytes as a merge event (poison tests).
    pub async fn publish_raw(&self, message_id: &str, payload: Vec<u8>) {
        let publisher = self.observer.publisher().await.unwrap();
        publisher
            .publish(
                &self.topology().events_exchange,
                "merge.poison",
                &Outgoing::bytes("merge_event", message_id, payload),
            )
            .await
            .unwrap();
    }

    /// The decision stored in Redis for `event_id`.
    pub async fn stored_decision(&self, event_id: &str) -> Option<Decision> {
        self.redis.decision_store().get(event_id).await.unwrap()
    }

    /// The next decision or notification, acked.
    pub async fn next_result(&mut self, secs: u64) -> Seen {
        let delivery = next_within(&mut self.results, secs).await;
        let seen = Seen::of(&delivery);
        delivery.ack().await.unwrap();
        seen
    }

    /// Results until `n` decisions have arrived (notifications are kept too).
    pub async fn results_until_decisions(&mut self, n: usize, secs: u64) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        while seen.iter().filter(|s: &&Seen| s.decision.is_some()).count() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let delivery = tokio::time::timeout(left, self.results.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "only {} of {n} decisions within {secs} s",
                        seen.iter().filter(|s: &&Seen| s.decision.is_some()).count()
                    )
                })
                .expect("results consumer ended")
                .expect("results delivery");
            seen.push(Seen::of(&delivery));
            delivery.ack().await.unwrap();
        }
        seen
    }

    /// Whether nothing more arrives within `millis`.
    pub async fn quiet_for(&mut self, millis: u64) -> bool {
        nothing_within(&mut self.results, millis).await
    }

    /// Deletes the topology and the keys and closes the observer.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        let bus = Bus::connect(AMQP_URL, self.bus_settings.clone())
            .await
            .unwrap();
        bus.delete_topology().await.unwrap();
        bus.close().await.unwrap();
        let _ = self.observer.close().await;
        self.redis.delete_all_keys().await.unwrap();
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // The test failed before cleaning up: delete its topology and keys from a
        // thread with a runtime of its own, since the test's runtime may be gone.
        let settings = self.bus_settings.clone();
        let redis_settings = self.redis_settings.clone();
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
                    if let Ok(redis) = Redis::open(REDIS_URL, redis_settings) {
                        let _ = redis.delete_all_keys().await;
                    }
                });
            }
        })
        .join();
    }
}

/// A decision or notification as the observer saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub routing_key: String,
    pub message_id: Option<String>,
    pub traceparent: Option<String>,
    pub decision: Option<Decision>,
    pub notification: Option<Notification>,
}

impl Seen {
    fn of(delivery: &Delivery) -> Seen {
        let routing_key = delivery.routing_key().to_string();
        let (decision, notification) = if routing_key.starts_with("decision.") {
            (Some(delivery.decision().unwrap()), None)
        } else {
            (
                None,
                Some(serde_json::from_slice::<Notification>(delivery.payload()).unwrap()),
            )
        };
        Seen {
            routing_key,
            message_id: delivery.message_id().map(str::to_owned),
            traceparent: delivery.traceparent().map(str::to_owned),
            decision,
            notification,
        }
    }
}

/// A running worker and the means to stop it.
pub struct RunningWorker {
    pub stats: WorkerStats,
    handle: JoinHandle<Result<(), WorkerError>>,
    stop: Option<oneshot::Sender<()>>,
}

impl RunningWorker {
    pub fn spawn(settings: WorkerSettings, deps: WorkerDeps) -> RunningWorker {
        let stats = deps.stats.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(gate_worker::run(settings, deps, async move {
            let _ = stopped.await;
        }));
        RunningWorker {
            stats,
            handle,
            stop: Some(stop),
        }
    }

    /// Asks for a graceful shutdown and returns what `run` returned, and how long
    /// it took.
    pub async fn stop(mut self) -> (Result<(), WorkerError>, Duration) {
        let started = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(30), &mut self.handle)
            .await
            .expect("the worker stops within 30 s")
            .expect("the worker task does not panic");
        (result, started.elapsed())
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

/// Waits until `condition` holds, polling, failing the test after `secs`.
pub async fn eventually(secs: u64, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(20)).await;
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

/// A policy that asks the models even for docs-only changes.
pub fn no_skip_policy() -> Policy {
    Policy::parse("skip_models_when_trivial = false\n", "test policy").unwrap()
}

/// The provider settings of the tests: the mock, tiny backoffs, short timeouts.
pub fn anthropic(mock: &MockServer) -> AnthropicProvider {
    let setup = ProviderSetup::new(
        Bands::default(),
        &PromptSettings::default(),
        PriceTable::default(),
    )
    .unwrap();
    let settings = AnthropicSettings {
        model: "claude-sonnet-4-5".into(),
        base_url: Some(mock.anthropic_base_url()),
        api_key: Some(ApiKey::new("test-key")),
        retry: RetrySettings {
            max_attempts: 3,
            initial_backoff_ms: 10,
            max_backoff_ms: 50,
            deadline_ms: 20_000,
        },
        http: HttpSettings {
            connect_timeout_ms: 1_000,
            request_timeout_ms: 15_000,
        },
        ..Default::default()
    };
    AnthropicProvider::new(&settings, &setup).unwrap()
}

/// How many attempts the tests' provider makes before giving up.
pub const MODEL_ATTEMPTS: usize = 3;

struct Ignore;

impl DiffVisitor for Ignore {
    fn line(&mut self, _: &ChangedFile, _: LineKind, _: u32, _: &str) {}
}

fn build(repo: &TestRepo) -> DeployContext {
    gate_git::build_context(
        repo.path(),
        &Range::default(),
        &ContextOptions {
            repo_name: Some("acme/shop".to_string()),
            ..ContextOptions::default()
        },
        &Redactor::new(),
        &mut Ignore,
    )
    .unwrap()
}

/// A merge that only touches documentation: deploys.
pub fn docs_change() -> DeployContext {
    static CONTEXT: OnceLock<DeployContext> = OnceLock::new();
    CONTEXT
        .get_or_init(|| build(&TestRepo::with_docs_only_change()))
        .clone()
}

/// A merge that drops a table in a migration: blocks.
pub fn destructive_migration() -> DeployContext {
    static CONTEXT: OnceLock<DeployContext> = OnceLock::new();
    CONTEXT
        .get_or_init(|| {
            let repo = TestRepo::new();
            repo.write(
                "db/migrations/001_init.sql",
                "CREATE TABLE users (id bigint primary key, legacy text);\nCREATE TABLE audit_log (id bigint);\n",
            );
            repo.commit("Initial schema");
            repo.write(
                "db/migrations/002_cleanup.sql",
                "ALTER TABLE users DROP COLUMN legacy;\nDROP TABLE audit_log;\n",
            );
            repo.commit("Drop the legacy column and the audit log");
            build(&repo)
        })
        .clone()
}

/// The docs change with another commit message: same files, another content key,
/// so every variant needs its own model call.
pub fn docs_variant(n: usize) -> DeployContext {
    let mut context = docs_change();
    for commit in &mut context.commits {
        commit.message = format!("Document how to run the shop (variant {n})");
    }
    context
}

/// A merge event for `context`.
pub fn event(event_id: &str, context: DeployContext) -> MergeEvent {
    MergeEvent {
        schema_version: EVENT_SCHEMA_VERSION,
        event_id: event_id.to_string(),
        repo: context.repo.clone(),
        base: context.base.clone(),
        head: context.head.clone(),
        git_ref: Some("refs/heads/main".to_string()),
        produced_at: "2026-01-01T00:00:00Z".to_string(),
        source: "test".to_string(),
        context,
    }
}

/// `GET path` on `addr`: the status and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    // The worker binds its health port as it starts: give it a moment.
    let mut stream = None;
    for _ in 0..100 {
        if let Ok(connected) = TcpStream::connect(addr).await {
            stream = Some(connected);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut stream = stream.expect("the health endpoint listens");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Closes, from the broker side, every connection whose client properties mention
/// `name`, as `rabbitmqctl close_connection` does for an operator. Returns how
/// many it closed.
pub fn close_connections_from_the_broker(name: &str) -> usize {
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
        assert!(
            closed.status.success(),
            "{}",
            String::from_utf8_lossy(&closed.stderr)
        );
        n_closed += 1;
    }
    n_closed
}

/// A TCP proxy on loopback that can be stopped (every connection cut, the port
/// refused) and started again on the same port: Redis going away and coming back,
/// without touching the machine's Redis that other tests share.
pub struct TcpProxy {
    pub addr: SocketAddr,
    target: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut proxy = TcpProxy {
            addr,
            target,
            task: None,
        };
        proxy.task = Some(tokio::spawn(forward(listener, target)));
        proxy
    }

    /// Cuts every connection and stops listening.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.task = Some(tokio::spawn(forward(listener, self.target)));
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn forward(listener: TcpListener, target: SocketAddr) {
    // Connections live in this set: aborting the accept task drops it, which
    // aborts them and closes their sockets.
    let mut connections = JoinSet::new();
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        connections.spawn(async move {
            if let Ok(mut server) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
        while connections.try_join_next().is_some() {}
    }
}
