//! What a worker is configured with: its own settings (printable, layered by the
//! binary's config) and its dependencies (URLs, which are secrets, and the
//! analyzers and policy shared with `check`).

use std::{fmt, net::SocketAddr, time::Duration};

use gate_bus::{BusSettings, RedisSettings};
use gate_core::{Bands, ConsensusPolicy, Policy, Recommendation};
use gate_models::Analyzer;
use serde::{Deserialize, Serialize};

use crate::{WorkerError, WorkerStats};

/// The worker's own knobs (the `[worker]` section of the config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Events decided at the same time; also the AMQP prefetch, so the broker never
    /// hands this worker more than it works on (default 4).
    pub concurrency: u16,
    /// How long a shutdown waits for in-flight events to finish before it requeues
    /// them (default 30 s; keep it below the supervisor's kill timeout).
    pub shutdown_grace_secs: u64,
    /// Where `/healthz` and `/readyz` are served (e.g. `127.0.0.1:8081`); none by
    /// default.
    pub health_listen: Option<SocketAddr>,
    /// How long a decision stays in the decision store (default 30 days): longer
    /// than any redelivery or `wait` can come after the event. Overrides the
    /// `redis` settings' value.
    pub decision_ttl_secs: u64,
    /// How long a model verdict is reused for the same content (default 7 days).
    /// Overrides the `redis` settings' value.
    pub verdict_ttl_secs: u64,
    /// Who is told about which decisions.
    pub notify: NotifyPolicy,
    /// First wait before reconnecting to the broker after a failed attempt
    /// (default 500 ms); doubles per failed attempt, with jitter.
    pub reconnect_backoff_initial_ms: u64,
    /// Longest wait between reconnection attempts (default 30 s). The worker
    /// retries for ever: its supervisor decides when it is dead.
    pub reconnect_backoff_max_ms: u64,
    /// While Redis is down, how often one operation tries it again; the others
    /// skip it meanwhile, so a hung Redis does not cost every event a timeout
    /// (default 1000 ms).
    pub redis_retry_interval_ms: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            concurrency: 4,
            shutdown_grace_secs: 30,
            health_listen: None,
            decision_ttl_secs: 30 * 24 * 3600,
            verdict_ttl_secs: 7 * 24 * 3600,
            notify: NotifyPolicy::default(),
            reconnect_backoff_initial_ms: 500,
            reconnect_backoff_max_ms: 30_000,
            redis_retry_interval_ms: 1_000,
        }
    }
}

/// Which decisions become notifications, and on which channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyPolicy {
    /// Channels notified (each a Slack or webhook target of the notifier); one
    /// notification per channel (default `["deploys"]`; empty: notify nobody).
    pub channels: Vec<String>,
    /// The least strict recommendation that is notified (default `hold`: hold and
    /// block are notified, deploy is not).
    pub min_recommendation: Recommendation,
}

impl Default for NotifyPolicy {
    fn default() -> Self {
        NotifyPolicy {
            channels: vec!["deploys".to_string()],
            min_recommendation: Recommendation::Hold,
        }
    }
}

impl WorkerSettings {
    /// Checks the settings that would make a worker do nothing or spin.
    pub fn validate(&self) -> Result<(), WorkerError> {
        let invalid = |what: &str| Err(WorkerError::InvalidSettings(what.to_string()));
        if self.concurrency == 0 {
            return invalid("concurrency must be at least 1");
        }
        if self.decision_ttl_secs == 0 || self.verdict_ttl_secs == 0 {
            return invalid("decision_ttl_secs and verdict_ttl_secs must be at least 1");
        }
        if self.reconnect_backoff_initial_ms == 0 {
            return invalid("reconnect_backoff_initial_ms must be at least 1");
        }
        if let Some(channel) = self.notify.channels.iter().find(|c| c.trim().is_empty()) {
            return invalid(&format!(
                "notify.channels holds an empty channel name ({channel:?})"
            ));
        }
        Ok(())
    }

    /// The wait before reconnection attempt `attempt + 1` (`attempt` counts failed
    /// attempts from 1): doubling from the initial wait up to the maximum, then
    /// jittered down by up to a quarter so a fleet that lost the broker together
    /// does not come back in lockstep.
    pub(crate) fn reconnect_backoff(&self, attempt: u32, jitter: u64) -> Duration {
        let initial = self.reconnect_backoff_initial_ms.max(1);
        let max = self.reconnect_backoff_max_ms.max(initial);
        let exponent = attempt.saturating_sub(1).min(32);
        let base = initial.saturating_mul(1u64 << exponent).min(max);
        let spread = base / 4;
        let cut = if spread == 0 {
            0
        } else {
            jitter % (spread + 1)
        };
        Duration::from_millis(base - cut)
    }
}

/// What the worker is built from besides its settings: where the broker and Redis
/// are (secrets: never printed), the analyzers, and the decision policy.
pub struct WorkerDeps {
    /// `amqp://user:password@host:port/vhost`.
    pub amqp_url: String,
    /// Topology, payload limit, confirm timeout, connection name. The worker does
    /// its own reconnection backoff ([`WorkerSettings`]), so `connect_attempts` and
    /// `connect_backoff_*` are not used: each attempt is a single try.
    pub bus: BusSettings,
    /// `redis://[:password@]host:port/db`.
    pub redis_url: String,
    /// Key prefix and operation timeout (the TTLs come from [`WorkerSettings`]).
    pub redis: RedisSettings,
    /// The model providers only; the rules analyzer always runs besides them.
    /// Empty: rules-only decisions, and no verdict cache is needed.
    pub analyzers: Vec<Box<dyn Analyzer>>,
    /// Score thresholds.
    pub bands: Bands,
    /// How the verdicts combine, and what a failed analysis yields.
    pub consensus: ConsensusPolicy,
    /// An opaque version of everything else that changes a model's answer (org
    /// policy text, incident notes, provider settings): part of the verdict cache
    /// key, so changing the policy never reuses verdicts given under the old one.
    pub policy_version: String,
    /// The policy (`config/policy.toml`): per-repository and per-path rules applied
    /// after the consensus, skipping the models for trivial changes, notify
    /// thresholds per channel. Its [`Policy::version`] is part of the verdict cache
    /// key too. Its top-level `[bands]` and `on_analysis_error`, when set, win over
    /// `bands` and `consensus` above.
    pub policy: Policy,
    /// The counters this worker updates; keep a clone to read them.
    pub stats: WorkerStats,
}

impl fmt::Debug for WorkerDeps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let analyzers: Vec<String> = self.analyzers.iter().map(|a| a.id()).collect();
        f.debug_struct("WorkerDeps")
            .field("amqp_url", &"<secret>")
            .field("bus", &self.bus)
            .field("redis_url", &"<secret>")
            .field("redis", &self.redis)
            .field("analyzers", &analyzers)
            .field("bands", &self.bands)
            .field("consensus", &self.consensus)
            .field("policy_version", &self.policy_version)
            .field("policy", &self.policy.version())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_issue_and_unknown_fields_are_refused() {
        let settings: WorkerSettings =
            serde_json::from_str(r#"{"health_listen": "127.0.0.1:8081"}"#).unwrap();
        assert_eq!(settings.concurrency, 4);
        assert_eq!(
            settings.health_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 8081)))
        );
        assert_eq!(settings.notify.channels, vec!["deploys".to_string()]);
        assert_eq!(settings.notify.min_recommendation, Recommendation::Hold);
        assert!(serde_json::from_str::<WorkerSettings>(r#"{"prefetch": 8}"#).is_err());
        assert!(serde_json::from_str::<WorkerSettings>(r#"{"notify": {"channel": "x"}}"#).is_err());
    }

    #[test]
    fn zero_concurrency_and_empty_channel_names_are_refused() {
        let zero = WorkerSettings {
            concurrency: 0,
            ..WorkerSettings::default()
        };
        assert!(zero.validate().is_err());
        let mut empty_channel = WorkerSettings::default();
        empty_channel.notify.channels.push(" ".into());
        assert!(empty_channel.validate().is_err());
        assert!(WorkerSettings::default().validate().is_ok());
    }

    #[test]
    fn reconnect_backoff_doubles_to_the_cap_and_jitters_down_by_a_quarter_at_most() {
        let settings = WorkerSettings {
            reconnect_backoff_initial_ms: 100,
            reconnect_backoff_max_ms: 1_000,
            ..WorkerSettings::default()
        };
        assert_eq!(settings.reconnect_backoff(1, 0), Duration::from_millis(100));
        assert_eq!(settings.reconnect_backoff(2, 0), Duration::from_millis(200));
        assert_eq!(settings.reconnect_backoff(4, 0), Duration::from_millis(800));
        assert_eq!(
            settings.reconnect_backoff(5, 0),
            Duration::from_millis(1_000)
        );
        assert_eq!(
            settings.reconnect_backoff(u32::MAX, 0),
            Duration::from_millis(1_000)
        );
        for jitter in [1, 99, 250, u64::MAX] {
            let delay = settings.reconnect_backoff(9, jitter);
            assert!(delay >= Duration::from_millis(750) && delay <= Duration::from_millis(1_000));
        }
    }
}
