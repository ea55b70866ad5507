//! OTLP export of traces and metrics, set up once per process by
//! [`Telemetry::start`] and flushed when the returned guard goes.

use std::{collections::BTreeMap, time::Duration};

use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::push::{parse_headers, string_attribute, MetricsPusher};
use crate::settings::{OtlpProtocol, TelemetrySettings};
use crate::spans::{Batching, Sampler, SpanExporter};
use crate::transport::Endpoint;

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
    /// From `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`), exported with `service.name`.
    pub(crate) resource_attributes: Vec<(String, String)>,
}

impl OtlpConfig {
    /// The resource both signals describe: `service.name` and the attributes of
    /// `OTEL_RESOURCE_ATTRIBUTES` (whose own `service.name` loses to it).
    fn resource(&self) -> Resource {
        let mut attributes = vec![string_attribute("service.name", &self.service_name)];
        attributes.extend(
            self.resource_attributes
                .iter()
                .filter(|(key, _)| key != "service.name")
                .map(|(key, value)| string_attribute(key, value)),
        );
        Resource {
            attributes,
            ..Resource::default()
        }
    }

    /// One signal's endpoint: the configured headers, then the variables' (the
    /// signal's own last), and the signal's timeout.
    fn endpoint(
        &self,
        url: &str,
        signal: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Endpoint, String> {
        let mut headers = self.headers.clone();
        for variable in [
            "OTEL_EXPORTER_OTLP_HEADERS".to_string(),
            format!("OTEL_EXPORTER_OTLP_{signal}_HEADERS"),
        ] {
            if let Some(text) = env(&variable) {
                headers.extend(parse_headers(&text));
            }
        }
        let timeout = env_millis(env, "OTEL_EXPORTER_OTLP_TIMEOUT", Duration::from_secs(10))?;
        let timeout = env_millis(
            env,
            &format!("OTEL_EXPORTER_OTLP_{signal}_TIMEOUT"),
            timeout,
        )?;
        Ok(Endpoint {
            url: url.to_string(),
            protocol: self.protocol,
            headers: headers.into_iter().collect(),
            timeout,
        })
    }
}

/// The value of variable `name`, trimmed; `None` when unset or blank (the
/// specification treats an empty variable as unset).
pub(crate) fn env_value(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A duration in milliseconds from `name`: `default` when unset, empty or 0;
/// `Err` names the variable when it is not a whole number.
pub(crate) fn env_millis(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: Duration,
) -> Result<Duration, String> {
    let Some(text) = env_value(env, name) else {
        return Ok(default);
    };
    match text.parse::<u64>() {
        Ok(0) => Ok(default),
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => Err(format!(
            "{name}: `{text}` is not a whole number of milliseconds"
        )),
    }
}

impl OtlpConfig {
    /// `None` when nothing asks for export (or `OTEL_SDK_DISABLED=true`); `Err`
    /// names the key or variable that is wrong.
    pub(crate) fn resolve(
        settings: &TelemetrySettings,
        role: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpConfig>, String> {
        let var = |name: &str| env_value(env, name);
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
        let resource_attributes: Vec<(String, String)> = var("OTEL_RESOURCE_ATTRIBUTES")
            .map(|text| parse_headers(&text).into_iter().collect())
            .unwrap_or_default();
        let service_name = settings
            .service_name
            .clone()
            .or_else(|| var("OTEL_SERVICE_NAME"))
            .or_else(|| {
                resource_attributes
                    .iter()
                    .find(|(key, _)| key == "service.name")
                    .map(|(_, value)| value.clone())
            })
            .unwrap_or_else(|| format!("deploy-gate-{role}"));
        Ok(Some(OtlpConfig {
            traces_endpoint,
            metrics_endpoint,
            protocol,
            headers: settings.otlp_headers.clone(),
            service_name,
            resource_attributes,
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
    span_exporter: Option<SpanExporter>,
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
        // Every variable is read before a thread starts: a bad one stops here.
        let resource = config.resource();
        let sampler = Sampler::from_env(env)?;
        let batching = Batching::from_env(env)?;
        let traces = match &config.traces_endpoint {
            Some(url) => Some(config.endpoint(url, "TRACES", env)?),
            None => None,
        };
        let metrics = match &config.metrics_endpoint {
            Some(url) => Some((
                config.endpoint(url, "METRICS", env)?,
                env_millis(env, "OTEL_METRIC_EXPORT_INTERVAL", Duration::from_secs(60))?,
            )),
            None => None,
        };
        let mut span_exporter = match traces {
            Some(endpoint) => Some(SpanExporter::start(endpoint, resource.clone(), batching)?),
            None => None,
        };
        let metrics_pusher = match metrics {
            Some((endpoint, interval)) => Some(MetricsPusher::start(endpoint, resource, interval)?),
            None => None,
        };
        let layer = span_exporter
            .as_ref()
            .map(|exporter| exporter.layer(sampler));
        if crate::logging::install(layer) {
            crate::logging::export_spans(span_exporter.is_some());
        } else if let Some(mut exporter) = span_exporter.take() {
            tracing::warn!("a tracing subscriber was already installed: spans are not exported");
            exporter.shutdown();
        }
        tracing::debug!(
            traces = config.traces_endpoint.as_deref().unwrap_or("-"),
            metrics = config.metrics_endpoint.as_deref().unwrap_or("-"),
            protocol = %config.protocol,
            service = %config.service_name,
            "exporting telemetry over OTLP"
        );
        Ok(Telemetry {
            span_exporter,
            metrics_pusher,
            service_name: Some(config.service_name),
        })
    }

    /// Whether anything is exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.span_exporter.is_some() || self.metrics_pusher.is_some()
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
        if self.span_exporter.is_some() {
            crate::logging::export_spans(on);
        }
    }

    /// Exports what is buffered and stops the exporters (also done on drop).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut exporter) = self.span_exporter.take() {
            crate::logging::export_spans(false);
            exporter.shutdown();
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
        let vars: std::collections::HashMap<String, String> = vars
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

    #[test]
    fn a_bad_standard_variable_stops_the_start_naming_it() {
        for (variable, value) in [
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "half"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "-1"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1m"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "ten"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2s"),
        ] {
            let err =
                Telemetry::start_with_env(
                    &TelemetrySettings::default(),
                    "test",
                    &|name| match name {
                        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:9".into()),
                        "OTEL_TRACES_SAMPLER" if variable == "OTEL_TRACES_SAMPLER_ARG" => {
                            Some("traceidratio".into())
                        }
                        name if name == variable => Some(value.into()),
                        _ => None,
                    },
                )
                .unwrap_err();
            assert!(err.starts_with(&format!("{variable}: `{value}`")), "{err}");
        }
    }

    #[test]
    fn resource_attributes_are_exported_and_service_name_wins_over_them() {
        let attrs = "deployment.environment=prod,service.name=from-attributes";
        let config = resolve(
            &TelemetrySettings::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_RESOURCE_ATTRIBUTES", attrs),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.service_name, "from-attributes");
        let named = resolve(
            &TelemetrySettings::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_RESOURCE_ATTRIBUTES", attrs),
                ("OTEL_SERVICE_NAME", "gate"),
            ],
        )
        .unwrap()
        .unwrap();
        let resource = named.resource();
        let pairs: Vec<(String, String)> = resource
            .attributes
            .iter()
            .map(|kv| {
                let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(text),
                    ) => text.clone(),
                    other => panic!("{other:?}"),
                };
                (kv.key.clone(), value)
            })
            .collect();
        assert_eq!(
            pairs,
            [
                ("service.name".to_string(), "gate".to_string()),
                ("deployment.environment".to_string(), "prod".to_string())
            ]
        );
    }
}
