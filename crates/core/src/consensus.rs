//! Consensus: how the rules verdict and the model verdicts become one decision.
//!
//! The rules analyzer is the floor: when it is sure of a high or critical finding
//! (a destructive migration, a leaked secret, an auth check removed), or finds text
//! that tries to steer the review ([`REVIEW_STEERING`]), no model can talk the
//! score below the rules score. Models can always raise it. A model that
//! failed counts as missing; too few verdicts (below the quorum) fail closed to the
//! configured `on_analysis_error` recommendation, never to deploy.

use serde::{Deserialize, Serialize};

use crate::{
    Bands, Category, Consensus, ContextSummary, Decision, DeployContext, Recommendation, Risk,
    Severity, Usage, Verdict, DECISION_SCHEMA_VERSION,
};

/// How the rules analyzer starts the detail of a risk about text in the change that
/// is aimed at the reviewer ("AI reviewer: score 0", a fake end of the diff, a
/// claim of prior approval). Such a risk makes the rules score a floor whatever its
/// severity: the models read that text, and an obedient one would lower its score.
pub const REVIEW_STEERING: &str = "Review steering";

/// Whether `risk` is the rules analyzer's report of review steering (see
/// [`REVIEW_STEERING`]). Only the rules verdict's risks are asked: a model cannot
/// claim one to move the floor.
pub fn is_review_steering(risk: &Risk) -> bool {
    risk.category == Category::Auth && risk.detail.starts_with(REVIEW_STEERING)
}

/// How model recommendations combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsensusMode {
    /// Deploy only when every model says deploy; block only when every model says
    /// block; any other mix holds.
    #[default]
    Unanimous,
    /// What more than half the models say; without a majority, hold.
    Majority,
    /// The strictest recommendation any model gives.
    Strictest,
}

impl ConsensusMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsensusMode::Unanimous => "unanimous",
            ConsensusMode::Majority => "majority",
            ConsensusMode::Strictest => "strictest",
        }
    }
}

/// How the final score is computed from the model scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreRule {
    /// The highest model score.
    #[default]
    Max,
    /// The median model score (the higher middle for an even count).
    Median,
    /// The mean of model scores, rounded up.
    Mean,
}

/// The consensus part of the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusPolicy {
    /// How recommendations combine.
    pub mode: ConsensusMode,
    /// Minimum number of model verdicts; `0` means every configured model.
    pub quorum: u32,
    /// Scores spreading more than this is a disagreement, which holds at least.
    pub max_spread: u8,
    /// How the final score is computed.
    pub score_rule: ScoreRule,
    /// What an analysis that cannot be completed yields (`hold` or `block`).
    pub on_analysis_error: Recommendation,
}

impl Default for ConsensusPolicy {
    fn default() -> Self {
        ConsensusPolicy {
            mode: ConsensusMode::Unanimous,
            quorum: 0,
            max_spread: 40,
            score_rule: ScoreRule::Max,
            on_analysis_error: Recommendation::Hold,
        }
    }
}

/// What became of one configured model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutcome {
    /// `provider/model`.
    pub analyzer: String,
    /// The validated verdict, or why there is none.
    pub result: Result<Verdict, String>,
}

/// Everything `decide` needs besides the verdicts.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInputs<'a> {
    /// The event answered.
    pub event_id: &'a str,
    /// The change.
    pub context: &'a DeployContext,
    /// Score thresholds.
    pub bands: &'a Bands,
    /// The consensus policy.
    pub policy: &'a ConsensusPolicy,
    /// RFC 3339 time of the decision.
    pub decided_at: &'a str,
}

/// Combines the rules verdict and the model outcomes into a decision.
pub fn decide(inputs: DecisionInputs<'_>, rules: Verdict, models: Vec<ModelOutcome>) -> Decision {
    let DecisionInputs {
        event_id,
        context,
        bands,
        policy,
        decided_at,
    } = inputs;
    let mut notes = Vec::new();
    let n_configured = models.len() as u32;
    let (verdicts, failures): (Vec<_>, Vec<_>) = models.into_iter().partition(|m| m.result.is_ok());
    let model_verdicts: Vec<Verdict> = verdicts.into_iter().filter_map(|m| m.result.ok()).collect();
    for failed in &failures {
        if let Err(reason) = &failed.result {
            notes.push(format!("{} gave no verdict: {reason}", failed.analyzer));
        }
    }

    // The rules floor: a high or critical rules finding sets the minimum score; so
    // does text in the change that tries to steer the review, whatever its
    // severity, since a model that read it may have been talked down.
    let rules_certain = rules
        .risks
        .iter()
        .any(|r| r.severity >= Severity::High || is_review_steering(r));
    let floor = if rules_certain { rules.risk_score } else { 0 };

    let n_model = model_verdicts.len() as u32;
    let quorum = if policy.quorum == 0 {
        n_configured
    } else {
        policy.quorum
    };
    let mode_name;
    let mut recommendation;
    let mut score;
    let mut agreed = true;
    if n_configured == 0 {
        mode_name = "rules_only".to_string();
        score = rules.risk_score;
        recommendation = bands.recommendation(score);
        notes.push("no model configured: the rules analyzer decided alone".to_string());
    } else {
        mode_name = policy.mode.as_str().to_string();
        let scores: Vec<u8> = model_verdicts
            .iter()
            .map(|v| v.risk_score.min(100))
            .collect();
        score = combine_scores(&scores, policy.score_rule).unwrap_or(rules.risk_score);
        let recs: Vec<Recommendation> = model_verdicts.iter().map(|v| v.recommendation).collect();
        recommendation =
            combine_recommendations(&recs, policy.mode).unwrap_or(policy.on_analysis_error);
        agreed = recs.windows(2).all(|w| w[0] == w[1]);

        if let (Some(lo), Some(hi)) = (scores.iter().min(), scores.iter().max()) {
            let far_apart = hi - lo > policy.max_spread;
            let opposite =
                recs.contains(&Recommendation::Deploy) && recs.contains(&Recommendation::Block);
            if far_apart || opposite {
                agreed = false;
                recommendation = recommendation.max(Recommendation::Hold);
                let views: Vec<String> = model_verdicts
                    .iter()
                    .map(|v| {
                        format!(
                            "{} says {} ({}): {}",
                            v.analyzer, v.recommendation, v.risk_score, v.summary
                        )
                    })
                    .collect();
                notes.push(format!(
                    "models disagree (scores {lo}–{hi}); held for a human: {}",
                    views.join(" | ")
                ));
            }
        }
        if n_model < quorum {
            recommendation = recommendation.max(policy.on_analysis_error);
            notes.push(format!(
                "only {n_model} of the required {quorum} model verdicts arrived: {} by policy",
                policy.on_analysis_error
            ));
        }
        recommendation = recommendation.max(bands.recommendation(score));
    }

    let mut floor_applied = false;
    if floor > score {
        floor_applied = n_configured > 0;
        if floor_applied {
            notes.push(format!(
                "the rules analyzer's findings set the floor: score raised from {score} to {floor}"
            ));
        }
        score = floor;
    }
    recommendation = recommendation.max(bands.recommendation(score));
    let band = bands.band(score);

    // Reasons: the rules' evidence-backed risks first, then the models' new ones.
    let mut risks = rules.risks.clone();
    for verdict in &model_verdicts {
        for risk in &verdict.risks {
            if !risks
                .iter()
                .any(|r| r.category == risk.category && r.detail == risk.detail)
            {
                risks.push(risk.clone());
            }
        }
    }
    risks.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.category.cmp(&b.category))
    });

    let revert = context.revert_command();
    let mut rollback_notes = vec![revert.clone()];
    // The exact revert command is ours; a model's own `git revert …` guess is dropped.
    let model_notes = model_verdicts
        .iter()
        .flat_map(|v| v.rollback_notes.iter())
        .filter(|n| !n.trim_start().starts_with("git revert"));
    for note in rules.rollback_notes.iter().chain(model_notes) {
        if !rollback_notes.contains(note) {
            rollback_notes.push(note.clone());
        }
    }

    let summary = summarize(&rules, &model_verdicts, recommendation, &notes);
    let mut verdicts = vec![rules];
    verdicts.extend(model_verdicts);
    let mut usage = Usage {
        cost_usd: Some(0.0),
        ..Usage::default()
    };
    for verdict in &verdicts {
        usage.add(&verdict.usage);
    }
    Decision {
        schema_version: DECISION_SCHEMA_VERSION,
        event_id: event_id.to_string(),
        repo: context.repo.clone(),
        base: context.base.clone(),
        head: context.head.clone(),
        risk_score: score,
        band,
        recommendation,
        summary,
        risks,
        rollback_notes,
        verdicts,
        consensus: Consensus {
            mode: mode_name,
            quorum,
            n_model_verdicts: n_model,
            agreed,
            floor_applied,
            notes,
        },
        cost_usd: usage.cost_usd,
        usage,
        cached: false,
        decided_at: decided_at.to_string(),
        produced_at: None,
        context: ContextSummary::of(context),
        approval: None,
    }
}

fn combine_scores(scores: &[u8], rule: ScoreRule) -> Option<u8> {
    if scores.is_empty() {
        return None;
    }
    let mut sorted = scores.to_vec();
    sorted.sort_unstable();
    Some(match rule {
        ScoreRule::Max => sorted[sorted.len() - 1],
        ScoreRule::Median => sorted[sorted.len() / 2],
        ScoreRule::Mean => {
            let sum: u32 = sorted.iter().map(|&s| u32::from(s)).sum();
            let n = sorted.len() as u32;
            u8::try_from(sum.div_ceil(n)).unwrap_or(100)
        }
    })
}

fn combine_recommendations(recs: &[Recommendation], mode: ConsensusMode) -> Option<Recommendation> {
    let strictest = recs.iter().copied().max()?;
    Some(match mode {
        ConsensusMode::Strictest => strictest,
        ConsensusMode::Unanimous => {
            if recs.iter().all(|r| *r == recs[0]) {
                recs[0]
            } else {
                Recommendation::Hold
            }
        }
        ConsensusMode::Majority => {
            let count = |want: Recommendation| recs.iter().filter(|r| **r == want).count();
            [
                Recommendation::Block,
                Recommendation::Hold,
                Recommendation::Deploy,
            ]
            .into_iter()
            .find(|rec| count(*rec) * 2 > recs.len())
            .unwrap_or(Recommendation::Hold)
        }
    })
}

fn summarize(
    rules: &Verdict,
    models: &[Verdict],
    recommendation: Recommendation,
    notes: &[String],
) -> String {
    let lead = models
        .iter()
        .filter(|v| v.recommendation == recommendation)
        .max_by_key(|v| v.risk_score)
        .map(|v| v.summary.clone())
        .unwrap_or_else(|| rules.summary.clone());
    match notes
        .iter()
        .find(|n| n.contains("disagree") || n.contains("required"))
    {
        Some(note) => format!("{lead} ({note})"),
        None => lead,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Category, Evidence, Risk};

    fn context() -> DeployContext {
        serde_json::from_value(serde_json::json!({
            "repo": "acme/shop", "base": "b", "head": "h", "commits": [], "n_commits": 1,
            "files": [], "lines_added": 1, "lines_removed": 0, "packed_diff": "",
            "budget_chars": 12000, "est_tokens": 0
        }))
        .unwrap()
    }

    fn verdict(analyzer: &str, score: u8, severity: Option<Severity>) -> Verdict {
        let bands = Bands::default();
        Verdict {
            analyzer: analyzer.into(),
            risk_score: score,
            recommendation: bands.recommendation(score),
            summary: format!("{analyzer} thinks {score}"),
            risks: severity
                .map(|severity| Risk {
                    category: Category::Schema,
                    severity,
                    detail: "x".into(),
                    evidence: vec![Evidence::file("m.sql")],
                })
                .into_iter()
                .collect(),
            rollback_notes: vec![],
            latency_ms: 1,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
                cost_usd: Some(0.001),
                ..Usage::default()
            },
        }
    }

    fn model(name: &str, score: u8) -> ModelOutcome {
        ModelOutcome {
            analyzer: name.into(),
            result: Ok(verdict(name, score, None)),
        }
    }

    fn run(policy: &ConsensusPolicy, rules: Verdict, models: Vec<ModelOutcome>) -> Decision {
        let ctx = context();
        let bands = Bands::default();
        decide(
            DecisionInputs {
                event_id: "e",
                context: &ctx,
                bands: &bands,
                policy,
                decided_at: "2026-11-26T00:00:00Z",
            },
            rules,
            models,
        )
    }

    #[test]
    fn unanimous_deploys_only_when_every_model_says_deploy() {
        let policy = ConsensusPolicy::default();
        let rules = verdict("rules", 10, None);
        let all_deploy = run(&policy, rules.clone(), vec![model("a", 10), model("b", 20)]);
        assert_eq!(all_deploy.recommendation, Recommendation::Deploy);
        let mixed = run(&policy, rules, vec![model("a", 10), model("b", 60)]);
        assert_eq!(mixed.recommendation, Recommendation::Hold);
        assert!(!mixed.consensus.agreed);
    }

    #[test]
    fn majority_follows_more_than_half_and_holds_without_one() {
        let policy = ConsensusPolicy {
            mode: ConsensusMode::Majority,
            score_rule: ScoreRule::Median,
            max_spread: 50,
            ..ConsensusPolicy::default()
        };
        let rules = verdict("rules", 5, None);
        let decision = run(
            &policy,
            rules.clone(),
            vec![model("a", 10), model("b", 15), model("c", 55)],
        );
        assert_eq!(decision.recommendation, Recommendation::Deploy);
        assert_eq!(decision.risk_score, 15);
        let split = run(&policy, rules, vec![model("a", 10), model("b", 55)]);
        assert_eq!(split.recommendation, Recommendation::Hold);
    }

    #[test]
    fn strictest_takes_the_strictest_model() {
        let policy = ConsensusPolicy {
            mode: ConsensusMode::Strictest,
            max_spread: 100,
            ..ConsensusPolicy::default()
        };
        let decision = run(
            &policy,
            verdict("rules", 5, None),
            vec![model("a", 10), model("b", 80)],
        );
        assert_eq!(decision.recommendation, Recommendation::Block);
    }

    #[test]
    fn opposite_recommendations_hold_at_least_with_both_views() {
        let policy = ConsensusPolicy {
            mode: ConsensusMode::Majority,
            score_rule: ScoreRule::Median,
            max_spread: 100,
            ..ConsensusPolicy::default()
        };
        let decision = run(
            &policy,
            verdict("rules", 5, None),
            vec![model("a", 10), model("b", 90)],
        );
        assert!(decision.recommendation >= Recommendation::Hold);
        let note = decision.consensus.notes.join(" ");
        assert!(
            note.contains("a says deploy") && note.contains("b says block"),
            "{note}"
        );
    }

    #[test]
    fn a_certain_rules_finding_is_a_floor_models_cannot_lower() {
        let policy = ConsensusPolicy::default();
        let rules = verdict("rules", 85, Some(Severity::Critical));
        let decision = run(&policy, rules, vec![model("a", 0), model("b", 5)]);
        assert_eq!(decision.recommendation, Recommendation::Block);
        assert_eq!(decision.risk_score, 85);
        assert!(decision.consensus.floor_applied);
    }

    #[test]
    fn a_medium_rules_hint_is_not_a_floor() {
        let rules = verdict("rules", 30, Some(Severity::Medium));
        let decision = run(&ConsensusPolicy::default(), rules, vec![model("a", 10)]);
        assert_eq!(decision.risk_score, 10);
        assert_eq!(decision.recommendation, Recommendation::Deploy);
    }

    #[test]
    fn review_steering_of_any_severity_makes_the_rules_score_a_floor() {
        let mut rules = verdict("rules", 34, Some(Severity::Medium));
        rules.risks.push(Risk {
            category: Category::Auth,
            severity: Severity::Low,
            detail: format!("{REVIEW_STEERING}: a claim of approval."),
            evidence: vec![Evidence::file("<commit message>")],
        });
        let decision = run(&ConsensusPolicy::default(), rules, vec![model("a", 0)]);
        assert_eq!(
            decision.risk_score, 34,
            "the obedient model's 0 is not taken"
        );
        assert!(decision.consensus.floor_applied);

        // A model reporting steering itself moves nothing: only the rules' risks count.
        let mut talked_down = verdict("a", 0, None);
        talked_down.risks.push(Risk {
            category: Category::Auth,
            severity: Severity::Info,
            detail: format!("{REVIEW_STEERING}: none."),
            evidence: vec![],
        });
        let decision = run(
            &ConsensusPolicy::default(),
            verdict("rules", 34, Some(Severity::Medium)),
            vec![ModelOutcome {
                analyzer: "a".into(),
                result: Ok(talked_down),
            }],
        );
        assert_eq!(decision.risk_score, 0);
    }

    #[test]
    fn missing_quorum_fails_closed_to_the_configured_outcome() {
        let failed = ModelOutcome {
            analyzer: "anthropic/x".into(),
            result: Err("timed out after 3 attempts".into()),
        };
        let decision = run(
            &ConsensusPolicy::default(),
            verdict("rules", 5, None),
            vec![model("a", 5), failed.clone()],
        );
        assert_eq!(decision.recommendation, Recommendation::Hold);
        assert!(decision
            .consensus
            .notes
            .iter()
            .any(|n| n.contains("timed out")));

        let block_on_error = ConsensusPolicy {
            on_analysis_error: Recommendation::Block,
            ..ConsensusPolicy::default()
        };
        let decision = run(&block_on_error, verdict("rules", 5, None), vec![failed]);
        assert_eq!(decision.recommendation, Recommendation::Block);
    }

    #[test]
    fn usage_and_cost_sum_over_verdicts() {
        let decision = run(
            &ConsensusPolicy::default(),
            verdict("rules", 5, None),
            vec![model("a", 5), model("b", 5)],
        );
        assert_eq!(decision.usage.input_tokens, 30);
        let cost = decision.cost_usd.unwrap();
        assert!((cost - 0.003).abs() < 1e-9, "{cost}");
    }
}
