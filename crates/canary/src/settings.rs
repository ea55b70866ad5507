//! `[canary]`: the judge's thresholds, how a risky change tightens them, and the
//! canary service and `canary watch` timings.

use serde::{Deserialize, Serialize};

/// Settings of the judge and of the canary roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CanarySettings {
    /// Score (0–100) at or above which the canary is promoted.
    pub pass: f64,
    /// Score below which the canary is rolled back; between the two: `continue`.
    pub marginal: f64,
    /// Relative change of a metric's mean tolerated before a significant move
    /// counts against the canary (0.1 = 10 %); a metric may set its own.
    pub tolerance: f64,
    /// Significance level of the Mann-Whitney U test (two-sided).
    pub alpha: f64,
    /// Fewer samples than this on either side: no data yet (`continue`).
    pub min_samples: usize,
    /// Most recent samples judged per side; older ones are ignored.
    pub max_samples: usize,
    /// How the deploy decision's risk score tightens the thresholds.
    pub risk: RiskTightening,
    /// Channels told about a rollback (through the notifier; each must exist under
    /// `[notify.channels]`).
    pub notify_channels: Vec<String>,
    /// Canary requests judged at once by `canary serve` (= AMQP prefetch).
    pub concurrency: u16,
    /// Bound on one Prometheus request.
    pub prometheus_timeout_ms: u64,
    /// `canary watch`: time between two judgements.
    pub watch_interval_secs: u64,
    /// `canary watch`: give up (judging one last time, as final) after this long.
    pub watch_timeout_secs: u64,
}

impl Default for CanarySettings {
    fn default() -> Self {
        CanarySettings {
            pass: 75.0,
            marginal: 50.0,
            tolerance: 0.10,
            alpha: 0.05,
            min_samples: 10,
            max_samples: 1_000,
            risk: RiskTightening::default(),
            notify_channels: vec!["deploys".to_string()],
            concurrency: 4,
            prometheus_timeout_ms: 10_000,
            watch_interval_secs: 60,
            watch_timeout_secs: 1_800,
        }
    }
}

/// `[canary.risk]`: a change whose deploy decision scored above `from_score` must
/// prove more. The tightening grows linearly from nothing at `from_score` to the
/// full amount at 100 (and is full when the deploy decision cannot be found).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskTightening {
    /// Deploy risk score at or below which the thresholds are as configured.
    pub from_score: u8,
    /// Points added to `pass` at risk 100.
    pub pass_raise: f64,
    /// Points added to `marginal` at risk 100.
    pub marginal_raise: f64,
    /// Factor the tolerances are multiplied by at risk 100 (1 = unchanged).
    pub tolerance_factor: f64,
}

impl Default for RiskTightening {
    fn default() -> Self {
        RiskTightening {
            from_score: 25,
            pass_raise: 15.0,
            marginal_raise: 15.0,
            tolerance_factor: 0.5,
        }
    }
}

impl CanarySettings {
    /// Checks the values against each other; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let percent = |key: &str, value: f64| {
            if value.is_finite() && (0.0..=100.0).contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "canary.{key} must be between 0 and 100, got {value}"
                ))
            }
        };
        percent("pass", self.pass)?;
        percent("marginal", self.marginal)?;
        if self.marginal > self.pass {
            return Err(format!(
                "canary.marginal ({}) must not be above canary.pass ({})",
                self.marginal, self.pass
            ));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(format!(
                "canary.tolerance must be a fraction of 0 or more, got {}",
                self.tolerance
            ));
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(format!(
                "canary.alpha must be between 0 and 1, got {}",
                self.alpha
            ));
        }
        if self.min_samples < 3 {
            return Err(format!(
                "canary.min_samples must be at least 3, got {}",
                self.min_samples
            ));
        }
        // The Hodges–Lehmann shift holds max_samples² differences in memory.
        if self.max_samples < self.min_samples || self.max_samples > 2_000 {
            return Err(format!(
                "canary.max_samples must be between canary.min_samples and 2000, got {}",
                self.max_samples
            ));
        }
        if self.risk.from_score >= 100 {
            return Err("canary.risk.from_score must be below 100".to_string());
        }
        for (key, value) in [
            ("pass_raise", self.risk.pass_raise),
            ("marginal_raise", self.risk.marginal_raise),
        ] {
            if !(value.is_finite() && (0.0..=100.0).contains(&value)) {
                return Err(format!(
                    "canary.risk.{key} must be between 0 and 100, got {value}"
                ));
            }
        }
        if !(self.risk.tolerance_factor > 0.0 && self.risk.tolerance_factor <= 1.0) {
            return Err(format!(
                "canary.risk.tolerance_factor must be above 0 and at most 1, got {}",
                self.risk.tolerance_factor
            ));
        }
        if self.concurrency == 0 {
            return Err("canary.concurrency must be at least 1".to_string());
        }
        if self.watch_interval_secs == 0 {
            return Err("canary.watch_interval_secs must be at least 1".to_string());
        }
        Ok(())
    }
}
