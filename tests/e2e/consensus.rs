//! Consensus of two models that disagree, through the real `check` binary: one mock
//! server answers as Anthropic, another as an OpenAI-compatible API, each scripted
//! to its own score (`MockConfig::verdict_score`) or fault. Each consensus setting
//! (`mode`, `quorum`, `max_spread`, `score_rule`, `on_analysis_error`) is shown doing
//! what the config says, the rules floor holding against both models, and a
//! provider failing in the middle of a run.
//!
//! The binary has one provider of each kind, so a third model (the only way
//! `majority` differs from `unanimous`, and `median` from `max`) is shown with the
//! library the binary and the worker use: three Anthropic providers against three
//! mocks, `gate_models::ask_all`, then the policy plan's `decide`.
//!
//! Last, incident calibration's mechanism: postmortems' key facts reach the model
//! in the cached system prompt.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gate_core::{ConsensusMode, ConsensusPolicy, Policy, Recommendation, ScoreRule};
use gate_mock_llm::{Fault, MockConfig, MockServer};
use gate_models::{
    Analyzer, AnthropicProvider, AnthropicSettings, ApiKey, PriceTable, PromptSettings,
    ProviderSetup,
};
use gate_testkit::TestRepo;
use serde_json::Value;

use crate::harness::{gate, Run};

const ANTHROPIC: &str = "anthropic/claude-sonnet-4-6";
const OPENAI: &str = "openai/gpt-4.1-mini";

/// Two mock providers on their own runtime for the duration of a test.
struct Pair {
    anthropic: MockServer,
    openai: MockServer,
    _runtime: tokio::runtime::Runtime,
    config_dir: tempfile::TempDir,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Two providers whose verdicts score `anthropic_score` and `openai_score`,
/// whatever the change says.
fn pair(anthropic_score: u64, openai_score: u64) -> Pair {
    let runtime = runtime();
    let start = |score| {
        runtime
            .block_on(MockServer::start(MockConfig {
                verdict_score: Some(score),
                ..MockConfig::default()
            }))
            .unwrap()
    };
    let (anthropic, openai) = (start(anthropic_score), start(openai_score));
    Pair {
        anthropic,
        openai,
        _runtime: runtime,
        config_dir: tempfile::tempdir().unwrap(),
    }
}

/// Both providers enabled, fast retries, and `extra` (a `[consensus]` table…).
fn config(extra: &str) -> String {
    format!(
        r#"
[models]
enabled = ["anthropic", "openai"]

[models.anthropic.retry]
max_attempts = 2
initial_backoff_ms = 10

[models.openai.retry]
max_attempts = 2
initial_backoff_ms = 10

{extra}
"#
    )
}

impl Pair {
    /// `check --json --config <config>` on the repository's last commit, with both
    /// providers' keys and endpoints.
    fn check(&self, repo: &TestRepo, config: &str) -> Run {
        self.check_with(repo, config, &[])
    }

    fn check_with(&self, repo: &TestRepo, config: &str, args: &[&str]) -> Run {
        let path = self.write_config(config);
        let mut cmd = gate(repo.path());
        cmd.args(["check", "--json", "--config"])
            .arg(&path)
            .args(args)
            .env("ANTHROPIC_BASE_URL", self.anthropic.anthropic_base_url())
            .env("ANTHROPIC_API_KEY", "sk-test-anthropic")
            .env("OPENAI_BASE_URL", self.openai.openai_base_url())
            .env("OPENAI_API_KEY", "sk-test-openai");
        Run::from_output(cmd.output().unwrap())
    }

    fn write_config(&self, text: &str) -> PathBuf {
        let n_files = std::fs::read_dir(self.config_dir.path()).unwrap().count();
        let path = self.config_dir.path().join(format!("gate-{n_files}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A code change the rules analyzer finds nothing notable in: the models decide.
fn feature_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("src/pricing.py", "def price(cents):\n    return cents\n");
    repo.commit("initial");
    repo.write(
        "src/pricing.py",
        "def price(cents):\n    return round(cents * 1.0)\n\n\ndef label(cents):\n    return f\"{cents / 100:.2f}\"\n",
    );
    repo.commit("pricing: a label for prices");
    repo
}

/// A migration that drops a table: a critical rules finding.
fn destructive_migration_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("README.md", "shop\n");
    repo.commit("initial");
    repo.write(
        "db/migrations/V7__drop_legacy_customers.sql",
        "-- the legacy table is no longer read\nDROP TABLE legacy_customers;\n",
    );
    repo.commit("drop the legacy customers table");
    repo
}

fn decision_of(run: &Run) -> Value {
    run.decision()
}

fn notes(decision: &Value) -> String {
    decision["consensus"]["notes"].to_string()
}

/// The model verdicts of a decision, by analyzer.
fn model_verdict<'a>(decision: &'a Value, analyzer: &str) -> &'a Value {
    decision["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["analyzer"] == analyzer)
        .unwrap_or_else(|| panic!("no verdict of {analyzer}: {decision:#}"))
}

#[test]
fn two_models_that_agree_deploy_in_every_mode_and_each_verdict_is_kept_with_its_cost() {
    let pair = pair(10, 20);
    let repo = feature_repo();
    for mode in ["unanimous", "majority", "strictest"] {
        let run = pair.check(&repo, &config(&format!("[consensus]\nmode = \"{mode}\"")));
        assert_eq!(run.code, 0, "{mode}: {}", run.all_output());
        let decision = decision_of(&run);
        assert_eq!(decision["recommendation"], "deploy", "{mode}: {decision:#}");
        assert_eq!(decision["consensus"]["mode"], mode);
        assert_eq!(decision["consensus"]["agreed"], true);
        assert_eq!(decision["consensus"]["n_model_verdicts"], 2);
        assert_eq!(decision["risk_score"], 20, "max of 10 and 20");
        for (analyzer, score) in [(ANTHROPIC, 10), (OPENAI, 20)] {
            let verdict = model_verdict(&decision, analyzer);
            assert_eq!(verdict["risk_score"], score, "{verdict:#}");
            assert!(verdict["latency_ms"].as_u64().is_some(), "{verdict:#}");
            assert!(verdict["usage"]["input_tokens"].as_u64().unwrap() > 0);
            assert!(verdict["usage"]["cost_usd"].as_f64().unwrap() > 0.0);
        }
    }
    assert_eq!(pair.anthropic.requests().len(), 3, "one call per check");
    assert_eq!(pair.openai.requests().len(), 3, "one call per check");
}

#[test]
fn the_mode_decides_between_one_model_holding_and_the_other_blocking() {
    // Hold at 60 against block at 90; the mean (75) is in the hold band and the
    // spread (30) is allowed, so only the mode separates them.
    let pair = pair(60, 90);
    let repo = feature_repo();
    let expect = [
        ("unanimous", "hold", 0),
        ("majority", "hold", 0),
        ("strictest", "block", 1),
    ];
    for (mode, recommendation, code) in expect {
        let run = pair.check(
            &repo,
            &config(&format!(
                "[consensus]\nmode = \"{mode}\"\nscore_rule = \"mean\""
            )),
        );
        assert_eq!(run.code, code, "{mode}: {}", run.all_output());
        let decision = decision_of(&run);
        assert_eq!(
            decision["recommendation"], recommendation,
            "{mode}: {decision:#}"
        );
        assert_eq!(decision["risk_score"], 75, "mean of 60 and 90");
        assert_eq!(decision["consensus"]["agreed"], false);
        if recommendation == "hold" {
            assert!(run.stderr.contains("on hold"), "{}", run.stderr);
        }
    }
    // The same hold fails the pipeline when asked to.
    let run = pair.check_with(
        &repo,
        &config("[consensus]\nmode = \"unanimous\"\nscore_rule = \"mean\""),
        &["--fail-on", "hold"],
    );
    assert_eq!(run.code, 4, "{}", run.all_output());
}

#[test]
fn one_model_holding_against_one_deploying_holds_in_every_mode_even_when_the_score_would_deploy() {
    // Deploy at 20 against hold at 60: the mean (40) is in the review band, which
    // deploys; every mode with two models holds, because no recommendation has
    // more than half the votes and the strictest is hold.
    let pair = pair(20, 60);
    let repo = feature_repo();
    for mode in ["unanimous", "majority", "strictest"] {
        let run = pair.check(
            &repo,
            &config(&format!(
                "[consensus]\nmode = \"{mode}\"\nscore_rule = \"mean\"\nmax_spread = 100"
            )),
        );
        let decision = decision_of(&run);
        assert_eq!(decision["risk_score"], 40, "{decision:#}");
        assert_eq!(decision["band"], "review", "{decision:#}");
        assert_eq!(decision["recommendation"], "hold", "{mode}: {decision:#}");
        assert_eq!(run.code, 0, "hold proceeds with a warning by default");
    }
}

#[test]
fn the_score_rule_takes_the_max_the_median_or_the_mean_of_the_model_scores() {
    let pair = pair(20, 70);
    let repo = feature_repo();
    // With two models the median is the higher middle, as documented.
    for (rule, score, band) in [
        ("max", 70, "hold"),
        ("median", 70, "hold"),
        ("mean", 45, "review"),
    ] {
        let run = pair.check(
            &repo,
            &config(&format!(
                "[consensus]\nmode = \"strictest\"\nscore_rule = \"{rule}\"\nmax_spread = 100"
            )),
        );
        let decision = decision_of(&run);
        assert_eq!(decision["risk_score"], score, "{rule}: {decision:#}");
        assert_eq!(decision["band"], band, "{rule}: {decision:#}");
        assert_eq!(
            decision["recommendation"], "hold",
            "strictest of deploy and hold"
        );
    }
}

#[test]
fn scores_further_apart_than_max_spread_hold_with_both_views_in_the_notes() {
    // Both say deploy, at 5 and 50: 45 apart.
    let pair = pair(5, 50);
    let repo = feature_repo();

    let run = pair.check(&repo, &config("[consensus]\nmax_spread = 40"));
    assert_eq!(run.code, 0, "{}", run.all_output());
    let decision = decision_of(&run);
    assert_eq!(decision["recommendation"], "hold", "{decision:#}");
    assert_eq!(decision["consensus"]["agreed"], false);
    let said = notes(&decision);
    assert!(said.contains("models disagree (scores 5–50)"), "{said}");
    assert!(
        said.contains(&format!("{ANTHROPIC} says deploy (5)")),
        "{said}"
    );
    assert!(
        said.contains(&format!("{OPENAI} says deploy (50)")),
        "{said}"
    );
    assert!(
        decision["summary"]
            .as_str()
            .unwrap()
            .contains("models disagree"),
        "{decision:#}"
    );

    // A spread the config allows: the two deploys stand.
    let run = pair.check(&repo, &config("[consensus]\nmax_spread = 50"));
    let decision = decision_of(&run);
    assert_eq!(decision["recommendation"], "deploy", "{decision:#}");
    assert_eq!(decision["consensus"]["agreed"], true);
    assert!(!notes(&decision).contains("disagree"));
}

#[test]
fn deploy_against_block_holds_whatever_the_mode_spread_and_score_rule_allow() {
    // Deploy at 5 against block at 80: the mean (43) would deploy, majority has no
    // majority, and the spread is allowed; two steps apart still holds.
    let pair = pair(5, 80);
    let repo = feature_repo();
    for mode in ["unanimous", "majority"] {
        let run = pair.check(
            &repo,
            &config(&format!(
                "[consensus]\nmode = \"{mode}\"\nscore_rule = \"mean\"\nmax_spread = 100"
            )),
        );
        assert_eq!(run.code, 0, "{}", run.all_output());
        let decision = decision_of(&run);
        assert_eq!(decision["risk_score"], 43, "{decision:#}");
        assert_eq!(decision["recommendation"], "hold", "{mode}: {decision:#}");
        let said = notes(&decision);
        assert!(
            said.contains(&format!("{ANTHROPIC} says deploy (5)")),
            "{said}"
        );
        assert!(
            said.contains(&format!("{OPENAI} says block (80)")),
            "{said}"
        );
    }
    // Strictest goes further than the rule's minimum: block.
    let run = pair.check(
        &repo,
        &config("[consensus]\nmode = \"strictest\"\nscore_rule = \"mean\"\nmax_spread = 100"),
    );
    assert_eq!(run.code, 1, "{}", run.all_output());
    assert_eq!(decision_of(&run)["recommendation"], "block");
}

#[test]
fn a_destructive_migration_blocks_whatever_both_models_and_the_consensus_say() {
    let pair = pair(0, 5);
    let repo = destructive_migration_repo();
    for mode in ["unanimous", "majority", "strictest"] {
        for rule in ["max", "median", "mean"] {
            let run = pair.check(
                &repo,
                &config(&format!(
                    "[consensus]\nmode = \"{mode}\"\nscore_rule = \"{rule}\""
                )),
            );
            assert_eq!(run.code, 1, "{mode}/{rule}: {}", run.all_output());
            let decision = decision_of(&run);
            assert_eq!(decision["recommendation"], "block", "{decision:#}");
            assert!(decision["risk_score"].as_u64().unwrap() >= 76);
            assert_eq!(decision["consensus"]["floor_applied"], true);
            assert_eq!(decision["consensus"]["agreed"], true, "both said deploy");
            assert_eq!(
                model_verdict(&decision, ANTHROPIC)["recommendation"],
                "deploy"
            );
            assert_eq!(model_verdict(&decision, OPENAI)["recommendation"], "deploy");
            assert!(
                notes(&decision).contains("the rules analyzer's findings set the floor"),
                "{decision:#}"
            );
        }
    }
}

#[test]
fn a_quorum_of_two_with_one_provider_down_holds_and_exits_3_and_a_quorum_of_one_decides() {
    let pair = pair(10, 20);
    let repo = feature_repo();

    pair.openai.push_fault(Fault::ServerError, 2);
    let run = pair.check(&repo, &config("[consensus]\nquorum = 2"));
    assert_eq!(run.code, 3, "{}", run.all_output());
    let decision = decision_of(&run);
    assert_eq!(decision["recommendation"], "hold", "{decision:#}");
    assert_eq!(decision["consensus"]["quorum"], 2);
    assert_eq!(decision["consensus"]["n_model_verdicts"], 1);
    let said = notes(&decision);
    assert!(
        said.contains(&format!("{OPENAI} gave no verdict")),
        "{said}"
    );
    assert!(
        said.contains("only 1 of the required 2 model verdicts arrived: hold by policy"),
        "{said}"
    );
    assert!(
        run.stderr.contains("no complete decision"),
        "{}",
        run.stderr
    );

    // One verdict is enough when the config says so: the Anthropic deploy stands.
    pair.openai.push_fault(Fault::ServerError, 2);
    let run = pair.check(&repo, &config("[consensus]\nquorum = 1"));
    assert_eq!(run.code, 0, "{}", run.all_output());
    let decision = decision_of(&run);
    assert_eq!(decision["recommendation"], "deploy", "{decision:#}");
    assert_eq!(decision["consensus"]["n_model_verdicts"], 1);
    assert!(notes(&decision).contains(&format!("{OPENAI} gave no verdict")));
    assert_eq!(pair.openai.requests().len(), 4, "two attempts per check");
}

#[test]
fn a_provider_hanging_in_the_middle_of_a_run_gives_the_configured_on_analysis_error() {
    let pair = pair(10, 20);
    let repo = feature_repo();
    // Anthropic answers; the OpenAI-compatible provider accepts the request and
    // never answers, past a short request timeout, on both attempts.
    let hang = "[models.openai.http]\nrequest_timeout_ms = 300\n";
    for (on_error, recommendation, code) in [("hold", "hold", 3), ("block", "block", 1)] {
        pair.openai.push_fault(Fault::Hang, 2);
        let started = Instant::now();
        let run = pair.check(
            &repo,
            &config(&format!(
                "{hang}\n[consensus]\non_analysis_error = \"{on_error}\""
            )),
        );
        let elapsed = started.elapsed();
        assert_eq!(run.code, code, "{on_error}: {}", run.all_output());
        let decision = decision_of(&run);
        assert_eq!(decision["recommendation"], recommendation, "{decision:#}");
        assert_eq!(
            model_verdict(&decision, ANTHROPIC)["recommendation"],
            "deploy"
        );
        assert_eq!(decision["consensus"]["n_model_verdicts"], 1);
        let said = notes(&decision);
        assert!(
            said.contains(&format!("{OPENAI} gave no verdict")),
            "{said}"
        );
        assert!(
            said.contains(&format!(
                "required 2 model verdicts arrived: {on_error} by policy"
            )),
            "{said}"
        );
        assert!(
            elapsed < Duration::from_secs(20),
            "the timeout bounds the run: {elapsed:?}"
        );
    }
    let hung = pair
        .openai
        .requests()
        .iter()
        .filter(|r| r.status == 0)
        .count();
    assert_eq!(hung, 4, "two attempts per run, each left hanging");
}

/// Three Anthropic providers, each against its own mock scripted to `scores`.
struct Trio {
    providers: Vec<Box<dyn Analyzer>>,
    _mocks: Vec<MockServer>,
    runtime: tokio::runtime::Runtime,
}

fn trio(scores: [u64; 3]) -> Trio {
    let runtime = runtime();
    let setup = ProviderSetup::new(
        gate_core::Bands::default(),
        &PromptSettings::default(),
        PriceTable::default(),
    )
    .unwrap();
    let mut mocks = Vec::new();
    let mut providers: Vec<Box<dyn Analyzer>> = Vec::new();
    for (idx, score) in scores.into_iter().enumerate() {
        let mock = runtime
            .block_on(MockServer::start(MockConfig {
                verdict_score: Some(score),
                ..MockConfig::default()
            }))
            .unwrap();
        // Three model ids, so the three verdicts are told apart.
        let model = ["claude-sonnet-4-6", "claude-sonnet-4-5", "claude-haiku-4-5"][idx];
        let settings = AnthropicSettings {
            model: model.to_string(),
            base_url: Some(mock.anthropic_base_url()),
            api_key: Some(ApiKey::new("sk-test-trio")),
            ..AnthropicSettings::default()
        };
        let provider = {
            let _guard = runtime.enter();
            AnthropicProvider::new(&settings, &setup).unwrap()
        };
        providers.push(Box::new(provider));
        mocks.push(mock);
    }
    Trio {
        providers,
        _mocks: mocks,
        runtime,
    }
}

impl Trio {
    /// What `check` does after the git and rules steps, for the repository's last
    /// commit: plan with the built-in policy, ask the three, decide.
    fn decide(&self, repo: &Path, consensus: &ConsensusPolicy) -> gate_core::Decision {
        let redactor = gate_core::Redactor::new();
        let bands = gate_core::Bands::default();
        let mut rules = gate_rules::RulesAnalyzer::new(bands);
        let context = gate_git::build_context(
            repo,
            &gate_git::Range::default(),
            &gate_git::ContextOptions::default(),
            &redactor,
            &mut rules,
        )
        .unwrap();
        let verdict = rules.finish(&context);
        let policy = Policy::default();
        let plan = policy.plan(&context, &verdict, bands, consensus, self.providers.len());
        assert!(!plan.skips_models());
        let outcomes =
            self.runtime
                .block_on(gate_models::ask_all(&self.providers, &context, &verdict));
        plan.decide(
            "consensus-trio",
            &context,
            "2026-11-26T00:00:00Z",
            verdict,
            outcomes,
        )
    }
}

#[test]
fn with_three_models_majority_deploys_where_unanimous_holds_and_median_differs_from_max() {
    // Deploy at 10 and 20, hold at 55.
    let trio = trio([10, 20, 55]);
    let repo = feature_repo();
    let consensus = |mode, score_rule| ConsensusPolicy {
        mode,
        score_rule,
        max_spread: 60,
        ..ConsensusPolicy::default()
    };
    let expect = [
        (
            ConsensusMode::Majority,
            ScoreRule::Median,
            Recommendation::Deploy,
            20,
        ),
        (
            ConsensusMode::Unanimous,
            ScoreRule::Median,
            Recommendation::Hold,
            20,
        ),
        (
            ConsensusMode::Strictest,
            ScoreRule::Median,
            Recommendation::Hold,
            20,
        ),
        (
            ConsensusMode::Majority,
            ScoreRule::Mean,
            Recommendation::Deploy,
            29,
        ),
        // The max (55) is in the hold band: the score holds whatever the mode says.
        (
            ConsensusMode::Majority,
            ScoreRule::Max,
            Recommendation::Hold,
            55,
        ),
    ];
    for (mode, rule, recommendation, score) in expect {
        let decision = trio.decide(repo.path(), &consensus(mode, rule));
        assert_eq!(
            (decision.recommendation, decision.risk_score),
            (recommendation, score),
            "{mode:?}/{rule:?}: {:#?}",
            decision.consensus
        );
        assert_eq!(decision.consensus.n_model_verdicts, 3);
        assert_eq!(decision.verdicts.len(), 4, "rules and three models");
    }
}

/// Postmortems as an operator keeps them: one whose pattern the change repeats.
fn incidents_dir(with_second: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("2024-03-12-orders-backfill.md"),
        "# 2024-03-12: Orders table locked by a backfill migration

## Summary

A backfill of `orders.currency` ran inside the deploy in one transaction and locked `orders` for 14 minutes.

## Timeline

- 09:02 deploy starts
- 09:04 TIMELINE-CHATTER checkout p99 alert fires

## Root cause

One unbatched UPDATE over 40M rows held a table lock.

## Action items

- Backfills run as batched jobs outside the deploy.
",
    )
    .unwrap();
    if with_second {
        std::fs::write(
            dir.path().join("2023-11-02-tls.md"),
            "---\ntitle: Expired TLS certificate on the payments gateway\ndate: 2023-11-02\n---\n\n## What went wrong\n\nThe renewal cron job was removed in a Helm chart cleanup.\n",
        )
        .unwrap();
    }
    dir
}

/// The text of the system blocks of a recorded Anthropic request, and whether the
/// last one carries the cache breakpoint.
fn system_of(request: &gate_mock_llm::RecordedRequest) -> (String, bool) {
    let blocks = request.body["system"].as_array().unwrap();
    let text = blocks
        .iter()
        .map(|b| b["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n\n");
    let cached = blocks.last().unwrap().get("cache_control").is_some();
    (text, cached)
}

#[test]
fn incident_key_facts_reach_the_model_in_the_cached_system_prompt_and_change_it_when_incidents_change(
) {
    let pair = pair(10, 20);
    let repo = TestRepo::new();
    repo.write("jobs/backfill.py", "def run():\n    pass\n");
    repo.commit("initial");
    repo.write(
        "jobs/backfill.py",
        "def run(db):\n    db.execute(\"UPDATE orders SET region = 'eu' WHERE region IS NULL\")\n",
    );
    repo.commit("backfill order regions");
    let one = incidents_dir(false);
    let two = incidents_dir(true);
    let config_for = |dir: &Path| {
        format!(
            "[models]\nenabled = [\"anthropic\"]\n\n[models.prompt]\nincidents_dir = {:?}\n",
            dir.display().to_string()
        )
    };

    let mut usages = Vec::new();
    for _ in 0..2 {
        let run = pair.check(&repo, &config_for(one.path()));
        assert_eq!(run.code, 0, "{}", run.all_output());
        usages.push(model_verdict(&decision_of(&run), ANTHROPIC)["usage"].clone());
    }
    let run = pair.check(&repo, &config_for(two.path()));
    let third = decision_of(&run);
    let requests = pair.anthropic.requests();
    assert_eq!(requests.len(), 3);

    let (system, cached) = system_of(&requests[0]);
    assert!(cached, "the incidents sit in the cached prefix");
    assert!(
        system.contains("### Incident: 2024-03-12-orders-backfill.md"),
        "{system}"
    );
    assert!(system.contains("Title: 2024-03-12: Orders table locked by a backfill migration"));
    assert!(system.contains("Root cause:\n- One unbatched UPDATE over 40M rows held a table lock."));
    assert!(system.contains("Action items:\n- Backfills run as batched jobs outside the deploy."));
    assert!(
        !system.contains("TIMELINE-CHATTER"),
        "timelines are dropped"
    );
    assert!(system.contains(
        "When a change resembles one, say so in the risk detail and score it at least in the hold band."
    ));
    // The incidents are in the system prompt, not in the change's (uncached) part.
    let user = requests[0].body["messages"][0].to_string();
    assert!(!user.contains("Orders table locked"));

    // Same incidents: the same bytes, written to the cache by the first call and
    // read from it by the second.
    assert_eq!(system_of(&requests[1]).0, system);
    assert!(
        usages[0]["cache_creation_input_tokens"].as_u64().unwrap() > 0,
        "{usages:#?}"
    );
    assert!(
        usages[1]["cache_read_input_tokens"].as_u64().unwrap() > 0,
        "{usages:#?}"
    );
    // Another postmortem: a different static prompt (so a different verdict-cache
    // key in the fleet, which hashes it), written to the cache anew.
    let (changed, _) = system_of(&requests[2]);
    assert_ne!(changed, system);
    assert!(changed.contains("Title: Expired TLS certificate on the payments gateway"));
    let usage = &model_verdict(&third, ANTHROPIC)["usage"];
    assert!(
        usage["cache_creation_input_tokens"].as_u64().unwrap() > 0,
        "a changed prefix is written again: {usage:#}"
    );
}
