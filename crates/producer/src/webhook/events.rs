//! `POST /events`: a MergeEvent as JSON from any sender that holds the shared secret
//! (an event bus, a git host other than GitHub, a deploy tool).
//!
//! The signature covers a delivery id and a timestamp besides the body, so a
//! captured request cannot be replayed: outside the skew window it is refused
//! (401), inside it its delivery id is already remembered (200 "duplicate").

use gate_core::MergeEvent;
use hyper::body::Bytes;
use hyper::{HeaderMap, StatusCode};
use serde_json::json;

use super::replay::Claim;
use super::signature::{stamp_prefix, verify_parts};
use super::{duplicate, enqueue_reply, enqueued, error, traceparent, App, Reply};
use crate::redact::redact_event;

/// The header carrying `sha256=<hex HMAC-SHA256>` of
/// `v1:<X-Gate-Timestamp>:<X-Gate-Delivery>:<body>`.
const SIGNATURE_HEADER: &str = "X-Gate-Signature-256";
/// A unique id per delivery: a second delivery with the same id within
/// `webhook.replay_window_secs` enqueues nothing.
const DELIVERY_HEADER: &str = "X-Gate-Delivery";
/// When the sender signed, in Unix seconds; refused beyond
/// `webhook.events_max_skew_secs` from the receiver's clock.
const TIMESTAMP_HEADER: &str = "X-Gate-Timestamp";

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
    let (timestamp, delivery) = match stamp(app, headers) {
        Ok(stamp) => stamp,
        Err(refused) => {
            tracing::warn!(reason = %refused, "refused an /events delivery");
            return error(StatusCode::UNAUTHORIZED, refused);
        }
    };
    let signature = headers.get(SIGNATURE_HEADER).map(|value| value.as_bytes());
    let prefix = stamp_prefix(&timestamp, &delivery);
    if let Err(refused) = verify_parts(
        secret.expose().as_bytes(),
        &[prefix.as_bytes(), &body],
        signature,
    ) {
        tracing::warn!(reason = ?refused, "refused an /events delivery: bad signature");
        return error(StatusCode::UNAUTHORIZED, refused.reason(SIGNATURE_HEADER));
    }
    let replay_key = format!("events:{delivery}");
    if app.replay.claim(&replay_key).await == Claim::Duplicate {
        let event_id = MergeEvent::from_json(&body)
            .map(|event| event.event_id)
            .unwrap_or_default();
        return duplicate(&event_id);
    }
    let answer = process(app, headers, body).await;
    if !enqueued(&answer) {
        app.replay.release(&replay_key).await;
    }
    answer
}

/// The delivery id and timestamp of a stamped delivery, the timestamp within
/// `webhook.events_max_skew_secs` of this receiver's clock; or why not, in words
/// safe to send back.
fn stamp(app: &App, headers: &HeaderMap) -> Result<(String, String), String> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let delivery = match header(DELIVERY_HEADER) {
        Some(id)
            if !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
        {
            id.to_owned()
        }
        Some(_) => {
            return Err(format!(
                "malformed {DELIVERY_HEADER} header: 1 to 128 of [A-Za-z0-9-_.:]"
            ))
        }
        None => {
            return Err(format!(
            "missing {DELIVERY_HEADER} header (a unique id per delivery, covered by the signature)"
        ))
        }
    };
    let Some(timestamp) = header(TIMESTAMP_HEADER) else {
        return Err(format!(
            "missing {TIMESTAMP_HEADER} header (Unix seconds, covered by the signature)"
        ));
    };
    let Ok(sent_at) = timestamp.trim().parse::<i64>() else {
        return Err(format!(
            "malformed {TIMESTAMP_HEADER} header: expected Unix seconds"
        ));
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let max_skew = i64::try_from(app.settings.events_max_skew_secs).unwrap_or(i64::MAX);
    if now.saturating_sub(sent_at).abs() > max_skew {
        return Err(format!(
            "{TIMESTAMP_HEADER} is more than {max_skew} s away from this receiver's clock (a replayed delivery, or a clock to fix)"
        ));
    }
    Ok((timestamp.trim().to_owned(), delivery))
}

/// A verified, first-seen delivery: validates, redacts and enqueues its event.
async fn process(app: &App, headers: &HeaderMap, body: Bytes) -> Reply {
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
