//! The verdict a model must return: its JSON Schema (tool input for Anthropic,
//! strict `response_format` for OpenAI) and the validation every answer passes
//! before it becomes a [`Verdict`].

use gate_core::{Bands, Category, Evidence, Recommendation, Risk, Severity, Usage, Verdict};
use serde::Deserialize;
use serde_json::{json, Value};

/// The verdict's JSON Schema. It keeps to the subset that OpenAI's strict mode and
/// Anthropic's tool input both accept: every property required, optional values as
/// `null`, `additionalProperties: false` on every object, no numeric or length
/// keywords (the range of `risk_score` is checked by [`validate`] instead).
pub fn verdict_schema() -> Value {
    let categories: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
    json!({
        "type": "object",
        "properties": {
            "risk_score": {
                "type": "integer",
                "description": "Risk of deploying this change now, 0 (none) to 100 (certain harm)."
            },
            "recommendation": {
                "type": "string",
                "enum": ["deploy", "hold", "block"],
                "description": "The recommendation of the band the risk_score falls in."
            },
            "summary": { "type": "string", "description": "One or two sentences naming the main risk." },
            "risks": {
                "type": "array",
                "description": "The risks, most severe first.",
                "items": {
                    "type": "object",
                    "properties": {
                        "category": { "type": "string", "enum": categories },
                        "severity": { "type": "string", "enum": ["info", "low", "medium", "high", "critical"] },
                        "detail": { "type": "string", "description": "One sentence a person can act on." },
                        "evidence": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "file": { "type": "string" },
                                    "line": { "type": ["integer", "null"] }
                                },
                                "required": ["file", "line"],
                                "additionalProperties": false
                            }
                        }
                    },
                    "required": ["category", "severity", "detail", "evidence"],
                    "additionalProperties": false
                }
            },
            "rollback_notes": {
                "type": "array",
                "items": { "type": "string" },
                "description": "How to undo the change, one step per entry."
            }
        },
        "required": ["risk_score", "recommendation", "summary", "risks", "rollback_notes"],
        "additionalProperties": false
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerdict {
    risk_score: i64,
    recommendation: Recommendation,
    summary: String,
    risks: Vec<RawRisk>,
    rollback_notes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRisk {
    category: Category,
    severity: Severity,
    detail: String,
    evidence: Vec<RawEvidence>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvidence {
    file: String,
    line: Option<i64>,
}

/// Checks a model's verdict against the schema and the band rules, and turns it
/// into a [`Verdict`] (without usage and latency, which the provider fills in).
/// The error text is quoted back to the model in the repair turn, so it says
/// exactly what to change.
pub fn validate(value: &Value, bands: &Bands, analyzer: &str) -> Result<Verdict, String> {
    let raw: RawVerdict = serde_json::from_value(value.clone())
        .map_err(|err| format!("the verdict does not match the schema: {err}"))?;
    if !(0..=100).contains(&raw.risk_score) {
        return Err(format!(
            "risk_score must be an integer from 0 to 100, got {}",
            raw.risk_score
        ));
    }
    let score = raw.risk_score as u8;
    let band = bands.band(score);
    if raw.recommendation != band.recommendation() {
        return Err(format!(
            "recommendation `{}` does not match risk_score {score}, which is in the {band} band ({}); use `{}` or change the score",
            raw.recommendation,
            band_range(bands, band),
            band.recommendation()
        ));
    }
    if raw.summary.trim().is_empty() {
        return Err("summary must not be empty".to_string());
    }
    if let Some(worst) = raw.risks.iter().map(|risk| risk.severity).max() {
        if score < worst.floor_score() {
            return Err(format!(
                "risk_score {score} is below {} required by the worst listed severity `{worst}`; raise the score (and the recommendation with it) or lower the severity",
                worst.floor_score()
            ));
        }
    }
    let mut risks = Vec::with_capacity(raw.risks.len());
    for (idx, risk) in raw.risks.into_iter().enumerate() {
        if risk.detail.trim().is_empty() {
            return Err(format!("risks[{idx}].detail must not be empty"));
        }
        let mut evidence = Vec::with_capacity(risk.evidence.len());
        for item in risk.evidence {
            let line = match item.line {
                None => None,
                Some(line) => Some(u32::try_from(line).map_err(|_| {
                    format!("risks[{idx}].evidence line {line} is not a line number")
                })?),
            };
            evidence.push(Evidence {
                file: item.file,
                line,
                excerpt: None,
            });
        }
        risks.push(Risk {
            category: risk.category,
            severity: risk.severity,
            detail: risk.detail,
            evidence,
        });
    }
    risks.sort_by_key(|risk| std::cmp::Reverse(risk.severity));
    Ok(Verdict {
        analyzer: analyzer.to_string(),
        risk_score: score,
        recommendation: raw.recommendation,
        summary: raw.summary,
        risks,
        rollback_notes: raw.rollback_notes,
        latency_ms: 0,
        usage: Usage::default(),
    })
}

fn band_range(bands: &Bands, band: gate_core::Band) -> String {
    use gate_core::Band;
    let (from, to) = match band {
        Band::Auto => (0, bands.review_from.saturating_sub(1)),
        Band::Review => (bands.review_from, bands.hold_from.saturating_sub(1)),
        Band::Hold => (bands.hold_from, bands.block_from.saturating_sub(1)),
        Band::Block => (bands.block_from, 100),
    };
    format!("{from}–{to}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(score: i64, recommendation: &str) -> Value {
        json!({
            "risk_score": score,
            "recommendation": recommendation,
            "summary": "Drops the users table.",
            "risks": [{"category": "schema", "severity": "critical", "detail": "DROP TABLE users", "evidence": [{"file": "db/1.sql", "line": 1}]}],
            "rollback_notes": ["git revert HEAD"]
        })
    }

    #[test]
    fn a_consistent_verdict_is_accepted() {
        let verdict =
            validate(&verdict(90, "block"), &Bands::default(), "anthropic/claude").unwrap();
        assert_eq!(verdict.risk_score, 90);
        assert_eq!(verdict.risks[0].evidence[0].line, Some(1));
    }

    #[test]
    fn a_recommendation_outside_the_scores_band_is_rejected_with_the_fix() {
        let err = validate(&verdict(90, "deploy"), &Bands::default(), "x").unwrap_err();
        assert!(err.contains("block band (76–100)"), "{err}");
        assert!(err.contains("use `block`"), "{err}");
    }

    #[test]
    fn out_of_range_scores_unknown_enums_and_extra_fields_are_rejected() {
        assert!(validate(&verdict(140, "block"), &Bands::default(), "x")
            .unwrap_err()
            .contains("0 to 100"));
        let mut bad = verdict(90, "block");
        bad["risks"][0]["category"] = json!("network");
        assert!(validate(&bad, &Bands::default(), "x")
            .unwrap_err()
            .contains("unknown variant"));
        let mut extra = verdict(90, "block");
        extra["confidence"] = json!(0.9);
        assert!(validate(&extra, &Bands::default(), "x")
            .unwrap_err()
            .contains("unknown field"));
    }

    #[test]
    fn a_score_below_its_worst_severity_is_rejected() {
        let err = validate(&verdict(40, "deploy"), &Bands::default(), "x").unwrap_err();
        assert!(err.contains("below 80"), "{err}");
    }

    #[test]
    fn the_schema_follows_strict_mode_rules() {
        fn check(node: &Value) {
            if node.get("type") == Some(&json!("object")) {
                assert_eq!(node["additionalProperties"], json!(false));
                let props: Vec<&String> = node["properties"].as_object().unwrap().keys().collect();
                let required: Vec<&str> = node["required"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                for prop in props {
                    assert!(required.contains(&prop.as_str()), "{prop} not required");
                }
            }
            if let Some(obj) = node.as_object() {
                for value in obj.values() {
                    check(value);
                }
            }
        }
        check(&verdict_schema());
    }
}
