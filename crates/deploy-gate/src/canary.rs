//! `deploy-gate canary`: judge a canary against its baseline once (`canary
//! --deploy-event ID --metrics FILE | --prometheus URL --query-file FILE`), in an
//! orchestrator's loop (`canary watch`), or as the fleet's canary service
//! (`canary serve`, which answers canary requests on the bus). The judgement
//! itself is `gate_canary::judge`; this file wires files, Redis and the flags.
//!
//! Exit codes of `canary` and `canary watch`: 0 promote, 1 rollback, 4 continue,
//! 2 bad input (a file, a flag, an unknown event), 3 no answer (Redis or
//! Prometheus unreachable).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gate_canary::{CanaryDecision, CanaryRequest, CanaryResult, CanarySpec, Evidence, Source};
use gate_core::Decision;

use crate::exit::{CliError, Exit};
use crate::fleet::chain;
use crate::runtime;
use crate::settings::Settings;

/// Bound on the CLI's read of the deploy decision, connecting included.
const CLI_STORE_TIMEOUT_MS: u64 = 5_000;

/// `deploy-gate canary …`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CanaryArgs {
    #[command(subcommand)]
    command: Option<CanaryCommand>,
    // Boxed: the arguments are large beside the other commands'.
    #[command(flatten)]
    judge: Box<JudgeArgs>,
}

#[derive(Debug, clap::Subcommand)]
enum CanaryCommand {
    /// Judge every interval until promote or rollback, or until the timeout (the
    /// last judgement is final: not enough evidence then rolls back). Exits like
    /// `canary`.
    Watch {
        #[command(flatten)]
        judge: Box<JudgeArgs>,
        /// Time between judgements (default: `canary.watch_interval_secs`).
        #[arg(long, value_name = "DURATION", value_parser = crate::parse_duration)]
        interval: Option<Duration>,
        /// Give up after this long (default: `canary.watch_timeout_secs`).
        #[arg(long, value_name = "DURATION", value_parser = crate::parse_duration)]
        timeout: Option<Duration>,
    },
    /// Run the canary service: answer canary requests from the bus (publish
    /// `canary.<result>.<repo>`, notify on rollback), until SIGTERM.
    Serve,
}

/// What to judge and how to print it.
#[derive(Debug, Clone, clap::Args)]
struct JudgeArgs {
    /// The deploy's event id: its stored decision gives the risk score and the
    /// rollback plan.
    #[arg(long, value_name = "ID")]
    deploy_event: Option<String>,
    /// A JSON spec with the samples inline (`canary`, `baseline`, `metrics`,
    /// `groups`, `series`); read again before every judgement of `watch`.
    #[arg(long, value_name = "FILE", conflicts_with = "prometheus")]
    metrics: Option<PathBuf>,
    /// A Prometheus server to read the samples from (with --query-file).
    #[arg(long, value_name = "URL", requires = "query_file")]
    prometheus: Option<String>,
    /// A JSON spec with a PromQL template per metric under `queries`
    /// (`{{scope}}` becomes the canary's and the baseline's scope).
    #[arg(long, value_name = "FILE", requires = "prometheus")]
    query_file: Option<PathBuf>,
    /// Resolution of the Prometheus range queries.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = crate::parse_duration)]
    step: Duration,
    /// How far back the Prometheus window reaches from now.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = crate::parse_duration)]
    window: Duration,
    /// This judgement's id (default: `<event>-canary-<unix time>`).
    #[arg(long, value_name = "ID")]
    canary_id: Option<String>,
    /// The run's last judgement: not enough evidence is a rollback.
    #[arg(long = "final")]
    final_judgement: bool,
    /// Print the canary decision as JSON (one line per judgement with `watch`).
    #[arg(long)]
    json: bool,
}

/// Runs `canary`, `canary watch` or `canary serve`.
pub fn run(settings: &Settings, args: CanaryArgs) -> Result<Exit, CliError> {
    match args.command {
        Some(CanaryCommand::Serve) => serve(settings),
        Some(CanaryCommand::Watch {
            judge,
            interval,
            timeout,
        }) => {
            let interval =
                interval.unwrap_or(Duration::from_secs(settings.canary.watch_interval_secs));
            let timeout =
                timeout.unwrap_or(Duration::from_secs(settings.canary.watch_timeout_secs));
            runtime::block_on(watch(settings, &judge, interval, timeout))?
        }
        None => runtime::block_on(judge_once(settings, &args.judge))?,
    }
}

fn exit_of(result: CanaryResult) -> Exit {
    match result {
        CanaryResult::Promote => Exit::Proceed,
        CanaryResult::Rollback => Exit::Block,
        CanaryResult::Continue => Exit::Hold,
    }
}

async fn judge_once(settings: &Settings, args: &JudgeArgs) -> Result<Exit, CliError> {
    let event_id = event_id(args)?;
    let deploy = deploy_decision(settings, event_id).await?;
    let canary_id = args
        .canary_id
        .clone()
        .unwrap_or_else(|| default_canary_id(event_id));
    let decision = judge(
        settings,
        args,
        &deploy,
        &canary_id,
        args.final_judgement,
        false,
    )
    .await?;
    print(&decision, args.json);
    Ok(exit_of(decision.result))
}

async fn watch(
    settings: &Settings,
    args: &JudgeArgs,
    interval: Duration,
    timeout: Duration,
) -> Result<Exit, CliError> {
    let event_id = event_id(args)?;
    let deploy = deploy_decision(settings, event_id).await?;
    let base_id = args
        .canary_id
        .clone()
        .unwrap_or_else(|| default_canary_id(event_id));
    let deadline = Instant::now() + timeout;
    let mut n_asked = 0u32;
    loop {
        n_asked += 1;
        // The last judgement that fits before the deadline is the final one.
        let final_judgement = args.final_judgement || Instant::now() + interval >= deadline;
        let canary_id = format!("{base_id}-{n_asked}");
        let decision = judge(settings, args, &deploy, &canary_id, final_judgement, true).await?;
        print(&decision, args.json);
        if decision.result != CanaryResult::Continue {
            return Ok(exit_of(decision.result));
        }
        tokio::time::sleep(interval.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

fn event_id(args: &JudgeArgs) -> Result<&str, CliError> {
    let event_id = args
        .deploy_event
        .as_deref()
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| CliError::usage("canary needs --deploy-event ID"))?;
    if args.metrics.is_none() && args.prometheus.is_none() {
        return Err(CliError::usage(
            "canary needs --metrics FILE, or --prometheus URL with --query-file FILE",
        ));
    }
    Ok(event_id)
}

fn default_canary_id(event_id: &str) -> String {
    format!(
        "{event_id}-canary-{}",
        time::OffsetDateTime::now_utc().unix_timestamp()
    )
}

/// The deploy decision: exit 2 when the store has none (a typo'd id), 3 when the
/// store cannot be read.
async fn deploy_decision(settings: &Settings, event_id: &str) -> Result<Decision, CliError> {
    // A one-shot command's first read also connects: the fleet's per-operation
    // bound (milliseconds, for a warm connection) is too tight for it.
    let mut stores = settings.stores.clone();
    stores.op_timeout_ms = stores.op_timeout_ms.max(CLI_STORE_TIMEOUT_MS);
    let redis = gate_bus::Redis::open(settings.redis.url.expose(), stores)
        .map_err(|err| CliError::usage(chain(&err)))?;
    match redis.decision_store().get(event_id).await {
        Ok(Some(decision)) => Ok(decision),
        Ok(None) => Err(CliError::usage(format!(
            "no decision is stored for event {event_id}: check --deploy-event"
        ))),
        Err(err) => Err(CliError::no_decision(format!(
            "cannot read the deploy decision of {event_id}: {}",
            chain(&err)
        ))),
    }
}

fn read_spec(path: &Path) -> Result<CanarySpec, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| CliError::usage(format!("cannot read {}: {err}", path.display())))?;
    CanarySpec::from_json(&text, &path.display().to_string()).map_err(CliError::usage)
}

/// One judgement. A Prometheus outage is no answer (exit 3) for a one-off, and
/// no data (continue; a rollback when final) inside `watch`.
async fn judge(
    settings: &Settings,
    args: &JudgeArgs,
    deploy: &Decision,
    canary_id: &str,
    final_judgement: bool,
    watching: bool,
) -> Result<CanaryDecision, CliError> {
    let ids = gate_canary::RequestIds {
        canary_id,
        event_id: &deploy.event_id,
        repo: &deploy.repo,
        final_judgement,
    };
    let request: CanaryRequest = match (&args.metrics, &args.prometheus, &args.query_file) {
        (Some(path), _, _) => read_spec(path)?.inline_request(&ids),
        (None, Some(url), Some(path)) => read_spec(path)?.prometheus_request(
            &ids,
            url,
            args.step.as_secs().max(1),
            args.window.as_secs(),
        ),
        _ => {
            return Err(CliError::usage(
                "canary needs --metrics FILE, or --prometheus URL with --query-file FILE",
            ))
        }
    }
    .map_err(CliError::usage)?;
    let mut notes = Vec::new();
    let samples = match &request.source {
        Source::Inline { series } => series.clone(),
        Source::Prometheus(source) => {
            let timeout = Duration::from_millis(settings.canary.prometheus_timeout_ms);
            let fetched = async {
                let client = gate_canary::Prometheus::new(&source.base_url, timeout)?;
                client
                    .fetch(
                        source,
                        &request.canary,
                        &request.baseline,
                        gate_canary::window_end(None),
                    )
                    .await
            }
            .await;
            match fetched {
                Ok(samples) => samples,
                Err(err) if err.is_transient() && watching => {
                    eprintln!("deploy-gate: warning: {err}");
                    notes.push(format!("metrics unavailable: {err}"));
                    Default::default()
                }
                Err(err) if err.is_transient() => return Err(CliError::no_decision(err)),
                Err(err) => return Err(CliError::usage(err)),
            }
        }
    };
    let judged_at = gate_core::rfc3339(time::OffsetDateTime::now_utc());
    let decision = gate_canary::judge(
        &request,
        Evidence {
            samples: &samples,
            deploy: Some(deploy),
            notes: &notes,
            judged_at: &judged_at,
        },
        &settings.canary,
    );
    gate_canary::count_judgement(&decision, !notes.is_empty());
    Ok(decision)
}

fn print(decision: &CanaryDecision, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(decision)
                .unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"))
        );
    } else {
        println!("{}", decision.table());
    }
}

/// `deploy-gate canary serve`: the canary service until SIGTERM.
fn serve(settings: &Settings) -> Result<Exit, CliError> {
    let deps = gate_canary::ServiceDeps {
        amqp_url: settings.amqp.url.expose().to_string(),
        bus: settings.bus_for("deploy-gate-canary"),
        redis_url: settings.redis.url.expose().to_string(),
        redis: settings.stores.clone(),
    };
    runtime::init_logging(settings.log_json());
    match runtime::block_on(runtime::with_metrics(
        &settings.telemetry,
        gate_canary::run(settings.canary.clone(), deps, runtime::shutdown_signal()),
    ))?? {
        Ok(()) => Ok(Exit::Proceed),
        Err(err) => Err(CliError::usage(chain(&err))),
    }
}
