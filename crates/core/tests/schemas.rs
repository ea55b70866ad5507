//! The JSON Schemas under `schemas/` describe what this build really serializes.

use gate_core::{
    Bands, Category, ChangedFile, CommitInfo, Decision, DepChange, DeployContext, Evidence,
    FileClass, FileStatus, MergeEvent, Omission, Recommendation, Risk, SecretFinding, SecretKind,
    Severity, Usage, Verdict, EVENT_SCHEMA_VERSION,
};
use serde_json::Value;

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/../../schemas/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {path}: {err}"));
    let schema: Value =
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{path} is not JSON: {err}"));
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|err| panic!("{path} is not a valid schema: {err}"))
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "schema violations: {errors:#?}\ninstance: {instance:#}"
    );
}

fn sample_context() -> DeployContext {
    DeployContext {
        repo: "acme/shop".into(),
        base: "1111111111111111111111111111111111111111".into(),
        head: "2222222222222222222222222222222222222222".into(),
        head_is_merge: true,
        root_commit: false,
        commits: vec![CommitInfo {
            sha: "2222222222222222222222222222222222222222".into(),
            author: "Ada".into(),
            message: "Merge pull request #7: drop legacy column".into(),
            merge: true,
        }],
        n_commits: 1,
        files: vec![
            ChangedFile {
                path: "db/migrate/20260101_drop_legacy.rb".into(),
                old_path: None,
                status: FileStatus::Added,
                additions: 5,
                deletions: 0,
                binary: false,
                class: FileClass::Migration,
            },
            ChangedFile {
                path: "app/models/user.rb".into(),
                old_path: Some("app/models/account.rb".into()),
                status: FileStatus::Renamed,
                additions: 1,
                deletions: 1,
                binary: false,
                class: FileClass::Code,
            },
        ],
        lines_added: 6,
        lines_removed: 1,
        packed_diff: "diff --git a/db/migrate/20260101_drop_legacy.rb b/db/migrate/20260101_drop_legacy.rb\n+remove_column :users, :legacy\n".into(),
        budget_chars: 12_000,
        est_tokens: 20,
        omitted: vec![Omission { path: "Gemfile.lock".into(), reason: "lockfile (summarized)".into() }],
        n_omitted: 1,
        dep_changes: vec![DepChange { file: "Gemfile.lock".into(), package: "rails".into(), old: Some("7.1.0".into()), new: Some("7.2.0".into()) }],
        secrets: vec![SecretFinding { kind: SecretKind::AwsAccessKey, file: "config/aws.yml".into(), line: Some(3) }],
    }
}

fn sample_decision() -> Decision {
    let verdict = Verdict {
        analyzer: "rules".into(),
        risk_score: 85,
        recommendation: Recommendation::Block,
        summary: "Destructive migration removes users.legacy.".into(),
        risks: vec![Risk {
            category: Category::Schema,
            severity: Severity::Critical,
            detail: "remove_column drops data".into(),
            evidence: vec![Evidence::line(
                "db/migrate/20260101_drop_legacy.rb",
                3,
                "remove_column :users, :legacy",
            )],
        }],
        rollback_notes: vec!["bin/rails db:rollback STEP=1 (IRREVERSIBLE: data dropped)".into()],
        latency_ms: 4,
        usage: Usage::default(),
    };
    Decision::from_single_verdict(
        "evt-1",
        &sample_context(),
        verdict,
        &Bands::default(),
        "2026-11-26T10:00:00Z".into(),
    )
}

#[test]
fn a_serialized_decision_satisfies_the_decision_schema() {
    let value = serde_json::to_value(sample_decision()).unwrap();
    assert_valid(&schema("decision.schema.json"), &value);
}

#[test]
fn a_serialized_merge_event_satisfies_the_merge_event_schema() {
    let event = MergeEvent {
        schema_version: EVENT_SCHEMA_VERSION,
        event_id: "gh-delivery-123".into(),
        repo: "acme/shop".into(),
        base: "1111111111111111111111111111111111111111".into(),
        head: "2222222222222222222222222222222222222222".into(),
        git_ref: Some("refs/heads/main".into()),
        produced_at: "2026-11-26T10:00:00Z".into(),
        source: "cli".into(),
        context: sample_context(),
    };
    let value = serde_json::to_value(&event).unwrap();
    assert_valid(&schema("merge-event.schema.json"), &value);
    let back = MergeEvent::from_json(&serde_json::to_vec(&event).unwrap()).unwrap();
    assert_eq!(back, event);
}

#[test]
fn the_decision_schema_rejects_what_the_contract_forbids() {
    let validator = schema("decision.schema.json");
    let good = serde_json::to_value(sample_decision()).unwrap();
    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "score above 100",
            Box::new(|v| v["risk_score"] = 101.into()),
        ),
        (
            "unknown recommendation",
            Box::new(|v| v["recommendation"] = "ship".into()),
        ),
        (
            "unknown category",
            Box::new(|v| v["risks"][0]["category"] = "network".into()),
        ),
        (
            "missing event id",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("event_id");
            }),
        ),
        (
            "bad timestamp",
            Box::new(|v| v["decided_at"] = "yesterday".into()),
        ),
        ("extra field", Box::new(|v| v["surprise"] = true.into())),
    ];
    for (what, mutate) in mutations {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert!(
            !validator.is_valid(&bad),
            "schema accepted a decision with {what}"
        );
    }
}

#[test]
fn merge_events_of_unknown_versions_or_shapes_are_refused_with_the_reason() {
    let mut value = serde_json::to_value(MergeEvent {
        schema_version: EVENT_SCHEMA_VERSION,
        event_id: "e".into(),
        repo: "r".into(),
        base: "b".into(),
        head: "h".into(),
        git_ref: None,
        produced_at: "2026-11-26T10:00:00Z".into(),
        source: "cli".into(),
        context: sample_context(),
    })
    .unwrap();
    value["schema_version"] = 99.into();
    let err = MergeEvent::from_json(&serde_json::to_vec(&value).unwrap()).unwrap_err();
    assert!(err.to_string().contains("schema_version 99"), "{err}");

    let err = MergeEvent::from_json(b"{not json").unwrap_err();
    assert!(
        err.to_string().starts_with("malformed merge event"),
        "{err}"
    );

    value["schema_version"] = 1.into();
    value["event_id"] = "  ".into();
    let err = MergeEvent::from_json(&serde_json::to_vec(&value).unwrap()).unwrap_err();
    assert!(err.to_string().contains("event_id"), "{err}");
}
