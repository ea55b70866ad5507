//! What every long-running role shares in the binary: the async runtime, logging
//! and the metrics endpoint (both from `gate-telemetry`), and the shutdown signal.

use std::{future::Future, time::Duration};

use crate::exit::CliError;

/// How long the runtime's threads get to stop once `future` is done, before
/// the command goes on without them (see [`block_on`]).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs `future` on a multi-threaded runtime.
///
/// Once `future` is done, the runtime's threads get [`SHUTDOWN_GRACE`] to stop
/// and the command goes on without those that do not: a thread stuck in a
/// library (lapin can deadlock two of its locks while a connection closes with
/// a delivery in flight) must not keep `wait` from printing the decision it
/// has, or a drained worker from exiting. Everything that matters is awaited
/// inside `future`; what is left is background tasks, dropped either way.
pub fn block_on<F: Future>(future: F) -> Result<F::Output, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::no_decision(format!("cannot start the async runtime: {err}")))?;
    let output = runtime.block_on(future);
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    Ok(output)
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A task stuck for good on one of the runtime's threads (as in lapin's
    /// close-path deadlock) does not keep `block_on` from returning the result.
    #[test]
    fn block_on_returns_when_a_task_never_gives_its_thread_back() {
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let output = block_on(async {
                let (started, running) = tokio::sync::oneshot::channel();
                tokio::spawn(async move {
                    let _ = started.send(());
                    loop {
                        std::thread::park();
                    }
                });
                let _ = running.await;
                42
            });
            let _ = done.send(output.ok());
        });
        let output = finished
            .recv_timeout(SHUTDOWN_GRACE * 6)
            .expect("block_on returned while a task held its thread");
        assert_eq!(output, Some(42));
    }
}
