//! `Telemetry::export_spans`: a paused process builds and exports no span, and
//! exports again once resumed. Its own test binary, because the tracing
//! subscriber is installed once per process.

use gate_telemetry::{Telemetry, TelemetrySettings};
use gate_testkit::otlp::OtlpReceiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_span_export_exports_nothing_and_resumes() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let endpoint = receiver.endpoint();
    let telemetry = Telemetry::start_with_env(&TelemetrySettings::default(), "test", &|name| {
        (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| endpoint.clone())
    })
    .unwrap();

    tracing::info_span!("before the pause").in_scope(|| {});
    telemetry.export_spans(false);
    tracing::info_span!("while paused").in_scope(|| {});
    let paused = tracing::info_span!("no traceparent while paused");
    assert_eq!(gate_telemetry::trace::traceparent(&paused), None);
    drop(paused);
    telemetry.export_spans(true);
    tracing::info_span!("after the pause").in_scope(|| {});
    // Debug spans are never exported, paused or not.
    tracing::debug_span!("a debug span").in_scope(|| {});

    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
    let mut names: Vec<String> = receiver.spans().into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, ["after the pause", "before the pause"]);
    assert_eq!(receiver.refused(), Vec::<String>::new());
}
