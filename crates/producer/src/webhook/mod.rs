//! The webhook receiver: an HTTP server (hyper 1) that turns signed deliveries into
//! enqueued merge events.
//!
//! Routes:
//! - `POST /github`: GitHub `push` to a deploy branch and `pull_request` closed with
//!   `merged: true` into one; `ping` answers 200; every other event 202 "ignored".
//! - `POST /events`: a MergeEvent as JSON, signed with `X-Gate-Signature-256`.
//! - `GET /healthz`: 200 while the process serves.
//!
//! Answers: 202 `{"status": "enqueued", "event_id": …}` once the broker confirmed the
//! event; 202 `{"status": "ignored", "reason": …}`; 401 for a missing or wrong
//! signature (nothing is parsed, nothing enqueued); 400 for a malformed body; 413 for
//! a body over `max_body_bytes` (refused while reading, never buffered whole); 408
//! when the body does not arrive within `read_timeout_ms`; 502 when GitHub's API
//! fails (GitHub shows the failed delivery, for redelivery); 503 when the broker did
//! not take the event and trying again may work; 500 otherwise. Error bodies are
//! `{"error": "<one line>"}`, never with a secret in them.
//!
//! Replays and duplicates: every accepted delivery id (`X-GitHub-Delivery`, or the
//! signed `X-Gate-Delivery` of `/events`) is remembered for
//! `replay_window_secs` (Redis, shared by every receiver; a bounded in-process set
//! when Redis is down). The same delivery again enqueues nothing and is answered
//! **200** `{"status": "duplicate", "event_id": …}`: GitHub counts any 2xx as
//! delivered, so its "Redeliver" button on an already enqueued delivery shows
//! success instead of a failure nobody can fix (a 409 would). A delivery answered
//! with an error (or ignored) is forgotten, so redelivering it enqueues it for real. Past the
//! window, the event id (`gh-<X-GitHub-Delivery>`) still makes the worker's
//! decision store answer with the first decision.

mod events;
mod github;
mod replay;
mod signature;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gate_core::Redactor;
use gate_git::ContextOptions;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::{Producer, ProducerError};

/// Settings of `deploy-gate webhook` (config section `[webhook]`). Secrets are not
/// here: only the names of the environment variables that hold them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Address to listen on when the command line gives none.
    pub listen: String,
    /// Branches whose merges need a decision (`main`, or a prefix glob `release/*`).
    /// Pushes and pull requests into other branches are answered 202 "ignored".
    pub deploy_branches: Vec<String>,
    /// Environment variable holding the GitHub webhook secret; `/github` is off
    /// (404) without it.
    pub github_secret_env: String,
    /// Environment variable holding the GitHub token for the REST API (a
    /// fine-grained token with read access to contents). Without it the API is
    /// called anonymously, which only sees public repositories.
    pub github_token_env: String,
    /// Environment variable holding the secret of `/events`; off (404) without it.
    pub events_secret_env: String,
    /// GitHub REST API root: `https://api.github.com`, or
    /// `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_base_url: String,
    /// Bound on one GitHub API call, connect to last byte. Below GitHub's own 10 s
    /// delivery timeout, so a slow API is answered 502 (and shown as failed) rather
    /// than cut off by GitHub while the event may still be enqueued.
    pub api_timeout_ms: u64,
    /// Largest GitHub API answer read; a compare of 300 files with patches is a few
    /// MiB.
    pub max_api_response_bytes: usize,
    /// Largest request body accepted (413 beyond, refused while reading).
    pub max_body_bytes: usize,
    /// Time allowed for a request's headers, and then for its body.
    pub read_timeout_ms: u64,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may take to finish before their
    /// connections are dropped.
    pub drain_timeout_ms: u64,
    /// How long an accepted delivery id is remembered (a replay within it enqueues
    /// nothing). Default 3 days: GitHub lets a delivery be redelivered that long.
    pub replay_window_secs: u64,
    /// Delivery ids remembered in memory when Redis is down (the oldest go first).
    pub replay_memory_capacity: usize,
    /// How far an `/events` delivery's signed `X-Gate-Timestamp` may be from this
    /// receiver's clock (401 beyond).
    pub events_max_skew_secs: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            listen: "127.0.0.1:8080".to_owned(),
            deploy_branches: vec!["main".to_owned(), "master".to_owned()],
            github_secret_env: "GITHUB_WEBHOOK_SECRET".to_owned(),
            github_token_env: "GITHUB_TOKEN".to_owned(),
            events_secret_env: "DEPLOY_GATE_WEBHOOK_SECRET".to_owned(),
            api_base_url: "https://api.github.com".to_owned(),
            api_timeout_ms: 8_000,
            max_api_response_bytes: 32 * 1024 * 1024,
            max_body_bytes: 1024 * 1024,
            read_timeout_ms: 10_000,
            max_connections: 256,
            drain_timeout_ms: 10_000,
            replay_window_secs: 3 * 24 * 3600,
            replay_memory_capacity: 100_000,
            events_max_skew_secs: 300,
        }
    }
}

impl WebhookSettings {
    /// Checks what would make the server misbehave, naming the setting.
    fn validate(&self) -> Result<(), ProducerError> {
        let bad = |message: String| Err(ProducerError::Config(message));
        if self.deploy_branches.iter().all(|b| b.trim().is_empty()) {
            return bad("webhook.deploy_branches is empty: no merge would ever be enqueued".into());
        }
        if !(self.api_base_url.starts_with("https://") || self.api_base_url.starts_with("http://"))
        {
            return bad(format!(
                "webhook.api_base_url must be an http(s) URL, got {:?}",
                self.api_base_url
            ));
        }
        for (name, value) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_api_response_bytes", self.max_api_response_bytes),
            ("max_connections", self.max_connections),
        ] {
            if value == 0 {
                return bad(format!("webhook.{name} must be above 0"));
            }
        }
        if self.replay_window_secs < self.events_max_skew_secs.saturating_mul(2) {
            return bad(format!(
                "webhook.replay_window_secs ({}) must be at least twice webhook.events_max_skew_secs ({}): a replay inside the skew window must still be remembered",
                self.replay_window_secs, self.events_max_skew_secs
            ));
        }
        if self.replay_memory_capacity == 0 || self.events_max_skew_secs == 0 {
            return bad(
                "webhook.replay_memory_capacity and webhook.events_max_skew_secs must be above 0"
                    .into(),
            );
        }
        if self.read_timeout_ms == 0 || self.api_timeout_ms == 0 {
            return bad(
                "webhook.read_timeout_ms and webhook.api_timeout_ms must be above 0".into(),
            );
        }
        Ok(())
    }

    /// Whether `branch` (a name, not a ref) is a deploy branch.
    fn is_deploy_branch(&self, branch: &str) -> bool {
        self.deploy_branches.iter().any(|pattern| {
            let pattern = pattern.trim();
            match pattern.strip_suffix('*') {
                Some(prefix) => branch.starts_with(prefix),
                None => branch == pattern,
            }
        })
    }
}

/// A secret value read from the environment: `Debug` masks it.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// The webhook's secrets, read once at start from the variables the settings name.
/// `Debug` masks them.
#[derive(Debug, Clone)]
pub struct WebhookSecrets {
    pub(crate) github: Option<Secret>,
    pub(crate) github_token: Option<Secret>,
    pub(crate) events: Option<Secret>,
}

impl WebhookSecrets {
    /// Reads the secrets through `env` (pass `&|name| std::env::var(name).ok()`).
    /// An endpoint whose secret is unset is off; with neither set there is nothing
    /// to serve, which is a configuration error naming both variables.
    pub fn from_env(
        settings: &WebhookSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<WebhookSecrets, ProducerError> {
        let read = |name: &str| env(name).filter(|value| !value.is_empty()).map(Secret);
        let secrets = WebhookSecrets {
            github: read(&settings.github_secret_env),
            github_token: read(&settings.github_token_env),
            events: read(&settings.events_secret_env),
        };
        if secrets.github.is_none() && secrets.events.is_none() {
            return Err(ProducerError::Config(format!(
                "no webhook secret is set: set {} (GitHub webhooks) and/or {} (signed MergeEvents); unsigned deliveries are never accepted",
                settings.github_secret_env, settings.events_secret_env
            )));
        }
        Ok(secrets)
    }
}

/// What the webhook receiver works with besides its settings.
#[derive(Clone)]
pub struct WebhookDeps {
    /// Where events go; [`Producer::connect`] gives one that reconnects by itself.
    pub producer: Producer,
    /// The secrets, from [`WebhookSecrets::from_env`].
    pub secrets: WebhookSecrets,
    /// How a GitHub change is packed (`[context]`: budget, commits, omissions);
    /// `repo_name` is ignored, the repository's `owner/name` is used.
    pub context: ContextOptions,
    /// Where accepted delivery ids are remembered across receivers and restarts
    /// (replay protection); `None` remembers them in this process only.
    pub replay_store: Option<gate_bus::Redis>,
}

impl fmt::Debug for WebhookDeps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookDeps")
            .field("producer", &self.producer)
            .field("secrets", &self.secrets)
            .field("context", &self.context)
            .field("replay_store", &self.replay_store.is_some())
            .finish()
    }
}

/// Shared by every request.
pub(crate) struct App {
    pub(crate) settings: WebhookSettings,
    pub(crate) deps: WebhookDeps,
    pub(crate) redactor: Redactor,
    pub(crate) http: reqwest::Client,
    pub(crate) replay: replay::ReplayGuard,
}

pub(crate) type Reply = Response<Full<Bytes>>;

/// Serves webhooks on `listener` until `shutdown` resolves.
///
/// Shutdown is in two phases: stop accepting connections (and stop keep-alive on
/// open ones), let requests in flight finish for up to `drain_timeout_ms`, then drop
/// what remains — a sender whose request was cut gets no answer and delivers again.
/// The producer's connection is closed at the end.
///
/// Errors: settings that cannot work (checked before serving). A failing `accept`
/// (out of file descriptors) is logged and retried after a pause, not fatal.
pub async fn serve(
    settings: WebhookSettings,
    deps: WebhookDeps,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProducerError> {
    settings.validate()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.api_timeout_ms))
        .user_agent(concat!("deploy-gate-webhook/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| {
            ProducerError::Config(format!("building the GitHub API client: {error}"))
        })?;
    if deps.secrets.github.is_some() && deps.secrets.github_token.is_none() {
        tracing::warn!(
            variable = %settings.github_token_env,
            "no GitHub token set: the compare API is called anonymously and only sees public repositories"
        );
    }
    let read_timeout = Duration::from_millis(settings.read_timeout_ms);
    let drain_timeout = Duration::from_millis(settings.drain_timeout_ms);
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let window = Duration::from_secs(settings.replay_window_secs);
    let replay = replay::ReplayGuard::new(
        deps.replay_store
            .as_ref()
            .map(|redis| redis.marks("webhook-delivery", window)),
        window,
        settings.replay_memory_capacity,
    );
    let app = Arc::new(App {
        settings,
        deps,
        redactor: Redactor::new(),
        http,
        replay,
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "webhook receiver listening");
    }

    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed; pausing");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let app = Arc::clone(&app);
        let service = service_fn(move |request| {
            let app = Arc::clone(&app);
            async move {
                let path = request.uri().path().to_owned();
                let reply = route(&app, request).await;
                gate_telemetry::events::WebhookRequest {
                    path: &path,
                    status: reply.status().as_u16(),
                }
                .emit();
                Ok::<_, std::convert::Infallible>(reply)
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }

    drop(listener);
    tracing::info!("webhook receiver stopping: draining requests in flight");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!(n_connections = connections.len(), "drain deadline passed; dropping connections");
        }
    }
    connections.shutdown().await;
    app.deps.producer.close().await;
    Ok(())
}

async fn route(app: &App, request: Request<Incoming>) -> Reply {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    match (path.as_str(), &method) {
        ("/healthz", &Method::GET) => {
            let amqp = match app.deps.producer.is_connected().await {
                Some(true) => "connected",
                Some(false) => "disconnected (reconnects on the next event)",
                None => "shared connection",
            };
            reply(StatusCode::OK, &json!({"status": "ok", "amqp": amqp}))
        }
        ("/github", &Method::POST) => match read_body(app, request).await {
            Ok((headers, body)) => github::handle(app, &headers, body).await,
            Err(reply) => reply,
        },
        ("/events", &Method::POST) => match read_body(app, request).await {
            Ok((headers, body)) => events::handle(app, &headers, body).await,
            Err(reply) => reply,
        },
        ("/healthz" | "/github" | "/events", _) => {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed on {path}"),
            );
            let allow = if path == "/healthz" { "GET" } else { "POST" };
            response
                .headers_mut()
                .insert("allow", HeaderValue::from_static(allow));
            response
        }
        _ => error(StatusCode::NOT_FOUND, format!("no route {path}")),
    }
}

/// Reads the body within the size limit and the read timeout: a declared length over
/// the limit is refused before reading, an undeclared one as soon as it goes over.
async fn read_body(app: &App, request: Request<Incoming>) -> Result<(HeaderMap, Bytes), Reply> {
    let limit = app.settings.max_body_bytes;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let (parts, body) = request.into_parts();
    let timeout = Duration::from_millis(app.settings.read_timeout_ms);
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok((parts.headers, collected.to_bytes())),
        Ok(Err(read_error)) => {
            if read_error.is::<http_body_util::LengthLimitError>() {
                Err(too_large())
            } else {
                Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("reading the request body failed: {read_error}"),
                ))
            }
        }
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} ms",
                app.settings.read_timeout_ms
            ),
        )),
    }
}

/// A W3C `traceparent` header, when well-formed, to continue the sender's trace.
pub(crate) fn traceparent(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?.trim();
    let parts: Vec<&str> = value.split('-').collect();
    let hex =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit());
    match parts.as_slice() {
        [version, trace, parent, flags]
            if hex(version, 2) && hex(trace, 32) && hex(parent, 16) && hex(flags, 2) =>
        {
            Some(value.to_owned())
        }
        _ => None,
    }
}

/// Answers the enqueue of `event_id`: 202 when confirmed, else the status the error
/// deserves (413 oversized, 503 retryable, 500 otherwise).
pub(crate) fn enqueue_reply(
    event_id: &str,
    result: Result<(), ProducerError>,
    extra: Value,
) -> Reply {
    match result {
        Ok(()) => {
            tracing::info!(%event_id, "merge event enqueued");
            let mut body = json!({"status": "enqueued", "event_id": event_id});
            if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
                body.extend(extra);
            }
            reply(StatusCode::ACCEPTED, &body)
        }
        Err(failure) => {
            tracing::warn!(%event_id, error = %failure, "merge event not enqueued");
            let status = if matches!(failure, ProducerError::Oversized { .. }) {
                StatusCode::PAYLOAD_TOO_LARGE
            } else if failure.is_retryable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            error(status, failure.to_string())
        }
    }
}

pub(crate) fn reply(status: StatusCode, body: &Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A delivery already accepted within the replay window: nothing is enqueued.
pub(crate) fn duplicate(event_id: &str) -> Reply {
    tracing::info!(%event_id, "replayed delivery: nothing enqueued");
    reply(
        StatusCode::OK,
        &json!({
            "status": "duplicate",
            "event_id": event_id,
            "reason": "this delivery was already received; nothing was enqueued",
        }),
    )
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    reply(status, &json!({"error": message.into()}))
}

pub(crate) fn ignored(reason: impl Into<String>) -> Reply {
    let reason = reason.into();
    tracing::info!(%reason, "delivery ignored");
    let mut response = reply(
        StatusCode::ACCEPTED,
        &json!({"status": "ignored", "reason": reason}),
    );
    response.extensions_mut().insert(NotEnqueued);
    response
}

/// Marks an answer that enqueued nothing although it is a success (ignored).
#[derive(Debug, Clone, Copy)]
struct NotEnqueued;

/// Whether the delivery answered with `answer` put an event on the bus: only
/// those stay remembered for replay protection (an error may be redelivered and
/// must then be enqueued; an ignored one is ignored again either way).
pub(crate) fn enqueued(answer: &Reply) -> bool {
    answer.status().is_success() && answer.extensions().get::<NotEnqueued>().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_branches_match_names_and_prefix_globs() {
        let settings = WebhookSettings {
            deploy_branches: vec!["main".into(), "release/*".into()],
            ..WebhookSettings::default()
        };
        assert!(settings.is_deploy_branch("main"));
        assert!(settings.is_deploy_branch("release/2026.1"));
        assert!(!settings.is_deploy_branch("mainline"));
        assert!(!settings.is_deploy_branch("feature/main"));
    }

    #[test]
    fn settings_without_a_secret_or_with_a_bad_url_are_refused() {
        let settings = WebhookSettings::default();
        let error = WebhookSecrets::from_env(&settings, &|_| None).unwrap_err();
        assert!(
            error.to_string().contains("GITHUB_WEBHOOK_SECRET"),
            "{error}"
        );
        assert!(
            error.to_string().contains("DEPLOY_GATE_WEBHOOK_SECRET"),
            "{error}"
        );
        let secrets = WebhookSecrets::from_env(&settings, &|name| {
            (name == "DEPLOY_GATE_WEBHOOK_SECRET").then(|| "s3cret-value".to_owned())
        })
        .unwrap();
        assert!(!format!("{secrets:?}").contains("s3cret-value"));
        let bad = WebhookSettings {
            api_base_url: "api.github.com".into(),
            ..WebhookSettings::default()
        };
        assert!(bad.validate().is_err());
        assert!(WebhookSettings::default().validate().is_ok());
    }

    #[test]
    fn only_well_formed_traceparents_are_passed_on() {
        let mut headers = HeaderMap::new();
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert("traceparent", HeaderValue::from_static(good));
        assert_eq!(traceparent(&headers).as_deref(), Some(good));
        headers.insert("traceparent", HeaderValue::from_static("00-xyz-01"));
        assert_eq!(traceparent(&headers), None);
    }
}
