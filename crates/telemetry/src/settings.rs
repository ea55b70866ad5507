//! The `[telemetry]` section of the configuration.

use std::{collections::BTreeMap, fmt, net::SocketAddr};

use serde::{Deserialize, Serialize, Serializer};

/// Where telemetry leaves the process. Everything unset (the default) exports
/// nothing: the counters are kept in memory only and spans are not recorded.
///
/// OTLP is configured here or by the standard `OTEL_*` variables
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`,
/// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, `OTEL_SDK_DISABLED`); a key
/// set here wins over its variable, except for headers, which are merged (the
/// variable wins for a header named in both).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// Where a long-running role (`worker`, `notify`, `webhook`) serves
    /// Prometheus' `/metrics` (e.g. `0.0.0.0:9464`); none by default. The
    /// worker also serves `/metrics` on `worker.health_listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// OTLP/HTTP base URL (e.g. `http://otel-collector:4318`): traces go to
    /// `<base>/v1/traces`, metrics to `<base>/v1/metrics`. Unset: the
    /// `OTEL_EXPORTER_OTLP_*ENDPOINT` variables, else no export.
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` (default) or `http/json`. gRPC is not built in.
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Headers sent with every export (an API key of a hosted backend); their
    /// values are masked when the configuration is printed.
    #[serde(serialize_with = "masked_headers")]
    pub otlp_headers: BTreeMap<String, String>,
    /// OpenTelemetry `service.name`; default `OTEL_SERVICE_NAME`, else
    /// `deploy-gate-<command>` (`deploy-gate-worker`, `deploy-gate-enqueue`, …).
    pub service_name: Option<String>,
}

/// How OTLP is encoded over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OtlpProtocol {
    /// Protobuf bodies (`application/x-protobuf`), what collectors expect by default.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// JSON bodies (`application/json`).
    #[serde(rename = "http/json")]
    HttpJson,
}

impl OtlpProtocol {
    /// Reads the `OTEL_EXPORTER_OTLP_PROTOCOL` spelling; `Err` names what is
    /// supported.
    pub fn parse(text: &str) -> Result<OtlpProtocol, String> {
        match text.trim() {
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "http/json" => Ok(OtlpProtocol::HttpJson),
            "grpc" => Err(
                "`grpc` is not built into deploy-gate: use `http/protobuf` or `http/json` (the collector's OTLP/HTTP port, 4318)"
                    .to_string(),
            ),
            other => Err(format!(
                "`{other}` is not an OTLP protocol: use `http/protobuf` or `http/json`"
            )),
        }
    }
}

impl fmt::Display for OtlpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::HttpJson => "http/json",
        })
    }
}

/// Header values are credentials more often than not: printed as `****`.
fn masked_headers<S: Serializer>(
    headers: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let masked: BTreeMap<&str, &str> = headers.keys().map(|k| (k.as_str(), "****")).collect();
    masked.serialize(serializer)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn nothing_is_exported_by_default_and_unknown_keys_are_refused() {
        assert_eq!(TelemetrySettings::default().metrics_listen, None);
        assert_eq!(TelemetrySettings::default().otlp_endpoint, None);
        let parsed: TelemetrySettings =
            serde_json::from_str(r#"{"metrics_listen": "127.0.0.1:9464"}"#).unwrap_or_default();
        assert_eq!(
            parsed.metrics_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        assert!(serde_json::from_str::<TelemetrySettings>(r#"{"otlp": "x"}"#).is_err());
    }

    #[test]
    fn protocols_use_the_otel_spelling_and_headers_print_masked() {
        let parsed: TelemetrySettings = serde_json::from_str(
            r#"{"otlp_protocol": "http/json", "otlp_headers": {"x-api-key": "secret-value"}}"#,
        )
        .unwrap();
        assert_eq!(parsed.otlp_protocol, Some(OtlpProtocol::HttpJson));
        let printed = serde_json::to_string(&parsed).unwrap();
        assert!(printed.contains(r#""x-api-key":"****""#), "{printed}");
        assert!(!printed.contains("secret-value"));
        assert!(serde_json::from_str::<TelemetrySettings>(r#"{"otlp_protocol": "grpc"}"#).is_err());
        assert!(OtlpProtocol::parse("grpc").unwrap_err().contains("4318"));
        assert_eq!(
            OtlpProtocol::parse("http/protobuf"),
            Ok(OtlpProtocol::HttpProtobuf)
        );
    }
}
