//! `/metrics` over HTTP/1 for Prometheus to scrape.

use std::{convert::Infallible, future::Future};

use http_body_util::Full;
use hyper::{
    body::{Bytes, Incoming},
    header::{HeaderValue, CONTENT_TYPE as CONTENT_TYPE_HEADER},
    server::conn::http1,
    service::service_fn,
    Method, Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The content type of the Prometheus text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `GET /metrics` (the registry, [`render`](crate::render)ed) on
/// `listener` until `shutdown` resolves. Scrapes are short: open connections are
/// dropped at shutdown.
pub async fn serve_metrics(listener: TcpListener, shutdown: impl Future<Output = ()>) {
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
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            let service = service_fn(|request: Request<Incoming>| async move {
                Ok::<_, Infallible>(respond(request.method(), request.uri().path()))
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    connections.shutdown().await;
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
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
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
            since_produced: Some(std::time::Duration::from_millis(300)),
        }
        .emit();
        ModelCallFinished {
            provider: "anthropic",
            model: "claude-test",
            error_type: None,
            duration: std::time::Duration::from_millis(700),
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
}
