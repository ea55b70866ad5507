//! A notification as a Slack incoming-webhook message: Block Kit blocks plus the
//! `text` fallback Slack shows in push notifications and screen readers.
//!
//! Everything that comes from the change (summary, risk details, file names) is
//! untrusted: `&`, `<` and `>` are escaped so it cannot form links or mentions
//! (`<!channel>`), and every piece is cut to fit Slack's limits (50 blocks, 3000
//! characters per section text, 2000 per field, 150 per header) with a note saying
//! so, because Slack refuses the whole message when one limit is exceeded.

use gate_core::{CanaryNotice, Decision, Notification, Recommendation, Risk, Severity};
use serde_json::{json, Value};

/// Slack's limit on blocks per message.
pub(crate) const MAX_BLOCKS: usize = 50;
/// Slack's limit on a section's (and a context element's) text.
pub(crate) const MAX_SECTION_CHARS: usize = 3_000;
/// Slack's limit on one section field.
const MAX_FIELD_CHARS: usize = 2_000;
/// Slack's limit on a header's text.
const MAX_HEADER_CHARS: usize = 150;
/// Risks shown one by one; the rest are counted.
const MAX_RISKS_SHOWN: usize = 8;
/// Evidence locations shown per risk; the rest are counted.
const MAX_EVIDENCE_SHOWN: usize = 5;
/// Length of a risk's detail, so its evidence always fits in the same section.
const MAX_DETAIL_CHARS: usize = 1_500;
/// Length of one evidence location.
const MAX_EVIDENCE_CHARS: usize = 200;
/// Rollback notes shown; the rest are counted.
const MAX_ROLLBACK_SHOWN: usize = 6;
/// Length of the `text` fallback: a notification preview, not the whole story.
const MAX_FALLBACK_CHARS: usize = 500;
/// What marks a cut.
const TRUNCATED: &str = "… (truncated)";

/// The message body for a Slack incoming webhook.
pub(crate) fn message(notification: &Notification) -> Value {
    if let Some(canary) = &notification.canary {
        return canary_message(notification, canary);
    }
    let decision = &notification.decision;
    let mut blocks = vec![header(decision)];
    if let Some(approval) = &decision.approval {
        blocks.push(section(&format!(
            ":bust_in_silhouette: *{}* by {} (automatic: {}): {}",
            if approval.superseded == decision.recommendation {
                "Confirmed"
            } else {
                "Overridden"
            },
            escape(&approval.by),
            approval.superseded,
            escape(&approval.reason)
        )));
    }
    blocks.push(json!({
        "type": "section",
        "fields": [
            field(&format!("*Repository*\n{}", escape(&decision.repo))),
            field(&format!("*Commit*\n{}", code(&short_sha(&decision.head)))),
            field(&format!("*Recommendation*\n{}", decision.recommendation)),
            field(&format!("*Risk score*\n{}/100 ({})", decision.risk_score, decision.band)),
        ],
    }));
    let summary = if decision.summary.trim().is_empty() {
        "_No summary._".to_string()
    } else {
        escape(decision.summary.trim())
    };
    blocks.push(section(&format!("*Summary*\n{summary}")));
    blocks.push(json!({"type": "divider"}));
    blocks.extend(risks(&decision.risks));
    if !decision.rollback_notes.is_empty() {
        blocks.push(section(&rollback(&decision.rollback_notes)));
    }
    blocks.push(footer(&format!(
        "event {} · decided {} · severity {} · deploy-gate",
        code(&notification.event_id),
        escape(&decision.decided_at),
        notification.severity
    )));
    // The caps above keep a message far below the limit; this guards the limit
    // itself should they grow.
    if blocks.len() > MAX_BLOCKS {
        blocks.truncate(MAX_BLOCKS - 1);
        blocks.push(section("_Message cut to Slack's 50-block limit._"));
    }
    json!({
        "text": fallback(decision),
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// A canary judgement: its result and score lead, then what moved, the failed
/// metrics and the deploy decision's rollback plan.
fn canary_message(notification: &Notification, canary: &CanaryNotice) -> Value {
    let decision = &notification.decision;
    let result = canary.result.to_uppercase();
    let score = canary
        .score
        .map_or_else(|| "no data".to_string(), |score| format!("{score:.0}/100"));
    let emoji = match canary.result.as_str() {
        "rollback" => ":rewind:",
        "promote" => ":white_check_mark:",
        _ => ":hourglass_flowing_sand:",
    };
    let mut blocks = vec![json!({
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": cut(&format!("{emoji} CANARY {result} · score {score}"), MAX_HEADER_CHARS),
            "emoji": true,
        },
    })];
    blocks.push(json!({
        "type": "section",
        "fields": [
            field(&format!("*Repository*\n{}", escape(&decision.repo))),
            field(&format!("*Commit*\n{}", code(&short_sha(&decision.head)))),
            field(&format!("*Canary*\n{}", escape(&canary.canary))),
            field(&format!("*Baseline*\n{}", escape(&canary.baseline))),
        ],
    }));
    blocks.push(section(&format!(
        "*What moved*\n{}",
        escape(canary.summary.trim())
    )));
    if !canary.failed.is_empty() {
        let lines: Vec<String> = canary
            .failed
            .iter()
            .take(MAX_ROLLBACK_SHOWN)
            .map(|metric| format!("• {}", escape(metric)))
            .collect();
        let more = canary.failed.len().saturating_sub(lines.len());
        let mut text = format!("*Failed metrics*\n{}", lines.join("\n"));
        if more > 0 {
            text.push_str(&format!("\n_…and {more} more_"));
        }
        blocks.push(section(&text));
    }
    blocks.push(json!({"type": "divider"}));
    if !decision.rollback_notes.is_empty() {
        blocks.push(section(&rollback(&decision.rollback_notes)));
    }
    blocks.push(footer(&format!(
        "{} · deploy risk {}/100 ({}) · judged {} · deploy-gate canary",
        code(&notification.event_id),
        decision.risk_score,
        decision.recommendation,
        escape(&decision.decided_at),
    )));
    json!({
        "text": fit(
            &format!(
                "CANARY {result}: {} at {} ({} vs {}), score {score}. {}",
                escape(&decision.repo),
                short_sha(&decision.head),
                escape(&canary.canary),
                escape(&canary.baseline),
                escape(canary.summary.trim())
            ),
            MAX_FALLBACK_CHARS,
        ),
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// The notification preview: recommendation, repository, commit, score, summary.
fn fallback(decision: &Decision) -> String {
    fit(
        &format!(
            "{}: {} at {} scored {}/100. {}",
            decision.recommendation.as_str().to_uppercase(),
            escape(&decision.repo),
            short_sha(&decision.head),
            decision.risk_score,
            escape(decision.summary.trim())
        ),
        MAX_FALLBACK_CHARS,
    )
}

fn header(decision: &Decision) -> Value {
    let emoji = match decision.recommendation {
        Recommendation::Deploy => ":white_check_mark:",
        Recommendation::Hold => ":warning:",
        Recommendation::Block => ":no_entry:",
    };
    // plain_text: Slack shows it literally, so no escaping, only the length cap.
    let text = format!(
        "{emoji} {} · risk {}/100",
        decision.recommendation.as_str().to_uppercase(),
        decision.risk_score
    );
    json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(&text, MAX_HEADER_CHARS), "emoji": true},
    })
}

/// The risks, most severe first as the decision lists them: a title, one section
/// per shown risk, and a count of the rest.
fn risks(risks: &[Risk]) -> Vec<Value> {
    if risks.is_empty() {
        return vec![section("*Risks*\nNone found.")];
    }
    let mut blocks = vec![section(&format!(
        "*Top risks* ({} of {})",
        risks.len().min(MAX_RISKS_SHOWN),
        risks.len()
    ))];
    for risk in risks.iter().take(MAX_RISKS_SHOWN) {
        let mut text = format!(
            "{} *{}* · {} — {}",
            severity_emoji(risk.severity),
            risk.severity,
            risk.category,
            fit(&escape(risk.detail.trim()), MAX_DETAIL_CHARS)
        );
        if !risk.evidence.is_empty() {
            let shown: Vec<String> = risk
                .evidence
                .iter()
                .take(MAX_EVIDENCE_SHOWN)
                .map(|evidence| code(&cut(&evidence.to_string(), MAX_EVIDENCE_CHARS)))
                .collect();
            text.push('\n');
            text.push_str(&shown.join(", "));
            if risk.evidence.len() > MAX_EVIDENCE_SHOWN {
                text.push_str(&format!(
                    " and {} more",
                    risk.evidence.len() - MAX_EVIDENCE_SHOWN
                ));
            }
        }
        blocks.push(section(&text));
    }
    if risks.len() > MAX_RISKS_SHOWN {
        blocks.push(json!({
            "type": "context",
            "elements": [{
                "type": "mrkdwn",
                "text": format!("…and {} more risk(s) in the decision.", risks.len() - MAX_RISKS_SHOWN),
            }],
        }));
    }
    blocks
}

/// Rollback notes as a list; commands (the `git revert` first of all) in code
/// spans so they can be copied as they are.
fn rollback(notes: &[String]) -> String {
    let mut text = String::from("*Rollback*");
    for note in notes.iter().take(MAX_ROLLBACK_SHOWN) {
        let note = note.trim();
        let shown = if note.starts_with("git ") {
            code(note)
        } else {
            escape(note)
        };
        text.push_str("\n• ");
        text.push_str(&shown);
    }
    if notes.len() > MAX_ROLLBACK_SHOWN {
        text.push_str(&format!(
            "\n…and {} more note(s).",
            notes.len() - MAX_ROLLBACK_SHOWN
        ));
    }
    text
}

fn severity_emoji(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => ":red_circle:",
        Severity::High => ":large_orange_circle:",
        Severity::Medium => ":large_yellow_circle:",
        Severity::Low => ":large_blue_circle:",
        Severity::Info => ":white_circle:",
    }
}

/// The small grey line at a message's foot, cut to a section's length.
fn footer(text: &str) -> Value {
    json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": fit(text, MAX_SECTION_CHARS)}],
    })
}

/// A mrkdwn section, cut to Slack's limit.
fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": fit(text, MAX_SECTION_CHARS)}})
}

fn field(text: &str) -> Value {
    json!({"type": "mrkdwn", "text": fit(text, MAX_FIELD_CHARS)})
}

/// The first seven characters of a commit id, as git shows it.
fn short_sha(sha: &str) -> String {
    sha.chars().take(7).collect()
}

/// A code span. Slack has no escape for a backtick inside one, so backticks become
/// quotes; `&<>` are escaped as everywhere.
fn code(text: &str) -> String {
    format!("`{}`", escape(&text.replace('`', "'")))
}

/// Escapes Slack's three control characters, as Slack asks of every mrkdwn text.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Cuts already-escaped mrkdwn to `max_chars` characters, marking the cut, without
/// splitting an `&amp;`-style entity or leaving a code span open.
fn fit(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let keep = max_chars.saturating_sub(TRUNCATED.chars().count() + 1);
    let mut cut_text: String = text.chars().take(keep).collect();
    if let Some(amp) = cut_text.rfind('&') {
        if !cut_text[amp..].contains(';') {
            cut_text.truncate(amp);
        }
    }
    if cut_text.matches('`').count() % 2 == 1 {
        cut_text.push('`');
    }
    cut_text.push_str(TRUNCATED);
    cut_text
}

/// Cuts plain text to `max_chars` characters, ending in `…` when cut.
fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars.saturating_sub(1)) {
        Some((idx, _)) if text.chars().count() > max_chars => format!("{}…", &text[..idx]),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gate_core::{
        Band, Category, Consensus, ContextSummary, Evidence, Usage, NOTIFICATION_SCHEMA_VERSION,
    };

    fn decision(summary: &str, risks: Vec<Risk>, notes: Vec<String>) -> Decision {
        Decision {
            schema_version: 1,
            event_id: "ev-1".into(),
            repo: "acme/shop".into(),
            base: "a".repeat(40),
            head: "0123456789abcdef0123456789abcdef01234567".into(),
            risk_score: 92,
            band: Band::Block,
            recommendation: Recommendation::Block,
            summary: summary.into(),
            risks,
            rollback_notes: notes,
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
            decided_at: "2025-01-01T00:00:01Z".into(),
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

    fn notification(decision: Decision) -> Notification {
        Notification {
            schema_version: NOTIFICATION_SCHEMA_VERSION,
            event_id: decision.event_id.clone(),
            channel: "ops".into(),
            severity: Severity::Critical,
            decision,
            canary: None,
        }
    }

    fn risk(detail: &str, evidence: Vec<Evidence>) -> Risk {
        Risk {
            category: Category::Schema,
            severity: Severity::Critical,
            detail: detail.into(),
            evidence,
        }
    }

    fn texts(message: &Value) -> Vec<String> {
        let mut out = vec![];
        for block in message["blocks"].as_array().expect("blocks") {
            if let Some(text) = block["text"]["text"].as_str() {
                out.push(text.to_string());
            }
            for field in block["fields"].as_array().into_iter().flatten() {
                out.push(field["text"].as_str().unwrap_or_default().to_string());
            }
            for element in block["elements"].as_array().into_iter().flatten() {
                out.push(element["text"].as_str().unwrap_or_default().to_string());
            }
        }
        out
    }

    #[test]
    fn a_block_message_shows_score_repo_commit_risks_evidence_and_the_revert_command() {
        let message = message(&notification(decision(
            "Drops the users.legacy column.",
            vec![risk(
                "A column is dropped.",
                vec![Evidence::line(
                    "db/migrations/002_drop.sql",
                    3,
                    "DROP COLUMN",
                )],
            )],
            vec![
                "git revert 0123456789ab".into(),
                "Restore from backup.".into(),
            ],
        )));
        let all = texts(&message).join("\n");
        assert_eq!(message["blocks"][0]["type"], "header");
        assert!(message["blocks"][0]["text"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("BLOCK") && t.contains("92/100")));
        for expected in [
            "acme/shop",
            "`0123456`",
            ":red_circle: *critical* · schema — A column is dropped.",
            "`db/migrations/002_drop.sql:3`",
            "• `git revert 0123456789ab`",
            "event `ev-1` · decided 2025-01-01T00:00:01Z",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in {all}");
        }
        let fallback = message["text"].as_str().expect("text fallback");
        assert!(fallback.starts_with("BLOCK: acme/shop at 0123456 scored 92/100."));
    }

    #[test]
    fn a_canary_rollback_leads_with_the_canary_not_the_deploy_verdict() {
        let mut notification = notification(decision(
            "Adds a column.",
            Vec::new(),
            vec!["git revert 0123456789ab".into()],
        ));
        notification.canary = Some(CanaryNotice {
            result: "rollback".into(),
            canary: "shop-canary".into(),
            baseline: "shop-baseline".into(),
            score: Some(42.4),
            summary: "error_rate rose 98 % on the canary.".into(),
            failed: vec!["error_rate (critical): high, +98.0 %".into()],
        });
        let message = message(&notification);
        let header = message["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            header.contains("CANARY ROLLBACK · score 42/100"),
            "{header}"
        );
        assert!(!header.contains("BLOCK"), "{header}");
        let all = texts(&message).join("\n");
        for expected in [
            "shop-canary",
            "shop-baseline",
            "error_rate rose 98 % on the canary.",
            "• error_rate (critical): high, +98.0 %",
            "• `git revert 0123456789ab`",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in {all}");
        }
        let fallback = message["text"].as_str().unwrap();
        assert!(
            fallback.starts_with("CANARY ROLLBACK: acme/shop at 0123456"),
            "{fallback}"
        );
    }

    #[test]
    fn untrusted_text_cannot_mention_the_channel_or_form_links() {
        let message = message(&notification(decision(
            "<!channel> see <https://evil.example|here> & pay",
            vec![risk("x <@U123> y", vec![Evidence::file("a`b<c>.sql")])],
            vec![],
        )));
        let all = texts(&message).join("\n") + message["text"].as_str().unwrap_or_default();
        assert!(!all.contains("<!channel>") && !all.contains("<@U123>") && !all.contains("<https"));
        assert!(all.contains("&lt;!channel&gt; see &lt;https://evil.example|here&gt; &amp; pay"));
        assert!(all.contains("`a'b&lt;c&gt;.sql`"));
    }

    #[test]
    fn huge_decisions_stay_within_slacks_limits_and_say_they_were_cut() {
        let evidence: Vec<Evidence> = (0..50)
            .map(|i| Evidence::line(format!("f{i}.rs"), i, ""))
            .collect();
        let risks: Vec<Risk> = (0..200)
            .map(|_| risk(&"&".repeat(5_000), evidence.clone()))
            .collect();
        let notes: Vec<String> = (0..40).map(|_| "n".repeat(2_000)).collect();
        let message = message(&notification(decision(&"<".repeat(10_000), risks, notes)));
        let blocks = message["blocks"].as_array().expect("blocks");
        assert!(blocks.len() <= MAX_BLOCKS, "{} blocks", blocks.len());
        for text in texts(&message) {
            assert!(text.chars().count() <= MAX_SECTION_CHARS, "{}", text.len());
            for (idx, _) in text.match_indices('&') {
                let rest = &text[idx..];
                assert!(
                    ["&amp;", "&lt;", "&gt;"]
                        .iter()
                        .any(|e| rest.starts_with(e)),
                    "an entity was split near {idx}"
                );
            }
        }
        let all = texts(&message).join("\n");
        assert!(all.contains(TRUNCATED));
        assert!(all.contains("…and 192 more risk(s)"));
        assert!(all.contains("and 45 more"));
        assert!(message["text"].as_str().unwrap_or_default().chars().count() <= MAX_FALLBACK_CHARS);
    }

    #[test]
    fn cutting_escaped_text_never_splits_an_entity_or_leaves_a_code_span_open() {
        // The cut falls two characters into `&amp;`: the entity goes whole.
        let cut_text = fit(&format!("{}&amp;{}", "x".repeat(20), "y".repeat(40)), 36);
        assert_eq!(cut_text, format!("{}{TRUNCATED}", "x".repeat(20)));
        let cut_code = fit(&format!("`{}`", "y".repeat(100)), 40);
        assert_eq!(cut_code.matches('`').count() % 2, 0, "{cut_code}");
        assert_eq!(fit("short", 40), "short");
    }
}
