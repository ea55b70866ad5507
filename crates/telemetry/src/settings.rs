//! The `[telemetry]` section of the configuration.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Where telemetry leaves the process. Everything unset (the default) exports
/// nothing: the counters are kept in memory only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// Where a long-running role (`worker`, `notify`, `webhook`) serves
    /// Prometheus' `/metrics` (e.g. `0.0.0.0:9464`); none by default. The
    /// worker also serves `/metrics` on `worker.health_listen`.
    pub metrics_listen: Option<SocketAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_exported_by_default_and_unknown_keys_are_refused() {
        assert_eq!(TelemetrySettings::default().metrics_listen, None);
        let parsed: TelemetrySettings =
            serde_json::from_str(r#"{"metrics_listen": "127.0.0.1:9464"}"#).unwrap_or_default();
        assert_eq!(
            parsed.metrics_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        assert!(serde_json::from_str::<TelemetrySettings>(r#"{"otlp": "x"}"#).is_err());
    }
}
