//! The rules analyzer behind the [`Analyzer`] trait, for callers that only hold a
//! packed context (the fleet's workers), and running every analyzer of a decision
//! in parallel.

use std::time::Instant;

use gate_core::{Bands, DeployContext, ModelOutcome, Risk, Usage, Verdict};
use gate_rules::RulesAnalyzer;

use crate::{Analysis, Analyzer, BoxFuture, ModelError};

/// The deterministic rules analyzer over a context's packed diff, file list,
/// dependency changes and secret findings. Free and offline; it never fails.
#[derive(Debug, Clone)]
pub struct Rules {
    bands: Bands,
}

impl Rules {
    /// A rules analyzer scoring against `bands`.
    pub fn new(bands: Bands) -> Self {
        Rules { bands }
    }

    /// The verdict, synchronously (it does no I/O).
    pub fn verdict(&self, context: &DeployContext) -> Verdict {
        let started = Instant::now();
        let mut analyzer = RulesAnalyzer::new(self.bands);
        gate_core::walk_packed_diff(context, &mut analyzer);
        let mut verdict = analyzer.finish(context);
        verdict.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        verdict
    }
}

impl Analyzer for Rules {
    fn id(&self) -> String {
        "rules".to_string()
    }

    fn analyze<'a>(
        &'a self,
        context: &'a DeployContext,
        _rules_hints: &'a [Risk],
    ) -> BoxFuture<'a, Result<Analysis, ModelError>> {
        Box::pin(async move {
            let started = Instant::now();
            let verdict = self.verdict(context);
            Ok(Analysis {
                usage: Usage {
                    cost_usd: Some(0.0),
                    ..verdict.usage.clone()
                },
                verdict,
                latency: started.elapsed(),
                provider: "rules".to_string(),
                model: gate_rules::RULES_VERSION.to_string(),
                repaired: false,
            })
        })
    }
}

/// Asks every analyzer in parallel with the rules findings as hints, so a decision
/// takes about as long as its slowest model, not the sum. A failure becomes an
/// outcome with its reason, for the consensus to count as missing.
pub async fn ask_all(
    analyzers: &[Box<dyn Analyzer>],
    context: &DeployContext,
    rules: &Verdict,
) -> Vec<ModelOutcome> {
    futures_util::future::join_all(analyzers.iter().map(|analyzer| async move {
        let started = Instant::now();
        let span = model_span(analyzer.as_ref());
        let result =
            tracing::Instrument::instrument(analyzer.analyze(context, &rules.risks), span.clone())
                .await;
        record_span(&span, &result);
        record_call(analyzer.as_ref(), &result, started.elapsed());
        ModelOutcome {
            analyzer: analyzer.id(),
            result: result
                .map(|analysis| analysis.verdict)
                .map_err(|err| err.to_string()),
        }
    }))
    .await
}

/// The span of one model call, named and attributed as OpenTelemetry's GenAI
/// semantic conventions say (`chat <model>`, a client span).
fn model_span(analyzer: &dyn Analyzer) -> tracing::Span {
    let id = analyzer.id();
    let (provider, model) = id.split_once('/').unwrap_or((id.as_str(), ""));
    tracing::info_span!(
        "model call",
        otel.name = %format_args!("chat {model}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        gen_ai.operation.name = "chat",
        gen_ai.system = provider,
        gen_ai.provider.name = provider,
        gen_ai.request.model = model,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        gen_ai.usage.cache_read_input_tokens = tracing::field::Empty,
        gen_ai.usage.cache_creation_input_tokens = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// Usage on success; the error type on failure.
fn record_span(span: &tracing::Span, result: &Result<Analysis, ModelError>) {
    match result {
        Ok(analysis) => {
            let usage = &analysis.usage;
            span.record("gen_ai.response.model", analysis.model.as_str());
            span.record("gen_ai.usage.input_tokens", usage.input_tokens);
            span.record("gen_ai.usage.output_tokens", usage.output_tokens);
            span.record(
                "gen_ai.usage.cache_read_input_tokens",
                usage.cache_read_input_tokens,
            );
            span.record(
                "gen_ai.usage.cache_creation_input_tokens",
                usage.cache_creation_input_tokens,
            );
        }
        Err(error) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", error.root().kind());
        }
    }
}

/// Exports one analysis as a `gen_ai` model call: provider, model, outcome,
/// duration, tokens by type and cost.
fn record_call(
    analyzer: &dyn Analyzer,
    result: &Result<Analysis, ModelError>,
    elapsed: std::time::Duration,
) {
    use gate_telemetry::events::{ModelCallFinished, Tokens};
    match result {
        Ok(analysis) => ModelCallFinished {
            provider: &analysis.provider,
            model: &analysis.model,
            error_type: None,
            duration: analysis.latency,
            tokens: Tokens {
                input: analysis.usage.input_tokens,
                output: analysis.usage.output_tokens,
                cache_read: analysis.usage.cache_read_input_tokens,
                cache_write: analysis.usage.cache_creation_input_tokens,
            },
            cost_usd: analysis.usage.cost_usd,
        }
        .emit(),
        Err(error) => {
            let id = analyzer.id();
            let (provider, model) = id.split_once('/').unwrap_or((id.as_str(), ""));
            ModelCallFinished {
                provider,
                model,
                error_type: Some(error.root().kind()),
                duration: elapsed,
                tokens: Tokens::default(),
                cost_usd: None,
            }
            .emit();
        }
    }
}
