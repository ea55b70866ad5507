//! Spans over OTLP: a `tracing` layer that turns the spans deploy-gate opens into
//! OpenTelemetry spans, and the thread that exports them in batches.
//!
//! Why not tracing-opentelemetry and the SDK's batch exporter: a worker opens six
//! spans per merge, and that pipeline cost about 18 µs of CPU per merge on an
//! idle core and 35–45 µs on a busy one — over 5 % of the fleet's throughput
//! (the fleet benchmark measured it). This layer does only what the gate uses:
//! at a span's start it draws its ids and reads its fields into a small record
//! kept in the span's extensions; at its end it queues the record; the export
//! thread writes a batch as one OTLP request and posts it (http/protobuf: the
//! bytes straight from the records, by the `wire` module; http/json: through the
//! `opentelemetry-proto` messages). Nothing runs when a span is entered or left.
//!
//! What it keeps of the conventions tracing-opentelemetry follows: the span name
//! from `otel.name`, the kind from `otel.kind`, the status from
//! `otel.status_code` (`ok`, `error`) and `otel.status_description`, an ERROR log
//! event marking its span failed; log events inside a span become span events
//! (the subscriber passes WARN and up), named by their message. The sampler and
//! the batching read the standard variables (`OTEL_TRACES_SAMPLER`,
//! `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*`).

use std::{
    borrow::Cow,
    cell::Cell,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{any_value, AnyValue, KeyValue},
    resource::v1::Resource,
    trace::v1::{span, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status},
};
use tracing::{
    field::{Field, Visit},
    span::{Attributes, Id, Record},
    Event, Level, Subscriber,
};
use tracing_subscriber::{
    layer::Context,
    registry::{LookupSpan, Registry},
    Layer,
};

use crate::push::unix_nanos;
use crate::settings::OtlpProtocol;
use crate::transport::{encode, spawn_exporter, Endpoint, PROTOBUF};
use crate::wire;

// ---------------------------------------------------------------------------
// Sampling

/// Which traces are recorded: `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sampler {
    /// A span with a parent follows its parent's decision (`parentbased_*`).
    parent_based: bool,
    /// The decision for a trace's root span (and, not parent-based, for every span).
    root: Root,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Root {
    On,
    Off,
    /// Sampled when the trace id's lower 63 bits fall under this bound (the
    /// SDKs' `TraceIdRatioBased`, so every process of a trace agrees).
    Ratio(u64),
}

impl Default for Sampler {
    /// `parentbased_always_on`, the specification's default.
    fn default() -> Sampler {
        Sampler {
            parent_based: true,
            root: Root::On,
        }
    }
}

impl Sampler {
    /// From the standard variables; `Err` names the variable that is wrong.
    pub(crate) fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Sampler, String> {
        let var = |name: &str| crate::otlp::env_value(env, name);
        let Some(name) = var("OTEL_TRACES_SAMPLER") else {
            return Ok(Sampler::default());
        };
        let ratio = || -> Result<Root, String> {
            let Some(text) = var("OTEL_TRACES_SAMPLER_ARG") else {
                return Ok(Root::On);
            };
            match text.parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio_root(ratio)),
                _ => Err(format!(
                    "OTEL_TRACES_SAMPLER_ARG: `{text}` is not a sampling ratio between 0 and 1"
                )),
            }
        };
        let (parent_based, root) = match name.to_ascii_lowercase().as_str() {
            "always_on" => (false, Root::On),
            "always_off" => (false, Root::Off),
            "traceidratio" => (false, ratio()?),
            "parentbased_always_on" => (true, Root::On),
            "parentbased_always_off" => (true, Root::Off),
            "parentbased_traceidratio" => (true, ratio()?),
            _ => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER: `{name}` is not a sampler deploy-gate has \
                     (always_on, always_off, traceidratio, parentbased_always_on, \
                     parentbased_always_off, parentbased_traceidratio)"
                ))
            }
        };
        Ok(Sampler { parent_based, root })
    }

    /// Whether a span of `trace_id` is recorded, given its parent's decision.
    fn sample(self, trace_id: TraceId, parent_sampled: Option<bool>) -> bool {
        if let (true, Some(parent)) = (self.parent_based, parent_sampled) {
            return parent;
        }
        match self.root {
            Root::On => true,
            Root::Off => false,
            Root::Ratio(bound) => {
                let bytes = trace_id.to_bytes();
                let mut low = [0u8; 8];
                low.copy_from_slice(&bytes[8..]);
                (u64::from_be_bytes(low) >> 1) < bound
            }
        }
    }
}

fn ratio_root(ratio: f64) -> Root {
    // 2^63 scaled by the ratio: exact enough for a sampling probability.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    Root::Ratio(bound)
}

// ---------------------------------------------------------------------------
// Ids

thread_local! {
    static RANDOM: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is keyed from the OS once per thread, then varied per call.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(unix_nanos(SystemTime::now()));
    hasher.finish()
}

/// SplitMix64 over a per-thread state: ids need to be unique, not secret.
fn random_u64() -> u64 {
    RANDOM.with(|state| {
        let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

fn new_span_id() -> SpanId {
    loop {
        let id = random_u64();
        if id != 0 {
            return SpanId::from(id);
        }
    }
}

fn new_trace_id() -> TraceId {
    loop {
        let id = (u128::from(random_u64()) << 64) | u128::from(random_u64());
        if id != 0 {
            return TraceId::from(id);
        }
    }
}

// ---------------------------------------------------------------------------
// The record of one span

/// An attribute's value as recorded.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl Value {
    fn to_proto(&self) -> AnyValue {
        AnyValue {
            value: Some(match self {
                Value::Str(text) => any_value::Value::StringValue(text.clone()),
                Value::Int(n) => any_value::Value::IntValue(*n),
                Value::Double(x) => any_value::Value::DoubleValue(*x),
                Value::Bool(b) => any_value::Value::BoolValue(*b),
            }),
        }
    }

    /// The fields of its OTLP `AnyValue`.
    fn write(&self, buf: &mut Vec<u8>) {
        match self {
            Value::Str(text) => wire::oneof_string(buf, 1, text),
            Value::Bool(b) => wire::oneof_bool(buf, 2, *b),
            Value::Int(n) => wire::oneof_int64(buf, 3, *n),
            Value::Double(x) => wire::oneof_double(buf, 4, *x),
        }
    }
}

type Attribute = (&'static str, Value);

fn to_key_values(attributes: &[Attribute]) -> Vec<KeyValue> {
    attributes
        .iter()
        .map(|(key, value)| KeyValue {
            key: (*key).to_string(),
            value: Some(value.to_proto()),
        })
        .collect()
}

/// `attributes` as the repeated `KeyValue` field `field`.
fn write_key_values(buf: &mut Vec<u8>, field: u32, attributes: &[Attribute]) {
    for (key, value) in attributes {
        wire::message(buf, field, |buf| {
            wire::string(buf, 1, key);
            wire::message(buf, 2, |buf| value.write(buf));
        });
    }
}

#[derive(Debug)]
struct SpanEvent {
    time: u64,
    name: Cow<'static, str>,
    attributes: Vec<Attribute>,
}

/// The trace context a span carries to its children and other processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanContext {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) sampled: bool,
}

/// What the layer keeps of a span, in its extensions, from start to end.
#[derive(Debug)]
pub(crate) struct SpanRecord {
    context: SpanContext,
    /// `SpanId::INVALID` for a trace's root.
    parent_span_id: SpanId,
    remote_parent: bool,
    sampler: Sampler,
    name: Cow<'static, str>,
    kind: span::SpanKind,
    start: u64,
    attributes: Vec<Attribute>,
    events: Vec<SpanEvent>,
    status: Option<(StatusCode, String)>,
}

impl SpanRecord {
    fn new(name: &'static str, parent: Option<SpanContext>, sampler: Sampler) -> SpanRecord {
        let (trace_id, parent_span_id) = match parent {
            Some(parent) => (parent.trace_id, parent.span_id),
            None => (new_trace_id(), SpanId::INVALID),
        };
        SpanRecord {
            context: SpanContext {
                trace_id,
                span_id: new_span_id(),
                sampled: sampler.sample(trace_id, parent.map(|p| p.sampled)),
            },
            parent_span_id,
            remote_parent: false,
            sampler,
            name: Cow::Borrowed(name),
            kind: span::SpanKind::Internal,
            start: unix_nanos(SystemTime::now()),
            attributes: Vec::new(),
            events: Vec::new(),
            status: None,
        }
    }

    pub(crate) fn context(&self) -> SpanContext {
        self.context
    }

    /// Makes this span the child of a span of another process.
    pub(crate) fn continue_remote(&mut self, remote: SpanContext) {
        self.context.trace_id = remote.trace_id;
        self.context.sampled = self.sampler.sample(remote.trace_id, Some(remote.sampled));
        self.parent_span_id = remote.span_id;
        self.remote_parent = true;
    }

    fn set(&mut self, key: &'static str, value: Value) {
        match key {
            "otel.name" => {
                if let Value::Str(name) = value {
                    self.name = Cow::Owned(name);
                }
            }
            "otel.kind" => {
                if let Value::Str(kind) = value {
                    self.kind = parse_kind(&kind).unwrap_or(self.kind);
                }
            }
            "otel.status_code" => {
                if let Value::Str(code) = value {
                    let message = self.status.take().map(|(_, m)| m).unwrap_or_default();
                    self.status = parse_status(&code).map(|code| (code, message));
                }
            }
            "otel.status_description" | "otel.status_message" => {
                if let Value::Str(message) = value {
                    let code = self.status.as_ref().map_or(StatusCode::Error, |(c, _)| *c);
                    self.status = Some((code, message));
                }
            }
            _ => match self.attributes.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => self.attributes.push((key, value)),
            },
        }
    }

    fn flags(&self) -> u32 {
        u32::from(self.context.sampled)
            | SPAN_FLAGS_HAS_IS_REMOTE
            | if self.remote_parent {
                SPAN_FLAGS_IS_REMOTE
            } else {
                0
            }
    }

    /// The OTLP message of this span, ended at `end`: for OTLP/JSON, and the
    /// reference [`Ended::write`] is tested against.
    fn to_proto(&self, end: u64) -> Span {
        Span {
            trace_id: self.context.trace_id.to_bytes().to_vec(),
            span_id: self.context.span_id.to_bytes().to_vec(),
            parent_span_id: if self.parent_span_id == SpanId::INVALID {
                Vec::new()
            } else {
                self.parent_span_id.to_bytes().to_vec()
            },
            flags: self.flags(),
            name: self.name.to_string(),
            kind: self.kind as i32,
            start_time_unix_nano: self.start,
            end_time_unix_nano: end,
            attributes: to_key_values(&self.attributes),
            events: self
                .events
                .iter()
                .map(|event| span::Event {
                    time_unix_nano: event.time,
                    name: event.name.to_string(),
                    attributes: to_key_values(&event.attributes),
                    dropped_attributes_count: 0,
                })
                .collect(),
            status: self.status.as_ref().map(|(code, message)| Status {
                message: message.clone(),
                code: *code as i32,
            }),
            ..Span::default()
        }
    }
}

/// OTLP `SpanFlags`: the parent's remoteness is known, and it is remote.
const SPAN_FLAGS_HAS_IS_REMOTE: u32 = 0x100;
const SPAN_FLAGS_IS_REMOTE: u32 = 0x200;

fn parse_kind(text: &str) -> Option<span::SpanKind> {
    let kind = match text.to_ascii_lowercase().as_str() {
        "server" => span::SpanKind::Server,
        "client" => span::SpanKind::Client,
        "producer" => span::SpanKind::Producer,
        "consumer" => span::SpanKind::Consumer,
        "internal" => span::SpanKind::Internal,
        _ => return None,
    };
    Some(kind)
}

fn parse_status(text: &str) -> Option<StatusCode> {
    if text.eq_ignore_ascii_case("ok") {
        Some(StatusCode::Ok)
    } else if text.eq_ignore_ascii_case("error") {
        Some(StatusCode::Error)
    } else {
        None
    }
}

/// Reads a span's or an event's fields as OTLP values, handing each to `.0`.
struct Fields<F: FnMut(&'static str, Value)>(F);

impl<F: FnMut(&'static str, Value)> Visit for Fields<F> {
    fn record_str(&mut self, field: &Field, value: &str) {
        (self.0)(field.name(), Value::Str(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        (self.0)(field.name(), Value::Str(format!("{value:?}")));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        (self.0)(field.name(), Value::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        (self.0)(field.name(), unsigned(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        (self.0)(field.name(), Value::Double(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        (self.0)(field.name(), Value::Bool(value));
    }
}

/// OTLP has signed integers only: larger ones travel as text.
fn unsigned(value: u64) -> Value {
    i64::try_from(value).map_or_else(|_| Value::Str(value.to_string()), Value::Int)
}

/// Runs `f` on the record of `span`, when the layer keeps one (spans are
/// exported and this one is not filtered out).
pub(crate) fn with_record<R>(
    span: &tracing::Span,
    f: impl FnOnce(&mut SpanRecord) -> R,
) -> Option<R> {
    let mut f = Some(f);
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let span = registry.span(id)?;
        let mut extensions = span.extensions_mut();
        let record = extensions.get_mut::<SpanRecord>()?;
        f.take().map(|f| f(record))
    })
    .flatten()
}

// ---------------------------------------------------------------------------
// The layer

/// Turns the spans it sees into records, and queues the ended ones for export.
pub(crate) struct SpanLayer {
    queue: Arc<Queue>,
    sampler: Sampler,
}

impl<S> Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let parent = span.parent().and_then(|parent| {
            parent
                .extensions()
                .get::<SpanRecord>()
                .map(SpanRecord::context)
        });
        let mut record = SpanRecord::new(attrs.metadata().name(), parent, self.sampler);
        // Room for every field, recorded now or later: the vector never grows.
        record
            .attributes
            .reserve_exact(attrs.metadata().fields().len());
        // Into the attributes, or the name, kind and status (`otel.*`).
        attrs.record(&mut Fields(|key, value| record.set(key, value)));
        span.extensions_mut().insert(record);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(record) = span.extensions_mut().get_mut::<SpanRecord>() {
                values.record(&mut Fields(|key, value| record.set(key, value)));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = event.parent().and_then(|id| ctx.span(id)).or_else(|| {
            event
                .is_contextual()
                .then(|| ctx.lookup_current())
                .flatten()
        }) else {
            return;
        };
        let meta = event.metadata();
        let mut attributes = vec![("level", Value::Str(meta.level().as_str().to_string()))];
        // The message names the span event; the other fields are its attributes.
        let mut message = None;
        event.record(&mut Fields(|key, value| match (key, value) {
            ("message", Value::Str(text)) => message = Some(text),
            (key, value) => attributes.push((key, value)),
        }));
        let name = message.map_or(Cow::Borrowed(meta.name()), Cow::Owned);
        let mut extensions = span.extensions_mut();
        let Some(record) = extensions.get_mut::<SpanRecord>() else {
            return;
        };
        if *meta.level() == Level::ERROR && record.status.is_none() {
            record.status = Some((StatusCode::Error, String::new()));
        }
        record.events.push(SpanEvent {
            time: unix_nanos(SystemTime::now()),
            name,
            attributes,
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(record) = span.extensions_mut().remove::<SpanRecord>() else {
            return;
        };
        if record.context.sampled {
            self.queue.push(Ended {
                record,
                end: unix_nanos(SystemTime::now()),
            });
        }
    }
}

// ---------------------------------------------------------------------------
// Batching and export

/// Batching: the `OTEL_BSP_*` variables, with the specification's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Batching {
    /// Most time a span waits before its batch is sent (`OTEL_BSP_SCHEDULE_DELAY`).
    pub(crate) delay: Duration,
    /// Spans held at most; past it new ones are dropped and counted
    /// (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub(crate) max_queue: usize,
    /// Spans per export request (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub(crate) max_batch: usize,
}

impl Default for Batching {
    fn default() -> Batching {
        Batching {
            delay: Duration::from_millis(5_000),
            max_queue: 2_048,
            max_batch: 512,
        }
    }
}

impl Batching {
    /// From the standard variables; `Err` names the variable that is wrong.
    pub(crate) fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Batching, String> {
        let defaults = Batching::default();
        let delay = crate::otlp::env_millis(env, "OTEL_BSP_SCHEDULE_DELAY", defaults.delay)?;
        let count = |name: &str, default: usize| -> Result<usize, String> {
            match crate::otlp::env_value(env, name) {
                None => Ok(default),
                Some(text) => match text.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!("{name}: `{text}` is not a positive whole number")),
                },
            }
        };
        let max_queue = count("OTEL_BSP_MAX_QUEUE_SIZE", defaults.max_queue)?;
        // A batch larger than the queue could never fill.
        let max_batch = count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", defaults.max_batch)?.min(max_queue);
        Ok(Batching {
            delay,
            max_queue,
            max_batch,
        })
    }
}

/// A span that ended, waiting for export.
#[derive(Debug)]
struct Ended {
    record: SpanRecord,
    end: u64,
}

impl Ended {
    /// The fields of its OTLP `Span` message, in the order prost writes them:
    /// by tag, so `flags` (16) comes last.
    fn write(&self, buf: &mut Vec<u8>) {
        let record = &self.record;
        wire::bytes(buf, 1, &record.context.trace_id.to_bytes());
        wire::bytes(buf, 2, &record.context.span_id.to_bytes());
        if record.parent_span_id != SpanId::INVALID {
            wire::bytes(buf, 4, &record.parent_span_id.to_bytes());
        }
        wire::string(buf, 5, &record.name);
        wire::uint(buf, 6, record.kind as u32);
        wire::fixed64(buf, 7, record.start);
        wire::fixed64(buf, 8, self.end);
        write_key_values(buf, 9, &record.attributes);
        for event in &record.events {
            wire::message(buf, 11, |buf| {
                wire::fixed64(buf, 1, event.time);
                wire::string(buf, 2, &event.name);
                write_key_values(buf, 3, &event.attributes);
            });
        }
        if let Some((code, message)) = &record.status {
            wire::message(buf, 15, |buf| {
                wire::string(buf, 2, message);
                wire::uint(buf, 3, *code as u32);
            });
        }
        wire::fixed32(buf, 16, record.flags());
    }
}

/// One OTLP/HTTP protobuf body: an `ExportTraceServiceRequest` of `spans`, with
/// the encoded `Resource` and `InstrumentationScope` messages given.
fn protobuf_request(resource: &[u8], scope: &[u8], spans: &[Ended]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(resource.len() + scope.len() + 512 * spans.len());
    wire::message(&mut buf, 1, |buf| {
        wire::message(buf, 1, |buf| buf.extend_from_slice(resource));
        wire::message(buf, 2, |buf| {
            wire::message(buf, 1, |buf| buf.extend_from_slice(scope));
            for span in spans {
                wire::message(buf, 2, |buf| span.write(buf));
            }
        });
    });
    buf
}

#[derive(Debug)]
struct Pending {
    spans: Vec<Ended>,
    dropped: u64,
    stopping: bool,
}

/// Ended spans between the layer and the export thread.
#[derive(Debug)]
struct Queue {
    pending: Mutex<Pending>,
    /// Signalled when a batch is full or the exporter is stopping.
    ready: Condvar,
    batching: Batching,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, span: Ended) {
        let mut pending = self.lock();
        if pending.stopping {
            return;
        }
        if pending.spans.len() >= self.batching.max_queue {
            pending.dropped += 1;
            return;
        }
        pending.spans.push(span);
        if pending.spans.len() == self.batching.max_batch {
            self.ready.notify_one();
        }
    }

    /// Waits for a full batch, the delay or the stop; takes what is queued.
    fn next(&self) -> (Vec<Ended>, u64, bool) {
        let deadline = Instant::now() + self.batching.delay;
        let mut pending = self.lock();
        while !pending.stopping && pending.spans.len() < self.batching.max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            pending = self
                .ready
                .wait_timeout(pending, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let capacity = self.batching.max_batch;
        let spans = std::mem::replace(&mut pending.spans, Vec::with_capacity(capacity));
        (
            spans,
            std::mem::take(&mut pending.dropped),
            pending.stopping,
        )
    }
}

/// The export thread and the layer that feeds it.
#[derive(Debug)]
pub(crate) struct SpanExporter {
    queue: Arc<Queue>,
    thread: Option<JoinHandle<()>>,
}

impl SpanExporter {
    /// Starts the export thread; [`SpanExporter::layer`] feeds it.
    pub(crate) fn start(
        endpoint: Endpoint,
        resource: Resource,
        batching: Batching,
    ) -> Result<SpanExporter, String> {
        let queue = Arc::new(Queue {
            pending: Mutex::new(Pending {
                spans: Vec::with_capacity(batching.max_batch),
                dropped: 0,
                stopping: false,
            }),
            ready: Condvar::new(),
            batching,
        });
        let exported = Arc::clone(&queue);
        let protocol = endpoint.protocol;
        // Both the same in every request: encoded once.
        let resource_bytes = prost::Message::encode_to_vec(&resource);
        let scope_bytes = prost::Message::encode_to_vec(&crate::push::scope());
        let thread = spawn_exporter(endpoint, "OTLP spans", "the batch is dropped", move || {
            let (spans, dropped, last) = exported.next();
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    max_queue = batching.max_queue,
                    "spans dropped: the export queue was full (OTEL_BSP_MAX_QUEUE_SIZE)"
                );
            }
            let bodies = spans
                .chunks(batching.max_batch)
                .map(|batch| match protocol {
                    OtlpProtocol::HttpProtobuf => Ok((
                        PROTOBUF,
                        protobuf_request(&resource_bytes, &scope_bytes, batch),
                    )),
                    OtlpProtocol::HttpJson => {
                        encode(protocol, &export_request(&resource, proto_spans(batch)))
                    }
                })
                .collect();
            (bodies, last)
        })?;
        Ok(SpanExporter {
            queue,
            thread: Some(thread),
        })
    }

    /// The `tracing` layer that records spans for this exporter.
    pub(crate) fn layer(&self, sampler: Sampler) -> SpanLayer {
        SpanLayer {
            queue: Arc::clone(&self.queue),
            sampler,
        }
    }

    /// Exports what is queued and stops; spans that end later are not exported.
    pub(crate) fn shutdown(&mut self) {
        self.queue.lock().stopping = true;
        self.queue.ready.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SpanExporter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn proto_spans(batch: &[Ended]) -> Vec<Span> {
    batch
        .iter()
        .map(|ended| ended.record.to_proto(ended.end))
        .collect()
}

fn export_request(resource: &Resource, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(crate::push::scope()),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sampler(vars: &[(&str, &str)]) -> Result<Sampler, String> {
        Sampler::from_env(&|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_string())
        })
    }

    #[test]
    fn samplers_follow_the_standard_variables() {
        let trace = TraceId::from(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef_u128);
        let default = sampler(&[]).unwrap();
        assert!(default.sample(trace, None));
        assert!(
            !default.sample(trace, Some(false)),
            "parent-based by default"
        );

        let off = sampler(&[("OTEL_TRACES_SAMPLER", "always_off")]).unwrap();
        assert!(!off.sample(trace, Some(true)));
        let on = sampler(&[("OTEL_TRACES_SAMPLER", "always_on")]).unwrap();
        assert!(on.sample(trace, Some(false)));

        // A ratio keeps about that share of traces, the same ones in every process.
        let half = sampler(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap();
        let kept = (0..4_000)
            .filter(|_| half.sample(new_trace_id(), None))
            .count();
        assert!((800..1_200).contains(&kept), "{kept} of 4000 kept at 0.25");
        assert!(half.sample(trace, Some(true)), "a sampled parent wins");
        let none = sampler(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ])
        .unwrap();
        assert!(!none.sample(trace, Some(true)));

        let err = sampler(&[("OTEL_TRACES_SAMPLER", "jaeger_remote")]).unwrap_err();
        assert!(
            err.starts_with("OTEL_TRACES_SAMPLER: `jaeger_remote`"),
            "{err}"
        );
        let err = sampler(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ])
        .unwrap_err();
        assert!(err.starts_with("OTEL_TRACES_SAMPLER_ARG: `1.5`"), "{err}");
    }

    #[test]
    fn batching_reads_the_bsp_variables_and_names_a_bad_one() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_string())
            }
        };
        assert_eq!(Batching::from_env(&env(&[])).unwrap(), Batching::default());
        let batching = Batching::from_env(&env(&[
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512"),
        ]))
        .unwrap();
        assert_eq!(batching.delay, Duration::from_millis(250));
        assert_eq!((batching.max_queue, batching.max_batch), (100, 100));
        let err = Batching::from_env(&env(&[("OTEL_BSP_MAX_QUEUE_SIZE", "lots")])).unwrap_err();
        assert!(err.starts_with("OTEL_BSP_MAX_QUEUE_SIZE: `lots`"), "{err}");
    }

    #[test]
    fn records_convert_to_otlp_spans_with_the_otel_fields_applied() {
        let parent = SpanContext {
            trace_id: TraceId::from(7_u128),
            span_id: SpanId::from(9_u64),
            sampled: true,
        };
        let mut record = SpanRecord::new("model call", Some(parent), Sampler::default());
        record.set("otel.name", Value::Str("chat claude".into()));
        record.set("otel.kind", Value::Str("client".into()));
        record.set("gen_ai.usage.input_tokens", Value::Int(10));
        record.set("gen_ai.usage.input_tokens", Value::Int(12));
        record.set("otel.status_code", Value::Str("ERROR".into()));
        record.set("big", unsigned(u64::MAX));
        let start = record.start;
        let span = record.to_proto(start + 5);
        assert_eq!(span.name, "chat claude");
        assert_eq!(span.kind, span::SpanKind::Client as i32);
        assert_eq!(span.trace_id, TraceId::from(7_u128).to_bytes().to_vec());
        assert_eq!(span.parent_span_id, SpanId::from(9_u64).to_bytes().to_vec());
        assert_eq!(span.end_time_unix_nano - span.start_time_unix_nano, 5);
        assert_eq!(span.status.unwrap().code, StatusCode::Error as i32);
        let tokens: Vec<_> = span
            .attributes
            .iter()
            .filter(|kv| kv.key == "gen_ai.usage.input_tokens")
            .collect();
        assert_eq!(tokens.len(), 1, "a field recorded twice is one attribute");
        assert_eq!(
            tokens[0].value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(12))
        );
        let big = span.attributes.iter().find(|kv| kv.key == "big").unwrap();
        assert_eq!(
            big.value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue(u64::MAX.to_string()))
        );
        assert_eq!(span.flags & 0x1, 1, "sampled");
    }

    #[test]
    fn protobuf_bodies_are_the_bytes_prost_writes_for_the_same_spans() {
        use prost::Message as _;

        let root = SpanRecord::new("enqueue", None, Sampler::default());
        let mut child = SpanRecord::new("process", Some(root.context()), Sampler::default());
        child.continue_remote(SpanContext {
            trace_id: TraceId::from(u128::MAX - 3),
            span_id: SpanId::from(1_u64 << 63),
            sampled: true,
        });
        child.set("otel.kind", Value::Str("consumer".into()));
        child.set("event_id", Value::Str("e-1".into()));
        child.set("empty", Value::Str(String::new()));
        child.set("risk_score", Value::Int(0));
        child.set("delta", Value::Int(-42));
        child.set("ratio", Value::Double(0.25));
        child.set("agreed", Value::Bool(false));
        child.set("cached", Value::Bool(true));
        child.set("long", Value::Str("x".repeat(300)));
        child.set(
            "otel.status_description",
            Value::Str("model refused".into()),
        );
        child.events.push(SpanEvent {
            time: 1_700_000_000_000_000_001,
            name: Cow::Borrowed("retrying"),
            attributes: vec![("level", Value::Str("WARN".into()))],
        });
        child.events.push(SpanEvent {
            time: 0,
            name: Cow::Owned(String::new()),
            attributes: Vec::new(),
        });
        let mut ok = SpanRecord::new("publish", Some(child.context()), Sampler::default());
        ok.set("otel.status_code", Value::Str("ok".into()));
        ok.set("otel.name", Value::Str("gate.results publish".into()));
        let spans: Vec<Ended> = [root, child, ok]
            .into_iter()
            .enumerate()
            .map(|(i, record)| Ended {
                end: record.start + 1_000 * (i as u64 + 1),
                record,
            })
            .collect();

        let resource = Resource {
            attributes: vec![crate::push::string_attribute("service.name", "worker")],
            ..Resource::default()
        };
        let expected = export_request(&resource, proto_spans(&spans)).encode_to_vec();
        let written = protobuf_request(
            &resource.encode_to_vec(),
            &crate::push::scope().encode_to_vec(),
            &spans,
        );
        assert_eq!(written, expected);
        let decoded = ExportTraceServiceRequest::decode(written.as_slice()).unwrap();
        let spans = &decoded.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 3);
        assert_eq!(spans[1].flags & SPAN_FLAGS_IS_REMOTE, SPAN_FLAGS_IS_REMOTE);
        assert_eq!(spans[1].events.len(), 2);
        assert_eq!(spans[1].status.as_ref().unwrap().message, "model refused");

        // A request of many spans: the outer lengths take several bytes.
        let many: Vec<Ended> = (0..600)
            .map(|i| Ended {
                record: SpanRecord::new("s", None, Sampler::default()),
                end: i,
            })
            .collect();
        let written = protobuf_request(
            &resource.encode_to_vec(),
            &crate::push::scope().encode_to_vec(),
            &many,
        );
        assert!(written.len() > 1 << 14, "{} bytes", written.len());
        assert_eq!(
            written,
            export_request(&resource, proto_spans(&many)).encode_to_vec()
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_growing() {
        let queue = Queue {
            pending: Mutex::new(Pending {
                spans: Vec::new(),
                dropped: 0,
                stopping: false,
            }),
            ready: Condvar::new(),
            batching: Batching {
                delay: Duration::from_millis(1),
                max_queue: 3,
                max_batch: 2,
            },
        };
        for _ in 0..5 {
            queue.push(Ended {
                record: SpanRecord::new("s", None, Sampler::default()),
                end: 0,
            });
        }
        let (spans, dropped, last) = queue.next();
        assert_eq!((spans.len(), dropped, last), (3, 2, false));
        queue.lock().stopping = true;
        queue.push(Ended {
            record: SpanRecord::new("late", None, Sampler::default()),
            end: 0,
        });
        let (spans, _, last) = queue.next();
        assert!(spans.is_empty(), "nothing is queued once stopping");
        assert!(last);
    }
}
