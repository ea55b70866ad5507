//! `deploy-gate check`: read a range, run the analyzers, print the decision, exit with
//! the design's code.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use gate_core::{Decision, DeployContext, ModelOutcome, Recommendation, Redactor, Verdict};
use gate_git::{GitError, Range};
use gate_models::{Analyzer, AnthropicProvider, ModelError, OpenAiProvider, ProviderSetup};
use gate_rules::RulesAnalyzer;

use crate::exit::{CliError, Exit};
use crate::report;
use crate::settings::{FailOn, OutputFormat, ProviderName, Settings};

/// What the user asked `check` to do.
#[derive(Debug)]
pub struct CheckRequest {
    /// Repository to analyse.
    pub repo: PathBuf,
    /// Base revision, if given.
    pub base: Option<String>,
    /// Head revision, if given.
    pub head: Option<String>,
    /// Name shown for the repository.
    pub repo_name: Option<String>,
    /// Output format.
    pub format: OutputFormat,
    /// Which recommendation fails the step.
    pub fail_on: FailOn,
    /// `$GITHUB_STEP_SUMMARY`, where a Markdown summary is appended.
    pub step_summary: Option<PathBuf>,
}

/// Runs the analysis and prints the report.
pub fn run(settings: &Settings, request: &CheckRequest) -> Result<Exit, CliError> {
    let redactor = Redactor::new();
    let (analyzers, notices) = model_analyzers(settings)?;
    let decision = decide(settings, request, &redactor, &analyzers)?;
    // Said once the analysis ran, so that a usage error stays a single line.
    for notice in notices {
        eprintln!("deploy-gate: {notice}");
    }

    let rendered = match request.format {
        OutputFormat::Json => report::json(&decision),
        OutputFormat::Text => report::text(&decision),
        OutputFormat::Github => {
            let mut out = report::github_annotations(&decision);
            out.push_str(&report::text(&decision));
            out
        }
    };
    // Last guard: everything in the decision came from redacted text, but nothing
    // leaves the process without one more pass.
    let rendered = redactor.redact(&rendered).text.into_owned();
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(rendered.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|err| {
            CliError::no_decision(format!("cannot write the report to stdout: {err}"))
        })?;

    if let Some(path) = &request.step_summary {
        let markdown = redactor
            .redact(&report::markdown(&decision))
            .text
            .into_owned();
        if let Err(err) = append(path, &markdown) {
            eprintln!(
                "deploy-gate: warning: cannot append to GITHUB_STEP_SUMMARY {}: {err}",
                path.display()
            );
        }
    }

    let models_failed = decision.consensus.n_model_verdicts < decision.consensus.quorum;
    if models_failed && decision.recommendation != Recommendation::Block {
        eprintln!(
            "deploy-gate: error: no complete decision: {} of {} model verdicts arrived (the report says why); the gate does not pass an unanalysed change",
            decision.consensus.n_model_verdicts, decision.consensus.quorum
        );
        return Ok(Exit::NoDecision);
    }
    Ok(exit_for(decision.recommendation, request.fail_on))
}

/// Model providers and the notices about them for the user.
pub(crate) type Analyzers = (Vec<Box<dyn Analyzer>>, Vec<String>);

/// The model providers that will be asked: the enabled ones whose key is present,
/// and what to tell the user about them (a missing key in one line, start-up
/// warnings). Any other setup error is a configuration error.
pub(crate) fn model_analyzers(settings: &Settings) -> Result<Analyzers, CliError> {
    let models = &settings.models;
    let mut notices = Vec::new();
    if models.enabled.is_empty() {
        return Ok((Vec::new(), notices));
    }
    let setup = ProviderSetup::new(settings.bands, &models.prompt, models.price_table())
        .map_err(CliError::usage)?;
    let mut analyzers: Vec<Box<dyn Analyzer>> = Vec::new();
    let mut missing_keys = Vec::new();
    for provider in &models.enabled {
        let built: Result<Box<dyn Analyzer>, ModelError> = match provider {
            ProviderName::Anthropic => AnthropicProvider::new(&models.anthropic, &setup)
                .map(|p| Box::new(p) as Box<dyn Analyzer>),
            ProviderName::Openai => OpenAiProvider::new(&models.openai, &setup)
                .map(|p| Box::new(p) as Box<dyn Analyzer>),
        };
        match built {
            Ok(analyzer) => analyzers.push(analyzer),
            Err(ModelError::MissingApiKey { env_var, .. }) => missing_keys.push(env_var),
            Err(err) => return Err(CliError::usage(err)),
        }
    }
    if analyzers.is_empty() {
        notices.push(format!(
            "analysis is rules-only: {} not set, so no model is asked",
            missing_keys.join(" and ")
        ));
        return Ok((analyzers, notices));
    }
    let model_ids: Vec<String> = models
        .enabled
        .iter()
        .map(|p| match p {
            ProviderName::Anthropic => models.anthropic.model.clone(),
            ProviderName::Openai => models.openai.model.clone(),
        })
        .collect();
    let ids: Vec<&str> = model_ids.iter().map(String::as_str).collect();
    let today = time::OffsetDateTime::now_utc().date();
    for warning in setup.startup_warnings(&ids, &models.deprecation_table(), today) {
        notices.push(format!("warning: {warning}"));
    }
    for env_var in missing_keys {
        notices.push(format!(
            "warning: {env_var} is not set: that provider is skipped"
        ));
    }
    Ok((analyzers, notices))
}

/// Asks every model in parallel, with the rules findings as hints.
fn ask_models(
    analyzers: &[Box<dyn Analyzer>],
    context: &DeployContext,
    rules: &Verdict,
) -> Result<Vec<ModelOutcome>, CliError> {
    if analyzers.is_empty() {
        return Ok(Vec::new());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::no_decision(format!("cannot start the async runtime: {err}")))?;
    Ok(runtime.block_on(gate_models::ask_all(analyzers, context, rules)))
}

/// Builds the context and the rules verdict, and combines them into a decision.
fn decide(
    settings: &Settings,
    request: &CheckRequest,
    redactor: &Redactor,
    analyzers: &[Box<dyn Analyzer>],
) -> Result<Decision, CliError> {
    let started = Instant::now();
    let options = settings.context_options(request.repo_name.clone());
    let range = Range {
        base: request.base.clone(),
        head: request.head.clone(),
    };
    let mut rules = RulesAnalyzer::new(settings.bands);
    let context = gate_git::build_context(&request.repo, &range, &options, redactor, &mut rules)
        .map_err(git_error)?;
    let mut verdict = rules.finish(&context);
    verdict.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

    // The policy first decides whether the models are worth asking (a docs-only
    // change is not), then raises or caps the consensus' answer.
    let plan = settings.loaded_policy.plan(
        &context,
        &verdict,
        settings.bands,
        &settings.consensus,
        analyzers.len(),
    );
    let outcomes = if plan.skips_models() {
        Vec::new()
    } else {
        ask_models(analyzers, &context, &verdict)?
    };

    let decided_at = gate_core::rfc3339(time::OffsetDateTime::now_utc());
    let event_id = format!("check:{}@{}", context.repo, context.head);
    Ok(plan.decide(&event_id, &context, &decided_at, verdict, outcomes))
}

/// A git failure that the user caused is a usage error (2); anything else means no
/// decision could be made (3).
pub(crate) fn git_error(err: GitError) -> CliError {
    if err.is_usage_error() {
        CliError::usage(err)
    } else {
        CliError::no_decision(err)
    }
}

pub(crate) fn exit_for(recommendation: Recommendation, fail_on: FailOn) -> Exit {
    match (recommendation, fail_on) {
        (Recommendation::Deploy, _) => Exit::Proceed,
        (Recommendation::Hold, FailOn::Hold) => Exit::Hold,
        (Recommendation::Hold, FailOn::Block) => {
            eprintln!("deploy-gate: warning: the change is on hold for a human review; proceeding because --fail-on is `block`");
            Exit::Proceed
        }
        (Recommendation::Block, _) => Exit::Block,
    }
}

fn append(path: &PathBuf, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}
