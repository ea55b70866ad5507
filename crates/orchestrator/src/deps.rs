//! What the orchestrator functions need: where the broker is, the decision store
//! if there is one, and how to behave.

use std::{fmt, time::Duration};

use gate_bus::{Bus, BusError, BusSettings, DecisionStore, Redis};
use serde::{Deserialize, Serialize};

/// How `wait`, `watch` and `approve` behave, apart from the broker and Redis
/// settings (section `[orchestrator]` of the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrchestratorSettings {
    /// Unacked deliveries per consumer (default 100): the private queue of a
    /// `wait` bound to `decision.#` and the stream consumers (streams require a
    /// prefetch; acking is what lets the broker send more).
    pub prefetch: u16,
    /// How far back (seconds, default 3600) `wait` reads the decisions log when
    /// the store cannot answer, to find a decision published before it bound its
    /// queue; 0 never reads it. Reading costs every decision of that window, so
    /// keep it to the longest gap expected between a decision and its `wait`.
    pub replay_lookback_secs: u64,
    /// Whether `wait` also reads the log when the store answers but has no
    /// decision (default true): a worker that could not reach Redis still
    /// published its decision, and only the log remembers it.
    pub replay_on_store_miss: bool,
    /// First pause before connecting again after the broker was lost (default
    /// 200 ms); doubles per failed attempt.
    pub reconnect_backoff_initial_ms: u64,
    /// Longest pause between reconnection attempts (default 5 s).
    pub reconnect_backoff_max_ms: u64,
    /// How long `watch` keeps handing over decisions it already received after
    /// shutdown is asked for (default 2 s), before it returns.
    pub watch_drain_ms: u64,
}

impl Default for OrchestratorSettings {
    fn default() -> Self {
        OrchestratorSettings {
            prefetch: 100,
            replay_lookback_secs: 3600,
            replay_on_store_miss: true,
            reconnect_backoff_initial_ms: 200,
            reconnect_backoff_max_ms: 5_000,
            watch_drain_ms: 2_000,
        }
    }
}

/// The broker, the store and the settings the orchestrator functions share.
///
/// It keeps the broker URL rather than a connection: `wait` declares a private
/// queue that RabbitMQ deletes with its connection, so every wait (and every
/// reconnection) uses a connection of its own and leaves nothing behind, whether
/// it returns or is dropped. `redis` is optional: without it (or while Redis is
/// down) `wait` works from the queue and the decisions log, and `approve` refuses.
#[derive(Clone)]
pub struct OrchestratorDeps {
    amqp_url: String,
    bus: BusSettings,
    redis: Option<Redis>,
    settings: OrchestratorSettings,
}

impl OrchestratorDeps {
    /// Everything the orchestrator functions use. `amqp_url` is a secret: it is
    /// never printed, logged or put in an error.
    pub fn new(
        amqp_url: impl Into<String>,
        bus: BusSettings,
        redis: Option<Redis>,
        settings: OrchestratorSettings,
    ) -> OrchestratorDeps {
        OrchestratorDeps {
            amqp_url: amqp_url.into(),
            bus,
            redis,
            settings,
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &OrchestratorSettings {
        &self.settings
    }

    /// The broker settings in use (topology names included).
    pub fn bus_settings(&self) -> &BusSettings {
        &self.bus
    }

    /// Connects with the configured attempts and backoff (`approve`: give it a
    /// finite `connect_attempts`, or it waits for the broker forever).
    pub(crate) async fn connect(&self) -> Result<Bus, BusError> {
        Bus::connect(&self.amqp_url, self.bus.clone()).await
    }

    /// One connection attempt: `wait` and `watch` retry by themselves, so that
    /// between attempts `wait` can ask the store and `watch` can shut down.
    pub(crate) async fn connect_once(&self) -> Result<Bus, BusError> {
        let settings = BusSettings {
            connect_attempts: 1,
            ..self.bus.clone()
        };
        Bus::connect(&self.amqp_url, settings).await
    }

    pub(crate) fn decision_store(&self) -> Option<DecisionStore> {
        self.redis.as_ref().map(Redis::decision_store)
    }

    /// The pause before reconnection attempt `attempt + 1` (from 1).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let initial = self.settings.reconnect_backoff_initial_ms.max(1);
        let max = self.settings.reconnect_backoff_max_ms.max(initial);
        let exponent = attempt.saturating_sub(1).min(20);
        Duration::from_millis(initial.saturating_mul(1 << exponent).min(max))
    }
}

impl fmt::Debug for OrchestratorDeps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrchestratorDeps")
            .field("amqp_url", &"<secret>")
            .field("bus", &self.bus)
            .field("redis", &self.redis.as_ref().map(|_| "<configured>"))
            .field("settings", &self.settings)
            .finish()
    }
}

/// Closes a connection without letting a slow broker delay the answer; dropping
/// it would close it too.
pub(crate) async fn close_quietly(bus: &Bus) {
    let _ = tokio::time::timeout(Duration::from_secs(1), bus.close()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_refuse_unknown_fields_and_fill_defaults() {
        let settings: OrchestratorSettings =
            serde_json::from_str(r#"{"prefetch": 7}"#).expect("valid settings");
        assert_eq!(settings.prefetch, 7);
        assert_eq!(settings.replay_lookback_secs, 3600);
        assert!(serde_json::from_str::<OrchestratorSettings>(r#"{"prefetc": 7}"#).is_err());
    }

    #[test]
    fn the_url_never_shows_in_debug_output() {
        let deps = OrchestratorDeps::new(
            "amqp://user:hunter2@broker:5672/%2f",
            BusSettings::default(),
            None,
            OrchestratorSettings::default(),
        );
        let printed = format!("{deps:?}");
        assert!(!printed.contains("hunter2") && printed.contains("<secret>"));
    }

    #[test]
    fn reconnection_backoff_doubles_up_to_the_cap() {
        let deps = OrchestratorDeps::new(
            "amqp://x",
            BusSettings::default(),
            None,
            OrchestratorSettings::default(),
        );
        assert_eq!(deps.backoff(1), Duration::from_millis(200));
        assert_eq!(deps.backoff(2), Duration::from_millis(400));
        assert_eq!(deps.backoff(10), Duration::from_millis(5_000));
        assert_eq!(deps.backoff(u32::MAX), Duration::from_millis(5_000));
    }
}
