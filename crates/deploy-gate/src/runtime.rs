//! What every long-running role shares in the binary: the async runtime, logging
//! and the metrics endpoint (both from `gate-telemetry`), and the shutdown signal.

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

/// Sets up logging (see [`gate_telemetry::init_logging`]).
pub fn init_logging(json: bool) {
    gate_telemetry::init_logging(json);
}

/// Runs `role` with the Prometheus `/metrics` endpoint beside it when
/// `telemetry.metrics_listen` is set; the endpoint stops when the role returns.
pub async fn with_metrics<T>(
    settings: &gate_telemetry::TelemetrySettings,
    role: impl Future<Output = T>,
) -> Result<T, CliError> {
    let Some(addr) = settings.metrics_listen else {
        return Ok(role.await);
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|err| {
        CliError::usage(format!(
            "cannot serve /metrics on {addr} (telemetry.metrics_listen): {err}"
        ))
    })?;
    tracing::info!(%addr, "serving Prometheus metrics on /metrics");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gate_telemetry::serve_metrics(listener, async {
        let _ = stopped.await;
    }));
    let output = role.await;
    let _ = stop.send(());
    let _ = server.await;
    Ok(output)
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
