//! `deploy-gate`: the one binary. It parses arguments, loads settings and hands off to
//! the library crates; no business logic lives here.

mod canary;
mod check;
mod dashboard;
mod exit;
mod fleet;
mod outcomes;
mod policy_cmd;
mod report;
mod runtime;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::{CliError, Exit};
use crate::settings::{FailOn, OutputFormat, Settings, Sources};

/// Gate deployments on the risk of the change.
#[derive(Debug, Parser)]
#[command(name = "deploy-gate", version, about, propagate_version = true)]
struct Cli {
    /// A TOML file layered over the built-in defaults (after $DEPLOY_GATE_CONFIG_DIR).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log lines of the long-running roles: `text` or `json` (default: `log.format`).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<settings::LogFormat>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Analyse a range of a repository and print the decision.
    ///
    /// Exit codes: 0 deploy (and hold, with a warning, unless --fail-on hold);
    /// 1 block; 2 usage or configuration error; 3 no decision could be made;
    /// 4 hold with --fail-on hold.
    Check(CheckArgs),
    /// Print the effective configuration, secrets masked.
    Config,
    /// Run a worker: consume merge events, decide, publish decisions and
    /// notifications, until SIGTERM (then drain in-flight work up to a deadline).
    Worker,
    /// Run the notifier: deliver notifications to Slack and webhooks, until SIGTERM.
    Notify,
    /// Build the context like `check` and publish it to the fleet; prints the event id.
    ///
    /// Exit 0 only when the broker confirmed the event; 2 for bad input (not a
    /// repository, oversized event, nothing bound to receive it); 3 when the broker
    /// could not be reached or did not confirm.
    Enqueue(EnqueueArgs),
    /// Declare the bus topology (exchanges, queues, bindings) and exit: run once as
    /// the broker's admin user when the roles run as least-privilege users with
    /// `bus.declare_topology = false` (README "Security").
    DeclareTopology,
    /// Receive GitHub `push`/`pull_request` webhooks and signed MergeEvents over HTTP
    /// and enqueue them, until SIGTERM.
    Webhook {
        /// Address to listen on (default: `webhook.listen`).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Serve the live status page: the last decisions and the headline figures,
    /// updating from the decisions log, until SIGTERM.
    Dashboard {
        /// Address to listen on (default: `dashboard.listen`).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Wait for the decision of an event (or of a repository's commit) and exit like
    /// `check`: 0 deploy (hold too, unless --fail-on hold), 1 block, 3 no decision
    /// before the timeout, 4 hold with --fail-on hold.
    Wait(WaitArgs),
    /// Stream decisions as JSON lines, from now or replayed from the decisions log.
    Watch {
        /// Only this repository's decisions.
        #[arg(long, value_name = "NAME")]
        repo: Option<String>,
        /// `now` (default), `beginning`, a log offset, or an RFC 3339 time.
        #[arg(long, value_name = "FROM", default_value = "now")]
        from: String,
    },
    /// Judge a canary against its baseline after a deploy: promote, continue or
    /// roll back. `canary watch` asks every interval; `canary serve` answers
    /// canary requests from the bus.
    ///
    /// Exit codes: 0 promote, 1 rollback, 4 continue, 2 bad input, 3 no answer.
    Canary(canary::CanaryArgs),
    /// Report what happened to a decided change (published with confirms; the
    /// workers store it next to the decision, `calibrate` reads it).
    Outcome(OutcomeArgs),
    /// Print, per category and band, how decisions related to their outcomes:
    /// deploys, rollbacks, incidents, holds overridden, the rollback rate.
    Calibrate {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve an event: publish a person's `deploy` that supersedes the automatic
    /// decision, recorded in the decisions log.
    Approve(HumanArgs),
    /// Validate a policy file, or say which of the policy's rules apply to a path.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Override an event's decision with any recommendation, recorded in the log.
    Override {
        #[command(flatten)]
        human: HumanArgs,
        /// The recommendation that replaces the automatic one.
        #[arg(long, value_enum, value_name = "REC")]
        to: RecommendationArg,
    },
}

/// `deploy-gate policy …`.
#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a policy file: prints `ok: N repo rules, M path rules, version
    /// <hash>` (exit 0), or the error with file, line, column and key (exit 2).
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Print which rules of the policy apply to a path of a repository, in order.
    Explain {
        /// Repository name, as in decisions (`owner/name`).
        #[arg(long, value_name = "NAME")]
        repo: String,
        /// A path inside the repository.
        #[arg(long, value_name = "PATH")]
        path: String,
        /// The policy file (default: the configured policy, `policy.file`).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// Arguments of `enqueue`.
#[derive(Debug, clap::Args)]
struct EnqueueArgs {
    /// The repository to read.
    #[arg(long, value_name = "PATH", default_value = ".")]
    repo: PathBuf,
    /// Base revision of the range (default: the head's first parent).
    #[arg(long, value_name = "REV")]
    base: Option<String>,
    /// Head revision of the range (default: HEAD).
    #[arg(long, value_name = "REV")]
    head: Option<String>,
    /// Repository name in the event (default: the directory name).
    #[arg(long, value_name = "NAME")]
    repo_name: Option<String>,
    /// Idempotency key (default: derived from the CI run, else random).
    #[arg(long, value_name = "ID")]
    event_id: Option<String>,
    /// The branch or ref the merge landed on.
    #[arg(long = "ref", value_name = "REF")]
    git_ref: Option<String>,
}

/// Arguments of `wait`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["event", "repo"])))]
struct WaitArgs {
    /// The event id `enqueue` printed.
    #[arg(long, value_name = "ID")]
    event: Option<String>,
    /// The repository name (with --sha).
    #[arg(long, value_name = "NAME", requires = "sha")]
    repo: Option<String>,
    /// The full head commit id (with --repo).
    #[arg(long, value_name = "SHA", requires = "repo")]
    sha: Option<String>,
    /// Give up after this long (`90s`, `15m`, `1h`); exit 3.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    timeout: std::time::Duration,
    /// Which recommendation fails the step.
    #[arg(long, value_enum, value_name = "REC")]
    fail_on: Option<FailOn>,
    /// Print the Decision JSON instead of the report.
    #[arg(long)]
    json: bool,
}

/// Who decides and why, for `approve` and `override`.
#[derive(Debug, clap::Args)]
struct HumanArgs {
    /// The event whose decision is superseded.
    event: String,
    /// Who decides.
    #[arg(long, value_name = "NAME")]
    by: String,
    /// Why, in words (recorded in the decisions log).
    #[arg(long, value_name = "TEXT")]
    reason: String,
}

/// A recommendation on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RecommendationArg {
    Deploy,
    Hold,
    Block,
}

impl From<RecommendationArg> for gate_core::Recommendation {
    fn from(arg: RecommendationArg) -> Self {
        match arg {
            RecommendationArg::Deploy => gate_core::Recommendation::Deploy,
            RecommendationArg::Hold => gate_core::Recommendation::Hold,
            RecommendationArg::Block => gate_core::Recommendation::Block,
        }
    }
}

/// Arguments of `outcome`.
#[derive(Debug, clap::Args)]
struct OutcomeArgs {
    /// The event whose change this reports on.
    event: String,
    /// What happened.
    #[arg(long, value_enum, value_name = "RESULT")]
    result: OutcomeResultArg,
    /// In your words (a link to the postmortem, the symptom); secrets are redacted.
    #[arg(long, value_name = "TEXT", default_value = "")]
    note: String,
}

/// An outcome on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OutcomeResultArg {
    Deployed,
    #[value(name = "rolled_back", alias = "rolled-back")]
    RolledBack,
    Incident,
}

impl From<OutcomeResultArg> for gate_core::OutcomeResult {
    fn from(arg: OutcomeResultArg) -> Self {
        match arg {
            OutcomeResultArg::Deployed => gate_core::OutcomeResult::Deployed,
            OutcomeResultArg::RolledBack => gate_core::OutcomeResult::RolledBack,
            OutcomeResultArg::Incident => gate_core::OutcomeResult::Incident,
        }
    }
}

/// `90s`, `15m`, `1h`, or plain seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 15m or 1h"))?;
    let seconds = match unit {
        "" | "s" => value,
        "m" => value * 60,
        "h" => value * 3600,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use s, m or h)")),
    };
    Ok(std::time::Duration::from_secs(seconds))
}

fn watch_from(text: &str) -> Result<gate_orchestrator::WatchFrom, CliError> {
    use gate_orchestrator::WatchFrom;
    match text {
        "now" => Ok(WatchFrom::Now),
        "beginning" | "first" => Ok(WatchFrom::Beginning),
        _ => {
            if let Ok(offset) = text.parse::<u64>() {
                return Ok(WatchFrom::Offset(offset));
            }
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(WatchFrom::Timestamp)
                .map_err(|_| {
                    CliError::usage(format!(
                        "--from `{text}` is not now, beginning, an offset or an RFC 3339 time"
                    ))
                })
        }
    }
}

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The repository to analyse.
    #[arg(long, value_name = "PATH", default_value = ".")]
    repo: PathBuf,
    /// Base revision of the range (default: the head's first parent).
    #[arg(long, value_name = "REV")]
    base: Option<String>,
    /// Head revision of the range (default: HEAD).
    #[arg(long, value_name = "REV")]
    head: Option<String>,
    /// Print the Decision as JSON (same as --format json).
    #[arg(long)]
    json: bool,
    /// Which recommendation fails the step: `block` (default) or `hold` as well.
    #[arg(long, value_enum, value_name = "REC")]
    fail_on: Option<FailOn>,
    /// Report format.
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// Repository name shown in the report (default: the directory name).
    #[arg(long, value_name = "NAME")]
    repo_name: Option<String>,
}

/// mimalloc instead of glibc's malloc: see BENCHMARKS.md (`fleet_throughput`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(exit) => exit.into(),
        Err(err) => {
            eprintln!("deploy-gate: error: {}", err.message());
            err.exit().into()
        }
    }
}

/// The role a command runs as, in the default OpenTelemetry `service.name`
/// (`deploy-gate-<role>`); `None` for commands that only print configuration.
fn telemetry_role(command: &Command) -> Option<&'static str> {
    Some(match command {
        Command::Config | Command::Policy(_) => return None,
        Command::Worker => "worker",
        Command::Notify => "notify",
        Command::Enqueue(_) => "enqueue",
        Command::Webhook { .. } => "webhook",
        Command::Dashboard { .. } => "dashboard",
        Command::Wait(_) => "wait",
        Command::Watch { .. } => "watch",
        Command::Check(_) => "check",
        _ => "cli",
    })
}

fn run(cli: Cli) -> Result<Exit, CliError> {
    // Checking a policy file needs nothing else: not even a valid configuration.
    if let Command::Policy(PolicyCommand::Check { file }) = &cli.command {
        return policy_cmd::check(file);
    }
    let mut settings =
        Settings::load(&Sources::from_process(cli.config)).map_err(CliError::usage)?;
    if let Some(format) = cli.log_format {
        settings.log.format = format;
    }
    // OTLP export when configured (`[telemetry]`, `OTEL_*`); held until the command
    // returns, then flushed so that a one-shot command's last spans leave too.
    let _telemetry = match telemetry_role(&cli.command) {
        Some(role) => Some(
            gate_telemetry::Telemetry::start(&settings.telemetry, role)
                .map_err(|err| CliError::usage(format!("telemetry: {err}")))?,
        ),
        None => None,
    };
    match cli.command {
        Command::Config => {
            print!("{}", settings.to_masked_toml());
            Ok(Exit::Proceed)
        }
        Command::Worker => fleet::worker(&settings),
        Command::Enqueue(args) => fleet::enqueue(
            &settings,
            &fleet::EnqueueRequest {
                repo: args.repo,
                base: args.base,
                head: args.head,
                repo_name: args.repo_name,
                event_id: args.event_id,
                git_ref: args.git_ref,
            },
        ),
        Command::Webhook { listen } => fleet::webhook(&settings, listen),
        Command::DeclareTopology => fleet::declare_topology(&settings),
        Command::Dashboard { listen } => dashboard::run(&settings, listen),
        Command::Wait(args) => {
            let target = match (args.event, args.repo, args.sha) {
                (Some(event), _, _) => gate_orchestrator::WaitTarget::Event(event),
                (None, Some(repo), Some(sha)) => gate_orchestrator::WaitTarget::Head { repo, sha },
                _ => {
                    return Err(CliError::usage(
                        "wait needs --event ID, or --repo NAME with --sha SHA",
                    ))
                }
            };
            fleet::wait(
                &settings,
                target,
                args.timeout,
                args.fail_on.unwrap_or(settings.check.fail_on),
                args.json,
            )
        }
        Command::Watch { repo, from } => fleet::watch(&settings, repo, watch_from(&from)?),
        Command::Approve(human) => fleet::approve(
            &settings,
            &human.event,
            &human.by,
            &human.reason,
            gate_core::Recommendation::Deploy,
        ),
        Command::Override { human, to } => {
            fleet::approve(&settings, &human.event, &human.by, &human.reason, to.into())
        }
        Command::Outcome(args) => {
            outcomes::outcome(&settings, &args.event, args.result.into(), &args.note)
        }
        Command::Calibrate { json } => outcomes::calibrate(&settings, json),
        Command::Canary(args) => canary::run(&settings, args),
        Command::Notify => fleet::notify(&settings),
        Command::Policy(PolicyCommand::Check { file }) => policy_cmd::check(&file),
        Command::Policy(PolicyCommand::Explain { repo, path, file }) => {
            policy_cmd::explain(&settings, &repo, &path, file.as_deref())
        }
        Command::Check(args) => {
            let format = if args.json {
                OutputFormat::Json
            } else {
                args.format.unwrap_or(settings.check.format)
            };
            let request = check::CheckRequest {
                repo: args.repo,
                base: args.base,
                head: args.head,
                repo_name: args.repo_name,
                format,
                fail_on: args.fail_on.unwrap_or(settings.check.fail_on),
                step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                    .map(PathBuf::from)
                    .filter(|p| !p.as_os_str().is_empty()),
            };
            check::run(&settings, &request)
        }
    }
}
