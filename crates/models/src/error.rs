//! What can go wrong calling a model, and what the caller should do about it.

use std::time::Duration;

/// What the caller should do with a failed analysis. Every disposition ends in a
/// `hold` for the decision (fail closed); they differ in what happens around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// A passing fault (rate limit, overload, timeout, connection): the provider has
    /// already retried it up to the configured limit; a worker may requeue the event.
    RetryLater,
    /// The model answered but not usefully (refusal, truncation, invalid verdict after
    /// repair): decide `hold` with the reason; retrying the same prompt will not help.
    Hold,
    /// The deployment is wrong (key, model id, quota, request shape): decide `hold`
    /// and tell an operator, because every later analysis will fail the same way.
    FixConfiguration,
}

/// A model analysis that produced no usable verdict. Each variant says what a person
/// would need to know to act on it; [`ModelError::disposition`] says what code does.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// No API key in config nor in the environment.
    #[error("{provider}: no API key: set the environment variable {env_var}")]
    MissingApiKey {
        /// Provider name.
        provider: &'static str,
        /// Where the key is expected.
        env_var: String,
    },
    /// A setting cannot work (bad base URL, unreadable incidents folder, …).
    #[error("{provider}: invalid configuration: {message}")]
    Config {
        /// Provider name.
        provider: &'static str,
        /// What is wrong.
        message: String,
    },
    /// 401: the key was refused.
    #[error(
        "{provider}: the API key was refused (HTTP 401): check the key in {env_var}: {message}"
    )]
    Unauthorized {
        /// Provider name.
        provider: &'static str,
        /// The variable the key came from (or `config` when it was configured).
        env_var: String,
        /// The provider's message.
        message: String,
    },
    /// 403: the key may not use this model or endpoint.
    #[error("{provider}: permission denied (HTTP 403) for model {model}: {message}")]
    PermissionDenied {
        /// Provider name.
        provider: &'static str,
        /// Model id.
        model: String,
        /// The provider's message.
        message: String,
    },
    /// 404: usually an unknown or retired model id, or a base URL without `/v1` routes.
    #[error("{provider}: not found (HTTP 404): is model `{model}` available and is the base URL right? {message}")]
    NotFound {
        /// Provider name.
        provider: &'static str,
        /// Model id.
        model: String,
        /// The provider's message.
        message: String,
    },
    /// 413: the prompt is too large; lower `context.budget_chars` or the incident cap.
    #[error("{provider}: request too large (HTTP 413): lower context.budget_chars or the incidents cap: {message}")]
    RequestTooLarge {
        /// Provider name.
        provider: &'static str,
        /// The provider's message.
        message: String,
    },
    /// 400: the provider refused the request's shape. A bug or an unsupported model.
    #[error("{provider}: invalid request (HTTP 400): {message}")]
    InvalidRequest {
        /// Provider name.
        provider: &'static str,
        /// The provider's message.
        message: String,
    },
    /// OpenAI's `insufficient_quota`: the account is out of credit; retrying won't help.
    #[error("{provider}: the account has no quota left (insufficient_quota): add credit or raise the limit: {message}")]
    InsufficientQuota {
        /// Provider name.
        provider: &'static str,
        /// The provider's message.
        message: String,
    },
    /// 429: too many requests or tokens.
    #[error("{provider}: rate limited (HTTP 429){}", retry_after.map(|d| format!(", retry after {:.1}s", d.as_secs_f64())).unwrap_or_default())]
    RateLimited {
        /// Provider name.
        provider: &'static str,
        /// What `retry-after` asked for.
        retry_after: Option<Duration>,
    },
    /// 529 (Anthropic) or 503: the provider is overloaded.
    #[error("{provider}: overloaded (HTTP {status}): {message}")]
    Overloaded {
        /// Provider name.
        provider: &'static str,
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// 5xx other than overload.
    #[error("{provider}: server error (HTTP {status}): {message}")]
    Server {
        /// Provider name.
        provider: &'static str,
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// Another HTTP status we did not expect.
    #[error("{provider}: unexpected HTTP {status}: {message}")]
    UnexpectedStatus {
        /// Provider name.
        provider: &'static str,
        /// HTTP status.
        status: u16,
        /// The body, shortened.
        message: String,
    },
    /// The request did not complete within the request timeout.
    #[error("{provider}: no answer within {:.1}s", after.as_secs_f64())]
    Timeout {
        /// Provider name.
        provider: &'static str,
        /// The timeout that expired.
        after: Duration,
    },
    /// Connecting or reading failed.
    #[error("{provider}: connection failed: {message}")]
    Connection {
        /// Provider name.
        provider: &'static str,
        /// The transport error.
        message: String,
    },
    /// The body was not the JSON the wire format promises.
    #[error("{provider}: malformed response: {message}")]
    MalformedResponse {
        /// Provider name.
        provider: &'static str,
        /// What did not parse.
        message: String,
    },
    /// The model stopped at `max_tokens` before finishing the verdict.
    #[error("{provider}: the verdict was cut off at max_tokens ({max_tokens}); raise max_tokens")]
    Truncated {
        /// Provider name.
        provider: &'static str,
        /// The configured limit.
        max_tokens: u32,
    },
    /// The model declined to analyse the change.
    #[error("{provider}: the model refused to give a verdict ({reason})")]
    Refused {
        /// Provider name.
        provider: &'static str,
        /// The stop reason or refusal text.
        reason: String,
    },
    /// The model stopped without calling the verdict tool (`end_turn`, `pause_turn`,
    /// `stop_sequence`, context window exceeded, or a stop reason we do not know).
    #[error("{provider}: no verdict in the answer (stop_reason {stop_reason})")]
    NoVerdict {
        /// Provider name.
        provider: &'static str,
        /// Why the model stopped.
        stop_reason: String,
    },
    /// The verdict broke the schema or the band rules, even after one repair turn.
    #[error("{provider}: invalid verdict after one repair turn: {message}")]
    InvalidVerdict {
        /// Provider name.
        provider: &'static str,
        /// The last validation error.
        message: String,
    },
    /// Retries ran out (attempts or overall deadline); the last error says why.
    #[error("{provider}: gave up after {attempts} attempts in {:.1}s: {last}", elapsed.as_secs_f64())]
    RetriesExhausted {
        /// Provider name.
        provider: &'static str,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last failure.
        last: Box<ModelError>,
    },
}

impl ModelError {
    /// Whether sending the same request again may succeed. The providers retry these
    /// themselves; a caller seeing one got it after retries ran out.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ModelError::RateLimited { .. }
                | ModelError::Overloaded { .. }
                | ModelError::Server { .. }
                | ModelError::Timeout { .. }
                | ModelError::Connection { .. }
                | ModelError::MalformedResponse { .. }
        )
    }

    /// What the caller should do. All of them decide `hold`; see [`Disposition`].
    pub fn disposition(&self) -> Disposition {
        match self {
            ModelError::RetriesExhausted { last, .. } => last.disposition(),
            error if error.is_retryable() => Disposition::RetryLater,
            ModelError::MissingApiKey { .. }
            | ModelError::Config { .. }
            | ModelError::Unauthorized { .. }
            | ModelError::PermissionDenied { .. }
            | ModelError::NotFound { .. }
            | ModelError::RequestTooLarge { .. }
            | ModelError::InvalidRequest { .. }
            | ModelError::InsufficientQuota { .. }
            | ModelError::Truncated { .. }
            | ModelError::UnexpectedStatus { .. } => Disposition::FixConfiguration,
            _ => Disposition::Hold,
        }
    }

    /// A stable short name for metrics and logs (`rate_limited`, `timeout`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            ModelError::MissingApiKey { .. } => "missing_api_key",
            ModelError::Config { .. } => "config",
            ModelError::Unauthorized { .. } => "unauthorized",
            ModelError::PermissionDenied { .. } => "permission_denied",
            ModelError::NotFound { .. } => "not_found",
            ModelError::RequestTooLarge { .. } => "request_too_large",
            ModelError::InvalidRequest { .. } => "invalid_request",
            ModelError::InsufficientQuota { .. } => "insufficient_quota",
            ModelError::RateLimited { .. } => "rate_limited",
            ModelError::Overloaded { .. } => "overloaded",
            ModelError::Server { .. } => "server_error",
            ModelError::UnexpectedStatus { .. } => "unexpected_status",
            ModelError::Timeout { .. } => "timeout",
            ModelError::Connection { .. } => "connection",
            ModelError::MalformedResponse { .. } => "malformed_response",
            ModelError::Truncated { .. } => "truncated",
            ModelError::Refused { .. } => "refused",
            ModelError::NoVerdict { .. } => "no_verdict",
            ModelError::InvalidVerdict { .. } => "invalid_verdict",
            ModelError::RetriesExhausted { .. } => "retries_exhausted",
        }
    }

    /// The innermost error: the last attempt's for [`ModelError::RetriesExhausted`].
    pub fn root(&self) -> &ModelError {
        match self {
            ModelError::RetriesExhausted { last, .. } => last.root(),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_faults_are_retryable_and_bad_keys_are_configuration() {
        let limited = ModelError::RateLimited {
            provider: "anthropic",
            retry_after: None,
        };
        assert!(limited.is_retryable());
        assert_eq!(limited.disposition(), Disposition::RetryLater);
        let unauthorized = ModelError::Unauthorized {
            provider: "anthropic",
            env_var: "ANTHROPIC_API_KEY".into(),
            message: "invalid x-api-key".into(),
        };
        assert!(!unauthorized.is_retryable());
        assert_eq!(unauthorized.disposition(), Disposition::FixConfiguration);
        assert!(unauthorized.to_string().contains("ANTHROPIC_API_KEY"));
        let refused = ModelError::Refused {
            provider: "openai",
            reason: "refusal".into(),
        };
        assert_eq!(refused.disposition(), Disposition::Hold);
    }

    #[test]
    fn exhausted_retries_keep_the_last_errors_disposition() {
        let exhausted = ModelError::RetriesExhausted {
            provider: "anthropic",
            attempts: 4,
            elapsed: Duration::from_secs(3),
            last: Box::new(ModelError::Overloaded {
                provider: "anthropic",
                status: 529,
                message: "x".into(),
            }),
        };
        assert!(!exhausted.is_retryable());
        assert_eq!(exhausted.disposition(), Disposition::RetryLater);
        assert_eq!(exhausted.root().kind(), "overloaded");
    }
}
