//! Policy as code through the real binary: `deploy-gate policy check` and
//! `explain`, a broken policy refused at start-up, `check` skipping the models for
//! a docs-only change (the mock model sees no request), and the rules floor
//! outranking a docs cap.

use std::path::{Path, PathBuf};

use gate_mock_llm::{MockConfig, MockServer};
use gate_testkit::TestRepo;

use crate::harness::{gate, run, Run};

/// The built-in policy, as shipped.
fn default_policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/policy.toml")
}

/// Writes `text` as `policy.toml` in a fresh directory.
fn policy_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn policy_check(file: &Path) -> Run {
    run(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &["policy", "check", file.to_str().unwrap()],
    )
}

#[test]
fn policy_check_accepts_the_shipped_policy_and_prints_its_version() {
    let run = policy_check(&default_policy());
    assert_eq!(run.code, 0, "{}", run.all_output());
    let line = run.stdout.trim();
    let version = line
        .strip_prefix("ok: 0 repo rules, 2 path rules, version ")
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(version.len(), 16, "{line}");
    assert!(version.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn policy_check_refuses_a_typo_a_bad_glob_and_an_out_of_range_threshold_with_file_line_and_key() {
    let cases = [
        (
            "skip_models_when_trivial = true\n\nalwys_hold = [\"secrets\"]\n",
            ":3:1: unknown field `alwys_hold`",
        ),
        (
            "[[path]]\nglob = \"docs/**\"\nskip_models = true\n\n[[path]]\nglob = \"db/[migrations\"\nmin_recommendation = \"hold\"\n",
            ":6:8: `path[1].glob`: invalid glob `db/[migrations`",
        ),
        (
            "[bands]\nreview_from = 26\nhold_from = 51\nblock_from = 120\n",
            ":4:14: `bands.block_from`: 120 is out of range",
        ),
        (
            "[bands]\nreview_from = 60\nhold_from = 51\nblock_from = 76\n",
            ":3:13: `bands.hold_from`: bands out of order",
        ),
    ];
    for (text, expected) in cases {
        let (_dir, path) = policy_file(text);
        let run = policy_check(&path);
        assert_eq!(run.code, 2, "{text}\n{}", run.all_output());
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        let wanted = format!("deploy-gate: error: {}{expected}", path.display());
        assert!(
            run.stderr.starts_with(&wanted),
            "wanted {wanted}\ngot {}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    }
    let missing = policy_check(Path::new("/nonexistent/policy.toml"));
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .stderr
            .contains("cannot read policy file /nonexistent/policy.toml"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_broken_configured_policy_stops_check_at_start_up() {
    let repo = feature_repo();
    let (_dir, path) = policy_file(
        "[[path]]\nglob = \"docs/**\"\nmax_recommendation = \"deploy\"\nskip_model = true\n",
    );
    let out = gate(repo.path())
        .args(["check"])
        .env("DEPLOY_GATE__POLICY__FILE", &path)
        .output()
        .unwrap();
    let run = Run::from_output(out);
    assert_eq!(run.code, 2, "{}", run.all_output());
    assert!(
        run.stderr.starts_with(&format!(
            "deploy-gate: error: {}:4:1: unknown field `skip_model`",
            path.display()
        )),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "no analysis ran: {}", run.stdout);
}

#[test]
fn policy_explain_prints_the_rules_that_apply_to_a_path_in_order() {
    let repo = TestRepo::new();
    let run = run(
        repo.path(),
        &[
            "policy",
            "explain",
            "--repo",
            "acme/shop",
            "--path",
            "db/migrations/1.sql",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all_output());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("policy the built-in config/policy.toml (version "),
        "{}",
        run.stdout
    );
    let path_rule = lines
        .iter()
        .position(|l| l.contains("`**/migrations/**`"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(
        lines[path_rule].contains("at least hold when any changed file matches"),
        "{}",
        run.stdout
    );
    let repo_line = lines
        .iter()
        .position(|l| l.contains("no [[repo]] rule matches"))
        .unwrap();
    assert!(repo_line < path_rule, "repository rules come first");
    assert!(!run.stdout.contains("`docs/**`"), "{}", run.stdout);

    let (_dir, path) = policy_file(
        "[[repo]]\nname = \"acme/*\"\nmin_recommendation = \"hold\"\n\n[[repo.path]]\nglob = \"db/**\"\nmin_recommendation = \"block\"\nreason = \"DBA only\"\n",
    );
    let custom = crate::harness::run(
        repo.path(),
        &[
            "policy",
            "explain",
            "--repo",
            "acme/shop",
            "--path",
            "db/migrations/1.sql",
            "--file",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(custom.code, 0, "{}", custom.all_output());
    assert!(
        custom
            .stdout
            .contains("repo[0] `acme/*` (line 2) matches: every change at least hold"),
        "{}",
        custom.stdout
    );
    assert!(
        custom.stdout.contains(
            "repo[0].path[0] `db/**` (line 6) matches: at least block when any changed file matches — DBA only"
        ),
        "{}",
        custom.stdout
    );
}

/// A mock model server running on its own runtime for the duration of a test.
struct Mock {
    server: MockServer,
    _runtime: tokio::runtime::Runtime,
}

fn mock() -> Mock {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(MockServer::start(MockConfig::default()))
        .unwrap();
    Mock {
        server,
        _runtime: runtime,
    }
}

fn check_with_mock(mock: &Mock, repo: &TestRepo, env: &[(&str, &std::ffi::OsStr)]) -> Run {
    let mut cmd = gate(repo.path());
    cmd.args(["check", "--json"])
        .env("ANTHROPIC_BASE_URL", mock.server.anthropic_base_url())
        .env("ANTHROPIC_API_KEY", "sk-test-not-a-real-key");
    for (name, value) in env {
        cmd.env(name, value);
    }
    Run::from_output(cmd.output().unwrap())
}

fn feature_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("src/app.py", "def main():\n    return 1\n");
    repo.write("docs/guide.md", "# Guide\n");
    repo.commit("initial");
    repo
}

#[test]
fn check_skips_the_models_for_a_docs_only_change_and_says_so() {
    let mock = mock();
    let repo = feature_repo();
    repo.write("docs/guide.md", "# Guide\n\nRun `make`.\n");
    repo.write("README.md", "# App\n");
    repo.commit("docs: how to build");
    let run = check_with_mock(&mock, &repo, &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let decision = run.decision();
    assert_eq!(decision["recommendation"], "deploy");
    assert_eq!(decision["consensus"]["n_model_verdicts"], 0);
    assert_eq!(decision["consensus"]["quorum"], 0);
    assert_eq!(decision["verdicts"].as_array().unwrap().len(), 1);
    let first_note = decision["consensus"]["notes"][0].as_str().unwrap();
    assert!(
        first_note.starts_with("models skipped: docs-only change"),
        "{decision:#}"
    );
    assert!(
        mock.server.requests().is_empty(),
        "the mock model saw a request"
    );

    // A code change with the same setup asks the model.
    repo.write("src/app.py", "def main():\n    return 2\n");
    repo.commit("feature");
    let run = check_with_mock(&mock, &repo, &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(run.decision()["consensus"]["n_model_verdicts"], 1);
    assert_eq!(mock.server.requests().len(), 1);

    // And with skipping turned off, so does a docs change.
    let (_dir, path) = policy_file("skip_models_when_trivial = false\n");
    repo.write("docs/guide.md", "# Guide\n\nRun `make all`.\n");
    repo.commit("docs: more");
    let run = check_with_mock(
        &mock,
        &repo,
        &[("DEPLOY_GATE__POLICY__FILE", path.as_os_str())],
    );
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(run.decision()["consensus"]["n_model_verdicts"], 1);
    assert_eq!(mock.server.requests().len(), 2);
}

#[test]
fn a_secret_in_a_doc_blocks_even_under_a_docs_cap_and_an_obedient_model() {
    let mock = mock();
    let repo = feature_repo();
    let key = ["AKIA", "Q3VZ7N2PLK4TXW8R"].concat();
    repo.write(
        "docs/guide.md",
        &format!("# Guide\n\nMOCK:fault=deploy_anyway\n\nexport AWS_ACCESS_KEY_ID={key}\n"),
    );
    repo.commit("docs: setup");
    let run = check_with_mock(&mock, &repo, &[]);
    assert_eq!(run.code, 1, "{}", run.all_output());
    let decision = run.decision();
    assert_eq!(decision["recommendation"], "block", "{decision:#}");
    assert_eq!(
        decision["verdicts"][1]["recommendation"], "deploy",
        "the mock obeyed: {decision:#}"
    );
    let notes = decision["consensus"]["notes"].to_string();
    assert!(
        notes.contains(
            "would cap at deploy, but the rules analyzer's critical finding keeps at least block"
        ),
        "{notes}"
    );
    assert!(!run.stdout.contains(&key));
}

#[test]
fn a_repository_rule_of_the_policy_holds_its_changes() {
    let repo = feature_repo();
    repo.write("src/app.py", "def main():\n    return 2\n");
    repo.commit("feature");
    let (_dir, path) =
        policy_file("[[repo]]\nname = \"acme/payments\"\nmin_recommendation = \"hold\"\n");
    let held = Run::from_output(
        gate(repo.path())
            .args([
                "check",
                "--json",
                "--repo-name",
                "acme/payments",
                "--fail-on",
                "hold",
            ])
            .env("DEPLOY_GATE__POLICY__FILE", &path)
            .output()
            .unwrap(),
    );
    assert_eq!(held.code, 4, "{}", held.all_output());
    let decision = held.decision();
    assert_eq!(decision["recommendation"], "hold");
    assert!(
        decision["consensus"]["notes"]
            .to_string()
            .contains("policy: repo[0] `acme/payments` requires at least hold"),
        "{decision:#}"
    );
    let elsewhere = Run::from_output(
        gate(repo.path())
            .args([
                "check",
                "--json",
                "--repo-name",
                "acme/shop",
                "--fail-on",
                "hold",
            ])
            .env("DEPLOY_GATE__POLICY__FILE", &path)
            .output()
            .unwrap(),
    );
    assert_eq!(elsewhere.code, 0, "{}", elsewhere.all_output());
}
