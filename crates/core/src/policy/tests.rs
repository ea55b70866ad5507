use super::*;
use crate::{Category, CommitInfo, Evidence, FileClass, FileStatus, Risk, Usage};

const DEFAULT_POLICY: &str = include_str!("../../../../config/policy.toml");

fn parse(text: &str) -> Policy {
    Policy::parse(text, "policy.toml").unwrap_or_else(|err| panic!("{err}"))
}

fn error(text: &str) -> PolicyError {
    Policy::parse(text, "config/policy.toml").unwrap_err()
}

fn file(path: &str) -> ChangedFile {
    ChangedFile {
        path: path.into(),
        old_path: None,
        status: FileStatus::Modified,
        additions: 1,
        deletions: 1,
        binary: false,
        class: crate::classify_path(path),
    }
}

fn context(repo: &str, paths: &[&str], diff: &str) -> DeployContext {
    DeployContext {
        repo: repo.into(),
        base: "a".repeat(40),
        head: "b".repeat(40),
        head_is_merge: false,
        root_commit: false,
        commits: vec![CommitInfo {
            sha: "b".repeat(40),
            author: "Dev".into(),
            message: "Change".into(),
            merge: false,
        }],
        n_commits: 1,
        files: paths.iter().map(|p| file(p)).collect(),
        lines_added: 1,
        lines_removed: 1,
        packed_diff: diff.into(),
        budget_chars: 12_000,
        est_tokens: 1,
        omitted: vec![],
        n_omitted: 0,
        dep_changes: vec![],
        secrets: vec![],
    }
}

fn risk(category: Category, severity: Severity, file: &str) -> Risk {
    Risk {
        category,
        severity,
        detail: format!("{category} {severity} in {file}"),
        evidence: vec![Evidence::file(file)],
    }
}

fn verdict(analyzer: &str, score: u8, risks: Vec<Risk>) -> Verdict {
    Verdict {
        analyzer: analyzer.into(),
        risk_score: score,
        recommendation: Bands::default().recommendation(score),
        summary: format!("{analyzer} says {score}"),
        risks,
        rollback_notes: vec![],
        latency_ms: 1,
        usage: Usage::default(),
    }
}

fn model(score: u8) -> ModelOutcome {
    ModelOutcome {
        analyzer: "anthropic/m".into(),
        result: Ok(verdict("anthropic/m", score, vec![])),
    }
}

/// The whole flow for one change: plan, (models), decide, apply.
fn run(
    policy: &Policy,
    context: &DeployContext,
    rules: Verdict,
    models: Vec<ModelOutcome>,
) -> Decision {
    let n_models = models.len().max(1);
    let plan = policy.plan(
        context,
        &rules,
        Bands::default(),
        &ConsensusPolicy::default(),
        n_models,
    );
    plan.decide("e", context, "2026-01-01T00:00:00Z", rules, models)
}

fn notes(decision: &Decision) -> String {
    decision.consensus.notes.join("\n")
}

#[test]
fn the_default_policy_file_parses_with_its_documented_rules() {
    let policy = Policy::parse(DEFAULT_POLICY, "config/policy.toml").unwrap();
    assert_eq!(policy.n_repo_rules(), 0);
    assert_eq!(policy.n_path_rules(), 2);
    assert_eq!(policy.bands(), None);
    assert_eq!(policy.version().len(), 16);
    assert!(policy.notify().is_empty());
}

#[test]
fn a_typo_in_a_key_names_the_file_the_line_and_the_key() {
    let err = error("skip_models_when_trivial = true\n\n# comment\nalwys_hold = [\"secrets\"]\n");
    let text = err.to_string();
    assert!(
        text.starts_with("config/policy.toml:4:1: unknown field `alwys_hold`"),
        "{text}"
    );
    assert_eq!(err.line(), 4);
    assert_eq!(err.key(), Some("alwys_hold"));

    let nested = error("[[path]]\nglob = \"docs/**\"\nmax_recomendation = \"deploy\"\n");
    assert!(
        nested
            .to_string()
            .starts_with("config/policy.toml:3:1: unknown field `max_recomendation`"),
        "{nested}"
    );
    assert_eq!(nested.key(), Some("path[0].max_recomendation"));
}

#[test]
fn a_bad_glob_is_refused_with_its_line_and_key() {
    let text = "[[path]]\nglob = \"docs/**\"\nskip_models = true\n\n[[path]]\nglob = \"db/[migrations/**\"\nmin_recommendation = \"hold\"\n";
    let err = error(text);
    let message = err.to_string();
    assert!(message.starts_with("config/policy.toml:6:8: "), "{message}");
    assert!(message.contains("`path[1].glob`"), "{message}");
    assert!(
        message.contains("invalid glob `db/[migrations/**`"),
        "{message}"
    );

    let repo = error("[[repo]]\nname = \"acme/{shop\"\nmin_recommendation = \"hold\"\n");
    assert_eq!(repo.key(), Some("repo[0].name"));
    assert_eq!(repo.line(), 2);

    let rooted = error("[[path]]\nglob = \"/docs/**\"\nskip_models = true\n");
    assert!(rooted.to_string().contains("leading `/`"), "{rooted}");
}

#[test]
fn out_of_range_or_unordered_thresholds_are_refused_at_the_offending_key() {
    let over = error("[bands]\nreview_from = 26\nhold_from = 51\nblock_from = 101\n");
    assert_eq!(over.line(), 4);
    assert_eq!(over.key(), Some("bands.block_from"));
    assert!(over.to_string().contains("out of range"), "{over}");

    let unordered = error("[bands]\nreview_from = 40\nhold_from = 30\nblock_from = 90\n");
    assert_eq!(unordered.line(), 3);
    assert!(
        unordered
            .to_string()
            .contains("`bands.hold_from`: bands out of order"),
        "{unordered}"
    );

    let huge = error("[bands]\nreview_from = 26\nhold_from = 300\nblock_from = 90\n");
    assert_eq!(huge.line(), 3);
    assert_eq!(huge.key(), Some("bands.hold_from"));

    let repo_bands = error(
        "[[repo]]\nname = \"acme/*\"\nbands = { review_from = 0, hold_from = 50, block_from = 80 }\n",
    );
    assert_eq!(repo_bands.key(), Some("repo[0].bands.review_from"));
    assert_eq!(repo_bands.line(), 3);
}

#[test]
fn rules_that_would_deploy_a_failed_analysis_or_do_nothing_are_refused() {
    let err = error("on_analysis_error = \"deploy\"\n");
    assert!(err.to_string().contains("never deploys"), "{err}");
    let idle = error("[[path]]\nglob = \"docs/**\"\n");
    assert!(idle.to_string().contains("does nothing"), "{idle}");
    let inverted = error(
        "[[path]]\nglob = \"x/**\"\nmin_recommendation = \"block\"\nmax_recommendation = \"hold\"\n",
    );
    assert_eq!(inverted.key(), Some("path[0].max_recommendation"));
    let category = error("always_hold = [\"secret\"]\n");
    assert!(
        category.to_string().contains("unknown variant `secret`"),
        "{category}"
    );
}

#[test]
fn the_version_ignores_layout_and_changes_with_meaning() {
    let a = parse("always_hold = [\"secrets\", \"schema\"]\n");
    let b = parse("# a comment\nskip_models_when_trivial = true\nalways_hold = [\"schema\", \"secrets\", \"schema\"]\n");
    assert_eq!(a.version(), b.version());
    let c = parse("always_hold = [\"secrets\"]\n");
    assert_ne!(a.version(), c.version());
    assert_ne!(
        Policy::default().version(),
        parse("skip_models_when_trivial = false\n").version()
    );
    assert_eq!(Policy::default().version(), parse("").version());
}

#[test]
fn explain_lists_the_rules_that_apply_to_a_path_in_order() {
    let policy = Policy::parse(DEFAULT_POLICY, "config/policy.toml").unwrap();
    let lines = policy.explain("acme/shop", "db/migrations/1.sql");
    let text = lines.join("\n");
    assert!(lines[0].contains(policy.version()), "{text}");
    assert!(text.contains("no [[repo]] rule matches"), "{text}");
    let line = DEFAULT_POLICY
        .lines()
        .position(|l| l == "glob = \"**/migrations/**\"")
        .unwrap()
        + 1;
    assert!(
        text.contains(&format!(
            "path[1] `**/migrations/**` (line {line}) matches: at least hold when any changed file matches"
        )),
        "{text}"
    );
    assert!(!text.contains("`docs/**`"), "{text}");
    assert!(text.contains("always_hold: [secrets]"), "{text}");

    let docs = policy.explain("acme/shop", "docs/guide.md").join("\n");
    assert!(docs.contains("path[0] `docs/**`"), "{docs}");
    assert!(
        docs.contains("at most deploy when every changed file matches"),
        "{docs}"
    );
}

#[test]
fn repository_rules_apply_in_order_over_the_top_level() {
    let policy = parse(
        r#"
always_hold = ["secrets"]

[[repo]]
name = "acme/*"
always_hold = ["secrets", "schema"]

[[repo]]
name = "acme/legacy-*"
bands = { review_from = 30, hold_from = 60, block_from = 85 }
min_recommendation = "hold"
"#,
    );
    let text = policy.explain("acme/legacy-billing", "src/a.rs").join("\n");
    assert!(text.contains("repo[0] `acme/*` (line 5) matches"), "{text}");
    assert!(
        text.contains("repo[1] `acme/legacy-*` (line 9) matches"),
        "{text}"
    );
    assert!(
        text.contains("review from 30, hold from 60, block from 85"),
        "{text}"
    );
    let other = policy.explain("other/app", "src/a.rs").join("\n");
    assert!(other.contains("no [[repo]] rule matches"), "{other}");
}

#[test]
fn a_docs_only_change_auto_deploys_even_when_the_model_says_hold() {
    let policy = parse("skip_models_when_trivial = false\n[[path]]\nglob = \"docs/**\"\nmax_recommendation = \"deploy\"\n");
    let ctx = context("acme/shop", &["docs/a.md", "docs/b/c.md"], "");
    let decision = run(&policy, &ctx, verdict("rules", 5, vec![]), vec![model(60)]);
    assert_eq!(decision.recommendation, Recommendation::Deploy);
    assert_eq!(
        decision.risk_score, 60,
        "the policy never changes the score"
    );
    assert!(
        notes(&decision).contains(
            "policy: path[0] `docs/**` caps at deploy: every changed file matches (was hold)"
        ),
        "{}",
        notes(&decision)
    );
    assert!(
        decision.summary.contains("caps at deploy"),
        "{}",
        decision.summary
    );

    // One file outside docs/: no cap.
    let mixed = context("acme/shop", &["docs/a.md", "src/app.rs"], "");
    let decision = run(
        &policy,
        &mixed,
        verdict("rules", 30, vec![]),
        vec![model(60)],
    );
    assert_eq!(decision.recommendation, Recommendation::Hold);
}

#[test]
fn a_secret_in_a_doc_still_blocks_whatever_the_cap() {
    let policy = parse("skip_models_when_trivial = false\n[[path]]\nglob = \"docs/**\"\nmax_recommendation = \"deploy\"\n");
    let ctx = context("acme/shop", &["docs/setup.md"], "");
    let rules = verdict(
        "rules",
        85,
        vec![risk(Category::Secrets, Severity::Critical, "docs/setup.md")],
    );
    let decision = run(&policy, &ctx, rules, vec![model(5)]);
    assert_eq!(decision.recommendation, Recommendation::Block);
    assert!(
        notes(&decision).contains(
            "would cap at deploy, but the rules analyzer's critical finding keeps at least block"
        ),
        "{}",
        notes(&decision)
    );
}

#[test]
fn a_failed_analysis_is_never_capped() {
    let policy = parse("skip_models_when_trivial = false\n[[path]]\nglob = \"docs/**\"\nmax_recommendation = \"deploy\"\n");
    let ctx = context("acme/shop", &["docs/a.md"], "");
    let failed = ModelOutcome {
        analyzer: "anthropic/m".into(),
        result: Err("timed out".into()),
    };
    let decision = run(&policy, &ctx, verdict("rules", 5, vec![]), vec![failed]);
    assert_eq!(decision.recommendation, Recommendation::Hold);
    assert!(
        notes(&decision).contains("the analysis did not complete"),
        "{}",
        notes(&decision)
    );
}

#[test]
fn any_migration_file_holds_at_least() {
    let policy = parse("[[path]]\nglob = \"**/migrations/**\"\nmin_recommendation = \"hold\"\nreason = \"a DBA looks first\"\n");
    let ctx = context("acme/shop", &["src/app.rs", "db/migrations/1.sql"], "");
    let decision = run(&policy, &ctx, verdict("rules", 20, vec![]), vec![model(10)]);
    assert_eq!(decision.recommendation, Recommendation::Hold);
    let text = notes(&decision);
    assert!(
        text.contains("policy: path[0] `**/migrations/**` requires at least hold (db/migrations/1.sql matches; was deploy) — a DBA looks first"),
        "{text}"
    );
    // Top-level directory too, and a block stays a block.
    let top = context("acme/shop", &["migrations/2.sql"], "");
    let blocked = run(&policy, &top, verdict("rules", 20, vec![]), vec![model(90)]);
    assert_eq!(blocked.recommendation, Recommendation::Block);
    assert!(!notes(&blocked).contains("policy:"), "{}", notes(&blocked));
}

#[test]
fn always_hold_categories_hold_whoever_reported_the_risk() {
    let policy =
        parse("always_hold = [\"schema\", \"secrets\"]\nskip_models_when_trivial = false\n");
    let ctx = context("acme/shop", &["src/models.py"], "");
    let mut outcome = model(20);
    if let Ok(v) = outcome.result.as_mut() {
        v.risks = vec![risk(Category::Schema, Severity::Low, "src/models.py")];
    }
    let decision = run(&policy, &ctx, verdict("rules", 20, vec![]), vec![outcome]);
    assert_eq!(decision.recommendation, Recommendation::Hold);
    assert!(
        notes(&decision)
            .contains("policy: always_hold schema: a low schema risk holds (was deploy)"),
        "{}",
        notes(&decision)
    );
    // A category not listed changes nothing.
    let mut deps = model(20);
    if let Ok(v) = deps.result.as_mut() {
        v.risks = vec![risk(Category::Deps, Severity::Low, "Cargo.toml")];
    }
    let decision = run(&policy, &ctx, verdict("rules", 20, vec![]), vec![deps]);
    assert_eq!(decision.recommendation, Recommendation::Deploy);
}

#[test]
fn a_repository_with_its_own_thresholds_is_banded_by_them() {
    let policy = parse(
        "skip_models_when_trivial = false\n[[repo]]\nname = \"acme/legacy-*\"\nbands = { review_from = 30, hold_from = 70, block_from = 90 }\n\n[[repo]]\nname = \"acme/payments\"\nbands = { review_from = 10, hold_from = 40, block_from = 60 }\n",
    );
    let ctx = context("acme/legacy-billing", &["src/app.rs"], "");
    // 60 holds under the default bands; this repository deploys it.
    let decision = run(&policy, &ctx, verdict("rules", 30, vec![]), vec![model(60)]);
    assert_eq!(decision.recommendation, Recommendation::Deploy);
    assert_eq!(decision.band, crate::Band::Review);
    assert!(
        notes(&decision).contains("repo[0] `acme/legacy-*` sets this repository's bands"),
        "{}",
        notes(&decision)
    );
    assert_eq!(decision.verdicts[1].recommendation, Recommendation::Deploy);

    let strict = context("acme/payments", &["src/app.rs"], "");
    let decision = run(
        &policy,
        &strict,
        verdict("rules", 30, vec![]),
        vec![model(45)],
    );
    assert_eq!(decision.recommendation, Recommendation::Hold);

    // Looser bands never lower a high rules finding below hold.
    let migration = context("acme/legacy-billing", &["db/schema.sql"], "");
    let rules = verdict(
        "rules",
        55,
        vec![risk(Category::Schema, Severity::High, "db/schema.sql")],
    );
    let decision = run(&policy, &migration, rules, vec![model(55)]);
    assert_eq!(decision.recommendation, Recommendation::Hold);

    let elsewhere = context("other/app", &["src/app.rs"], "");
    let decision = run(
        &policy,
        &elsewhere,
        verdict("rules", 30, vec![]),
        vec![model(60)],
    );
    assert_eq!(decision.recommendation, Recommendation::Hold);
}

#[test]
fn a_repository_minimum_and_on_analysis_error_apply_to_it_alone() {
    let policy = parse(
        "[[repo]]\nname = \"acme/payments\"\nmin_recommendation = \"hold\"\non_analysis_error = \"block\"\n",
    );
    let ctx = context("acme/payments", &["src/app.rs"], "");
    let decision = run(&policy, &ctx, verdict("rules", 30, vec![]), vec![model(10)]);
    assert_eq!(decision.recommendation, Recommendation::Hold);
    let failed = ModelOutcome {
        analyzer: "anthropic/m".into(),
        result: Err("down".into()),
    };
    let decision = run(
        &policy,
        &ctx,
        verdict("rules", 30, vec![]),
        vec![failed.clone()],
    );
    assert_eq!(decision.recommendation, Recommendation::Block);
    let other = context("acme/shop", &["src/app.rs"], "");
    let decision = run(&policy, &other, verdict("rules", 30, vec![]), vec![failed]);
    assert_eq!(decision.recommendation, Recommendation::Hold);
}

#[test]
fn a_docs_only_change_skips_the_models_and_says_so() {
    let policy = Policy::default();
    let ctx = context("acme/shop", &["README.md", "docs/a.md"], "");
    let rules = verdict("rules", 5, vec![]);
    let plan = policy.plan(
        &ctx,
        &rules,
        Bands::default(),
        &ConsensusPolicy::default(),
        2,
    );
    assert_eq!(
        plan.skip_models.map(|r| r.to_string()).as_deref(),
        Some("docs-only change")
    );
    let decision = plan.decide("e", &ctx, "2026-01-01T00:00:00Z", rules, vec![]);
    assert_eq!(decision.recommendation, Recommendation::Deploy);
    assert_eq!(decision.consensus.quorum, 0);
    assert_eq!(decision.consensus.n_model_verdicts, 0);
    assert!(decision.consensus.notes[0].starts_with("models skipped: docs-only change"));
    assert!(!notes(&decision).contains("no model configured"));

    let tests_only = context("acme/shop", &["tests/test_app.py"], "");
    let plan = policy.plan(
        &tests_only,
        &verdict("rules", 10, vec![]),
        Bands::default(),
        &ConsensusPolicy::default(),
        1,
    );
    assert_eq!(
        plan.skip_models.map(|r| r.to_string()).as_deref(),
        Some("tests-only change")
    );

    // Without models there is nothing to skip.
    let plan = policy.plan(
        &ctx,
        &verdict("rules", 5, vec![]),
        Bands::default(),
        &ConsensusPolicy::default(),
        0,
    );
    assert!(!plan.skips_models());
}

#[test]
fn models_are_asked_when_the_rules_are_not_certain_the_change_is_trivial() {
    let policy = Policy::default();
    let code = context("acme/shop", &["src/app.rs"], "");
    assert!(!policy
        .plan(
            &code,
            &verdict("rules", 30, vec![]),
            Bands::default(),
            &ConsensusPolicy::default(),
            1
        )
        .skips_models());
    // A docs change with a medium finding (or a secret) is not certain.
    let docs = context("acme/shop", &["docs/a.md"], "");
    let rules = verdict(
        "rules",
        30,
        vec![risk(Category::Config, Severity::Medium, "docs/a.md")],
    );
    assert!(!policy
        .plan(
            &docs,
            &rules,
            Bands::default(),
            &ConsensusPolicy::default(),
            1
        )
        .skips_models());
    let off = parse("skip_models_when_trivial = false\n");
    assert!(!off
        .plan(
            &docs,
            &verdict("rules", 5, vec![]),
            Bands::default(),
            &ConsensusPolicy::default(),
            1
        )
        .skips_models());
    // A path rule can force the models for its files.
    let forced = parse("[[path]]\nglob = \"docs/runbooks/**\"\nskip_models = false\n");
    let runbook = context("acme/shop", &["docs/runbooks/failover.md"], "");
    assert!(!forced
        .plan(
            &runbook,
            &verdict("rules", 5, vec![]),
            Bands::default(),
            &ConsensusPolicy::default(),
            1
        )
        .skips_models());
    // And another can declare its files trivial.
    let generated = parse(
        "skip_models_when_trivial = false\n[[path]]\nglob = \"gen/**\"\nskip_models = true\n",
    );
    let gen = context("acme/shop", &["gen/api.ts"], "");
    let plan = generated.plan(
        &gen,
        &verdict("rules", 15, vec![]),
        Bands::default(),
        &ConsensusPolicy::default(),
        1,
    );
    assert_eq!(
        plan.skip_models.map(|r| r.to_string()).as_deref(),
        Some("every changed file matches a skip_models path rule")
    );
}

#[test]
fn a_comment_only_code_change_skips_the_models_and_a_code_line_does_not() {
    let policy = Policy::default();
    let diff = "diff --git a/src/app.rs b/src/app.rs\n--- a/src/app.rs\n+++ b/src/app.rs\n@@ -1,2 +1,2 @@\n-// old words\n+// new words\n fn main() {}\n";
    let ctx = context("acme/shop", &["src/app.rs"], diff);
    let plan = policy.plan(
        &ctx,
        &verdict("rules", 28, vec![]),
        Bands::default(),
        &ConsensusPolicy::default(),
        1,
    );
    assert_eq!(
        plan.skip_models.map(|r| r.to_string()).as_deref(),
        Some("comment-only change")
    );

    let code = "diff --git a/src/app.rs b/src/app.rs\n--- a/src/app.rs\n+++ b/src/app.rs\n@@ -1,2 +1,2 @@\n-// old words\n+fn added() {}\n fn main() {}\n";
    let ctx = context("acme/shop", &["src/app.rs"], code);
    assert!(!policy
        .plan(
            &ctx,
            &verdict("rules", 28, vec![]),
            Bands::default(),
            &ConsensusPolicy::default(),
            1
        )
        .skips_models());

    // A diff that was cut cannot prove anything.
    let mut cut = context("acme/shop", &["src/app.rs"], diff);
    cut.n_omitted = 1;
    assert!(!policy
        .plan(
            &cut,
            &verdict("rules", 28, vec![]),
            Bands::default(),
            &ConsensusPolicy::default(),
            1
        )
        .skips_models());
}

#[test]
fn a_renamed_file_counts_by_both_its_paths() {
    let policy = parse("skip_models_when_trivial = false\n[[path]]\nglob = \"docs/**\"\nmax_recommendation = \"deploy\"\n\n[[path]]\nglob = \"**/migrations/**\"\nmin_recommendation = \"hold\"\n");
    let mut moved = file("docs/old-migration.sql");
    moved.old_path = Some("db/migrations/3.sql".into());
    moved.status = FileStatus::Renamed;
    let mut ctx = context("acme/shop", &[], "");
    ctx.files = vec![moved];
    let decision = run(&policy, &ctx, verdict("rules", 20, vec![]), vec![model(60)]);
    assert_eq!(
        decision.recommendation,
        Recommendation::Hold,
        "{}",
        notes(&decision)
    );
    assert!(
        !notes(&decision).contains("caps at deploy"),
        "{}",
        notes(&decision)
    );
    assert_eq!(file("docs/x.md").class, FileClass::Docs);
}

#[test]
fn notify_thresholds_pick_the_channels_per_recommendation() {
    let policy = parse("[notify]\ndeploys = \"hold\"\naudit = \"deploy\"\n");
    assert_eq!(
        policy.notify_channels(Recommendation::Deploy),
        Some(vec!["audit".to_string()])
    );
    assert_eq!(
        policy.notify_channels(Recommendation::Block),
        Some(vec!["audit".to_string(), "deploys".to_string()])
    );
    assert_eq!(
        Policy::default().notify_channels(Recommendation::Block),
        None
    );
    let empty = error("[notify]\n\" \" = \"hold\"\n");
    assert_eq!(empty.line(), 2);
}
