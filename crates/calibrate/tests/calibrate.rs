//! `calibrate` on a seeded set of decisions and outcomes in the real local Redis
//! (under a key prefix no other test uses): written with the bus's stores exactly
//! as the worker, `approve` and the outcome consumer write them, read back with
//! `OutcomeStore::for_each_decision` as `deploy-gate calibrate` reads them, and
//! printed as the table and the JSON it prints.

#![allow(clippy::unwrap_used)]

use gate_bus::{Redis, RedisSettings};
use gate_calibrate::Calibration;
use gate_core::{
    Approval, Band, Bands, Category, Consensus, ContextSummary, Decision, Evidence, Outcome,
    OutcomeResult, Recommendation, Risk, Severity, Usage, DECISION_SCHEMA_VERSION,
};
use serde_json::{json, Value};

const REDIS_URL: &str = "redis://127.0.0.1:6379/";

fn unique_prefix() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("t-{hex}-gate:")
}

async fn redis(prefix: &str) -> Redis {
    let redis = Redis::open(
        REDIS_URL,
        RedisSettings {
            key_prefix: prefix.to_string(),
            // Whatever a failed run leaves behind expires on its own.
            decision_ttl_secs: 600,
            op_timeout_ms: 2_000,
            ..RedisSettings::default()
        },
    )
    .unwrap();
    redis
        .ping()
        .await
        .expect("Redis must be running at 127.0.0.1:6379");
    redis
}

fn decision(event_id: &str, band: Band, categories: &[Category]) -> Decision {
    Decision {
        schema_version: DECISION_SCHEMA_VERSION,
        event_id: event_id.into(),
        repo: "acme/shop".into(),
        base: "a".repeat(40),
        head: format!("{:0>40}", event_id.len()),
        risk_score: match band {
            Band::Auto => 12,
            Band::Review => 35,
            Band::Hold => 62,
            Band::Block => 88,
        },
        band,
        recommendation: band.recommendation(),
        summary: format!("{event_id} summary"),
        risks: categories
            .iter()
            .map(|category| Risk {
                category: *category,
                severity: Severity::High,
                detail: format!("{category} risk"),
                evidence: vec![Evidence {
                    file: "src/lib.rs".into(),
                    line: Some(1),
                    excerpt: None,
                }],
            })
            .collect(),
        rollback_notes: vec!["git revert bbbbbbbbbbbb".into()],
        verdicts: vec![],
        consensus: Consensus {
            mode: "rules_only".into(),
            quorum: 0,
            n_model_verdicts: 0,
            agreed: true,
            floor_applied: false,
            notes: vec![],
        },
        usage: Usage::default(),
        cost_usd: Some(0.0),
        cached: false,
        decided_at: "2026-03-01T09:00:00Z".into(),
        produced_at: None,
        context: ContextSummary {
            n_files: 1,
            n_commits: 1,
            lines_added: 3,
            lines_removed: 0,
            packed_chars: 100,
            n_omitted: 0,
            omitted: vec![],
        },
        approval: None,
    }
}

/// A person's decision superseding `automatic`, as `deploy-gate approve|override`
/// builds it.
fn by_a_person(automatic: &Decision, to: Recommendation) -> Decision {
    let mut human = automatic.clone();
    human.recommendation = to;
    human.band = match to {
        Recommendation::Deploy => Band::Review,
        Recommendation::Hold => Band::Hold,
        Recommendation::Block => Band::Block,
    };
    human.consensus.mode = "human".into();
    human.approval = Some(Approval {
        by: "ana".into(),
        reason: "checked on staging".into(),
        at: "2026-03-01T09:30:00Z".into(),
        superseded: automatic.recommendation,
    });
    human
}

fn outcome(event_id: &str, result: OutcomeResult) -> Outcome {
    Outcome::from_json(
        json!({"event_id": event_id, "result": result, "note": "reported", "at": "2026-03-01T10:00:00Z"})
            .to_string()
            .as_bytes(),
    )
    .unwrap()
}

/// Eight decisions: docs changes that deployed (one rolled back), dependency
/// bumps, a held migration a person approved that then rolled back with an
/// incident, a blocked destructive migration, a hold a person blocked, and a
/// blocked secret a person approved; plus an outcome whose decision is gone.
async fn seed(redis: &Redis) {
    use OutcomeResult::{Deployed, Incident, RolledBack};
    let decisions = redis.decision_store();
    let outcomes = redis.outcome_store();
    let seeded: [(Decision, Option<Recommendation>, &[OutcomeResult]); 8] = [
        (decision("ev-docs-1", Band::Auto, &[]), None, &[Deployed]),
        (
            decision("ev-docs-2", Band::Auto, &[]),
            None,
            &[Deployed, RolledBack],
        ),
        (
            decision("ev-deps-1", Band::Review, &[Category::Deps]),
            None,
            &[Deployed],
        ),
        (
            decision(
                "ev-deps-2",
                Band::Review,
                &[Category::Deps, Category::Config],
            ),
            None,
            &[],
        ),
        (
            decision("ev-schema-hold", Band::Hold, &[Category::Schema]),
            Some(Recommendation::Deploy),
            &[Deployed, Incident, RolledBack],
        ),
        (
            decision(
                "ev-schema-block",
                Band::Block,
                &[Category::Schema, Category::Data],
            ),
            None,
            &[],
        ),
        (
            decision("ev-auth-hold", Band::Hold, &[Category::Auth]),
            Some(Recommendation::Block),
            &[],
        ),
        (
            decision("ev-secrets", Band::Block, &[Category::Secrets]),
            Some(Recommendation::Deploy),
            &[Deployed],
        ),
    ];
    for (automatic, person, results) in seeded {
        decisions.insert(&automatic).await.unwrap();
        if let Some(to) = person {
            decisions
                .supersede(&by_a_person(&automatic, to))
                .await
                .unwrap();
        }
        for result in results {
            outcomes
                .record(&outcome(&automatic.event_id, *result))
                .await
                .unwrap();
        }
    }
    outcomes
        .record(&outcome("ev-expired", RolledBack))
        .await
        .unwrap();
}

async fn calibrate(redis: &Redis) -> Calibration {
    let mut calibration = Calibration::new(Bands::default());
    let summary = redis
        .outcome_store()
        .for_each_decision(|read| {
            calibration.add(&read.decision, read.automatic.as_ref(), &read.outcomes)
        })
        .await
        .unwrap();
    calibration.add_unreadable(summary.n_unreadable);
    assert_eq!(summary.n_decisions, 8);
    calibration
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibrate_on_seeded_decisions_and_outcomes_prints_the_expected_table_and_json() {
    let prefix = unique_prefix();
    let redis = redis(&prefix).await;
    seed(&redis).await;

    let report = calibrate(&redis).await.report();
    let expected_table = "\
category  band    decisions  deployed  rolled_back  incidents  holds_overridden  rollback_rate
all       auto            2         2            1          0                 0          50.0%
all       review          2         1            0          0                 0           0.0%
all       hold            2         1            1          1                 1         100.0%
all       block           2         1            0          0                 1           0.0%
all       all             8         5            2          1                 2          40.0%
schema    hold            1         1            1          1                 1         100.0%
schema    block           1         0            0          0                 0              -
schema    all             2         1            1          1                 1         100.0%
auth      hold            1         0            0          0                 0              -
auth      all             1         0            0          0                 0              -
deps      review          2         1            0          0                 0           0.0%
deps      all             2         1            0          0                 0           0.0%
config    review          1         0            0          0                 0              -
config    all             1         0            0          0                 0              -
data      block           1         0            0          0                 0              -
data      all             1         0            0          0                 0              -
secrets   block           1         1            0          0                 1           0.0%
secrets   all             1         1            0          0                 1           0.0%
none      auto            2         2            1          0                 0          50.0%
none      all             2         2            1          0                 0          50.0%

8 decisions, 5 with an outcome reported; rollback_rate = rolled_back / deployed.
";
    assert_eq!(report.table(), expected_table);

    let json: Value = serde_json::from_str(&report.json()).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["n_decisions"], 8);
    assert_eq!(json["n_with_outcome"], 5);
    assert_eq!(json["n_unreadable"], 0);
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 20);
    assert_eq!(
        rows[4],
        json!({
            "category": "all", "band": "all", "decisions": 8, "deployed": 5,
            "rolled_back": 2, "incidents": 1, "holds_overridden": 2, "rollback_rate": 0.4
        })
    );
    assert_eq!(
        rows[6],
        json!({
            "category": "schema", "band": "block", "decisions": 1, "deployed": 0,
            "rolled_back": 0, "incidents": 0, "holds_overridden": 0, "rollback_rate": null
        })
    );
    assert_eq!(
        rows[16],
        json!({
            "category": "secrets", "band": "block", "decisions": 1, "deployed": 1,
            "rolled_back": 0, "incidents": 0, "holds_overridden": 1, "rollback_rate": 0.0
        })
    );

    redis.delete_all_keys().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_outcomes_match_the_published_outcome_schema() {
    let prefix = unique_prefix();
    let redis = redis(&prefix).await;
    seed(&redis).await;
    let path = format!(
        "{}/../../schemas/outcome.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let stored = redis.outcome_store().get("ev-schema-hold").await.unwrap();
    assert_eq!(
        stored.iter().map(|o| o.result).collect::<Vec<_>>(),
        [
            OutcomeResult::Deployed,
            OutcomeResult::RolledBack,
            OutcomeResult::Incident
        ]
    );
    for outcome in &stored {
        let instance = serde_json::to_value(outcome).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?} in {instance}");
    }
    // The four-field message an orchestrator may send is valid too.
    let minimal =
        json!({"event_id": "ev-1", "result": "incident", "note": "", "at": "2026-03-01T10:00:00Z"});
    assert!(validator.is_valid(&minimal));
    assert!(!validator.is_valid(
        &json!({"event_id": "ev-1", "result": "exploded", "at": "2026-03-01T10:00:00Z"})
    ));
    redis.delete_all_keys().await.unwrap();
}
