//! One JSON POST to a provider, with rate limiting, timeouts, error classification
//! and retries: the part both wire formats share.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use crate::config::{HttpSettings, RetrySettings};
use crate::limiter::{parse_rate_headers, ProviderLimiter, Reservation};
use crate::ModelError;

pub(crate) struct Transport {
    pub provider: &'static str,
    pub model: String,
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    request_timeout: Duration,
    retry: RetrySettings,
    pub limiter: Arc<ProviderLimiter>,
    /// Where the key came from, named in a 401's message.
    key_source: String,
}

impl Transport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        provider: &'static str,
        model: String,
        url: String,
        headers: Vec<(&'static str, String)>,
        http: &HttpSettings,
        retry: RetrySettings,
        limiter: Arc<ProviderLimiter>,
        key_source: String,
    ) -> Result<Transport, ModelError> {
        let config_error = |message: String| ModelError::Config { provider, message };
        let mut header_map = HeaderMap::new();
        header_map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in headers {
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                config_error(format!(
                    "header {name} has characters HTTP does not allow (check the API key)"
                ))
            })?;
            if name == "x-api-key" || name == "authorization" {
                value.set_sensitive(true);
            }
            header_map.insert(HeaderName::from_static(name), value);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(http.connect_timeout_ms))
            .user_agent(concat!("deploy-gate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| config_error(format!("building the HTTP client: {err}")))?;
        Ok(Transport {
            provider,
            model,
            client,
            url,
            headers: header_map,
            request_timeout: http.request_timeout(),
            retry,
            limiter,
            key_source,
        })
    }

    /// Posts `body` until it succeeds, a non-retryable error comes back, or retries
    /// run out. `est_input` and `est_output` weigh the request for the token limits;
    /// the successful attempt's reservation comes back with the answer, for the
    /// caller to settle with the usage it reports.
    pub async fn post(
        &self,
        body: &str,
        est_input: u64,
        est_output: u64,
    ) -> Result<(Value, Reservation), ModelError> {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(self.retry.deadline_ms);
        let max_attempts = self.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let waiting = Instant::now();
            let reservation = self.limiter.acquire(est_input, est_output).await;
            gate_telemetry::events::RateLimitWaited {
                provider: self.provider,
                waited: waiting.elapsed(),
            }
            .emit();
            if attempt > 1 {
                gate_telemetry::events::ModelRetried {
                    provider: self.provider,
                }
                .emit();
            }
            let error = match self.send_once(body).await {
                Ok(value) => return Ok((value, reservation)),
                Err(error) => error,
            };
            if !error.is_retryable() {
                return Err(error);
            }
            let wait = match &error {
                ModelError::RateLimited {
                    retry_after: Some(after),
                    ..
                } => *after,
                _ => backoff(attempt, &self.retry),
            };
            let exhausted = ModelError::RetriesExhausted {
                provider: self.provider,
                attempts: attempt,
                elapsed: started.elapsed(),
                last: Box::new(error.clone()),
            };
            if attempt >= max_attempts || Instant::now() + wait > deadline {
                return Err(exhausted);
            }
            match error {
                // The provider said how long: the whole fleet waits that long.
                ModelError::RateLimited {
                    retry_after: Some(_),
                    ..
                } => self.limiter.pause_fleet(wait).await,
                ModelError::RateLimited { .. } => self.limiter.pause_all(wait),
                _ => {}
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(&self, body: &str) -> Result<Value, ModelError> {
        let provider = self.provider;
        let exchange = async {
            let response = self
                .client
                .post(&self.url)
                .headers(self.headers.clone())
                .body(body.to_owned())
                .send()
                .await?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, bytes))
        };
        let (status, headers, bytes) =
            match tokio::time::timeout(self.request_timeout, exchange).await {
                Err(_) => {
                    return Err(ModelError::Timeout {
                        provider,
                        after: self.request_timeout,
                    })
                }
                Ok(Err(err)) if err.is_timeout() => {
                    return Err(ModelError::Timeout {
                        provider,
                        after: self.request_timeout,
                    })
                }
                Ok(Err(err)) => {
                    return Err(ModelError::Connection {
                        provider,
                        message: error_chain(&err),
                    })
                }
                Ok(Ok(exchange)) => exchange,
            };
        let rate = parse_rate_headers(&headers);
        self.limiter.observe(&rate);
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|err| ModelError::MalformedResponse {
                provider,
                message: format!("response body is not JSON: {err}"),
            });
        }
        Err(self.classify(status, rate.retry_after, &bytes))
    }

    fn classify(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> ModelError {
        let provider = self.provider;
        let (kind, message) = error_body(body);
        let model = self.model.clone();
        if status == StatusCode::TOO_MANY_REQUESTS {
            gate_telemetry::events::ModelRateLimited { provider }.emit();
        }
        match status.as_u16() {
            400 if kind.contains("context_length") => {
                ModelError::RequestTooLarge { provider, message }
            }
            400 => ModelError::InvalidRequest { provider, message },
            401 => ModelError::Unauthorized {
                provider,
                env_var: self.key_source.clone(),
                message,
            },
            403 => ModelError::PermissionDenied {
                provider,
                model,
                message,
            },
            404 => ModelError::NotFound {
                provider,
                model,
                message,
            },
            413 => ModelError::RequestTooLarge { provider, message },
            429 if kind.contains("insufficient_quota") => {
                ModelError::InsufficientQuota { provider, message }
            }
            429 => ModelError::RateLimited {
                provider,
                retry_after,
            },
            503 | 529 => ModelError::Overloaded {
                provider,
                status: status.as_u16(),
                message,
            },
            500..=599 | 408 => ModelError::Server {
                provider,
                status: status.as_u16(),
                message,
            },
            other => ModelError::UnexpectedStatus {
                provider,
                status: other,
                message,
            },
        }
    }
}

/// A request body serialized once but for its `messages`, which each call splices
/// in: the bytes are exactly those of serializing the whole object (key order
/// included), so the provider's prompt cache sees the same prefix every time.
pub(crate) struct SplicedBody {
    /// The object's text up to and including `"messages":`.
    head: String,
    /// The object's text after the `messages` value.
    tail: String,
}

impl SplicedBody {
    /// Serializes `fields` around a `messages` placeholder: in the place of their
    /// `messages` field when they have one (its value does not matter), else last.
    pub fn new(
        provider: &'static str,
        mut fields: serde_json::Map<String, Value>,
    ) -> Result<SplicedBody, ModelError> {
        const PLACEHOLDER: &str = "\u{0}deploy-gate messages placeholder\u{0}";
        fields.insert("messages".into(), Value::from(PLACEHOLDER));
        let text = Value::Object(fields).to_string();
        let placeholder = Value::from(PLACEHOLDER).to_string();
        let (Some(at), 1) = (text.find(&placeholder), text.matches(&placeholder).count()) else {
            return Err(ModelError::Config {
                provider,
                message: "could not place messages in the request body".to_string(),
            });
        };
        Ok(SplicedBody {
            head: text[..at].to_string(),
            tail: text[at + placeholder.len()..].to_string(),
        })
    }

    /// The whole body with `messages`, each already serialized, as the array.
    pub fn with_messages<'a>(&self, messages: impl IntoIterator<Item = &'a str>) -> String {
        let mut body = String::with_capacity(self.head.len() + self.tail.len() + 4_096);
        body.push_str(&self.head);
        body.push('[');
        for (idx, message) in messages.into_iter().enumerate() {
            if idx > 0 {
                body.push(',');
            }
            body.push_str(message);
        }
        body.push(']');
        body.push_str(&self.tail);
        body
    }
}

/// Reads `(type and code, message)` from either provider's error body, or the start
/// of the body when it is neither.
fn error_body(body: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(body);
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return (String::new(), text.chars().take(300).collect());
    };
    let error = &value["error"];
    let kind = [&error["type"], &error["code"]]
        .iter()
        .filter_map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let message = error["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(300).collect());
    (kind, message)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Exponential backoff with equal jitter: half the step fixed, half random.
fn backoff(attempt: u32, retry: &RetrySettings) -> Duration {
    let step = retry
        .initial_backoff_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(retry.max_backoff_ms);
    let half = step / 2;
    Duration::from_millis(half + random_u64() % (half + 1))
}

pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        return u64::from(nanos);
    }
    u64::from_le_bytes(bytes)
}

/// A fresh fence boundary: 128 random bits in hex, unguessable by a diff's author.
pub(crate) fn random_boundary() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spliced_body_is_byte_identical_to_the_whole_object_serialized() {
        let mut fields = serde_json::Map::new();
        fields.insert("model".into(), Value::from("m"));
        fields.insert("max_tokens".into(), Value::from(10));
        fields.insert(
            "system".into(),
            serde_json::json!([{"type": "text", "text": "a \"quoted\" \u{0} rule"}]),
        );
        fields.insert("tools".into(), serde_json::json!([{"name": "t"}]));
        let spliced = SplicedBody::new("test", fields.clone()).unwrap();
        for messages in [
            vec![],
            vec![serde_json::json!({"role": "user", "content": "hi"})],
            vec![
                serde_json::json!({"role": "user", "content": [{"type": "text", "text": "x"}]}),
                serde_json::json!({"role": "assistant", "content": "y"}),
            ],
        ] {
            let mut whole = fields.clone();
            whole.insert("messages".into(), Value::Array(messages.clone()));
            let texts: Vec<String> = messages.iter().map(Value::to_string).collect();
            assert_eq!(
                spliced.with_messages(texts.iter().map(String::as_str)),
                Value::Object(whole).to_string()
            );
        }
    }

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let retry = RetrySettings {
            initial_backoff_ms: 1_000,
            max_backoff_ms: 8_000,
            ..Default::default()
        };
        for _ in 0..50 {
            let first = backoff(1, &retry);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_millis(1_000));
            let tenth = backoff(10, &retry);
            assert!(tenth >= Duration::from_millis(4_000) && tenth <= Duration::from_millis(8_000));
        }
    }

    #[test]
    fn error_bodies_of_both_providers_are_read() {
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            error_body(anthropic),
            ("overloaded_error".to_string(), "Overloaded".to_string())
        );
        let openai = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert!(error_body(openai).0.contains("insufficient_quota"));
    }
}
