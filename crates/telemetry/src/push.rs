//! Metrics over OTLP: the process-wide Prometheus registry, converted to OTLP
//! messages and pushed every `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s), and
//! once more at shutdown.
//!
//! Why a bridge and not a second set of OpenTelemetry instruments: the registry
//! is what every event already feeds and what `/metrics` serves, so the two
//! paths cannot count differently, and a metric added to the registry is
//! exported by both without touching this file. Names stay the Prometheus ones
//! with the unit suffix moved to the unit (`_seconds` → `s`) and `_total` dropped
//! from monotonic sums, and the GenAI ones take their semantic-convention names
//! (`gen_ai.client.token.usage`, `gen_ai.client.operation.duration`, `gen_ai.*`
//! attributes): a collector's Prometheus exporter derives the very names
//! `/metrics` serves, so one dashboard reads either path.

use std::{
    collections::BTreeMap,
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue},
    metrics::v1::{
        metric::Data, number_data_point, AggregationTemporality, Gauge, Histogram,
        HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    },
    resource::v1::Resource,
};
use prometheus::proto::{MetricFamily, MetricType};

use crate::transport::{encode, spawn_exporter, Endpoint};

/// The pushing thread; [`MetricsPusher::stop`] pushes a last time and joins it.
#[derive(Debug)]
pub(crate) struct MetricsPusher {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsPusher {
    /// Starts the thread, which pushes every `interval` to `endpoint`, the
    /// registry described by `resource`.
    pub(crate) fn start(
        endpoint: Endpoint,
        resource: Resource,
        interval: Duration,
    ) -> Result<MetricsPusher, String> {
        let (stop, stopped) = mpsc::channel::<()>();
        let start_nanos = unix_nanos(SystemTime::now());
        let protocol = endpoint.protocol;
        let thread = spawn_exporter(
            endpoint,
            "OTLP metrics",
            "sent again every interval",
            move || {
                let last = match stopped.recv_timeout(interval) {
                    Err(mpsc::RecvTimeoutError::Timeout) => false,
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => true,
                };
                let request = export_request(
                    &crate::metrics::gather(),
                    &resource,
                    start_nanos,
                    unix_nanos(SystemTime::now()),
                );
                (vec![encode(protocol, &request)], last)
            },
        )?;
        Ok(MetricsPusher {
            stop,
            thread: Some(thread),
        })
    }

    /// Pushes the final values and stops.
    pub(crate) fn stop(&mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(crate) fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The registry's families as one OTLP export request (cumulative temporality).
pub(crate) fn export_request(
    families: &[MetricFamily],
    resource: &Resource,
    start_nanos: u64,
    now_nanos: u64,
) -> ExportMetricsServiceRequest {
    let metrics = families
        .iter()
        .filter_map(|family| convert(family, start_nanos, now_nanos))
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.clone()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// OpenTelemetry names of the metrics and attributes that have a semantic
/// convention; the others keep their Prometheus spelling.
fn otel_name(prometheus_name: &str) -> (String, &'static str) {
    match prometheus_name {
        "gen_ai_client_token_usage" => ("gen_ai.client.token.usage".into(), "{token}"),
        "gen_ai_client_operation_duration_seconds" => {
            ("gen_ai.client.operation.duration".into(), "s")
        }
        name => match name.strip_suffix("_seconds") {
            Some(stem) => (stem.to_string(), "s"),
            None => (name.to_string(), ""),
        },
    }
}

fn otel_attribute(label: &str) -> String {
    match label {
        "error_type" => "error.type".to_string(),
        label if label.starts_with("gen_ai_") => label.replace('_', ".").replace(
            // `gen_ai` itself keeps its underscore.
            "gen.ai.", "gen_ai.",
        ),
        label => label.to_string(),
    }
}

/// The instrumentation scope of every span and metric deploy-gate exports.
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "deploy-gate".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..InstrumentationScope::default()
    }
}

pub(crate) fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
    }
}

fn convert(family: &MetricFamily, start: u64, now: u64) -> Option<Metric> {
    let (name, unit) = otel_name(family.name());
    let attributes = |metric: &prometheus::proto::Metric| -> Vec<KeyValue> {
        metric
            .get_label()
            .iter()
            .map(|pair| string_attribute(&otel_attribute(pair.name()), pair.value()))
            .collect()
    };
    let number = |metric: &prometheus::proto::Metric, value: f64| NumberDataPoint {
        attributes: attributes(metric),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(as_number(value)),
        ..NumberDataPoint::default()
    };
    let (name, data) = match family.get_field_type() {
        MetricType::COUNTER => (
            name.strip_suffix("_total").unwrap_or(&name).to_string(),
            Data::Sum(Sum {
                data_points: family
                    .get_metric()
                    .iter()
                    .map(|m| number(m, m.get_counter().get_value()))
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
        ),
        MetricType::GAUGE => (
            name,
            Data::Gauge(Gauge {
                data_points: family
                    .get_metric()
                    .iter()
                    .map(|m| number(m, m.get_gauge().get_value()))
                    .collect(),
            }),
        ),
        MetricType::HISTOGRAM => (
            name,
            Data::Histogram(Histogram {
                data_points: family
                    .get_metric()
                    .iter()
                    .map(|m| {
                        let histogram = m.get_histogram();
                        // Prometheus buckets are cumulative; OTLP's are per bucket,
                        // with one more for (last bound, +Inf].
                        let mut bounds = Vec::new();
                        let mut counts = Vec::new();
                        let mut below = 0u64;
                        for bucket in histogram.get_bucket() {
                            if bucket.upper_bound().is_infinite() {
                                continue;
                            }
                            bounds.push(bucket.upper_bound());
                            counts.push(bucket.cumulative_count().saturating_sub(below));
                            below = bucket.cumulative_count();
                        }
                        counts.push(histogram.get_sample_count().saturating_sub(below));
                        HistogramDataPoint {
                            attributes: attributes(m),
                            start_time_unix_nano: start,
                            time_unix_nano: now,
                            count: histogram.get_sample_count(),
                            sum: Some(histogram.get_sample_sum()),
                            bucket_counts: counts,
                            explicit_bounds: bounds,
                            ..HistogramDataPoint::default()
                        }
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        ),
        _ => return None,
    };
    Some(Metric {
        name,
        description: family.help().to_string(),
        unit: unit.to_string(),
        data: Some(data),
        ..Metric::default()
    })
}

/// Integral values (counts) as OTLP ints, the rest (seconds, dollars) as doubles.
fn as_number(value: f64) -> number_data_point::Value {
    // Counts stay far below 2^53: the conversion is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let int = value as i64;
    #[allow(clippy::cast_precision_loss)]
    if value.fract() == 0.0 && value.abs() < 9.0e15 && int as f64 == value {
        number_data_point::Value::AsInt(int)
    } else {
        number_data_point::Value::AsDouble(value)
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS`-style `k=v,k2=v2` (values percent-decoded).
pub(crate) fn parse_headers(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let name = name.trim();
            (!name.is_empty()).then(|| (name.to_string(), percent_decode(value.trim())))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_follow_the_conventions_and_round_trip_to_the_prometheus_ones() {
        assert_eq!(
            otel_name("gen_ai_client_operation_duration_seconds"),
            ("gen_ai.client.operation.duration".to_string(), "s")
        );
        assert_eq!(
            otel_name("deploy_gate_decision_duration_seconds"),
            ("deploy_gate_decision_duration".to_string(), "s")
        );
        assert_eq!(
            otel_attribute("gen_ai_provider_name"),
            "gen_ai.provider.name"
        );
        assert_eq!(otel_attribute("gen_ai_token_type"), "gen_ai.token.type");
        assert_eq!(otel_attribute("error_type"), "error.type");
        assert_eq!(otel_attribute("recommendation"), "recommendation");
    }

    #[test]
    fn the_registry_converts_to_cumulative_otlp_points() {
        // Events no other test of this process counts exactly.
        crate::events::ConsensusReached {
            disagreed: true,
            floor_raised: false,
        }
        .emit();
        crate::events::RateLimitWaited {
            provider: "push-test",
            waited: Duration::from_millis(200),
        }
        .emit();
        let request = export_request(&crate::metrics::gather(), &Resource::default(), 1, 2);
        let scope = &request.resource_metrics[0].scope_metrics[0];
        let find = |name: &str| scope.metrics.iter().find(|m| m.name == name).unwrap();
        let Some(Data::Sum(sum)) = &find("deploy_gate_consensus_disagreements").data else {
            panic!("disagreements is not a sum");
        };
        assert!(sum.is_monotonic);
        assert!(matches!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsInt(n)) if n >= 1
        ));
        let wait = find("deploy_gate_model_rate_limit_wait");
        assert_eq!(wait.unit, "s");
        let Some(Data::Histogram(histogram)) = &wait.data else {
            panic!("the wait is not a histogram");
        };
        let point = histogram
            .data_points
            .iter()
            .find(|p| {
                p.attributes.iter().any(|a| {
                    a.key == "gen_ai.provider.name"
                        && a.value.as_ref().and_then(|v| v.value.as_ref())
                            == Some(&any_value::Value::StringValue("push-test".into()))
                })
            })
            .unwrap();
        assert_eq!(point.count, 1);
        assert_eq!(point.bucket_counts.len(), point.explicit_bounds.len() + 1);
        assert_eq!(point.bucket_counts.iter().sum::<u64>(), point.count);
        // Both encodings work.
        assert!(!prost::Message::encode_to_vec(&request).is_empty());
        assert!(serde_json::to_string(&request)
            .unwrap()
            .contains("deploy_gate_consensus_disagreements"));
    }

    #[test]
    fn header_lists_are_read_like_the_sdks_read_them() {
        let headers = parse_headers("api-key=abc%3D%3D, x-team = ops ,broken");
        assert_eq!(headers.get("api-key").map(String::as_str), Some("abc=="));
        assert_eq!(headers.get("x-team").map(String::as_str), Some("ops"));
        assert_eq!(headers.len(), 2);
    }
}
