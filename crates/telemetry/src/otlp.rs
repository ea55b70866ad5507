//! OTLP export of traces and metrics, set up once per process by
//! [`Telemetry::start`] and flushed when the returned guard goes.

use std::collections::{BTreeMap, HashMap};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{trace::SdkTracerProvider, Resource};

use crate::push::{parse_headers, MetricsPusher, PushTarget};
use crate::settings::{OtlpProtocol, TelemetrySettings};

/// The instrumentation scope of every span and metric deploy-gate exports.
const SCOPE: &str = "deploy-gate";

/// Where and how this process exports, resolved from `[telemetry]` and the
/// `OTEL_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OtlpConfig {
    /// Full URL of the traces endpoint, when traces are exported.
    pub(crate) traces_endpoint: Option<String>,
    /// Full URL of the metrics endpoint, when metrics are exported.
    pub(crate) metrics_endpoint: Option<String>,
    pub(crate) protocol: OtlpProtocol,
    /// From `telemetry.otlp_headers`; the exporter adds `OTEL_EXPORTER_OTLP_HEADERS`.
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) service_name: String,
}

impl OtlpConfig {
    /// `None` when nothing asks for export (or `OTEL_SDK_DISABLED=true`); `Err`
    /// names the key or variable that is wrong.
    pub(crate) fn resolve(
        settings: &TelemetrySettings,
        role: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpConfig>, String> {
        let var = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let base = match &settings.otlp_endpoint {
            Some(url) => Some(checked_url("telemetry.otlp_endpoint", url)?),
            None => match var("OTEL_EXPORTER_OTLP_ENDPOINT") {
                Some(url) => Some(checked_url("OTEL_EXPORTER_OTLP_ENDPOINT", &url)?),
                None => None,
            },
        };
        let signal = |variable: &str, path: &str| -> Result<Option<String>, String> {
            // A signal's own variable wins over the base variable, not over the key.
            if settings.otlp_endpoint.is_none() {
                if let Some(url) = var(variable) {
                    return checked_url(variable, &url).map(Some);
                }
            }
            Ok(base
                .as_ref()
                .map(|base| format!("{}{path}", base.trim_end_matches('/'))))
        };
        let traces_endpoint = signal("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "/v1/traces")?;
        let metrics_endpoint = signal("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "/v1/metrics")?;
        if traces_endpoint.is_none() && metrics_endpoint.is_none() {
            return Ok(None);
        }
        let protocol = match settings.otlp_protocol {
            Some(protocol) => protocol,
            None => match var("OTEL_EXPORTER_OTLP_PROTOCOL") {
                Some(text) => OtlpProtocol::parse(&text)
                    .map_err(|err| format!("OTEL_EXPORTER_OTLP_PROTOCOL: {err}"))?,
                None => OtlpProtocol::default(),
            },
        };
        for (name, value) in &settings.otlp_headers {
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid_name || value.bytes().any(|b| b.is_ascii_control()) {
                return Err(format!(
                    "telemetry.otlp_headers: `{name}` is not a valid HTTP header name and value"
                ));
            }
        }
        let service_name = settings
            .service_name
            .clone()
            .or_else(|| var("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| format!("deploy-gate-{role}"));
        Ok(Some(OtlpConfig {
            traces_endpoint,
            metrics_endpoint,
            protocol,
            headers: settings.otlp_headers.clone(),
            service_name,
        }))
    }
}

fn checked_url(key: &str, url: &str) -> Result<String, String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(url.to_string()),
        _ => Err(format!(
            "{key}: `{url}` is not an http:// or https:// URL of an OTLP/HTTP receiver"
        )),
    }
}

/// This process's telemetry: hold it for the life of the process. Dropping it
/// (or [`Telemetry::shutdown`]) exports what is still buffered — the last spans
/// of a one-shot command, the final metric values — and stops the exporters.
#[derive(Debug, Default)]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    metrics_pusher: Option<MetricsPusher>,
    service_name: Option<String>,
}

impl Telemetry {
    /// Installs the tracing subscriber (logging stays off until
    /// [`init_logging`](crate::init_logging)) and, when `settings` or the
    /// `OTEL_*` variables name an OTLP endpoint, exports spans and metrics there.
    /// `role` names the process (`worker`, `enqueue`, …) in the default
    /// `service.name`. `Err` is a configuration error naming the key or variable.
    pub fn start(settings: &TelemetrySettings, role: &str) -> Result<Telemetry, String> {
        Telemetry::start_with_env(settings, role, &|name| std::env::var(name).ok())
    }

    /// [`Telemetry::start`] with the `OTEL_*` variables read from `env` (tests,
    /// benchmarks).
    pub fn start_with_env(
        settings: &TelemetrySettings,
        role: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Telemetry, String> {
        let Some(config) = OtlpConfig::resolve(settings, role, env)? else {
            crate::logging::install(None);
            return Ok(Telemetry::default());
        };
        let protocol = match config.protocol {
            OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
            OtlpProtocol::HttpJson => Protocol::HttpJson,
        };
        let headers: HashMap<String, String> = config
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .build();
        let tracer_provider = match &config.traces_endpoint {
            Some(endpoint) => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(protocol)
                    .with_endpoint(endpoint.clone())
                    .with_headers(headers)
                    .build()
                    .map_err(|err| format!("OTLP traces exporter for {endpoint}: {err}"))?;
                Some(
                    SdkTracerProvider::builder()
                        .with_batch_exporter(exporter)
                        .with_resource(resource)
                        .build(),
                )
            }
            None => None,
        };
        let millis = |name: &str, default: u64| {
            env(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map_or(
                    std::time::Duration::from_millis(default),
                    std::time::Duration::from_millis,
                )
        };
        let metrics_pusher = match &config.metrics_endpoint {
            Some(endpoint) => {
                // The exporter of spans reads the header variables itself; the
                // metrics push reads them here, with the same precedence.
                let mut headers = config.headers.clone();
                for variable in [
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                ] {
                    if let Some(text) = env(variable) {
                        headers.extend(parse_headers(&text));
                    }
                }
                Some(MetricsPusher::start(PushTarget {
                    endpoint: endpoint.clone(),
                    protocol: config.protocol,
                    headers: headers.into_iter().collect(),
                    service_name: config.service_name.clone(),
                    interval: millis("OTEL_METRIC_EXPORT_INTERVAL", 60_000),
                    timeout: millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000),
                })?)
            }
            None => None,
        };
        let tracer = tracer_provider.as_ref().map(|p| p.tracer(SCOPE));
        if crate::logging::install(tracer) {
            crate::logging::export_spans(tracer_provider.is_some());
        } else if tracer_provider.is_some() {
            tracing::warn!("a tracing subscriber was already installed: spans are not exported");
        }
        tracing::debug!(
            traces = config.traces_endpoint.as_deref().unwrap_or("-"),
            metrics = config.metrics_endpoint.as_deref().unwrap_or("-"),
            protocol = %config.protocol,
            service = %config.service_name,
            "exporting telemetry over OTLP"
        );
        Ok(Telemetry {
            tracer_provider,
            metrics_pusher,
            service_name: Some(config.service_name),
        })
    }

    /// Whether anything is exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.tracer_provider.is_some() || self.metrics_pusher.is_some()
    }

    /// The `service.name` exported, when exporting.
    pub fn service_name(&self) -> Option<&str> {
        self.service_name.as_deref()
    }

    /// Pauses (`false`) or resumes (`true`) building spans for export; the
    /// exporters stay up, and metrics go on. A paused process spends on its spans
    /// what one without OTLP export does, which is how the fleet benchmark measures
    /// the export's overhead in alternating rounds. Nothing changes when this
    /// process does not export traces.
    pub fn export_spans(&self, on: bool) {
        if self.tracer_provider.is_some() {
            crate::logging::export_spans(on);
        }
    }

    /// Exports what is buffered and stops the exporters (also done on drop).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.tracer_provider.take() {
            crate::logging::export_spans(false);
            if let Err(error) = provider.shutdown() {
                tracing::warn!(error = %error, "the last spans could not be exported");
            }
        }
        if let Some(mut pusher) = self.metrics_pusher.take() {
            pusher.stop();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn resolve(
        settings: &TelemetrySettings,
        vars: &[(&str, &str)],
    ) -> Result<Option<OtlpConfig>, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpConfig::resolve(settings, "worker", &|name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_is_exported_unless_an_endpoint_is_named() {
        assert_eq!(resolve(&TelemetrySettings::default(), &[]), Ok(None));
        assert_eq!(
            resolve(
                &TelemetrySettings::default(),
                &[
                    ("OTEL_SERVICE_NAME", "x"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
                ]
            ),
            Ok(None)
        );
    }

    #[test]
    fn the_standard_variables_configure_export_and_otel_sdk_disabled_wins() {
        let config = resolve(
            &TelemetrySettings::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            config.traces_endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(
            config.metrics_endpoint.as_deref(),
            Some("http://collector:4318/v1/metrics")
        );
        assert_eq!(config.protocol, OtlpProtocol::HttpJson);
        assert_eq!(config.service_name, "deploy-gate-worker");

        let traces_only = resolve(
            &TelemetrySettings::default(),
            &[
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://tempo:4318/v1/traces",
                ),
                ("OTEL_SERVICE_NAME", "gate-eu"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            traces_only.traces_endpoint.as_deref(),
            Some("http://tempo:4318/v1/traces")
        );
        assert_eq!(traces_only.metrics_endpoint, None);
        assert_eq!(traces_only.service_name, "gate-eu");
        assert_eq!(traces_only.protocol, OtlpProtocol::HttpProtobuf);

        assert_eq!(
            resolve(
                &TelemetrySettings::default(),
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                    ("OTEL_SDK_DISABLED", "TRUE")
                ]
            ),
            Ok(None)
        );
    }

    #[test]
    fn configured_keys_win_over_the_variables() {
        let settings = TelemetrySettings {
            otlp_endpoint: Some("https://otlp.example.invalid".into()),
            otlp_protocol: Some(OtlpProtocol::HttpProtobuf),
            service_name: Some("gate".into()),
            ..TelemetrySettings::default()
        };
        let config = resolve(
            &settings,
            &[
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://other:4318/v1/traces",
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ("OTEL_SERVICE_NAME", "other"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            config.traces_endpoint.as_deref(),
            Some("https://otlp.example.invalid/v1/traces")
        );
        assert_eq!(config.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(config.service_name, "gate");
    }

    #[test]
    fn bad_values_are_errors_naming_their_key_or_variable() {
        let err = resolve(
            &TelemetrySettings::default(),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")],
        )
        .unwrap_err();
        assert!(
            err.starts_with("OTEL_EXPORTER_OTLP_ENDPOINT: `collector:4318`"),
            "{err}"
        );
        let err = resolve(
            &TelemetrySettings::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
        )
        .unwrap_err();
        assert!(
            err.starts_with("OTEL_EXPORTER_OTLP_PROTOCOL: `grpc`"),
            "{err}"
        );
        let settings = TelemetrySettings {
            otlp_endpoint: Some("ftp://x".into()),
            ..TelemetrySettings::default()
        };
        assert!(resolve(&settings, &[])
            .unwrap_err()
            .starts_with("telemetry.otlp_endpoint"));
        let settings = TelemetrySettings {
            otlp_endpoint: Some("http://x:4318".into()),
            otlp_headers: [("bad header".to_string(), "v".to_string())].into(),
            ..TelemetrySettings::default()
        };
        assert!(resolve(&settings, &[])
            .unwrap_err()
            .starts_with("telemetry.otlp_headers"));
    }
}
