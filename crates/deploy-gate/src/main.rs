//! `deploy-gate`: the one binary. It parses arguments, loads settings and hands off to
//! the library crates; no business logic lives here.

mod check;
mod exit;
mod report;
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

fn run(cli: Cli) -> Result<Exit, CliError> {
    let settings = Settings::load(&Sources::from_process(cli.config)).map_err(CliError::usage)?;
    match cli.command {
        Command::Config => {
            print!("{}", settings.to_masked_toml());
            Ok(Exit::Proceed)
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
