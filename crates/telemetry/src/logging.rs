//! The tracing subscriber every binary installs: log lines to stderr (off until
//! [`init_logging`]), and spans to OpenTelemetry when OTLP export is on.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use tracing_subscriber::{
    filter::{filter_fn, FilterExt, LevelFilter},
    layer::SubscriberExt,
    util::SubscriberInitExt,
    EnvFilter, Layer,
};

const LOGS_OFF: u8 = 0;
const LOGS_TEXT: u8 = 1;
const LOGS_JSON: u8 = 2;

/// Which log lines are written: one-shot commands (`check`, `enqueue`, `wait`)
/// keep stderr for their own messages and write none.
static LOG_MODE: AtomicU8 = AtomicU8::new(LOGS_OFF);
/// The process-wide subscriber is installed (by [`install`], once).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Logs to stderr: human-readable by default, JSON lines with `json`. The level
/// comes from `DEPLOY_GATE_LOG` (e.g. `info`, `debug`, `gate_worker=debug`),
/// default `info`. A later call switches the format.
pub fn init_logging(json: bool) {
    LOG_MODE.store(if json { LOGS_JSON } else { LOGS_TEXT }, Ordering::Relaxed);
    install(None);
}

/// Installs the subscriber once per process: two log layers (text, JSON), of
/// which [`LOG_MODE`] enables at most one, and the OpenTelemetry layer when
/// `tracer` is given (spans at info level and above, whatever the log level).
/// `false` when a subscriber was installed already (by this function or by
/// someone else).
pub(crate) fn install(tracer: Option<opentelemetry_sdk::trace::Tracer>) -> bool {
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
    let spans = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_threads(false)
            .with_filter(LevelFilter::INFO)
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
