//! The domain of deploy-gate: what a merge event, a deploy context, a verdict and a
//! decision are, how a risk score maps to a recommendation, and how secrets are
//! redacted out of text before it goes anywhere.
//!
//! Architecture invariant: this crate does no I/O. It knows nothing of git, tokio,
//! RabbitMQ, Redis or HTTP; every other crate builds on these types.

mod bands;
mod consensus;
mod context;
mod decision;
mod diff;
mod event;
mod paths;
mod policy;
mod prompt;
mod redact;
mod risk;

pub use bands::{Band, Bands, BandsError};
pub use consensus::{
    decide, is_review_steering, ConsensusMode, ConsensusPolicy, DecisionInputs, ModelOutcome,
    ScoreRule, REVIEW_STEERING,
};
pub use context::{
    ChangedFile, CommitInfo, DepChange, DeployContext, DiffVisitor, FileStatus, LineKind, Omission,
    SecretFinding,
};
pub use decision::{
    Approval, CanaryNotice, Consensus, ContextSummary, Decision, Notification, Usage, Verdict,
    DECISION_SCHEMA_VERSION, NOTIFICATION_SCHEMA_VERSION,
};
pub use decision::{
    Outcome, OutcomeError, OutcomeResult, MAX_OUTCOME_NOTE_BYTES, OUTCOME_SCHEMA_VERSION,
};
pub use diff::{walk_packed_diff, DiffLine, DiffParser};
pub use event::{EventError, MergeEvent, EVENT_SCHEMA_VERSION};
pub use paths::{classify_path, is_auth_path, is_auth_word, path_words, FileClass};
pub use policy::{apply_policy, Policy, PolicyError, PolicyPlan, SkipReason};
pub use prompt::{
    estimate_tokens, repair_message, system_prompt, user_prompt, BoundaryCollision, IncidentNote,
    SystemPrompt, PROMPT_VERSION, VERDICT_TOOL_NAME,
};
pub use redact::{LineRedactor, Redacted, Redactor, SecretKind};
pub use risk::{Category, Evidence, Recommendation, Risk, Severity};

/// Formats a timestamp as RFC 3339, the one time format of every contract.
pub fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}
