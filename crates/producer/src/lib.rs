//! deploy-gate's producer role: turns a merge into a
//! [`MergeEvent`](gate_core::MergeEvent) and puts it on the bus, from three doors —
//!
//! - **a CI step** (`deploy-gate enqueue`): the binary builds the DeployContext from
//!   the checkout with `gate_git::build_context`, then calls [`merge_event`] with an
//!   id from `--event-id`, else [`ci_event_id`], else a fresh one, and [`enqueue`]s it;
//! - **an event bus of the user's own**: it builds its own
//!   [`MergeEvent`](gate_core::MergeEvent) and calls [`enqueue`] or
//!   [`Producer::enqueue`] — this crate is its library API;
//! - **webhooks** ([`serve`]): GitHub `push` and merged `pull_request` deliveries,
//!   whose change is fetched from GitHub's compare API, and a generic signed JSON
//!   endpoint taking a MergeEvent directly.
//!
//! Every door ends in the same place: a payload checked against the bus's size limit
//! (with a hint to lower the context budget), then one publish with confirms and
//! `mandatory`, where a nack or an unroutable return is an error, never a silent Ok.
//!
//! Architecture invariant: this crate knows the bus only through `gate-bus` (no lapin),
//! the repository only through `gate-git`, and nothing of workers or models. Text
//! that enters through a webhook is redacted here before it reaches the queue, even
//! when the sender says it already was.

mod ci;
mod enqueue;
mod error;
mod event;
mod redact;
mod webhook;

pub use ci::ci_event_id;
pub use enqueue::{enqueue, Producer};
pub use error::ProducerError;
pub use event::{merge_event, random_event_id};
pub use webhook::{serve, WebhookDeps, WebhookSecrets, WebhookSettings};
