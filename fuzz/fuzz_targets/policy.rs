//! Policy files (`config/policy.toml`): parse, then use what parsed the way the
//! binary and the worker do (`policy explain`, the plan before the models, the
//! decision after them, notify channels).
//!
//! Properties beyond "no panic": an error names a line within the file; equal text
//! gives an equal version of 16 hex digits; whatever the policy says, a decision
//! never falls below the rules floor (a critical rules finding blocks, a high one
//! is never deployed).

#![no_main]

use gate_core::{Bands, ConsensusPolicy, Policy, Recommendation, Severity};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let policy = match Policy::parse(text, "fuzz/policy.toml") {
        Ok(policy) => policy,
        Err(error) => {
            let n_lines = text.lines().count().max(1);
            assert!(
                error.line() <= n_lines + 1,
                "error line {} past the end ({n_lines} lines): {error}",
                error.line()
            );
            let _ = error.to_string();
            return;
        }
    };
    assert_eq!(policy.version().len(), 16);
    assert!(policy.version().bytes().all(|b| b.is_ascii_hexdigit()));
    let again = Policy::parse(text, "fuzz/policy.toml").expect("parses twice");
    assert_eq!(again.version(), policy.version());
    for (repo, path) in [
        ("acme/shop", "db/migrations/002_drop_legacy.sql"),
        ("acme/payments", "src/auth/session.rs"),
        ("", ""),
    ] {
        assert!(!policy.explain(repo, path).is_empty());
    }
    for recommendation in [
        Recommendation::Deploy,
        Recommendation::Hold,
        Recommendation::Block,
    ] {
        let _ = policy.notify_channels(recommendation);
    }

    let (context, rules) = deploy_gate_fuzz::sample_change();
    let plan = policy.plan(
        context,
        rules,
        Bands::default(),
        &ConsensusPolicy::default(),
        1,
    );
    let decision = plan.decide(
        "fuzz-event",
        context,
        "2026-01-01T00:00:00Z",
        rules.clone(),
        Vec::new(),
    );
    let worst = rules.risks.iter().map(|risk| risk.severity).max();
    match worst {
        Some(Severity::Critical) => assert_eq!(decision.recommendation, Recommendation::Block),
        Some(Severity::High) => assert_ne!(decision.recommendation, Recommendation::Deploy),
        _ => {}
    }
    assert!(decision.risk_score <= 100);
});
