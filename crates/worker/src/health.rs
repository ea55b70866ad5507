//! `/healthz`, `/readyz` and `/metrics` (the telemetry registry): liveness says the process runs; readiness says the
//! worker is connected to the broker and consuming, and otherwise why not, so an
//! operator reading a failed probe knows where to look.

use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::Full;
use hyper::{
    body::{Bytes, Incoming},
    header::CONTENT_TYPE,
    Method, Request, Response, StatusCode,
};
use tokio::{net::TcpListener, sync::watch};

use crate::process::raised;

/// What the worker is doing, as far as readiness goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Not yet connected.
    Starting,
    /// Connecting to the broker; `last_error` says why the previous attempt failed.
    Connecting {
        attempt: u32,
        last_error: Option<String>,
    },
    /// Connected and consuming `queue`: the only ready state.
    Consuming { queue: String },
    /// Stopped consuming for a graceful shutdown.
    ShuttingDown,
}

impl Readiness {
    fn describe(&self) -> (bool, String) {
        match self {
            Readiness::Starting => (false, "not ready: starting".to_string()),
            Readiness::Connecting {
                attempt,
                last_error,
            } => {
                let why = last_error
                    .as_deref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default();
                (
                    false,
                    format!("not ready: connecting to the broker (attempt {attempt}){why}"),
                )
            }
            Readiness::Consuming { queue } => (true, format!("ready: consuming {queue}")),
            Readiness::ShuttingDown => (
                false,
                "not ready: shutting down, finishing in-flight events".to_string(),
            ),
        }
    }
}

/// The readiness state shared between the worker loop and the health server.
#[derive(Debug)]
pub(crate) struct Health {
    state: Mutex<Readiness>,
}

impl Health {
    pub(crate) fn new() -> Health {
        Health {
            state: Mutex::new(Readiness::Starting),
        }
    }

    pub(crate) fn set(&self, readiness: Readiness) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = readiness;
    }

    fn describe(&self) -> (bool, String) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .describe()
    }

    fn respond(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let (status, body) = match (request.method(), request.uri().path()) {
            (&Method::GET, "/healthz") => (StatusCode::OK, "ok: the worker is running".to_string()),
            (&Method::GET, "/readyz") => match self.describe() {
                (true, text) => (StatusCode::OK, text),
                (false, text) => (StatusCode::SERVICE_UNAVAILABLE, text),
            },
            (method, "/metrics") => return gate_telemetry::metrics_response(method, "/metrics"),
            (_, "/healthz" | "/readyz") => (
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET is served".to_string(),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                "not found: try /healthz, /readyz or /metrics".to_string(),
            ),
        };
        let mut response = Response::new(Full::new(Bytes::from(body + "\n")));
        *response.status_mut() = status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

/// Serves the probes on `listener` until `stop` turns true; open connections are
/// closed gracefully then.
pub(crate) async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            () = raised(&mut stop) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %error, "health endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let health = Arc::clone(&health);
        let mut stop = stop.clone();
        // Header read timeout, connection lifetime and body limit: the
        // telemetry crate's limits, shared by every small listener.
        tokio::spawn(gate_telemetry::serve_http_connection(
            stream,
            gate_telemetry::HttpLimits::default(),
            move |request: &Request<Incoming>| health.respond(request),
            async move { raised(&mut stop).await },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_consuming_is_ready_and_every_other_state_says_why_not() {
        let consuming = Readiness::Consuming {
            queue: "gate.merge-events".into(),
        };
        assert!(consuming.describe().0);
        let connecting = Readiness::Connecting {
            attempt: 3,
            last_error: Some("connection refused".into()),
        };
        let (ready, text) = connecting.describe();
        assert!(!ready);
        assert!(text.contains("attempt 3") && text.contains("connection refused"));
        assert!(!Readiness::ShuttingDown.describe().0);
        assert!(!Readiness::Starting.describe().0);
    }
}
