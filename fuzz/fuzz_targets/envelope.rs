//! Envelope decoding: what a worker, the notifier and `wait` do with the body of a
//! delivery (merge events, decisions, outcome reports), from arbitrary bytes.
//!
//! Properties beyond "no panic": a rejection's `x-gate-error` header value stays
//! within 1 KiB and reads `<code>: …`; an accepted merge event re-serializes to a
//! payload that decodes to the same event (what the worker republishes is what it
//! read).

#![no_main]

use gate_bus::{decode_decision, decode_event, decode_outcome, Rejection};
use libfuzzer_sys::fuzz_target;

/// The default `bus.max_payload_bytes`.
const LIMIT: usize = 1024 * 1024;

fn check_rejection(rejection: &Rejection) {
    let header = rejection.header_value();
    assert!(
        header.len() <= 1024,
        "x-gate-error over 1 KiB: {}",
        header.len()
    );
    assert!(header.starts_with(rejection.code()), "{header}");
}

fuzz_target!(|payload: &[u8]| {
    match decode_event(payload, LIMIT) {
        Ok(event) => {
            assert!(!event.event_id.trim().is_empty());
            let again = serde_json::to_vec(&event).expect("an event serializes");
            let reread = decode_event(&again, usize::MAX).expect("a written event reads back");
            assert_eq!(reread, event);
        }
        Err(rejection) => check_rejection(&rejection),
    }
    match decode_decision(payload, LIMIT) {
        Ok(decision) => {
            let again = serde_json::to_vec(&decision).expect("a decision serializes");
            decode_decision(&again, usize::MAX).expect("a written decision reads back");
        }
        Err(rejection) => check_rejection(&rejection),
    }
    match decode_outcome(payload, LIMIT) {
        Ok(outcome) => {
            let again = serde_json::to_vec(&outcome).expect("an outcome serializes");
            decode_outcome(&again, usize::MAX).expect("a written outcome reads back");
        }
        Err(rejection) => check_rejection(&rejection),
    }
    // A small limit: oversized is decided before parsing, whatever the bytes.
    if payload.len() > 16 {
        let rejection = decode_event(payload, 16).expect_err("over the limit");
        assert_eq!(rejection.code(), "oversized");
    }
});
