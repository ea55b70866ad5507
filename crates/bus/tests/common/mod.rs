//! Test harness: a bus on the real local RabbitMQ under a topology no other test
//! shares, sample domain values, and cleanup that runs even when a test fails.

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use gate_bus::{Bus, BusSettings, Consumer, Delivery, Topology};
use gate_core::{
    Bands, Category, ChangedFile, CommitInfo, Decision, DeployContext, FileClass, FileStatus,
    MergeEvent, Risk, Severity, Usage, Verdict, EVENT_SCHEMA_VERSION,
};

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

/// Settings for a test: a prefixed topology, few connection attempts, the prefix as
/// connection name so `rabbitmqctl` can find the connection.
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
    pub prefix: String,
    cleaned: bool,
}

impl TestBus {
    /// Connects with the default test settings changed by `tweak`.
    pub async fn start(tweak: impl FnOnce(&mut BusSettings)) -> TestBus {
        let prefix = unique_prefix();
        let mut settings = test_settings(&prefix);
        tweak(&mut settings);
        let bus = Bus::connect(AMQP_URL, settings.clone())
            .await
            .expect("RabbitMQ must be running at 127.0.0.1:5672 with guest/guest");
        TestBus {
            bus,
            settings,
            prefix,
            cleaned: false,
        }
    }

    /// The topology under test.
    pub fn topology(&self) -> &Topology {
        &self.settings.topology
    }

    /// Another connection to the same topology with other settings (e.g. another
    /// payload limit), as a second process would have.
    pub async fn another(&self, tweak: impl FnOnce(&mut BusSettings)) -> Bus {
        let mut settings = self.settings.clone();
        tweak(&mut settings);
        Bus::connect(AMQP_URL, settings)
            .await
            .expect("second connection")
    }

    /// Deletes the topology and closes the connection.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        if !self.bus.is_connected() {
            self.bus = Bus::connect(AMQP_URL, self.settings.clone()).await.unwrap();
        }
        self.bus.delete_topology().await.unwrap();
        self.bus.close().await.unwrap();
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // The test failed before cleaning up: delete its topology from a thread
        // with a runtime of its own, since the test's runtime may be gone.
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

/// Whether a delivery arrives within `millis` (for asserting that none does).
pub async fn nothing_within(consumer: &mut Consumer, millis: u64) -> bool {
    tokio::time::timeout(Duration::from_millis(millis), consumer.next())
        .await
        .is_err()
}

/// A small, valid deploy context for `repo`.
pub fn sample_context(repo: &str) -> DeployContext {
    DeployContext {
        repo: repo.to_string(),
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

/// A valid merge event with id `event_id` for `repo`.
pub fn sample_event(event_id: &str, repo: &str) -> MergeEvent {
    MergeEvent {
        schema_version: EVENT_SCHEMA_VERSION,
        event_id: event_id.to_string(),
        repo: repo.to_string(),
        base: "a".repeat(40),
        head: "b".repeat(40),
        git_ref: Some("refs/heads/main".to_string()),
        produced_at: "2025-01-01T00:00:00Z".to_string(),
        source: "test".to_string(),
        context: sample_context(repo),
    }
}

/// A rules verdict with the given score.
pub fn sample_verdict(score: u8) -> Verdict {
    Verdict {
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
    }
}

/// A decision for `event_id` with the given score (90 blocks, 10 deploys).
pub fn sample_decision(event_id: &str, repo: &str, score: u8) -> Decision {
    let decision = Decision::from_single_verdict(
        event_id,
        &sample_context(repo),
        sample_verdict(score),
        &Bands::default(),
        "2025-01-01T00:00:01Z".to_string(),
    );
    assert_eq!(
        decision.recommendation,
        Bands::default().recommendation(score),
        "sample decision has the band of its score"
    );
    decision
}
