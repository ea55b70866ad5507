//! `/metrics` of a real worker (on the real local RabbitMQ and Redis, the mock
//! model behind a real Anthropic provider) after a known sequence of events: the
//! names, labels and counts that the README documents and the Grafana dashboard
//! queries.
//!
//! One test in its own binary: the registry is process-wide, so no other worker
//! may count into it meanwhile.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use gate_core::{Decision, Recommendation};
use gate_worker::WorkerSettings;

use common::{
    destructive_migration, docs_change, event, eventually, free_port, http_get, Fleet,
    RunningWorker,
};

/// The value of the sample `series` (name and labels, exactly as exposed).
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample `{series}` in\n{body}"))
        .parse()
        .unwrap()
}

/// The model's verdict of a decision (the rules verdict comes first).
fn model_verdict(decision: &Decision) -> &gate_core::Verdict {
    decision
        .verdicts
        .iter()
        .find(|v| v.analyzer.starts_with("anthropic/"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_decisions_cache_tokens_and_cost_after_a_known_sequence_of_events() {
    let mut fleet = Fleet::start().await;
    let health = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let settings = WorkerSettings {
        health_listen: Some(health),
        ..fleet.worker_settings()
    };
    let worker = RunningWorker::spawn(settings, fleet.worker_deps());

    // A docs change (the model is asked), the same diff again (the verdict cache
    // answers), a destructive migration (asked again: blocked), the first event
    // redelivered (its stored decision republished), and a poison message.
    fleet.publish(&event("ev-docs", docs_change())).await;
    let docs = fleet.next_result(15).await.decision.unwrap();
    fleet.publish(&event("ev-docs-again", docs_change())).await;
    let again = fleet.next_result(15).await.decision.unwrap();
    assert!(again.cached);
    fleet
        .publish(&event("ev-drop", destructive_migration()))
        .await;
    let drop = fleet.results_until_decisions(1, 15).await;
    let drop = drop.into_iter().find_map(|seen| seen.decision).unwrap();
    assert_eq!(drop.recommendation, Recommendation::Block);
    fleet.publish(&event("ev-docs", docs_change())).await;
    fleet.results_until_decisions(1, 15).await;
    fleet.publish_raw("ev-poison", b"not json".to_vec()).await;
    eventually(10, "the poison message is dead-lettered", || {
        worker.stats.snapshot().dead_lettered == 1
    })
    .await;

    let (status, body) = http_get(health, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    let model = model_verdict(&docs)
        .analyzer
        .strip_prefix("anthropic/")
        .unwrap()
        .to_string();

    for (series, expected) in [
        ("deploy_gate_events_received_total", 5.0),
        ("deploy_gate_events_redelivered_total", 0.0),
        ("deploy_gate_events_decided_total", 3.0),
        ("deploy_gate_events_dead_lettered_total", 1.0),
        ("deploy_gate_decisions_republished_total", 1.0),
        (
            "deploy_gate_decisions_total{cached=\"false\",recommendation=\"deploy\"}",
            1.0,
        ),
        (
            "deploy_gate_decisions_total{cached=\"true\",recommendation=\"deploy\"}",
            1.0,
        ),
        (
            "deploy_gate_decisions_total{cached=\"false\",recommendation=\"block\"}",
            1.0,
        ),
        (
            "deploy_gate_verdict_cache_lookups_total{result=\"hit\"}",
            1.0,
        ),
        (
            "deploy_gate_verdict_cache_lookups_total{result=\"miss\"}",
            2.0,
        ),
        ("deploy_gate_decision_risk_score_count", 3.0),
        ("deploy_gate_decision_duration_seconds_count", 3.0),
        ("deploy_gate_redis_errors_total", 0.0),
    ] {
        assert_eq!(sample(&body, series), expected, "{series}");
    }
    assert_eq!(
        sample(&body, "deploy_gate_decision_risk_score_sum"),
        f64::from(docs.risk_score) * 2.0 + f64::from(drop.risk_score)
    );

    let gen_ai = format!(
        "gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"anthropic\",gen_ai_request_model=\"{model}\""
    );
    let calls = format!(
        "deploy_gate_model_calls_total{{gen_ai_provider_name=\"anthropic\",gen_ai_request_model=\"{model}\",outcome=\"ok\"}}"
    );
    assert_eq!(sample(&body, &calls), 2.0, "two model calls, one cache hit");
    assert_eq!(
        sample(
            &body,
            &format!("gen_ai_client_operation_duration_seconds_count{{error_type=\"\",{gen_ai}}}")
        ),
        2.0
    );
    let asked = [model_verdict(&docs), model_verdict(&drop)];
    for (token_type, tokens) in [
        (
            "input",
            asked.iter().map(|v| v.usage.input_tokens).sum::<u64>(),
        ),
        ("output", asked.iter().map(|v| v.usage.output_tokens).sum()),
    ] {
        let series =
            format!("gen_ai_client_token_usage_sum{{{gen_ai},gen_ai_token_type=\"{token_type}\"}}");
        #[allow(clippy::cast_precision_loss)]
        let tokens = tokens as f64;
        assert!(tokens > 0.0);
        assert_eq!(sample(&body, &series), tokens, "{series}");
    }
    let cost: f64 = asked.iter().filter_map(|v| v.usage.cost_usd).sum();
    assert!(cost > 0.0, "the test prices its model");
    let exported = sample(
        &body,
        &format!(
            "deploy_gate_model_cost_usd_total{{gen_ai_provider_name=\"anthropic\",gen_ai_request_model=\"{model}\"}}"
        ),
    );
    assert!((exported - cost).abs() < 1e-9, "{exported} vs {cost}");
    assert!(body.contains("# TYPE gen_ai_client_token_usage histogram"));

    // The consensus of the three analyses (one model: never a disagreement; the
    // destructive migration's rules floor may lift the model's score).
    let decided = [&docs, &again, &drop];
    let floor_raises = decided.iter().filter(|d| d.consensus.floor_applied).count();
    let disagreements = decided.iter().filter(|d| !d.consensus.agreed).count();
    #[allow(clippy::cast_precision_loss)]
    for (series, expected) in [
        ("deploy_gate_rules_floor_raises_total", floor_raises as f64),
        (
            "deploy_gate_consensus_disagreements_total",
            disagreements as f64,
        ),
    ] {
        assert_eq!(sample(&body, series), expected, "{series}");
    }
    // The broker's view of the queues, read when the session started: this worker
    // consumes the events queue, nobody the dead-letter queue.
    let topology = fleet.topology();
    for (series, expected) in [
        (
            format!(
                "deploy_gate_queue_consumers{{queue=\"{}\"}}",
                topology.events_queue
            ),
            1.0,
        ),
        (
            format!(
                "deploy_gate_queue_consumers{{queue=\"{}\"}}",
                topology.dead_letter_queue
            ),
            0.0,
        ),
    ] {
        assert_eq!(sample(&body, &series), expected, "{series}");
    }
    assert!(body.contains("# TYPE deploy_gate_queue_messages gauge"));

    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
}
