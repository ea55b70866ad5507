//! `/metrics` over HTTP/1 for Prometheus to scrape, and the limits every small
//! HTTP listener of the fleet applies ([`HttpLimits`], [`serve_http_connection`]):
//! the metrics endpoint and the worker's health server.

use std::{convert::Infallible, future::Future, time::Duration};

use http_body_util::Full;
use hyper::{
    body::{Bytes, Incoming},
    header::{HeaderValue, CONTENT_TYPE as CONTENT_TYPE_HEADER},
    server::conn::http1,
    service::service_fn,
    Method, Request, Response, StatusCode,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

/// The content type of the Prometheus text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `GET /metrics` (the registry, [`render`](crate::render)ed) on
/// `listener` until `shutdown` resolves. Scrapes are short: open connections are
/// dropped at shutdown.
pub async fn serve_metrics(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    serve_metrics_with(listener, HttpLimits::default(), shutdown).await;
}

/// [`serve_metrics`] with other limits (tests use short timeouts).
pub async fn serve_metrics_with(
    listener: TcpListener,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.as_mut() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %error, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(serve_http_connection(
            stream,
            limits,
            |request: &Request<Incoming>| respond(request.method(), request.uri().path()),
            std::future::pending::<()>(),
        ));
    }
    connections.shutdown().await;
}

/// Limits of a small HTTP listener (probes, scrapes): what a client may send and
/// for how long it may hold a connection, so a slow or hostile client costs a
/// bounded amount of memory and no connection slot for long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time allowed for a request's headers once a connection is open or idle
    /// (a slow-loris client is disconnected after it).
    pub header_read_timeout: Duration,
    /// Longest life of one connection, requests included: it is closed after it.
    pub connection_timeout: Duration,
    /// Largest request body accepted (413 beyond). Probes and scrapes send none.
    pub max_body_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(30),
            max_body_bytes: 16 * 1024,
        }
    }
}

/// Serves one HTTP/1 connection with `respond` under `limits`: headers within
/// `header_read_timeout`, the whole connection within `connection_timeout`, a
/// declared or chunked body over `max_body_bytes` answered 413 (and the
/// connection closed, the body unread). When `stop` resolves the connection is
/// shut down gracefully (the request in flight is answered).
pub async fn serve_http_connection<F>(
    stream: TcpStream,
    limits: HttpLimits,
    respond: F,
    stop: impl Future<Output = ()>,
) where
    F: Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let max_body = limits.max_body_bytes;
    let service = service_fn(move |request: Request<Incoming>| {
        let response = match body_too_large(&request, max_body) {
            true => too_large(max_body),
            false => respond(&request),
        };
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut stop = std::pin::pin!(stop);
    let served = tokio::time::timeout(limits.connection_timeout, async {
        tokio::select! {
            _ = connection.as_mut() => {}
            () = stop.as_mut() => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.as_mut().await;
            }
        }
    })
    .await;
    if served.is_err() {
        tracing::debug!("http listener: connection closed after its time limit");
    }
}

/// Whether the request's body is, or says it will be, over `max`: a declared
/// length over it, or a body of unknown length (chunked) when nothing is allowed.
fn body_too_large(request: &Request<Incoming>, max: u64) -> bool {
    use hyper::body::Body as _;
    let hint = request.body().size_hint();
    match hint.exact() {
        Some(length) => length > max,
        None => {
            hint.lower() > max || max == 0 || request.headers().contains_key("transfer-encoding")
        }
    }
}

fn too_large(max: u64) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!(
        "request body over the limit of {max} bytes\n"
    ))));
    *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    response.headers_mut().insert(
        CONTENT_TYPE_HEADER,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The answer of the metrics endpoint to `method path`; other servers (the
/// worker's health server) answer `/metrics` with it too.
pub fn respond(method: &Method, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (method, path) {
        (&Method::GET, "/metrics") => (StatusCode::OK, CONTENT_TYPE, crate::render()),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET is served\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::events::{DecisionPublished, ModelCallFinished, Tokens};

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn metrics_are_served_in_the_text_format_with_their_labels() {
        DecisionPublished {
            recommendation: "hold",
            risk_score: 60,
            cached: false,
            since_produced: Some(Duration::from_millis(300)),
        }
        .emit();
        ModelCallFinished {
            provider: "anthropic",
            model: "claude-test",
            error_type: None,
            duration: Duration::from_millis(700),
            tokens: Tokens {
                input: 1200,
                output: 80,
                cache_read: 0,
                cache_write: 0,
            },
            cost_usd: Some(0.01),
        }
        .emit();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_metrics(listener, async {
            let _ = stopped.await;
        }));

        let response = get(addr, "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("content-type: text/plain; version=0.0.4"));
        for line in [
            "deploy_gate_decisions_total{cached=\"false\",recommendation=\"hold\"} 1",
            "deploy_gate_decision_risk_score_bucket{le=\"60\"} 1",
            "deploy_gate_decision_duration_seconds_count 1",
            "gen_ai_client_token_usage_sum{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"anthropic\",gen_ai_request_model=\"claude-test\",gen_ai_token_type=\"input\"} 1200",
            "deploy_gate_model_cost_usd_total{gen_ai_provider_name=\"anthropic\",gen_ai_request_model=\"claude-test\"} 0.01",
            "# TYPE gen_ai_client_operation_duration_seconds histogram",
            "deploy_gate_events_received_total 0",
        ] {
            assert!(response.contains(line), "missing `{line}` in\n{response}");
        }
        assert!(get(addr, "/other").await.starts_with("HTTP/1.1 404"));

        stop.send(()).unwrap();
        server.await.unwrap();
    }

    async fn limited_server(limits: HttpLimits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_metrics_with(
            listener,
            limits,
            std::future::pending::<()>(),
        ));
        addr
    }

    #[tokio::test]
    async fn an_oversized_body_is_answered_413() {
        let addr = limited_server(HttpLimits {
            max_body_bytes: 1024,
            ..HttpLimits::default()
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        let _ = stream.write_all(&[b'x'; 4096]).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");

        // Chunked, length unknown: refused too.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head =
            "POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 413"));
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_disconnected() {
        let addr = limited_server(HttpLimits {
            header_read_timeout: Duration::from_millis(200),
            ..HttpLimits::default()
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        // The server closes the connection (EOF or reset), without an answer worth
        // reading; the test only bounds how long it waits for that, generously.
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest))
            .await
            .expect("the server closed the slow connection");
        assert!(closed.is_err() || !String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn a_connection_is_closed_after_its_time_limit() {
        let addr = limited_server(HttpLimits {
            connection_timeout: Duration::from_millis(300),
            header_read_timeout: Duration::from_secs(60),
            ..HttpLimits::default()
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        // A trickle of header bytes that never ends.
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest))
            .await
            .expect("the server closed the connection");
        assert!(
            closed.is_err()
                || rest.is_empty()
                || !String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 200")
        );
    }
}
