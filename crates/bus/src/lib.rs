//! deploy-gate's transport: the RabbitMQ topology and its routing keys, message
//! envelopes, publishing with confirms, consuming with manual acks and
//! dead-lettering with a reason, and the Redis decision store and verdict cache.
//!
//! Architecture invariant: this is the only crate that knows lapin or redis exist.
//! Nothing it exports mentions their types, so the roles (producer, worker,
//! notifier, orchestrator) speak in domain types and [`BusError`] / [`StoreError`].
//!
//! Architecture invariant: a publish is `Ok` only when the broker confirmed the
//! message *and* routed it to a queue; a consumer acks only through [`Delivery`],
//! after the caller's side effect is durable.
//!
//! The topology, its arguments and what RabbitMQ 3.10 needs for them are described
//! in this crate's `README.md`.

mod bus;
mod consumer;
mod envelope;
mod error;
mod publisher;
mod ratelimit;
mod store;
mod tls;
mod topology;

pub use bus::{Bus, BusSettings, QueueDepth};

/// How long the broker may take to answer `basic.cancel` or `connection.close`.
/// A broker that does not answer must not hold a stopping process past its
/// deadline (an orchestrator would SIGKILL it).
pub const REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
pub use consumer::{Consumer, DeadLettered, Delivery, StreamOffset};
pub use envelope::{
    decode_decision, decode_event, decode_outcome, Outgoing, Rejection, GATE_ERROR_HEADER,
};
pub use error::{Action, AmqpError, BusError};
pub use publisher::Publisher;
pub use ratelimit::{Admission, Budget, FleetLimits};
pub use store::{
    DecisionOutcomes, DecisionStore, Insert, Lookup, Marks, OutcomeStore, Redis, RedisSettings,
    ScanSummary, StoreError, VerdictCache, VerdictKey,
};
pub use topology::{
    decision_routing_key, event_routing_key, notify_routing_key, outcome_routing_key, slug,
    Topology,
};
