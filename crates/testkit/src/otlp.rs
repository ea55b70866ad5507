//! An OTLP/HTTP receiver: what a collector is to the gate, in process. It accepts
//! `POST /v1/traces` and `POST /v1/metrics` in both encodings
//! (`application/x-protobuf` and `application/json`), decodes them with the
//! OTLP messages themselves, and keeps the spans (as decoded, turned into
//! [`ReceivedSpan`]s when asked) and metric names for tests to assert on. Anything it cannot decode is answered 400 and counted.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let receiver = gate_testkit::otlp::OtlpReceiver::start().await?;
//! // OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint()
//! let spans = receiver.spans();
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::{
    metrics::v1::ExportMetricsServiceRequest, trace::v1::ExportTraceServiceRequest,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Largest export body accepted (a collector's default is larger; ours are small).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One span as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// `service.name` of the process that exported it.
    pub service: String,
    /// The span's name.
    pub name: String,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// 16 lowercase hex digits; empty for a root span.
    pub parent_span_id: String,
    /// `SPAN_KIND_*` as its number (1 internal, 2 server, 3 client, 4 producer,
    /// 5 consumer).
    pub kind: i32,
    /// String, integer, boolean and double attributes, as text.
    pub attributes: BTreeMap<String, String>,
    /// `STATUS_CODE_*` as its number (0 unset, 1 ok, 2 error).
    pub status_code: i32,
    /// The names of the span's events, in order.
    pub events: Vec<String>,
}

/// Counts of one received metric data point set.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMetric {
    /// `service.name` of the exporter.
    pub service: String,
    /// The OTLP metric name.
    pub name: String,
    /// The OTLP unit.
    pub unit: String,
}

#[derive(Default)]
struct Inner {
    /// The trace exports as decoded; turned into [`ReceivedSpan`]s when asked, so
    /// that receiving stays cheap (a benchmark shares its cores with it).
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ReceivedMetric>,
    /// Content types of the requests received, in order.
    content_types: Vec<String>,
    /// Exports kept undecoded (a deferring receiver): path, JSON or not, body.
    pending: Vec<(String, bool, Bytes)>,
    /// Decode only when asked ([`OtlpReceiver::start_deferred`]).
    defer: bool,
    /// Requests that could not be decoded, with why.
    refused: Vec<String>,
}

/// The receiver; it stops when dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    _shutdown: watch::Sender<bool>,
}

impl OtlpReceiver {
    /// Listens on a random loopback port.
    pub async fn start() -> std::io::Result<OtlpReceiver> {
        OtlpReceiver::listen(false).await
    }

    /// Like [`OtlpReceiver::start`], but answers each export at once and decodes
    /// the bodies only when they are asked for, so a benchmark sharing its cores
    /// with this stand-in for a collector (which would run on other machines) is
    /// not charged for its decoding. A body that does not decode is then listed
    /// in [`OtlpReceiver::refused`], although its exporter was told 200.
    pub async fn start_deferred() -> std::io::Result<OtlpReceiver> {
        OtlpReceiver::listen(true).await
    }

    async fn listen(defer: bool) -> std::io::Result<OtlpReceiver> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner {
            defer,
            ..Inner::default()
        }));
        let (shutdown, mut stopped) = watch::channel(false);
        let accept_inner = Arc::clone(&inner);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let inner = Arc::clone(&accept_inner);
                        tokio::spawn(async move {
                            let service = service_fn(move |request| handle(Arc::clone(&inner), request));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        Ok(OtlpReceiver {
            addr,
            inner,
            _shutdown: shutdown,
        })
    }

    /// The base URL for `OTEL_EXPORTER_OTLP_ENDPOINT` (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().traces.iter().flat_map(spans_of).collect()
    }

    /// Every metric received so far (one entry per metric per export).
    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        self.lock().metrics.clone()
    }

    /// The content types of the export requests, in order of arrival.
    pub fn content_types(&self) -> Vec<String> {
        self.lock().content_types.clone()
    }

    /// Why requests were refused (empty when every export decoded).
    pub fn refused(&self) -> Vec<String> {
        self.lock().refused.clone()
    }

    /// The state, with any deferred exports decoded first.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        let mut inner = lock(&self.inner);
        for (path, json, body) in std::mem::take(&mut inner.pending) {
            if let Err(why) = absorb(&mut inner, &path, json, &body) {
                inner.refused.push(why);
            }
        }
        inner
    }
}

async fn handle(
    inner: Arc<Mutex<Inner>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if request.method() != Method::POST || !matches!(path.as_str(), "/v1/traces" | "/v1/metrics") {
        return Ok(answer(
            StatusCode::NOT_FOUND,
            "POST /v1/traces or /v1/metrics",
        ));
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return Ok(refuse(&inner, format!("{path}: unreadable body: {error}"))),
    };
    let json = content_type.starts_with("application/json");
    if !json && !content_type.starts_with("application/x-protobuf") {
        return Ok(refuse(
            &inner,
            format!("{path}: unsupported content type `{content_type}`"),
        ));
    }
    let decoded = {
        let mut inner = lock(&inner);
        if inner.defer {
            inner.pending.push((path.clone(), json, body));
            Ok(())
        } else {
            absorb(&mut inner, &path, json, &body)
        }
    };
    match decoded {
        Ok(()) => {
            lock(&inner).content_types.push(content_type);
            let (content_type, body) = if json {
                ("application/json", Bytes::from_static(b"{}"))
            } else {
                ("application/x-protobuf", Bytes::new())
            };
            let mut response = Response::new(Full::new(body));
            response.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(content_type),
            );
            Ok(response)
        }
        Err(why) => Ok(refuse(&inner, why)),
    }
}

/// Decodes one export into the state; `Err` says why it is refused.
fn absorb(inner: &mut Inner, path: &str, json: bool, body: &[u8]) -> Result<(), String> {
    let decoded = if path == "/v1/traces" {
        decode::<ExportTraceServiceRequest>(body, json).map(|request| inner.traces.push(request))
    } else {
        decode::<ExportMetricsServiceRequest>(body, json)
            .map(|request| inner.metrics.extend(metrics_of(request)))
    };
    decoded.map_err(|error| format!("{path}: {error}"))
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    body: &[u8],
    json: bool,
) -> Result<T, String> {
    if json {
        serde_json::from_slice(body).map_err(|e| format!("not OTLP JSON: {e}"))
    } else {
        T::decode(body).map_err(|e| format!("not OTLP protobuf: {e}"))
    }
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

fn refuse(inner: &Mutex<Inner>, why: String) -> Response<Full<Bytes>> {
    let response = answer(StatusCode::BAD_REQUEST, &why);
    lock(inner).refused.push(why);
    response
}

fn answer(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_string())));
    *response.status_mut() = status;
    response
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(attribute: &KeyValue) -> Option<(String, String)> {
    let value = attribute.value.as_ref()?.value.as_ref()?;
    let text = match value {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        _ => return None,
    };
    Some((attribute.key.clone(), text))
}

fn service_of(attributes: &[KeyValue]) -> String {
    attributes
        .iter()
        .filter_map(text)
        .find(|(key, _)| key == "service.name")
        .map(|(_, value)| value)
        .unwrap_or_default()
}

fn spans_of(request: &ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut spans = Vec::new();
    for resource_spans in &request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .map(|r| service_of(&r.attributes))
            .unwrap_or_default();
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                spans.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: span.kind,
                    attributes: span.attributes.iter().filter_map(text).collect(),
                    status_code: span.status.as_ref().map_or(0, |status| status.code),
                    events: span.events.iter().map(|event| event.name.clone()).collect(),
                });
            }
        }
    }
    spans
}

fn metrics_of(request: ExportMetricsServiceRequest) -> Vec<ReceivedMetric> {
    let mut metrics = Vec::new();
    for resource_metrics in request.resource_metrics {
        let service = resource_metrics
            .resource
            .as_ref()
            .map(|r| service_of(&r.attributes))
            .unwrap_or_default();
        for scope_metrics in resource_metrics.scope_metrics {
            for metric in scope_metrics.metrics {
                metrics.push(ReceivedMetric {
                    service: service.clone(),
                    name: metric.name,
                    unit: metric.unit,
                });
            }
        }
    }
    metrics
}
