//! Shared by the canary tests: a seeded generator of synthetic series, requests,
//! and deploy decisions as the worker stores them.

#![allow(dead_code)]

use std::collections::BTreeMap;

use gate_canary::{
    BadDirection, CanaryRequest, MetricSpec, SeriesPair, Source, Target,
    CANARY_REQUEST_SCHEMA_VERSION,
};
use gate_core::Decision;

/// SplitMix64: small, seeded, the same numbers on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Normal (Box–Muller).
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// `n` normal samples, clipped at 0 (rates and latencies are not negative).
    pub fn series(&mut self, n: usize, mean: f64, sd: f64) -> Vec<f64> {
        (0..n).map(|_| self.normal(mean, sd).max(0.0)).collect()
    }
}

pub fn metric(name: &str, bad: BadDirection, critical: bool, group: &str) -> MetricSpec {
    MetricSpec {
        name: name.to_string(),
        bad_direction: bad,
        critical,
        weight: 1.0,
        group: group.to_string(),
        tolerance: None,
    }
}

/// An inline request for event `ev-1` of `acme/shop`.
pub fn request(metrics: Vec<MetricSpec>, series: BTreeMap<String, SeriesPair>) -> CanaryRequest {
    CanaryRequest {
        schema_version: CANARY_REQUEST_SCHEMA_VERSION,
        canary_id: "ev-1-canary-1".to_string(),
        event_id: "ev-1".to_string(),
        repo: "acme/shop".to_string(),
        canary: Target {
            name: "shop-canary".to_string(),
            scope: String::new(),
        },
        baseline: Target {
            name: "shop-baseline".to_string(),
            scope: String::new(),
        },
        metrics,
        groups: BTreeMap::new(),
        source: Source::Inline { series },
        final_judgement: false,
    }
}

pub fn pair(canary: Vec<f64>, baseline: Vec<f64>) -> SeriesPair {
    SeriesPair { canary, baseline }
}

/// The samples of an inline request.
pub fn samples(request: &CanaryRequest) -> BTreeMap<String, SeriesPair> {
    match &request.source {
        Source::Inline { series } => series.clone(),
        Source::Prometheus(_) => BTreeMap::new(),
    }
}

/// A deploy decision as the worker stores it, with `risk_score` and a rollback
/// plan.
pub fn deploy_decision(event_id: &str, risk_score: u8) -> Decision {
    let (band, recommendation) = match risk_score {
        0..=25 => ("auto", "deploy"),
        26..=50 => ("review", "deploy"),
        51..=75 => ("hold", "hold"),
        _ => ("block", "block"),
    };
    serde_json::from_value(serde_json::json!({
        "schema_version": 1,
        "event_id": event_id,
        "repo": "acme/shop",
        "base": "1111111111111111111111111111111111111111",
        "head": "2222222222222222222222222222222222222222",
        "risk_score": risk_score,
        "band": band,
        "recommendation": recommendation,
        "summary": "A feature change.",
        "risks": [],
        "rollback_notes": [
            "git revert --no-edit 2222222222222222222222222222222222222222",
            "redeploy the previous release"
        ],
        "verdicts": [],
        "consensus": {"mode": "rules_only", "quorum": 0, "n_model_verdicts": 0, "agreed": true, "floor_applied": false, "notes": []},
        "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "cost_usd": 0.0},
        "cost_usd": 0.0,
        "cached": false,
        "decided_at": "2026-03-01T10:00:00Z",
        "context": {"n_files": 1, "n_commits": 1, "lines_added": 3, "lines_removed": 0, "packed_chars": 100, "n_omitted": 0, "omitted": []}
    }))
    .expect("a valid decision")
}
