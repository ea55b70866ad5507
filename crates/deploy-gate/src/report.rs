//! Renderings of a Decision: the CI-log text report, Markdown for
//! `GITHUB_STEP_SUMMARY`, GitHub annotations, and JSON.

use std::fmt::Write;

use gate_core::{Decision, Recommendation, Risk, Severity};

/// How many evidence lines the text report shows per risk.
const MAX_EVIDENCE_SHOWN: usize = 5;

/// The Decision as pretty JSON, newline-terminated.
pub fn json(decision: &Decision) -> String {
    let mut out = serde_json::to_string_pretty(decision)
        .unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
    out.push('\n');
    out
}

fn marker(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "[CRIT]",
        Severity::High => "[HIGH]",
        Severity::Medium => "[MED ]",
        Severity::Low => "[LOW ]",
        Severity::Info => "[INFO]",
    }
}

fn verdict_line(decision: &Decision) -> &'static str {
    match (decision.recommendation, decision.band) {
        (Recommendation::Block, _) => "BLOCK: do not deploy this change",
        (Recommendation::Hold, _) => "HOLD: a human must review before deploy",
        (Recommendation::Deploy, gate_core::Band::Review) => "DEPLOY, with a standard review",
        (Recommendation::Deploy, _) => "DEPLOY automatically",
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The report a person reads in a CI log.
pub fn text(decision: &Decision) -> String {
    let mut out = String::new();
    let ctx = &decision.context;
    let _ = writeln!(
        out,
        "deploy-gate: {} {}..{} ({} commit{}, {} file{}, +{} -{})",
        decision.repo,
        short(&decision.base),
        short(&decision.head),
        ctx.n_commits,
        plural(ctx.n_commits),
        ctx.n_files,
        plural(ctx.n_files),
        ctx.lines_added,
        ctx.lines_removed,
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  risk score      {}/100 (band: {})",
        decision.risk_score, decision.band
    );
    let _ = writeln!(out, "  recommendation  {}", verdict_line(decision));
    let _ = writeln!(out, "  summary         {}", decision.summary);
    let _ = writeln!(out);

    if decision.risks.is_empty() {
        let _ = writeln!(out, "risks: none found");
    } else {
        let _ = writeln!(out, "risks ({}):", decision.risks.len());
        for risk in &decision.risks {
            write_risk(&mut out, risk);
        }
    }
    let _ = writeln!(out);

    let _ = writeln!(out, "rollback:");
    for note in &decision.rollback_notes {
        let _ = writeln!(out, "  {note}");
    }
    let _ = writeln!(out);

    let _ = writeln!(
        out,
        "context: the analyzers saw {} chars of diff",
        group_thousands(ctx.packed_chars as u64)
    );
    if ctx.n_omitted == 0 {
        let _ = writeln!(out, "  nothing was truncated");
    } else {
        let _ = writeln!(
            out,
            "  truncated: {} file{} not shown in full:",
            ctx.n_omitted,
            plural(ctx.n_omitted)
        );
        for omission in &ctx.omitted {
            let _ = writeln!(out, "    - {}: {}", omission.path, omission.reason);
        }
        if ctx.n_omitted > ctx.omitted.len() {
            let _ = writeln!(out, "    … and {} more", ctx.n_omitted - ctx.omitted.len());
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "analysis ({}):", decision.consensus.mode);
    for verdict in &decision.verdicts {
        let _ = writeln!(
            out,
            "  {:<32} score {:>3} {:<6} {:>6} ms{}",
            verdict.analyzer,
            verdict.risk_score,
            verdict.recommendation.as_str(),
            verdict.latency_ms,
            usage_text(&verdict.usage)
        );
    }
    for note in &decision.consensus.notes {
        let _ = writeln!(out, "  {note}");
    }
    let total = &decision.usage;
    if total.input_tokens
        + total.output_tokens
        + total.cache_read_input_tokens
        + total.cache_creation_input_tokens
        > 0
    {
        let _ = writeln!(out, "  total{}", usage_text(total));
    }
    out
}

/// Tokens, cache hits and cost of a verdict; empty for the free rules analyzer.
fn usage_text(usage: &gate_core::Usage) -> String {
    let tokens = usage.input_tokens
        + usage.output_tokens
        + usage.cache_read_input_tokens
        + usage.cache_creation_input_tokens;
    if tokens == 0 {
        return String::new();
    }
    let cost = match usage.cost_usd {
        Some(cost) => format!("${cost:.4}"),
        None => "cost unknown (no price for this model)".to_string(),
    };
    format!(
        "  tokens: {} in, {} cache read, {} cache write, {} out; {cost}",
        usage.input_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
        usage.output_tokens
    )
}

fn write_risk(out: &mut String, risk: &Risk) {
    let _ = writeln!(
        out,
        "  {} {:<7} {}",
        marker(risk.severity),
        risk.category.as_str(),
        risk.detail
    );
    for evidence in risk.evidence.iter().take(MAX_EVIDENCE_SHOWN) {
        match &evidence.excerpt {
            Some(excerpt) => {
                let _ = writeln!(out, "           at {evidence}  {excerpt}");
            }
            None => {
                let _ = writeln!(out, "           at {evidence}");
            }
        }
    }
    if risk.evidence.len() > MAX_EVIDENCE_SHOWN {
        let _ = writeln!(
            out,
            "           … and {} more places",
            risk.evidence.len() - MAX_EVIDENCE_SHOWN
        );
    }
}

/// The Markdown appended to `$GITHUB_STEP_SUMMARY`.
pub fn markdown(decision: &Decision) -> String {
    let mut out = String::new();
    let icon = match decision.recommendation {
        Recommendation::Deploy => "✅",
        Recommendation::Hold => "⏸️",
        Recommendation::Block => "⛔",
    };
    let _ = writeln!(
        out,
        "### {icon} deploy-gate: {} ({}/100)\n",
        decision.recommendation.as_str().to_uppercase(),
        decision.risk_score
    );
    let _ = writeln!(
        out,
        "`{}` `{}..{}`\n",
        decision.repo,
        short(&decision.base),
        short(&decision.head)
    );
    let _ = writeln!(out, "{}\n", md_escape(&decision.summary));
    if !decision.risks.is_empty() {
        let _ = writeln!(out, "| severity | category | detail | where |");
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        for risk in &decision.risks {
            let places: Vec<String> = risk
                .evidence
                .iter()
                .take(3)
                .map(|e| format!("`{e}`"))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                risk.severity,
                risk.category,
                md_escape(&risk.detail),
                places.join(" ")
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "**Rollback**\n");
    for note in &decision.rollback_notes {
        let _ = writeln!(out, "- `{}`", note.replace('`', "'"));
    }
    if decision.context.n_omitted > 0 {
        let _ = writeln!(
            out,
            "\n_{} file(s) were not analysed in full (see the job log)._",
            decision.context.n_omitted
        );
    }
    let _ = writeln!(out);
    out
}

fn md_escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// GitHub Actions workflow commands: one annotation per risk location.
pub fn github_annotations(decision: &Decision) -> String {
    let mut out = String::new();
    for risk in &decision.risks {
        let level = match risk.severity {
            Severity::Critical => "error",
            Severity::High | Severity::Medium => "warning",
            Severity::Low | Severity::Info => "notice",
        };
        let title = format!("deploy-gate {} risk ({})", risk.category, risk.severity);
        if risk.evidence.is_empty() {
            let _ = writeln!(
                out,
                "::{level} title={}::{}",
                gh_property(&title),
                gh_data(&risk.detail)
            );
        }
        for evidence in risk.evidence.iter().take(MAX_EVIDENCE_SHOWN) {
            let mut props = format!("file={}", gh_property(&evidence.file));
            if let Some(line) = evidence.line {
                let _ = write!(props, ",line={line}");
            }
            let _ = writeln!(
                out,
                "::{level} {props},title={}::{}",
                gh_property(&title),
                gh_data(&risk.detail)
            );
        }
    }
    out
}

/// Escapes a workflow command's message.
fn gh_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value.
fn gh_property(text: &str) -> String {
    gh_data(text).replace(':', "%3A").replace(',', "%2C")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (idx, ch) in digits.chars().enumerate() {
        if idx > 0 && (digits.len() - idx) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_command_values_are_escaped() {
        assert_eq!(gh_data("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(gh_property("a:b,c"), "a%3Ab%2Cc");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(12_000), "12,000");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }
}
