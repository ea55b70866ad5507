//! Telemetry end to end: one OpenTelemetry trace follows a merge across the
//! real processes (`enqueue` → `worker` → `wait`) into an in-process OTLP
//! receiver, and every metric the Grafana dashboard queries is served by the
//! fleet's real `/metrics` endpoints.

use std::collections::BTreeSet;
use std::io::Read;
use std::time::Duration;

use gate_mock_llm::{Fault, MockConfig};
use gate_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use serde_json::Value;

use crate::fleet_harness::{
    app_repo, commit_code, eventually, free_port, http_get, wait_for_listener, Fleet, FleetOptions,
    REPO_NAME,
};

/// `SPAN_KIND_PRODUCER` and `SPAN_KIND_CONSUMER` and `SPAN_KIND_CLIENT` in OTLP.
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;
const CLIENT: i32 = 3;

fn span<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|s| s.service == service && s.name == name)
        .unwrap_or_else(|| panic!("no span `{name}` from {service} in {spans:#?}"))
}

#[test]
fn one_trace_follows_a_merge_from_enqueue_through_the_worker_to_wait() {
    let fleet = Fleet::start(FleetOptions { models: true });
    let receiver = fleet.block_on(OtlpReceiver::start()).unwrap();
    let endpoint = receiver.endpoint();
    // The model takes its time, so `wait` is bound to the results long before the
    // decision exists and receives it from the broker with its trace context.
    fleet.mock.set_config(MockConfig {
        latency_ms: 2_000,
        ..MockConfig::default()
    });
    let otel = |protocol: &'static str| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_string()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500".to_string()),
        ]
    };
    let repo = app_repo();
    commit_code(&repo, 1, "traced");
    let event_id = format!("{}traced", fleet.prefix);

    // The producer exports JSON, the worker protobuf, `wait` JSON: both
    // encodings reach the receiver.
    let mut enqueue = fleet.command(&[
        "enqueue",
        "--repo",
        repo.path().to_str().unwrap(),
        "--repo-name",
        REPO_NAME,
        "--event-id",
        &event_id,
    ]);
    enqueue.envs(otel("http/json"));
    let output = enqueue.output().unwrap();
    assert!(
        output.status.success(),
        "enqueue: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let wait_env = otel("http/json");
    let wait_env: Vec<(&str, &str)> = wait_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (waiter, mut wait_stdout) = fleet.spawn_with_stdout(
        &["wait", "--event", &event_id, "--json", "--timeout", "60s"],
        &wait_env,
    );
    let worker_env = otel("http/protobuf");
    let worker_env: Vec<(&str, &str)> = worker_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let worker = fleet.spawn_worker(&worker_env);

    let mut printed = String::new();
    wait_stdout.read_to_string(&mut printed).unwrap();
    let decision: Value = serde_json::from_str(&printed).unwrap_or_else(|e| {
        panic!(
            "wait printed no decision ({e}):\n{printed}\n{}",
            fleet.log(waiter)
        )
    });
    assert_eq!(decision["event_id"], event_id.as_str());
    eventually(Duration::from_secs(10), "wait exits", || {
        !fleet.is_running(waiter)
    });
    // SIGTERM: the worker drains and flushes its last spans and metrics.
    assert_eq!(fleet.terminate(worker, Duration::from_secs(20)), Some(0));

    let services = [
        "deploy-gate-enqueue",
        "deploy-gate-worker",
        "deploy-gate-wait",
    ];
    eventually(
        Duration::from_secs(10),
        "spans of the three processes",
        || {
            let spans = receiver.spans();
            services
                .iter()
                .all(|service| spans.iter().any(|s| s.service == *service))
        },
    );
    assert_eq!(receiver.refused(), Vec::<String>::new());
    let spans = receiver.spans();

    let producer = span(&spans, "deploy-gate-enqueue", "gate.events publish");
    assert_eq!(producer.kind, PRODUCER);
    assert_eq!(
        producer.parent_span_id, "",
        "the producer span starts the trace"
    );
    assert_eq!(producer.attributes["event_id"], event_id);
    let trace_id = producer.trace_id.clone();
    assert_eq!(trace_id.len(), 32);

    let process = span(&spans, "deploy-gate-worker", "gate.merge-events process");
    assert_eq!(process.kind, CONSUMER);
    assert_eq!(process.trace_id, trace_id, "the worker continues the trace");
    assert_eq!(process.parent_span_id, producer.span_id);

    let in_worker = |name: &str| {
        let child = span(&spans, "deploy-gate-worker", name);
        assert_eq!(child.trace_id, trace_id, "{name}");
        assert_eq!(
            child.parent_span_id, process.span_id,
            "{name} is a child of the worker span"
        );
        child
    };
    let lookup = in_worker("verdict cache lookup");
    assert_eq!(lookup.attributes["hit"], "false");
    let model = spans
        .iter()
        .find(|s| s.service == "deploy-gate-worker" && s.name.starts_with("chat "))
        .unwrap_or_else(|| panic!("no model-call span in {spans:#?}"));
    let model = in_worker(&model.name);
    assert_eq!(model.kind, CLIENT);
    assert_eq!(model.attributes["gen_ai.system"], "anthropic");
    assert_eq!(model.attributes["gen_ai.operation.name"], "chat");
    assert_eq!(
        model.name,
        format!("chat {}", model.attributes["gen_ai.request.model"])
    );
    let model_verdict = decision["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["analyzer"].as_str().unwrap().starts_with("anthropic/"))
        .unwrap();
    assert_eq!(
        model.attributes["gen_ai.usage.input_tokens"],
        model_verdict["usage"]["input_tokens"].to_string()
    );
    assert_eq!(
        model.attributes["gen_ai.usage.output_tokens"],
        model_verdict["usage"]["output_tokens"].to_string()
    );
    in_worker("consensus");
    let publish = in_worker("gate.results publish");
    assert_eq!(publish.kind, PRODUCER);

    let received = span(&spans, "deploy-gate-wait", "gate.results receive");
    assert_eq!(received.kind, CONSUMER);
    assert_eq!(received.trace_id, trace_id, "wait closes the same trace");
    assert_eq!(received.parent_span_id, publish.span_id);

    let content_types: BTreeSet<String> = receiver.content_types().into_iter().collect();
    assert!(
        content_types.contains("application/json"),
        "{content_types:?}"
    );
    assert!(
        content_types.contains("application/x-protobuf"),
        "{content_types:?}"
    );
    // The worker's registry arrived as OTLP metrics, under the GenAI names.
    let metrics = receiver.metrics();
    for name in [
        "deploy_gate_decisions",
        "deploy_gate_events_received",
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
    ] {
        assert!(
            metrics
                .iter()
                .any(|m| m.service == "deploy-gate-worker" && m.name == name),
            "metric {name} not exported over OTLP"
        );
    }
}

/// Metric names a PromQL expression reads: identifiers not followed by `(` that
/// are not keywords, functions' arguments or label names.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "bool",
        "offset",
        "and",
        "or",
        "unless", // operators
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values", // aggregations, before `by (…)`
    ];
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let (mut i, mut in_braces, mut in_string) = (0, false, false);
    while i < bytes.len() {
        let c = bytes[i] as char;
        if in_string {
            in_string = c != '"';
            i += 1;
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => in_braces = true,
            '}' => in_braces = false,
            '[' => {
                // A range like [5m] or [$__range].
                while i < bytes.len() && bytes[i] != b']' {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &expr[start..i];
                if matches!(word, "by" | "without" | "on" | "ignoring") {
                    // A label list: `by (le, queue)`.
                    while i < bytes.len() && bytes[i] != b')' {
                        i += 1;
                    }
                } else if !in_braces
                    && !KEYWORDS.contains(&word)
                    && !expr[i..].trim_start().starts_with('(')
                {
                    names.insert(word.to_string());
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// Names a scrape serves: the sample names and the families of `# TYPE` lines.
fn served_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

#[test]
fn every_metric_a_grafana_panel_queries_is_served_by_the_fleet() {
    let fleet = Fleet::start(FleetOptions { models: true });
    // One 429 before the answer: the rate-limit, retry and wait series exist.
    fleet.mock.push_fault(
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    let worker_metrics = format!("127.0.0.1:{}", free_port());
    fleet.spawn_worker(&[("DEPLOY_GATE__TELEMETRY__METRICS_LISTEN", &worker_metrics)]);
    let webhook = format!("127.0.0.1:{}", free_port());
    let webhook_metrics = format!("127.0.0.1:{}", free_port());
    fleet.spawn(
        &["webhook", "--listen", &webhook],
        &[
            ("GITHUB_WEBHOOK_SECRET", "e2e-not-a-secret"),
            ("GITHUB_TOKEN", "e2e-not-a-token"),
            ("DEPLOY_GATE__TELEMETRY__METRICS_LISTEN", &webhook_metrics),
        ],
    );
    let repo = app_repo();
    commit_code(&repo, 1, "dashboard");
    let event_id = format!("{}dashboard", fleet.prefix);
    fleet.enqueue(&repo, &event_id);
    let run = fleet.wait(&event_id, &[]);
    assert_eq!(run.decision()["event_id"], event_id.as_str());
    wait_for_listener(&webhook, Duration::from_secs(20));
    http_get(&webhook, "/healthz");
    wait_for_listener(&worker_metrics, Duration::from_secs(20));
    wait_for_listener(&webhook_metrics, Duration::from_secs(20));
    let mut served = served_names(&http_get(&worker_metrics, "/metrics"));
    served.extend(served_names(&http_get(&webhook_metrics, "/metrics")));
    assert!(served.contains("deploy_gate_decisions_total"), "{served:?}");
    assert!(
        served.contains("deploy_gate_webhook_requests_total"),
        "{served:?}"
    );

    let dashboards: Vec<_> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
    assert!(!dashboards.is_empty());
    let mut n_queries = 0;
    for path in dashboards {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
        while let Some(panel) = panels.pop() {
            if let Some(nested) = panel["panels"].as_array() {
                panels.extend(nested);
            }
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap();
                let names = metric_names(expr);
                assert!(!names.is_empty(), "no metric in `{expr}`");
                for name in names {
                    n_queries += 1;
                    assert!(
                        served.contains(&name),
                        "{}: panel `{}` queries `{name}`, which the fleet does not serve",
                        path.display(),
                        panel["title"]
                    );
                }
            }
        }
    }
    assert!(n_queries > 20, "{n_queries} metric references");
}

#[test]
fn panel_queries_are_read_for_their_metric_names() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.95, sum by (le, gen_ai_request_model) (rate(gen_ai_client_operation_duration_seconds_bucket[5m])))"#
        ),
        BTreeSet::from(["gen_ai_client_operation_duration_seconds_bucket".to_string()])
    );
    assert_eq!(
        metric_names(
            r#"sum(rate(a_total{result="hit"}[15m])) / sum(rate(b_total{queue=~".*dead-letter.*"}[15m]))"#
        ),
        BTreeSet::from(["a_total".to_string(), "b_total".to_string()])
    );
}
