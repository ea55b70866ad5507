//! The tracing subscriber every binary installs: log lines to stderr (off until
//! [`init_logging`]), and spans to OpenTelemetry when OTLP export is on.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use tracing::{subscriber::Interest, Level, Metadata};
use tracing_subscriber::{
    filter::{dynamic_filter_fn, filter_fn, FilterExt, LevelFilter},
    layer::SubscriberExt,
    util::SubscriberInitExt,
    EnvFilter, Layer,
};

use crate::spans::SpanLayer;

const LOGS_OFF: u8 = 0;
const LOGS_TEXT: u8 = 1;
const LOGS_JSON: u8 = 2;

/// Which log lines are written: one-shot commands (`check`, `enqueue`, `wait`)
/// keep stderr for their own messages and write none.
static LOG_MODE: AtomicU8 = AtomicU8::new(LOGS_OFF);
/// The process-wide subscriber is installed (by [`install`], once).
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// Spans are built for OpenTelemetry export: on while a [`Telemetry`] that
/// exports traces lives, off once it is shut down (no work for an exporter that is
/// gone) or while it is paused.
///
/// [`Telemetry`]: crate::Telemetry
static SPANS_EXPORTED: AtomicBool = AtomicBool::new(false);

/// Turns the building of spans for export on or off.
pub(crate) fn export_spans(on: bool) {
    SPANS_EXPORTED.store(on, Ordering::Relaxed);
}

/// Logs to stderr: human-readable by default, JSON lines with `json`. The level
/// comes from `DEPLOY_GATE_LOG` (e.g. `info`, `debug`, `gate_worker=debug`),
/// default `info`. A later call switches the format.
pub fn init_logging(json: bool) {
    LOG_MODE.store(if json { LOGS_JSON } else { LOGS_TEXT }, Ordering::Relaxed);
    install(None);
}

/// Installs the subscriber once per process: two log layers (text, JSON), of
/// which [`LOG_MODE`] enables at most one, and the span layer when `spans` is
/// given (spans at info level and above, whatever the log level). `false` when a
/// subscriber was installed already (by this function or by someone else).
///
/// Known cost: an INFO span is built in the registry even when every layer's
/// filter turns it down (logs off, export paused). tracing-subscriber 0.3's
/// `Registry::enabled` answers yes unless all 64 per-layer filter slots said
/// no, and these callsites are "sometimes" (the switches are read per span).
/// About 1 µs a span; left as is because workers log by default and their log
/// lines need those spans anyway, so it is no cost of OTLP export.
pub(crate) fn install(spans: Option<SpanLayer>) -> bool {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return false;
    }
    let env_filter =
        || EnvFilter::try_from_env("DEPLOY_GATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let when = |mode: u8| filter_fn(move |_| LOG_MODE.load(Ordering::Relaxed) == mode);
    let text = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(true)
        .with_ansi(false)
        .with_filter(env_filter().and(when(LOGS_TEXT)));
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(std::io::stderr)
        .with_target(true)
        .with_filter(env_filter().and(when(LOGS_JSON)));
    let spans = spans.map(|layer| layer.with_filter(span_filter()));
    let installed = tracing_subscriber::registry()
        .with(text)
        .with(json)
        .with(spans)
        .try_init();
    if let Err(err) = installed {
        eprintln!("deploy-gate: warning: logging is not set up: {err}");
        return false;
    }
    true
}

/// What reaches the span layer: spans from INFO up and log events from WARN up
/// (what went wrong in this merge; the INFO lines stay in the logs), while the
/// switch is on. The level decides per callsite, once, so debug and trace
/// callsites of the libraries stay off for good; the switch is read at each span.
///
/// `enabled` checks the level too: tracing-core asks it directly, skipping the
/// callsite's cached interest, when two threads race to register one callsite,
/// and a filter that then says yes to a TRACE event breaks its own level hint
/// (a debug assertion in tracing-subscriber, a stray record in release).
fn span_filter<S>() -> impl tracing_subscriber::layer::Filter<S> {
    dynamic_filter_fn(|meta, _| exported_level(meta) && SPANS_EXPORTED.load(Ordering::Relaxed))
        .with_max_level_hint(LevelFilter::INFO)
        .with_callsite_filter(|meta| {
            if exported_level(meta) {
                Interest::sometimes()
            } else {
                Interest::never()
            }
        })
}

/// Spans from INFO up, log events from WARN up: what goes to OpenTelemetry.
fn exported_level(meta: &Metadata<'_>) -> bool {
    let floor = if meta.is_span() {
        Level::INFO
    } else {
        Level::WARN
    };
    *meta.level() <= floor
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::{
        callsite::{Callsite, Identifier},
        field::FieldSet,
        metadata::Kind,
        span::Attributes,
        Event, Subscriber,
    };
    use tracing_subscriber::{layer::Context, registry::LookupSpan, Registry};

    use super::*;

    /// The layer behind the filter under test: it notes the level and kind of
    /// what reaches it.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<(Level, bool)>>>);
    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Sink {
        fn on_new_span(&self, attrs: &Attributes<'_>, _: &tracing::span::Id, _: Context<'_, S>) {
            let meta = attrs.metadata();
            self.0.lock().unwrap().push((*meta.level(), meta.is_span()));
        }
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let meta = event.metadata();
            self.0.lock().unwrap().push((*meta.level(), meta.is_span()));
        }
    }

    struct Site;
    impl Callsite for Site {
        fn set_interest(&self, _: Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!("the test's callsite only names its field set")
        }
    }
    static SITE: Site = Site;

    /// What a racing callsite registration does: the subscriber is asked
    /// `enabled` with no cached interest, then handed the span or event when it
    /// said yes. `true` when the sink got it.
    fn reaches(dispatch: &tracing::Dispatch, sink: &Sink, level: Level, kind: Kind) -> bool {
        let fields = FieldSet::new(&[], Identifier(&SITE));
        let meta: &'static Metadata<'static> = Box::leak(Box::new(Metadata::new(
            "test",
            "lapin::consumer",
            level,
            None,
            None,
            None,
            fields,
            kind,
        )));
        let values = meta.fields().value_set(&[]);
        sink.0.lock().unwrap().clear();
        if dispatch.enabled(meta) {
            if meta.is_span() {
                let id = dispatch.new_span(&Attributes::new_root(meta, &values));
                dispatch.try_close(id);
            } else {
                dispatch.event(&Event::new(meta, &values));
            }
        }
        let got = sink.0.lock().unwrap().clone();
        !got.is_empty()
    }

    /// Library debug and trace lines stay out of the span layer even when the
    /// subscriber is asked without a cached interest (they once tripped
    /// tracing-subscriber's level-hint assertion and killed a worker); spans from
    /// INFO and events from WARN go in while the switch is on.
    #[test]
    fn the_span_filter_keeps_its_levels_when_asked_without_a_cached_interest() {
        let sink = Sink::default();
        let dispatch = tracing::Dispatch::new(
            Registry::default().with(sink.clone().with_filter(span_filter())),
        );
        let reaches = |level, kind| reaches(&dispatch, &sink, level, kind);
        export_spans(true);
        assert!(!reaches(Level::TRACE, Kind::EVENT));
        assert!(!reaches(Level::DEBUG, Kind::EVENT));
        assert!(!reaches(Level::INFO, Kind::EVENT));
        assert!(!reaches(Level::DEBUG, Kind::SPAN));
        assert!(reaches(Level::WARN, Kind::EVENT));
        assert!(reaches(Level::INFO, Kind::SPAN));
        export_spans(false);
        assert!(
            !reaches(Level::INFO, Kind::SPAN),
            "the switch is read each time"
        );
        assert!(!reaches(Level::ERROR, Kind::EVENT));
    }
}
