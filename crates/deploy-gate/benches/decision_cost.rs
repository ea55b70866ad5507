//! Benchmark (issue 5): what a decision costs, and how long a consensus takes.
//!
//! 1. **Cost.** A realistic mix of changes — 20 % docs, 15 % tests, 35 % features,
//!    15 % dependency bumps, 15 % migrations, each a real commit with its own
//!    content — goes through `deploy-gate check --json` with one Sonnet-class model
//!    (`claude-sonnet-4-6` at the built-in prices: $3 input, $3.75 cache write,
//!    $0.30 cache read, $15 output per million tokens) against the mock model
//!    server, whose token accounting emulates Anthropic's prompt caching (the first
//!    call writes the static prompt to the cache, later ones read it). Prints the
//!    average cost per decision (target ≤ $0.004; the seed's estimate was
//!    $0.01–0.02), the share of decisions that skipped the model, and the average
//!    tokens of a model call.
//! 2. **Latency.** Three models in consensus whose mocks answer after 1 s, 2 s and
//!    3 s, asked the way `check` and the worker ask them (`gate_models::ask_all`,
//!    then the policy plan's `decide`): the decision's latency against the slowest
//!    model's (target ≤ 1.1×). The binary has one provider of each kind, so this
//!    part uses three Anthropic providers through the library; `check` itself is
//!    timed with its two providers at 1 s and 2 s for reference.
//!
//! The mock's verdicts are shorter than a real model's (it writes no reasoning
//! and one risk at most), so its output tokens are a floor: the report also prints
//! how many output tokens a verdict may average within the target, and the cost
//! with verdicts of `DEPLOY_GATE_BENCH_REAL_OUTPUT_TOKENS` (default 300). The run
//! keeps the cache warm (changes come seconds apart); the cost when every call
//! finds it cold (merges further apart than the 5-minute TTL) is printed too.
//!
//! Run: `cargo bench -p deploy-gate --bench decision_cost`
//! Size: `DEPLOY_GATE_BENCH_CHANGES` (default 40), `DEPLOY_GATE_BENCH_ROUNDS` (default 5).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gate_core::{Bands, ConsensusPolicy, Policy};
use gate_mock_llm::{MockConfig, MockServer};
use gate_models::{
    Analyzer, AnthropicProvider, AnthropicSettings, ApiKey, PriceTable, PromptSettings,
    ProviderSetup,
};
use gate_testkit::TestRepo;
use serde_json::Value;

/// Target of the average cost of a decision, in USD.
const COST_TARGET_USD: f64 = 0.004;
/// Target of the consensus latency over the slowest model's.
const LATENCY_TARGET: f64 = 1.1;
/// Sonnet 4.6 per million tokens: input, cache write (5 min), cache read, output.
const PRICES: [f64; 4] = [3.0, 3.75, 0.30, 15.0];

/// The kinds of change in the mix, and how many of every 20.
const MIX: [(Kind, usize); 5] = [
    (Kind::Docs, 4),
    (Kind::Tests, 3),
    (Kind::Feature, 7),
    (Kind::DepBump, 3),
    (Kind::Migration, 3),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Docs,
    Tests,
    Feature,
    DepBump,
    Migration,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Docs => "docs",
            Kind::Tests => "tests",
            Kind::Feature => "features",
            Kind::DepBump => "dependency bumps",
            Kind::Migration => "migrations",
        }
    }
}

/// What one decision cost.
#[derive(Debug, Default, Clone)]
struct Cost {
    n_decisions: usize,
    n_skipped: usize,
    n_model_calls: usize,
    usd: f64,
    input: u64,
    cache_write: u64,
    cache_read: u64,
    output: u64,
}

impl Cost {
    fn add(&mut self, other: &Cost) {
        self.n_decisions += other.n_decisions;
        self.n_skipped += other.n_skipped;
        self.n_model_calls += other.n_model_calls;
        self.usd += other.usd;
        self.input += other.input;
        self.cache_write += other.cache_write;
        self.cache_read += other.cache_read;
        self.output += other.output;
    }

    fn per_decision(&self) -> f64 {
        self.usd / self.n_decisions.max(1) as f64
    }
}

fn main() {
    let n_changes: usize = env_or("DEPLOY_GATE_BENCH_CHANGES", 40);
    let n_rounds: usize = env_or("DEPLOY_GATE_BENCH_ROUNDS", 5);
    let real_output: u64 = env_or("DEPLOY_GATE_BENCH_REAL_OUTPUT_TOKENS", 300) as u64;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let config_dir = tempfile::tempdir().expect("temporary directory");

    cost(&runtime, config_dir.path(), n_changes, real_output);
    println!();
    latency(&runtime, n_rounds);
    println!();
    check_latency(&runtime, config_dir.path());
}

// ---------------------------------------------------------------------------------
// 1. Cost per decision
// ---------------------------------------------------------------------------------

fn cost(runtime: &tokio::runtime::Runtime, config_dir: &Path, n_changes: usize, real_output: u64) {
    let mock = runtime
        .block_on(MockServer::start(MockConfig::default()))
        .expect("mock model server");
    let config = write(
        config_dir,
        "cost.toml",
        "[models]\nenabled = [\"anthropic\"]\n\n[models.anthropic]\nmodel = \"claude-sonnet-4-6\"\n",
    );
    let repo = base_repo();
    let kinds = schedule(n_changes);
    println!(
        "decision_cost 1/2: {n_changes} changes through `deploy-gate check --json`, one model \
         (anthropic/claude-sonnet-4-6: ${}/${}/${}/${} per MTok input/cache write/cache read/output), \
         mock token accounting with prompt caching",
        PRICES[0], PRICES[1], PRICES[2], PRICES[3]
    );

    let mut by_kind: BTreeMap<Kind, Cost> = BTreeMap::new();
    let mut first_call: Option<Cost> = None;
    let mut recommendations: BTreeMap<String, usize> = BTreeMap::new();
    for (idx, kind) in kinds.iter().enumerate() {
        make_change(&repo, *kind, idx);
        let decision = check(repo.path(), &config, &mock, &[]);
        *recommendations
            .entry(
                decision["recommendation"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
            )
            .or_default() += 1;
        let cost = cost_of(&decision);
        if first_call.is_none() && cost.n_model_calls > 0 {
            first_call = Some(cost.clone());
        }
        by_kind.entry(*kind).or_default().add(&cost);
    }

    let mut total = Cost::default();
    println!(
        "{:<18} {:>9} {:>8} {:>14}",
        "kind", "decisions", "skipped", "avg cost (USD)"
    );
    for (kind, cost) in &by_kind {
        println!(
            "{:<18} {:>9} {:>8} {:>14.5}",
            kind.name(),
            cost.n_decisions,
            cost.n_skipped,
            cost.per_decision()
        );
        total.add(cost);
    }
    let calls = total.n_model_calls.max(1) as f64;
    let avg = |tokens: u64| tokens as f64 / calls;
    let per_decision = total.per_decision();
    println!(
        "recommendations: {}",
        recommendations
            .iter()
            .map(|(rec, n)| format!("{rec} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "model skipped (trivial change)              : {:>5.1} % of decisions ({} of {})",
        100.0 * total.n_skipped as f64 / total.n_decisions.max(1) as f64,
        total.n_skipped,
        total.n_decisions
    );
    println!(
        "avg tokens per model call ({} calls)        : input {:.0}, cache write {:.0}, cache read {:.0}, output {:.0}",
        total.n_model_calls,
        avg(total.input),
        avg(total.cache_write),
        avg(total.cache_read),
        avg(total.output)
    );
    let share =
        |tokens: u64, price: f64| tokens as f64 * price / 1e6 / total.usd.max(1e-12) * 100.0;
    println!(
        "where the money goes                        : input {:.0} %, cache write {:.0} %, cache read {:.0} %, output {:.0} %",
        share(total.input, PRICES[0]),
        share(total.cache_write, PRICES[1]),
        share(total.cache_read, PRICES[2]),
        share(total.output, PRICES[3])
    );
    if let Some(first) = &first_call {
        println!(
            "first (cold-cache) model call               : ${:.5} (writes {} tokens of static prompt)",
            first.usd, first.cache_write
        );
    }
    println!(
        "avg cost per model call                     : ${:.5}",
        total.usd / calls
    );
    println!(
        "avg cost per decision (target <= ${COST_TARGET_USD})    : ${per_decision:.5}  {}",
        verdict(per_decision <= COST_TARGET_USD)
    );
    let calls_per_decision = total.n_model_calls as f64 / total.n_decisions.max(1) as f64;
    let per_output_token = PRICES[3] / 1e6 * calls_per_decision;
    let break_even = (COST_TARGET_USD - per_decision) / per_output_token + avg(total.output);
    println!(
        "output tokens per verdict the target allows : {break_even:.0} on average (the mock writes {:.0})",
        avg(total.output)
    );
    // Merges further apart than the cache TTL find it cold: every call writes.
    let cold = per_decision
        + total.cache_read as f64 * (PRICES[1] - PRICES[2]) / 1e6 / total.n_decisions.max(1) as f64;
    println!(
        "same, with the cache cold on every call     : ${cold:.5}  {} (merges > 5 min apart with cache_ttl = \"5m\")",
        verdict(cold <= COST_TARGET_USD)
    );
    let extra_output = (real_output as f64 - avg(total.output)).max(0.0);
    let with_real_output = per_decision + extra_output * per_output_token;
    println!(
        "{:<44}: ${with_real_output:.5}  {}",
        format!("same, with {real_output}-token verdicts"),
        verdict(with_real_output <= COST_TARGET_USD)
    );
    println!("the seed's estimate                         : $0.01–0.02 per decision");
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "MISS"
    }
}

/// `n` kinds in the mix's proportions, interleaved the same way on every run.
fn schedule(n: usize) -> Vec<Kind> {
    let block: Vec<Kind> = MIX
        .iter()
        .flat_map(|(kind, count)| std::iter::repeat_n(*kind, *count))
        .collect();
    let mut kinds: Vec<Kind> = block.iter().copied().cycle().take(n).collect();
    // A fixed shuffle (LCG), so docs and migrations do not come in runs.
    let mut seed: u64 = 0x5eed;
    for idx in (1..kinds.len()).rev() {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let other = (seed >> 33) as usize % (idx + 1);
        kinds.swap(idx, other);
    }
    kinds
}

/// What a decision cost, from its JSON.
fn cost_of(decision: &Value) -> Cost {
    let models: Vec<&Value> = decision["verdicts"]
        .as_array()
        .map(|v| v.iter().filter(|v| v["analyzer"] != "rules").collect())
        .unwrap_or_default();
    let skipped = decision["consensus"]["notes"]
        .as_array()
        .is_some_and(|notes| {
            notes
                .iter()
                .any(|n| n.as_str().is_some_and(|n| n.starts_with("models skipped")))
        });
    let tokens = |key: &str| -> u64 {
        models
            .iter()
            .map(|v| v["usage"][key].as_u64().unwrap_or(0))
            .sum()
    };
    Cost {
        n_decisions: 1,
        n_skipped: usize::from(skipped),
        n_model_calls: models.len(),
        usd: decision["cost_usd"].as_f64().unwrap_or(f64::NAN),
        input: tokens("input_tokens"),
        cache_write: tokens("cache_creation_input_tokens"),
        cache_read: tokens("cache_read_input_tokens"),
        output: tokens("output_tokens"),
    }
}

/// A small service: Python app, TypeScript front end, tests, docs, manifests and
/// migrations, as the changes of the mix expect to find them.
fn base_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        "README.md",
        "# shop\n\nThe shop service: orders, payments, catalogue.\n",
    );
    repo.write(
        "docs/operations.md",
        "# Operations\n\nDeploys go out from main.\n",
    );
    repo.write("src/shop/orders.py", &python_module("orders", 0, 12));
    repo.write("src/shop/catalogue.py", &python_module("catalogue", 0, 10));
    repo.write("web/src/cart.ts", &ts_module("cart", 0, 8));
    repo.write("tests/test_orders.py", &python_tests("orders", 0, 3));
    repo.write("requirements.txt", &requirements(0));
    repo.write("package.json", &package_json(0));
    repo.write(
        "db/migrations/V1__orders.sql",
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, total_cents BIGINT NOT NULL);\n",
    );
    repo.commit("shop: initial import");
    repo
}

/// One change of `kind`, committed; `idx` varies its content and size.
fn make_change(repo: &TestRepo, kind: Kind, idx: usize) {
    let size = 1 + (idx * 7) % 9; // 1..=9
    match kind {
        Kind::Docs => {
            let path = if idx % 3 == 0 {
                "README.md".to_string()
            } else {
                format!("docs/guide-{}.md", idx % 4)
            };
            let mut text = std::fs::read_to_string(repo.path().join(&path)).unwrap_or_default();
            text.push_str(&format!("\n## Section {idx}\n\n"));
            for line in 0..size * 3 {
                text.push_str(&format!(
                    "Step {line}: configure the {} endpoint and check the dashboard before you continue.\n",
                    ["orders", "payments", "catalogue"][line % 3]
                ));
            }
            repo.write(&path, &text);
            repo.commit(&format!("docs: explain section {idx}"));
        }
        Kind::Tests => {
            let module = ["orders", "catalogue", "cart"][idx % 3];
            let path = format!("tests/test_{module}.py");
            let mut text = std::fs::read_to_string(repo.path().join(&path)).unwrap_or_default();
            text.push_str(&python_tests(module, idx, size + 1));
            repo.write(&path, &text);
            repo.commit(&format!("tests: cover {module} edge cases ({idx})"));
        }
        Kind::Feature => {
            if idx % 3 == 2 {
                let path = format!("web/src/{}.ts", ["cart", "checkout", "search"][idx % 3]);
                let mut text = std::fs::read_to_string(repo.path().join(&path)).unwrap_or_default();
                text.push_str(&ts_module("feature", idx, size * 2));
                repo.write(&path, &text);
            } else {
                let module = ["orders", "catalogue", "pricing"][idx % 3];
                let path = format!("src/shop/{module}.py");
                let mut text = std::fs::read_to_string(repo.path().join(&path)).unwrap_or_default();
                text.push_str(&python_module(module, idx, size * 3));
                repo.write(&path, &text);
                if idx % 2 == 0 {
                    let test_path = format!("tests/test_{module}.py");
                    let mut tests =
                        std::fs::read_to_string(repo.path().join(&test_path)).unwrap_or_default();
                    tests.push_str(&python_tests(module, idx, 2));
                    repo.write(&test_path, &tests);
                }
            }
            repo.commit(&format!("feature {idx}: more of the shop"));
        }
        Kind::DepBump => {
            if idx % 2 == 0 {
                repo.write("requirements.txt", &requirements(idx));
                repo.commit(&format!("deps: bump python packages ({idx})"));
            } else {
                repo.write("package.json", &package_json(idx));
                repo.commit(&format!("deps: bump npm packages ({idx})"));
            }
        }
        Kind::Migration => {
            let version = 100 + idx;
            let (name, sql) = match idx % 3 {
                0 => (
                    "add_order_note",
                    format!("ALTER TABLE orders ADD COLUMN note_{idx} TEXT NULL;\n"),
                ),
                1 => (
                    "index_orders",
                    format!(
                        "CREATE INDEX CONCURRENTLY orders_total_{idx} ON orders (total_cents);\n"
                    ),
                ),
                _ => (
                    "drop_legacy",
                    format!("ALTER TABLE orders DROP COLUMN legacy_{idx};\n"),
                ),
            };
            repo.write(&format!("db/migrations/V{version}__{name}.sql"), &sql);
            repo.commit(&format!("db: {name} ({idx})"));
        }
    }
}

fn python_module(module: &str, idx: usize, n_functions: usize) -> String {
    let mut text = String::new();
    for n in 0..n_functions {
        text.push_str(&format!(
            "\n\ndef {module}_step_{idx}_{n}(items, rate=1.0{n}):\n    \"\"\"Totals the {module} items of step {n}.\"\"\"\n    total = sum(item.cents for item in items)\n    return round(total * rate)\n"
        ));
    }
    text
}

fn python_tests(module: &str, idx: usize, n_tests: usize) -> String {
    let mut text = String::new();
    for n in 0..n_tests {
        text.push_str(&format!(
            "\n\ndef test_{module}_{idx}_{n}():\n    assert {} + {n} == {}\n",
            idx,
            idx + n
        ));
    }
    text
}

fn ts_module(name: &str, idx: usize, n_functions: usize) -> String {
    let mut text = String::new();
    for n in 0..n_functions {
        text.push_str(&format!(
            "\nexport function {name}Total{idx}_{n}(lines: {{ cents: number }}[]): number {{\n  return lines.reduce((sum, line) => sum + line.cents, {n});\n}}\n"
        ));
    }
    text
}

fn requirements(idx: usize) -> String {
    format!(
        "django==4.2.{}\nrequests==2.31.{}\ncelery==5.3.{}\npsycopg[binary]==3.1.{}\n",
        idx % 20,
        idx % 10,
        idx % 7,
        idx % 18
    )
}

fn package_json(idx: usize) -> String {
    format!(
        "{{\n  \"name\": \"shop-web\",\n  \"version\": \"1.0.{idx}\",\n  \"dependencies\": {{\n    \"react\": \"^18.{}.0\",\n    \"axios\": \"^1.{}.0\",\n    \"zod\": \"^3.{}.0\"\n  }}\n}}\n",
        idx % 4,
        idx % 8,
        20 + idx % 5
    )
}

// ---------------------------------------------------------------------------------
// 2. Consensus latency
// ---------------------------------------------------------------------------------

fn latency(runtime: &tokio::runtime::Runtime, n_rounds: usize) {
    const LATENCIES_MS: [u64; 3] = [1_000, 2_000, 3_000];
    const MODELS: [&str; 3] = ["claude-haiku-4-5", "claude-sonnet-4-5", "claude-sonnet-4-6"];
    println!(
        "decision_cost 2/2: three models in consensus (mock latency {} ms), \
         gate_models::ask_all + the policy plan's decide, {n_rounds} rounds",
        LATENCIES_MS.map(|ms| ms.to_string()).join(" / ")
    );
    let setup = ProviderSetup::new(
        Bands::default(),
        &PromptSettings::default(),
        PriceTable::default(),
    )
    .expect("provider setup");
    let mut mocks = Vec::new();
    let mut providers: Vec<Box<dyn Analyzer>> = Vec::new();
    for (latency_ms, model) in LATENCIES_MS.into_iter().zip(MODELS) {
        let mock = runtime
            .block_on(MockServer::start(MockConfig {
                latency_ms,
                ..MockConfig::default()
            }))
            .expect("mock model server");
        let settings = AnthropicSettings {
            model: model.to_string(),
            base_url: Some(mock.anthropic_base_url()),
            api_key: Some(ApiKey::new("bench-key")),
            ..AnthropicSettings::default()
        };
        providers.push(Box::new(
            AnthropicProvider::new(&settings, &setup).expect("anthropic provider"),
        ));
        mocks.push(mock);
    }

    let repo = base_repo();
    make_change(&repo, Kind::Feature, 0);
    let redactor = gate_core::Redactor::new();
    let bands = Bands::default();
    let mut rules = gate_rules::RulesAnalyzer::new(bands);
    let context = gate_git::build_context(
        repo.path(),
        &gate_git::Range::default(),
        &gate_git::ContextOptions::default(),
        &redactor,
        &mut rules,
    )
    .expect("context of the feature change");
    let rules_verdict = rules.finish(&context);
    let policy = Policy::default();
    let consensus = ConsensusPolicy::default();

    println!(
        "{:<6} {:>11} {:>14} {:>9} {:>22}",
        "round", "decision s", "slowest model s", "ratio", "sum of the three s"
    );
    let mut ratios = Vec::new();
    let mut elapsed_secs = Vec::new();
    for round in 1..=n_rounds {
        let plan = policy.plan(&context, &rules_verdict, bands, &consensus, providers.len());
        let started = Instant::now();
        let outcomes = runtime.block_on(gate_models::ask_all(&providers, &context, &rules_verdict));
        let decision = plan.decide(
            "bench",
            &context,
            "2026-11-26T00:00:00Z",
            rules_verdict.clone(),
            outcomes,
        );
        let elapsed = started.elapsed();
        let model_ms: Vec<u64> = decision
            .verdicts
            .iter()
            .filter(|v| v.analyzer != "rules")
            .map(|v| v.latency_ms)
            .collect();
        assert_eq!(
            model_ms.len(),
            3,
            "every model answers: {:?}",
            decision.consensus.notes
        );
        let slowest = Duration::from_millis(model_ms.iter().copied().max().unwrap_or(0));
        let sum: u64 = model_ms.iter().sum();
        let ratio = elapsed.as_secs_f64() / slowest.as_secs_f64().max(1e-9);
        ratios.push(ratio);
        elapsed_secs.push(elapsed.as_secs_f64());
        println!(
            "{round:<6} {:>11.3} {:>14.3} {:>8.3}x {:>22.3}",
            elapsed.as_secs_f64(),
            slowest.as_secs_f64(),
            ratio,
            sum as f64 / 1_000.0
        );
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let worst = ratios[ratios.len() - 1];
    println!(
        "decision latency / slowest model (target <= {LATENCY_TARGET}x): median {median:.3}x, worst {worst:.3}x  {}",
        verdict(worst <= LATENCY_TARGET)
    );
    elapsed_secs.sort_by(f64::total_cmp);
    let slowest_configured = LATENCIES_MS[2] as f64 / 1_000.0;
    println!(
        "decision latency / slowest mock's configured latency ({slowest_configured} s): median {:.3}x",
        elapsed_secs[elapsed_secs.len() / 2] / slowest_configured
    );
}

/// For reference: the real `check`, two providers at 1 s and 2 s.
fn check_latency(runtime: &tokio::runtime::Runtime, config_dir: &Path) {
    let start = |latency_ms| {
        runtime
            .block_on(MockServer::start(MockConfig {
                latency_ms,
                ..MockConfig::default()
            }))
            .expect("mock model server")
    };
    let (anthropic, openai) = (start(1_000), start(2_000));
    let config = write(
        config_dir,
        "latency.toml",
        "[models]\nenabled = [\"anthropic\", \"openai\"]\n",
    );
    let repo = base_repo();
    make_change(&repo, Kind::Feature, 1);
    let mut runs = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let decision = check(
            repo.path(),
            &config,
            &anthropic,
            &[("OPENAI_BASE_URL", openai.openai_base_url())],
        );
        assert_eq!(decision["consensus"]["n_model_verdicts"], 2, "{decision:#}");
        runs.push(started.elapsed().as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    println!(
        "reference: `deploy-gate check --json` with two providers at 1 s and 2 s (process, git and rules included): \
         median {:.3} s of 3 runs = {:.3}x the slowest model",
        runs[1],
        runs[1] / 2.0
    );
}

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// `deploy-gate check --json --config CONFIG` in `repo`, isolated from the
/// developer's environment, against `mock` as Anthropic (and `extra_env`).
fn check(repo: &Path, config: &Path, mock: &MockServer, extra_env: &[(&str, String)]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deploy-gate"));
    cmd.current_dir(repo)
        .args(["check", "--json", "--config"])
        .arg(config)
        .env_remove("DEPLOY_GATE_CONFIG_DIR")
        .env_remove("DEPLOY_GATE_ENV")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("ANTHROPIC_BASE_URL", mock.anthropic_base_url())
        .env("ANTHROPIC_API_KEY", "sk-bench-not-a-key")
        .env("OPENAI_API_KEY", "sk-bench-not-a-key")
        .env_remove("OPENAI_BASE_URL");
    for (name, _) in std::env::vars() {
        if name.starts_with("DEPLOY_GATE__") {
            cmd.env_remove(name);
        }
    }
    for (name, value) in extra_env {
        cmd.env(name, value);
    }
    let output = cmd.output().expect("cannot start deploy-gate");
    let code = output.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "check exited {code:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("check --json prints the decision")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a config file");
    path
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
