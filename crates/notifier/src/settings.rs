//! What the notifier is configured with: its channels and delivery policy
//! (settings, printable), and what it runs against (dependencies, with secrets).

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use gate_bus::{BusSettings, RedisSettings};
use serde::{Deserialize, Serialize};

use crate::{NotifierError, NotifierStats};

/// The notifier's settings (the `[notify]` section of the config). Secrets are
/// not in here: a channel names the environment variable that holds its URL, so
/// these settings can be printed and committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifierSettings {
    /// Channels by name. A notification's `channel` picks one; a notification for
    /// a channel that is not here is dead-lettered (`unknown channel`), never
    /// dropped.
    pub channels: BTreeMap<String, ChannelSettings>,
    /// Failed attempts (5xx, timeouts, connection errors) after which a
    /// notification is dead-lettered (default 5). 429s are not failures; they are
    /// bounded by `max_rate_limited`.
    pub max_attempts: u32,
    /// 429 answers in a row after which a notification is dead-lettered (default
    /// 20), so a target that rate-limits forever cannot hold a delivery forever.
    pub max_rate_limited: u32,
    /// Least time between two requests to the same webhook URL (default 1000 ms:
    /// Slack allows one message per second per incoming webhook). Retries count.
    pub min_interval_ms: u64,
    /// First backoff after a failed attempt; doubles per failure, with jitter
    /// (default 500 ms).
    pub initial_backoff_ms: u64,
    /// Longest backoff between failed attempts (default 30 s).
    pub max_backoff_ms: u64,
    /// Cap on a target's `Retry-After` (default 300 s): a buggy or hostile answer
    /// cannot park a notification for a day.
    pub max_retry_after_secs: u64,
    /// Bound on opening a connection to a target (default 5 s).
    pub connect_timeout_ms: u64,
    /// Bound on one request, answer included (default 10 s).
    pub request_timeout_ms: u64,
    /// Notifications handled at once, and the AMQP prefetch (default 8). Requests to
    /// one webhook are still paced one per `min_interval_ms`.
    pub concurrency: u16,
    /// How long a delivered notification is remembered in Redis, so a redelivered
    /// copy is skipped (default 7 days).
    pub dedup_ttl_secs: u64,
    /// After the shutdown signal: how long in-flight notifications may take to
    /// finish before the rest go back to the queue (default 10 s).
    pub shutdown_grace_secs: u64,
    /// First backoff between broker reconnect rounds, after [`gate_bus::Bus::connect`]
    /// used up its own attempts (default 1 s, doubling to 30 s).
    pub reconnect_backoff_ms: u64,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        NotifierSettings {
            channels: BTreeMap::new(),
            max_attempts: 5,
            max_rate_limited: 20,
            min_interval_ms: 1_000,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            max_retry_after_secs: 300,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            concurrency: 8,
            dedup_ttl_secs: 7 * 24 * 3600,
            shutdown_grace_secs: 10,
            reconnect_backoff_ms: 1_000,
        }
    }
}

impl NotifierSettings {
    /// Checks what would make the notifier useless or misbehave, so a bad setting
    /// is reported at start with its name.
    pub fn validate(&self) -> Result<(), NotifierError> {
        let invalid = |message: String| Err(NotifierError::InvalidSettings(message));
        if self.channels.is_empty() {
            return invalid("notify.channels is empty: configure at least one channel".into());
        }
        for (name, channel) in &self.channels {
            if name.trim().is_empty() || name.len() > 200 {
                return invalid(format!(
                    "notify.channels: channel names must be 1 to 200 bytes, got {name:?}"
                ));
            }
            let var = channel.url_env();
            if var.trim().is_empty() {
                return invalid(format!(
                    "notify.channels.{name}: the environment variable holding the URL is empty"
                ));
            }
            if let ChannelSettings::Webhook {
                headers,
                secret_headers_env,
                ..
            } = channel
            {
                for header in headers.keys().chain(secret_headers_env.keys()) {
                    if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                        return invalid(format!(
                            "notify.channels.{name}: {header:?} is not a valid HTTP header name"
                        ));
                    }
                }
            }
        }
        for (field, value) in [
            ("max_attempts", u64::from(self.max_attempts)),
            ("max_rate_limited", u64::from(self.max_rate_limited)),
            ("concurrency", u64::from(self.concurrency)),
            ("request_timeout_ms", self.request_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("dedup_ttl_secs", self.dedup_ttl_secs),
        ] {
            if value == 0 {
                return invalid(format!("notify.{field} must be at least 1"));
            }
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return invalid(format!(
                "notify.max_backoff_ms ({}) is below notify.initial_backoff_ms ({})",
                self.max_backoff_ms, self.initial_backoff_ms
            ));
        }
        Ok(())
    }

    pub(crate) fn min_interval(&self) -> Duration {
        Duration::from_millis(self.min_interval_ms)
    }
}

/// Where one channel's notifications go. In config, a table with `kind`:
///
/// ```toml
/// [notify.channels.deploys]
/// kind = "slack"
/// webhook_url_env = "SLACK_WEBHOOK_DEPLOYS"
///
/// [notify.channels.audit]
/// kind = "webhook"
/// url_env = "AUDIT_WEBHOOK_URL"
/// headers = { "X-Team" = "platform" }
/// secret_headers_env = { "Authorization" = "AUDIT_WEBHOOK_AUTH" }
/// ```
///
/// URLs are secrets (a Slack webhook URL is its own credential), so they are read
/// from the environment at start and never printed or logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelSettings {
    /// A Slack incoming webhook: the notification becomes a Block Kit message.
    Slack {
        /// The environment variable holding the webhook URL
        /// (`https://hooks.slack.com/services/T…/B…/…`).
        webhook_url_env: String,
    },
    /// Any HTTP endpoint: the notification's JSON is POSTed as is, with an
    /// `Idempotency-Key: <channel>:<event id>` header.
    Webhook {
        /// The environment variable holding the endpoint URL.
        url_env: String,
        /// Extra headers sent with every request (not secret: they are printed
        /// with the settings).
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Secret headers: header name → the environment variable holding its
        /// value (e.g. `Authorization`). Marked sensitive, never logged.
        #[serde(default)]
        secret_headers_env: BTreeMap<String, String>,
    },
}

impl ChannelSettings {
    /// The environment variable holding the channel's URL.
    fn url_env(&self) -> &str {
        match self {
            ChannelSettings::Slack { webhook_url_env } => webhook_url_env,
            ChannelSettings::Webhook { url_env, .. } => url_env,
        }
    }
}

/// Where secrets come from. The process environment in production; a fixed map in
/// tests, which run in parallel in one process and cannot share its environment.
#[derive(Clone, Default)]
pub struct Env {
    vars: Option<Arc<BTreeMap<String, String>>>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Env {
        Env { vars: None }
    }

    /// A fixed set of variables (and nothing else).
    pub fn from_pairs<I, K, V>(pairs: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = pairs
            .into_iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect();
        Env {
            vars: Some(Arc::new(vars)),
        }
    }

    /// A variable's value; `None` when unset or not Unicode.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        match &self.vars {
            None => std::env::var(name).ok(),
            Some(vars) => vars.get(name).cloned(),
        }
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.vars {
            None => f.write_str("Env::process"),
            Some(vars) => f
                .debug_map()
                .entries(vars.keys().map(|key| (key, "****")))
                .finish(),
        }
    }
}

/// What the notifier runs against, apart from its settings: the broker, Redis,
/// where secrets come from, and where it counts what it did.
#[derive(Clone)]
pub struct NotifierDeps {
    /// `amqp://user:password@host:port/vhost`. A secret: never logged.
    pub amqp_url: String,
    /// Topology and connection settings shared with the rest of the fleet.
    pub bus: BusSettings,
    /// `redis://[:password@]host:port/db`. A secret: never logged.
    pub redis_url: String,
    /// Key prefix and timeouts; delivered marks live under
    /// `<key_prefix>notified:<channel>:<event id>`.
    pub redis: RedisSettings,
    /// Where the channels' URLs and secret headers are read from.
    pub env: Env,
    /// Counters the notifier updates; keep a clone to read them (tests, metrics).
    pub stats: NotifierStats,
}

impl NotifierDeps {
    /// Dependencies reading secrets from the process environment, with fresh
    /// counters.
    pub fn new(
        amqp_url: impl Into<String>,
        bus: BusSettings,
        redis_url: impl Into<String>,
        redis: RedisSettings,
    ) -> NotifierDeps {
        NotifierDeps {
            amqp_url: amqp_url.into(),
            bus,
            redis_url: redis_url.into(),
            redis,
            env: Env::process(),
            stats: NotifierStats::default(),
        }
    }
}

impl fmt::Debug for NotifierDeps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifierDeps")
            .field("amqp_url", &"****")
            .field("bus", &self.bus)
            .field("redis_url", &"****")
            .field("redis", &self.redis)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_tagged_by_kind_and_refuse_unknown_fields() {
        let settings: NotifierSettings = serde_json::from_str(
            r#"{"channels": {
                "ops": {"kind": "slack", "webhook_url_env": "SLACK_OPS"},
                "audit": {"kind": "webhook", "url_env": "AUDIT", "headers": {"X-Team": "infra"}}
            }, "max_attempts": 3}"#,
        )
        .expect("valid settings");
        assert_eq!(settings.max_attempts, 3);
        assert_eq!(settings.min_interval_ms, 1_000);
        assert_eq!(
            settings.channels["ops"],
            ChannelSettings::Slack {
                webhook_url_env: "SLACK_OPS".into()
            }
        );
        assert!(settings.validate().is_ok());
        for bad in [
            r#"{"channels": {"ops": {"kind": "slack", "webhook_url": "https://x"}}}"#,
            r#"{"channels": {"ops": {"kind": "teams", "url_env": "X"}}}"#,
            r#"{"max_attempt": 3}"#,
        ] {
            assert!(
                serde_json::from_str::<NotifierSettings>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn settings_without_channels_or_with_zero_attempts_are_refused() {
        assert!(NotifierSettings::default().validate().is_err());
        let mut settings = NotifierSettings::default();
        settings.channels.insert(
            "ops".into(),
            ChannelSettings::Slack {
                webhook_url_env: "X".into(),
            },
        );
        assert!(settings.validate().is_ok());
        settings.max_attempts = 0;
        assert!(settings.validate().is_err());
    }

    #[test]
    fn debug_output_masks_urls_and_env_values() {
        let mut deps = NotifierDeps::new(
            "amqp://u:hunter2@h/%2f",
            BusSettings::default(),
            "redis://:hunter2@h",
            RedisSettings::default(),
        );
        deps.env = Env::from_pairs([("SLACK_OPS", "https://hooks.slack.com/services/T/B/hunter2")]);
        let printed = format!("{deps:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("SLACK_OPS"), "{printed}");
    }
}
