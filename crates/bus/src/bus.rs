//! The connection to the broker: connecting with backoff, declaring the topology,
//! handing out publishers and consumers, and noticing when the connection is gone.

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
    sync::Arc,
    time::Duration,
};

use futures_util::StreamExt;
use lapin::{
    options::{BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
    Connection, ConnectionProperties, Event,
};
use serde::{Deserialize, Serialize};

use crate::{
    consumer::{Consumer, StreamOffset},
    topology::short,
    BusError, Publisher, Topology,
};

/// How components talk to the broker, apart from its URL (a secret, passed
/// separately so settings can be printed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusSettings {
    /// Exchange and queue names and arguments.
    pub topology: Topology,
    /// Largest payload published or accepted, in bytes (default 1 MiB): a bound on
    /// what one event costs in memory, in the broker and in model tokens.
    pub max_payload_bytes: usize,
    /// How long a publish waits for the broker's confirm before it counts as
    /// failed (default 10 s). Bounds the wait while a resource alarm blocks
    /// publishers.
    pub confirm_timeout_ms: u64,
    /// Connection attempts before [`Bus::connect`] gives up; 0 retries forever
    /// (what a worker under a supervisor wants).
    pub connect_attempts: u32,
    /// Bound on one connection attempt, TCP and AMQP handshake together.
    pub connect_timeout_ms: u64,
    /// First backoff between attempts; doubles per attempt, with jitter.
    pub connect_backoff_initial_ms: u64,
    /// Longest backoff between attempts.
    pub connect_backoff_max_ms: u64,
    /// Connection name shown by `rabbitmqctl list_connections` and the management
    /// UI, so an operator can tell which process a connection belongs to.
    pub connection_name: String,
    /// Whether connecting declares the topology (default true). Set it false for
    /// a role running as a least-privilege broker user with no `configure`
    /// permission on the topology (README "Security"); an administrator declares
    /// it once, and a missing queue or exchange is then a channel error naming it.
    pub declare_topology: bool,
    /// For `amqps://`: a PEM file of certificate authorities trusted besides the
    /// public roots (a private CA). The broker's certificate is always verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<String>,
    /// For `amqps://` with client certificates: the PEM certificate chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_cert_file: Option<String>,
    /// For `amqps://` with client certificates: the PEM (PKCS#8) private key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_key_file: Option<String>,
}

impl Default for BusSettings {
    fn default() -> Self {
        BusSettings {
            topology: Topology::default(),
            max_payload_bytes: 1024 * 1024,
            confirm_timeout_ms: 10_000,
            connect_attempts: 10,
            connect_timeout_ms: 5_000,
            connect_backoff_initial_ms: 200,
            connect_backoff_max_ms: 10_000,
            connection_name: "deploy-gate".to_string(),
            declare_topology: true,
            tls_ca_file: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
        }
    }
}

impl BusSettings {
    /// The backoff before attempt `attempt + 1` (attempt counts from 1): doubling
    /// from the initial backoff up to the maximum, then jittered down by up to a
    /// quarter so a fleet restarted together does not reconnect in lockstep.
    pub(crate) fn backoff(&self, attempt: u32, jitter: u64) -> Duration {
        let initial = self.connect_backoff_initial_ms.max(1);
        let max = self.connect_backoff_max_ms.max(initial);
        let exponent = attempt.saturating_sub(1).min(32);
        let base = initial.saturating_mul(1u64 << exponent).min(max);
        let spread = base / 4;
        let cut = if spread == 0 {
            0
        } else {
            jitter % (spread + 1)
        };
        Duration::from_millis(base - cut)
    }
}

/// A queue's backlog as the broker reports it ([`Bus::queue_depth`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Messages ready for delivery (unacked deliveries are not counted).
    pub messages: u64,
    /// Consumers subscribed to the queue.
    pub consumers: u64,
}

/// One connection to the broker, with the topology declared on it.
///
/// The bus does not reconnect by itself (lapin's automatic recovery is not
/// trusted): when [`Bus::closed`] resolves, a consumer stream ends, or an error
/// says [`Action::Reconnect`](crate::Action::Reconnect) while
/// [`Bus::is_connected`] is false, the owner drops this bus and calls
/// [`Bus::connect`] again, which redeclares everything. Unacked deliveries return
/// to their queues when the connection dies, so nothing is lost, only redelivered.
pub struct Bus {
    /// A handle on every consumer's channel, held until the connection is closed
    /// (and dropped before it otherwise: field order). lapin deadlocks when the
    /// last handle on a channel goes inside its connection-close path while its
    /// I/O thread is still handing that channel a delivery (the consumers lock and
    /// the channel-status lock taken in opposite orders); with a handle here, the
    /// last one never goes there.
    consumer_channels: std::sync::Mutex<Vec<lapin::Channel>>,
    connection: Connection,
    settings: Arc<BusSettings>,
    /// One confirm channel reused by [`Bus::shared_publisher`]: opening a channel
    /// and selecting confirms per message costs more than the publish itself.
    shared_publisher: tokio::sync::Mutex<Option<Publisher>>,
}

impl Bus {
    /// Connects with retries and backoff, then declares the topology.
    ///
    /// `url` is `amqp://user:password@host:port/vhost` (vhost `/` is `%2f`); it is a
    /// secret and never appears in errors. Errors that retrying cannot fix (bad
    /// settings, access refused, a queue declared with other arguments) return at
    /// once.
    pub async fn connect(url: &str, settings: BusSettings) -> Result<Bus, BusError> {
        settings.topology.validate()?;
        let settings = Arc::new(settings);
        let random = RandomState::new();
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let error = match Self::connect_once(url, &settings).await {
                Ok(bus) => return Ok(bus),
                Err(error) if error.action() == crate::Action::Fail => return Err(error),
                Err(error) => error,
            };
            if settings.connect_attempts != 0 && attempt >= settings.connect_attempts {
                return Err(BusError::Connect {
                    attempts: attempt,
                    last: error.to_string(),
                });
            }
            let mut hasher = random.build_hasher();
            hasher.write_u32(attempt);
            tokio::time::sleep(settings.backoff(attempt, hasher.finish())).await;
        }
    }

    async fn connect_once(url: &str, settings: &Arc<BusSettings>) -> Result<Bus, BusError> {
        let properties = ConnectionProperties::default()
            .with_connection_name(LongString::from(settings.connection_name.as_str()));
        let timeout = Duration::from_millis(settings.connect_timeout_ms);
        let tls = crate::tls::amqp_tls_config(settings)?;
        let runtime = lapin::runtime::default_runtime()
            .map_err(|e| BusError::amqp("connect (runtime)", e))?;
        let connect = Connection::connect_with_config(url, properties, tls, runtime);
        let connection = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => {
                return Err(BusError::amqp(
                    format!("connect to {}", crate::tls::masked_url(url)),
                    error,
                ))
            }
            Err(_) => {
                return Err(BusError::Connect {
                    attempts: 1,
                    last: format!(
                        "no connection to {} within {} ms",
                        crate::tls::masked_url(url),
                        settings.connect_timeout_ms
                    ),
                })
            }
        };
        let bus = Bus {
            consumer_channels: std::sync::Mutex::new(Vec::new()),
            connection,
            settings: Arc::clone(settings),
            shared_publisher: tokio::sync::Mutex::new(None),
        };
        if settings.declare_topology {
            bus.declare_topology().await?;
        }
        Ok(bus)
    }

    /// Declares the whole topology again. [`Bus::connect`] already did; this is for
    /// a component that wants to repair it (an operator deleted a queue).
    pub async fn declare_topology(&self) -> Result<(), BusError> {
        let channel = self.channel().await?;
        let declared = self.settings.topology.declare(&channel).await;
        close_quietly(&channel).await;
        declared
    }

    /// Deletes every queue and exchange of this bus's topology, messages included.
    /// For test harnesses and teardown of a prefixed topology, never for a live
    /// fleet.
    pub async fn delete_topology(&self) -> Result<(), BusError> {
        let channel = self.channel().await?;
        let deleted = self.settings.topology.delete(&channel).await;
        close_quietly(&channel).await;
        deleted
    }

    /// The settings this bus was connected with.
    pub fn settings(&self) -> &BusSettings {
        &self.settings
    }

    /// The connection's shared publisher (confirm mode), opened on first use and
    /// reopened when its channel has closed. Library calls that publish one message
    /// at a time use it instead of a channel per message.
    pub async fn shared_publisher(&self) -> Result<Publisher, BusError> {
        let mut shared = self.shared_publisher.lock().await;
        if let Some(publisher) = shared.as_ref().filter(|p| p.is_open()) {
            return Ok(publisher.clone());
        }
        let publisher = self.publisher().await?;
        *shared = Some(publisher.clone());
        Ok(publisher)
    }

    /// A publisher on its own channel, in confirm mode. Clone it to share one
    /// channel between tasks; each publish still waits for its own confirm.
    pub async fn publisher(&self) -> Result<Publisher, BusError> {
        let channel = self.channel().await?;
        Publisher::new(channel, Arc::clone(&self.settings)).await
    }

    /// Consumes `queue` with manual acks and at most `prefetch` unacked deliveries
    /// (set it to the number of deliveries processed concurrently).
    pub async fn consume(&self, queue: &str, prefetch: u16) -> Result<Consumer, BusError> {
        self.start_consumer(queue, prefetch, FieldTable::default())
            .await
    }

    /// Reads a stream queue (the decisions log) from `offset`. Streams require a
    /// prefetch and manual acks; acking is what lets the broker send more.
    pub async fn consume_stream(
        &self,
        queue: &str,
        prefetch: u16,
        offset: StreamOffset,
    ) -> Result<Consumer, BusError> {
        let mut args = FieldTable::default();
        args.insert("x-stream-offset".into(), offset.to_amqp());
        self.start_consumer(queue, prefetch, args).await
    }

    /// Declares a private queue (server-named, exclusive, deleted with the
    /// connection) bound to the results exchange with each of `binding_keys`, and
    /// returns its name. This is how an orchestrator waits for decisions: bind
    /// first, then look in the decision store, then consume, so no decision slips
    /// between the look and the wait.
    pub async fn private_results_queue(&self, binding_keys: &[String]) -> Result<String, BusError> {
        let exchange = self.settings.topology.results_exchange.clone();
        self.private_queue(&exchange, binding_keys).await
    }

    /// Declares a private queue (server-named, exclusive, deleted with the
    /// connection) bound to `exchange` with each of `binding_keys`: a tap that sees
    /// a copy of what crosses the exchange (audits, the secret-scanning test).
    pub async fn private_queue(
        &self,
        exchange: &str,
        binding_keys: &[String],
    ) -> Result<String, BusError> {
        let channel = self.channel().await?;
        let result = async {
            let options = QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            };
            let queue = channel
                .queue_declare("".into(), options, FieldTable::default())
                .await
                .map_err(|e| BusError::amqp("queue.declare (private)", e))?;
            let name = queue.name().as_str().to_string();
            for key in binding_keys {
                channel
                    .queue_bind(
                        queue.name().clone(),
                        short(exchange)?,
                        short(key)?,
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| BusError::amqp(format!("queue.bind {name} {key}"), e))?;
            }
            Ok(name)
        }
        .await;
        close_quietly(&channel).await;
        result
    }

    /// Whether the connection is still open. False after the broker closed it, the
    /// network failed or heartbeats stopped.
    pub fn is_connected(&self) -> bool {
        self.connection.status().connected()
    }

    /// Resolves when the connection is lost, so a long-running component can
    /// `select!` on it and reconnect. Checks the connection state at least once a
    /// second besides listening for the client's error events.
    pub async fn closed(&self) {
        let mut events = self.connection.events_listener();
        loop {
            if !self.is_connected() {
                return;
            }
            match tokio::time::timeout(Duration::from_secs(1), events.next()).await {
                Ok(None) | Ok(Some(Event::Error(_))) => return,
                Ok(Some(_)) | Err(_) => {}
            }
        }
    }

    /// Closes the connection cleanly; unacked deliveries return to their queues.
    /// A broker that does not answer within [`REPLY_WAIT`](crate::REPLY_WAIT) gives
    /// [`BusError::NoReply`], so that a shutdown keeps its deadline; dropping the
    /// `Bus` then drops the socket, which requeues the same deliveries.
    pub async fn close(&self) -> Result<(), BusError> {
        if !self.is_connected() {
            return Ok(());
        }
        let close = async {
            self.connection
                .close(200, "bye".into())
                .await
                .map_err(|e| BusError::amqp("connection.close", e))
        };
        let closed =
            BusError::within(|| "connection.close".to_string(), crate::REPLY_WAIT, close).await;
        // Only now, outside lapin's close path (see `consumer_channels`).
        let held = std::mem::take(&mut *self.held_channels());
        drop(held);
        closed
    }

    fn held_channels(&self) -> std::sync::MutexGuard<'_, Vec<lapin::Channel>> {
        self.consumer_channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many messages wait in `queue` (ready, not yet delivered) and how many
    /// consumers read it, from a passive declare: it never creates the queue, and
    /// a missing queue is an error (`queue.declare … NOT_FOUND`). Status pages and
    /// probes call it; it opens and closes a channel of its own each time.
    pub async fn queue_depth(&self, queue: &str) -> Result<QueueDepth, BusError> {
        let channel = self.channel().await?;
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let declared = channel
            .queue_declare(short(queue)?, options, FieldTable::default())
            .await
            .map_err(|e| BusError::amqp(format!("queue.declare (passive) {queue}"), e));
        close_quietly(&channel).await;
        let declared = declared?;
        Ok(QueueDepth {
            messages: u64::from(declared.message_count()),
            consumers: u64::from(declared.consumer_count()),
        })
    }

    async fn channel(&self) -> Result<lapin::Channel, BusError> {
        self.connection
            .create_channel()
            .await
            .map_err(|e| BusError::amqp("channel.open", e))
    }

    async fn start_consumer(
        &self,
        queue: &str,
        prefetch: u16,
        args: FieldTable,
    ) -> Result<Consumer, BusError> {
        let channel = self.channel().await?;
        {
            let mut held = self.held_channels();
            held.retain(|held| held.status().connected());
            held.push(channel.clone());
        }
        channel
            .basic_qos(prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(|e| BusError::amqp("basic.qos", e))?;
        let inner = channel
            .basic_consume(
                short(queue)?,
                "".into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await
            .map_err(|e| BusError::amqp(format!("basic.consume {queue}"), e))?;
        // Dead letters with a reason are republished on a confirm channel of their own,
        // so a consumer's channel never mixes deliveries and confirms.
        let dead_letters = self.publisher().await?;
        Ok(Consumer::new(
            inner,
            channel,
            dead_letters,
            queue.to_string(),
            Arc::clone(&self.settings),
        ))
    }
}

/// Closes a short-lived channel; a failure only means it is already gone.
async fn close_quietly(channel: &lapin::Channel) {
    let _ = channel.close(200, "done".into()).await;
}

impl StreamOffset {
    fn to_amqp(self) -> AMQPValue {
        match self {
            StreamOffset::First => AMQPValue::LongString("first".into()),
            StreamOffset::Last => AMQPValue::LongString("last".into()),
            StreamOffset::Next => AMQPValue::LongString("next".into()),
            StreamOffset::Offset(offset) => {
                AMQPValue::LongLongInt(i64::try_from(offset).unwrap_or(i64::MAX))
            }
            StreamOffset::Since(seconds) => AMQPValue::Timestamp(seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_down_by_a_quarter_at_most() {
        let settings = BusSettings {
            connect_backoff_initial_ms: 100,
            connect_backoff_max_ms: 1_000,
            ..BusSettings::default()
        };
        assert_eq!(settings.backoff(1, 0), Duration::from_millis(100));
        assert_eq!(settings.backoff(2, 0), Duration::from_millis(200));
        assert_eq!(settings.backoff(3, 0), Duration::from_millis(400));
        assert_eq!(settings.backoff(5, 0), Duration::from_millis(1_000));
        assert_eq!(settings.backoff(60, 0), Duration::from_millis(1_000));
        for jitter in [1, 7, 250, u64::MAX] {
            let delay = settings.backoff(5, jitter);
            assert!(delay >= Duration::from_millis(750) && delay <= Duration::from_millis(1_000));
        }
    }

    #[test]
    fn bus_settings_refuse_unknown_fields() {
        let settings: BusSettings = serde_json::from_str(
            r#"{"max_payload_bytes": 10, "topology": {"events_delivery_limit": 2}}"#,
        )
        .expect("valid settings");
        assert_eq!(settings.max_payload_bytes, 10);
        assert_eq!(settings.topology.events_delivery_limit, 2);
        assert!(serde_json::from_str::<BusSettings>(r#"{"max_payload": 10}"#).is_err());
    }
}
