//! `check` with model providers: the mock model server on loopback stands in for the
//! Anthropic and OpenAI APIs.

use gate_mock_llm::{MockConfig, MockServer};
use gate_testkit::TestRepo;

use crate::harness::{gate, Run};

/// A mock server running on its own runtime for the duration of a test.
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

fn feature_repo(extra_line: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("src/app.py", "def main():\n    return 1\n");
    repo.commit("initial");
    repo.write(
        "src/app.py",
        &format!("def main():\n    return 2\n{extra_line}\n"),
    );
    repo.commit("feature");
    repo
}

fn check_with(mock: &Mock, repo: &TestRepo, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = gate(repo.path());
    cmd.args(["check"])
        .args(args)
        .env("ANTHROPIC_BASE_URL", mock.server.anthropic_base_url())
        .env("ANTHROPIC_API_KEY", "sk-test-not-a-real-key");
    for (name, value) in env {
        cmd.env(name, value);
    }
    Run::from_output(cmd.output().unwrap())
}

#[test]
fn with_a_key_check_asks_the_model_and_reports_tokens_and_cost() {
    let mock = mock();
    let repo = feature_repo("# plain change");
    let run = check_with(&mock, &repo, &["--json"], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let decision = run.decision();
    let verdicts = decision["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 2, "rules and one model: {decision:#}");
    assert_eq!(verdicts[0]["analyzer"], "rules");
    assert!(verdicts[1]["analyzer"]
        .as_str()
        .unwrap()
        .starts_with("anthropic/"));
    assert!(verdicts[1]["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(decision["cost_usd"].as_f64().unwrap() > 0.0, "{decision:#}");
    assert_eq!(decision["consensus"]["mode"], "unanimous");
    assert_eq!(mock.server.requests().len(), 1);

    let text = check_with(&mock, &repo, &[], &[]);
    assert!(
        text.stdout.contains("cache read") && text.stdout.contains('$'),
        "{}",
        text.stdout
    );
}

#[test]
fn without_a_key_check_says_in_one_line_that_it_is_rules_only() {
    let repo = feature_repo("# plain change");
    let out = gate(repo.path()).args(["check"]).output().unwrap();
    let run = Run::from_output(out);
    assert_eq!(run.code, 0);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("rules-only"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].contains("ANTHROPIC_API_KEY"), "{}", lines[0]);
}

#[test]
fn a_model_that_cannot_answer_gives_no_decision_and_a_hold_never_a_deploy() {
    let mock = mock();
    let repo = feature_repo("# MOCK:fault=unauthorized");
    let run = check_with(&mock, &repo, &["--json"], &[]);
    assert_eq!(run.code, 3, "{}", run.all_output());
    let decision = run.decision();
    assert_eq!(decision["recommendation"], "hold", "{decision:#}");
    let notes = decision["consensus"]["notes"].to_string();
    assert!(
        notes.contains("ANTHROPIC_API_KEY"),
        "a 401 names the variable holding the key: {notes}"
    );
}

#[test]
fn transient_model_failures_are_retried_to_a_verdict() {
    let mock = mock();
    mock.server.push_fault(gate_mock_llm::Fault::ServerError, 1);
    let repo = feature_repo("# plain change");
    let run = check_with(
        &mock,
        &repo,
        &["--json"],
        &[(
            "DEPLOY_GATE__MODELS__ANTHROPIC__RETRY__INITIAL_BACKOFF_MS",
            "10",
        )],
    );
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(run.decision()["consensus"]["n_model_verdicts"], 1);
    assert_eq!(mock.server.requests().len(), 2);
}

#[test]
fn a_model_saying_deploy_cannot_lower_a_destructive_migration() {
    let mock = mock();
    let repo = TestRepo::new();
    repo.write("README.md", "x\n");
    repo.commit("initial");
    repo.write(
        "migrations/V2__drop.sql",
        "-- MOCK:fault=deploy_anyway\nDROP TABLE customers;\n",
    );
    repo.commit("drop customers");
    let run = check_with(&mock, &repo, &["--json"], &[]);
    assert_eq!(run.code, 1, "{}", run.all_output());
    let decision = run.decision();
    assert_eq!(decision["recommendation"], "block");
    assert_eq!(
        decision["verdicts"][1]["recommendation"], "deploy",
        "the mock obeyed: {decision:#}"
    );
    assert_eq!(decision["consensus"]["floor_applied"], true);
}

#[test]
fn a_secret_in_the_diff_reaches_the_model_redacted() {
    let mock = mock();
    let key = ["AKIA", "Q3VZ7N2PLK4TXW8R"].concat();
    let repo = feature_repo(&format!("AWS_KEY = \"{key}\""));
    let run = check_with(&mock, &repo, &["--json"], &[]);
    assert_eq!(run.code, 1, "a leaked key blocks: {}", run.all_output());
    let requests = mock.server.requests();
    assert_eq!(requests.len(), 1);
    let sent = serde_json::to_string(&requests[0]).unwrap();
    assert!(!sent.contains(&key), "the key left the process");
    assert!(sent.contains("[REDACTED:aws_access_key]"), "{sent}");
}
