//! Test harness: the notifier on the real local RabbitMQ and Redis under names and
//! keys no other test shares, the mock Slack from testkit, sample notifications,
//! and cleanup that runs even when a test fails.

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use gate_bus::{Bus, BusSettings, Consumer, Publisher, Redis, RedisSettings, Topology};
use gate_core::{
    Bands, Category, ChangedFile, CommitInfo, Decision, DeployContext, Evidence, FileClass,
    FileStatus, Notification, Risk, Severity, Usage, Verdict, NOTIFICATION_SCHEMA_VERSION,
};
use gate_notifier::{
    ChannelSettings, Env, NotifierDeps, NotifierError, NotifierSettings, NotifierStats,
    StatsSnapshot,
};
use gate_testkit::slack::MockSlack;
use tokio::{sync::oneshot, task::JoinHandle};

/// The machine's RabbitMQ. Tests fail, never skip, when it is not there.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The machine's Redis.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// A prefix no other test run uses: `t-<16 hex>-`.
pub fn unique_prefix() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("t-{hex}-")
}

/// Settings fast enough for tests: no pacing, tiny backoffs. Tests about pacing
/// set `min_interval_ms` back.
pub fn fast_settings(channels: &[(&str, ChannelSettings)]) -> NotifierSettings {
    NotifierSettings {
        channels: channels
            .iter()
            .map(|(name, channel)| (name.to_string(), channel.clone()))
            .collect(),
        min_interval_ms: 0,
        initial_backoff_ms: 20,
        max_backoff_ms: 100,
        shutdown_grace_secs: 2,
        reconnect_backoff_ms: 100,
        ..NotifierSettings::default()
    }
}

/// A Slack channel reading its webhook URL from `var`.
pub fn slack_channel(var: &str) -> ChannelSettings {
    ChannelSettings::Slack {
        webhook_url_env: var.to_string(),
    }
}

/// One test's world: a prefixed topology on the real broker, a publisher, the
/// mock Slack, and the Redis key prefix.
pub struct TestWorld {
    pub prefix: String,
    pub bus_settings: BusSettings,
    pub redis_settings: RedisSettings,
    pub bus: Bus,
    pub publisher: Publisher,
    pub slack: MockSlack,
    cleaned: bool,
}

impl TestWorld {
    pub async fn start() -> TestWorld {
        let prefix = unique_prefix();
        let bus_settings = BusSettings {
            topology: Topology::default().with_prefix(&prefix),
            connect_attempts: 3,
            connect_backoff_initial_ms: 50,
            connection_name: format!("{prefix}test"),
            ..BusSettings::default()
        };
        let bus = Bus::connect(AMQP_URL, bus_settings.clone())
            .await
            .expect("RabbitMQ must be running at 127.0.0.1:5672 with guest/guest");
        let publisher = bus.publisher().await.unwrap();
        let redis_settings = RedisSettings {
            key_prefix: format!("{prefix}gate:"),
            ..RedisSettings::default()
        };
        Redis::open(REDIS_URL, redis_settings.clone())
            .unwrap()
            .ping()
            .await
            .expect("Redis must be running at 127.0.0.1:6379");
        let slack = MockSlack::start().await.unwrap();
        TestWorld {
            prefix,
            bus_settings,
            redis_settings,
            bus,
            publisher,
            slack,
            cleaned: false,
        }
    }

    /// Dependencies for a notifier in this world, with its own connection name so
    /// `rabbitmqctl` can close it alone.
    pub fn deps(&self, env: Env) -> NotifierDeps {
        let mut bus = self.bus_settings.clone();
        bus.connection_name = format!("{}notifier", self.prefix);
        let mut deps = NotifierDeps::new(AMQP_URL, bus, REDIS_URL, self.redis_settings.clone());
        deps.env = env;
        deps
    }

    /// Starts a notifier in a task.
    pub fn start_notifier(&self, settings: NotifierSettings, deps: NotifierDeps) -> Running {
        let stats = deps.stats.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gate_notifier::run(settings, deps, async move {
            let _ = stopped.await;
        }));
        Running {
            stats,
            stop: Some(stop),
            task,
        }
    }

    /// Publishes a notification as the worker does.
    pub async fn publish(&self, notification: &Notification) {
        self.publisher
            .publish_notification(
                &notification.channel,
                notification.severity,
                &notification.event_id,
                notification,
                None,
            )
            .await
            .unwrap();
    }

    /// A consumer of the dead-letter queue.
    pub async fn dead_letters(&self) -> Consumer {
        self.bus
            .consume(&self.bus_settings.topology.dead_letter_queue, 10)
            .await
            .unwrap()
    }

    /// Deletes the topology and the Redis keys, and closes the connection.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        let _ = self.bus.delete_topology().await;
        let _ = self.bus.close().await;
        if let Ok(redis) = Redis::open(REDIS_URL, self.redis_settings.clone()) {
            let _ = redis.delete_all_keys().await;
        }
    }
}

impl Drop for TestWorld {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // The test failed before cleaning up: delete what it made from a thread with
        // a runtime of its own, since the test's runtime may be gone.
        let bus_settings = self.bus_settings.clone();
        let redis_settings = self.redis_settings.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async move {
                    if let Ok(bus) = Bus::connect(AMQP_URL, bus_settings).await {
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

/// A notifier running in a task.
pub struct Running {
    pub stats: NotifierStats,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), NotifierError>>,
}

impl Running {
    /// Waits until the counters satisfy `done`; panics with them after `secs`.
    pub async fn wait_for_stats(
        &self,
        secs: u64,
        done: impl Fn(&StatsSnapshot) -> bool,
    ) -> StatsSnapshot {
        let start = std::time::Instant::now();
        loop {
            let snapshot = self.stats.snapshot();
            if done(&snapshot) {
                return snapshot;
            }
            if start.elapsed() > Duration::from_secs(secs) {
                panic!("notifier counters not reached within {secs} s: {snapshot:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), NotifierError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the notifier stops within 30 s")
            .expect("the notifier task does not panic")
    }

    /// Whether `run` already returned (e.g. with a start-up error).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// A small deploy context for `acme/shop` whose head is `b…b`.
pub fn sample_context() -> DeployContext {
    DeployContext {
        repo: "acme/shop".to_string(),
        base: "a".repeat(40),
        head: "b".repeat(40),
        head_is_merge: false,
        root_commit: false,
        commits: vec![CommitInfo {
            sha: "b".repeat(40),
            author: "Dev".to_string(),
            message: "Drop the legacy column".to_string(),
            merge: false,
        }],
        n_commits: 1,
        files: vec![ChangedFile {
            path: "db/migrations/002_drop.sql".to_string(),
            old_path: None,
            status: FileStatus::Added,
            additions: 1,
            deletions: 0,
            binary: false,
            class: FileClass::Migration,
        }],
        lines_added: 1,
        lines_removed: 0,
        packed_diff: "+ALTER TABLE users DROP COLUMN legacy;\n".to_string(),
        budget_chars: 10_000,
        est_tokens: 10,
        omitted: vec![],
        n_omitted: 0,
        dep_changes: vec![],
        secrets: vec![],
    }
}

/// A blocking decision (score 92) with one critical schema risk at
/// `db/migrations/002_drop.sql:1`.
pub fn block_decision(event_id: &str) -> Decision {
    let verdict = Verdict {
        analyzer: "rules".to_string(),
        risk_score: 92,
        recommendation: Bands::default().recommendation(92),
        summary: "Drops the users.legacy column & its data.".to_string(),
        risks: vec![Risk {
            category: Category::Schema,
            severity: Severity::Critical,
            detail: "A column is dropped: <irreversible> without a backup.".to_string(),
            evidence: vec![Evidence::line(
                "db/migrations/002_drop.sql",
                1,
                "ALTER TABLE users DROP COLUMN legacy;",
            )],
        }],
        rollback_notes: vec!["Restore the column from the nightly backup.".to_string()],
        latency_ms: 3,
        usage: Usage::default(),
    };
    Decision::from_single_verdict(
        event_id,
        &sample_context(),
        verdict,
        &Bands::default(),
        "2025-01-01T00:00:01Z".to_string(),
    )
}

/// A notification of [`block_decision`] for `channel`.
pub fn notification(event_id: &str, channel: &str) -> Notification {
    Notification {
        schema_version: NOTIFICATION_SCHEMA_VERSION,
        event_id: event_id.to_string(),
        channel: channel.to_string(),
        severity: Severity::Critical,
        decision: block_decision(event_id),
        canary: None,
    }
}
