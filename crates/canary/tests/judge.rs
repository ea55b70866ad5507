//! The judge on seeded synthetic series, and its U test against scipy's.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use gate_canary::{
    judge, mann_whitney_u, BadDirection, CanaryDecision, CanaryRequest, CanaryResult,
    CanarySettings, Classification, Evidence, PMethod,
};
use gate_core::Decision;

use common::{deploy_decision, metric, pair, request, samples, Rng};

fn run(request: &CanaryRequest, deploy: Option<&Decision>) -> CanaryDecision {
    judge(
        request,
        Evidence {
            samples: &samples(request),
            deploy,
            notes: &[],
            judged_at: "2026-03-01T10:30:00Z",
        },
        &CanarySettings::default(),
    )
}

fn classification(decision: &CanaryDecision, name: &str) -> Classification {
    decision
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap()
        .classification
}

/// A name, the two samples, scipy's U and p, and its method.
type ScipyCase = (&'static str, Vec<f64>, Vec<f64>, f64, f64, PMethod);

/// Reference values from scipy 1.17.1, computed offline with
/// `scipy.stats.mannwhitneyu(x, y, alternative="two-sided", method="auto")`
/// (statistic = U of x; "auto" picks the exact distribution for the two cases
/// without ties and a sample of at most 8, the normal approximation with tie and
/// continuity corrections for the others).
#[test]
fn the_u_test_agrees_with_scipy() {
    let formula_x: Vec<f64> = (0..40)
        .map(|i| f64::from((i * 37) % 101) / 10.0 + 1.5)
        .collect();
    let formula_y: Vec<f64> = (0..45).map(|i| f64::from((i * 53) % 97) / 10.0).collect();
    let cases: [ScipyCase; 4] = [
        (
            "five against six, no ties",
            vec![1.1, 2.3, 3.5, 4.2, 5.9],
            vec![2.0, 6.1, 7.4, 8.8, 9.5, 10.2],
            4.0,
            0.051_948_051_948_051_95,
            PMethod::Exact,
        ),
        (
            "twelve against thirteen with ties",
            vec![1., 2., 2., 3., 3., 3., 4., 5., 5., 6., 7., 8.],
            vec![3., 4., 4., 5., 6., 6., 7., 8., 9., 9., 10., 11., 12.],
            29.5,
            0.008_690_153_557_972_294,
            PMethod::Asymptotic,
        ),
        (
            "forty against forty-five",
            formula_x,
            formula_y,
            1215.0,
            0.005_619_283_158_347_35,
            PMethod::Asymptotic,
        ),
        (
            "three against twenty, no ties",
            vec![0.5, 1.5, 2.5],
            (0..20).map(|i| 1.25 + 0.5 * f64::from(i)).collect(),
            4.0,
            0.012_422_360_248_447_204,
            PMethod::Exact,
        ),
    ];
    for (name, x, y, u, p, method) in cases {
        let test = mann_whitney_u(&x, &y).unwrap();
        assert_eq!(test.u_x, u, "{name}: U");
        assert_eq!(test.method, method, "{name}: method");
        assert!(
            ((test.p_value - p) / p).abs() < 1e-9,
            "{name}: p = {}, scipy says {p}",
            test.p_value
        );
    }
}

#[test]
fn identical_distributions_pass_whatever_the_seed() {
    for seed in 0..25 {
        let mut rng = Rng::new(seed);
        let mut series = BTreeMap::new();
        series.insert(
            "error_rate".to_string(),
            pair(rng.series(60, 0.01, 0.002), rng.series(60, 0.01, 0.002)),
        );
        series.insert(
            "latency_ms".to_string(),
            pair(rng.series(60, 120.0, 15.0), rng.series(60, 120.0, 15.0)),
        );
        let request = request(
            vec![
                metric("error_rate", BadDirection::Increase, true, "errors"),
                metric("latency_ms", BadDirection::Increase, false, "latency"),
            ],
            series,
        );
        let decision = run(&request, Some(&deploy_decision("ev-1", 10)));
        assert_eq!(
            decision.result,
            CanaryResult::Promote,
            "seed {seed}:\n{}",
            decision.table()
        );
        assert_eq!(decision.score, Some(100.0));
    }
}

#[test]
fn a_doubled_error_rate_in_a_critical_metric_rolls_back_with_the_plan() {
    let mut rng = Rng::new(7);
    let mut series = BTreeMap::new();
    series.insert(
        "error_rate".to_string(),
        pair(rng.series(30, 0.02, 0.004), rng.series(30, 0.01, 0.002)),
    );
    // Everything else is fine: the critical metric alone decides.
    for name in ["latency_ms", "cpu", "memory"] {
        series.insert(
            name.to_string(),
            pair(rng.series(30, 100.0, 10.0), rng.series(30, 100.0, 10.0)),
        );
    }
    let request = request(
        vec![
            metric("error_rate", BadDirection::Increase, true, "errors"),
            metric("latency_ms", BadDirection::Increase, false, "latency"),
            metric("cpu", BadDirection::Increase, false, "saturation"),
            metric("memory", BadDirection::Increase, false, "saturation"),
        ],
        series,
    );
    let deploy = deploy_decision("ev-1", 10);
    let decision = run(&request, Some(&deploy));
    assert_eq!(
        decision.result,
        CanaryResult::Rollback,
        "{}",
        decision.table()
    );
    assert_eq!(
        classification(&decision, "error_rate"),
        Classification::High
    );
    assert!(decision.reasons[0].starts_with("critical metric error_rate is high"));
    assert_eq!(decision.rollback_notes, deploy.rollback_notes);
    // The score alone (2 of 3 groups perfect) would only have said `continue`.
    assert_eq!(decision.score, Some(66.7));
    assert!(decision.score.unwrap() >= decision.thresholds.marginal);
    let table = decision.table();
    assert!(table.contains("ROLLBACK") && table.contains("error_rate*") && table.contains("HIGH"));
    assert!(table.contains("git revert --no-edit 2222"));
}

#[test]
fn latency_up_five_percent_is_within_the_tolerance() {
    let mut rng = Rng::new(11);
    let mut series = BTreeMap::new();
    // Enough samples and little noise that +5 % is statistically significant: the
    // tolerance (10 %) is what lets it pass.
    series.insert(
        "latency_ms".to_string(),
        pair(rng.series(200, 105.0, 3.0), rng.series(200, 100.0, 3.0)),
    );
    let req = request(
        vec![metric(
            "latency_ms",
            BadDirection::Increase,
            true,
            "latency",
        )],
        series,
    );
    let decision = run(&req, Some(&deploy_decision("ev-1", 10)));
    let latency = &decision.metrics[0];
    assert!(latency.p_value.unwrap() < 1e-6, "the move is significant");
    assert!((latency.change.unwrap() - 0.05).abs() < 0.01);
    assert_eq!(latency.classification, Classification::Pass);
    assert!(latency.reason.contains("within the tolerance of 10.0 %"));
    assert_eq!(decision.result, CanaryResult::Promote);

    // The same move on a change with a risk of 100 meets a halved tolerance (5 %)
    // and is no longer excused once it is beyond it.
    let mut rng = Rng::new(11);
    let mut series = BTreeMap::new();
    series.insert(
        "latency_ms".to_string(),
        pair(rng.series(200, 107.0, 3.0), rng.series(200, 100.0, 3.0)),
    );
    let risky = request(
        vec![metric(
            "latency_ms",
            BadDirection::Increase,
            true,
            "latency",
        )],
        series,
    );
    assert_eq!(
        run(&risky, Some(&deploy_decision("ev-1", 10))).result,
        CanaryResult::Promote
    );
    let decision = run(&risky, Some(&deploy_decision("ev-1", 100)));
    assert_eq!(decision.metrics[0].tolerance, 0.05);
    assert_eq!(
        decision.result,
        CanaryResult::Rollback,
        "{}",
        decision.table()
    );
}

#[test]
fn too_few_samples_continue_and_the_final_judgement_rolls_back() {
    let mut rng = Rng::new(3);
    let mut series = BTreeMap::new();
    series.insert(
        "error_rate".to_string(),
        pair(rng.series(5, 0.01, 0.002), rng.series(40, 0.01, 0.002)),
    );
    series.insert(
        "latency_ms".to_string(),
        pair(rng.series(40, 100.0, 10.0), rng.series(40, 100.0, 10.0)),
    );
    let mut request = request(
        vec![
            metric("error_rate", BadDirection::Increase, true, "errors"),
            metric("latency_ms", BadDirection::Increase, false, "latency"),
        ],
        series,
    );
    let decision = run(&request, Some(&deploy_decision("ev-1", 10)));
    assert_eq!(
        decision.result,
        CanaryResult::Continue,
        "{}",
        decision.table()
    );
    assert_eq!(
        classification(&decision, "error_rate"),
        Classification::NoData
    );
    assert!(decision.reasons[0].contains("too few samples (5 canary, 40 baseline; 10 needed"));

    request.final_judgement = true;
    let decision = run(&request, Some(&deploy_decision("ev-1", 10)));
    assert_eq!(decision.result, CanaryResult::Rollback);
    assert!(decision.reasons[0].starts_with("final judgement"));
}

#[test]
fn a_metric_whose_bad_direction_is_decrease_is_judged_the_right_way_round() {
    let judge_throughput = |canary_mean: f64, bad: BadDirection| {
        let mut rng = Rng::new(5);
        let mut series = BTreeMap::new();
        series.insert(
            "throughput".to_string(),
            pair(
                rng.series(40, canary_mean, 20.0),
                rng.series(40, 1000.0, 20.0),
            ),
        );
        run(
            &request(vec![metric("throughput", bad, true, "traffic")], series),
            Some(&deploy_decision("ev-1", 10)),
        )
    };
    // Throughput falling 30 % is bad when a decrease is bad...
    let fell = judge_throughput(700.0, BadDirection::Decrease);
    assert_eq!(classification(&fell, "throughput"), Classification::Low);
    assert_eq!(fell.result, CanaryResult::Rollback);
    // ...harmless when only an increase is bad...
    let fell_harmless = judge_throughput(700.0, BadDirection::Increase);
    assert_eq!(
        classification(&fell_harmless, "throughput"),
        Classification::Pass
    );
    assert!(fell_harmless.metrics[0].reason.contains("harmless way"));
    assert_eq!(fell_harmless.result, CanaryResult::Promote);
    // ...and rising 30 % is fine when a decrease is bad.
    let rose = judge_throughput(1300.0, BadDirection::Decrease);
    assert_eq!(classification(&rose, "throughput"), Classification::Pass);
    // `either` catches both.
    assert_eq!(
        classification(&judge_throughput(700.0, BadDirection::Either), "throughput"),
        Classification::Low
    );
    assert_eq!(
        classification(
            &judge_throughput(1300.0, BadDirection::Either),
            "throughput"
        ),
        Classification::High
    );
}

/// Group score = weight of passing metrics / weight of judged metrics × 100; the
/// total weights the groups by their percentages, unlisted groups sharing the rest.
#[test]
fn weights_and_groups_combine_as_documented() {
    let mut rng = Rng::new(9);
    let fine = |rng: &mut Rng| pair(rng.series(40, 100.0, 5.0), rng.series(40, 100.0, 5.0));
    let doubled = |rng: &mut Rng| pair(rng.series(40, 200.0, 5.0), rng.series(40, 100.0, 5.0));
    let mut series = BTreeMap::new();
    series.insert("http_5xx".to_string(), doubled(&mut rng));
    series.insert("http_4xx".to_string(), fine(&mut rng));
    series.insert("p50_ms".to_string(), fine(&mut rng));
    series.insert("p99_ms".to_string(), fine(&mut rng));
    let mut errors_5xx = metric("http_5xx", BadDirection::Increase, false, "errors");
    errors_5xx.weight = 3.0;
    let mut req = request(
        vec![
            errors_5xx,
            metric("http_4xx", BadDirection::Increase, false, "errors"),
            metric("p50_ms", BadDirection::Increase, false, "latency"),
            metric("p99_ms", BadDirection::Increase, false, "latency"),
        ],
        series,
    );
    req.groups.insert("errors".to_string(), 60.0);
    let decision = run(&req, Some(&deploy_decision("ev-1", 10)));
    let errors = decision.groups.iter().find(|g| g.name == "errors").unwrap();
    let latency = decision
        .groups
        .iter()
        .find(|g| g.name == "latency")
        .unwrap();
    // errors: 1 of weight 4 passes → 25; latency (unlisted) takes the other 40 %.
    assert_eq!((errors.weight, errors.score), (60.0, Some(25.0)));
    assert_eq!((errors.n_pass, errors.n_failed), (1, 1));
    assert_eq!((latency.weight, latency.score), (40.0, Some(100.0)));
    // 0.6 × 25 + 0.4 × 100 = 55: between marginal (50) and pass (75).
    assert_eq!(decision.score, Some(55.0));
    assert_eq!(
        decision.result,
        CanaryResult::Continue,
        "{}",
        decision.table()
    );

    // Weighing errors at 80 % sinks the score below the rollback threshold:
    // 0.8 × 25 + 0.2 × 100 = 40.
    req.groups.insert("errors".to_string(), 80.0);
    let decision = run(&req, Some(&deploy_decision("ev-1", 10)));
    assert_eq!(decision.score, Some(40.0));
    assert_eq!(decision.result, CanaryResult::Rollback);
}

#[test]
fn a_risky_change_must_prove_more() {
    let settings = CanarySettings::default();
    let low = gate_canary::thresholds(&settings, Some(25));
    assert_eq!((low.pass, low.marginal, low.tightening), (75.0, 50.0, 0.0));
    let high = gate_canary::thresholds(&settings, Some(100));
    assert_eq!(
        (high.pass, high.marginal, high.tolerance_factor),
        (90.0, 65.0, 0.5)
    );
    let middle = gate_canary::thresholds(&settings, Some(70));
    assert_eq!((middle.pass, middle.marginal), (84.0, 59.0));
    // No deploy decision: fully tightened, and said so.
    assert_eq!(gate_canary::thresholds(&settings, None), high);

    // A score of 80 (4 of 5 equal-weight metrics pass) promotes a low-risk change
    // and only continues a risky one.
    let mut rng = Rng::new(13);
    let mut series = BTreeMap::new();
    let mut metrics = Vec::new();
    for idx in 0..5 {
        let name = format!("m{idx}");
        let canary_mean = if idx == 0 { 150.0 } else { 100.0 };
        series.insert(
            name.clone(),
            pair(rng.series(40, canary_mean, 5.0), rng.series(40, 100.0, 5.0)),
        );
        metrics.push(metric(&name, BadDirection::Increase, false, "default"));
    }
    let req = request(metrics, series);
    let safe = run(&req, Some(&deploy_decision("ev-1", 20)));
    assert_eq!(
        (safe.score, safe.result),
        (Some(80.0), CanaryResult::Promote)
    );
    let risky = run(&req, Some(&deploy_decision("ev-1", 90)));
    assert_eq!(risky.result, CanaryResult::Continue, "{}", risky.table());
    assert!(risky
        .reasons
        .iter()
        .any(|r| r.contains("tightened by 87 % for the change's deploy risk 90/100")));
    let unknown = run(&req, None);
    assert_eq!(unknown.result, CanaryResult::Continue);
    assert!(unknown
        .reasons
        .iter()
        .any(|r| r.contains("no deploy decision is stored for event ev-1")));
    assert!(unknown.rollback_notes.is_empty());
}

#[test]
fn errors_appearing_where_the_baseline_has_none_are_high() {
    let mut rng = Rng::new(17);
    let mut series = BTreeMap::new();
    series.insert(
        "panics".to_string(),
        pair(rng.series(30, 3.0, 1.0), vec![0.0; 30]),
    );
    let decision = run(
        &request(
            vec![metric("panics", BadDirection::Increase, true, "errors")],
            series,
        ),
        Some(&deploy_decision("ev-1", 10)),
    );
    assert_eq!(decision.metrics[0].change, None, "an infinite change");
    assert_eq!(decision.metrics[0].classification, Classification::High);
    assert_eq!(decision.result, CanaryResult::Rollback);
}
