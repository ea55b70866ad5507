//! Model analyzers: the [`Analyzer`] trait every analyzer implements, and the
//! providers that ask a model — Anthropic Messages (prompt-cached, forced tool use)
//! and OpenAI-compatible chat completions (strict JSON schema) — with rate limits,
//! retries, usage and cost.
//!
//! Architecture invariant: this crate knows HTTP and the providers' wire formats,
//! and nothing of queues, stores or the decision policy. Every model verdict is
//! validated here (schema, band consistency) before it leaves; the rules floor and
//! consensus are applied by the caller.

mod anthropic;
mod config;
mod error;
mod limiter;
mod openai;
mod pricing;
mod rules;
mod transport;
mod verdict;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use gate_core::{Bands, DeployContext, Redactor, Risk, Usage, Verdict};

pub use anthropic::AnthropicProvider;
pub use config::{
    AnthropicSettings, ApiKey, CacheTtl, FleetShare, HttpSettings, OpenAiSettings, PromptSettings,
    RateLimitSettings, RetrySettings,
};
pub use error::{Disposition, ModelError};
pub use gate_core::{IncidentNote, SystemPrompt, PROMPT_VERSION};
pub use limiter::{
    parse_rate_headers, FleetAdmission, FleetBudget, FleetLimiter, ProviderLimiter, RateHeaders,
    Reservation, Window,
};
pub use openai::OpenAiProvider;
pub use pricing::{
    anthropic_min_cacheable_tokens, cacheability_warning, Deprecation, DeprecationTable, Price,
    PriceTable,
};
pub use rules::{ask_all, Rules};

/// The prompt lives in core (pure, versioned); this alias keeps the providers' paths short.
use gate_core as prompt;
pub use verdict::{validate as validate_verdict, verdict_schema};

/// A boxed future, so that analyzers can sit behind `dyn Analyzer` in a list.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One analyzer's answer for one change, with what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The validated verdict (its `usage` and `latency_ms` are filled in too).
    pub verdict: Verdict,
    /// Tokens over every call of the analysis (a repair turn included), and cost.
    pub usage: Usage,
    /// Wall time, retries and rate-limit waits included.
    pub latency: Duration,
    /// `anthropic`, `openai`, or `rules`.
    pub provider: String,
    /// The model id as configured.
    pub model: String,
    /// The first verdict was invalid and a repair turn fixed it.
    pub repaired: bool,
}

/// Something that judges a change: a model provider, or the rules analyzer. The
/// worker runs several in parallel and combines their verdicts.
pub trait Analyzer: Send + Sync {
    /// `provider/model`, as it appears in verdicts and metrics.
    fn id(&self) -> String;

    /// Judges `context`. `rules_hints` are the rules analyzer's findings, given to a
    /// model as trusted hints (empty for the rules analyzer itself).
    fn analyze<'a>(
        &'a self,
        context: &'a DeployContext,
        rules_hints: &'a [Risk],
    ) -> BoxFuture<'a, Result<Analysis, ModelError>>;

    /// Judges `context` without rules hints: the signature callers that have no
    /// rules findings (demos, benchmarks) use.
    fn analyze_context<'a>(
        &'a self,
        context: &'a DeployContext,
    ) -> BoxFuture<'a, Result<Analysis, ModelError>> {
        self.analyze(context, &[])
    }

    /// Shares this analyzer's rate limits with a fleet of processes through
    /// `fleet` (a worker calls it at start-up). Analyzers without limits ignore it;
    /// a provider whose settings say `fleet = false` keeps its limits to itself.
    fn share_limits(&self, fleet: Arc<dyn FleetLimiter>) {
        let _ = fleet;
    }
}

/// What every provider shares: the static prompt (built once, so it is byte-for-byte
/// the same on every call and stays cached), the bands verdicts are checked
/// against, the prices, and the redactor applied to everything sent.
#[derive(Debug, Clone)]
pub struct ProviderSetup {
    /// The static system part.
    pub system: Arc<SystemPrompt>,
    /// Bands a verdict's recommendation must agree with.
    pub bands: Bands,
    /// Prices for cost.
    pub prices: PriceTable,
    /// Redacts the user part once more before it leaves the process.
    pub redactor: Arc<Redactor>,
}

impl ProviderSetup {
    /// Builds the static prompt from settings, reading the incident notes.
    pub fn new(
        bands: Bands,
        prompt: &PromptSettings,
        prices: PriceTable,
    ) -> Result<ProviderSetup, ModelError> {
        let incidents = match &prompt.incidents_dir {
            Some(dir) => load_incidents(dir).map_err(|err| ModelError::Config {
                provider: "models",
                message: format!("reading incident notes from {}: {err}", dir.display()),
            })?,
            None => Vec::new(),
        };
        let system = prompt::system_prompt(
            &bands,
            &prompt.org_policy,
            &incidents,
            prompt.max_incident_chars,
        );
        Ok(ProviderSetup {
            system: Arc::new(system),
            bands,
            prices,
            redactor: Arc::new(Redactor::new()),
        })
    }

    /// Messages to print once at start-up: models near or past their end of life,
    /// a static prompt too short to cache, incident notes cut, unknown prices.
    pub fn startup_warnings(
        &self,
        models: &[&str],
        deprecations: &DeprecationTable,
        today: time::Date,
    ) -> Vec<String> {
        let mut warnings = deprecations.warnings(models.iter().copied(), today, 60);
        let static_tokens =
            self.system.est_tokens() + prompt::estimate_tokens(&verdict_schema().to_string());
        for model in models {
            warnings.extend(cacheability_warning(model, static_tokens));
            if self.prices.get(model).is_none() {
                warnings.push(format!("model {model} has no price in the price table: its cost is reported as unknown"));
            }
        }
        for cut in &self.system.incidents_cut {
            warnings.push(format!("incident note {cut}"));
        }
        warnings
    }
}

/// Reads `*.md` postmortems from a folder, newest first by file name (name them
/// `YYYY-MM-DD-…md`), so the size cap drops the oldest.
pub fn load_incidents(dir: &Path) -> std::io::Result<Vec<IncidentNote>> {
    let mut notes = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("md") || !path.is_file() {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        notes.push(IncidentNote {
            name,
            text: std::fs::read_to_string(&path)?,
        });
    }
    notes.sort_by(|a, b| b.name.cmp(&a.name));
    Ok(notes)
}
