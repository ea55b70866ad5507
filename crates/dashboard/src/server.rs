//! The HTTP side: one self-contained page (`/`), its live feed (`/events`,
//! Server-Sent Events), the same data as JSON (`/api/status`), `/healthz` and the
//! process's `/metrics`.
//!
//! Limits any listener needs: a bound on connections served at once, a deadline
//! for request headers, no request body accepted, GET and HEAD only. The page's
//! Content-Security-Policy allows exactly its own inline script and style (by
//! hash) and connections to its own origin, so text from a decision can never
//! run as code even if it were put into the page as HTML (it is not: the script
//! only sets `textContent`).

use std::{
    convert::Infallible,
    sync::{Arc, LazyLock},
    time::Duration,
};

use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::{
    body::{Bytes, Frame, Incoming},
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
    Method, Request, Response, StatusCode,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use tokio::{
    net::TcpListener,
    sync::{watch, Semaphore},
    task::JoinSet,
};

use crate::feed::{raised, Shared};

/// A response body: whole, or the live stream.
type Body = BoxBody<Bytes, Infallible>;

/// A live page gets a message at least this often, changed or not: the windowed
/// figures move with the clock, and proxies keep the connection open.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// After a change, wait this long for more before sending: a burst of decisions
/// (a replay) becomes one message.
const COALESCE: Duration = Duration::from_millis(200);
/// How long open connections get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(2);

const TEMPLATE: &str = include_str!("page/index.html");
const STYLE: &str = include_str!("page/style.css");
const SCRIPT: &str = include_str!("page/app.js");

/// The page with its style and script inlined, and the policy that allows
/// exactly them.
static PAGE: LazyLock<(String, String)> = LazyLock::new(|| {
    let html = TEMPLATE
        .replace("/*STYLE*/", STYLE)
        .replace("/*SCRIPT*/", SCRIPT);
    let policy = format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; img-src data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        csp_hash(SCRIPT),
        csp_hash(STYLE)
    );
    (html, policy)
});

/// What every connection shares.
pub(crate) struct App {
    pub(crate) shared: Arc<Shared>,
    pub(crate) stop: watch::Receiver<bool>,
}

/// Serves on `listener` until `stop` is raised: then stops accepting, ends the
/// live streams, and gives open connections [`DRAIN`] to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    max_connections: usize,
    header_timeout: Duration,
) {
    let mut stop = app.stop.clone();
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            biased;
            () = raised(&mut stop) => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            biased;
            () = raised(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(%error, "status page: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let app = Arc::clone(&app);
        let mut connection_stop = stop.clone();
        connections.spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(&app, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = raised(&mut connection_stop) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            n_connections = connections.len(),
            "status page: dropping connections at shutdown"
        );
        connections.shutdown().await;
    }
}

fn respond(app: &App, request: &Request<Incoming>) -> Response<Body> {
    let method = request.method();
    let path = request.uri().path();
    let readable = method == Method::GET || method == Method::HEAD;
    if carries_body(request) {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the status page accepts no request body\n",
        );
    }
    match path {
        "/metrics" => gate_telemetry::metrics_response(method, path).map(BodyExt::boxed),
        "/" | "/events" | "/api/status" | "/healthz" | "/favicon.ico" if !readable => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        "/" => page(),
        "/events" => events(app),
        "/api/status" => json(&app.shared.snapshot()),
        "/healthz" => json(&serde_json::json!({"status": "ok"})),
        "/favicon.ico" => with_status(Full::new(Bytes::new()).boxed(), StatusCode::NO_CONTENT),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: the page is /, its data /api/status and /events\n",
        ),
    }
}

/// A request announcing a body (a length above 0, or chunks).
fn carries_body(request: &Request<Incoming>) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim() != "0")
}

fn page() -> Response<Body> {
    let (html, policy) = &*PAGE;
    let mut response = with_status(Full::new(Bytes::from(html.clone())).boxed(), StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(policy) = HeaderValue::from_str(policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The live feed: a `snapshot` event at once, after every change (bursts
/// coalesced) and at least every [`HEARTBEAT`]; it ends at shutdown.
fn events(app: &App) -> Response<Body> {
    struct Feed {
        shared: Arc<Shared>,
        changes: watch::Receiver<u64>,
        stop: watch::Receiver<bool>,
        first: bool,
    }
    let feed = Feed {
        shared: Arc::clone(&app.shared),
        changes: app.shared.subscribe(),
        stop: app.stop.clone(),
        first: true,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let mut message = String::new();
        if feed.first {
            feed.first = false;
            // Reconnect after 2 s when the connection drops.
            message.push_str("retry: 2000\n");
        } else {
            tokio::select! {
                biased;
                () = raised(&mut feed.stop) => return None,
                changed = feed.changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    tokio::select! {
                        biased;
                        () = raised(&mut feed.stop) => return None,
                        () = tokio::time::sleep(COALESCE) => {}
                    }
                }
                () = tokio::time::sleep(HEARTBEAT) => {}
            }
        }
        feed.changes.borrow_and_update();
        let snapshot = serde_json::to_string(&feed.shared.snapshot()).unwrap_or_default();
        message.push_str("event: snapshot\ndata: ");
        message.push_str(&snapshot);
        message.push_str("\n\n");
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(message))), feed))
    });
    let mut response = with_status(StreamBody::new(stream).boxed(), StatusCode::OK);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    response
}

fn json<T: serde::Serialize>(value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = with_status(Full::new(Bytes::from(body)).boxed(), StatusCode::OK);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(error) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode the status: {error}\n"),
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = with_status(Full::new(Bytes::from(body.to_string())).boxed(), status);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A response with the headers every answer carries: nothing is cached (the
/// page is live) and content types are not guessed.
fn with_status(body: Body, status: StatusCode) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `sha256-<base64>` of an inline script or style, as CSP names it.
fn csp_hash(text: &str) -> String {
    use base64::Engine as _;
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::board::Board;

    /// Sends `request` raw and reads the answer until `until` appears or the
    /// connection closes.
    async fn exchange(addr: std::net::SocketAddr, request: &str, until: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains(until) {
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
                .await
                .expect("an answer within 10 s")
                .unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
        }
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn the_page_its_feed_and_its_limits_over_http() {
        let shared = Shared::new(Board::new(10, "gate.decisions.log", "gate.merge-events"));
        let (stop_tx, stop) = watch::channel(false);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Arc::new(App {
            shared: Arc::clone(&shared),
            stop,
        });
        let server = tokio::spawn(serve(listener, app, 8, Duration::from_secs(5)));
        let get =
            |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");

        let page = exchange(addr, &get("/"), "</html>").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(
            page.contains("content-security-policy: default-src 'none'"),
            "{page}"
        );
        assert!(page.contains("<title>deploy-gate · status</title>"));

        let status = exchange(addr, &get("/api/status"), "\"capacity\":10}").await;
        assert!(
            status.contains("\"name\":\"gate.merge-events\""),
            "{status}"
        );
        assert!(exchange(addr, &get("/healthz"), "}")
            .await
            .contains("{\"status\":\"ok\"}"));
        assert!(exchange(addr, &get("/nope"), "\n\n")
            .await
            .starts_with("HTTP/1.1 404"));

        let post = "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let refused = exchange(addr, post, "only GET").await;
        assert!(
            refused.starts_with("HTTP/1.1 405") && refused.contains("allow: GET, HEAD"),
            "{refused}"
        );
        let with_body =
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello";
        assert!(exchange(addr, with_body, "no request body")
            .await
            .starts_with("HTTP/1.1 413"));

        // The feed: a snapshot at once, another when the board changes.
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(get("/events").as_bytes()).await.unwrap();
        let mut seen = String::new();
        let mut buffer = [0u8; 8192];
        while seen.matches("event: snapshot").count() < 2 {
            if seen.contains("event: snapshot") {
                shared.update(|board| board.set_queue(Ok((7, 2)), time::OffsetDateTime::now_utc()));
            }
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
                .await
                .expect("a snapshot within 10 s")
                .unwrap();
            assert!(n > 0, "the feed ended: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
        assert!(seen.contains("content-type: text/event-stream"), "{seen}");
        assert!(seen.contains("\"messages\":7"), "{seen}");

        // Shutdown ends the live feed and the server.
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server stops at shutdown")
            .unwrap();
    }

    #[test]
    fn csp_hashes_are_the_base64_sha256_the_spec_gives() {
        // The CSP spec's own example: sha256 of `alert('Hello, world.');`.
        assert_eq!(
            csp_hash("alert('Hello, world.');"),
            "sha256-qznLcsROx4GACP2dm0UCKCzCG+HiZ1guq6ZZDob/Tng="
        );
    }

    #[test]
    fn the_page_is_self_contained_and_its_policy_allows_only_its_own_code() {
        let (html, policy) = &*PAGE;
        assert!(!html.contains("/*STYLE*/") && !html.contains("/*SCRIPT*/"));
        for external in ["http://", "https://", "src=\"/", "href=\"/", "@import"] {
            assert!(!html.contains(external), "the page loads `{external}…`");
        }
        assert!(policy.contains(&csp_hash(SCRIPT)) && policy.contains(&csp_hash(STYLE)));
        assert!(!policy.contains("unsafe"));
    }
}
