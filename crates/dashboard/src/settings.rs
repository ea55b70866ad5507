//! The `[dashboard]` section of the configuration.

use serde::{Deserialize, Serialize};

use crate::DashboardError;

/// How the status page behaves (section `[dashboard]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardSettings {
    /// Address the page is served on (default `127.0.0.1:8090`; `--listen`
    /// overrides it). The page has no authentication: keep it on loopback or
    /// behind the proxy that guards your other internal pages.
    pub listen: String,
    /// Decisions read back from the log at start and listed on the page (default
    /// 100): the page is never empty after a restart. The replay also reaches
    /// back to the start of the UTC day, so "cost today" counts the whole day;
    /// only the last `replay` decisions are kept in memory.
    pub replay: usize,
    /// How often the depth of the events queue is asked of the broker (default
    /// 5000 ms).
    pub queue_poll_ms: u64,
    /// Connections served at once, live pages included (default 64); more wait
    /// to be accepted.
    pub max_connections: usize,
    /// How long a client may take to send its request headers (default 10 s).
    pub header_timeout_ms: u64,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        DashboardSettings {
            listen: "127.0.0.1:8090".to_string(),
            replay: 100,
            queue_poll_ms: 5_000,
            max_connections: 64,
            header_timeout_ms: 10_000,
        }
    }
}

/// Most decisions the page keeps: a bound on memory whatever `replay` says.
pub(crate) const MAX_REPLAY: usize = 10_000;

impl DashboardSettings {
    /// Refuses settings that cannot work, naming the key.
    pub fn validate(&self) -> Result<(), DashboardError> {
        let bad =
            |key: &str, why: &str| Err(DashboardError::Config(format!("dashboard.{key} {why}")));
        if self.replay == 0 || self.replay > MAX_REPLAY {
            return bad(
                "replay",
                &format!("must be between 1 and {MAX_REPLAY}, not {}", self.replay),
            );
        }
        if self.queue_poll_ms < 100 {
            return bad("queue_poll_ms", "must be at least 100");
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.header_timeout_ms == 0 {
            return bad("header_timeout_ms", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert!(DashboardSettings::default().validate().is_ok());
        let zero = DashboardSettings {
            replay: 0,
            ..DashboardSettings::default()
        };
        let error = zero
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("dashboard.replay"), "{error}");
        let fast = DashboardSettings {
            queue_poll_ms: 5,
            ..DashboardSettings::default()
        };
        let error = fast
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("dashboard.queue_poll_ms"), "{error}");
    }
}
