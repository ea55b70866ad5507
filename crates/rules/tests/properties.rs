//! Properties every verdict must have, checked over the whole corpus and a few
//! hand-built inputs.

mod common;

use gate_core::{
    Band, Bands, ChangedFile, DiffVisitor, FileStatus, LineKind, Recommendation, Severity,
};
use gate_rules::RulesAnalyzer;

#[test]
fn every_risk_carries_evidence() {
    let mut missing = Vec::new();
    for (_, case) in common::load_corpus() {
        let (_, verdict) = common::analyze(&case, Bands::default());
        for risk in &verdict.risks {
            if risk.evidence.is_empty() || risk.evidence.iter().any(|e| e.file.is_empty()) {
                missing.push(format!("{}: {}", case.name, risk.detail));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "risks without evidence:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_same_input_gives_the_same_verdict() {
    for (_, case) in common::load_corpus() {
        let (_, first) = common::analyze(&case, Bands::default());
        let (_, second) = common::analyze(&case, Bands::default());
        assert_eq!(first, second, "{}", case.name);
    }
}

#[test]
fn score_and_recommendation_agree_with_the_bands() {
    let custom = Bands {
        review_from: 20,
        hold_from: 60,
        block_from: 90,
    };
    for bands in [Bands::default(), custom] {
        for (_, case) in common::load_corpus() {
            let (_, verdict) = common::analyze(&case, bands);
            assert!(verdict.risk_score <= 100, "{}", case.name);
            assert_eq!(
                verdict.recommendation,
                bands.recommendation(verdict.risk_score),
                "{}",
                case.name
            );
            assert_eq!(verdict.analyzer, "rules");
            // The most severe risk decides the band: a critical risk always blocks, a
            // high one always holds at least, whatever the thresholds.
            let worst = verdict.risks.iter().map(|r| r.severity).max();
            let band = bands.band(verdict.risk_score);
            match worst {
                Some(Severity::Critical) => assert_eq!(band, Band::Block, "{}", case.name),
                Some(Severity::High) => assert_eq!(band, Band::Hold, "{}", case.name),
                Some(Severity::Medium) => assert_eq!(band, Band::Review, "{}", case.name),
                _ => assert!(band <= Band::Review, "{}", case.name),
            }
            // Risks are sorted most severe first.
            let severities: Vec<Severity> = verdict.risks.iter().map(|r| r.severity).collect();
            let mut sorted = severities.clone();
            sorted.sort_by(|a, b| b.cmp(a));
            assert_eq!(severities, sorted, "{}", case.name);
        }
    }
}

#[test]
fn docs_only_and_tests_only_changes_deploy_automatically() {
    let mut checked = 0;
    for (_, case) in common::load_corpus() {
        let (context, verdict) = common::analyze(&case, Bands::default());
        let inert = context.files.iter().all(|f| {
            matches!(
                f.class,
                gate_core::FileClass::Docs | gate_core::FileClass::Test
            )
        });
        if inert && context.secrets.is_empty() {
            checked += 1;
            assert!(
                verdict.risk_score <= 25,
                "{}: {}",
                case.name,
                verdict.risk_score
            );
            assert_eq!(
                verdict.recommendation,
                Recommendation::Deploy,
                "{}",
                case.name
            );
        }
    }
    assert!(
        checked >= 4,
        "the corpus should hold several docs/tests-only cases, found {checked}"
    );
}

#[test]
fn a_huge_docs_change_stays_automatic() {
    let files: Vec<ChangedFile> = (0..3_000)
        .map(|i| ChangedFile {
            path: format!("docs/reference/page_{i}.md"),
            old_path: None,
            status: FileStatus::Modified,
            additions: 40,
            deletions: 10,
            binary: false,
            class: gate_core::classify_path("docs/reference/page.md"),
        })
        .collect();
    let mut analyzer = RulesAnalyzer::new(Bands::default());
    for file in &files {
        analyzer.file(file);
        for n in 0..40 {
            analyzer.line(
                file,
                LineKind::Added,
                n + 1,
                "Run `DROP TABLE users;` only on a scratch database.",
            );
        }
    }
    let mut context = common::build(&common::Case {
        name: "docs".into(),
        about: String::new(),
        band: "auto".into(),
        categories: None,
        include: Vec::new(),
        exclude: Vec::new(),
        rollback: Vec::new(),
        files: Vec::new(),
        dep_changes: Vec::new(),
        secrets: Vec::new(),
    })
    .0;
    context.files = files;
    let verdict = analyzer.finish(&context);
    assert!(verdict.risks.is_empty(), "{:?}", verdict.risks);
    assert!(verdict.risk_score <= 25);
}

#[test]
fn thousands_of_findings_are_capped_and_counted_in_the_summary() {
    let mut analyzer = RulesAnalyzer::new(Bands::default());
    let mut files = Vec::new();
    for i in 0..2_000 {
        let path = format!("services/svc{i}/client.py");
        let file = ChangedFile {
            path: path.clone(),
            old_path: None,
            status: FileStatus::Modified,
            additions: 1,
            deletions: 0,
            binary: false,
            class: gate_core::classify_path(&path),
        };
        analyzer.file(&file);
        analyzer.line(
            &file,
            LineKind::Added,
            10,
            "    session.get(url, verify=False)",
        );
        files.push(file);
    }
    let mut context = common::build(&common::Case {
        name: "many".into(),
        about: String::new(),
        band: "block".into(),
        categories: None,
        include: Vec::new(),
        exclude: Vec::new(),
        rollback: Vec::new(),
        files: Vec::new(),
        dep_changes: Vec::new(),
        secrets: Vec::new(),
    })
    .0;
    context.files = files;
    let verdict = analyzer.finish(&context);
    assert!(verdict.risks.len() <= 25, "{}", verdict.risks.len());
    assert!(
        verdict.summary.contains("not listed"),
        "{}",
        verdict.summary
    );
    assert_eq!(verdict.recommendation, Recommendation::Block);
}
