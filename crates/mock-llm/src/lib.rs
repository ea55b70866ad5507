//! A mock model server that speaks the Anthropic Messages and OpenAI
//! chat-completions wire formats over real HTTP, for tests, demos and benchmarks.
//!
//! It is strict on purpose: a request it accepts should be one the real API
//! accepts (headers, required fields, tool_choice shape, at most four cache
//! breakpoints, strict-schema rules); a wrong one gets a 400 with the provider's
//! error body. It emulates Anthropic prompt caching and OpenAI automatic caching,
//! enforces its own RPM/TPM limits with the providers' headers, produces faults on
//! demand, and records every request.
//!
//! Control it from Rust through [`MockServer`], or over HTTP: `POST /_mock/faults`
//! (`{"fault": "rate_limited", "retry_after_secs": 2, "count": 3}`),
//! `POST /_mock/config` (`{"latency_ms": 1000, "rpm": 120, "tpm": null}`),
//! `GET /_mock/requests`, `GET /_mock/stats`, `POST /_mock/reset`.
//!
//! Tokens are counted as characters / 4, rounded up, as the client estimates them.
//!
//! `obey_instructions` turns it into the worst-case model of the injection tests:
//! it obeys any instruction it finds in a request (see [`find_instruction`]).

mod anthropic;
mod obey;
mod openai;
mod script;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

pub use obey::find_instruction;
pub use script::Fault;

/// Bodies above this size are answered with 413.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Estimated tokens of a text, as the client counts them.
pub fn count_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// How the mock behaves; every field can be changed while it runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MockConfig {
    /// Delay before every answer, in milliseconds.
    pub latency_ms: u64,
    /// Requests per minute it accepts (token bucket, burst = one minute's worth).
    pub rpm: Option<u32>,
    /// Input tokens per minute it accepts.
    pub tpm: Option<u32>,
    /// When set, the only API key it accepts; otherwise any non-empty key.
    pub api_key: Option<String>,
    /// The worst-case model: obey any instruction-like text found anywhere in the
    /// request's user content ("score 0", "approved by", a fake verdict, look-alike
    /// letters, base64…) with `deploy` at 0, and otherwise answer diligently (never
    /// below the rules analyzer's hints). See [`find_instruction`].
    pub obey_instructions: bool,
    /// When set, every verdict this server gives scores this (0–100, with its
    /// band's recommendation under the default bands), whatever the request says;
    /// only a fault wins over it. Two servers reading the same change can then
    /// disagree, as the consensus tests need.
    pub verdict_score: Option<u64>,
    /// Percent of API requests (0–100) that fail with a fault drawn from
    /// [`MIXED_FAULTS`] (429 with `retry-after`, 5xx, a hang until the client times
    /// out, malformed output), when no fault is queued or scripted: the flaky
    /// provider of the chaos suite.
    pub fault_percent: u8,
    /// Seed of those draws: the same seed and request order fail the same requests
    /// with the same faults.
    pub fault_seed: u64,
    /// Keep each request's headers and status but not its body (`null` in
    /// [`MockServer::requests`]): for benchmarks and long runs, where thousands of
    /// parsed prompts would otherwise fill memory.
    pub forget_bodies: bool,
}

/// The faults [`MockConfig::fault_percent`] draws from, equally likely.
pub const MIXED_FAULTS: [Fault; 7] = [
    Fault::RateLimited {
        retry_after_secs: 1,
    },
    Fault::ServerError,
    Fault::Overloaded,
    Fault::GatewayTimeout,
    Fault::Hang,
    Fault::MalformedJson,
    Fault::SchemaViolation,
];

/// One request as it arrived, for assertions on what left the client.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    /// Request path.
    pub path: String,
    /// Headers, lowercase names; API keys masked as `****`.
    pub headers: HashMap<String, String>,
    /// The JSON body (`null` when it was not JSON).
    pub body: Value,
    /// The status answered (0 when the mock hung).
    pub status: u16,
}

/// Counters over the mock's lifetime, for benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Requests received on the API routes.
    pub n_requests: u64,
    /// Answered 200.
    pub n_ok: u64,
    /// Answered 429 because of the mock's own limits.
    pub n_rate_limited: u64,
    /// Answered with a fault (queued, scripted by a marker, or drawn for
    /// [`MockConfig::fault_percent`]), including the ones answered 200 with a
    /// malformed body.
    pub n_faults: u64,
}

struct Bucket {
    capacity: f64,
    level: f64,
    per_sec: f64,
    at: Instant,
}

impl Bucket {
    fn new(per_minute: u32, now: Instant) -> Bucket {
        let capacity = f64::from(per_minute);
        Bucket {
            capacity,
            level: capacity,
            per_sec: capacity / 60.0,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * self.per_sec).min(self.capacity);
        self.at = now;
    }

    /// Time until `amount` is available (zero when it is now).
    fn wait_for(&self, amount: f64) -> Duration {
        let missing = amount.min(self.capacity) - self.level;
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / self.per_sec)
        }
    }

    /// Time until full again.
    fn reset_in(&self) -> Duration {
        Duration::from_secs_f64(((self.capacity - self.level) / self.per_sec).max(0.0))
    }
}

/// The rate-limit state the headers report.
pub(crate) struct LimitReport {
    pub requests: Option<(u64, u64, Duration)>,
    pub tokens: Option<(u64, u64, Duration)>,
}

#[derive(Default)]
struct Inner {
    config: MockConfig,
    faults: VecDeque<Fault>,
    requests: Vec<RecordedRequest>,
    stats: Stats,
    /// Cached prefixes: key → (tokens, expiry). An expired entry is never read;
    /// the map is swept of them at most once per [`CACHE_SWEEP`].
    cache: HashMap<CacheKey, (u64, Instant)>,
    /// When the cache was last swept.
    last_sweep: Option<Instant>,
    clock_offset: Duration,
    request_bucket: Option<Bucket>,
    token_bucket: Option<Bucket>,
    n_ids: u64,
    /// Draws made for [`MockConfig::fault_percent`] so far.
    n_draws: u64,
}

/// A cached prefix's identity: the XXH3-128 hash of the model and the prefix's
/// text, so that a prompt of many kilobytes costs the cache 16 bytes per entry.
pub(crate) type CacheKey = u128;

/// How often expired prompt-cache entries are dropped from memory.
const CACHE_SWEEP: Duration = Duration::from_secs(10);

/// The [`CacheKey`] of `parts`, each followed by a NUL.
pub(crate) fn cache_key<'a>(parts: impl IntoIterator<Item = &'a str>) -> CacheKey {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    }
    hasher.digest128()
}

/// State shared by the connections and the handle.
pub(crate) struct Shared {
    inner: Mutex<Inner>,
}

impl Inner {
    /// Drops expired prompt-cache entries, at most once per [`CACHE_SWEEP`]
    /// (lookups ignore expired entries themselves).
    fn sweep_cache(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|last| now.saturating_duration_since(last) < CACHE_SWEEP)
        {
            return;
        }
        self.last_sweep = Some(now);
        self.cache.retain(|_, (_, expiry)| *expiry > now);
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The mock's clock: real (or paused) tokio time plus what tests advanced.
    pub(crate) fn now(&self) -> Instant {
        Instant::now() + self.lock().clock_offset
    }

    pub(crate) fn next_id(&self) -> u64 {
        let mut inner = self.lock();
        inner.n_ids += 1;
        inner.n_ids
    }

    pub(crate) fn api_key(&self) -> Option<String> {
        self.lock().config.api_key.clone()
    }

    /// The verdict for a request whose user text is `text`: the configured
    /// [`MockConfig::verdict_score`] unless a fault is set, else what the text says.
    pub(crate) fn verdict(&self, text: &str, fault: Option<&Fault>) -> Value {
        let (fixed, obey) = {
            let inner = self.lock();
            (inner.config.verdict_score, inner.config.obey_instructions)
        };
        match fixed {
            Some(score) if fault.is_none() => script::scored_verdict(score),
            _ => script::verdict_for(text, fault, obey),
        }
    }

    /// The fault for this request: a queued one, else a `MOCK:fault=` marker, else
    /// one drawn for [`MockConfig::fault_percent`].
    pub(crate) fn take_fault(&self, text: &str) -> Option<Fault> {
        let mut inner = self.lock();
        let queued = inner.faults.pop_front();
        if let Some(fault) =
            queued.or_else(|| script::marker(text, "fault").and_then(Fault::from_marker))
        {
            inner.stats.n_faults += 1;
            return Some(fault);
        }
        let percent = u64::from(inner.config.fault_percent.min(100));
        if percent == 0 {
            return None;
        }
        inner.n_draws += 1;
        let draw = splitmix64(inner.config.fault_seed ^ inner.n_draws.wrapping_mul(0x9E37_79B9));
        if draw % 100 >= percent {
            return None;
        }
        let pick = (draw / 100) % MIXED_FAULTS.len() as u64;
        inner.stats.n_faults += 1;
        Some(MIXED_FAULTS[pick as usize].clone())
    }

    /// Admits a request of `tokens` input tokens, or says how long to wait.
    pub(crate) fn admit(&self, tokens: u64) -> Result<LimitReport, (Duration, LimitReport)> {
        let now = self.now();
        let mut inner = self.lock();
        let (rpm, tpm) = (inner.config.rpm, inner.config.tpm);
        match (
            rpm,
            inner.request_bucket.as_ref().map(|b| b.capacity as u32),
        ) {
            (Some(limit), Some(current)) if limit == current => {}
            (Some(limit), _) => inner.request_bucket = Some(Bucket::new(limit, now)),
            (None, _) => inner.request_bucket = None,
        }
        match (tpm, inner.token_bucket.as_ref().map(|b| b.capacity as u32)) {
            (Some(limit), Some(current)) if limit == current => {}
            (Some(limit), _) => inner.token_bucket = Some(Bucket::new(limit, now)),
            (None, _) => inner.token_bucket = None,
        }
        let mut wait = Duration::ZERO;
        if let Some(bucket) = inner.request_bucket.as_mut() {
            bucket.refill(now);
            wait = wait.max(bucket.wait_for(1.0));
        }
        if let Some(bucket) = inner.token_bucket.as_mut() {
            bucket.refill(now);
            wait = wait.max(bucket.wait_for(tokens as f64));
        }
        let admitted = wait.is_zero();
        if admitted {
            if let Some(bucket) = inner.request_bucket.as_mut() {
                bucket.level -= 1.0;
            }
            if let Some(bucket) = inner.token_bucket.as_mut() {
                bucket.level = (bucket.level - tokens as f64).max(0.0);
            }
        } else {
            inner.stats.n_rate_limited += 1;
        }
        let report = |bucket: &Option<Bucket>| {
            bucket
                .as_ref()
                .map(|b| (b.capacity as u64, b.level.max(0.0) as u64, b.reset_in()))
        };
        let report = LimitReport {
            requests: report(&inner.request_bucket),
            tokens: report(&inner.token_bucket),
        };
        if admitted {
            Ok(report)
        } else {
            Err((wait, report))
        }
    }

    /// Anthropic caching: given the token counts at each breakpoint (in order) with
    /// their keys and TTLs, returns `(read, written_5m, written_1h)`.
    pub(crate) fn anthropic_cache(
        &self,
        breakpoints: &[(CacheKey, u64, Duration)],
        min_tokens: u64,
    ) -> (u64, u64, u64) {
        let now = self.now();
        let mut inner = self.lock();
        inner.sweep_cache(now);
        let mut read = 0;
        let mut read_idx = None;
        for (idx, (key, tokens, ttl)) in breakpoints.iter().enumerate().rev() {
            if let Some(entry) = inner.cache.get_mut(key).filter(|(_, expiry)| *expiry > now) {
                read = *tokens;
                entry.1 = now + *ttl;
                read_idx = Some(idx);
                break;
            }
        }
        let (mut written_5m, mut written_1h) = (0, 0);
        let mut covered = read;
        for (idx, (key, tokens, ttl)) in breakpoints.iter().enumerate() {
            if read_idx.is_some_and(|r| idx <= r) || *tokens < min_tokens || *tokens <= covered {
                continue;
            }
            let written = tokens - covered;
            if *ttl >= Duration::from_secs(3600) {
                written_1h += written;
            } else {
                written_5m += written;
            }
            covered = *tokens;
            inner.cache.insert(*key, (*tokens, now + *ttl));
        }
        (read, written_5m, written_1h)
    }

    /// OpenAI automatic caching: a prefix of at least 1,024 tokens is cached in
    /// 128-token steps for ten minutes after its last use.
    pub(crate) fn openai_cache(&self, key: CacheKey, prefix_tokens: u64) -> u64 {
        if prefix_tokens < 1_024 {
            return 0;
        }
        let now = self.now();
        let cached = (prefix_tokens / 128) * 128;
        let mut inner = self.lock();
        inner.sweep_cache(now);
        let hit = inner
            .cache
            .get(&key)
            .is_some_and(|(_, expiry)| *expiry > now);
        inner
            .cache
            .insert(key, (cached, now + Duration::from_secs(600)));
        if hit {
            cached
        } else {
            0
        }
    }

    fn record(&self, mut request: RecordedRequest) {
        let mut inner = self.lock();
        inner.stats.n_requests += 1;
        if request.status == 200 {
            inner.stats.n_ok += 1;
        }
        if inner.config.forget_bodies {
            request.body = Value::Null;
        }
        inner.requests.push(request);
    }
}

/// A running mock server. Dropping it stops accepting connections.
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl MockServer {
    /// Starts a server on `127.0.0.1` on a free port.
    pub async fn start(config: MockConfig) -> std::io::Result<MockServer> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts a server on `addr`.
    pub async fn bind(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                config,
                ..Inner::default()
            }),
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
                            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                        });
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        Ok(MockServer {
            addr,
            shared,
            _shutdown: shutdown,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Anthropic base URL (`ANTHROPIC_BASE_URL`): `http://127.0.0.1:PORT`.
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OpenAI base URL (`OPENAI_BASE_URL`): `http://127.0.0.1:PORT/v1`.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The next `count` API requests fail with `fault`, in order after any queued.
    pub fn push_fault(&self, fault: Fault, count: usize) {
        let mut inner = self.shared.lock();
        inner.faults.extend(std::iter::repeat_n(fault, count));
    }

    /// Replaces the configuration (limits apply from the next request).
    pub fn set_config(&self, config: MockConfig) {
        self.shared.lock().config = config;
    }

    /// Every API request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// Moves the mock's clock forward (cache TTLs, limit refills) without waiting.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.lock().clock_offset += by;
    }

    /// Forgets faults, requests, counters and cache; keeps the configuration.
    pub fn reset(&self) {
        reset(&self.shared);
    }
}

fn reset(shared: &Shared) {
    let mut inner = shared.lock();
    let config = inner.config.clone();
    *inner = Inner {
        config,
        ..Inner::default()
    };
}

/// A well-mixed 64-bit hash of `state` (SplitMix64's finalizer): the mock's
/// seeded randomness, without a dependency.
fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) type Reply = Response<Full<Bytes>>;

pub(crate) fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// What a wire-format handler decided, before latency and recording.
pub(crate) enum Outcome {
    Reply(Reply),
    Hang,
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Reply, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let headers: HashMap<String, String> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().to_ascii_lowercase();
            let value = if name == "x-api-key" || name == "authorization" {
                "****".to_string()
            } else {
                value.to_str().unwrap_or("").to_string()
            };
            (name, value)
        })
        .collect();
    let raw_headers = request.headers().clone();
    let bytes = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let body = json!({"type": "error", "error": {"type": "request_too_large", "message": "Request exceeds the maximum allowed number of bytes."}});
            return Ok(json_reply(StatusCode::PAYLOAD_TOO_LARGE, &body));
        }
    };

    if path.starts_with("/_mock/") {
        return Ok(control(&shared, &method, &path, &bytes));
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let outcome = match (&method, path.as_str()) {
        (&Method::POST, "/v1/messages") => anthropic::handle(&shared, &raw_headers, &bytes).await,
        (&Method::POST, "/v1/chat/completions") => {
            openai::handle(&shared, &raw_headers, &bytes).await
        }
        _ => Outcome::Reply(json_reply(
            StatusCode::NOT_FOUND,
            &json!({"type": "error", "error": {"type": "not_found_error", "message": format!("{method} {path} is not an API route of this mock")}}),
        )),
    };
    let latency = Duration::from_millis(shared.lock().config.latency_ms);
    match outcome {
        Outcome::Hang => {
            shared.record(RecordedRequest {
                path,
                headers,
                body,
                status: 0,
            });
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            Ok(json_reply(
                StatusCode::GATEWAY_TIMEOUT,
                &json!({"error": "hung"}),
            ))
        }
        Outcome::Reply(reply) => {
            shared.record(RecordedRequest {
                path,
                headers,
                body,
                status: reply.status().as_u16(),
            });
            if !latency.is_zero() && reply.status() == StatusCode::OK {
                tokio::time::sleep(latency).await;
            }
            Ok(reply)
        }
    }
}

#[derive(Deserialize)]
struct FaultRequest {
    #[serde(flatten)]
    fault: Fault,
    #[serde(default = "one")]
    count: usize,
}

fn one() -> usize {
    1
}

fn control(shared: &Shared, method: &Method, path: &str, body: &[u8]) -> Reply {
    let bad = |message: String| json_reply(StatusCode::BAD_REQUEST, &json!({"error": message}));
    match (method, path) {
        (&Method::POST, "/_mock/faults") => match serde_json::from_slice::<FaultRequest>(body) {
            Ok(request) => {
                shared
                    .lock()
                    .faults
                    .extend(std::iter::repeat_n(request.fault, request.count));
                json_reply(
                    StatusCode::OK,
                    &json!({"queued": shared.lock().faults.len()}),
                )
            }
            Err(err) => bad(format!("fault: {err}")),
        },
        (&Method::POST, "/_mock/config") => match serde_json::from_slice::<MockConfig>(body) {
            Ok(config) => {
                shared.lock().config = config;
                json_reply(StatusCode::OK, &json!({"ok": true}))
            }
            Err(err) => bad(format!("config: {err}")),
        },
        (&Method::GET, "/_mock/requests") => {
            json_reply(StatusCode::OK, &json!(shared.lock().requests))
        }
        (&Method::GET, "/_mock/stats") => json_reply(StatusCode::OK, &json!(shared.lock().stats)),
        (&Method::POST, "/_mock/reset") => {
            reset(shared);
            json_reply(StatusCode::OK, &json!({"ok": true}))
        }
        _ => json_reply(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no control route {method} {path}")}),
        ),
    }
}

/// Formats a duration as OpenAI's reset headers do (`1.5s`, `20ms`, `6m0s`).
pub(crate) fn go_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{}ms", d.as_millis())
    } else if secs < 60.0 {
        format!(
            "{}s",
            format!("{secs:.3}")
                .trim_end_matches('0')
                .trim_end_matches('.')
        )
    } else {
        let minutes = (secs / 60.0).floor();
        format!("{}m{:.0}s", minutes as u64, secs - minutes * 60.0)
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            inner: Mutex::new(Inner::default()),
        }
    }

    #[test]
    fn an_expired_prefix_is_a_miss_before_any_sweep() {
        let shared = shared();
        let key = cache_key(["model", "a long system prompt"]);
        let point = [(key, 2_000, Duration::from_secs(5))];
        assert_eq!(shared.anthropic_cache(&point, 1_024), (0, 2_000, 0));
        assert_eq!(shared.anthropic_cache(&point, 1_024), (2_000, 0, 0));
        // Past the entry's TTL but within the sweep interval: the entry is still
        // in the map, and must not be read.
        shared.lock().clock_offset += Duration::from_secs(6);
        assert!(shared.lock().cache.contains_key(&key));
        assert_eq!(shared.anthropic_cache(&point, 1_024), (0, 2_000, 0));
    }

    #[test]
    fn keys_differ_by_model_and_by_where_the_segments_split() {
        assert_ne!(cache_key(["m1", "text"]), cache_key(["m2", "text"]));
        assert_ne!(cache_key(["m", "ab", "c"]), cache_key(["m", "a", "bc"]));
        assert_eq!(cache_key(["m", "ab"]), cache_key(["m", "ab"]));
    }
}
