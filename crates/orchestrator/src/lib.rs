//! The orchestrator side of deploy-gate, for Rust deploy orchestrators and for
//! the `deploy-gate wait | watch | approve | override` commands:
//!
//! - [`wait`] for the decision of one merge (by event id, or by repository and
//!   head commit), race-free: it binds a private queue first, then looks in the
//!   decision store, then waits, so a decision published before it started is
//!   still found;
//! - [`watch`] every decision from the `gate.decisions.log` stream, from now or
//!   replayed, optionally for one repository;
//! - [`approve`] an event: a person's decision that supersedes the automatic one in
//!   the store and is published, so it is recorded in the log and reaches waiters.
//!
//! Architecture invariant: this crate speaks only domain types and `gate-bus`; it
//! knows neither lapin nor redis. It never decides a risk itself.
//!
//! Architecture invariant: no answer is ever invented. A wait that finds nothing
//! ends in [`WaitError`], which callers must treat as "no decision" (exit 3 in the
//! binary), never as success.

mod approvals;
mod approve;
mod deps;
mod error;
mod wait;
mod watch;

pub use approvals::{
    approve_signed, ApprovalRequest, ApprovalSettings, SignedApproval, SigningKey,
};
pub use approve::approve;
pub use deps::{OrchestratorDeps, OrchestratorSettings};
pub use error::{ApproveError, WaitError, WatchError};
pub use wait::{wait, WaitTarget};
pub use watch::{watch, WatchEnd, WatchFilter, WatchFrom, WatchStop, Watched};

/// The consumer span of a decision taken from the results exchange or the log: a
/// child of the worker's publish span (the `traceparent` the decision carried),
/// so `wait` and `watch` close the merge's trace.
fn received_span(decision: &gate_core::Decision, traceparent: Option<&str>) -> tracing::Span {
    let span = tracing::info_span!(
        "decision received",
        otel.name = "gate.results receive",
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        event_id = %decision.event_id,
        recommendation = %decision.recommendation,
    );
    gate_telemetry::trace::continue_trace(&span, traceparent);
    span
}
