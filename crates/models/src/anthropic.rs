//! The Anthropic Messages provider: `POST {base_url}/v1/messages`, the static prompt
//! as cached system blocks, the verdict as a forced tool call.

use std::sync::Arc;

use gate_core::{DeployContext, Risk, Usage};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::config::{process_env, resolve_endpoint, AnthropicSettings, CacheTtl};
use crate::limiter::ProviderLimiter;
use crate::transport::{random_boundary, SplicedBody, Transport};
use crate::verdict::{validate, verdict_schema};
use crate::{Analysis, Analyzer, BoxFuture, ModelError, ProviderSetup};
use gate_core::{estimate_tokens, repair_message, user_prompt, VERDICT_TOOL_NAME};

const PROVIDER: &str = "anthropic";

/// The API version header every request carries.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Asks a Claude model for a verdict. Cheap to share: clone the `Arc` it sits in.
pub struct AnthropicProvider {
    settings: AnthropicSettings,
    setup: ProviderSetup,
    transport: Transport,
    /// The request body but for `messages`, serialized once: identical bytes on
    /// every call, so the provider's prompt cache hits.
    static_body: SplicedBody,
    static_tokens: u64,
}

impl std::fmt::Debug for AnthropicProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicProvider")
            .field("model", &self.settings.model)
            .field("limiter", &self.transport.limiter)
            .finish()
    }
}

impl AnthropicProvider {
    /// A provider from settings, with the key and base URL from the environment
    /// (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`) unless the settings give them.
    pub fn new(
        settings: &AnthropicSettings,
        setup: &ProviderSetup,
    ) -> Result<AnthropicProvider, ModelError> {
        Self::with_env(settings, setup, &process_env)
    }

    /// As [`AnthropicProvider::new`], reading the environment through `env`.
    pub fn with_env(
        settings: &AnthropicSettings,
        setup: &ProviderSetup,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AnthropicProvider, ModelError> {
        let endpoint = resolve_endpoint(
            PROVIDER,
            settings.base_url.as_deref(),
            "ANTHROPIC_BASE_URL",
            "https://api.anthropic.com",
            settings.api_key.as_ref(),
            &settings.api_key_env,
            env,
        )?;
        let transport = Transport::new(
            PROVIDER,
            settings.model.clone(),
            format!("{}/v1/messages", endpoint.base_url),
            vec![
                ("x-api-key", endpoint.api_key.expose().to_string()),
                ("anthropic-version", ANTHROPIC_VERSION.to_string()),
            ],
            &settings.http,
            settings.retry.clone(),
            Arc::new(ProviderLimiter::new(&settings.rate_limit)),
            endpoint.key_source,
        )?;
        let mut cache_control = json!({"type": "ephemeral"});
        if settings.cache_ttl == CacheTtl::OneHour {
            cache_control["ttl"] = json!("1h");
        }
        let n_blocks = setup.system.blocks.len();
        let system: Vec<Value> = setup
            .system
            .blocks
            .iter()
            .enumerate()
            .map(|(idx, text)| {
                let mut block = json!({"type": "text", "text": text});
                // One breakpoint, on the last system block: the cached prefix is
                // tools (the verdict tool) then system, so both are cached by it.
                if idx + 1 == n_blocks {
                    block["cache_control"] = cache_control.clone();
                }
                block
            })
            .collect();
        let tool = json!({
            "name": VERDICT_TOOL_NAME,
            "description": "Record the deploy verdict for the change: risk score, recommendation, risks with evidence, rollback notes.",
            "input_schema": verdict_schema(),
        });
        let static_tokens = setup.system.est_tokens() + estimate_tokens(&tool.to_string());
        let mut static_body = serde_json::Map::new();
        static_body.insert("model".into(), json!(settings.model));
        static_body.insert("max_tokens".into(), json!(settings.max_tokens));
        static_body.insert("tools".into(), json!([tool]));
        static_body.insert(
            "tool_choice".into(),
            json!({"type": "tool", "name": VERDICT_TOOL_NAME}),
        );
        static_body.insert("system".into(), Value::Array(system));
        let static_body = SplicedBody::new(PROVIDER, static_body)?;
        Ok(AnthropicProvider {
            settings: settings.clone(),
            setup: setup.clone(),
            transport,
            static_body,
            static_tokens,
        })
    }

    /// The limiter of this provider and model, for inspection.
    pub fn limiter(&self) -> &ProviderLimiter {
        &self.transport.limiter
    }

    async fn call(
        &self,
        messages: &[Value],
        usage: &mut Option<Usage>,
    ) -> Result<Value, ModelError> {
        let messages: Vec<String> = messages.iter().map(Value::to_string).collect();
        let est_input =
            self.static_tokens + messages.iter().map(|m| estimate_tokens(m)).sum::<u64>();
        let body = self
            .static_body
            .with_messages(messages.iter().map(String::as_str));
        let (response, reservation) = self
            .transport
            .post(&body, est_input, u64::from(self.settings.max_tokens))
            .await?;
        let mut call_usage = parse_usage(&response);
        let input_tokens = call_usage.input_tokens
            + call_usage.cache_creation_input_tokens
            + call_usage.cache_read_input_tokens;
        self.transport
            .limiter
            .settle(reservation, input_tokens, call_usage.output_tokens)
            .await;
        let write_1h = response["usage"]["cache_creation"]["ephemeral_1h_input_tokens"]
            .as_u64()
            .unwrap_or(match self.settings.cache_ttl {
                CacheTtl::OneHour => call_usage.cache_creation_input_tokens,
                CacheTtl::FiveMinutes => 0,
            });
        call_usage.cost_usd = self
            .setup
            .prices
            .cost(&self.settings.model, &call_usage, write_1h);
        accumulate(usage, &call_usage);
        Ok(response)
    }

    async fn run(
        &self,
        context: &DeployContext,
        rules_hints: &[Risk],
    ) -> Result<Analysis, ModelError> {
        let started = Instant::now();
        let user = build_user(context, rules_hints, &self.setup)?;
        let mut messages =
            vec![json!({"role": "user", "content": [{"type": "text", "text": user}]})];
        let mut usage = None;
        let analyzer = format!("{PROVIDER}/{}", self.settings.model);
        let mut repaired = false;
        let verdict = loop {
            let response = self.call(&messages, &mut usage).await?;
            let (tool_id, input) = self.tool_input(&response)?;
            match validate(&input, &self.setup.bands, &analyzer) {
                Ok(verdict) => break verdict,
                Err(message) if !repaired => {
                    repaired = true;
                    messages
                        .push(json!({"role": "assistant", "content": response["content"].clone()}));
                    messages.push(json!({"role": "user", "content": [{
                        "type": "tool_result",
                        "tool_use_id": tool_id,
                        "is_error": true,
                        "content": repair_message(&message),
                    }]}));
                }
                Err(message) => {
                    return Err(ModelError::InvalidVerdict {
                        provider: PROVIDER,
                        message,
                    })
                }
            }
        };
        Ok(finish(
            verdict,
            usage.unwrap_or_default(),
            started,
            PROVIDER,
            &self.settings.model,
            repaired,
        ))
    }

    /// The verdict tool's input, or the typed error for every other way to stop.
    fn tool_input(&self, response: &Value) -> Result<(String, Value), ModelError> {
        let stop_reason = response["stop_reason"].as_str().unwrap_or("(missing)");
        let tool_use = response["content"].as_array().and_then(|blocks| {
            blocks
                .iter()
                .find(|block| block["type"] == "tool_use" && block["name"] == VERDICT_TOOL_NAME)
        });
        match stop_reason {
            "max_tokens" => Err(ModelError::Truncated {
                provider: PROVIDER,
                max_tokens: self.settings.max_tokens,
            }),
            "refusal" => Err(ModelError::Refused {
                provider: PROVIDER,
                reason: "stop_reason refusal".to_string(),
            }),
            "tool_use" | "end_turn" | "stop_sequence" if tool_use.is_some() => {
                let block = tool_use.ok_or_else(|| ModelError::NoVerdict {
                    provider: PROVIDER,
                    stop_reason: stop_reason.to_string(),
                })?;
                let id = block["id"].as_str().unwrap_or_default().to_string();
                Ok((id, block["input"].clone()))
            }
            "tool_use" => Err(ModelError::MalformedResponse {
                provider: PROVIDER,
                message: "stop_reason tool_use without a tool_use block".to_string(),
            }),
            other => Err(ModelError::NoVerdict {
                provider: PROVIDER,
                stop_reason: other.to_string(),
            }),
        }
    }
}

impl Analyzer for AnthropicProvider {
    fn id(&self) -> String {
        format!("{PROVIDER}/{}", self.settings.model)
    }

    fn analyze<'a>(
        &'a self,
        context: &'a DeployContext,
        rules_hints: &'a [Risk],
    ) -> BoxFuture<'a, Result<Analysis, ModelError>> {
        Box::pin(self.run(context, rules_hints))
    }

    fn share_limits(&self, fleet: Arc<dyn crate::FleetLimiter>) {
        self.transport
            .limiter
            .share_with_fleet(fleet, PROVIDER, &self.settings.model);
    }
}

fn parse_usage(response: &Value) -> Usage {
    let usage = &response["usage"];
    let n = |key: &str| usage[key].as_u64().unwrap_or(0);
    Usage {
        input_tokens: n("input_tokens"),
        output_tokens: n("output_tokens"),
        cache_creation_input_tokens: n("cache_creation_input_tokens"),
        cache_read_input_tokens: n("cache_read_input_tokens"),
        cost_usd: None,
    }
}

/// The user part with a fresh boundary, drawing again in the (astronomically
/// unlikely) case the change contains it.
pub(crate) fn build_user(
    context: &DeployContext,
    rules_hints: &[Risk],
    setup: &ProviderSetup,
) -> Result<String, ModelError> {
    for _ in 0..4 {
        if let Ok(text) = user_prompt(context, rules_hints, &random_boundary(), &setup.redactor) {
            return Ok(text);
        }
    }
    Err(ModelError::Config {
        provider: "models",
        message: "could not draw a fence boundary absent from the change".to_string(),
    })
}

/// Adds one call's usage to an analysis's total (the first call sets it, so a known
/// cost is not lost to the `None` of an empty total).
pub(crate) fn accumulate(total: &mut Option<Usage>, call: &Usage) {
    match total {
        Some(total) => total.add(call),
        None => *total = Some(call.clone()),
    }
}

pub(crate) fn finish(
    mut verdict: gate_core::Verdict,
    usage: Usage,
    started: Instant,
    provider: &str,
    model: &str,
    repaired: bool,
) -> Analysis {
    let latency = started.elapsed();
    verdict.latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    verdict.usage = usage.clone();
    Analysis {
        verdict,
        usage,
        latency,
        provider: provider.to_string(),
        model: model.to_string(),
        repaired,
    }
}
