//! `schemas/canary-request.schema.json` and `schemas/canary-decision.schema.json`
//! describe what this build really writes and reads.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use gate_canary::{
    judge, BadDirection, CanaryRequest, CanarySettings, Evidence, PrometheusSource, Source, Target,
};
use serde_json::Value;

use common::{deploy_decision, metric, pair, request, samples, Rng};

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/../../schemas/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|err| panic!("{path} is not a valid schema: {err}"))
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect()
}

fn inline_request() -> CanaryRequest {
    let mut rng = Rng::new(1);
    let mut series = BTreeMap::new();
    series.insert(
        "error_rate".to_string(),
        pair(rng.series(30, 0.02, 0.004), rng.series(30, 0.01, 0.002)),
    );
    series.insert(
        "latency_ms".to_string(),
        pair(rng.series(4, 100.0, 5.0), rng.series(30, 100.0, 5.0)),
    );
    let mut latency = metric("latency_ms", BadDirection::Increase, false, "latency");
    latency.tolerance = Some(0.2);
    latency.weight = 2.0;
    let mut req = request(
        vec![
            metric("error_rate", BadDirection::Increase, true, "errors"),
            latency,
        ],
        series,
    );
    req.groups.insert("errors".to_string(), 70.0);
    // Short decimals, as an orchestrator sends them: serde_json reads those back
    // exactly (a value with 17 significant digits may come back one ulp off).
    if let Source::Inline { series } = &mut req.source {
        for pair in series.values_mut() {
            for value in pair.canary.iter_mut().chain(pair.baseline.iter_mut()) {
                *value = (*value * 1e6).round() / 1e6;
            }
        }
    }
    req
}

#[test]
fn requests_this_build_writes_validate_and_read_back() {
    let validator = schema("canary-request.schema.json");
    let inline = inline_request();
    let mut prometheus = inline.clone();
    let mut queries = BTreeMap::new();
    queries.insert(
        "error_rate".to_string(),
        r#"sum(rate(http_errors_total{track="{{scope}}"}[1m]))"#.to_string(),
    );
    queries.insert(
        "latency_ms".to_string(),
        r#"histogram_quantile(0.99, sum by (le) (rate(http_duration_bucket{track="{{scope}}"}[1m])))"#
            .to_string(),
    );
    prometheus.canary = Target {
        name: "shop-canary".into(),
        scope: "canary".into(),
    };
    prometheus.baseline = Target {
        name: "shop-baseline".into(),
        scope: "baseline".into(),
    };
    prometheus.source = Source::Prometheus(PrometheusSource {
        base_url: "http://prometheus:9090".into(),
        queries,
        step_secs: 15,
        window_secs: 600,
        end: Some("2026-03-01T10:30:00Z".into()),
    });
    prometheus.final_judgement = true;
    for req in [&inline, &prometheus] {
        let value = serde_json::to_value(req).unwrap();
        let found = errors(&validator, &value);
        assert!(found.is_empty(), "{found:#?}\n{value:#}");
        let back = CanaryRequest::from_json(&serde_json::to_vec(&value).unwrap()).unwrap();
        assert_eq!(&back, req);
    }
    // The schema refuses what the parser refuses.
    let mut bad = serde_json::to_value(&prometheus).unwrap();
    bad["canary"]["scope"] = Value::from("x\"} or vector(1) #");
    assert!(!errors(&validator, &bad).is_empty());
    assert!(CanaryRequest::from_json(&serde_json::to_vec(&bad).unwrap()).is_err());
    let mut unknown = serde_json::to_value(&inline).unwrap();
    unknown["metrics"][0]["critcal"] = Value::from(true);
    assert!(!errors(&validator, &unknown).is_empty());
    assert!(CanaryRequest::from_json(&serde_json::to_vec(&unknown).unwrap()).is_err());
}

#[test]
fn decisions_the_judge_writes_validate() {
    let validator = schema("canary-decision.schema.json");
    let req = inline_request();
    let deploy = deploy_decision("ev-1", 60);
    // With data missing on one metric (nulls in its row) and with the deploy
    // decision missing (a null risk score).
    for deploy in [Some(&deploy), None] {
        for final_judgement in [false, true] {
            let mut req = req.clone();
            req.final_judgement = final_judgement;
            let decision = judge(
                &req,
                Evidence {
                    samples: &samples(&req),
                    deploy,
                    notes: &["metrics unavailable: a note".to_string()],
                    judged_at: "2026-03-01T10:30:00Z",
                },
                &CanarySettings::default(),
            );
            let value = serde_json::to_value(&decision).unwrap();
            let found = errors(&validator, &value);
            assert!(found.is_empty(), "{found:#?}\n{value:#}");
        }
    }
}
