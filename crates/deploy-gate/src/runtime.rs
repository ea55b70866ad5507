//! What every long-running role shares in the binary: the async runtime, logging,
//! and the shutdown signal.

use std::future::Future;

use crate::exit::CliError;

/// Runs `future` on a multi-threaded runtime.
pub fn block_on<F: Future>(future: F) -> Result<F::Output, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::no_decision(format!("cannot start the async runtime: {err}")))?;
    Ok(runtime.block_on(future))
}

/// Logs to stderr: human-readable by default, JSON lines with `json`. The level comes
/// from `DEPLOY_GATE_LOG` (e.g. `info`, `debug`, `gate_worker=debug`), default `info`.
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

/// Resolves on SIGTERM or SIGINT: the first phase of a graceful shutdown (stop
/// taking work). The roles drain in-flight work up to their deadline after it.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received: shutting down"),
                    _ = int.recv() => tracing::info!("SIGINT received: shutting down"),
                }
            }
            _ => {
                tracing::warn!("cannot listen for SIGTERM; only Ctrl-C stops this process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
