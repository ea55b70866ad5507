//! Canary analysis end to end: a deploy decision from the real worker, a canary
//! request on the real broker, `canary serve` judging it, `canary.rollback.<repo>`
//! published, and the rollback told to (mock) Slack by the real notifier; and the
//! one-off `canary` and `canary watch` commands with their exit codes.

use std::collections::BTreeMap;
use std::time::Duration;

use gate_bus::{Bus, StreamOffset};
use gate_canary::{
    BadDirection, CanaryRequest, MetricSpec, SeriesPair, Source, Target,
    CANARY_REQUEST_SCHEMA_VERSION,
};
use serde_json::{json, Value};

use crate::fleet_harness::{
    app_repo, commit_code, free_port, http_get, wait_for_listener, Fleet, FleetOptions, AMQP_URL,
    REPO_NAME,
};

/// A seeded series around `mean` (SplitMix64 and a triangular spread: the same
/// numbers on every machine).
fn series(seed: u64, n: usize, mean: f64, spread: f64) -> Vec<f64> {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| mean + spread * (uniform() + uniform() - 1.0))
        .collect()
}

fn metric(name: &str, bad: BadDirection, critical: bool, group: &str) -> MetricSpec {
    MetricSpec {
        name: name.to_string(),
        bad_direction: bad,
        critical,
        weight: 1.0,
        group: group.to_string(),
        tolerance: None,
    }
}

/// Error rate doubled on the canary (critical), latency unchanged.
fn failing_series() -> BTreeMap<String, SeriesPair> {
    let mut series_by_name = BTreeMap::new();
    series_by_name.insert(
        "error_rate".to_string(),
        SeriesPair {
            canary: series(1, 30, 0.02, 0.004),
            baseline: series(2, 30, 0.01, 0.002),
        },
    );
    series_by_name.insert(
        "latency_ms".to_string(),
        SeriesPair {
            canary: series(3, 30, 120.0, 20.0),
            baseline: series(4, 30, 120.0, 20.0),
        },
    );
    series_by_name
}

fn metrics() -> Vec<MetricSpec> {
    vec![
        metric("error_rate", BadDirection::Increase, true, "errors"),
        metric("latency_ms", BadDirection::Increase, false, "latency"),
    ]
}

fn assert_valid(schema_file: &str, instance: &Value) {
    let path = format!("{}/../../schemas/{schema_file}", env!("CARGO_MANIFEST_DIR"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "violates {schema_file}: {errors:#?}\n{instance:#}"
    );
}

#[test]
fn a_failing_canary_is_rolled_back_with_the_deploy_plan_and_slack_is_told() {
    let fleet = Fleet::start(FleetOptions::default());
    fleet.spawn_worker(&[]);
    fleet.spawn_notifier(&[]);
    let canary_metrics = format!("127.0.0.1:{}", free_port());
    let canary_service = fleet.spawn(
        &["canary", "serve"],
        &[("DEPLOY_GATE__TELEMETRY__METRICS_LISTEN", &canary_metrics)],
    );

    // The deploy decision, by the real worker.
    let repo = app_repo();
    commit_code(&repo, 1, "");
    let event_id = format!("{}ev-canary", fleet.prefix);
    fleet.enqueue(&repo, &event_id);
    let deploy = fleet.wait_for(&event_id, 0);
    let plan: Vec<String> = serde_json::from_value(deploy["rollback_notes"].clone()).unwrap();
    assert!(plan[0].starts_with("git revert"), "{plan:?}");

    // The canary request, on the real broker, as an orchestrator publishes it.
    let request = CanaryRequest {
        schema_version: CANARY_REQUEST_SCHEMA_VERSION,
        canary_id: format!("{event_id}-canary-1"),
        event_id: event_id.clone(),
        repo: REPO_NAME.to_string(),
        canary: Target {
            name: "shop-canary".into(),
            scope: String::new(),
        },
        baseline: Target {
            name: "shop-baseline".into(),
            scope: String::new(),
        },
        metrics: metrics(),
        groups: BTreeMap::new(),
        source: Source::Inline {
            series: failing_series(),
        },
        final_judgement: false,
    };
    assert_valid(
        "canary-request.schema.json",
        &serde_json::to_value(&request).unwrap(),
    );
    let (routing_key, message_id, decision) = fleet.block_on(async {
        let bus = Bus::connect(AMQP_URL, fleet.bus_settings.clone())
            .await
            .unwrap();
        let publisher = bus.publisher().await.unwrap();
        gate_canary::publish_request(&publisher, &fleet.bus_settings, &request)
            .await
            .unwrap();
        // Every canary decision is kept in the canary log: read it from the start.
        let mut log = bus
            .consume_stream(&fleet.topology().canary_log, 10, StreamOffset::First)
            .await
            .unwrap();
        let delivery = tokio::time::timeout(Duration::from_secs(60), log.next())
            .await
            .expect("a canary decision within 60 s")
            .unwrap()
            .unwrap();
        let found = (
            delivery.routing_key().to_string(),
            delivery.message_id().map(str::to_owned),
            serde_json::from_slice::<Value>(delivery.payload()).unwrap(),
        );
        delivery.ack().await.unwrap();
        let _ = bus.close().await;
        found
    });
    assert_eq!(routing_key, "canary.rollback.acme-shop");
    assert_eq!(message_id.as_deref(), Some(request.canary_id.as_str()));
    assert_valid("canary-decision.schema.json", &decision);
    assert_eq!(decision["result"], "rollback");
    assert_eq!(decision["event_id"], event_id.as_str());
    assert_eq!(decision["deploy_risk_score"], deploy["risk_score"]);
    assert_eq!(decision["rollback_notes"], deploy["rollback_notes"]);
    let error_rate = &decision["metrics"][0];
    assert_eq!(
        (&error_rate["name"], &error_rate["classification"]),
        (&json!("error_rate"), &json!("high"))
    );

    // The rollback, told through the notifier: its own message, not taken for a
    // repeat of the deploy decision's.
    let messages = fleet.wait_for_slack(1, Duration::from_secs(60));
    let text = messages[0].body.to_string();
    assert!(
        text.contains("CANARY ROLLBACK: acme/shop")
            && text.contains("shop-canary")
            && text.contains("shop-baseline"),
        "{text}"
    );
    assert!(
        !text.contains("BLOCK"),
        "a canary rollback is not shown as the deploy verdict: {text}"
    );
    assert!(text.contains("error_rate (critical) rose"), "{text}");
    assert!(text.contains("error_rate (critical): high"), "{text}");
    assert!(
        text.contains(&plan[0]),
        "the rollback plan is in the message: {text}"
    );
    assert!(text.contains(&format!("{event_id}:canary:{}", request.canary_id)));

    // The service counts what it judged, for the ops dashboard.
    wait_for_listener(&canary_metrics, Duration::from_secs(20));
    let scrape = http_get(&canary_metrics, "/metrics");
    for (series, value) in [
        (
            "deploy_gate_canary_judgements_total{result=\"rollback\"}",
            "1",
        ),
        (
            "deploy_gate_canary_judgements_total{result=\"promote\"}",
            "0",
        ),
        ("deploy_gate_canary_score_count", "1"),
        ("deploy_gate_canary_metrics_unavailable_total", "0"),
    ] {
        assert!(
            scrape
                .lines()
                .any(|line| line == format!("{series} {value}")),
            "{series} {value} not in:\n{scrape}"
        );
    }

    // A request that cannot be judged is dead-lettered with the field at fault,
    // and the service goes on.
    let mut bad = serde_json::to_value(&request).unwrap();
    bad["metrics"][0]["weight"] = json!(-1);
    fleet.publish_raw(
        "canary.request.acme-shop",
        "bad-canary",
        &serde_json::to_vec(&bad).unwrap(),
    );
    let dead = fleet.dead_letters(1, Duration::from_secs(30));
    assert_eq!(dead[0].message_id.as_deref(), Some("bad-canary"));
    let reason = dead[0].reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("malformed:") && reason.contains("metrics[0].weight"),
        "{reason}"
    );
    assert!(fleet.is_running(canary_service));
}

/// A deploy decision stored the way the worker stores it, without a worker.
fn store_decision(fleet: &Fleet, event_id: &str, risk_score: u8) {
    let decision: gate_core::Decision = serde_json::from_value(json!({
        "schema_version": 1, "event_id": event_id, "repo": REPO_NAME,
        "base": "1111111111111111111111111111111111111111",
        "head": "2222222222222222222222222222222222222222",
        "risk_score": risk_score, "band": "auto", "recommendation": "deploy",
        "summary": "A feature.", "risks": [],
        "rollback_notes": ["git revert --no-edit 2222222222222222222222222222222222222222"],
        "verdicts": [],
        "consensus": {"mode": "rules_only", "quorum": 0, "n_model_verdicts": 0, "agreed": true, "floor_applied": false, "notes": []},
        "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "cost_usd": 0.0},
        "cost_usd": 0.0, "cached": false, "decided_at": "2026-03-01T10:00:00Z",
        "context": {"n_files": 1, "n_commits": 1, "lines_added": 3, "lines_removed": 0, "packed_chars": 100, "n_omitted": 0, "omitted": []}
    }))
    .unwrap();
    fleet.block_on(async {
        let redis = gate_bus::Redis::open(
            crate::fleet_harness::REDIS_URL,
            fleet.redis_settings.clone(),
        )
        .unwrap();
        redis.decision_store().insert(&decision).await.unwrap();
    });
}

fn write_spec(fleet: &Fleet, name: &str, series_by_name: &BTreeMap<String, SeriesPair>) -> String {
    let spec = json!({
        "canary": {"name": "shop-canary"},
        "baseline": {"name": "shop-baseline"},
        "metrics": metrics(),
        "series": series_by_name,
    });
    let path = fleet.dir.path().join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn the_canary_command_exits_by_its_answer() {
    let fleet = Fleet::start(FleetOptions::default());
    let event_id = format!("{}ev-cli", fleet.prefix);
    store_decision(&fleet, &event_id, 10);

    let failing = write_spec(&fleet, "failing.json", &failing_series());
    let run = fleet.run(&["canary", "--deploy-event", &event_id, "--metrics", &failing]);
    assert_eq!(run.code, 1, "rollback exits 1:\n{}", run.all_output());
    assert!(run.stdout.contains("ROLLBACK"), "{}", run.stdout);
    assert!(run.stdout.contains("error_rate*") && run.stdout.contains("HIGH"));
    assert!(run
        .stdout
        .contains("rollback plan:\n  - git revert --no-edit 2222"));

    let mut healthy = failing_series();
    healthy.get_mut("error_rate").unwrap().canary = series(5, 30, 0.01, 0.002);
    let healthy = write_spec(&fleet, "healthy.json", &healthy);
    let run = fleet.run(&[
        "canary",
        "--deploy-event",
        &event_id,
        "--metrics",
        &healthy,
        "--json",
    ]);
    assert_eq!(run.code, 0, "promote exits 0:\n{}", run.all_output());
    let decision: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_valid("canary-decision.schema.json", &decision);
    assert_eq!(decision["result"], "promote");

    let mut early = failing_series();
    early.get_mut("error_rate").unwrap().canary.truncate(4);
    let early = write_spec(&fleet, "early.json", &early);
    let run = fleet.run(&["canary", "--deploy-event", &event_id, "--metrics", &early]);
    assert_eq!(run.code, 4, "continue exits 4:\n{}", run.all_output());
    assert!(run.stdout.contains("too few samples"), "{}", run.stdout);

    // watch asks every interval; the last judgement before the timeout is final,
    // and not enough evidence then rolls back.
    let run = fleet.run(&[
        "canary",
        "watch",
        "--deploy-event",
        &event_id,
        "--metrics",
        &early,
        "--interval",
        "1s",
        "--timeout",
        "2s",
        "--json",
    ]);
    assert_eq!(run.code, 1, "{}", run.all_output());
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{}", run.stdout);
    assert_eq!(lines[0]["result"], "continue");
    let last = lines.last().unwrap();
    assert_eq!(
        (&last["result"], &last["final"]),
        (&json!("rollback"), &json!(true))
    );

    // Bad input: an unknown event, a broken file (named, with its line).
    let run = fleet.run(&[
        "canary",
        "--deploy-event",
        "no-such-event",
        "--metrics",
        &failing,
    ]);
    assert_eq!(run.code, 2, "{}", run.all_output());
    assert!(run
        .stderr
        .contains("no decision is stored for event no-such-event"));
    let broken = fleet.dir.path().join("broken.json");
    std::fs::write(
        &broken,
        "{\n  \"canary\": {\"name\": \"c\"},\n  \"baselin\": {}\n}\n",
    )
    .unwrap();
    let run = fleet.run(&[
        "canary",
        "--deploy-event",
        &event_id,
        "--metrics",
        broken.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.all_output());
    assert!(
        run.stderr.contains("broken.json") && run.stderr.contains("line 3"),
        "{}",
        run.stderr
    );
    let run = fleet.run(&["canary", "--deploy-event", &event_id]);
    assert_eq!(run.code, 2, "{}", run.all_output());
    assert!(
        run.stderr.contains("--metrics FILE, or --prometheus URL"),
        "{}",
        run.stderr
    );
}
