//! The OpenAI-compatible provider: `POST {base_url}/chat/completions` with a strict
//! JSON-schema `response_format`. Works against OpenAI, vLLM, Ollama and other
//! compatible servers through `base_url`.

use std::sync::Arc;

use gate_core::{DeployContext, Risk, Usage};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::anthropic::{accumulate, build_user, finish};
use crate::config::{process_env, resolve_endpoint, OpenAiSettings};
use crate::limiter::ProviderLimiter;
use crate::transport::{SplicedBody, Transport};
use crate::verdict::{validate, verdict_schema};
use crate::{Analysis, Analyzer, BoxFuture, ModelError, ProviderSetup};
use gate_core::{estimate_tokens, repair_message};

const PROVIDER: &str = "openai";

/// The `json_schema.name` of the verdict format.
const SCHEMA_NAME: &str = "deploy_verdict";

/// Asks an OpenAI-compatible model for a verdict.
pub struct OpenAiProvider {
    settings: OpenAiSettings,
    setup: ProviderSetup,
    transport: Transport,
    /// The system message, serialized once: the first of every call's messages.
    system_message: String,
    /// The request body but for `messages`, serialized once.
    static_body: SplicedBody,
    static_tokens: u64,
}

impl std::fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("model", &self.settings.model)
            .field("limiter", &self.transport.limiter)
            .finish()
    }
}

impl OpenAiProvider {
    /// A provider from settings, with the key and base URL from the environment
    /// (`OPENAI_API_KEY`, `OPENAI_BASE_URL`) unless the settings give them.
    pub fn new(
        settings: &OpenAiSettings,
        setup: &ProviderSetup,
    ) -> Result<OpenAiProvider, ModelError> {
        Self::with_env(settings, setup, &process_env)
    }

    /// As [`OpenAiProvider::new`], reading the environment through `env`.
    pub fn with_env(
        settings: &OpenAiSettings,
        setup: &ProviderSetup,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OpenAiProvider, ModelError> {
        let endpoint = resolve_endpoint(
            PROVIDER,
            settings.base_url.as_deref(),
            "OPENAI_BASE_URL",
            "https://api.openai.com/v1",
            settings.api_key.as_ref(),
            &settings.api_key_env,
            env,
        )?;
        let transport = Transport::new(
            PROVIDER,
            settings.model.clone(),
            format!("{}/chat/completions", endpoint.base_url),
            vec![(
                "authorization",
                format!("Bearer {}", endpoint.api_key.expose()),
            )],
            &settings.http,
            settings.retry.clone(),
            Arc::new(ProviderLimiter::new(&settings.rate_limit)),
            endpoint.key_source,
        )?;
        let response_format = json!({
            "type": "json_schema",
            "json_schema": { "name": SCHEMA_NAME, "strict": true, "schema": verdict_schema() }
        });
        let system = setup.system.joined();
        let static_tokens =
            estimate_tokens(&system) + estimate_tokens(&response_format.to_string());
        let max_tokens_field = if settings.legacy_max_tokens_field {
            "max_tokens"
        } else {
            "max_completion_tokens"
        };
        let mut fields = serde_json::Map::new();
        fields.insert("model".into(), json!(settings.model));
        fields.insert("messages".into(), Value::Null);
        fields.insert("response_format".into(), response_format);
        fields.insert(max_tokens_field.into(), json!(settings.max_tokens));
        let static_body = SplicedBody::new(PROVIDER, fields)?;
        let system_message = json!({"role": "system", "content": system}).to_string();
        Ok(OpenAiProvider {
            settings: settings.clone(),
            setup: setup.clone(),
            transport,
            system_message,
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
        // `messages` follow the system message, which is already serialized.
        let messages: Vec<String> = messages.iter().map(Value::to_string).collect();
        let est_input =
            self.static_tokens + messages.iter().map(|m| estimate_tokens(m)).sum::<u64>();
        let body = self.static_body.with_messages(
            std::iter::once(self.system_message.as_str())
                .chain(messages.iter().map(String::as_str)),
        );
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
        call_usage.cost_usd = self.setup.prices.cost(&self.settings.model, &call_usage, 0);
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
        let mut messages = vec![json!({"role": "user", "content": user})];
        let mut usage = None;
        let analyzer = format!("{PROVIDER}/{}", self.settings.model);
        let mut repaired = false;
        let verdict = loop {
            let response = self.call(&messages, &mut usage).await?;
            let content = self.content(&response)?;
            let checked = serde_json::from_str::<Value>(&content)
                .map_err(|err| format!("the answer is not a JSON object: {err}"))
                .and_then(|value| validate(&value, &self.setup.bands, &analyzer));
            match checked {
                Ok(verdict) => break verdict,
                Err(message) if !repaired => {
                    repaired = true;
                    messages.push(json!({"role": "assistant", "content": content}));
                    messages.push(json!({"role": "user", "content": repair_message(&message)}));
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

    /// The answer's text, or the typed error for every other way to stop.
    fn content(&self, response: &Value) -> Result<String, ModelError> {
        let choice = &response["choices"][0];
        if choice.is_null() {
            return Err(ModelError::MalformedResponse {
                provider: PROVIDER,
                message: "no choices in the response".to_string(),
            });
        }
        let message = &choice["message"];
        if let Some(refusal) = message["refusal"].as_str() {
            return Err(ModelError::Refused {
                provider: PROVIDER,
                reason: refusal.chars().take(300).collect(),
            });
        }
        let finish_reason = choice["finish_reason"].as_str().unwrap_or("(missing)");
        match finish_reason {
            "length" => Err(ModelError::Truncated {
                provider: PROVIDER,
                max_tokens: self.settings.max_tokens,
            }),
            "content_filter" => Err(ModelError::Refused {
                provider: PROVIDER,
                reason: "finish_reason content_filter".to_string(),
            }),
            "stop" => message["content"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| ModelError::NoVerdict {
                    provider: PROVIDER,
                    stop_reason: "stop without content".to_string(),
                }),
            other => Err(ModelError::NoVerdict {
                provider: PROVIDER,
                stop_reason: other.to_string(),
            }),
        }
    }
}

impl Analyzer for OpenAiProvider {
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

/// OpenAI counts cached tokens inside `prompt_tokens`; split them out so that
/// `input_tokens` means uncached input for both providers.
fn parse_usage(response: &Value) -> Usage {
    let usage = &response["usage"];
    let prompt = usage["prompt_tokens"].as_u64().unwrap_or(0);
    let cached = usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0)
        .min(prompt);
    Usage {
        input_tokens: prompt - cached,
        output_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: cached,
        cost_usd: None,
    }
}
