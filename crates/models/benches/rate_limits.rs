//! Benchmark (issue 3): does the Anthropic provider keep a provider's request limit
//! under overload, when the limit is configured and when it must be learned from the
//! provider's headers and 429s?
//!
//! The mock model server accepts 120 requests a minute (a token bucket that starts
//! full with one minute's worth, as the providers' buckets do) and answers after
//! 1 s. Concurrent tasks offer four times the limit: one analysis every 125 ms, each
//! awaiting its turn through the provider's limiter. Two scenarios, from one run:
//!
//! 1. the client is configured with the same 120 RPM: target ≥ 95 % of the limit
//!    and no 429 from the mock;
//! 2. the client is told nothing: target ≥ 85 % of the limit and no failed analysis.
//!
//! Throughput is the mock's own count of requests it accepted (answered 200), read
//! at the edges of the measurement window. The mock's bucket and the client's burst
//! let the first seconds run above the limit, so the sustained rate is measured
//! after a warm-up; the rate over the whole window is printed beside it, and a
//! figure passes only when both reach the target. Analyses still waiting for their
//! turn when the window closes are cancelled, not counted as failed.
//!
//! Run: `cargo bench -p gate-models --bench rate_limits`
//! Duration: `DEPLOY_GATE_BENCH_SECONDS` per scenario (default 120, the two
//! minutes; e.g. 20 for a smoke run).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gate_core::{
    Bands, ChangedFile, CommitInfo, DeployContext, FileClass, FileStatus, Recommendation,
};
use gate_mock_llm::{MockConfig, MockServer};
use gate_models::{
    Analyzer as _, AnthropicProvider, AnthropicSettings, ApiKey, ModelError, PriceTable,
    PromptSettings, ProviderSetup, RateLimitSettings,
};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

/// The mock's limit, in requests per minute.
const LIMIT_RPM: u32 = 120;
/// The mock's answer latency.
const LATENCY_MS: u64 = 1_000;
/// One analysis offered every 125 ms: 480 a minute, four times the limit.
const OFFER_EVERY: Duration = Duration::from_millis(125);
/// Longest warm-up before the sustained rate is measured.
const MAX_WARM_UP: Duration = Duration::from_secs(20);

const POLICY: &str = "Deploys that change the billing schema need the payments team's approval. \
Migrations must be expand/contract: add, backfill, switch, then drop in a later release.";

/// One way to configure the client, and what it must reach.
struct Scenario {
    title: &'static str,
    client_rpm: Option<u32>,
    target_pct: f64,
    /// Whether a 429 from the mock fails the scenario (else it is only reported).
    target_no_429: bool,
    /// Whether a failed analysis fails the scenario (else it is only reported).
    target_no_failure: bool,
}

/// What one scenario measured.
struct Measured {
    window: Duration,
    warm_up: Duration,
    /// Accepted by the mock from the start to the end of the window.
    n_accepted: u64,
    /// Accepted by the mock between the end of the warm-up and the end.
    n_accepted_sustained: u64,
    /// The exact span of the sustained part.
    sustained_span: Duration,
    n_rate_limited: u64,
    n_offered: u64,
    /// Analyses answered to the client within the window.
    n_completed: u64,
    n_failed: u64,
    /// Failure messages, by count.
    failures: BTreeMap<String, u64>,
    /// Analyses still waiting or in flight when the window closed (cancelled).
    n_cancelled: usize,
    /// The request limit the client enforced at the end (configured or learned).
    client_rpm_at_end: Option<u32>,
}

fn main() {
    let window = Duration::from_secs(
        std::env::var("DEPLOY_GATE_BENCH_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "rate_limits: Anthropic provider against gate-mock-llm on loopback; mock limit \
         {LIMIT_RPM} requests/minute, {LATENCY_MS} ms latency"
    );
    println!(
        "offered load: one analysis every {} ms ({} a minute, {}x the limit) for {} s per \
         scenario; throughput = requests the mock accepted (its own n_ok counter)",
        OFFER_EVERY.as_millis(),
        60_000 / OFFER_EVERY.as_millis(),
        60_000 / OFFER_EVERY.as_millis() / u128::from(LIMIT_RPM),
        window.as_secs()
    );
    let scenarios = [
        Scenario {
            title: "1. client configured with the mock's limit (120 RPM)",
            client_rpm: Some(LIMIT_RPM),
            target_pct: 95.0,
            target_no_429: true,
            target_no_failure: false,
        },
        Scenario {
            title: "2. limit unknown to the client (learned from headers and 429s)",
            client_rpm: None,
            target_pct: 85.0,
            target_no_429: false,
            target_no_failure: true,
        },
    ];
    for scenario in &scenarios {
        let measured = runtime.block_on(run(scenario, window));
        report(scenario, &measured);
    }
}

async fn run(scenario: &Scenario, window: Duration) -> Measured {
    let mock = MockServer::start(MockConfig {
        latency_ms: LATENCY_MS,
        rpm: Some(LIMIT_RPM),
        ..Default::default()
    })
    .await
    .expect("mock server on loopback");
    let settings = AnthropicSettings {
        model: "claude-sonnet-4-5".into(),
        base_url: Some(mock.anthropic_base_url()),
        api_key: Some(ApiKey::new("bench-key")),
        rate_limit: RateLimitSettings {
            requests_per_minute: scenario.client_rpm,
            ..Default::default()
        },
        ..Default::default()
    };
    let setup = ProviderSetup::new(
        Bands::default(),
        &PromptSettings {
            org_policy: POLICY.to_string(),
            ..Default::default()
        },
        PriceTable::default(),
    )
    .expect("provider setup without incidents");
    let provider = Arc::new(AnthropicProvider::new(&settings, &setup).expect("anthropic provider"));

    let warm_up = MAX_WARM_UP.min(window / 2);
    let started = Instant::now();
    let end = tokio::time::sleep_until(started + window);
    let warm_up_end = tokio::time::sleep_until(started + warm_up);
    tokio::pin!(end, warm_up_end);
    let mut offer = tokio::time::interval(OFFER_EVERY);
    offer.set_missed_tick_behavior(MissedTickBehavior::Burst);

    let mut tasks: JoinSet<Result<Recommendation, ModelError>> = JoinSet::new();
    let mut warm_up_snapshot: Option<(Instant, u64)> = None;
    let (mut n_offered, mut n_completed, mut n_failed) = (0u64, 0u64, 0u64);
    let mut failures = BTreeMap::new();
    loop {
        tokio::select! {
            biased;
            () = &mut end => break,
            () = &mut warm_up_end, if warm_up_snapshot.is_none() => {
                warm_up_snapshot = Some((Instant::now(), mock.stats().n_ok));
            }
            Some(joined) = tasks.join_next() => {
                match joined.expect("analysis task neither panics nor is aborted here") {
                    Ok(_) => n_completed += 1,
                    Err(err) => {
                        n_failed += 1;
                        *failures.entry(err.to_string()).or_insert(0) += 1;
                    }
                }
            }
            _ = offer.tick() => {
                let provider = Arc::clone(&provider);
                let context = deploy_context(n_offered);
                tasks.spawn(async move {
                    provider
                        .analyze_context(&context)
                        .await
                        .map(|analysis| analysis.verdict.recommendation)
                });
                n_offered += 1;
            }
        }
    }
    let closed_at = Instant::now();
    let stats = mock.stats();
    let n_cancelled = tasks.len();
    tasks.shutdown().await;

    let (warm_up_at, accepted_at_warm_up) =
        warm_up_snapshot.expect("the warm-up ends before the window");
    Measured {
        window: closed_at - started,
        warm_up: warm_up_at - started,
        n_accepted: stats.n_ok,
        n_accepted_sustained: stats.n_ok - accepted_at_warm_up,
        sustained_span: closed_at - warm_up_at,
        n_rate_limited: stats.n_rate_limited,
        n_offered,
        n_completed,
        n_failed,
        failures,
        n_cancelled,
        client_rpm_at_end: provider.limiter().limits().0,
    }
}

fn report(scenario: &Scenario, m: &Measured) {
    let pct_of_limit = |n: u64, span: Duration| {
        n as f64 / span.as_secs_f64() * 60.0 / f64::from(LIMIT_RPM) * 100.0
    };
    let per_minute = |n: u64, span: Duration| n as f64 / span.as_secs_f64() * 60.0;
    let sustained_pct = pct_of_limit(m.n_accepted_sustained, m.sustained_span);
    let whole_pct = pct_of_limit(m.n_accepted, m.window);
    let judged_pct = sustained_pct.min(whole_pct);
    let verdict = |pass: bool| if pass { "PASS" } else { "FAIL" };

    println!();
    println!("scenario {}", scenario.title);
    println!(
        "  client limit at the end            : {}",
        match (scenario.client_rpm, m.client_rpm_at_end) {
            (Some(rpm), _) => format!("{rpm} RPM (configured)"),
            (None, Some(rpm)) => format!("{rpm} RPM (learned)"),
            (None, None) => "none (nothing learned)".to_string(),
        }
    );
    println!(
        "  accepted by the mock, sustained    : {} in {:.1}-{:.1} s = {:.1}/min = {:.1} % of the limit",
        m.n_accepted_sustained,
        m.warm_up.as_secs_f64(),
        m.window.as_secs_f64(),
        per_minute(m.n_accepted_sustained, m.sustained_span),
        sustained_pct
    );
    println!(
        "  accepted by the mock, whole window : {} in 0.0-{:.1} s = {:.1}/min = {:.1} % of the limit \
         (the bursts at the start count here)",
        m.n_accepted,
        m.window.as_secs_f64(),
        per_minute(m.n_accepted, m.window),
        whole_pct
    );
    println!(
        "  % of the limit kept (lower of both): {:.1} %   target >= {:.0} %   {}",
        judged_pct,
        scenario.target_pct,
        verdict(judged_pct >= scenario.target_pct)
    );
    let target_429 = if scenario.target_no_429 {
        format!("   target 0   {}", verdict(m.n_rate_limited == 0))
    } else {
        "   (no target)".to_string()
    };
    println!(
        "  429 responses from the mock        : {}{target_429}",
        m.n_rate_limited
    );
    let target_failed = if scenario.target_no_failure {
        format!("   target 0   {}", verdict(m.n_failed == 0))
    } else {
        "   (no target)".to_string()
    };
    println!(
        "  failed analyses                    : {}{target_failed}",
        m.n_failed
    );
    for (message, count) in &m.failures {
        println!("      {count} x {message}");
    }
    println!(
        "  analyses offered / answered in the window / cancelled at its end: {} / {} / {}",
        m.n_offered, m.n_completed, m.n_cancelled
    );
}

/// A small, realistic change (a few hundred characters of diff), different for
/// every analysis.
fn deploy_context(idx: u64) -> DeployContext {
    let packed_diff = format!(
        "diff --git a/src/orders/handler.rs b/src/orders/handler.rs\n\
         --- a/src/orders/handler.rs\n\
         +++ b/src/orders/handler.rs\n\
         @@ -{line},7 +{line},9 @@ pub async fn list_orders(\n\
         \x20    let page = params.page.unwrap_or(1);\n\
         -    let per_page = params.per_page.unwrap_or(50);\n\
         +    let per_page = params.per_page.unwrap_or(50).min({cap});\n\
         +    tracing::debug!(page, per_page, \"listing orders\");\n\
         \x20    let orders = store.orders(customer_id, page, per_page).await?;\n\
         +    metrics::counter!(\"orders_listed\").increment(orders.len() as u64);\n\
         \x20    Ok(Json(orders))\n",
        line = 40 + idx % 60,
        cap = 100 + idx % 400,
    );
    let sha = format!("{:040x}", 0xdead_beef_u64.wrapping_mul(idx + 1));
    DeployContext {
        repo: "acme/shop".into(),
        base: format!("{:040x}", idx),
        head: sha.clone(),
        head_is_merge: false,
        root_commit: false,
        commits: vec![CommitInfo {
            sha,
            author: "Dev".into(),
            message: format!("Cap the page size of the order listing (#{idx})"),
            merge: false,
        }],
        n_commits: 1,
        files: vec![ChangedFile {
            path: "src/orders/handler.rs".into(),
            old_path: None,
            status: FileStatus::Modified,
            additions: 3,
            deletions: 1,
            binary: false,
            class: FileClass::Code,
        }],
        lines_added: 3,
        lines_removed: 1,
        est_tokens: packed_diff.len().div_ceil(4),
        packed_diff,
        budget_chars: 12_000,
        omitted: vec![],
        n_omitted: 0,
        dep_changes: vec![],
        secrets: vec![],
    }
}
