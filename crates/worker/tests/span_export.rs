//! `Telemetry::export_spans`: a paused process builds and exports no span, and
//! exports again once resumed; and what an exported span carries (parents, the
//! `otel.*` fields, events, a continued remote trace) as the OTLP receiver gets
//! it. Its own test binary, because the tracing subscriber is installed once per
//! process.

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

    // A span continuing a remote trace, with a child that fails and logs.
    let remote_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let remote = format!("00-{remote_trace}-00f067aa0ba902b7-01");
    let consumer = tracing::info_span!(
        "process",
        otel.name = "gate.merge-events process",
        otel.kind = "consumer",
        event_id = "e-1",
        attempts = 2_u64,
    );
    assert!(gate_telemetry::trace::continue_trace(
        &consumer,
        Some(&remote)
    ));
    let outgoing = gate_telemetry::trace::traceparent(&consumer).unwrap();
    assert!(
        outgoing.starts_with(&format!("00-{remote_trace}-")),
        "{outgoing}"
    );
    assert!(outgoing.ends_with("-01"), "{outgoing}");
    consumer.in_scope(|| {
        let call = tracing::info_span!(
            "model call",
            otel.name = "chat m",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        call.in_scope(|| {
            tracing::info!("an info line stays in the logs");
            tracing::warn!(attempt = 1, "retrying after a 529");
        });
        call.record("otel.status_code", "ERROR");
        call.record("error.type", "overloaded");
    });
    drop(consumer);
    tracing::info_span!("a failed step").in_scope(|| tracing::error!("it broke"));

    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
    let spans = receiver.spans();
    let mut names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "a failed step",
            "after the pause",
            "before the pause",
            "chat m",
            "gate.merge-events process"
        ]
    );
    let named = |name: &str| spans.iter().find(|s| s.name == name).unwrap();
    let process = named("gate.merge-events process");
    assert_eq!(process.trace_id, remote_trace);
    assert_eq!(process.parent_span_id, "00f067aa0ba902b7");
    assert_eq!(process.kind, 5, "consumer");
    assert_eq!(process.attributes["event_id"], "e-1");
    assert_eq!(process.attributes["attempts"], "2");
    assert!(!process.attributes.contains_key("otel.name"));
    assert_eq!(
        outgoing,
        format!("00-{remote_trace}-{}-01", process.span_id)
    );
    let call = named("chat m");
    assert_eq!(call.trace_id, remote_trace);
    assert_eq!(call.parent_span_id, process.span_id);
    assert_eq!(call.kind, 3, "client");
    assert_eq!(call.status_code, 2, "error");
    assert_eq!(call.attributes["error.type"], "overloaded");
    assert_eq!(call.events, ["retrying after a 529"], "WARN and up only");
    let failed = named("a failed step");
    assert_eq!(failed.status_code, 2, "an ERROR event fails its span");
    assert_eq!(failed.parent_span_id, "", "a root span");
    assert_ne!(failed.trace_id, remote_trace);
    assert_eq!(named("after the pause").status_code, 0);
    assert_eq!(receiver.refused(), Vec::<String>::new());
}
