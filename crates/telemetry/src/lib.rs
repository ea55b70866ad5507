//! deploy-gate's telemetry: how every binary logs, and what every process counts.
//!
//! - [`init_logging`]: the tracing subscriber (human lines by default, JSON lines
//!   with `--log-format json`), the one place the binary sets logging up.
//! - [`events`]: one named event type per notable thing (`DecisionPublished`,
//!   `ModelCallFinished`, …). Emitting one counts it in the process-wide registry
//!   (and logs it at debug level), so logs, tests and dashboards count the same
//!   things at the same points.
//! - [`render`] and [`serve_metrics`]: the registry in the Prometheus text
//!   exposition format 0.0.4, and a `/metrics` endpoint serving it. Counting is
//!   always on (a few atomics); nothing leaves the process unless an endpoint is
//!   configured (`telemetry.metrics_listen`, or the worker's health listener).
//! - [`Telemetry::start`]: OTLP/HTTP export (protobuf or JSON) when
//!   `[telemetry]` or the standard `OTEL_*` variables name an endpoint: `tracing`
//!   spans become OpenTelemetry spans (the crate's own lean layer and batch
//!   exporter), and the registry is pushed as OTLP metrics.
//!   The guard it returns flushes both when the process ends.
//! - [`trace`]: W3C `traceparent` in and out of spans, so one trace follows a
//!   merge from the producer through the worker to `wait` and the notifier.
//!
//! Metric names follow OpenTelemetry's semantic conventions where they exist
//! (`gen_ai.client.token.usage`, `gen_ai.client.operation.duration` and their
//! `gen_ai.*` attributes), and deploy-gate's own names otherwise
//! (`deploy_gate.decisions`); the Prometheus names are derived the way the
//! OpenTelemetry Prometheus exporter derives them (dots to underscores, the unit
//! suffix, `_total` on counters). README's "Metrics" table lists each.
//!
//! Architecture invariant: this crate knows no domain type, queue or model
//! provider; callers hand it plain labels and numbers. It is the only crate that
//! knows the `prometheus` and `opentelemetry` crates exist.

pub mod events;
mod logging;
mod metrics;
mod otlp;
mod push;
mod serve;
mod settings;
mod spans;
pub mod trace;
mod transport;
mod wire;

pub use logging::init_logging;
pub use metrics::render;
pub use otlp::Telemetry;
pub use serve::{
    respond as metrics_response, serve_http_connection, serve_metrics, serve_metrics_with,
    HttpLimits, CONTENT_TYPE,
};
pub use settings::{OtlpProtocol, TelemetrySettings};
