//! Why `wait`, `watch` or `approve` ended without their result, and whether
//! trying again can help.

use std::time::Duration;

use gate_bus::{Action, BusError, StoreError};

/// Why [`wait`](crate::wait) returned without a decision. Every variant means "no
/// decision": a caller must never treat one as permission to deploy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// No decision for the target arrived before the deadline (the worker is slow
    /// or down, or the event was never enqueued).
    #[error("no decision within {} s", after.as_secs_f64())]
    Timeout {
        /// The timeout the caller gave.
        after: Duration,
    },
    /// The broker could not be used: it refused us for a reason retrying cannot
    /// fix (access refused, a queue declared with other arguments), or it was
    /// still unreachable when the deadline came and the store had no decision.
    #[error("could not wait for the decision on the broker: {0}")]
    Bus(#[source] BusError),
    /// The target cannot name a decision (an empty event id, repository or sha).
    #[error("invalid wait target: {0}")]
    InvalidTarget(String),
}

impl WaitError {
    /// Whether a later `wait` for the same target may succeed: yes after a timeout
    /// or a broker outage, no for a bad target or a broker that refuses us.
    pub fn is_retryable(&self) -> bool {
        match self {
            WaitError::Timeout { .. } => true,
            WaitError::Bus(error) => error.action() != Action::Fail,
            WaitError::InvalidTarget(_) => false,
        }
    }
}

/// Why [`watch`](crate::watch) stopped before its shutdown or its handler asked it
/// to. Transient broker trouble never ends a watch (it reconnects and resumes);
/// only what retrying cannot fix does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The broker refused us for a reason retrying cannot fix (access refused,
    /// the decisions log declared with other arguments): a person must look.
    #[error("cannot read the decisions log: {0}")]
    Bus(#[source] BusError),
}

impl WatchError {
    /// Whether restarting the watch can help: only once the configuration or the
    /// broker is fixed, so never by itself.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Why [`approve`](crate::approve) did not record the person's decision.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApproveError {
    /// The name, the reason or the event id is empty or too long.
    #[error("invalid approval: {0}")]
    InvalidInput(String),
    /// No decision store is configured; a person's decision must supersede the
    /// stored one, or a redelivery would republish the automatic answer.
    #[error("approving needs the decision store (Redis), and none is configured")]
    NoStore,
    /// The event has no decision yet (unknown id, expired, or still being
    /// analysed): there is nothing to approve or override.
    #[error(
        "no decision is stored for event `{event_id}`: unknown event, expired, or not decided yet"
    )]
    NotFound {
        /// The event id asked for.
        event_id: String,
    },
    /// The decision store failed. Nothing was published; if the failure came
    /// while storing, the store may or may not hold the person's decision —
    /// approving again is safe.
    #[error("decision store: {0}")]
    Store(#[source] StoreError),
    /// The broker failed. If the person's decision was already stored, it is in
    /// effect for waiters that read the store but not yet in the log: approving
    /// again is safe and records it.
    #[error("could not publish the decision: {0}")]
    Bus(#[source] BusError),
    /// The person's decision was not applied: not signed with the configured
    /// key, altered, too old, or by someone who is not an approver. Nothing was
    /// stored or published.
    #[error("approval refused: {0}")]
    Refused(String),
}

impl ApproveError {
    /// Whether running the same approval again may succeed (an outage of Redis or
    /// the broker), as opposed to needing other input or a fixed configuration.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApproveError::Store(error) => error.is_outage(),
            ApproveError::Bus(error) => error.action() != Action::Fail,
            ApproveError::InvalidInput(_)
            | ApproveError::NoStore
            | ApproveError::NotFound { .. }
            | ApproveError::Refused(_) => false,
        }
    }
}
