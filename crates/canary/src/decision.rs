//! The judge's answer (`schemas/canary-decision.schema.json`) and its table.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::request::{BadDirection, Target};
use crate::stats::PMethod;

/// The canary decision schema version this build writes.
pub const CANARY_DECISION_SCHEMA_VERSION: u32 = 1;

/// What the orchestrator should do with the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryResult {
    /// The canary is as good as the baseline: roll the change out.
    Promote,
    /// Not enough evidence either way yet: ask again later.
    Continue,
    /// The canary is worse: roll it back.
    Rollback,
}

impl CanaryResult {
    /// The wire name, also the routing key's second word.
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryResult::Promote => "promote",
            CanaryResult::Continue => "continue",
            CanaryResult::Rollback => "rollback",
        }
    }
}

impl std::fmt::Display for CanaryResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one metric was classified (Kayenta's labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// No significant move beyond the tolerance in the bad direction.
    Pass,
    /// Significantly higher on the canary, beyond the tolerance, and higher is bad.
    High,
    /// Significantly lower on the canary, beyond the tolerance, and lower is bad.
    Low,
    /// Too few samples on one side to judge.
    NoData,
}

impl Classification {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Pass => "pass",
            Classification::High => "high",
            Classification::Low => "low",
            Classification::NoData => "no_data",
        }
    }

    /// High or low: the metric moved the bad way.
    pub fn failed(self) -> bool {
        matches!(self, Classification::High | Classification::Low)
    }
}

/// One row of the per-metric table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricJudgement {
    /// The metric.
    pub name: String,
    /// Its group.
    pub group: String,
    /// Whether failing it fails the run.
    pub critical: bool,
    /// Its weight in the group.
    pub weight: f64,
    /// Which way moving is bad.
    pub bad_direction: BadDirection,
    /// The verdict.
    pub classification: Classification,
    /// Samples judged on the canary.
    pub n_canary: usize,
    /// Samples judged on the baseline.
    pub n_baseline: usize,
    /// Mean of the canary's samples.
    pub canary_mean: Option<f64>,
    /// Mean of the baseline's samples.
    pub baseline_mean: Option<f64>,
    /// Relative change of the mean, canary over baseline (0.05 = +5 %); `None`
    /// when the baseline's mean is 0 and the canary's is not (an infinite change).
    pub change: Option<f64>,
    /// Hodges–Lehmann estimate of the canary's shift over the baseline.
    pub shift: Option<f64>,
    /// Mann-Whitney U of the canary's samples.
    pub u: Option<f64>,
    /// Two-sided p-value of the U test.
    pub p_value: Option<f64>,
    /// How the p-value was computed.
    pub p_method: Option<PMethod>,
    /// The tolerance applied (after the risk tightening).
    pub tolerance: f64,
    /// Why, in words.
    pub reason: String,
}

/// One group's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupScore {
    /// The group.
    pub name: String,
    /// Its weight in the total, in percent (before renormalising over the groups
    /// with data).
    pub weight: f64,
    /// Weighted share of passing metrics among the judged ones, 0–100; `None`
    /// when no metric of the group had data.
    pub score: Option<f64>,
    /// Metrics in the group.
    pub n_metrics: usize,
    /// Of which passed.
    pub n_pass: usize,
    /// Of which failed (high or low).
    pub n_failed: usize,
    /// Of which had no data.
    pub n_no_data: usize,
}

/// The thresholds in force for this judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Promote at or above this score.
    pub pass: f64,
    /// Roll back below this score.
    pub marginal: f64,
    /// Factor applied to every metric's tolerance.
    pub tolerance_factor: f64,
    /// How much of the configured tightening applied (0 to 1).
    pub tightening: f64,
}

/// The answer to a canary request, published on the results exchange as
/// `canary.<result>.<repo-slug>`. Its JSON is a public contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryDecision {
    /// Always [`CANARY_DECISION_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The request's id (also the message id).
    pub canary_id: String,
    /// The deploy's event id.
    pub event_id: String,
    /// The repository.
    pub repo: String,
    /// The canary.
    pub canary: Target,
    /// The baseline.
    pub baseline: Target,
    /// What to do.
    pub result: CanaryResult,
    /// Weighted score 0–100 over the groups with data; `None` when no metric had
    /// data.
    pub score: Option<f64>,
    /// The thresholds in force.
    pub thresholds: Thresholds,
    /// The deploy decision's risk score; `None` when it could not be found.
    pub deploy_risk_score: Option<u8>,
    /// Per metric.
    pub metrics: Vec<MetricJudgement>,
    /// Per group.
    pub groups: Vec<GroupScore>,
    /// Why the result is what it is, most decisive first.
    pub reasons: Vec<String>,
    /// What moved, in a sentence or two.
    pub summary: String,
    /// How to undo the change: the deploy decision's rollback plan.
    pub rollback_notes: Vec<String>,
    /// Whether this was the run's last judgement.
    #[serde(rename = "final")]
    pub final_judgement: bool,
    /// When it was judged (RFC 3339).
    pub judged_at: String,
}

impl CanaryDecision {
    /// The human report: headline, the per-metric table, reasons, rollback plan.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let score = self
            .score
            .map_or_else(|| "no score".to_string(), |s| format!("score {s:.1}/100"));
        let _ = writeln!(
            out,
            "canary {} of {} ({}): {}  {score}  (promote ≥ {:.1}, roll back < {:.1}{})",
            self.canary_id,
            self.event_id,
            self.repo,
            self.result.as_str().to_uppercase(),
            self.thresholds.pass,
            self.thresholds.marginal,
            match self.deploy_risk_score {
                Some(risk) => format!("; deploy risk {risk}/100"),
                None => "; deploy decision not found".to_string(),
            }
        );
        let _ = writeln!(
            out,
            "{} vs {}{}",
            self.canary.name,
            self.baseline.name,
            if self.final_judgement {
                "  (final judgement)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "\n{:<24} {:<12} {:<8} {:>12} {:>12} {:>9} {:>9} {:>9}",
            "metric", "group", "class", "canary", "baseline", "change", "p", "n"
        );
        for metric in &self.metrics {
            let name = if metric.critical {
                format!("{}*", metric.name)
            } else {
                metric.name.clone()
            };
            let _ = writeln!(
                out,
                "{:<24} {:<12} {:<8} {:>12} {:>12} {:>9} {:>9} {:>9}",
                cut(&name, 24),
                cut(&metric.group, 12),
                metric.classification.as_str().to_uppercase(),
                number(metric.canary_mean),
                number(metric.baseline_mean),
                change(metric),
                p_value(metric.p_value),
                format!("{}/{}", metric.n_canary, metric.n_baseline),
            );
        }
        if self.metrics.iter().any(|m| m.critical) {
            let _ = writeln!(out, "* critical");
        }
        let _ = writeln!(out);
        for group in &self.groups {
            let _ = writeln!(
                out,
                "group {:<16} weight {:>5.1}%  score {}",
                group.name,
                group.weight,
                group
                    .score
                    .map_or_else(|| "no data".to_string(), |s| format!("{s:.1}"))
            );
        }
        if !self.reasons.is_empty() {
            let _ = writeln!(out, "\nreasons:");
            for reason in &self.reasons {
                let _ = writeln!(out, "  - {reason}");
            }
        }
        if self.result == CanaryResult::Rollback && !self.rollback_notes.is_empty() {
            let _ = writeln!(out, "\nrollback plan:");
            for note in &self.rollback_notes {
                let _ = writeln!(out, "  - {note}");
            }
        }
        out
    }
}

fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

fn number(value: Option<f64>) -> String {
    match value {
        None => "-".to_string(),
        Some(v) if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-3) => format!("{v:.3e}"),
        Some(v) => format!("{v:.4}"),
    }
}

fn change(metric: &MetricJudgement) -> String {
    match (metric.change, metric.canary_mean) {
        (Some(change), _) => format!("{:+.1}%", change * 100.0),
        (None, Some(_)) => "+inf".to_string(),
        (None, None) => "-".to_string(),
    }
}

fn p_value(p: Option<f64>) -> String {
    match p {
        None => "-".to_string(),
        Some(p) if p < 1e-4 => "<0.0001".to_string(),
        Some(p) => format!("{p:.4}"),
    }
}
