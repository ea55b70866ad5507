//! The RabbitMQ topology: exchanges, queues, their arguments and bindings, and the
//! routing keys messages travel with.
//!
//! ```text
//!  producer ── merge.<repo> ──► [gate.events: topic] ── merge.# ──► gate.merge-events (quorum)
//!                                                                     │ x-delivery-limit, at-least-once DLX
//!  worker (bad input, published with x-gate-error) ──┐                ▼ rejected / over the limit
//!                                                    └──► [gate.dead-letter: fanout] ──► gate.dead-letter (quorum)
//!  worker ── decision.<rec>.<repo> ─┐
//!        ── notify.<chan>.<sev> ────┴─► [gate.results: topic] ── decision.# ──► gate.decisions.log (stream)
//!                                                              ── notify.#   ──► gate.notifications (quorum, DLX)
//!  orchestrator ── outcome.<event_id> ─────────────────────────► ── outcome.# ──► gate.outcomes (quorum, DLX) ──► worker
//!  orchestrator ── canary.request.<repo> ─► [gate.events] ── canary.request.# ──► gate.canary-requests (quorum) ──► canary service
//!  canary service ── canary.<result>.<repo> ──────────────────► ── canary.# ──► gate.canary.log (stream)
//!                                                              ── decision.<rec>.<repo> ──► orchestrators' own queues
//! ```

use lapin::{
    options::{
        ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
    Channel, ExchangeKind,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use gate_core::{Recommendation, Severity};

use crate::BusError;

/// Routing-key prefix of merge events on the events exchange.
const EVENT_KEY_PREFIX: &str = "merge";
/// Routing-key prefix of decisions on the results exchange.
const DECISION_KEY_PREFIX: &str = "decision";
/// Routing-key prefix of notifications on the results exchange.
const NOTIFY_KEY_PREFIX: &str = "notify";
/// Routing-key prefix of outcome reports on the results exchange.
const OUTCOME_KEY_PREFIX: &str = "outcome";
/// Routing-key prefix of canary requests (events exchange) and canary decisions
/// (results exchange).
const CANARY_KEY_PREFIX: &str = "canary";
/// AMQP's limit on a routing key (a short string).
const MAX_ROUTING_KEY_BYTES: usize = 255;
/// Longest slug a routing key carries, so that every key stays far below AMQP's
/// 255-byte limit on short strings.
const MAX_SLUG_BYTES: usize = 100;

/// Names and arguments of everything the fleet declares on the broker.
///
/// Every component declares the whole topology at start (and after every
/// reconnect), so whichever process starts first creates it and the order of
/// deployment does not matter. Declaring is idempotent as long as every component
/// runs with the same settings; a component whose arguments differ from the
/// existing queue's gets `PRECONDITION_FAILED` ([`Action::Fail`](crate::Action::Fail)),
/// because RabbitMQ never changes a queue's arguments in place — change them with a
/// policy, or by draining, deleting and redeclaring the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topology {
    /// Topic exchange producers publish merge events to, with routing key
    /// `merge.<repo-slug>`. Topic rather than direct so that one repository's
    /// events can later be routed to a dedicated queue by binding alone.
    pub events_exchange: String,
    /// Quorum queue the workers consume merge events from.
    pub events_queue: String,
    /// Binding of the events queue to the events exchange.
    pub events_binding: String,
    /// `x-delivery-limit` of the events queue: after this many redeliveries a
    /// message is dead-lettered instead of looping (a poison message, or a worker
    /// that crashes on it).
    pub events_delivery_limit: u32,
    /// Optional `x-max-length` of the events queue. With `x-overflow:
    /// reject-publish` (always set, see the crate README) publishers get nacks when
    /// the queue is full: backpressure instead of dropped events. (RabbitMQ 3.10
    /// quorum queues take one message over the limit before they start refusing.)
    pub events_max_length: Option<u64>,
    /// Fanout exchange every dead letter goes through, whether the broker
    /// dead-letters it or a worker republishes it with a reason.
    pub dead_letter_exchange: String,
    /// Quorum queue holding dead letters for a person to inspect.
    pub dead_letter_queue: String,
    /// Topic exchange for decisions (`decision.<recommendation>.<repo-slug>`) and
    /// notifications (`notify.<channel>.<severity>`).
    pub results_exchange: String,
    /// Stream queue bound to `decision.#`: every decision, kept for audit and
    /// replay even when no orchestrator listens.
    pub decisions_log: String,
    /// `x-max-age` of the decisions log (RabbitMQ units: `Y`, `M`, `D`, `h`, `m`, `s`).
    pub decisions_log_max_age: String,
    /// `x-max-length-bytes` of the decisions log.
    pub decisions_log_max_bytes: u64,
    /// Quorum queue the notifier consumes, bound to `notify.#`.
    pub notifications_queue: String,
    /// `x-delivery-limit` of the notifications queue.
    pub notifications_delivery_limit: u32,
    /// Quorum queue bound to `outcome.#` on the results exchange: orchestrators'
    /// reports of what happened to a decided change, which the workers store next
    /// to the decision.
    pub outcomes_queue: String,
    /// `x-delivery-limit` of the outcomes queue.
    pub outcomes_delivery_limit: u32,
    /// Quorum queue the canary service consumes canary requests from, bound to
    /// the events exchange with [`Topology::canary_binding`].
    pub canary_queue: String,
    /// Binding of the canary queue (`canary.request.#`: requests are published as
    /// `canary.request.<repo-slug>`).
    pub canary_binding: String,
    /// `x-delivery-limit` of the canary queue.
    pub canary_delivery_limit: u32,
    /// Stream queue bound to `canary.#` on the results exchange: every canary
    /// decision, kept for audit and replay (retention as the decisions log's).
    pub canary_log: String,
}

fn default_canary_queue() -> String {
    "gate.canary-requests".to_string()
}

fn default_canary_binding() -> String {
    format!("{CANARY_KEY_PREFIX}.request.#")
}

fn default_canary_delivery_limit() -> u32 {
    DEFAULT_DELIVERY_LIMIT
}

fn default_canary_log() -> String {
    "gate.canary.log".to_string()
}

/// `x-delivery-limit` of every work queue unless configured: RabbitMQ 4.0's own
/// default for quorum queues. The broker counts every delivery that was not
/// acked, including those a crashed or cut-off consumer held without having
/// started them: under a worker crash every few seconds (the chaos suite's long
/// mode), a limit of 5 dead-lettered a healthy, already decided event. A message
/// that really kills every worker that takes it is still dead-lettered, after 21
/// deliveries; malformed input is dead-lettered at once, whatever the limit.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 20;

impl Default for Topology {
    fn default() -> Self {
        Topology {
            events_exchange: "gate.events".to_string(),
            events_queue: "gate.merge-events".to_string(),
            events_binding: format!("{EVENT_KEY_PREFIX}.#"),
            events_delivery_limit: DEFAULT_DELIVERY_LIMIT,
            events_max_length: None,
            dead_letter_exchange: "gate.dead-letter".to_string(),
            dead_letter_queue: "gate.dead-letter".to_string(),
            results_exchange: "gate.results".to_string(),
            decisions_log: "gate.decisions.log".to_string(),
            decisions_log_max_age: "30D".to_string(),
            decisions_log_max_bytes: 10 * 1024 * 1024 * 1024,
            notifications_queue: "gate.notifications".to_string(),
            notifications_delivery_limit: DEFAULT_DELIVERY_LIMIT,
            outcomes_queue: "gate.outcomes".to_string(),
            outcomes_delivery_limit: DEFAULT_DELIVERY_LIMIT,
            canary_queue: default_canary_queue(),
            canary_binding: default_canary_binding(),
            canary_delivery_limit: default_canary_delivery_limit(),
            canary_log: default_canary_log(),
        }
    }
}

impl Topology {
    /// The same topology with `prefix` in front of every exchange and queue name, so
    /// that tests (or tenants sharing a vhost) do not see each other's messages.
    pub fn with_prefix(&self, prefix: &str) -> Topology {
        let p = |name: &str| format!("{prefix}{name}");
        Topology {
            events_exchange: p(&self.events_exchange),
            events_queue: p(&self.events_queue),
            dead_letter_exchange: p(&self.dead_letter_exchange),
            dead_letter_queue: p(&self.dead_letter_queue),
            results_exchange: p(&self.results_exchange),
            decisions_log: p(&self.decisions_log),
            notifications_queue: p(&self.notifications_queue),
            outcomes_queue: p(&self.outcomes_queue),
            canary_queue: p(&self.canary_queue),
            canary_log: p(&self.canary_log),
            ..self.clone()
        }
    }

    /// Checks what the broker would refuse, so that a bad setting is reported at
    /// start with its name rather than as a channel error.
    pub fn validate(&self) -> Result<(), BusError> {
        let names = [
            ("events_exchange", &self.events_exchange),
            ("events_queue", &self.events_queue),
            ("events_binding", &self.events_binding),
            ("dead_letter_exchange", &self.dead_letter_exchange),
            ("dead_letter_queue", &self.dead_letter_queue),
            ("results_exchange", &self.results_exchange),
            ("decisions_log", &self.decisions_log),
            ("notifications_queue", &self.notifications_queue),
            ("outcomes_queue", &self.outcomes_queue),
            ("canary_queue", &self.canary_queue),
            ("canary_binding", &self.canary_binding),
            ("canary_log", &self.canary_log),
        ];
        for (field, name) in names {
            if name.trim().is_empty() || name.len() > 255 || name.starts_with("amq.") {
                return Err(BusError::InvalidSettings(format!(
                    "topology.{field} must be 1 to 255 bytes and not start with `amq.`, got {name:?}"
                )));
            }
        }
        for (field, limit) in [
            ("events_delivery_limit", self.events_delivery_limit),
            (
                "notifications_delivery_limit",
                self.notifications_delivery_limit,
            ),
            ("outcomes_delivery_limit", self.outcomes_delivery_limit),
            ("canary_delivery_limit", self.canary_delivery_limit),
        ] {
            if limit == 0 {
                return Err(BusError::InvalidSettings(format!(
                    "topology.{field} must be at least 1"
                )));
            }
        }
        if !is_stream_max_age(&self.decisions_log_max_age) {
            return Err(BusError::InvalidSettings(format!(
                "topology.decisions_log_max_age must be a number and one of Y, M, D, h, m, s (e.g. `30D`), got {:?}",
                self.decisions_log_max_age
            )));
        }
        if self.decisions_log_max_bytes == 0 {
            return Err(BusError::InvalidSettings(
                "topology.decisions_log_max_bytes must be above 0".to_string(),
            ));
        }
        Ok(())
    }

    /// Declares every exchange, queue and binding. Idempotent.
    pub(crate) async fn declare(&self, channel: &Channel) -> Result<(), BusError> {
        self.validate()?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        for (name, kind) in [
            (&self.events_exchange, ExchangeKind::Topic),
            (&self.dead_letter_exchange, ExchangeKind::Fanout),
            (&self.results_exchange, ExchangeKind::Topic),
        ] {
            channel
                .exchange_declare(short(name)?, kind, durable, FieldTable::default())
                .await
                .map_err(|e| BusError::amqp(format!("exchange.declare {name}"), e))?;
        }

        let mut dead_letter_args = FieldTable::default();
        dead_letter_args.insert("x-queue-type".into(), long_str("quorum"));
        self.declare_queue(channel, &self.dead_letter_queue, dead_letter_args)
            .await?;
        self.bind(
            channel,
            &self.dead_letter_queue,
            &self.dead_letter_exchange,
            "",
        )
        .await?;

        let events_args = self.work_queue_args(self.events_delivery_limit, self.events_max_length);
        self.declare_queue(channel, &self.events_queue, events_args)
            .await?;
        self.bind(
            channel,
            &self.events_queue,
            &self.events_exchange,
            &self.events_binding,
        )
        .await?;

        let mut log_args = FieldTable::default();
        log_args.insert("x-queue-type".into(), long_str("stream"));
        log_args.insert("x-max-age".into(), long_str(&self.decisions_log_max_age));
        log_args.insert(
            "x-max-length-bytes".into(),
            AMQPValue::LongLongInt(i64::try_from(self.decisions_log_max_bytes).unwrap_or(i64::MAX)),
        );
        self.declare_queue(channel, &self.decisions_log, log_args)
            .await?;
        let decisions = format!("{DECISION_KEY_PREFIX}.#");
        self.bind(
            channel,
            &self.decisions_log,
            &self.results_exchange,
            &decisions,
        )
        .await?;

        let notify_args = self.work_queue_args(self.notifications_delivery_limit, None);
        self.declare_queue(channel, &self.notifications_queue, notify_args)
            .await?;
        let notifications = format!("{NOTIFY_KEY_PREFIX}.#");
        self.bind(
            channel,
            &self.notifications_queue,
            &self.results_exchange,
            &notifications,
        )
        .await?;

        let outcome_args = self.work_queue_args(self.outcomes_delivery_limit, None);
        self.declare_queue(channel, &self.outcomes_queue, outcome_args)
            .await?;
        let outcomes = format!("{OUTCOME_KEY_PREFIX}.#");
        self.bind(
            channel,
            &self.outcomes_queue,
            &self.results_exchange,
            &outcomes,
        )
        .await?;

        let canary_args = self.work_queue_args(self.canary_delivery_limit, None);
        self.declare_queue(channel, &self.canary_queue, canary_args)
            .await?;
        self.bind(
            channel,
            &self.canary_queue,
            &self.events_exchange,
            &self.canary_binding,
        )
        .await?;
        let mut canary_log_args = FieldTable::default();
        canary_log_args.insert("x-queue-type".into(), long_str("stream"));
        canary_log_args.insert("x-max-age".into(), long_str(&self.decisions_log_max_age));
        canary_log_args.insert(
            "x-max-length-bytes".into(),
            AMQPValue::LongLongInt(i64::try_from(self.decisions_log_max_bytes).unwrap_or(i64::MAX)),
        );
        self.declare_queue(channel, &self.canary_log, canary_log_args)
            .await?;
        let canary_decisions = format!("{CANARY_KEY_PREFIX}.#");
        self.bind(
            channel,
            &self.canary_log,
            &self.results_exchange,
            &canary_decisions,
        )
        .await?;
        Ok(())
    }

    /// Deletes every queue and exchange of the topology, messages included: for
    /// test harnesses and teardown, never for a running fleet.
    pub(crate) async fn delete(&self, channel: &Channel) -> Result<(), BusError> {
        for queue in [
            &self.events_queue,
            &self.notifications_queue,
            &self.outcomes_queue,
            &self.canary_queue,
            &self.canary_log,
            &self.decisions_log,
            &self.dead_letter_queue,
        ] {
            channel
                .queue_delete(short(queue)?, QueueDeleteOptions::default())
                .await
                .map_err(|e| BusError::amqp(format!("queue.delete {queue}"), e))?;
        }
        for exchange in [
            &self.events_exchange,
            &self.results_exchange,
            &self.dead_letter_exchange,
        ] {
            channel
                .exchange_delete(short(exchange)?, ExchangeDeleteOptions::default())
                .await
                .map_err(|e| BusError::amqp(format!("exchange.delete {exchange}"), e))?;
        }
        Ok(())
    }

    /// Arguments of a queue that workers consume with acks: quorum (replicated, and
    /// it counts deliveries), a delivery limit against poison loops, and
    /// at-least-once dead-lettering so a dead letter is never lost on the way.
    fn work_queue_args(&self, delivery_limit: u32, max_length: Option<u64>) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), long_str("quorum"));
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(delivery_limit)),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            long_str(&self.dead_letter_exchange),
        );
        // At-least-once dead-lettering (RabbitMQ 3.10+) is only honoured together with
        // reject-publish; with any other overflow the broker silently falls back to
        // at-most-once.
        args.insert("x-dead-letter-strategy".into(), long_str("at-least-once"));
        args.insert("x-overflow".into(), long_str("reject-publish"));
        if let Some(max_length) = max_length {
            args.insert(
                "x-max-length".into(),
                AMQPValue::LongLongInt(i64::try_from(max_length).unwrap_or(i64::MAX)),
            );
        }
        args
    }

    async fn declare_queue(
        &self,
        channel: &Channel,
        name: &str,
        args: FieldTable,
    ) -> Result<(), BusError> {
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(short(name)?, options, args)
            .await
            .map_err(|e| BusError::amqp(format!("queue.declare {name}"), e))?;
        Ok(())
    }

    async fn bind(
        &self,
        channel: &Channel,
        queue: &str,
        exchange: &str,
        key: &str,
    ) -> Result<(), BusError> {
        channel
            .queue_bind(
                short(queue)?,
                short(exchange)?,
                short(key)?,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| BusError::amqp(format!("queue.bind {queue} {exchange} {key}"), e))
    }
}

/// `RabbitMQ`'s stream retention format: digits followed by one unit letter.
fn is_stream_max_age(value: &str) -> bool {
    let Some(unit) = value.chars().last() else {
        return false;
    };
    let digits = &value[..value.len() - unit.len_utf8()];
    matches!(unit, 'Y' | 'M' | 'D' | 'h' | 'm' | 's')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0')
}

/// A name or key as an AMQP short string, refusing (instead of panicking on) more
/// than 255 bytes.
pub(crate) fn short(value: &str) -> Result<ShortString, BusError> {
    ShortString::try_new(value).map_err(|_| BusError::TooLong {
        field: "name",
        len: value.len(),
    })
}

pub(crate) fn long_str(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// The routing-key form of a repository or channel name.
///
/// Topic routing splits keys on `.` and binding keys treat `*` and `#` as
/// wildcards, and matching is case-sensitive, so the slug is lowercase ASCII
/// letters, digits, `_` and `-`: every other character (`/`, `.`, spaces,
/// non-ASCII) becomes `-`, runs of `-` collapse, and leading and trailing `-` go.
/// `Acme/Shop.web` → `acme-shop-web`. An empty result is `unknown`. A slug longer
/// than 100 bytes is cut and ends with 8 hex digits of the full name's SHA-256, so
/// long names stay distinct.
///
/// Slugs are for routing only: `acme/shop` and `acme.shop` share one. A consumer
/// that must tell them apart checks the `repo` field of the message.
pub fn slug(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() {
        return "unknown".to_string();
    }
    if slug.len() > MAX_SLUG_BYTES {
        let digest = Sha256::digest(name.as_bytes());
        let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        slug.truncate(MAX_SLUG_BYTES - 9);
        slug.push('-');
        slug.push_str(&hash);
    }
    slug
}

/// Routing key of a merge event: `merge.<repo-slug>`.
pub fn event_routing_key(repo: &str) -> String {
    format!("{EVENT_KEY_PREFIX}.{}", slug(repo))
}

/// Routing key of a decision: `decision.<recommendation>.<repo-slug>`, so an
/// orchestrator binds `decision.*.acme-shop` for one repository or `decision.block.#`
/// for every block.
pub fn decision_routing_key(recommendation: Recommendation, repo: &str) -> String {
    format!(
        "{DECISION_KEY_PREFIX}.{}.{}",
        recommendation.as_str(),
        slug(repo)
    )
}

/// Routing key of a notification: `notify.<channel-slug>.<severity>`, so a notifier
/// binds per channel and a pager binds `notify.*.critical`.
pub fn notify_routing_key(channel: &str, severity: Severity) -> String {
    format!(
        "{NOTIFY_KEY_PREFIX}.{}.{}",
        slug(channel),
        severity.as_str()
    )
}

/// Routing key of an outcome report: `outcome.<event_id>`, so a listener binds
/// `outcome.#` for every report or `outcome.<event_id>` for one event. The event id
/// goes in as it is (topic words may hold any character but `.`, which only splits
/// words; `*` and `#` are wildcards in binding keys, not in routing keys). An id too
/// long for AMQP's 255-byte key is cut and ends with 8 hex digits of its SHA-256;
/// the message body always carries the whole id.
pub fn outcome_routing_key(event_id: &str) -> String {
    let key = format!("{OUTCOME_KEY_PREFIX}.{event_id}");
    if key.len() <= MAX_ROUTING_KEY_BYTES {
        return key;
    }
    let digest = Sha256::digest(event_id.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let mut end = MAX_ROUTING_KEY_BYTES - hash.len() - 1;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &key[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_keys_carry_the_event_id_and_stay_within_amqp_limits() {
        assert_eq!(outcome_routing_key("gh-123-1"), "outcome.gh-123-1");
        let long = format!("{}a", "é".repeat(200));
        let other = format!("{}b", "é".repeat(200));
        assert!(outcome_routing_key(&long).len() <= MAX_ROUTING_KEY_BYTES);
        assert_ne!(outcome_routing_key(&long), outcome_routing_key(&other));
        assert!(outcome_routing_key(&long).starts_with("outcome.é"));
    }

    #[test]
    fn slugs_are_safe_topic_words() {
        assert_eq!(slug("acme/shop"), "acme-shop");
        assert_eq!(slug("Acme/Shop.web"), "acme-shop-web");
        assert_eq!(slug("  weird//name..#*"), "weird-name");
        assert_eq!(slug("ünïcode"), "n-code");
        assert_eq!(slug("snake_case-ok"), "snake_case-ok");
        assert_eq!(slug(""), "unknown");
        assert_eq!(slug("///"), "unknown");
    }

    #[test]
    fn long_slugs_are_cut_and_stay_distinct() {
        let a = format!("{}a", "x".repeat(300));
        let b = format!("{}b", "x".repeat(300));
        assert_eq!(slug(&a).len(), MAX_SLUG_BYTES);
        assert_ne!(slug(&a), slug(&b));
    }

    #[test]
    fn routing_keys_follow_the_documented_shapes() {
        assert_eq!(event_routing_key("acme/shop"), "merge.acme-shop");
        assert_eq!(
            decision_routing_key(Recommendation::Block, "acme/shop"),
            "decision.block.acme-shop"
        );
        assert_eq!(
            notify_routing_key("#deploys", Severity::Critical),
            "notify.deploys.critical"
        );
    }

    #[test]
    fn topology_settings_refuse_unknown_fields_and_fill_defaults() {
        let topology: Topology =
            serde_json::from_str(r#"{"events_delivery_limit": 3}"#).expect("valid settings");
        assert_eq!(topology.events_delivery_limit, 3);
        assert_eq!(topology.events_queue, "gate.merge-events");
        assert!(serde_json::from_str::<Topology>(r#"{"event_queue": "x"}"#).is_err());
    }

    #[test]
    fn invalid_topology_settings_are_named() {
        let bad_age = Topology {
            decisions_log_max_age: "30 days".into(),
            ..Topology::default()
        };
        assert!(bad_age
            .validate()
            .unwrap_err()
            .to_string()
            .contains("decisions_log_max_age"));
        let no_limit = Topology {
            events_delivery_limit: 0,
            ..Topology::default()
        };
        assert!(no_limit.validate().is_err());
        assert!(Topology::default().validate().is_ok());
        assert!(is_stream_max_age("7D") && is_stream_max_age("12h") && !is_stream_max_age("0D"));
    }

    #[test]
    fn a_prefix_renames_every_exchange_and_queue_but_not_the_binding() {
        let topology = Topology::default().with_prefix("t-1-");
        assert_eq!(topology.events_exchange, "t-1-gate.events");
        assert_eq!(topology.dead_letter_queue, "t-1-gate.dead-letter");
        assert_eq!(topology.outcomes_queue, "t-1-gate.outcomes");
        assert_eq!(topology.events_binding, "merge.#");
    }
}
