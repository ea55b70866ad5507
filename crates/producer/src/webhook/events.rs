//! `POST /events`: a MergeEvent as JSON from any sender that holds the shared secret
//! (an event bus, a git host other than GitHub, a deploy tool).

use gate_core::MergeEvent;
use hyper::body::Bytes;
use hyper::{HeaderMap, StatusCode};
use serde_json::json;

use super::signature::verify;
use super::{enqueue_reply, error, traceparent, App, Reply};
use crate::redact::redact_event;

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
const SIGNATURE_HEADER: &str = "X-Gate-Signature-256";

/// Verifies the signature, validates the event as a worker would, redacts its text
/// again (the sender may not have), and enqueues it under its own id.
pub(crate) async fn handle(app: &App, headers: &HeaderMap, body: Bytes) -> Reply {
    let Some(secret) = &app.deps.secrets.events else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "/events is off: {} is not set on this receiver",
                app.settings.events_secret_env
            ),
        );
    };
    let signature = headers.get(SIGNATURE_HEADER).map(|value| value.as_bytes());
    if let Err(refused) = verify(secret.expose().as_bytes(), &body, signature) {
        tracing::warn!(reason = ?refused, "refused an /events delivery: bad signature");
        return error(StatusCode::UNAUTHORIZED, refused.reason(SIGNATURE_HEADER));
    }
    let mut event = match MergeEvent::from_json(&body) {
        Ok(event) => event,
        Err(invalid) => return error(StatusCode::BAD_REQUEST, invalid.to_string()),
    };
    let redactor = app.redactor.clone();
    let redacted = tokio::task::spawn_blocking(move || {
        let n_found = redact_event(&mut event, &redactor);
        (event, n_found)
    })
    .await;
    let Ok((event, n_found)) = redacted else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "redaction failed");
    };
    if n_found > 0 {
        tracing::warn!(event_id = %event.event_id, n_found, "secrets redacted from a received merge event");
    }
    let result = app
        .deps
        .producer
        .enqueue(&event, traceparent(headers))
        .await;
    enqueue_reply(
        &event.event_id,
        result,
        json!({"n_secrets_redacted": n_found}),
    )
}
