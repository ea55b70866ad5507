//! The fleet harness: one test's fleet of real `deploy-gate` processes on the real
//! local RabbitMQ and Redis, under names and keys no other test shares, with the
//! outside world (model API, Slack, GitHub) replaced by the testkit's mocks.
//!
//! Every test gets a prefix (`e2e-<hex>-`) in front of every exchange, queue and
//! Redis key, a config file naming them, and processes (worker, notifier, webhook)
//! whose output goes to files that are printed when the test fails. Dropping the
//! [`Fleet`] kills its processes first, then deletes its topology and keys, so a
//! failed test leaves nothing behind and no process can redeclare what was deleted.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use gate_bus::{
    Bus, BusSettings, Consumer, Outgoing, Redis, RedisSettings, StreamOffset, Topology,
};
use gate_core::MergeEvent;
use gate_mock_llm::{MockConfig, MockServer};
use gate_testkit::slack::{MockSlack, SlackRequest};
use gate_testkit::TestRepo;
use serde_json::Value;

use crate::harness::{gate, Run};

/// The machine's RabbitMQ. Tests fail, never skip, when it is not there.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The machine's Redis.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379/0";
/// The shared approval key of every test fleet (obviously fake); the approvers
/// are alice and bob.
pub const APPROVALS_KEY: &str = "e2e-approvals-key-not-a-secret";
/// The repository name every test's events carry.
pub const REPO_NAME: &str = "acme/shop";

/// What kind of fleet a test needs.
#[derive(Debug, Clone, Default)]
pub struct FleetOptions {
    /// Ask the mock Anthropic API besides the rules analyzer (otherwise rules-only).
    pub models: bool,
}

/// A child process of the fleet, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcId(usize);

struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

/// One test's fleet. See the module documentation.
pub struct Fleet {
    pub prefix: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub bus_settings: BusSettings,
    pub redis_settings: RedisSettings,
    pub mock: MockServer,
    pub slack: MockSlack,
    pub slack_url: String,
    procs: RefCell<Vec<Proc>>,
    runtime: tokio::runtime::Runtime,
}

/// A prefix no other test run uses: `e2e-<16 hex>-`.
pub fn unique_prefix() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    format!("e2e-{:016x}-", hasher.finish())
}

/// A local port nothing listens on (right now).
/// A plain HTTP/1.1 GET on loopback; the whole response, asserted to be a 200.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The AMQP URL of the local broker reached through `addr` (a fault proxy).
pub fn amqp_url_via(addr: std::net::SocketAddr) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

/// The Redis URL of the local Redis reached through `addr` (a fault proxy).
pub fn redis_url_via(addr: std::net::SocketAddr) -> String {
    format!("redis://{addr}/0")
}

impl Fleet {
    /// Checks that RabbitMQ and Redis are there, starts the mocks and writes the
    /// config file. No process runs yet.
    pub fn start(options: FleetOptions) -> Fleet {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let prefix = unique_prefix();
        let bus_settings = BusSettings {
            topology: Topology::default().with_prefix(&prefix),
            connect_attempts: 3,
            connect_backoff_initial_ms: 50,
            connection_name: format!("{prefix}harness"),
            ..BusSettings::default()
        };
        let redis_settings = RedisSettings {
            key_prefix: format!("{prefix}gate:"),
            ..RedisSettings::default()
        };
        let (mock, slack) = runtime.block_on(async {
            let bus = Bus::connect(AMQP_URL, bus_settings.clone())
                .await
                .expect("RabbitMQ must be running at 127.0.0.1:5672 with guest/guest");
            let _ = bus.close().await;
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
            let slack = MockSlack::start().await.expect("mock Slack on loopback");
            (mock, slack)
        });
        let slack_url = slack.webhook_url();
        let dir = tempfile::Builder::new()
            .prefix("gate-e2e-fleet-")
            .tempdir()
            .unwrap();
        let config = dir.path().join("fleet.toml");
        std::fs::write(&config, config_toml(&prefix, &options)).unwrap();
        Fleet {
            prefix,
            dir,
            config,
            bus_settings,
            redis_settings,
            mock,
            slack,
            slack_url,
            procs: RefCell::new(Vec::new()),
            runtime,
        }
    }

    /// Appends TOML to the config file, for settings known only after the start
    /// (the address of a mock started on the fleet's runtime).
    pub fn append_config(&self, toml: &str) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.config)
            .unwrap();
        writeln!(file, "\n{toml}").unwrap();
    }

    /// The test's topology.
    pub fn topology(&self) -> &Topology {
        &self.bus_settings.topology
    }

    /// Runs `future` on the fleet's runtime (where the mocks live).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// `deploy-gate <args>` with this fleet's config and the mocks' addresses.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = gate(self.dir.path());
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("ANTHROPIC_BASE_URL", self.mock.anthropic_base_url())
            .env("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
            .env("SLACK_WEBHOOK_URL", &self.slack_url)
            .env("DEPLOY_GATE_LOG", "info")
            .env("DEPLOY_GATE__APPROVALS__SIGNING_KEY", APPROVALS_KEY);
        cmd
    }

    /// Runs a one-shot command to its end.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from_output(
            self.command(args)
                .output()
                .expect("cannot start deploy-gate"),
        )
    }

    /// Starts a long-running role (`worker`, `notify`, `webhook …`) with extra
    /// environment; its output goes to a log file printed if the test fails.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> ProcId {
        self.spawn_inner(args, env, false).0
    }

    /// Like [`Fleet::spawn`], with stdout handed to the caller (for `watch`).
    pub fn spawn_with_stdout(&self, args: &[&str], env: &[(&str, &str)]) -> (ProcId, ChildStdout) {
        let (id, stdout) = self.spawn_inner(args, env, true);
        (id, stdout.unwrap())
    }

    fn spawn_inner(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        pipe_stdout: bool,
    ) -> (ProcId, Option<ChildStdout>) {
        let mut procs = self.procs.borrow_mut();
        let name = format!("{}-{}", args[0], procs.len());
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = self.command(args);
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.stdin(Stdio::null()).stderr(file.try_clone().unwrap());
        if pipe_stdout {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(file);
        }
        let mut child = cmd.spawn().expect("cannot start deploy-gate");
        let stdout = child.stdout.take();
        procs.push(Proc { name, child, log });
        (ProcId(procs.len() - 1), stdout)
    }

    /// Starts a worker.
    pub fn spawn_worker(&self, env: &[(&str, &str)]) -> ProcId {
        self.spawn(&["worker"], env)
    }

    /// Starts a notifier.
    pub fn spawn_notifier(&self, env: &[(&str, &str)]) -> ProcId {
        self.spawn(&["notify"], env)
    }

    /// SIGKILL: no shutdown, no acks, no goodbye to the broker.
    pub fn kill(&self, id: ProcId) {
        let mut procs = self.procs.borrow_mut();
        let proc = &mut procs[id.0];
        proc.child.kill().unwrap();
        proc.child.wait().unwrap();
    }

    /// SIGTERM, then waits up to `within` for the process to exit; its exit code.
    pub fn terminate(&self, id: ProcId, within: Duration) -> Option<i32> {
        let mut procs = self.procs.borrow_mut();
        let proc = &mut procs[id.0];
        let status = Command::new("kill")
            .args(["-TERM", &proc.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {} failed", proc.child.id());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = proc.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {within:?} of SIGTERM",
                proc.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&self, id: ProcId) -> bool {
        self.procs.borrow_mut()[id.0]
            .child
            .try_wait()
            .unwrap()
            .is_none()
    }

    /// What the process logged so far.
    pub fn log(&self, id: ProcId) -> String {
        std::fs::read_to_string(&self.procs.borrow()[id.0].log).unwrap_or_default()
    }

    /// `deploy-gate enqueue` of the repository's last commit as `event_id`; asserts
    /// that the broker confirmed it.
    pub fn enqueue(&self, repo: &TestRepo, event_id: &str) {
        let path = repo.path().to_str().unwrap();
        let run = self.run(&[
            "enqueue",
            "--repo",
            path,
            "--repo-name",
            REPO_NAME,
            "--event-id",
            event_id,
            "--ref",
            "refs/heads/main",
        ]);
        assert_eq!(run.code, 0, "enqueue failed:\n{}", run.all_output());
        assert_eq!(run.stdout.trim(), event_id, "enqueue prints the event id");
    }

    /// `deploy-gate wait --event ID --json` with `extra` arguments.
    pub fn wait(&self, event_id: &str, extra: &[&str]) -> Run {
        let mut args = vec!["wait", "--event", event_id, "--json", "--timeout", "60s"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Waits for `event_id`'s decision, asserts the exit code, and returns the
    /// decision (checked against the schema).
    pub fn wait_for(&self, event_id: &str, expected_code: i32) -> Value {
        let run = self.wait(event_id, &[]);
        assert_eq!(
            run.code,
            expected_code,
            "wait --event {event_id}:\n{}",
            run.all_output()
        );
        let decision = run.decision();
        assert_eq!(decision["event_id"], event_id);
        decision
    }

    /// Enqueues events through the producer library, as an event bus of the
    /// user's own does: one producer, confirms awaited per event, 16 in flight.
    pub fn publish_events(&self, events: &[MergeEvent]) {
        self.block_on(async {
            let producer = gate_producer::Producer::connect(AMQP_URL, self.bus_settings.clone())
                .await
                .unwrap();
            let mut in_flight = tokio::task::JoinSet::new();
            for event in events {
                if in_flight.len() >= 16 {
                    in_flight.join_next().await.unwrap().unwrap();
                }
                let producer = producer.clone();
                let event = event.clone();
                in_flight.spawn(async move {
                    producer
                        .enqueue(&event, None)
                        .await
                        .unwrap_or_else(|err| panic!("enqueueing {}: {err}", event.event_id));
                });
            }
            while let Some(joined) = in_flight.join_next().await {
                joined.unwrap();
            }
            producer.close().await;
        });
    }

    /// Publishes raw bytes to the events exchange with `routing_key` (poison tests).
    pub fn publish_raw(&self, routing_key: &str, message_id: &str, payload: &[u8]) {
        self.block_on(async {
            let bus = Bus::connect(AMQP_URL, self.bus_settings.clone())
                .await
                .unwrap();
            let publisher = bus.publisher().await.unwrap();
            publisher
                .publish(
                    &self.topology().events_exchange,
                    routing_key,
                    &Outgoing::bytes("merge_event", message_id, payload.to_vec()),
                )
                .await
                .unwrap();
            let _ = bus.close().await;
        });
    }

    /// Reads the test's dead-letter queue until `n` messages arrived (acking them):
    /// each message's id, `x-gate-error` header and payload.
    pub fn dead_letters(&self, n: usize, timeout: Duration) -> Vec<DeadLetter> {
        self.block_on(async {
            let bus = Bus::connect(AMQP_URL, self.bus_settings.clone())
                .await
                .unwrap();
            let mut consumer = bus
                .consume(&self.topology().dead_letter_queue, 50)
                .await
                .unwrap();
            let deadline = Instant::now() + timeout;
            let mut seen = Vec::new();
            while seen.len() < n {
                let left = deadline.saturating_duration_since(Instant::now());
                let delivery = match tokio::time::timeout(left, consumer.next()).await {
                    Ok(Some(Ok(delivery))) => delivery,
                    Ok(other) => panic!("dead-letter consumer ended: {:?}", other.map(|r| r.err())),
                    Err(_) => panic!(
                        "only {} of {n} dead letters within {timeout:?}: {seen:#?}",
                        seen.len()
                    ),
                };
                seen.push(DeadLetter {
                    message_id: delivery.message_id().map(str::to_owned),
                    reason: delivery
                        .header(gate_bus::GATE_ERROR_HEADER)
                        .map(str::to_owned),
                    payload: delivery.payload().to_vec(),
                });
                delivery.ack().await.unwrap();
            }
            let _ = consumer.cancel().await;
            let _ = bus.close().await;
            seen
        })
    }

    /// Reads the test's dead-letter queue (acking) until nothing arrives for
    /// `quiet`: everything dead-lettered so far, however many that is.
    pub fn drain_dead_letters(&self, quiet: Duration) -> Vec<DeadLetter> {
        self.block_on(async {
            let bus = Bus::connect(AMQP_URL, self.bus_settings.clone())
                .await
                .unwrap();
            let mut consumer = bus
                .consume(&self.topology().dead_letter_queue, 50)
                .await
                .unwrap();
            let mut seen = Vec::new();
            while let Ok(next) = tokio::time::timeout(quiet, consumer.next()).await {
                let delivery = match next {
                    Some(Ok(delivery)) => delivery,
                    other => panic!("dead-letter consumer ended: {:?}", other.map(|r| r.err())),
                };
                seen.push(DeadLetter {
                    message_id: delivery.message_id().map(str::to_owned),
                    reason: delivery
                        .header(gate_bus::GATE_ERROR_HEADER)
                        .map(str::to_owned),
                    payload: delivery.payload().to_vec(),
                });
                delivery.ack().await.unwrap();
            }
            let _ = consumer.cancel().await;
            let _ = bus.close().await;
            seen
        })
    }

    /// Whether the events queue stays empty for `millis` (read by a consumer of its
    /// own: only for tests where no worker runs).
    pub fn events_queue_stays_empty(&self, millis: u64) -> bool {
        self.block_on(async {
            let bus = Bus::connect(AMQP_URL, self.bus_settings.clone())
                .await
                .unwrap();
            let mut consumer = bus
                .consume(&self.topology().events_queue, 10)
                .await
                .unwrap();
            let quiet = tokio::time::timeout(Duration::from_millis(millis), consumer.next())
                .await
                .is_err();
            let _ = consumer.cancel().await;
            let _ = bus.close().await;
            quiet
        })
    }

    /// A reader of the test's decisions log from its first entry.
    pub fn log_reader(&self) -> LogReader {
        let handle = self.runtime.handle().clone();
        let (bus, consumer) = self.block_on(async {
            let bus = Bus::connect(AMQP_URL, self.bus_settings.clone())
                .await
                .unwrap();
            let consumer = bus
                .consume_stream(&self.topology().decisions_log, 200, StreamOffset::First)
                .await
                .unwrap();
            (bus, consumer)
        });
        LogReader {
            handle,
            bus,
            consumer,
            entries: Vec::new(),
        }
    }

    /// The decision stored in Redis for `event_id`, as JSON.
    pub fn stored_decision(&self, event_id: &str) -> Option<Value> {
        self.block_on(async {
            let redis = Redis::open(REDIS_URL, self.redis_settings.clone()).unwrap();
            redis
                .decision_store()
                .get(event_id)
                .await
                .unwrap()
                .map(|decision| serde_json::to_value(decision).unwrap())
        })
    }

    /// Requests the mock model server received so far.
    pub fn model_calls(&self) -> usize {
        self.mock.requests().len()
    }

    /// Messages the mock Slack accepted so far.
    pub fn slack_messages(&self) -> Vec<SlackRequest> {
        self.slack.messages()
    }

    /// Waits for at least `n` accepted Slack messages.
    pub fn wait_for_slack(&self, n: usize, timeout: Duration) -> Vec<SlackRequest> {
        self.block_on(self.slack.wait_for_messages(n, timeout))
    }

    fn print_logs(&self) {
        for proc in self.procs.borrow().iter() {
            let text = std::fs::read_to_string(&proc.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "----- {} ({} lines, last {}) -----\n{}",
                proc.name,
                lines.len(),
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // Processes first: a live worker would redeclare what cleanup deletes.
        for proc in self.procs.borrow_mut().iter_mut() {
            if proc.child.try_wait().ok().flatten().is_none() {
                let _ = proc.child.kill();
                let _ = proc.child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("fleet {} failed; process logs follow", self.prefix);
            self.print_logs();
        }
        let bus_settings = self.bus_settings.clone();
        let redis_settings = self.redis_settings.clone();
        self.runtime.block_on(async move {
            if let Ok(bus) = Bus::connect(AMQP_URL, bus_settings).await {
                let _ = bus.delete_topology().await;
                let _ = bus.close().await;
            }
            if let Ok(redis) = Redis::open(REDIS_URL, redis_settings) {
                let _ = redis.delete_all_keys().await;
            }
        });
    }
}

/// A message from the dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub message_id: Option<String>,
    pub reason: Option<String>,
    pub payload: Vec<u8>,
}

/// A reader of the decisions log (a stream), from its first entry: every decision
/// ever published for this test, in order, each checked against the schema.
pub struct LogReader {
    handle: tokio::runtime::Handle,
    bus: Bus,
    consumer: Consumer,
    pub entries: Vec<Value>,
}

impl LogReader {
    /// Reads until `done(entries)` holds, failing the test after `timeout`.
    pub fn read_until(&mut self, timeout: Duration, what: &str, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(&self.entries) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                self.next_within(left),
                "decisions log: {what} not within {timeout:?} ({} entries read: {:?})",
                self.entries.len(),
                self.entries
                    .iter()
                    .map(|d| d["event_id"].as_str().unwrap_or("?").to_string())
                    .collect::<Vec<_>>()
            );
        }
    }

    /// Reads whatever arrives until nothing has for `quiet`.
    pub fn drain(&mut self, quiet: Duration) {
        while self.next_within(quiet) {}
    }

    /// Reads until every id of `ids` has at least one decision.
    pub fn read_all_of(&mut self, ids: &BTreeSet<String>, timeout: Duration) {
        self.read_until(
            timeout,
            &format!("decisions for all {} events", ids.len()),
            |entries| {
                let seen: BTreeSet<&str> = entries
                    .iter()
                    .filter_map(|d| d["event_id"].as_str())
                    .collect();
                ids.iter().all(|id| seen.contains(id.as_str()))
            },
        );
    }

    /// The entries for `event_id`, in log order.
    pub fn of(&self, event_id: &str) -> Vec<Value> {
        self.entries
            .iter()
            .filter(|d| d["event_id"] == event_id)
            .cloned()
            .collect()
    }

    /// Entries per event id.
    pub fn by_event(&self) -> BTreeMap<String, Vec<Value>> {
        let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for entry in &self.entries {
            map.entry(entry["event_id"].as_str().unwrap().to_string())
                .or_default()
                .push(entry.clone());
        }
        map
    }

    fn next_within(&mut self, within: Duration) -> bool {
        let consumer = &mut self.consumer;
        let next = self
            .handle
            .block_on(async { tokio::time::timeout(within, consumer.next()).await });
        let delivery = match next {
            Err(_) => return false,
            Ok(Some(Ok(delivery))) => delivery,
            Ok(other) => panic!("decisions log consumer ended: {:?}", other.map(|r| r.err())),
        };
        let value: Value = serde_json::from_slice(delivery.payload()).unwrap();
        assert_valid_decision(&value);
        assert_eq!(
            delivery.message_id(),
            value["event_id"].as_str(),
            "a decision's message id is its event id"
        );
        self.entries.push(value);
        self.handle.block_on(delivery.ack()).unwrap();
        true
    }
}

impl Drop for LogReader {
    fn drop(&mut self) {
        let bus = &self.bus;
        let _ = self.handle.block_on(bus.close());
    }
}

/// Asserts that `decision` validates against `schemas/decision.schema.json`.
pub fn assert_valid_decision(decision: &Value) {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = SCHEMA.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schemas/decision.schema.json"
        );
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap()
    });
    let errors: Vec<String> = validator
        .iter_errors(decision)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "decision violates schemas/decision.schema.json: {errors:#?}\n{decision:#}"
    );
}

/// The deploy context of the repository's last commit, as `enqueue` builds it.
pub fn context_of(repo: &TestRepo) -> gate_core::DeployContext {
    struct NoVisitor;
    impl gate_core::DiffVisitor for NoVisitor {
        fn line(&mut self, _: &gate_core::ChangedFile, _: gate_core::LineKind, _: u32, _: &str) {}
    }
    gate_git::build_context(
        repo.path(),
        &gate_git::Range::default(),
        &gate_git::ContextOptions {
            repo_name: Some(REPO_NAME.to_string()),
            ..gate_git::ContextOptions::default()
        },
        &gate_core::Redactor::new(),
        &mut NoVisitor,
    )
    .unwrap()
}

/// A merge event for `context`, as an event bus calling the producer library
/// builds it.
pub fn merge_event(event_id: &str, context: &gate_core::DeployContext) -> MergeEvent {
    gate_producer::merge_event(
        context.clone(),
        Some(event_id.to_string()),
        Some("refs/heads/main".to_string()),
        "e2e",
    )
}

/// A repository whose history starts with a small application; tests add the
/// change they need as the last commit.
pub fn app_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("README.md", "# shop\n\nA small shop.\n");
    repo.write(
        "src/cart.py",
        "def total(items):\n    return sum(item.price for item in items)\n",
    );
    repo.commit("initial shop");
    repo
}

/// Commits a documentation change (`n` makes each one's content distinct).
pub fn commit_docs(repo: &TestRepo, n: usize) -> String {
    repo.write(
        &format!("docs/note-{n}.md"),
        &format!("# Note {n}\n\nHow to run the shop, take {n}.\n"),
    );
    repo.commit(&format!("docs: note {n}"))
}

/// Commits a small code change (`n` makes each one's content distinct; `marker`,
/// when not empty, goes in a comment, e.g. `MOCK:score=60` for the mock model).
/// Not trivial, so the models are asked (the policy skips them for docs-only
/// changes).
pub fn commit_code(repo: &TestRepo, n: usize, marker: &str) -> String {
    repo.write(
        &format!("src/feature_{n}.py"),
        &format!(
            "def feature_{n}(items):\n    # {marker}\n    return [item for item in items if item.price > {n}]\n"
        ),
    );
    repo.commit(&format!("feat: feature {n}"))
}

/// Commits a destructive migration (`DROP TABLE`).
pub fn commit_drop_table(repo: &TestRepo) -> String {
    repo.write(
        "migrations/V2__x.sql",
        "-- retire the legacy table\nDROP TABLE customers;\n",
    );
    repo.commit("drop the customers table")
}

/// Reads a child's stdout line by line on a thread; lines arrive on the channel.
pub fn lines_of(stdout: ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=pos).collect();
                        if tx
                            .send(String::from_utf8_lossy(&line).trim_end().to_string())
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }
    });
    rx
}

/// A minimal HTTP/1.1 POST on loopback: the status and the body.
pub fn http_post(addr: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
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

/// Waits until `addr` accepts TCP connections (a server starting up).
pub fn wait_for_listener(addr: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {addr} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `condition` until it holds, failing after `timeout`.
pub fn eventually(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The config file of a test's fleet: prefixed names and keys, the mock model
/// (or none), Slack through `SLACK_WEBHOOK_URL`, and short timings.
fn config_toml(prefix: &str, options: &FleetOptions) -> String {
    let enabled = if options.models {
        r#"["anthropic"]"#
    } else {
        "[]"
    };
    let topology = toml::to_string(&Topology::default().with_prefix(prefix)).unwrap();
    format!(
        r#"# Written by the e2e fleet harness for one test.
[models]
enabled = {enabled}

[models.anthropic.retry]
max_attempts = 3
initial_backoff_ms = 10
max_backoff_ms = 50

[bus]
confirm_timeout_ms = 5000
connect_attempts = 10
connect_backoff_initial_ms = 50
connect_backoff_max_ms = 500

# Every name of the topology, prefixed (derived from the bus crate's own list,
# so a queue added to the topology is prefixed too).
[bus.topology]
{topology}
[stores]
key_prefix = "{prefix}gate:"
op_timeout_ms = 250

[worker]
concurrency = 4
shutdown_grace_secs = 2
reconnect_backoff_initial_ms = 50
reconnect_backoff_max_ms = 500
redis_retry_interval_ms = 200

[notify]
min_interval_ms = 20
initial_backoff_ms = 50
max_backoff_ms = 500
shutdown_grace_secs = 2
reconnect_backoff_ms = 100

[notify.channels.deploys]
kind = "slack"
webhook_url_env = "SLACK_WEBHOOK_URL"

[approvals]
approvers = ["alice", "bob"]

[orchestrator]
reconnect_backoff_initial_ms = 50
reconnect_backoff_max_ms = 500
"#
    )
}
