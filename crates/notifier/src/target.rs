//! The channels as HTTP targets: URLs read from the environment, one request per
//! attempt, and what each answer means.

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use gate_bus::Redis;
use gate_core::Notification;
use reqwest::{
    header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER},
    redirect, StatusCode, Url,
};

use crate::{
    delivery::{Outcome, Pacer},
    slack, ChannelSettings, NotifierDeps, NotifierError, NotifierSettings,
};

/// Longest part of an answer's body kept as the reason of a failure.
const MAX_REASON_CHARS: usize = 200;
/// Bytes of an answer's body read at most.
const MAX_BODY_BYTES: usize = 4 * 1024;

/// The wire format a channel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Slack,
    Webhook,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Slack => "slack",
            Kind::Webhook => "webhook",
        })
    }
}

/// A URL that is a credential: `Debug` shows only its scheme and host.
struct SecretUrl(Url);

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}/****",
            self.0.scheme(),
            self.0.host_str().unwrap_or("")
        )
    }
}

/// One configured channel, ready to post to.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) channel: String,
    pub(crate) kind: Kind,
    url: SecretUrl,
    headers: HeaderMap,
    /// Shared with every channel posting to the same URL.
    pub(crate) pacer: Arc<Pacer>,
    /// The notifications already delivered to this channel.
    pub(crate) delivered: DeliveredMarks,
}

/// Every channel, and the one HTTP client they share.
pub(crate) struct Targets {
    client: reqwest::Client,
    by_channel: BTreeMap<String, Arc<Target>>,
}

impl Targets {
    /// Resolves every channel's secrets from the environment and opens their
    /// delivered-marks stores. Fails on the first channel that cannot work, naming
    /// it and the variable (never the value).
    pub(crate) fn build(
        settings: &NotifierSettings,
        deps: &NotifierDeps,
    ) -> Result<Targets, NotifierError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .user_agent(concat!("deploy-gate/", env!("CARGO_PKG_VERSION")))
            // A webhook that redirects would carry the message somewhere nobody
            // configured: refuse instead (the 3xx dead-letters with its reason).
            .redirect(redirect::Policy::none())
            .build()
            .map_err(|e| NotifierError::HttpClient(e.without_url().to_string()))?;
        let mut pacers: BTreeMap<String, Arc<Pacer>> = BTreeMap::new();
        let mut by_channel = BTreeMap::new();
        for (channel, channel_settings) in &settings.channels {
            let (kind, url_env) = match channel_settings {
                ChannelSettings::Slack { webhook_url_env } => (Kind::Slack, webhook_url_env),
                ChannelSettings::Webhook { url_env, .. } => (Kind::Webhook, url_env),
            };
            let url = secret(deps, channel, url_env)?;
            let url = Url::parse(url.trim())
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
                .ok_or_else(|| NotifierError::InvalidUrl {
                    channel: channel.clone(),
                    var: url_env.clone(),
                })?;
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if let ChannelSettings::Webhook {
                headers: plain,
                secret_headers_env,
                ..
            } = channel_settings
            {
                for (name, value) in plain {
                    let value = HeaderValue::from_str(value).map_err(|_| {
                        NotifierError::InvalidSettings(format!(
                            "notify.channels.{channel}.headers.{name}: not a valid HTTP header value"
                        ))
                    })?;
                    headers.insert(header_name(channel, name)?, value);
                }
                for (name, var) in secret_headers_env {
                    let mut value =
                        HeaderValue::from_str(&secret(deps, channel, var)?).map_err(|_| {
                            NotifierError::InvalidHeader {
                                channel: channel.clone(),
                                var: var.clone(),
                            }
                        })?;
                    value.set_sensitive(true);
                    headers.insert(header_name(channel, name)?, value);
                }
            }
            let pacer = pacers
                .entry(url.as_str().to_string())
                .or_insert_with(|| Arc::new(Pacer::new(settings.min_interval())));
            let delivered = DeliveredMarks::open(deps, settings, channel)?;
            by_channel.insert(
                channel.clone(),
                Arc::new(Target {
                    channel: channel.clone(),
                    kind,
                    url: SecretUrl(url),
                    headers,
                    pacer: Arc::clone(pacer),
                    delivered,
                }),
            );
        }
        Ok(Targets { client, by_channel })
    }

    pub(crate) fn get(&self, channel: &str) -> Option<&Arc<Target>> {
        self.by_channel.get(channel)
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

fn secret(deps: &NotifierDeps, channel: &str, var: &str) -> Result<String, NotifierError> {
    deps.env
        .get(var)
        .filter(|value| !value.trim().is_empty())
        .ok_or_else(|| NotifierError::MissingEnv {
            channel: channel.to_string(),
            var: var.to_string(),
        })
}

fn header_name(channel: &str, name: &str) -> Result<HeaderName, NotifierError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        NotifierError::InvalidSettings(format!(
            "notify.channels.{channel}: {name:?} is not a valid HTTP header name"
        ))
    })
}

impl Target {
    /// The request body for this channel: Block Kit for Slack, the notification's
    /// own JSON for a generic webhook.
    pub(crate) fn body(&self, notification: &Notification) -> Result<Vec<u8>, String> {
        let encoded = match self.kind {
            Kind::Slack => serde_json::to_vec(&slack::message(notification)),
            Kind::Webhook => serde_json::to_vec(notification),
        };
        encoded.map_err(|e| format!("could not encode the message: {e}"))
    }

    /// One attempt. `idempotency_key` goes out as `Idempotency-Key` to generic
    /// webhooks, so a receiver can drop the duplicate the notifier cannot rule out.
    pub(crate) async fn post(
        &self,
        client: &reqwest::Client,
        body: Vec<u8>,
        idempotency_key: &str,
    ) -> Outcome {
        let mut request = client
            .post(self.url.0.clone())
            .headers(self.headers.clone())
            .body(body);
        if self.kind == Kind::Webhook {
            if let Ok(value) = HeaderValue::from_str(idempotency_key) {
                request = request.header("idempotency-key", value);
            }
        }
        match request.send().await {
            Ok(response) => classify(response).await,
            Err(error) if error.is_builder() => Outcome::Permanent(describe(error)),
            Err(error) => Outcome::Retryable(describe(error)),
        }
    }
}

/// What an answer means for the notification.
async fn classify(mut response: reqwest::Response) -> Outcome {
    let status = response.status();
    if status.is_success() {
        return Outcome::Delivered;
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after);
    let mut body = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let detail = reason(status, &body);
    if status == StatusCode::TOO_MANY_REQUESTS {
        Outcome::RateLimited {
            retry_after,
            detail,
        }
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Outcome::Retryable(detail)
    } else if status.is_redirection() {
        Outcome::Permanent(format!("{detail} (redirects are not followed)"))
    } else {
        Outcome::Permanent(detail)
    }
}

/// `Retry-After` in seconds (Slack sends whole seconds; fractions are accepted).
/// An HTTP date or garbage is ignored and the backoff applies instead.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// `HTTP 410: channel_is_archived`: the status and the start of the body, on one
/// line, for a person reading the dead-letter queue.
fn reason(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text
        .split(['\r', '\n'])
        .find(|line| !line.trim().is_empty())
        .unwrap_or("")
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON_CHARS)
        .collect();
    if line.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {line}", status.as_u16())
    }
}

/// A transport error with its causes, without the URL (a credential).
fn describe(error: reqwest::Error) -> String {
    let timed_out = error.is_timeout();
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if timed_out {
        format!("timed out: {text}")
    } else {
        text
    }
}

/// Which notifications a channel already has, in Redis, so a redelivered one is
/// skipped: exactly once per (event, channel) while Redis works, at least once
/// when it does not.
///
/// Stored as bus [`gate_bus::Marks`] (only `gate-bus` talks to Redis): the key is
/// `<key_prefix>notified:<channel>:<delivery id>`, written `SET NX EX` with
/// `dedup_ttl_secs` after a 2xx.
#[derive(Clone)]
pub(crate) struct DeliveredMarks {
    marks: gate_bus::Marks,
}

impl fmt::Debug for DeliveredMarks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeliveredMarks")
    }
}

impl DeliveredMarks {
    fn open(
        deps: &NotifierDeps,
        settings: &NotifierSettings,
        channel: &str,
    ) -> Result<DeliveredMarks, NotifierError> {
        let redis =
            Redis::open(&deps.redis_url, deps.redis.clone()).map_err(NotifierError::Redis)?;
        let ttl = Duration::from_secs(settings.dedup_ttl_secs);
        Ok(DeliveredMarks {
            marks: redis.marks(&format!("notified:{channel}"), ttl),
        })
    }

    /// Whether this delivery id was delivered to the channel.
    pub(crate) async fn contains(&self, delivery_id: &str) -> Result<bool, gate_bus::StoreError> {
        self.marks.contains(delivery_id).await
    }

    /// Remembers a delivery. `Ok(false)`: it was already remembered (two copies
    /// were in flight at once).
    pub(crate) async fn insert(
        &self,
        delivery_id: &str,
        _notification: &Notification,
    ) -> Result<bool, gate_bus::StoreError> {
        self.marks.insert(delivery_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_and_anything_else_is_ignored() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("1e9"), Some(Duration::from_secs(86_400)));
    }

    #[test]
    fn a_reason_is_the_status_and_the_first_line_of_the_body() {
        assert_eq!(
            reason(StatusCode::GONE, b"channel_is_archived"),
            "HTTP 410: channel_is_archived"
        );
        assert_eq!(
            reason(StatusCode::BAD_GATEWAY, b"\n\n<html>\x07bad</html>\nmore"),
            "HTTP 502: <html>bad</html>"
        );
        assert_eq!(reason(StatusCode::NOT_FOUND, b""), "HTTP 404");
        assert_eq!(
            reason(StatusCode::BAD_REQUEST, "x".repeat(1000).as_bytes()).len(),
            "HTTP 400: ".len() + MAX_REASON_CHARS
        );
    }

    #[test]
    fn a_secret_url_prints_only_its_scheme_and_host() {
        let url = SecretUrl(
            Url::parse("https://hooks.slack.com/services/T000/B000/XXXXSECRET").expect("url"),
        );
        assert_eq!(format!("{url:?}"), "https://hooks.slack.com/****");
    }
}
