//! The tracing subscriber every binary installs.

/// Logs to stderr: human-readable by default, JSON lines with `json`. The level
/// comes from `DEPLOY_GATE_LOG` (e.g. `info`, `debug`, `gate_worker=debug`),
/// default `info`. A second call (tests, embedding) warns and changes nothing.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DEPLOY_GATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    let installed = if json {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    if let Err(err) = installed {
        eprintln!("deploy-gate: warning: logging is not set up: {err}");
    }
}
