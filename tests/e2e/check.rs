//! `deploy-gate check` on real temporary repositories: each kind of change lands in
//! the band users expect, with its reasons, and bad input fails with one line.

use gate_testkit::TestRepo;

use crate::harness::{categories, check_json, run, score};

/// A repository with a small application, so later commits are ordinary changes.
fn app_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("README.md", "# shop\n\nA small shop.\n");
    repo.write(
        "src/cart.py",
        "def total(items):\n    return sum(item.price for item in items)\n",
    );
    repo.write(
        "tests/test_cart.py",
        "from src.cart import total\n\ndef test_total():\n    assert total([]) == 0\n",
    );
    repo.write("requirements.txt", "flask==2.3.2\nrequests==2.31.0\n");
    repo.commit("initial shop");
    repo
}

#[test]
fn docs_only_change_deploys_automatically() {
    let repo = app_repo();
    repo.write(
        "README.md",
        "# shop\n\nA small shop.\n\n## Running\n\n`flask run`\n",
    );
    repo.write(
        "docs/architecture.md",
        "# Architecture\n\nWe drop nothing here; this is prose about DROP TABLE.\n",
    );
    repo.commit("docs: explain how to run the shop");
    let (run, decision) = check_json(repo.path());
    assert_eq!(run.code, 0);
    assert!(score(&decision) <= 25, "{decision:#}");
    assert_eq!(decision["recommendation"], "deploy");
    assert_eq!(decision["band"], "auto");
}

#[test]
fn tests_only_change_deploys_automatically() {
    let repo = app_repo();
    repo.write(
        "tests/test_cart.py",
        "from src.cart import total\n\ndef test_total():\n    assert total([]) == 0\n\ndef test_total_two():\n    assert total([]) == 0\n",
    );
    repo.commit("test: more cart coverage");
    let (_, decision) = check_json(repo.path());
    assert!(score(&decision) <= 25, "{decision:#}");
    assert_eq!(decision["recommendation"], "deploy");
}

#[test]
fn feature_change_deploys_with_standard_review() {
    let repo = app_repo();
    repo.write(
        "src/cart.py",
        "def total(items, discount=0):\n    gross = sum(item.price for item in items)\n    return gross - discount\n\n\ndef count(items):\n    return len(items)\n",
    );
    repo.write("src/checkout.py", "from src.cart import total\n\n\ndef checkout(items):\n    return {\"total\": total(items)}\n");
    repo.commit("feat: discounts at checkout");
    let (run, decision) = check_json(repo.path());
    let score = score(&decision);
    assert!(
        (26..=50).contains(&score),
        "feature scored {score}: {decision:#}"
    );
    assert_eq!(decision["band"], "review");
    assert_eq!(run.code, 0);
}

#[test]
fn dependency_bump_with_lockfile_is_a_deps_risk_with_versions() {
    let repo = TestRepo::new();
    repo.write("package.json", "{\n  \"name\": \"web\",\n  \"dependencies\": {\n    \"express\": \"^4.18.2\",\n    \"lodash\": \"^4.17.21\"\n  }\n}\n");
    repo.write(
        "package-lock.json",
        "{\n  \"name\": \"web\",\n  \"lockfileVersion\": 3,\n  \"packages\": {\n    \"node_modules/express\": {\n      \"version\": \"4.18.2\"\n    },\n    \"node_modules/lodash\": {\n      \"version\": \"4.17.21\"\n    }\n  }\n}\n",
    );
    repo.write("index.js", "const express = require('express');\n");
    repo.commit("initial");
    repo.write("package.json", "{\n  \"name\": \"web\",\n  \"dependencies\": {\n    \"express\": \"^5.1.0\",\n    \"lodash\": \"^4.17.21\"\n  }\n}\n");
    repo.write(
        "package-lock.json",
        "{\n  \"name\": \"web\",\n  \"lockfileVersion\": 3,\n  \"packages\": {\n    \"node_modules/express\": {\n      \"version\": \"5.1.0\"\n    },\n    \"node_modules/lodash\": {\n      \"version\": \"4.17.21\"\n    }\n  }\n}\n",
    );
    repo.commit("deps: express 5");
    let (_, decision) = check_json(repo.path());
    assert!(
        categories(&decision).contains(&"deps".to_string()),
        "{decision:#}"
    );
    assert!(score(&decision) >= 26, "{decision:#}");
    let text = run(repo.path(), &["check"]);
    assert!(text.stdout.contains("express"), "{}", text.stdout);
}

#[test]
fn additive_migration_is_held_as_a_schema_risk() {
    let repo = app_repo();
    repo.write(
        "migrations/versions/20260101_add_orders.py",
        "from alembic import op\nimport sqlalchemy as sa\n\nrevision = 'a1'\ndown_revision = None\n\n\ndef upgrade():\n    op.create_table('orders', sa.Column('id', sa.Integer, primary_key=True))\n    op.add_column('users', sa.Column('nickname', sa.String(50), nullable=True))\n\n\ndef downgrade():\n    op.drop_column('users', 'nickname')\n    op.drop_table('orders')\n",
    );
    repo.commit("db: orders table");
    let (run, decision) = check_json(repo.path());
    assert!(
        categories(&decision).contains(&"schema".to_string()),
        "{decision:#}"
    );
    assert_eq!(decision["recommendation"], "hold", "{decision:#}");
    assert_eq!(run.code, 0, "hold proceeds unless --fail-on hold");
    let strict = crate::harness::run(repo.path(), &["check", "--fail-on", "hold"]);
    assert_eq!(strict.code, 4, "{}", strict.all_output());
    assert!(strict.stdout.contains("HOLD"), "{}", strict.stdout);
}

#[test]
fn destructive_migration_blocks_with_file_and_line() {
    let repo = app_repo();
    repo.write(
        "db/migrations/V7__drop_legacy_email.sql",
        "-- legacy email moved to contacts\nALTER TABLE users DROP COLUMN email;\nDROP TABLE legacy_sessions;\n",
    );
    repo.commit("db: drop legacy email");
    let (run, decision) = check_json(repo.path());
    assert_eq!(run.code, 1, "block exits 1");
    assert_eq!(decision["recommendation"], "block");
    assert!(score(&decision) >= 76);
    let schema_risk = decision["risks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["category"] == "schema" && r["severity"] == "critical")
        .unwrap_or_else(|| panic!("no critical schema risk: {decision:#}"));
    let evidence = &schema_risk["evidence"][0];
    assert_eq!(evidence["file"], "db/migrations/V7__drop_legacy_email.sql");
    assert!(evidence["line"].as_u64().unwrap() >= 2, "{evidence}");
    let text = crate::harness::run(repo.path(), &["check"]);
    assert_eq!(text.code, 1);
    assert!(
        text.stdout.contains("[CRIT]") && text.stdout.contains("V7__drop_legacy_email.sql:"),
        "{}",
        text.stdout
    );
}

#[test]
fn auth_change_is_held() {
    let repo = TestRepo::new();
    repo.write("app/controllers/application_controller.rb", "class ApplicationController < ActionController::Base\n  before_action :authenticate_user!\nend\n");
    repo.write(
        "app/lib/session_store.rb",
        "module SessionStore\n  TTL = 3600\nend\n",
    );
    repo.commit("initial");
    repo.write(
        "app/lib/session_store.rb",
        "module SessionStore\n  TTL = 86400 * 30\n  SAME_SITE = :none\nend\n",
    );
    repo.commit("sessions last a month");
    let (_, decision) = check_json(repo.path());
    assert!(
        categories(&decision).contains(&"auth".to_string()),
        "{decision:#}"
    );
    assert_eq!(decision["recommendation"], "hold", "{decision:#}");
}

#[test]
fn env_and_config_change_is_a_config_risk() {
    let repo = app_repo();
    repo.write(
        ".env.production",
        "FEATURE_NEW_CHECKOUT=true\nCACHE_TTL=30\n",
    );
    repo.write("config/settings.yml", "checkout:\n  retries: 5\n");
    repo.commit("config: enable new checkout");
    let (_, decision) = check_json(repo.path());
    assert!(
        categories(&decision).contains(&"config".to_string()),
        "{decision:#}"
    );
    assert!(score(&decision) >= 26, "{decision:#}");
}

#[test]
fn dockerfile_terraform_and_workflow_changes_are_infra_risks() {
    let repo = app_repo();
    repo.write(
        "Dockerfile",
        "FROM python:3.12-slim\nCOPY . /app\nCMD [\"gunicorn\", \"app:app\"]\n",
    );
    repo.write(
        "infra/main.tf",
        "resource \"aws_s3_bucket\" \"assets\" {\n  bucket = \"shop-assets\"\n}\n",
    );
    repo.write(".github/workflows/deploy.yml", "on: push\njobs:\n  deploy:\n    runs-on: ubuntu-latest\n    steps:\n      - run: ./deploy.sh\n");
    repo.commit("infra: container, bucket, deploy workflow");
    let (_, decision) = check_json(repo.path());
    let infra: Vec<String> = decision["risks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["category"] == "infra")
        .flat_map(|r| {
            r["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["file"].as_str().unwrap().to_string())
        })
        .collect();
    for file in [
        "Dockerfile",
        "infra/main.tf",
        ".github/workflows/deploy.yml",
    ] {
        assert!(
            infra.iter().any(|f| f == file),
            "{file} not named as infra evidence: {decision:#}"
        );
    }
}

/// An AWS key id of the documented shape; obviously fake, and assembled at run time so
/// that this file does not itself carry a key for the gate to find.
fn fake_aws_key() -> String {
    ["AKIA", "Z7QWERTY", "2FAKE7QX"].concat()
}

#[test]
fn leaked_aws_key_blocks_and_its_text_appears_in_no_output_format() {
    let fake_key = fake_aws_key();
    let repo = app_repo();
    repo.write(
        "config/aws.py",
        &format!("AWS_ACCESS_KEY_ID = \"{fake_key}\"\nREGION = \"eu-west-1\"\n"),
    );
    repo.commit(&format!("add aws config ({fake_key})"));
    let summary = tempfile::NamedTempFile::new().unwrap();
    let mut outputs = Vec::new();
    for args in [
        vec!["check"],
        vec!["check", "--json"],
        vec!["check", "--format", "github"],
        vec!["check", "--format", "text"],
    ] {
        let output = crate::harness::gate(repo.path())
            .args(&args)
            .env("GITHUB_STEP_SUMMARY", summary.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?} must block");
        outputs.push(String::from_utf8_lossy(&output.stdout).into_owned());
        outputs.push(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    outputs.push(std::fs::read_to_string(summary.path()).unwrap());
    for output in &outputs {
        assert!(!output.contains(&fake_key), "the key leaked:\n{output}");
        assert!(
            !output.contains("2FAKE7QX"),
            "part of the key leaked:\n{output}"
        );
    }
    let (_, decision) = check_json(repo.path());
    let secret = decision["risks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["category"] == "secrets")
        .expect("secrets risk");
    assert_eq!(secret["severity"], "critical");
    let places: Vec<String> = secret["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}:{}", e["file"].as_str().unwrap(), e["line"]))
        .collect();
    assert!(
        places.contains(&"config/aws.py:1".to_string()),
        "{places:?}"
    );
    assert!(
        places.iter().any(|p| p.starts_with("<commit message>")),
        "the commit message leak is reported too: {places:?}"
    );
}

#[test]
fn merge_commit_is_diffed_against_its_first_parent_and_reverted_with_m1() {
    let repo = app_repo();
    repo.branch("feature");
    repo.write("docs/feature.md", "# Feature\n");
    repo.write("src/feature.py", "def feature():\n    return 1\n");
    repo.commit("feature work");
    repo.checkout("main");
    repo.write("CHANGELOG.md", "# Changes\n");
    repo.commit("changelog on main");
    let merge = repo.merge_no_ff("feature", "Merge branch 'feature'");
    let (_, decision) = check_json(repo.path());
    assert_eq!(decision["head"], merge.as_str());
    assert_eq!(
        decision["context"]["n_files"], 2,
        "only the merged branch's files: {decision:#}"
    );
    let revert = decision["rollback_notes"][0].as_str().unwrap();
    assert!(revert.starts_with("git revert -m 1 "), "{revert}");
}

#[test]
fn root_commit_is_analysed_against_the_empty_tree() {
    let repo = TestRepo::new();
    repo.write("README.md", "# new project\n");
    repo.write("src/main.go", "package main\n\nfunc main() {}\n");
    repo.commit("first commit");
    let (_, decision) = check_json(repo.path());
    assert_eq!(decision["context"]["n_files"], 2);
    assert_eq!(decision["context"]["n_commits"], 1);
}

#[test]
fn renamed_file_is_reported_once_under_its_new_name() {
    let repo = app_repo();
    repo.rename("src/cart.py", "src/basket.py");
    repo.commit("rename cart to basket");
    let (_, decision) = check_json(repo.path());
    assert_eq!(decision["context"]["n_files"], 1, "{decision:#}");
    let text = run(repo.path(), &["check"]);
    assert_eq!(text.code, 0, "{}", text.all_output());
}

#[test]
fn binary_file_is_listed_not_dumped() {
    let repo = app_repo();
    let png: Vec<u8> = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]
        .iter()
        .copied()
        .chain((0..2048u32).map(|i| (i % 251) as u8))
        .collect();
    repo.write_bytes("static/logo.png", &png);
    repo.commit("new logo");
    let (_, decision) = check_json(repo.path());
    let omitted = decision["context"]["omitted"].as_array().unwrap();
    assert!(
        omitted
            .iter()
            .any(|o| o["path"] == "static/logo.png"
                && o["reason"].as_str().unwrap().contains("binary")),
        "{decision:#}"
    );
    assert!(score(&decision) <= 50, "{decision:#}");
}

#[test]
fn five_thousand_file_commit_is_analysed_within_the_budget() {
    let repo = app_repo();
    repo.write_many(5_000, |idx| {
        (
            format!("src/gen/module_{idx:04}.py"),
            format!("def f_{idx}():\n    return {idx}\n"),
        )
    });
    repo.commit("5,000 modules");
    let (_, decision) = check_json(repo.path());
    assert_eq!(decision["context"]["n_files"], 5_000);
    assert!(
        decision["context"]["packed_chars"].as_u64().unwrap() <= 12_000 + 2_000,
        "{}",
        decision["context"]
    );
    assert!(decision["context"]["n_omitted"].as_u64().unwrap() > 0);
    let text = run(repo.path(), &["check"]);
    assert!(text.stdout.contains("truncated"), "{}", text.stdout);
}

#[test]
fn a_depth_two_shallow_clone_works_like_ci_checks_out() {
    let repo = app_repo();
    for idx in 0..3 {
        repo.write(
            "src/cart.py",
            &format!("def total(items):\n    return sum(i.price for i in items) + {idx}\n"),
        );
        repo.commit(&format!("tweak {idx}"));
    }
    let clone = repo.shallow_clone(2);
    let (_, decision) = check_json(clone.path());
    assert_eq!(decision["context"]["n_files"], 1);
}

#[test]
fn explicit_base_and_head_cover_several_commits() {
    let repo = app_repo();
    let base = repo.head();
    repo.write("docs/a.md", "a\n");
    repo.commit("a");
    repo.write("docs/b.md", "b\n");
    let head = repo.commit("b");
    let out = run(
        repo.path(),
        &["check", "--json", "--base", &base, "--head", &head],
    );
    let decision = out.decision();
    assert_eq!(decision["context"]["n_commits"], 2);
    assert_eq!(decision["context"]["n_files"], 2);
    assert!(
        decision["rollback_notes"][0]
            .as_str()
            .unwrap()
            .contains(".."),
        "{decision:#}"
    );
}

#[test]
fn github_format_emits_annotations_at_file_and_line() {
    let repo = app_repo();
    repo.write(
        "db/migrations/V9__truncate.sql",
        "TRUNCATE TABLE audit_log;\n",
    );
    repo.commit("db: clear audit log");
    let out = run(repo.path(), &["check", "--format", "github"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("::error file=db/migrations/V9__truncate.sql,line=1,")),
        "{}",
        out.stdout
    );
}

#[test]
fn step_summary_gets_a_markdown_report() {
    let repo = app_repo();
    repo.write("docs/x.md", "x\n");
    repo.commit("docs");
    let summary = tempfile::NamedTempFile::new().unwrap();
    let out = crate::harness::gate(repo.path())
        .args(["check"])
        .env("GITHUB_STEP_SUMMARY", summary.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let markdown = std::fs::read_to_string(summary.path()).unwrap();
    assert!(
        markdown.contains("### ") && markdown.contains("deploy-gate: DEPLOY"),
        "{markdown}"
    );
    assert!(markdown.contains("git revert"), "{markdown}");
}

#[test]
fn same_change_gives_the_same_verdict_twice() {
    let repo = app_repo();
    repo.write("db/migrate/20260101000000_add_index.rb", "class AddIndex < ActiveRecord::Migration[7.1]\n  def change\n    add_index :users, :email\n  end\nend\n");
    repo.commit("index");
    let (_, first) = check_json(repo.path());
    let (_, second) = check_json(repo.path());
    for key in [
        "risk_score",
        "recommendation",
        "risks",
        "summary",
        "rollback_notes",
    ] {
        assert_eq!(first[key], second[key], "{key} differs");
    }
}

#[test]
fn not_a_git_repository_is_a_usage_error_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["check"]);
    assert_eq!(out.code, 2, "{}", out.all_output());
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("not a git repository"),
        "{}",
        out.stderr
    );
    assert!(!out.all_output().contains("panicked"));
}

#[test]
fn unknown_revision_is_a_usage_error_naming_it() {
    let repo = app_repo();
    let out = run(repo.path(), &["check", "--base", "no-such-branch"]);
    assert_eq!(out.code, 2, "{}", out.all_output());
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("no-such-branch"), "{}", out.stderr);
}

#[test]
fn empty_range_is_a_usage_error() {
    let repo = app_repo();
    let out = run(repo.path(), &["check", "--base", "HEAD", "--head", "HEAD"]);
    assert_eq!(out.code, 2, "{}", out.all_output());
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn bad_flag_is_a_usage_error() {
    let repo = app_repo();
    let out = run(repo.path(), &["check", "--fail-on", "sometimes"]);
    assert_eq!(out.code, 2, "{}", out.all_output());
}
