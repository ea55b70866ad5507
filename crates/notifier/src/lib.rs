//! deploy-gate's notifier role: tells people about decisions. It consumes the
//! notifications queue (`gate.notifications`, bound to `notify.#` on the results
//! exchange) and posts each notification to its channel: a Slack incoming webhook
//! (a Block Kit message with the score, recommendation, repository and commit,
//! summary, top risks with their evidence, rollback notes) or a generic JSON
//! webhook (the notification's own JSON).
//!
//! The contract, in [`run`]'s words: paced to one request per second per webhook
//! URL; 429 waits for `Retry-After`; 5xx, timeouts and connection errors retry
//! with exponential backoff and jitter; any other refusal, or `max_attempts`
//! failures, dead-letters the notification with the reason; delivered exactly once
//! per (event id, channel) while Redis works, at least once when it does not.
//!
//! Architecture invariant: the notifier knows neither lapin nor redis; it uses
//! `gate-bus` for the queue, dead-lettering and Redis, and `reqwest` for the
//! targets. It knows nothing of the worker, the models or git.
//!
//! Architecture invariant: a notification leaves the queue only after its target
//! answered 2xx or after it was dead-lettered with confirms. Secrets (webhook URLs,
//! secret headers, the AMQP and Redis URLs) appear in no log line and no error.

mod delivery;
mod error;
mod run;
mod settings;
mod slack;
mod stats;
mod target;

pub use error::{NotifierError, Remedy};
pub use run::run;
pub use settings::{ChannelSettings, Env, NotifierDeps, NotifierSettings};
pub use stats::{NotifierStats, StatsSnapshot};
