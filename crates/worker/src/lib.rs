//! The worker role of deploy-gate: it consumes merge events from the events queue
//! and gives each event id exactly one decision.
//!
//! Per delivery: bad input is dead-lettered with its reason; an event that already
//! has a stored decision gets that decision republished (a redelivery costs no
//! analysis); otherwise the rules analyzer runs, the model verdicts come from the
//! verdict cache or from the models, the consensus decides, the decision is stored
//! (first write wins), published with its notifications, confirmed, and only then
//! is the event acked. A publish that fails requeues the event.
//!
//! [`run`] owns the connection: it reconnects with backoff when the broker goes
//! away, keeps deciding without Redis while Redis is away, serves `/healthz` and
//! `/readyz`, and shuts down in two phases when its `shutdown` future resolves.
//!
//! Architecture invariant: the worker knows neither lapin nor redis; it speaks to
//! them through `gate-bus` in domain types, and to the models through the
//! `gate-models` [`Analyzer`](gate_models::Analyzer) trait.
//!
//! Architecture invariant: an event is acked only after its decision (and, above
//! the notify threshold, its notifications) are confirmed by the broker. Every
//! other path requeues or dead-letters it.

mod error;
mod fleet_limits;
mod health;
mod locks;
mod outcomes;
mod process;
mod run;
mod settings;
mod stats;
mod stores;

pub use error::WorkerError;
pub use fleet_limits::share_fleet_limits;
pub use run::run;
pub use settings::{NotifyPolicy, WorkerDeps, WorkerSettings};
pub use stats::{StatsSnapshot, WorkerStats};
