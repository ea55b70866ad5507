//! Model output: what a provider answers, parsed and validated the way the worker
//! reads it. Three doors, chosen by the input's first byte:
//!
//! - the verdict JSON alone through `validate_verdict` (schema, band consistency,
//!   severity floors) — most inputs, because it is fast;
//! - a whole Anthropic Messages response body, served over loopback HTTP to a real
//!   `AnthropicProvider` (tool-use extraction, usage, validation, the repair turn);
//! - a whole OpenAI chat-completions response body, likewise to `OpenAiProvider`.
//!
//! Properties beyond "no panic": an accepted verdict has a score within 0–100, a
//! recommendation that matches its band, a non-empty summary, and a score at or
//! above the floor of its worst severity; a provider's answer is either a verdict
//! with those properties or an error, never a panic or a hang.

#![no_main]

use std::sync::{Arc, OnceLock};

use deploy_gate_fuzz::{runtime, sample_change, Stub};
use gate_core::{Bands, Risk, Verdict};
use gate_models::{
    validate_verdict, Analyzer, AnthropicProvider, AnthropicSettings, ApiKey, OpenAiProvider,
    OpenAiSettings, PriceTable, PromptSettings, ProviderSetup, RetrySettings,
};
use libfuzzer_sys::fuzz_target;

fn check(verdict: &Verdict, bands: &Bands) {
    assert!(verdict.risk_score <= 100);
    assert_eq!(
        verdict.recommendation,
        bands.recommendation(verdict.risk_score)
    );
    assert!(!verdict.summary.trim().is_empty());
    if let Some(worst) = verdict.risks.iter().map(|risk| risk.severity).max() {
        assert!(verdict.risk_score >= worst.floor_score());
    }
}

struct Providers {
    stub: Stub,
    anthropic: Arc<dyn Analyzer>,
    openai: Arc<dyn Analyzer>,
}

fn providers() -> &'static Providers {
    static PROVIDERS: OnceLock<Providers> = OnceLock::new();
    PROVIDERS.get_or_init(|| {
        let stub = Stub::start();
        let setup = ProviderSetup::new(
            Bands::default(),
            &PromptSettings::default(),
            PriceTable::default(),
        )
        .expect("a provider setup");
        // One attempt, no waiting: the answer is the input, retrying changes nothing.
        let retry = RetrySettings {
            max_attempts: 1,
            initial_backoff_ms: 1,
            max_backoff_ms: 1,
            deadline_ms: 5_000,
        };
        let no_env = |_: &str| None;
        let anthropic = AnthropicProvider::with_env(
            &AnthropicSettings {
                base_url: Some(stub.url()),
                api_key: Some(ApiKey::new("sk-ant-fuzz-not-a-key")),
                retry: retry.clone(),
                ..AnthropicSettings::default()
            },
            &setup,
            &no_env,
        )
        .expect("an Anthropic provider");
        let openai = OpenAiProvider::with_env(
            &OpenAiSettings {
                base_url: Some(stub.url()),
                api_key: Some(ApiKey::new("sk-fuzz-not-a-key")),
                retry,
                ..OpenAiSettings::default()
            },
            &setup,
            &no_env,
        )
        .expect("an OpenAI provider");
        Providers {
            stub,
            anthropic: Arc::new(anthropic),
            openai: Arc::new(openai),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&door, body)) = data.split_first() else {
        return;
    };
    let bands = Bands::default();
    match door % 8 {
        0 | 1 => {
            let providers = providers();
            providers.stub.answer(200, body);
            let analyzer = if door % 8 == 0 {
                &providers.anthropic
            } else {
                &providers.openai
            };
            let (context, rules) = sample_change();
            let hints: &[Risk] = &rules.risks;
            if let Ok(analysis) = runtime().block_on(analyzer.analyze(context, hints)) {
                check(&analysis.verdict, &bands);
            }
        }
        _ => {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
                return;
            };
            if let Ok(verdict) = validate_verdict(&value, &bands, "fuzz/model") {
                check(&verdict, &bands);
            }
        }
    }
});
