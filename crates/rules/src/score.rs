//! From findings to a score, a recommendation, a list of risks and a summary.
//!
//! The model:
//! - each finding scores its severity's floor (Low 10, Medium 30, High 55, Critical 80,
//!   lifted to the band's first score under custom bands) plus a bonus that ranks it
//!   inside its band, capped at the band's last score;
//! - the change itself has a baseline: docs-only 5, tests/docs 10, tooling, assets
//!   or generated files 15, application code 28 rising with size to at most 45;
//! - the score is the highest of those, plus a small breadth bump (other categories
//!   and repeated top findings, at most +8) that never leaves the band of the highest
//!   severity: accumulation alone does not promote a change to the next band.

use std::collections::BTreeSet;

use gate_core::{Band, Bands, Category, ChangedFile, Risk, Severity};

use crate::facts::PathFacts;
use crate::findings::Finding;

/// Risks listed in a verdict; the summary counts the rest.
pub(crate) const MAX_RISKS: usize = 25;
/// Files named in the detail of a finding that spans files.
const FILES_NAMED: usize = 4;

fn severity_band(severity: Severity) -> Band {
    match severity {
        Severity::Info | Severity::Low => Band::Auto,
        Severity::Medium => Band::Review,
        Severity::High => Band::Hold,
        Severity::Critical => Band::Block,
    }
}

fn band_ceiling(bands: &Bands, band: Band) -> u8 {
    match band {
        Band::Auto => bands.review_from.saturating_sub(1),
        Band::Review => bands.hold_from.saturating_sub(1),
        Band::Hold => bands.block_from.saturating_sub(1),
        Band::Block => 100,
    }
}

/// The score range a severity occupies under `bands`.
pub(crate) fn severity_range(bands: &Bands, severity: Severity) -> (u8, u8) {
    let band = severity_band(severity);
    let high = band_ceiling(bands, band);
    let low = severity
        .floor_score()
        .max(bands.lowest_score(band))
        .min(high);
    (low, high)
}

/// The score of one finding under `bands`.
pub(crate) fn finding_score(bands: &Bands, finding: &Finding) -> u8 {
    let (low, high) = severity_range(bands, finding.severity);
    low.saturating_add(finding.bonus).min(high)
}

/// What the change is, before any risk: the baseline score and how it reads.
#[derive(Debug, Clone)]
pub(crate) struct Baseline {
    pub score: u8,
    pub description: String,
}

/// The baseline of a change from its file list.
pub(crate) fn baseline(
    files: &[ChangedFile],
    facts: &[PathFacts],
    lines_added: u64,
    lines_removed: u64,
) -> Baseline {
    if files.is_empty() {
        return Baseline {
            score: 0,
            description: "No file changed".to_string(),
        };
    }
    let (mut code_files, mut code_lines, mut docs, mut tests, mut light, mut other) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for (file, facts) in files.iter().zip(facts) {
        use gate_core::FileClass::*;
        if facts.is_code() {
            code_files += 1;
            code_lines += file.additions + file.deletions;
        } else if facts.tooling || facts.asset || matches!(file.class, Generated | Lockfile) {
            light += 1;
        } else {
            match file.class {
                Docs => docs += 1,
                Test => tests += 1,
                _ => other += 1,
            }
        }
    }
    let n = files.len();
    if code_files > 0 {
        let by_lines = match code_lines {
            0..=19 => 0,
            20..=99 => 2,
            100..=399 => 5,
            400..=1_499 => 9,
            1_500..=4_999 => 12,
            _ => 15,
        };
        let by_files = match code_files {
            0..=4 => 0,
            5..=14 => 1,
            15..=39 => 2,
            _ => 3,
        };
        return Baseline {
            score: (28 + by_lines + by_files).min(45),
            description: format!(
                "Application code changed ({code_files} of {n} files, +{lines_added}/−{lines_removed})"
            ),
        };
    }
    if other > 0 {
        return Baseline {
            score: 20,
            description: format!("{} changed", n_files(n)),
        };
    }
    if light > 0 {
        return Baseline {
            score: 15,
            description: format!(
                "Tooling, generated, lockfile or asset changes only ({})",
                n_files(n)
            ),
        };
    }
    if tests > 0 {
        return Baseline {
            score: 10,
            description: format!("Tests and documentation only ({})", n_files(n)),
        };
    }
    let _ = docs;
    Baseline {
        score: 5,
        description: format!("Documentation only ({})", n_files(n)),
    }
}

/// `1 file`, `3 files`.
fn n_files(n: usize) -> String {
    if n == 1 {
        "1 file".to_string()
    } else {
        format!("{n} files")
    }
}

/// The final score of a change.
pub(crate) fn combine(bands: &Bands, findings: &[(u8, &Finding)], base: &Baseline) -> u8 {
    let base_score = base.score.min(band_ceiling(bands, Band::Review));
    let Some(top_severity) = findings.iter().map(|(_, f)| f.severity).max() else {
        return base_score;
    };
    let top = findings.iter().map(|(score, _)| *score).max().unwrap_or(0);
    let categories: BTreeSet<Category> = findings
        .iter()
        .filter(|(_, f)| f.severity >= Severity::Medium)
        .map(|(_, f)| f.category)
        .collect();
    let at_top = findings
        .iter()
        .filter(|(_, f)| f.severity == top_severity)
        .count();
    let breadth =
        (2 * categories.len().saturating_sub(1) + at_top.saturating_sub(1).min(3)).min(8) as u8;
    let ceiling = band_ceiling(bands, severity_band(top_severity))
        .max(band_ceiling(bands, bands.band(base_score)));
    top.max(base_score)
        .saturating_add(breadth)
        .min(ceiling)
        .min(100)
}

/// Writes the detail of a finding: its own, or title + labels + where + how often.
pub(crate) fn detail(finding: &Finding) -> String {
    if let Some(detail) = &finding.detail {
        return detail.clone();
    }
    let mut text = finding.title.to_string();
    if finding.file.is_empty() {
        if !finding.labels.is_empty() {
            text.push_str(&format!(" ({})", finding.labels.join(", ")));
        }
        let mut files: Vec<&str> = finding.evidence.iter().map(|e| e.file.as_str()).collect();
        files.dedup();
        let named: Vec<&str> = files.iter().take(FILES_NAMED).copied().collect();
        text.push_str(": ");
        text.push_str(&named.join(", "));
        let more = finding.count.saturating_sub(named.len() as u64);
        if more > 0 {
            text.push_str(&format!(
                " and {more} more file{}",
                if more == 1 { "" } else { "s" }
            ));
        }
    } else {
        text.push_str(&format!(" in {}", finding.file));
        if !finding.labels.is_empty() {
            text.push_str(&format!(": {}", finding.labels.join(", ")));
        }
        if finding.count > 1 {
            text.push_str(&format!(" ({} lines)", finding.count));
        }
    }
    text.push('.');
    text
}

/// The risks of a verdict, most severe first, capped; and how many were left out.
pub(crate) fn risks(bands: &Bands, findings: &[(&'static str, Finding)]) -> (Vec<Risk>, usize) {
    let mut ranked: Vec<(u8, &'static str, &Finding)> = findings
        .iter()
        .map(|(key, f)| (finding_score(bands, f), *key, f))
        .collect();
    ranked.sort_by(|a, b| {
        b.2.severity
            .cmp(&a.2.severity)
            .then(b.0.cmp(&a.0))
            .then(a.2.category.cmp(&b.2.category))
            .then(a.1.cmp(b.1))
            .then(a.2.file.cmp(&b.2.file))
    });
    let left_out = ranked.len().saturating_sub(MAX_RISKS);
    let risks = ranked
        .into_iter()
        .take(MAX_RISKS)
        .map(|(_, _, f)| Risk {
            category: f.category,
            severity: f.severity,
            detail: detail(f),
            evidence: f.evidence.clone(),
        })
        .collect();
    (risks, left_out)
}

/// One or two sentences: the top risk, the next ones by category, and how many more.
pub(crate) fn summary(
    score: u8,
    bands: &Bands,
    risks: &[Risk],
    left_out: usize,
    base: &Baseline,
) -> String {
    let band = bands.band(score);
    let verdict = match band {
        Band::Auto => "Deploy",
        Band::Review => "Deploy after review",
        Band::Hold => "Hold for a human",
        Band::Block => "Block",
    };
    let Some(top) = risks.first() else {
        return format!(
            "{verdict} (score {score}): {}; no specific risk detected.",
            base.description
        );
    };
    let mut text = format!(
        "{verdict} (score {score}): {}",
        top.detail.trim_end_matches('.')
    );
    let mut named = vec![top.category];
    let mut others = Vec::new();
    for risk in &risks[1..] {
        if others.len() == 2 {
            break;
        }
        if !named.contains(&risk.category) {
            named.push(risk.category);
            let short = risk
                .detail
                .split([':', '('])
                .next()
                .unwrap_or(&risk.detail)
                .trim()
                .trim_end_matches('.');
            others.push(format!("{short} ({})", risk.severity));
        }
    }
    text.push('.');
    if !others.is_empty() {
        text.push_str(&format!(" Also: {}", others.join("; ")));
    }
    let total = risks.len() + left_out;
    if total > 1 {
        text.push_str(&format!(
            "{}{total} risks in all",
            if others.is_empty() { " " } else { "; " }
        ));
        if left_out > 0 {
            text.push_str(&format!(", {left_out} not listed"));
        }
        text.push('.');
    } else if !others.is_empty() {
        text.push('.');
    }
    text
}
