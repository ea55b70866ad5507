//! Test harness: a fleet of one's own on the real local RabbitMQ and Redis (a
//! topology and a key prefix no other test shares), a stand-in for the worker
//! (store, then publish, like the real one), and cleanup that runs even when a
//! test fails.

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use gate_bus::{Bus, BusSettings, Publisher, Redis, RedisSettings, Topology};
use gate_core::{
    Bands, Category, ChangedFile, CommitInfo, Decision, DeployContext, FileClass, FileStatus, Risk,
    Severity, Usage, Verdict,
};
use gate_orchestrator::{OrchestratorDeps, OrchestratorSettings};

/// The machine's RabbitMQ. Tests fail, never skip, when it is not there.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// A password that must never appear in an error or a log.
pub const SECRET_PASSWORD: &str = "s3cret-pa55word";
/// The machine's Redis.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// A prefix no other test run uses: `t-<16 hex>-`.
pub fn unique_prefix() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("t-{hex}-")
}

/// One test's fleet: the bus the "worker" publishes on, the store it writes, and
/// the orchestrator's dependencies pointing at both.
pub struct Fleet {
    pub bus: Bus,
    pub bus_settings: BusSettings,
    pub redis: Redis,
    pub settings: OrchestratorSettings,
    publisher: Publisher,
    cleaned: bool,
}

impl Fleet {
    /// Connects to the real services under fresh names, with the orchestrator
    /// settings changed by `tweak`.
    pub async fn start(tweak: impl FnOnce(&mut OrchestratorSettings)) -> Fleet {
        let prefix = unique_prefix();
        let bus_settings = BusSettings {
            topology: Topology::default().with_prefix(&prefix),
            connect_attempts: 3,
            connect_backoff_initial_ms: 50,
            connection_name: format!("{prefix}conn"),
            ..BusSettings::default()
        };
        let bus = Bus::connect(AMQP_URL, bus_settings.clone())
            .await
            .expect("RabbitMQ must be running at 127.0.0.1:5672 with guest/guest");
        let redis_settings = RedisSettings {
            key_prefix: format!("{prefix}gate:"),
            ..RedisSettings::default()
        };
        let redis = Redis::open(REDIS_URL, redis_settings).unwrap();
        let mut ping = redis.ping().await;
        for _ in 0..10 {
            if ping.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            ping = redis.ping().await;
        }
        ping.expect("Redis must be running at 127.0.0.1:6379");
        let mut settings = OrchestratorSettings {
            reconnect_backoff_initial_ms: 50,
            ..OrchestratorSettings::default()
        };
        tweak(&mut settings);
        let publisher = bus.publisher().await.unwrap();
        Fleet {
            bus,
            bus_settings,
            redis,
            settings,
            publisher,
            cleaned: false,
        }
    }

    /// The orchestrator's view: the broker and the store.
    pub fn deps(&self) -> OrchestratorDeps {
        OrchestratorDeps::new(
            AMQP_URL,
            self.bus_settings.clone(),
            Some(self.redis.clone()),
            self.settings.clone(),
        )
    }

    /// The orchestrator's view without a decision store.
    pub fn deps_without_store(&self) -> OrchestratorDeps {
        OrchestratorDeps::new(
            AMQP_URL,
            self.bus_settings.clone(),
            None,
            self.settings.clone(),
        )
    }

    /// The orchestrator's view with a Redis that is configured but down.
    pub fn deps_with_redis_down(&self) -> OrchestratorDeps {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = RedisSettings {
            op_timeout_ms: 200,
            ..RedisSettings::default()
        };
        let down = Redis::open(&format!("redis://127.0.0.1:{port}/"), settings).unwrap();
        OrchestratorDeps::new(
            AMQP_URL,
            self.bus_settings.clone(),
            Some(down),
            self.settings.clone(),
        )
    }

    /// The orchestrator's view with the store up and the broker unreachable (a
    /// local port nothing listens on), with a password in the URL that must never
    /// show.
    pub fn deps_with_broker_down(&self) -> OrchestratorDeps {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bus_settings = BusSettings {
            connect_timeout_ms: 200,
            ..self.bus_settings.clone()
        };
        OrchestratorDeps::new(
            format!("amqp://guest:{SECRET_PASSWORD}@127.0.0.1:{port}/%2f"),
            bus_settings,
            Some(self.redis.clone()),
            self.settings.clone(),
        )
    }

    pub fn topology(&self) -> &Topology {
        &self.bus_settings.topology
    }

    /// What the worker does with a decision: store it, then publish it.
    pub async fn decide(&self, decision: &Decision) {
        self.store(decision).await;
        self.publish(decision).await;
    }

    /// Stores a decision without publishing it.
    pub async fn store(&self, decision: &Decision) {
        self.redis.decision_store().insert(decision).await.unwrap();
    }

    /// Publishes a decision without storing it (a worker that could not reach
    /// Redis).
    pub async fn publish(&self, decision: &Decision) {
        self.publisher
            .publish_decision(decision, None)
            .await
            .unwrap();
    }

    /// Deletes the topology and the keys, and closes the connection.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        self.redis.delete_all_keys().await.unwrap();
        self.bus.delete_topology().await.unwrap();
        self.bus.close().await.unwrap();
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
        let redis = self.redis.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async move {
                    let _ = redis.delete_all_keys().await;
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

/// A valid automatic decision for `event_id` about `repo` at head `head`; 90
/// blocks, 10 deploys.
pub fn decision(event_id: &str, repo: &str, head: &str, score: u8) -> Decision {
    let context = DeployContext {
        repo: repo.to_string(),
        base: "a".repeat(40),
        head: head.to_string(),
        head_is_merge: false,
        root_commit: false,
        commits: vec![CommitInfo {
            sha: head.to_string(),
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
    };
    let verdict = Verdict {
        analyzer: "rules".to_string(),
        risk_score: score,
        recommendation: Bands::default().recommendation(score),
        summary: "Drops a column.".to_string(),
        risks: vec![Risk {
            category: Category::Schema,
            severity: Severity::Critical,
            detail: "A column is dropped.".to_string(),
            evidence: vec![],
        }],
        rollback_notes: vec![],
        latency_ms: 3,
        usage: Usage::default(),
    };
    Decision::from_single_verdict(
        event_id,
        &context,
        verdict,
        &Bands::default(),
        "2025-01-01T00:00:01Z".to_string(),
    )
}

/// A head sha of 40 hex digits that differs per `n`.
pub fn sha(n: u64) -> String {
    format!("{n:040x}")
}
