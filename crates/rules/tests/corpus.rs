//! Runs every corpus case through the analyzer and reports all failures at once.

mod common;

use std::collections::BTreeSet;

use gate_core::Bands;

/// The corpus must stay broad: realistic changes across every ecosystem.
const MIN_CASES: usize = 60;

#[test]
fn corpus_cases_reach_their_expected_band_and_categories() {
    let bands = Bands::default();
    let cases = common::load_corpus();
    let mut failures = Vec::new();
    if cases.len() < MIN_CASES {
        failures.push(format!(
            "the corpus holds {} cases, want at least {MIN_CASES}",
            cases.len()
        ));
    }
    for (corpus_file, case) in &cases {
        let (_, verdict) = common::analyze(case, bands);
        let band = bands.band(verdict.risk_score).as_str().to_string();
        let categories: BTreeSet<String> = verdict
            .risks
            .iter()
            .map(|r| r.category.as_str().to_string())
            .collect();
        let mut problems = Vec::new();
        if band != case.band {
            problems.push(format!(
                "band {band} (score {}), want {}",
                verdict.risk_score, case.band
            ));
        }
        if let Some(want) = &case.categories {
            let want: BTreeSet<String> = want.iter().cloned().collect();
            if want != categories {
                problems.push(format!("categories {categories:?}, want exactly {want:?}"));
            }
        }
        for want in &case.include {
            if !categories.contains(want) {
                problems.push(format!("missing category {want}"));
            }
        }
        for unwanted in &case.exclude {
            if categories.contains(unwanted) {
                problems.push(format!("unexpected category {unwanted}"));
            }
        }
        let notes = verdict.rollback_notes.join("\n");
        for want in &case.rollback {
            if !notes.contains(want.as_str()) {
                problems.push(format!("rollback notes lack {want:?}: {notes:?}"));
            }
        }
        if !problems.is_empty() {
            let risks: Vec<String> = verdict
                .risks
                .iter()
                .map(|r| format!("      {} {}: {}", r.severity, r.category, r.detail))
                .collect();
            failures.push(format!(
                "{corpus_file}/{}: {}\n    summary: {}\n{}",
                case.name,
                problems.join("; "),
                verdict.summary,
                risks.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
