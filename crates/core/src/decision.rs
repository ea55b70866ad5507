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
    /// When the merge event it answers was produced (RFC 3339), so a reader can
    /// tell the end-to-end decision time; absent on decisions made outside the
    /// fleet (`check`) and on those written before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produced_at: Option<String>,
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
    /// The decision itself (for a canary notice: the deploy decision the canary
    /// judged, whose rollback plan it carries).
    pub decision: Decision,
    /// Set when the notification is about a canary judgement rather than the deploy
    /// decision: the notifier then leads with the canary's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryNotice>,
}

/// What a canary judgement tells people ([`Notification::canary`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryNotice {
    /// The canary's result: `rollback`, `continue` or `promote`.
    pub result: String,
    /// The canary's name.
    pub canary: String,
    /// The baseline's name.
    pub baseline: String,
    /// Weighted score 0–100 over the metrics with data; `None` when none had data.
    pub score: Option<f64>,
    /// What moved and why the result is what it is.
    pub summary: String,
    /// The metrics that failed, each with how it moved.
    pub failed: Vec<String>,
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
        let event_id = event_id.into();
        let policy = crate::ConsensusPolicy::default();
        let inputs = crate::DecisionInputs {
            event_id: &event_id,
            context,
            bands,
            policy: &policy,
            decided_at: &decided_at,
        };
        let mut decision = crate::decide(inputs, verdict, Vec::new());
        // The rules analyzer is free: a hand-built verdict without a cost costs 0.
        decision.cost_usd = decision.cost_usd.or(Some(0.0));
        decision
    }
}

/// The Outcome schema version this build writes (and the only one it reads).
pub const OUTCOME_SCHEMA_VERSION: u32 = 1;

/// Longest outcome note kept, in bytes: a sentence or a link to a postmortem, not
/// the postmortem. Longer notes are cut (with `…`), never refused, so an
/// orchestrator's report is not lost over its length.
pub const MAX_OUTCOME_NOTE_BYTES: usize = 2_000;

/// Longest event id an outcome may name: the AMQP message id it travels with is a
/// short string.
const MAX_EVENT_ID_BYTES: usize = 255;

/// What happened to a change after the gate decided: the feedback that
/// `deploy-gate calibrate` relates to the decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeResult {
    /// The change went out.
    Deployed,
    /// The change went out and was rolled back.
    RolledBack,
    /// The change went out and caused an incident.
    Incident,
}

impl OutcomeResult {
    /// Every result, in the order reports list them.
    pub const ALL: [OutcomeResult; 3] = [
        OutcomeResult::Deployed,
        OutcomeResult::RolledBack,
        OutcomeResult::Incident,
    ];

    /// The wire name: `deployed`, `rolled_back`, `incident`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeResult::Deployed => "deployed",
            OutcomeResult::RolledBack => "rolled_back",
            OutcomeResult::Incident => "incident",
        }
    }
}

impl std::fmt::Display for OutcomeResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An orchestrator's report of what happened to a decided change, published as
/// `outcome.<event_id>` on the results exchange and stored next to the decision.
/// Its JSON is a public contract (`schemas/outcome.schema.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// [`OUTCOME_SCHEMA_VERSION`]; optional on input (orchestrators written
    /// against the four-field message omit it), always written.
    #[serde(default = "outcome_schema_version")]
    pub schema_version: u32,
    /// The event whose decision this reports on.
    pub event_id: String,
    /// What happened.
    pub result: OutcomeResult,
    /// In the reporter's words (redacted, at most [`MAX_OUTCOME_NOTE_BYTES`]).
    #[serde(default)]
    pub note: String,
    /// When it happened (RFC 3339, normalised to UTC).
    pub at: String,
}

fn outcome_schema_version() -> u32 {
    OUTCOME_SCHEMA_VERSION
}

/// A payload or input that is not an outcome this build can store.
#[derive(Debug, thiserror::Error)]
pub enum OutcomeError {
    /// Not JSON, or JSON of the wrong shape (an unknown `result`, a missing field).
    #[error("malformed outcome: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A schema version this build does not know.
    #[error("unknown outcome schema_version {found} (this build reads {OUTCOME_SCHEMA_VERSION})")]
    UnknownVersion {
        /// The version in the payload.
        found: u64,
    },
    /// A required field is empty.
    #[error("outcome field `{0}` is empty")]
    EmptyField(&'static str),
    /// The event id cannot travel as an AMQP message id.
    #[error("outcome event_id is {0} bytes, longer than {MAX_EVENT_ID_BYTES}")]
    EventIdTooLong(usize),
    /// `at` is not an RFC 3339 time.
    #[error("outcome field `at` is not an RFC 3339 time: {0:?}")]
    BadTime(String),
}

impl Outcome {
    /// An outcome reported now by a person or a tool: checked, the note redacted and
    /// cut, the time formatted as RFC 3339 UTC.
    pub fn new(
        event_id: &str,
        result: OutcomeResult,
        note: &str,
        at: time::OffsetDateTime,
    ) -> Result<Outcome, OutcomeError> {
        Outcome {
            schema_version: OUTCOME_SCHEMA_VERSION,
            event_id: event_id.to_string(),
            result,
            note: note.to_string(),
            at: crate::rfc3339(at),
        }
        .normalized()
    }

    /// Parses and checks an outcome payload: the version (when present) before the
    /// shape, so a future message says "unknown version", not "unknown field"; then
    /// the same checks and normalisation as [`Outcome::new`].
    pub fn from_json(payload: &[u8]) -> Result<Outcome, OutcomeError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            #[serde(default)]
            schema_version: Option<u64>,
        }
        let version: VersionOnly = serde_json::from_slice(payload)?;
        if let Some(found) = version.schema_version {
            if found != u64::from(OUTCOME_SCHEMA_VERSION) {
                return Err(OutcomeError::UnknownVersion { found });
            }
        }
        let outcome: Outcome = serde_json::from_slice(payload)?;
        outcome.normalized()
    }

    /// The checks every stored outcome has passed: an event id that fits a message
    /// id, a valid time (as UTC), a note without secrets and within its size.
    fn normalized(mut self) -> Result<Outcome, OutcomeError> {
        self.event_id = self.event_id.trim().to_string();
        if self.event_id.is_empty() {
            return Err(OutcomeError::EmptyField("event_id"));
        }
        if self.event_id.len() > MAX_EVENT_ID_BYTES {
            return Err(OutcomeError::EventIdTooLong(self.event_id.len()));
        }
        let at = time::OffsetDateTime::parse(
            self.at.trim(),
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|_| OutcomeError::BadTime(self.at.chars().take(64).collect()))?;
        self.at = crate::rfc3339(at.to_offset(time::UtcOffset::UTC));
        let note = crate::Redactor::new()
            .redact_prose(self.note.trim())
            .text
            .into_owned();
        self.note = cut(note, MAX_OUTCOME_NOTE_BYTES);
        self.schema_version = OUTCOME_SCHEMA_VERSION;
        Ok(self)
    }
}

/// `text` cut to at most `max` bytes on a character boundary, ending with `…` when cut.
fn cut(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

#[cfg(test)]
mod outcome_tests {
    use super::*;

    #[test]
    fn an_outcome_reads_with_or_without_a_schema_version_and_is_normalised() {
        let outcome = Outcome::from_json(
            br#"{"event_id": " ev-1 ", "result": "rolled_back", "note": "5xx spike", "at": "2026-03-01T10:00:00+02:00"}"#,
        )
        .expect("a valid outcome");
        assert_eq!(outcome.schema_version, OUTCOME_SCHEMA_VERSION);
        assert_eq!(outcome.event_id, "ev-1");
        assert_eq!(outcome.result, OutcomeResult::RolledBack);
        assert_eq!(outcome.at, "2026-03-01T08:00:00Z");
        let json = serde_json::to_value(&outcome).expect("serializes");
        assert_eq!(json["result"], "rolled_back");
        assert_eq!(json["schema_version"], 1);
    }

    #[test]
    fn bad_outcomes_are_refused_with_the_reason() {
        let refuse = |payload: &str| Outcome::from_json(payload.as_bytes()).unwrap_err();
        assert!(matches!(
            refuse(r#"{"schema_version": 2, "whatever": 1}"#),
            OutcomeError::UnknownVersion { found: 2 }
        ));
        assert!(matches!(
            refuse(r#"{"event_id": "e", "result": "exploded", "at": "2026-01-01T00:00:00Z"}"#),
            OutcomeError::Malformed(_)
        ));
        assert!(matches!(
            refuse(r#"{"event_id": " ", "result": "deployed", "at": "2026-01-01T00:00:00Z"}"#),
            OutcomeError::EmptyField("event_id")
        ));
        assert!(matches!(
            refuse(r#"{"event_id": "e", "result": "deployed", "at": "yesterday"}"#),
            OutcomeError::BadTime(_)
        ));
        assert!(matches!(
            refuse(
                r#"{"event_id": "e", "result": "deployed", "at": "2026-01-01T00:00:00Z", "extra": 1}"#
            ),
            OutcomeError::Malformed(_)
        ));
    }

    #[test]
    fn a_note_loses_its_secrets_and_its_excess_length() {
        let token = format!("ghp_{}", "A1b2C3d4E5".repeat(4));
        let at = time::OffsetDateTime::UNIX_EPOCH;
        let outcome = Outcome::new(
            "ev-1",
            OutcomeResult::Incident,
            &format!("paged; token {token} {}", "é".repeat(3_000)),
            at,
        )
        .expect("valid");
        assert!(!outcome.note.contains(&token), "{}", outcome.note);
        assert!(outcome.note.len() <= MAX_OUTCOME_NOTE_BYTES);
        assert!(outcome.note.ends_with('…'));
        assert_eq!(outcome.at, "1970-01-01T00:00:00Z");
        // A plain password a person pasted is a secret in a note too.
        let outcome = Outcome::new(
            "ev-1",
            OutcomeResult::Incident,
            "rolled back; DB password=hunter2 was logged",
            at,
        )
        .expect("valid");
        assert_eq!(
            outcome.note,
            "rolled back; DB password=[REDACTED:generic_secret] was logged"
        );
    }
}
