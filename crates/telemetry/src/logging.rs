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
    // Log events reach the span layer from WARN up (what went wrong in this
    // merge); the INFO lines stay in the logs.
    let spans = spans.map(|layer| {
        // The level decides per callsite, once (debug and trace callsites of the
        // libraries stay off for good); the switch at each span.
        layer.with_filter(
            dynamic_filter_fn(|_, _| SPANS_EXPORTED.load(Ordering::Relaxed))
                .with_max_level_hint(LevelFilter::INFO)
                .with_callsite_filter(|meta| {
                    if exported_level(meta) {
                        Interest::sometimes()
                    } else {
                        Interest::never()
                    }
                }),
        )
    });
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

/// Spans from INFO up, log events from WARN up: what goes to OpenTelemetry.
fn exported_level(meta: &Metadata<'_>) -> bool {
    let floor = if meta.is_span() {
        Level::INFO
    } else {
        Level::WARN
    };
    *meta.level() <= floor
}
