//! One trace per merge across processes: W3C `traceparent` in and out of
//! `tracing` spans.
//!
//! Spans are ordinary `tracing` spans (`tracing::info_span!`); when OTLP export is
//! on they become OpenTelemetry spans (the `spans` module). These functions
//! move their context in and out of a process as a W3C trace-context
//! `traceparent` (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`), which
//! the bus carries in an AMQP header and the webhook reads from its HTTP request.
//! Without export they do nothing and return `None`: callers forward the
//! `traceparent` they received instead, so a trace survives a hop that does not
//! export.

use opentelemetry::trace::{SpanId, TraceId};

use crate::spans::{with_record, SpanContext};

/// Whether `text` is a W3C `traceparent` of version 00 this process would
/// accept: lowercase hex fields of the exact lengths, a trace id and a parent id
/// that are not all zeros.
pub fn is_valid_traceparent(text: &str) -> bool {
    parse(text).is_some()
}

/// Makes `span` continue the trace of `traceparent`: a child of the remote span
/// it names. Call it before the span is entered or its context read. Returns
/// `false` (and changes nothing) when `traceparent` is absent or malformed, or
/// when spans are not exported.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) -> bool {
    let Some(remote) = traceparent.and_then(parse) else {
        return false;
    };
    with_record(span, |record| record.continue_remote(remote)).is_some()
}

/// The `traceparent` naming `span` as the parent of what it causes in another
/// process; `None` when spans are not exported (or the span is disabled).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    with_record(span, |record| format_traceparent(&record.context()))
}

/// The trace id (32 hex digits) of `span`, for log lines; `None` without export.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    with_record(span, |record| format!("{:032x}", record.context().trace_id))
}

/// `00-<trace id>-<span id>-<flags>`, written digit by digit: it is written
/// twice per merge, and `format!` of the two ids cost several times more.
fn format_traceparent(context: &SpanContext) -> String {
    fn hex(out: &mut String, bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for byte in bytes {
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
    }
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    hex(&mut out, &context.trace_id.to_bytes());
    out.push('-');
    hex(&mut out, &context.span_id.to_bytes());
    out.push_str(if context.sampled { "-01" } else { "-00" });
    out
}

fn parse(text: &str) -> Option<SpanContext> {
    let mut fields = text.trim().split('-');
    let (version, trace_id, span_id, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let lower_hex = |field: &str, len: usize| {
        field.len() == len
            && field
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if fields.next().is_some()
        || version != "00"
        || !lower_hex(trace_id, 32)
        || !lower_hex(span_id, 16)
        || !lower_hex(flags, 2)
    {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(span_id).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    (trace_id != TraceId::INVALID && span_id != SpanId::INVALID).then_some(SpanContext {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn only_exact_w3c_version_00_traceparents_are_accepted() {
        assert!(is_valid_traceparent(GOOD));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        ] {
            assert!(!is_valid_traceparent(bad), "{bad}");
        }
    }

    #[test]
    fn a_parsed_traceparent_formats_back_to_the_same_text() {
        let parsed = parse(GOOD).unwrap();
        assert!(parsed.sampled);
        assert_eq!(format_traceparent(&parsed), GOOD);
        let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        let parsed = parse(unsampled).unwrap();
        assert!(!parsed.sampled);
        assert_eq!(format_traceparent(&parsed), unsampled);
    }

    #[test]
    fn without_export_spans_carry_no_traceparent() {
        let span = tracing::info_span!("no subscriber");
        assert!(!continue_trace(&span, Some(GOOD)));
        assert_eq!(traceparent(&span), None);
    }
}
