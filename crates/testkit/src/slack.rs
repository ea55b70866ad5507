//! A mock Slack: incoming webhooks over real HTTP, strict like Slack, with
//! scriptable faults, recording every request and when it arrived.
//!
//! Why: the notifier's promises (valid Block Kit, one message per second per
//! webhook, `Retry-After` honoured, retries on 5xx, dead letters on refusals) are
//! only worth something when tested against a server that answers the way Slack
//! does:
//!
//! - `POST /services/T…/B…/…` on a webhook created with [`MockSlack::webhook_url`]:
//!   `200 ok` (text/html, as Slack sends it);
//! - a body that is not a JSON object: `400 invalid_payload`; neither a non-empty
//!   `text` nor `blocks`: `400 no_text`; blocks that break Block Kit's rules (more
//!   than 50, a section text over 3000 characters, a field over 2000, a header over
//!   150 or not `plain_text`, an unknown block type, an empty text…):
//!   `400 invalid_blocks`;
//! - any other path: `404 no_service`; another method: `405 invalid_method`.
//!
//! Faults ([`SlackFault`]) are queued and served to the next requests to any
//! registered webhook, before the body is looked at, as Slack's rate limiter
//! would: N × 429 with `Retry-After`, N × 500, a 410 `channel_is_archived`; and
//! [`MockSlack::rate_limit_for`] answers 429 to everything for a while (a burst).
//!
//! It also serves plain JSON webhooks ([`MockSlack::json_webhook_url`]) that accept
//! any JSON, for the notifier's generic webhook target.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Slack's limit on blocks per message.
const MAX_BLOCKS: usize = 50;
/// Slack's limit on a section's text (and a context element's).
const MAX_SECTION_CHARS: usize = 3_000;
/// Slack's limit on a section field.
const MAX_FIELD_CHARS: usize = 2_000;
/// Slack's limit on a header's text.
const MAX_HEADER_CHARS: usize = 150;
/// Slack's limit on fields per section and elements per context block.
const MAX_FIELDS: usize = 10;
/// Bodies above this are refused (413), far above anything Slack would accept.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A scripted answer, served instead of the normal one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackFault {
    /// `429 Too Many Requests` with `Retry-After: <secs>` and body `rate_limited`.
    RateLimited {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// `500 Internal Server Error` with body `internal_error`.
    ServerError,
    /// `410 Gone` with body `channel_is_archived`.
    ChannelArchived,
    /// Any status and body.
    Status {
        /// The status code.
        status: u16,
        /// The body.
        body: String,
    },
}

impl SlackFault {
    fn answer(&self) -> (StatusCode, String, Option<u64>) {
        match self {
            SlackFault::RateLimited { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited".to_string(),
                Some(*retry_after_secs),
            ),
            SlackFault::ServerError => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error".to_string(),
                None,
            ),
            SlackFault::ChannelArchived => {
                (StatusCode::GONE, "channel_is_archived".to_string(), None)
            }
            SlackFault::Status { status, body } => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body.clone(),
                None,
            ),
        }
    }
}

/// One request as it arrived, and what the mock answered.
#[derive(Debug, Clone)]
pub struct SlackRequest {
    /// The request path (it holds the webhook's secret, as with Slack).
    pub path: String,
    /// Headers, lowercase names.
    pub headers: HashMap<String, String>,
    /// The body as JSON (`Value::Null` when it was not JSON).
    pub body: Value,
    /// When the request's headers arrived.
    pub arrived_at: Instant,
    /// The status answered.
    pub status: u16,
    /// The body answered (`ok`, `rate_limited`, `invalid_blocks`…).
    pub answer: String,
}

impl SlackRequest {
    /// Whether the mock accepted it (200).
    pub fn accepted(&self) -> bool {
        self.status == 200
    }
}

#[derive(Default)]
struct Inner {
    slack_paths: HashSet<String>,
    json_paths: HashSet<String>,
    faults: VecDeque<SlackFault>,
    rate_limited_until: Option<(Instant, u64)>,
    requests: Vec<SlackRequest>,
    n_webhooks: u64,
}

struct Shared {
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running mock Slack on `127.0.0.1`. Dropping it stops accepting connections.
pub struct MockSlack {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for MockSlack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockSlack")
            .field("addr", &self.addr)
            .finish()
    }
}

impl MockSlack {
    /// Starts a server on a free port of `127.0.0.1`.
    pub async fn start() -> std::io::Result<MockSlack> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
        });
        let (shutdown, mut stopped) = watch::channel(false);
        let accept_shared = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let shared = Arc::clone(&accept_shared);
                        tokio::spawn(async move {
                            let service = service_fn(move |request| handle(Arc::clone(&shared), request));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        Ok(MockSlack {
            addr,
            shared,
            _shutdown: shutdown,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates a Slack incoming webhook and returns its URL,
    /// `http://127.0.0.1:PORT/services/T…/B…/…`. Each call makes a new one.
    pub fn webhook_url(&self) -> String {
        let mut inner = self.shared.lock();
        inner.n_webhooks += 1;
        let n = inner.n_webhooks;
        let path = format!(
            "/services/TMOCK0000/B{n:08}/{}",
            fake_secret(n, self.addr.port())
        );
        inner.slack_paths.insert(path.clone());
        format!("http://{}{path}", self.addr)
    }

    /// Creates a plain JSON webhook (any JSON body is accepted with `200 ok`), for
    /// generic webhook targets, and returns its URL.
    pub fn json_webhook_url(&self) -> String {
        let mut inner = self.shared.lock();
        inner.n_webhooks += 1;
        let path = format!("/hooks/{}", inner.n_webhooks);
        inner.json_paths.insert(path.clone());
        format!("http://{}{path}", self.addr)
    }

    /// The next `count` requests to any registered webhook get `fault`, after any
    /// faults already queued.
    pub fn push_fault(&self, fault: SlackFault, count: usize) {
        self.shared
            .lock()
            .faults
            .extend(std::iter::repeat_n(fault, count));
    }

    /// A burst: every request to a registered webhook in the next `duration` gets
    /// 429 with `Retry-After: retry_after_secs`.
    pub fn rate_limit_for(&self, duration: Duration, retry_after_secs: u64) {
        self.shared.lock().rate_limited_until = Some((Instant::now() + duration, retry_after_secs));
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<SlackRequest> {
        self.shared.lock().requests.clone()
    }

    /// Every request to `url` (as returned by [`MockSlack::webhook_url`]).
    pub fn requests_to(&self, url: &str) -> Vec<SlackRequest> {
        let path = path_of(url);
        self.requests()
            .into_iter()
            .filter(|request| request.path == path)
            .collect()
    }

    /// The messages accepted (200) so far, in arrival order.
    pub fn messages(&self) -> Vec<SlackRequest> {
        self.requests()
            .into_iter()
            .filter(SlackRequest::accepted)
            .collect()
    }

    /// Waits until at least `n` messages were accepted and returns them all.
    /// Panics after `timeout`, listing what arrived, so a test fails with context.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<SlackRequest> {
        self.wait_until(timeout, |requests| {
            requests.iter().filter(|r| r.accepted()).count() >= n
        })
        .await;
        self.messages()
    }

    /// Waits until at least `n` requests arrived (whatever the answer) and returns
    /// them all. Panics after `timeout`.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<SlackRequest> {
        self.wait_until(timeout, |requests| requests.len() >= n)
            .await;
        self.requests()
    }

    async fn wait_until(&self, timeout: Duration, done: impl Fn(&[SlackRequest]) -> bool) {
        let start = Instant::now();
        loop {
            if done(&self.shared.lock().requests) {
                return;
            }
            if start.elapsed() > timeout {
                let seen: Vec<(String, u16, String)> = self
                    .requests()
                    .into_iter()
                    .map(|r| (r.path, r.status, r.answer))
                    .collect();
                panic!(
                    "mock Slack: condition not met within {timeout:?}; requests so far: {seen:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A webhook secret that looks like Slack's (24 alphanumerics).
fn fake_secret(n: u64, port: u16) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = n
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from(port));
    (0..24)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(ALPHABET[(state % ALPHABET.len() as u64) as usize])
        })
        .collect()
}

fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/').map_or("/", |idx| &rest[idx..])
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let arrived_at = Instant::now();
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let headers: HashMap<String, String> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                value.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let bytes = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Some(collected.to_bytes()),
        Err(_) => None,
    };
    let body: Value = bytes
        .as_ref()
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .unwrap_or(Value::Null);

    let (status, answer, retry_after) = {
        let mut inner = shared.lock();
        let is_slack = inner.slack_paths.contains(&path);
        let is_json = inner.json_paths.contains(&path);
        let rate_limited = inner
            .rate_limited_until
            .filter(|(until, _)| arrived_at < *until)
            .map(|(_, secs)| secs);
        let (status, answer, retry_after) = if !is_slack && !is_json {
            (StatusCode::NOT_FOUND, "no_service".to_string(), None)
        } else if method != Method::POST {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_method".to_string(),
                None,
            )
        } else if let Some(secs) = rate_limited {
            (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited".to_string(),
                Some(secs),
            )
        } else if let Some(fault) = inner.faults.pop_front() {
            fault.answer()
        } else if bytes.is_none() {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large".to_string(),
                None,
            )
        } else if is_json {
            if body.is_null() {
                (StatusCode::BAD_REQUEST, "invalid_payload".to_string(), None)
            } else {
                (StatusCode::OK, "ok".to_string(), None)
            }
        } else {
            match validate_message(&body) {
                Ok(()) => (StatusCode::OK, "ok".to_string(), None),
                Err(code) => (StatusCode::BAD_REQUEST, code.to_string(), None),
            }
        };
        inner.requests.push(SlackRequest {
            path,
            headers,
            body,
            arrived_at,
            status: status.as_u16(),
            answer: answer.clone(),
        });
        (status, answer, retry_after)
    };

    let mut response = Response::new(Full::new(Bytes::from(answer)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    Ok(response)
}

/// Slack's answer to a message body: `Ok` or the error code of its 400.
fn validate_message(body: &Value) -> Result<(), &'static str> {
    let Some(message) = body.as_object() else {
        return Err("invalid_payload");
    };
    let text = match message.get("text") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text),
        Some(_) => return Err("invalid_payload"),
    };
    let has_text = text.is_some_and(|text| !text.trim().is_empty());
    match message.get("blocks") {
        None | Some(Value::Null) if has_text => Ok(()),
        None | Some(Value::Null) => Err("no_text"),
        Some(Value::Array(blocks)) if blocks.is_empty() && !has_text => Err("no_text"),
        Some(Value::Array(blocks)) => validate_blocks(blocks).map_err(|_| "invalid_blocks"),
        Some(_) => Err("invalid_blocks"),
    }
}

/// Block Kit's structural rules, those a message generator is likely to break.
/// The error says which rule, for debugging the mock itself.
pub fn validate_blocks(blocks: &[Value]) -> Result<(), String> {
    if blocks.len() > MAX_BLOCKS {
        return Err(format!("{} blocks; at most {MAX_BLOCKS}", blocks.len()));
    }
    for (idx, block) in blocks.iter().enumerate() {
        let fail = |why: String| Err(format!("block {idx}: {why}"));
        let Some(kind) = block.get("type").and_then(Value::as_str) else {
            return fail("no type".into());
        };
        if let Some(id) = block.get("block_id") {
            if id.as_str().is_none_or(|id| id.is_empty() || id.len() > 255) {
                return fail("block_id must be 1 to 255 characters".into());
            }
        }
        match kind {
            "section" => {
                let text = block.get("text");
                let fields = block.get("fields");
                if text.is_none() && fields.is_none() {
                    return fail("a section needs text or fields".into());
                }
                if let Some(text) = text {
                    text_object(text, MAX_SECTION_CHARS, false).or_else(fail)?;
                }
                if let Some(fields) = fields {
                    let Some(fields) = fields.as_array() else {
                        return fail("fields is not an array".into());
                    };
                    if fields.is_empty() || fields.len() > MAX_FIELDS {
                        return fail(format!("{} fields; 1 to {MAX_FIELDS}", fields.len()));
                    }
                    for field in fields {
                        text_object(field, MAX_FIELD_CHARS, false).or_else(fail)?;
                    }
                }
            }
            "header" => {
                let Some(text) = block.get("text") else {
                    return fail("a header needs text".into());
                };
                text_object(text, MAX_HEADER_CHARS, true).or_else(fail)?;
            }
            "context" => {
                let Some(elements) = block.get("elements").and_then(Value::as_array) else {
                    return fail("a context needs elements".into());
                };
                if elements.is_empty() || elements.len() > MAX_FIELDS {
                    return fail(format!("{} elements; 1 to {MAX_FIELDS}", elements.len()));
                }
                for element in elements {
                    if element.get("type").and_then(Value::as_str) == Some("image") {
                        continue;
                    }
                    text_object(element, MAX_SECTION_CHARS, false).or_else(fail)?;
                }
            }
            "divider" | "actions" | "image" | "rich_text" | "input" | "file" | "video" => {}
            other => return fail(format!("unknown block type {other:?}")),
        }
    }
    Ok(())
}

/// A text object: `plain_text` (or `mrkdwn` unless `plain_only`), non-empty, at
/// most `max_chars` characters.
fn text_object(value: &Value, max_chars: usize, plain_only: bool) -> Result<(), String> {
    let kind = value.get("type").and_then(Value::as_str);
    match kind {
        Some("plain_text") => {}
        Some("mrkdwn") if !plain_only => {}
        other => return Err(format!("text type {other:?} is not allowed here")),
    }
    let Some(text) = value.get("text").and_then(Value::as_str) else {
        return Err("a text object needs text".into());
    };
    let n_chars = text.chars().count();
    if n_chars == 0 || n_chars > max_chars {
        return Err(format!("text of {n_chars} characters; 1 to {max_chars}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_need_text_or_valid_blocks() {
        assert_eq!(validate_message(&json!({"text": "hi"})), Ok(()));
        assert_eq!(validate_message(&json!([1])), Err("invalid_payload"));
        assert_eq!(
            validate_message(&json!({"text": 3})),
            Err("invalid_payload")
        );
        assert_eq!(validate_message(&json!({})), Err("no_text"));
        assert_eq!(validate_message(&json!({"text": " "})), Err("no_text"));
        let header = json!({"type": "header", "text": {"type": "plain_text", "text": "x"}});
        assert_eq!(validate_message(&json!({"blocks": [header]})), Ok(()));
        let mrkdwn_header = json!({"type": "header", "text": {"type": "mrkdwn", "text": "x"}});
        assert_eq!(
            validate_message(&json!({"blocks": [mrkdwn_header]})),
            Err("invalid_blocks")
        );
        let long = json!({"type": "section", "text": {"type": "mrkdwn", "text": "x".repeat(3001)}});
        assert_eq!(
            validate_message(&json!({"text": "t", "blocks": [long]})),
            Err("invalid_blocks")
        );
        let many: Vec<Value> = (0..51).map(|_| json!({"type": "divider"})).collect();
        assert!(validate_blocks(&many).is_err());
        assert!(validate_blocks(&[json!({"type": "carousel"})]).is_err());
    }

    #[test]
    fn paths_are_taken_from_urls() {
        assert_eq!(
            path_of("http://127.0.0.1:9/services/T/B/x"),
            "/services/T/B/x"
        );
        assert_eq!(path_of("http://127.0.0.1:9"), "/");
        assert_eq!(fake_secret(1, 80).len(), 24);
        assert_ne!(fake_secret(1, 80), fake_secret(2, 80));
    }
}
