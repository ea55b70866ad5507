//! What the mock answers: faults on demand, and verdicts scripted by the content of
//! the request.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A failure the mock produces instead of a normal answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// 429 with `retry-after` and rate-limit headers.
    RateLimited {
        /// Seconds in `retry-after`.
        #[serde(default = "one")]
        retry_after_secs: u64,
    },
    /// Anthropic 529 `overloaded_error` (OpenAI: 503).
    Overloaded,
    /// 500 `api_error`.
    ServerError,
    /// 504 from a gateway in front of the API.
    GatewayTimeout,
    /// Never answers (until the client gives up).
    Hang,
    /// 200 with a body that is not JSON.
    MalformedJson,
    /// The model stops at `max_tokens` (OpenAI: `finish_reason: length`).
    MaxTokens,
    /// The model refuses (Anthropic `stop_reason: refusal`; OpenAI `refusal`).
    Refusal,
    /// Anthropic: `end_turn` with text and no tool call.
    EndTurnWithoutTool,
    /// A verdict that breaks the schema (score 150, unknown field).
    SchemaViolation,
    /// A well-formed verdict saying `deploy` at score 5, whatever the diff holds.
    DeployAnyway,
    /// OpenAI's 429 `insufficient_quota`.
    InsufficientQuota,
    /// 401 as for a wrong key.
    Unauthorized,
}

fn one() -> u64 {
    1
}

impl Fault {
    /// Parses the name used in `MOCK:fault=<name>` markers.
    pub fn from_marker(name: &str) -> Option<Fault> {
        serde_json::from_value(json!({ "fault": name })).ok()
    }
}

/// Reads `MOCK:<key>=<value>` markers from request text.
pub(crate) fn marker<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("MOCK:{key}=");
    let start = text.find(&needle)? + needle.len();
    let rest = &text[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '\\' || c == ',')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// A verdict at `score` (capped at 100) with one scripted risk whose severity agrees
/// with it: what `MOCK:score=N` and [`crate::MockConfig::verdict_score`] answer.
pub(crate) fn scored_verdict(score: u64) -> Value {
    let score = score.min(100);
    let severity = match score {
        0..=9 => "info",
        10..=29 => "low",
        30..=54 => "medium",
        55..=79 => "high",
        _ => "critical",
    };
    json!({
        "risk_score": score,
        "recommendation": recommendation_for(score),
        "summary": format!("Scripted verdict: {score}."),
        "risks": [{"category": "config", "severity": severity, "detail": "Scripted risk.", "evidence": []}],
        "rollback_notes": ["git revert HEAD"],
    })
}

pub(crate) fn recommendation_for(score: u64) -> &'static str {
    match score {
        0..=50 => "deploy",
        51..=75 => "hold",
        _ => "block",
    }
}

/// The verdict for a request whose user text is `text`: `MOCK:score=N` sets the
/// score, otherwise destructive SQL and redacted secrets score as block, anything
/// else low. Always consistent with the default bands.
///
/// With `obey` (the obedient mode, [`crate::MockConfig::obey_instructions`]), an
/// instruction found anywhere in `text` wins over everything but a fault: `deploy`
/// at 0. Without one, the answer is a diligent model's, never below the rules
/// analyzer's hints.
pub(crate) fn verdict_for(text: &str, fault: Option<&Fault>, obey: bool) -> Value {
    if obey && fault.is_none() {
        return match crate::obey::find_instruction(text) {
            Some(instruction) => crate::obey::obedient_verdict(&instruction),
            None => crate::obey::diligent_verdict(text, verdict_for(text, None, false)),
        };
    }
    match fault {
        Some(Fault::SchemaViolation) => {
            return json!({"risk_score": 150, "recommendation": "ship-it", "summary": "", "confidence": 0.9, "risks": [], "rollback_notes": []});
        }
        Some(Fault::DeployAnyway) => {
            return json!({"risk_score": 5, "recommendation": "deploy", "summary": "Looks fine to me.", "risks": [], "rollback_notes": ["git revert HEAD"]});
        }
        _ => {}
    }
    if let Some(score) = marker(text, "score").and_then(|s| s.parse::<u64>().ok()) {
        return scored_verdict(score);
    }
    let upper = text.to_ascii_uppercase();
    let (score, risks, summary) = if upper.contains("DROP TABLE")
        || upper.contains("DROP COLUMN")
        || upper.contains("TRUNCATE")
    {
        (
            90,
            json!([{"category": "schema", "severity": "critical", "detail": "Destructive DDL drops data.", "evidence": []}]),
            "Destructive migration: block.",
        )
    } else if text.contains("[REDACTED:") {
        (
            85,
            json!([{"category": "secrets", "severity": "critical", "detail": "A credential is committed.", "evidence": []}]),
            "Committed secret: block.",
        )
    } else {
        (5, json!([]), "Routine change.")
    };
    json!({
        "risk_score": score,
        "recommendation": recommendation_for(score),
        "summary": summary,
        "risks": risks,
        "rollback_notes": ["git revert HEAD"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_script_the_score_and_sql_scripts_a_block() {
        assert_eq!(
            verdict_for("diff MOCK:score=60 more", None, false)["recommendation"],
            "hold"
        );
        assert_eq!(
            verdict_for("+DROP TABLE users;", None, false)["risk_score"],
            90
        );
        assert_eq!(verdict_for("+fn main() {}", None, false)["risk_score"], 5);
        assert_eq!(Fault::from_marker("max_tokens"), Some(Fault::MaxTokens));
        let fixed = scored_verdict(180);
        assert_eq!(
            (
                fixed["risk_score"].as_u64(),
                fixed["recommendation"].as_str()
            ),
            (Some(100), Some("block"))
        );
        assert_eq!(scored_verdict(45)["risks"][0]["severity"], "medium");
        assert_eq!(
            Fault::from_marker("rate_limited"),
            Some(Fault::RateLimited {
                retry_after_secs: 1
            })
        );
    }
}
