//! The rules analyzer behind the Analyzer trait, over a packed context (what a worker
//! holds), agrees with the streaming analysis `check` runs over the whole diff.

use gate_core::{Bands, Redactor};
use gate_git::{build_context, ContextOptions, Range};
use gate_models::{Analyzer, Rules};
use gate_rules::RulesAnalyzer;
use gate_testkit::TestRepo;

#[tokio::test]
async fn packed_context_verdict_matches_the_streamed_verdict_for_small_changes() {
    let repo = TestRepo::new();
    repo.write("README.md", "x\n");
    repo.commit("initial");
    repo.write(
        "db/migrations/V3__drop.sql",
        "ALTER TABLE users DROP COLUMN email;\n",
    );
    repo.write(
        "src/auth/session.py",
        "SESSION_TTL = 3600\nSAME_SITE = 'none'\n",
    );
    repo.write("docs/notes.md", "notes\n");
    repo.commit("mixed change");

    let mut streamed = RulesAnalyzer::new(Bands::default());
    let context = build_context(
        repo.path(),
        &Range::default(),
        &ContextOptions::default(),
        &Redactor::new(),
        &mut streamed,
    )
    .unwrap();
    let streamed = streamed.finish(&context);

    let analysis = Rules::new(Bands::default())
        .analyze_context(&context)
        .await
        .unwrap();
    assert_eq!(analysis.provider, "rules");
    assert_eq!(analysis.usage.cost_usd, Some(0.0));
    let packed = analysis.verdict;
    assert_eq!(packed.risk_score, streamed.risk_score);
    assert_eq!(packed.recommendation, streamed.recommendation);
    let categories = |v: &gate_core::Verdict| {
        v.risks
            .iter()
            .map(|r| (r.category, r.severity))
            .collect::<Vec<_>>()
    };
    assert_eq!(categories(&packed), categories(&streamed));
}
