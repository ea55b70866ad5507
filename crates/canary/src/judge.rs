//! The judge: per metric a Mann-Whitney U test with an effect-size tolerance
//! (after Kayenta's NetflixACAJudge), a weighted score per group and overall,
//! thresholds tightened by the change's own risk, and the result.
//!
//! Pure: the samples, the deploy decision and the time come in as arguments.

use std::collections::BTreeMap;

use gate_core::Decision;

use crate::decision::{
    CanaryDecision, CanaryResult, Classification, GroupScore, MetricJudgement, Thresholds,
    CANARY_DECISION_SCHEMA_VERSION,
};
use crate::request::{BadDirection, CanaryRequest, MetricSpec, SeriesPair};
use crate::settings::CanarySettings;
use crate::stats;

/// What the judge is given besides the request: the samples by metric name (a
/// metric missing here has no data), the deploy decision when it was found, and
/// notes from fetching the samples (a Prometheus outage) to report.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// Samples by metric name.
    pub samples: &'a BTreeMap<String, SeriesPair>,
    /// The deploy decision of the request's event, when the store has it.
    pub deploy: Option<&'a Decision>,
    /// Problems met while fetching the samples, reported among the reasons.
    pub notes: &'a [String],
    /// When (RFC 3339).
    pub judged_at: &'a str,
}

/// Judges `request` on `evidence` with `settings`.
///
/// Per metric (the last `max_samples` samples of each side):
/// - fewer than `min_samples` on either side → `no_data`;
/// - otherwise the two-sided Mann-Whitney U test of canary against baseline, and
///   the relative change of the mean; the metric is `high` when the canary is
///   significantly higher (p < `alpha`, U above its mean), its mean rose by more
///   than the tolerance, and an increase is bad; `low` likewise downwards; else
///   `pass`.
///
/// Group score = weight of passing metrics / weight of judged metrics × 100.
/// Total = groups' scores weighted by their percentages (unlisted groups share
/// what is left of 100), renormalised over the groups with data.
///
/// Result, in order: a critical metric high or low → rollback; a metric without
/// data → continue; score < marginal → rollback; score ≥ pass → promote; else
/// continue. On the final judgement a `continue` becomes a rollback.
pub fn judge(
    request: &CanaryRequest,
    evidence: Evidence<'_>,
    settings: &CanarySettings,
) -> CanaryDecision {
    let thresholds = thresholds(settings, evidence.deploy.map(|d| d.risk_score));
    let metrics: Vec<MetricJudgement> = request
        .metrics
        .iter()
        .map(|spec| {
            let empty = SeriesPair::default();
            let pair = evidence.samples.get(&spec.name).unwrap_or(&empty);
            judge_metric(spec, pair, settings, &thresholds)
        })
        .collect();
    let groups = group_scores(request, &metrics);
    let score = total_score(&groups);

    let mut reasons = Vec::new();
    let critical_failures: Vec<&MetricJudgement> = metrics
        .iter()
        .filter(|m| m.critical && m.classification.failed())
        .collect();
    let no_data: Vec<&MetricJudgement> = metrics
        .iter()
        .filter(|m| m.classification == Classification::NoData)
        .collect();
    let mut result = if !critical_failures.is_empty() {
        for metric in &critical_failures {
            reasons.push(format!("critical metric {}", metric.reason));
        }
        CanaryResult::Rollback
    } else if !no_data.is_empty() {
        for metric in &no_data {
            reasons.push(metric.reason.clone());
        }
        CanaryResult::Continue
    } else {
        match score {
            Some(score) if score < thresholds.marginal => {
                reasons.push(format!(
                    "score {score:.1} is below the rollback threshold {:.1}",
                    thresholds.marginal
                ));
                CanaryResult::Rollback
            }
            Some(score) if score >= thresholds.pass => {
                reasons.push(format!(
                    "score {score:.1} reaches the promote threshold {:.1}",
                    thresholds.pass
                ));
                CanaryResult::Promote
            }
            Some(score) => {
                reasons.push(format!(
                    "score {score:.1} is between the rollback threshold {:.1} and the promote threshold {:.1}: more data needed",
                    thresholds.marginal, thresholds.pass
                ));
                CanaryResult::Continue
            }
            None => {
                reasons.push("no metric has data".to_string());
                CanaryResult::Continue
            }
        }
    };
    if result == CanaryResult::Continue && request.final_judgement {
        reasons.insert(
            0,
            "final judgement: the canary did not prove itself in time, so it is rolled back"
                .to_string(),
        );
        result = CanaryResult::Rollback;
    }
    if result != CanaryResult::Promote {
        // Failing non-critical metrics explain a low score.
        for metric in metrics
            .iter()
            .filter(|m| !m.critical && m.classification.failed())
        {
            reasons.push(metric.reason.clone());
        }
    }
    match evidence.deploy {
        Some(deploy) if thresholds.tightening > 0.0 => reasons.push(format!(
            "thresholds tightened by {:.0} % for the change's deploy risk {}/100",
            thresholds.tightening * 100.0,
            deploy.risk_score
        )),
        Some(_) => {}
        None => reasons.push(format!(
            "no deploy decision is stored for event {}: thresholds fully tightened, rollback plan unknown",
            request.event_id
        )),
    }
    reasons.extend(evidence.notes.iter().cloned());

    let rollback_notes = match evidence.deploy {
        Some(deploy) => deploy.rollback_notes.clone(),
        None => Vec::new(),
    };
    let summary = summary(result, score, &metrics, &thresholds);
    CanaryDecision {
        schema_version: CANARY_DECISION_SCHEMA_VERSION,
        canary_id: request.canary_id.clone(),
        event_id: request.event_id.clone(),
        repo: evidence
            .deploy
            .map_or_else(|| request.repo.clone(), |d| d.repo.clone()),
        canary: request.canary.clone(),
        baseline: request.baseline.clone(),
        result,
        score: score.map(round1),
        thresholds,
        deploy_risk_score: evidence.deploy.map(|d| d.risk_score),
        metrics,
        groups,
        reasons,
        summary,
        rollback_notes,
        final_judgement: request.final_judgement,
        judged_at: evidence.judged_at.to_string(),
    }
}

/// The thresholds for a change of deploy risk `risk` (`None`: not found, fully
/// tightened).
pub fn thresholds(settings: &CanarySettings, risk: Option<u8>) -> Thresholds {
    let risk_settings = &settings.risk;
    let tightening = match risk {
        None => 1.0,
        Some(risk) => {
            let from = f64::from(risk_settings.from_score);
            ((f64::from(risk) - from) / (100.0 - from)).clamp(0.0, 1.0)
        }
    };
    let pass = (settings.pass + risk_settings.pass_raise * tightening).min(100.0);
    let marginal = (settings.marginal + risk_settings.marginal_raise * tightening).min(pass);
    Thresholds {
        pass: round1(pass),
        marginal: round1(marginal),
        tolerance_factor: 1.0 - (1.0 - risk_settings.tolerance_factor) * tightening,
        tightening,
    }
}

fn judge_metric(
    spec: &MetricSpec,
    pair: &SeriesPair,
    settings: &CanarySettings,
    thresholds: &Thresholds,
) -> MetricJudgement {
    let recent = |values: &[f64]| -> Vec<f64> {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let skip = finite.len().saturating_sub(settings.max_samples);
        finite[skip..].to_vec()
    };
    let canary = recent(&pair.canary);
    let baseline = recent(&pair.baseline);
    let tolerance = spec.tolerance.unwrap_or(settings.tolerance) * thresholds.tolerance_factor;
    let canary_mean = stats::mean(&canary);
    let baseline_mean = stats::mean(&baseline);
    let change = match (canary_mean, baseline_mean) {
        (Some(c), Some(b)) if b != 0.0 => Some((c - b) / b.abs()),
        (Some(0.0), Some(_)) => Some(0.0),
        _ => None,
    };
    let mut judgement = MetricJudgement {
        name: spec.name.clone(),
        group: spec.group.clone(),
        critical: spec.critical,
        weight: spec.weight,
        bad_direction: spec.bad_direction,
        classification: Classification::NoData,
        n_canary: canary.len(),
        n_baseline: baseline.len(),
        canary_mean,
        baseline_mean,
        change: if canary_mean.is_some() && baseline_mean.is_some() {
            change
        } else {
            None
        },
        shift: None,
        u: None,
        p_value: None,
        p_method: None,
        tolerance,
        reason: String::new(),
    };
    if canary.len() < settings.min_samples || baseline.len() < settings.min_samples {
        judgement.reason = format!(
            "{}: too few samples ({} canary, {} baseline; {} needed on each side)",
            spec.name,
            canary.len(),
            baseline.len(),
            settings.min_samples
        );
        return judgement;
    }
    judgement.shift = stats::hodges_lehmann(&canary, &baseline);
    let Some(test) = stats::mann_whitney_u(&canary, &baseline) else {
        return judgement;
    };
    judgement.u = Some(test.u_x);
    judgement.p_value = Some(test.p_value);
    judgement.p_method = Some(test.method);

    let significant = test.p_value < settings.alpha;
    // An infinite change (a baseline mean of 0) is beyond any tolerance.
    let beyond_up = change.is_none_or(|c| c > tolerance);
    let beyond_down = change.is_some_and(|c| c < -tolerance);
    let bad_up = matches!(
        spec.bad_direction,
        BadDirection::Increase | BadDirection::Either
    );
    let bad_down = matches!(
        spec.bad_direction,
        BadDirection::Decrease | BadDirection::Either
    );
    let moved = describe_move(&judgement, test.p_value);
    judgement.classification = if significant && test.x_tends_higher() && beyond_up && bad_up {
        judgement.reason = format!(
            "{} is high on the canary: {moved}, beyond the tolerance of {:.1} %",
            spec.name,
            tolerance * 100.0
        );
        Classification::High
    } else if significant
        && !test.x_tends_higher()
        && test.u_x < test.u_mean
        && beyond_down
        && bad_down
    {
        judgement.reason = format!(
            "{} is low on the canary: {moved}, beyond the tolerance of {:.1} %",
            spec.name,
            tolerance * 100.0
        );
        Classification::Low
    } else {
        judgement.reason = if !significant {
            format!("{} passes: no significant difference ({moved})", spec.name)
        } else if (test.x_tends_higher() && !bad_up) || (!test.x_tends_higher() && !bad_down) {
            format!("{} passes: it moved the harmless way ({moved})", spec.name)
        } else {
            format!(
                "{} passes: {moved}, within the tolerance of {:.1} %",
                spec.name,
                tolerance * 100.0
            )
        };
        Classification::Pass
    };
    judgement
}

fn describe_move(metric: &MetricJudgement, p: f64) -> String {
    let change = match metric.change {
        Some(change) => format!("mean {:+.1} %", change * 100.0),
        None => "mean up from 0".to_string(),
    };
    let p = if p < 1e-4 {
        "p < 0.0001".to_string()
    } else {
        format!("p = {p:.4}")
    };
    format!("{change}, {p}")
}

fn group_scores(request: &CanaryRequest, metrics: &[MetricJudgement]) -> Vec<GroupScore> {
    let mut names: Vec<&str> = Vec::new();
    for metric in metrics {
        if !names.contains(&metric.group.as_str()) {
            names.push(&metric.group);
        }
    }
    let listed: f64 = request.groups.values().sum();
    let n_unlisted = names
        .iter()
        .filter(|name| !request.groups.contains_key(**name))
        .count();
    let share = if n_unlisted == 0 {
        0.0
    } else {
        (100.0 - listed).max(0.0) / n_unlisted as f64
    };
    names
        .into_iter()
        .map(|name| {
            let members: Vec<&MetricJudgement> =
                metrics.iter().filter(|m| m.group == name).collect();
            let judged_weight: f64 = members
                .iter()
                .filter(|m| m.classification != Classification::NoData)
                .map(|m| m.weight)
                .sum();
            let pass_weight: f64 = members
                .iter()
                .filter(|m| m.classification == Classification::Pass)
                .map(|m| m.weight)
                .sum();
            GroupScore {
                name: name.to_string(),
                weight: round1(request.groups.get(name).copied().unwrap_or(share)),
                score: (judged_weight > 0.0).then(|| pass_weight / judged_weight * 100.0),
                n_metrics: members.len(),
                n_pass: members
                    .iter()
                    .filter(|m| m.classification == Classification::Pass)
                    .count(),
                n_failed: members.iter().filter(|m| m.classification.failed()).count(),
                n_no_data: members
                    .iter()
                    .filter(|m| m.classification == Classification::NoData)
                    .count(),
            }
        })
        .collect()
}

fn total_score(groups: &[GroupScore]) -> Option<f64> {
    let (weighted, weights) = groups
        .iter()
        .filter_map(|g| g.score.map(|score| (score * g.weight, g.weight)))
        .fold((0.0, 0.0), |(s, w), (gs, gw)| (s + gs, w + gw));
    (weights > 0.0).then(|| weighted / weights)
}

fn summary(
    result: CanaryResult,
    score: Option<f64>,
    metrics: &[MetricJudgement],
    thresholds: &Thresholds,
) -> String {
    let failed: Vec<String> = metrics
        .iter()
        .filter(|m| m.classification.failed())
        .map(|m| {
            let change = m.change.map_or_else(
                || "up from 0".to_string(),
                |c| format!("{:+.1} %", c * 100.0),
            );
            format!(
                "{}{} {} ({change})",
                m.name,
                if m.critical { " (critical)" } else { "" },
                if m.classification == Classification::High {
                    "rose"
                } else {
                    "fell"
                }
            )
        })
        .collect();
    let score = score.map_or_else(
        || "no score yet".to_string(),
        |s| format!("score {s:.1}/100"),
    );
    let moved = if failed.is_empty() {
        "no metric moved the bad way beyond its tolerance".to_string()
    } else {
        format!("{} on the canary", failed.join(", "))
    };
    let n_no_data = metrics
        .iter()
        .filter(|m| m.classification == Classification::NoData)
        .count();
    let waiting = if n_no_data > 0 {
        format!("; {n_no_data} metric(s) still lack data")
    } else {
        String::new()
    };
    format!(
        "{}: {moved}{waiting}; {score} (promote at {:.1}, roll back below {:.1}).",
        match result {
            CanaryResult::Promote => "Promote",
            CanaryResult::Continue => "Continue",
            CanaryResult::Rollback => "Roll back",
        },
        thresholds.pass,
        thresholds.marginal
    )
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}
