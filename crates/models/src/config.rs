//! Settings of the model providers. Serde structs with unknown keys denied, so they
//! can sit in the binary's layered config (`[models.anthropic]`, `[models.openai]`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ModelError;

/// An API key. Its `Debug` and `Display` print a mask, and it serializes masked, so
/// a key can sit in settings that get printed (`deploy-gate config`) or logged.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for the one header that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(****)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl Serialize for ApiKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("****")
    }
}

impl<'de> Deserialize<'de> for ApiKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(ApiKey)
    }
}

/// How long Anthropic keeps a cached prompt prefix after its last use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CacheTtl {
    /// Five minutes (cache writes cost 1.25× input).
    #[default]
    #[serde(rename = "5m")]
    FiveMinutes,
    /// One hour (cache writes cost 2× input); worth it when merges are sparse.
    #[serde(rename = "1h")]
    OneHour,
}

impl CacheTtl {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheTtl::FiveMinutes => "5m",
            CacheTtl::OneHour => "1h",
        }
    }
}

/// Timeouts of the HTTP client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// TCP + TLS connect timeout, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Whole-request timeout (send to last byte), in milliseconds.
    pub request_timeout_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout_ms: 10_000,
            request_timeout_ms: 120_000,
        }
    }
}

impl HttpSettings {
    /// The request timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// How transient failures are retried: exponential backoff with jitter, bounded by
/// attempts and by an overall deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt, in milliseconds; doubles each time.
    pub initial_backoff_ms: u64,
    /// Cap of one backoff, in milliseconds.
    pub max_backoff_ms: u64,
    /// No attempt starts later than this after the first, in milliseconds.
    pub deadline_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_attempts: 5,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 30_000,
            deadline_ms: 300_000,
        }
    }
}

/// Client-side limits for one provider and model. Unset limits are learned from the
/// provider's rate-limit headers when `learn_from_headers` is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Requests per minute.
    pub requests_per_minute: Option<u32>,
    /// Input tokens per minute (estimated before sending).
    pub input_tokens_per_minute: Option<u32>,
    /// Output tokens per minute (counted as `max_tokens` before sending).
    pub output_tokens_per_minute: Option<u32>,
    /// Adopt the limits the provider announces in its headers.
    pub learn_from_headers: bool,
    /// In a worker, share these limits with every worker of the fleet through Redis
    /// (default on): the limit is the fleet's, not each process's. `check` never
    /// shares. Off: each worker keeps to the whole limit by itself.
    pub fleet: bool,
    /// While Redis is unreachable, the share of each limit this worker keeps to by
    /// itself (more than 0, at most 1). Unset: `1 / expected_workers`.
    pub fleet_share: Option<FleetShare>,
    /// How many workers share the limits, for the default `fleet_share` (default 1:
    /// while Redis is down, each worker may use the whole limit).
    pub expected_workers: std::num::NonZeroU32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            requests_per_minute: None,
            input_tokens_per_minute: None,
            output_tokens_per_minute: None,
            learn_from_headers: true,
            fleet: true,
            fleet_share: None,
            expected_workers: std::num::NonZeroU32::MIN,
        }
    }
}

impl RateLimitSettings {
    /// The share of each limit a worker keeps to while the fleet's budget in Redis
    /// cannot be reached.
    pub fn fallback_share(&self) -> f64 {
        self.fleet_share
            .map_or(1.0 / f64::from(self.expected_workers.get()), |share| {
                share.0
            })
    }
}

/// A fraction of a limit: more than 0, at most 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct FleetShare(f64);

impl FleetShare {
    /// The fraction.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for FleetShare {
    type Error = String;

    fn try_from(value: f64) -> Result<Self, Self::Error> {
        if value > 0.0 && value <= 1.0 {
            Ok(FleetShare(value))
        } else {
            Err(format!(
                "fleet_share must be more than 0 and at most 1 (a fraction of each limit), not {value}"
            ))
        }
    }
}

impl From<FleetShare> for f64 {
    fn from(share: FleetShare) -> f64 {
        share.0
    }
}

/// The Anthropic Messages provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnthropicSettings {
    /// Model id.
    pub model: String,
    /// Overrides `ANTHROPIC_BASE_URL` (default `https://api.anthropic.com`).
    pub base_url: Option<String>,
    /// Overrides the key from the environment. Prefer the environment.
    pub api_key: Option<ApiKey>,
    /// The environment variable holding the key.
    pub api_key_env: String,
    /// Output token limit of one answer (default 1,024: a verdict of 8 risks, the
    /// prompt's cap, takes about 1,000; a cut-off answer fails closed to hold).
    pub max_tokens: u32,
    /// Lifetime of the cached static prompt.
    pub cache_ttl: CacheTtl,
    /// Timeouts.
    pub http: HttpSettings,
    /// Retries.
    pub retry: RetrySettings,
    /// Rate limits.
    pub rate_limit: RateLimitSettings,
}

impl Default for AnthropicSettings {
    fn default() -> Self {
        AnthropicSettings {
            model: "claude-sonnet-4-6".to_string(),
            base_url: None,
            api_key: None,
            api_key_env: "ANTHROPIC_API_KEY".to_string(),
            max_tokens: 1_024,
            cache_ttl: CacheTtl::FiveMinutes,
            http: HttpSettings::default(),
            retry: RetrySettings::default(),
            rate_limit: RateLimitSettings::default(),
        }
    }
}

/// An OpenAI-compatible chat-completions provider (OpenAI, vLLM, Ollama, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiSettings {
    /// Model id.
    pub model: String,
    /// Overrides `OPENAI_BASE_URL` (default `https://api.openai.com/v1`). As in the
    /// official SDKs it includes the `/v1`; `/chat/completions` is appended.
    pub base_url: Option<String>,
    /// Overrides the key from the environment. Prefer the environment.
    pub api_key: Option<ApiKey>,
    /// The environment variable holding the key.
    pub api_key_env: String,
    /// Output token limit of one answer (default 1,024: a verdict of 8 risks, the
    /// prompt's cap, takes about 1,000; a cut-off answer fails closed to hold).
    pub max_tokens: u32,
    /// Send `max_tokens` instead of `max_completion_tokens` (older compatible servers).
    pub legacy_max_tokens_field: bool,
    /// Timeouts.
    pub http: HttpSettings,
    /// Retries.
    pub retry: RetrySettings,
    /// Rate limits.
    pub rate_limit: RateLimitSettings,
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        OpenAiSettings {
            model: "gpt-4.1-mini".to_string(),
            base_url: None,
            api_key: None,
            api_key_env: "OPENAI_API_KEY".to_string(),
            max_tokens: 1_024,
            legacy_max_tokens_field: false,
            http: HttpSettings::default(),
            retry: RetrySettings::default(),
            rate_limit: RateLimitSettings::default(),
        }
    }
}

/// What goes into the static prompt besides the built-in instructions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptSettings {
    /// The organisation's deploy policy, in words.
    pub org_policy: String,
    /// A folder of postmortems in Markdown (`*.md`), newest file name last.
    pub incidents_dir: Option<PathBuf>,
    /// Characters of incident notes kept in all.
    pub max_incident_chars: usize,
}

impl Default for PromptSettings {
    fn default() -> Self {
        PromptSettings {
            org_policy: String::new(),
            incidents_dir: None,
            max_incident_chars: 24_000,
        }
    }
}

/// A key and a base URL, resolved from settings and the environment.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub base_url: String,
    pub api_key: ApiKey,
    /// Where the key came from, named in a 401's message.
    pub key_source: String,
}

pub(crate) fn resolve_endpoint(
    provider: &'static str,
    base_url: Option<&str>,
    base_url_env: &str,
    default_base_url: &str,
    api_key: Option<&ApiKey>,
    api_key_env: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Endpoint, ModelError> {
    let base_url = base_url
        .map(str::to_string)
        .or_else(|| env(base_url_env).filter(|url| !url.trim().is_empty()))
        .unwrap_or_else(|| default_base_url.to_string());
    let base_url = base_url.trim().trim_end_matches('/').to_string();
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(ModelError::Config {
            provider,
            message: format!("base_url `{base_url}` must start with http:// or https://"),
        });
    }
    let (api_key, key_source) = match api_key {
        Some(key) => (
            key.clone(),
            format!("the configured api_key (or {api_key_env})"),
        ),
        None => match env(api_key_env).filter(|key| !key.trim().is_empty()) {
            Some(key) => (ApiKey::new(key.trim()), api_key_env.to_string()),
            None => {
                return Err(ModelError::MissingApiKey {
                    provider,
                    env_var: api_key_env.to_string(),
                })
            }
        },
    };
    Ok(Endpoint {
        base_url,
        api_key,
        key_source,
    })
}

/// Reads the process environment; the default `env` of the providers' constructors.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_never_print() {
        let key = ApiKey::new("sk-ant-secret");
        assert_eq!(format!("{key}"), "****");
        assert!(!format!("{key:?}").contains("secret"));
        let settings = AnthropicSettings {
            api_key: Some(key),
            ..Default::default()
        };
        assert!(!format!("{settings:?}").contains("secret"));
        assert!(!serde_json::to_string(&settings).unwrap().contains("secret"));
    }

    #[test]
    fn config_overrides_the_environment_and_the_environment_overrides_defaults() {
        let env = |name: &str| match name {
            "ANTHROPIC_BASE_URL" => Some("http://127.0.0.1:9/".to_string()),
            "ANTHROPIC_API_KEY" => Some("from-env".to_string()),
            _ => None,
        };
        let endpoint = resolve_endpoint(
            "anthropic",
            None,
            "ANTHROPIC_BASE_URL",
            "https://api.anthropic.com",
            None,
            "ANTHROPIC_API_KEY",
            &env,
        )
        .unwrap();
        assert_eq!(endpoint.base_url, "http://127.0.0.1:9");
        assert_eq!(endpoint.api_key.expose(), "from-env");
        let configured = ApiKey::new("from-config");
        let endpoint = resolve_endpoint(
            "anthropic",
            Some("https://proxy.example"),
            "ANTHROPIC_BASE_URL",
            "https://api.anthropic.com",
            Some(&configured),
            "ANTHROPIC_API_KEY",
            &env,
        )
        .unwrap();
        assert_eq!(endpoint.base_url, "https://proxy.example");
        assert_eq!(endpoint.api_key.expose(), "from-config");
    }

    #[test]
    fn a_missing_key_names_the_variable_to_set() {
        let err = resolve_endpoint(
            "openai",
            None,
            "OPENAI_BASE_URL",
            "https://api.openai.com/v1",
            None,
            "OPENAI_API_KEY",
            &|_| None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("OPENAI_API_KEY"), "{err}");
    }

    #[test]
    fn settings_deny_unknown_keys() {
        let err = toml::from_str::<AnthropicSettings>("modle = \"x\"").unwrap_err();
        assert!(err.to_string().contains("modle"), "{err}");
        let settings: AnthropicSettings =
            toml::from_str("cache_ttl = \"1h\"\n[rate_limit]\nrequests_per_minute = 50").unwrap();
        assert_eq!(settings.cache_ttl, CacheTtl::OneHour);
        assert_eq!(settings.rate_limit.requests_per_minute, Some(50));
    }

    #[test]
    fn the_fallback_share_is_configured_or_one_per_expected_worker() {
        let settings: RateLimitSettings = toml::from_str("expected_workers = 4").unwrap();
        assert!(settings.fleet);
        assert_eq!(settings.fallback_share(), 0.25);
        let settings: RateLimitSettings =
            toml::from_str("expected_workers = 4\nfleet_share = 0.5").unwrap();
        assert_eq!(settings.fallback_share(), 0.5);
        for (bad, says) in [
            ("fleet_share = 0.0", "more than 0 and at most 1"),
            ("fleet_share = 1.5", "more than 0 and at most 1"),
            ("expected_workers = 0", "nonzero"),
        ] {
            let err = toml::from_str::<RateLimitSettings>(bad)
                .unwrap_err()
                .to_string();
            let key = bad.split(' ').next().unwrap();
            assert!(err.contains(key) && err.contains(says), "{bad}: {err}");
        }
    }
}
