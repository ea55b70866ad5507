//! Verdicts (one analyzer's opinion) and decisions (the gate's answer).

use serde::{Deserialize, Serialize};

use crate::{Band, Bands, DeployContext, Omission, Recommendation, Risk};

/// The Decision schema version this build writes.
pub const DECISION_SCHEMA_VERSION: u32 = 1;

/// Tokens and money one analysis cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read_input_tokens: u64,
    /// Cost in USD; `None` when a price is unknown (never reported as 0).
    #[serde(default)]
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// Adds another call's usage. An unknown cost on either side stays unknown.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
        self.cost_usd = match (self.cost_usd, other.cost_usd) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }
}

/// One analyzer's opinion of a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Who judged: `rules`, or `provider/model`.
    pub analyzer: String,
    /// 0–100.
    pub risk_score: u8,
    /// The recommendation the analyzer gave (consistent with its score's band).
    pub recommendation: Recommendation,
    /// One or two sentences.
    pub summary: String,
    /// The reasons, most severe first.
    #[serde(default)]
    pub risks: Vec<Risk>,
    /// How to undo the change.
    #[serde(default)]
    pub rollback_notes: Vec<String>,
    /// Wall time of the analysis in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Tokens and cost (zero for the rules analyzer, which is free).
    #[serde(default)]
    pub usage: Usage,
}

/// How the verdicts were combined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consensus {
    /// The combining mode (`rules_only`, `unanimous`, `majority`, `strictest`).
    pub mode: String,
    /// How many model verdicts were required.
    pub quorum: u32,
    /// How many model verdicts arrived.
    pub n_model_verdicts: u32,
    /// All verdicts gave the same recommendation.
    pub agreed: bool,
    /// The rules analyzer's floor raised the final score.
    pub floor_applied: bool,
    /// Why the result is what it is, in words.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Size facts of the analysed change, so a reader knows what the gate saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextSummary {
    /// Changed files.
    pub n_files: usize,
    /// Commits in the range.
    pub n_commits: usize,
    /// Lines added.
    pub lines_added: u64,
    /// Lines removed.
    pub lines_removed: u64,
    /// Characters of diff the analyzers saw.
    pub packed_chars: usize,
    /// Files cut from or summarized in the packed diff.
    pub n_omitted: usize,
    /// The first of those, with the reason (at most [`ContextSummary::MAX_LISTED`]).
    #[serde(default)]
    pub omitted: Vec<Omission>,
}

impl ContextSummary {
    /// How many omissions a decision lists by name.
    pub const MAX_LISTED: usize = 20;

    /// The summary of a context.
    pub fn of(context: &DeployContext) -> Self {
        ContextSummary {
            n_files: context.files.len(),
            n_commits: context.n_commits,
            lines_added: context.lines_added,
            lines_removed: context.lines_removed,
            packed_chars: context.packed_diff.len(),
            n_omitted: context.n_omitted,
            omitted: context
                .omitted
                .iter()
                .take(Self::MAX_LISTED)
                .cloned()
                .collect(),
        }
    }
}

/// The gate's answer for one event. Its JSON is a public contract
/// (`schemas/decision.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Always [`DECISION_SCHEMA_VERSION`] for decisions this build writes.
    pub schema_version: u32,
    /// The event this answers.
    pub event_id: String,
    /// Repository name.
    pub repo: String,
    /// Base commit of the range.
    pub base: String,
    /// Head commit of the range.
    pub head: String,
    /// Final 0–100 score.
    pub risk_score: u8,
    /// The band of the final score.
    pub band: Band,
    /// What the orchestrator should do.
    pub recommendation: Recommendation,
    /// Why, in a sentence or two.
    pub summary: String,
    /// All reasons, most severe first.
    pub risks: Vec<Risk>,
    /// How to undo the change, starting with the exact `git revert` command.
    pub rollback_notes: Vec<String>,
    /// Every analyzer's verdict, the rules analyzer's first.
    pub verdicts: Vec<Verdict>,
    /// How the verdicts were combined.
    pub consensus: Consensus,
    /// Summed usage over all verdicts.
    pub usage: Usage,
    /// Summed cost in USD; `None` when any price is unknown.
    pub cost_usd: Option<f64>,
    /// Served from the verdict cache.
    pub cached: bool,
    /// When the decision was made (RFC 3339).
    pub decided_at: String,
    /// What the gate saw of the change.
    pub context: ContextSummary,
    /// Set when a person approved or overrode the automatic decision; this decision
    /// then supersedes the automatic one for the same event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// A person's decision that supersedes the automatic one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Who decided (as given to `deploy-gate approve|override --by`).
    pub by: String,
    /// Why, in their words.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
    /// The automatic recommendation that was superseded.
    pub superseded: Recommendation,
}

/// The Notification schema version this build writes.
pub const NOTIFICATION_SCHEMA_VERSION: u32 = 1;

/// A decision worth telling people about, routed as `notify.<channel>.<severity>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    /// Always [`NOTIFICATION_SCHEMA_VERSION`] for notifications this build writes.
    pub schema_version: u32,
    /// The event the decision answers; with `channel`, the delivery's idempotency key.
    pub event_id: String,
    /// The configured channel (a Slack webhook or a generic webhook target).
    pub channel: String,
    /// The most severe risk of the decision (`info` when there is none).
    pub severity: crate::Severity,
    /// The decision itself.
    pub decision: Decision,
}

impl Decision {
    /// The decision of a single analyzer (the rules-only path): its score, banded by
    /// `bands`, with the revert command first among the rollback notes.
    pub fn from_single_verdict(
        event_id: impl Into<String>,
        context: &DeployContext,
        verdict: Verdict,
        bands: &Bands,
        decided_at: String,
    ) -> Decision {
        let band = bands.band(verdict.risk_score);
        let revert = context.revert_command();
        let mut rollback_notes = vec![revert.clone()];
        rollback_notes.extend(
            verdict
                .rollback_notes
                .iter()
                .filter(|note| **note != revert)
                .cloned(),
        );
        let usage = verdict.usage.clone();
        Decision {
            schema_version: DECISION_SCHEMA_VERSION,
            event_id: event_id.into(),
            repo: context.repo.clone(),
            base: context.base.clone(),
            head: context.head.clone(),
            risk_score: verdict.risk_score.min(100),
            band,
            recommendation: band.recommendation(),
            summary: verdict.summary.clone(),
            risks: verdict.risks.clone(),
            rollback_notes,
            consensus: Consensus {
                mode: "rules_only".to_string(),
                quorum: 0,
                n_model_verdicts: 0,
                agreed: true,
                floor_applied: false,
                notes: vec!["no model configured: the rules analyzer decided alone".to_string()],
            },
            cost_usd: usage.cost_usd.or(Some(0.0)),
            usage,
            verdicts: vec![verdict],
            cached: false,
            decided_at,
            context: ContextSummary::of(context),
            approval: None,
        }
    }
}
