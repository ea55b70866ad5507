//! A person's decision: approving a held change, or overriding the automatic
//! answer either way, recorded where every reader of decisions looks.

use gate_bus::DecisionStore;
use gate_core::{Approval, Band, Decision, Recommendation, Redactor};

use crate::{
    deps::{close_quietly, OrchestratorDeps},
    ApproveError,
};

/// Longest accepted `by` (bytes).
const MAX_BY_BYTES: usize = 200;
/// Longest accepted reason (bytes): a sentence or a paragraph, not a document.
const MAX_REASON_BYTES: usize = 4_000;

/// Records a person's decision for `event_id` that supersedes the automatic one
/// (`deploy-gate approve` passes [`Recommendation::Deploy`]; `override` any).
///
/// The automatic decision must be in the store ([`ApproveError::NotFound`]
/// otherwise). The person's decision is a copy of it — same risks, verdicts and
/// score, so a reader still sees how risky the change is — with `approval` set
/// (`by`, `reason`, now, and the automatic recommendation it supersedes),
/// `consensus.mode = "human"`, the chosen recommendation and its band, a summary
/// saying who decided and why, and a fresh `decided_at`. `by` and `reason` pass
/// through secret redaction first.
///
/// It is stored with [`DecisionStore::supersede`] (the automatic one stays
/// available under `decision-auto`), **then** published to the results exchange
/// as `decision.<rec>.<repo-slug>` with confirms, so it is recorded in the
/// decisions log and reaches orchestrators that are waiting. Overriding an
/// earlier approval supersedes from the automatic decision again. Running the
/// same approval twice is harmless (the second publishes a second record).
///
/// This call trusts its caller to have checked who decides; the CLI and any
/// caller acting for someone else use [`approve_signed`](crate::approve_signed),
/// which applies only a configured approver's signed decision.
pub async fn approve(
    deps: &OrchestratorDeps,
    event_id: &str,
    by: &str,
    reason: &str,
    recommendation: Recommendation,
) -> Result<Decision, ApproveError> {
    apply(deps, event_id, by, reason, recommendation, None).await
}

/// [`approve`], with `note` (the approval's signature) added to the consensus
/// notes of the person's decision.
pub(crate) async fn apply(
    deps: &OrchestratorDeps,
    event_id: &str,
    by: &str,
    reason: &str,
    recommendation: Recommendation,
    note: Option<String>,
) -> Result<Decision, ApproveError> {
    validate(event_id, by, reason)?;
    let store = deps.decision_store().ok_or(ApproveError::NoStore)?;
    // Connect before writing anything, so a broker outage leaves no half-done
    // approval behind.
    let bus = deps.connect().await.map_err(ApproveError::Bus)?;
    let result = async {
        let publisher = bus.publisher().await.map_err(ApproveError::Bus)?;
        let automatic = automatic_decision(&store, event_id).await?;
        let decided_at = gate_core::rfc3339(time::OffsetDateTime::now_utc());
        let mut decision = human_decision(&automatic, by, reason, recommendation, decided_at);
        decision.consensus.notes.extend(note);
        store
            .supersede(&decision)
            .await
            .map_err(ApproveError::Store)?;
        publisher
            .publish_decision(&decision, None)
            .await
            .map_err(ApproveError::Bus)?;
        Ok(decision)
    }
    .await;
    close_quietly(&bus).await;
    result
}

fn validate(event_id: &str, by: &str, reason: &str) -> Result<(), ApproveError> {
    let invalid = |why: String| Err(ApproveError::InvalidInput(why));
    if event_id.trim().is_empty() {
        return invalid("the event id is empty".to_string());
    }
    if by.trim().is_empty() {
        return invalid("who decides (--by) is empty".to_string());
    }
    if reason.trim().is_empty() {
        return invalid("the reason is empty".to_string());
    }
    if by.len() > MAX_BY_BYTES {
        return invalid(format!("--by is longer than {MAX_BY_BYTES} bytes"));
    }
    if reason.len() > MAX_REASON_BYTES {
        return invalid(format!(
            "the reason is longer than {MAX_REASON_BYTES} bytes"
        ));
    }
    Ok(())
}

/// The decision a person's decision is built from: the stored one, or, when that
/// is already a person's, the automatic one it superseded.
async fn automatic_decision(
    store: &DecisionStore,
    event_id: &str,
) -> Result<Decision, ApproveError> {
    let current = store
        .get(event_id)
        .await
        .map_err(ApproveError::Store)?
        .ok_or_else(|| ApproveError::NotFound {
            event_id: event_id.to_string(),
        })?;
    if current.approval.is_none() {
        return Ok(current);
    }
    let superseded = store
        .get_superseded(event_id)
        .await
        .map_err(ApproveError::Store)?;
    Ok(superseded.unwrap_or(current))
}

/// The person's decision, as a copy of `automatic`.
fn human_decision(
    automatic: &Decision,
    by: &str,
    reason: &str,
    recommendation: Recommendation,
    decided_at: String,
) -> Decision {
    let redactor = Redactor::new();
    let by = redactor.redact(by.trim()).text.into_owned();
    let reason = redactor.redact_prose(reason.trim()).text.into_owned();
    // When the base is itself a person's decision (its automatic one expired), keep
    // naming the automatic recommendation it had superseded.
    let superseded = automatic
        .approval
        .as_ref()
        .map_or(automatic.recommendation, |approval| approval.superseded);
    let verb = match recommendation {
        Recommendation::Deploy => "Approved for deploy",
        Recommendation::Hold => "Held",
        Recommendation::Block => "Blocked",
    };
    let mut summary = format!(
        "{verb} by {by}: {reason} (automatic decision: {superseded}, risk {}/100",
        automatic.risk_score
    );
    if automatic.approval.is_none() && !automatic.summary.is_empty() {
        summary.push_str(": ");
        summary.push_str(&automatic.summary);
    }
    summary.push(')');

    let mut decision = automatic.clone();
    decision.recommendation = recommendation;
    decision.band = band_for(recommendation, automatic.band);
    decision.summary = summary;
    decision.consensus.mode = "human".to_string();
    decision.consensus.notes.push(format!(
        "{by} decided {recommendation}, superseding the automatic {superseded}: {reason}"
    ));
    decision.decided_at = decided_at.clone();
    decision.approval = Some(Approval {
        by,
        reason,
        at: decided_at,
        superseded,
    });
    decision
}

/// The band that says what the person chose: a deploy keeps the automatic band
/// when that already deployed, and is `review` otherwise (a person reviewed it).
/// The score stays the analysis's.
fn band_for(recommendation: Recommendation, automatic: Band) -> Band {
    match recommendation {
        Recommendation::Deploy => match automatic {
            Band::Auto | Band::Review => automatic,
            Band::Hold | Band::Block => Band::Review,
        },
        Recommendation::Hold => Band::Hold,
        Recommendation::Block => Band::Block,
    }
}

#[cfg(test)]
mod tests {
    use gate_core::{Consensus, ContextSummary, Usage, DECISION_SCHEMA_VERSION};

    use super::*;

    fn automatic(recommendation: Recommendation, band: Band, score: u8) -> Decision {
        Decision {
            schema_version: DECISION_SCHEMA_VERSION,
            event_id: "ev-1".into(),
            repo: "acme/shop".into(),
            base: "a".repeat(40),
            head: "b".repeat(40),
            risk_score: score,
            band,
            recommendation,
            summary: "Drops a column.".into(),
            risks: vec![],
            rollback_notes: vec!["git revert bbbb".into()],
            verdicts: vec![],
            consensus: Consensus {
                mode: "rules_only".into(),
                quorum: 0,
                n_model_verdicts: 0,
                agreed: true,
                floor_applied: false,
                notes: vec![],
            },
            usage: Usage::default(),
            cost_usd: Some(0.0),
            cached: false,
            decided_at: "2025-01-01T00:00:00Z".into(),
            produced_at: None,
            context: ContextSummary {
                n_files: 1,
                n_commits: 1,
                lines_added: 1,
                lines_removed: 0,
                packed_chars: 10,
                n_omitted: 0,
                omitted: vec![],
            },
            approval: None,
        }
    }

    #[test]
    fn an_approval_says_who_decided_why_and_what_it_superseded() {
        let auto = automatic(Recommendation::Block, Band::Block, 90);
        let human = human_decision(
            &auto,
            " alice ",
            "verified on staging",
            Recommendation::Deploy,
            "2025-01-02T00:00:00Z".into(),
        );
        assert_eq!(human.recommendation, Recommendation::Deploy);
        assert_eq!(human.band, Band::Review);
        assert_eq!(human.risk_score, 90, "the analysis's score stays");
        assert_eq!(human.consensus.mode, "human");
        assert_eq!(
            human.summary,
            "Approved for deploy by alice: verified on staging (automatic decision: block, risk 90/100: Drops a column.)"
        );
        let approval = human.approval.expect("approval set");
        assert_eq!(approval.by, "alice");
        assert_eq!(approval.superseded, Recommendation::Block);
        assert_eq!(approval.at, human.decided_at);
    }

    #[test]
    fn an_override_of_an_approval_still_names_the_automatic_recommendation() {
        let auto = automatic(Recommendation::Hold, Band::Hold, 60);
        let approved = human_decision(&auto, "a", "ok", Recommendation::Deploy, "t1".into());
        let overridden = human_decision(&approved, "b", "no", Recommendation::Block, "t2".into());
        assert_eq!(
            overridden.approval.expect("approval").superseded,
            Recommendation::Hold
        );
        assert_eq!(overridden.band, Band::Block);
    }

    #[test]
    fn bands_follow_what_the_person_chose() {
        assert_eq!(band_for(Recommendation::Deploy, Band::Auto), Band::Auto);
        assert_eq!(band_for(Recommendation::Deploy, Band::Block), Band::Review);
        assert_eq!(band_for(Recommendation::Hold, Band::Auto), Band::Hold);
        assert_eq!(band_for(Recommendation::Block, Band::Review), Band::Block);
    }

    #[test]
    fn secrets_in_a_reason_are_redacted() {
        let auto = automatic(Recommendation::Hold, Band::Hold, 60);
        let token = format!("ghp_{}", "A1b2C3d4E5".repeat(4));
        let human = human_decision(
            &auto,
            "alice",
            &format!("tested with token {token}"),
            Recommendation::Deploy,
            "t".into(),
        );
        let reason = human.approval.expect("approval").reason;
        assert!(!reason.contains(&token), "{reason}");
        assert!(!human.summary.contains(&token));
        let human = human_decision(
            &auto,
            "alice",
            "staging login password: hunter2 worked",
            Recommendation::Deploy,
            "t".into(),
        );
        let reason = human.approval.expect("approval").reason;
        assert!(!reason.contains("hunter2"), "{reason}");
        assert!(!human.summary.contains("hunter2"));
    }

    #[test]
    fn empty_or_oversized_input_is_refused() {
        assert!(validate("", "a", "r").is_err());
        assert!(validate("ev", " ", "r").is_err());
        assert!(validate("ev", "a", "").is_err());
        assert!(validate("ev", "a", &"x".repeat(MAX_REASON_BYTES + 1)).is_err());
        assert!(validate("ev", "a", "r").is_ok());
    }
}
