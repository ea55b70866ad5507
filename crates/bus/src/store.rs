//! Redis: the decision store (one decision per event id) and the verdict cache
//! (one analysis per content). Both are optimisations the fleet must survive
//! without: every operation is bounded by a short timeout and every failure is a
//! typed [`StoreError`] the caller can shrug off.

use std::{future::Future, time::Duration};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

use gate_core::{Decision, Outcome, Verdict};

use crate::topology::slug;

/// How the stores use Redis, apart from its URL (a secret, passed separately).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// Prefix of every key (default `gate:`), so several fleets or tests can share
    /// one Redis.
    pub key_prefix: String,
    /// Bound on any one operation, connecting included (default 250 ms). A Redis
    /// that is down or hung costs each event at most this much.
    pub op_timeout_ms: u64,
    /// How long a decision is kept (default 30 days): longer than any redelivery or
    /// `wait` can come after the event.
    pub decision_ttl_secs: u64,
    /// How long a verdict is reused (default 7 days).
    pub verdict_ttl_secs: u64,
    /// For `rediss://`: a PEM file of the certificate authorities trusted
    /// instead of the system's (a private CA). The server certificate is always
    /// verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<String>,
    /// For `rediss://` with client certificates: the PEM certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_cert_file: Option<String>,
    /// For `rediss://` with client certificates: the PEM private key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_key_file: Option<String>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            key_prefix: "gate:".to_string(),
            op_timeout_ms: 250,
            decision_ttl_secs: 30 * 24 * 3600,
            verdict_ttl_secs: 7 * 24 * 3600,
            tls_ca_file: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
        }
    }
}

/// A Redis failure. None of them stop the gate: the worker goes on without the
/// store (analysing again instead of reusing) and counts the failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Redis did not answer within the operation timeout (down, hung, or slow).
    #[error("redis {op} timed out after {after_ms} ms")]
    Timeout {
        /// The command.
        op: &'static str,
        /// The configured timeout.
        after_ms: u64,
    },
    /// Redis could not be reached or the connection broke.
    #[error("redis {op} failed: redis unavailable at {url}: {source}")]
    Unavailable {
        /// The command.
        op: &'static str,
        /// The Redis URL, password masked.
        url: String,
        /// The client's error.
        #[source]
        source: redis::RedisError,
    },
    /// Redis answered with an error (wrong type, out of memory, …).
    #[error("redis {op} failed: {source}")]
    Command {
        /// The command.
        op: &'static str,
        /// The client's error.
        #[source]
        source: redis::RedisError,
    },
    /// A stored value is not the JSON it should be (written by another version, or
    /// by hand).
    #[error("redis key {key} holds a value that is not valid JSON for its type: {source}")]
    Corrupt {
        /// The key.
        key: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be turned into JSON (a bug).
    #[error("could not encode a value for redis: {0}")]
    Encode(#[source] serde_json::Error),
    /// The Redis URL cannot be used (never includes the URL itself).
    #[error("invalid redis url: {0}")]
    InvalidUrl(String),
}

impl StoreError {
    /// Whether Redis itself is unreachable or hung, as opposed to a bad value or
    /// command. Outages deserve one warning per outage and a counter; the rest
    /// deserve a log line each.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            StoreError::Timeout { .. } | StoreError::Unavailable { .. }
        )
    }
}

/// A handle on Redis shared by the stores: one multiplexed connection that
/// reconnects by itself after Redis comes back.
#[derive(Clone)]
pub struct Redis {
    pub(crate) manager: ConnectionManager,
    pub(crate) settings: RedisSettings,
    /// For errors: where Redis is, password masked.
    masked_url: std::sync::Arc<str>,
}

impl Redis {
    /// Prepares the connection without connecting, so a process starts (and works
    /// without its stores) while Redis is down; the first operation connects.
    /// Must be called inside a Tokio runtime.
    pub fn open(url: &str, settings: RedisSettings) -> Result<Redis, StoreError> {
        crate::tls::install_crypto_provider();
        let client = crate::tls::redis_client(url, &settings)?;
        let timeout = Duration::from_millis(settings.op_timeout_ms.max(1));
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
        Ok(Redis {
            manager,
            settings,
            masked_url: crate::tls::masked_url(url).into(),
        })
    }

    /// Checks that Redis answers, for readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.manager.clone();
        self.bounded("PING", async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await
        .map(|_| ())
    }

    /// The decision store on this connection.
    pub fn decision_store(&self) -> DecisionStore {
        DecisionStore {
            redis: self.clone(),
        }
    }

    /// Once-only marks under `<key_prefix><namespace>:`, e.g. delivered
    /// notifications, kept for `ttl`.
    pub fn marks(&self, namespace: &str, ttl: Duration) -> Marks {
        Marks {
            redis: self.clone(),
            prefix: format!("{}{namespace}:", self.settings.key_prefix),
            ttl_secs: ttl.as_secs().max(1),
        }
    }

    /// The verdict cache on this connection.
    pub fn verdict_cache(&self) -> VerdictCache {
        VerdictCache {
            redis: self.clone(),
        }
    }

    /// The outcome store on this connection: what happened to decided changes.
    pub fn outcome_store(&self) -> OutcomeStore {
        OutcomeStore {
            redis: self.clone(),
        }
    }

    /// Deletes every key under the configured prefix: for test harnesses, never
    /// for a live fleet.
    pub async fn delete_all_keys(&self) -> Result<u64, StoreError> {
        let pattern = format!("{}*", self.settings.key_prefix);
        let mut cursor = 0u64;
        let mut n_deleted = 0u64;
        loop {
            let mut conn = self.manager.clone();
            let scan = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .to_owned();
            let (next, keys): (u64, Vec<String>) = self
                .bounded("SCAN", async move { scan.query_async(&mut conn).await })
                .await?;
            if !keys.is_empty() {
                let mut conn = self.manager.clone();
                let del = redis::cmd("DEL").arg(&keys).to_owned();
                n_deleted += self
                    .bounded(
                        "DEL",
                        async move { del.query_async::<u64>(&mut conn).await },
                    )
                    .await?;
            }
            if next == 0 {
                return Ok(n_deleted);
            }
            cursor = next;
        }
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.settings.key_prefix)
    }

    /// Runs one command under the operation timeout and types its failure.
    pub(crate) async fn bounded<T>(
        &self,
        op: &'static str,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let after_ms = self.settings.op_timeout_ms.max(1);
        match tokio::time::timeout(Duration::from_millis(after_ms), command).await {
            Err(_) => Err(StoreError::Timeout { op, after_ms }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) if source.is_timeout() => Err(StoreError::Timeout { op, after_ms }),
            Ok(Err(source))
                if source.is_io_error()
                    || source.is_connection_refusal()
                    || source.is_connection_dropped()
                    || source.is_unrecoverable_error() =>
            {
                Err(StoreError::Unavailable {
                    op,
                    url: self.masked_url.to_string(),
                    source,
                })
            }
            Ok(Err(source)) => Err(StoreError::Command { op, source }),
        }
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        op: &'static str,
        key: String,
    ) -> Result<Option<T>, StoreError> {
        let mut conn = self.manager.clone();
        let get = redis::cmd("GET").arg(&key).to_owned();
        let raw: Option<String> = self
            .bounded(op, async move { get.query_async(&mut conn).await })
            .await?;
        raw.map(|raw| {
            serde_json::from_str(&raw).map_err(|source| StoreError::Corrupt { key, source })
        })
        .transpose()
    }
}

/// What [`DecisionStore::lookup`] found: the stored decision (`None` when none
/// was asked for or stored) and one slot per verdict key, in order.
#[derive(Debug)]
pub struct Lookup {
    /// The event's stored decision.
    pub decision: Result<Option<Decision>, StoreError>,
    /// The cached verdicts, one per key asked for.
    pub verdicts: Vec<Result<Option<Verdict>, StoreError>>,
}

/// What [`DecisionStore::insert`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Insert {
    /// This decision is now the event's decision.
    Stored,
    /// The event already had a decision, which stays; publish that one instead.
    AlreadyDecided(Box<Decision>),
}

/// Decisions by event id (`<prefix>decision:<event_id>`): the first decision stored
/// for an event wins, so a redelivered event republishes the same answer instead
/// of paying for, and possibly contradicting, a second analysis.
///
/// Beside it: an index by repository and head commit
/// (`<prefix>decision-by-head:<repo-slug>:<head-sha>` → event id) for orchestrators
/// that know the commit but not the event, and the automatic decision a person's
/// decision superseded (`<prefix>decision-auto:<event_id>`).
#[derive(Clone)]
pub struct DecisionStore {
    redis: Redis,
}

impl DecisionStore {
    /// Stores `decision` unless its event already has one, atomically (`SET NX GET
    /// EX`, Redis 7.0 or later), with the configured TTL.
    ///
    /// In the same atomic step (one Lua script, so no reader ever sees the decision
    /// without its index) it points the head index
    /// (`<prefix>decision-by-head:<repo-slug>:<head-sha>`, see
    /// [`DecisionStore::get_by_head`]) at this event: when the decision is stored,
    /// unconditionally (the newest event for a commit wins the index); when the
    /// event was already decided, only if the index is missing (a decision stored
    /// by a build without the index), so a redelivery never takes the index back
    /// from a newer event. Both keys get the decision TTL. The script touches two
    /// keys, so this store needs a single Redis node, not a Redis Cluster.
    pub async fn insert(&self, decision: &Decision) -> Result<Insert, StoreError> {
        self.insert_caching(decision, &[]).await
    }

    /// As [`DecisionStore::insert`], caching `verdicts` as [`VerdictCache::put`]
    /// would, in the same round trip: one pipeline, the verdicts first. A failure
    /// of any of it fails the whole call.
    pub async fn insert_caching(
        &self,
        decision: &Decision,
        verdicts: &[(&VerdictKey, &Verdict)],
    ) -> Result<Insert, StoreError> {
        const INSERT_AND_INDEX: &str = r"
local previous = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'EX', ARGV[2])
if previous then
  redis.call('SET', KEYS[2], ARGV[3], 'NX', 'EX', ARGV[2])
else
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[2])
end
return previous
";
        let key = self.redis.key("decision", &decision.event_id);
        let index_key = self.head_index_key(&decision.repo, &decision.head);
        let json = serde_json::to_string(decision).map_err(StoreError::Encode)?;
        let ttl = self.redis.settings.decision_ttl_secs.max(1);
        let mut conn = self.redis.manager.clone();
        let mut pipe = redis::pipe();
        for (verdict_key, verdict) in verdicts {
            pipe.cmd("SET")
                .arg(self.redis.key("verdict", verdict_key.as_str()))
                .arg(serde_json::to_string(verdict).map_err(StoreError::Encode)?)
                .arg("EX")
                .arg(self.redis.settings.verdict_ttl_secs.max(1))
                .ignore();
        }
        pipe.cmd("EVAL")
            .arg(INSERT_AND_INDEX)
            .arg(2)
            .arg(&key)
            .arg(&index_key)
            .arg(json)
            .arg(ttl)
            .arg(&decision.event_id);
        let (previous,): (Option<String>,) = self
            .redis
            .bounded("SET NX", async move { pipe.query_async(&mut conn).await })
            .await?;
        match previous {
            None => Ok(Insert::Stored),
            Some(raw) => serde_json::from_str(&raw)
                .map(|existing| Insert::AlreadyDecided(Box::new(existing)))
                .map_err(|source| StoreError::Corrupt { key, source }),
        }
    }

    /// The decision stored for `event_id` (when given) and the verdicts cached
    /// under `keys`, in one round trip (`MGET`; like the other multi-key
    /// operations here, for a single Redis node). `Err` only when Redis could not
    /// be asked; a value that does not parse is an `Err` in its own slot, so one
    /// bad verdict does not hide the stored decision.
    pub async fn lookup(
        &self,
        event_id: Option<&str>,
        keys: &[&VerdictKey],
    ) -> Result<Lookup, StoreError> {
        let decision_key = event_id.map(|id| self.redis.key("decision", id));
        let verdict_keys: Vec<String> = keys
            .iter()
            .map(|key| self.redis.key("verdict", key.as_str()))
            .collect();
        let all: Vec<&String> = decision_key.iter().chain(&verdict_keys).collect();
        if all.is_empty() {
            return Ok(Lookup {
                decision: Ok(None),
                verdicts: Vec::new(),
            });
        }
        let mut conn = self.redis.manager.clone();
        let mget = redis::cmd("MGET").arg(&all).to_owned();
        let raw: Vec<Option<String>> = self
            .redis
            .bounded("MGET decision and verdicts", async move {
                mget.query_async::<Vec<Option<String>>>(&mut conn).await
            })
            .await?;
        let mut raw = raw.into_iter();
        fn parse<T: DeserializeOwned>(
            key: &str,
            raw: Option<String>,
        ) -> Result<Option<T>, StoreError> {
            raw.map(|raw| {
                serde_json::from_str(&raw).map_err(|source| StoreError::Corrupt {
                    key: key.to_string(),
                    source,
                })
            })
            .transpose()
        }
        let decision = match &decision_key {
            Some(key) => parse(key, raw.next().flatten()),
            None => Ok(None),
        };
        let verdicts = verdict_keys
            .iter()
            .map(|key| parse(key, raw.next().flatten()))
            .collect();
        Ok(Lookup { decision, verdicts })
    }

    /// The decision stored for an event, if any.
    pub async fn get(&self, event_id: &str) -> Result<Option<Decision>, StoreError> {
        self.redis
            .get_json("GET decision", self.redis.key("decision", event_id))
            .await
    }

    /// The decision of the newest event stored for commit `head_sha` of `repo`, if
    /// any: what `deploy-gate wait --repo R --sha S` looks for when it does not know
    /// the event id.
    ///
    /// The index is keyed by the repository's routing slug and the lowercased sha,
    /// and `repo` and `head_sha` are compared without ASCII case, so `Acme/Shop`
    /// finds `acme/shop`. Two repositories whose names share a slug (`acme/shop`,
    /// `acme.shop`) share an index entry; a decision for the other one is not
    /// returned. The sha must be the full one the event carried, not an
    /// abbreviation. Two reads (index, then decision), each bounded by the
    /// operation timeout.
    pub async fn get_by_head(
        &self,
        repo: &str,
        head_sha: &str,
    ) -> Result<Option<Decision>, StoreError> {
        let index_key = self.head_index_key(repo, head_sha);
        let mut conn = self.redis.manager.clone();
        let get = redis::cmd("GET").arg(&index_key).to_owned();
        let event_id: Option<String> = self
            .redis
            .bounded("GET decision-by-head", async move {
                get.query_async(&mut conn).await
            })
            .await?;
        let Some(event_id) = event_id else {
            return Ok(None);
        };
        Ok(self.get(&event_id).await?.filter(|decision| {
            decision.repo.eq_ignore_ascii_case(repo) && decision.head.eq_ignore_ascii_case(head_sha)
        }))
    }

    /// Makes `decision` (a person's, with `approval` set) the event's decision,
    /// whatever was stored before: `deploy-gate approve|override`. A redelivered
    /// event then republishes the person's decision, and `wait` finds it.
    ///
    /// Atomically (one Lua script) it overwrites `<prefix>decision:<event_id>`,
    /// points the head index at the event, and keeps the decision it replaced under
    /// `<prefix>decision-auto:<event_id>` for the audit trail
    /// ([`DecisionStore::get_superseded`]) — only the first automatic one: a
    /// replaced decision that is itself a person's (an override of an approval) is
    /// not kept there, so the automatic answer is never lost. All three keys get
    /// the decision TTL. Needs a single Redis node, like [`DecisionStore::insert`].
    pub async fn supersede(&self, decision: &Decision) -> Result<(), StoreError> {
        const SUPERSEDE: &str = r"
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[2])
if previous then
  local ok, old = pcall(cjson.decode, previous)
  local by_a_person = ok and type(old) == 'table' and type(old['approval']) == 'table'
  if not by_a_person then
    redis.call('SET', KEYS[2], previous, 'NX', 'EX', ARGV[2])
  end
end
return 1
";
        let key = self.redis.key("decision", &decision.event_id);
        let superseded_key = self.redis.key("decision-auto", &decision.event_id);
        let index_key = self.head_index_key(&decision.repo, &decision.head);
        let json = serde_json::to_string(decision).map_err(StoreError::Encode)?;
        let ttl = self.redis.settings.decision_ttl_secs.max(1);
        let mut conn = self.redis.manager.clone();
        let script = redis::cmd("EVAL")
            .arg(SUPERSEDE)
            .arg(3)
            .arg(&key)
            .arg(&superseded_key)
            .arg(&index_key)
            .arg(json)
            .arg(ttl)
            .arg(&decision.event_id)
            .to_owned();
        self.redis
            .bounded("SET supersede", async move {
                script.query_async::<i64>(&mut conn).await
            })
            .await
            .map(|_| ())
    }

    /// The automatic decision a person's decision replaced
    /// ([`DecisionStore::supersede`]), if any: the audit trail of an approval or
    /// override.
    pub async fn get_superseded(&self, event_id: &str) -> Result<Option<Decision>, StoreError> {
        self.redis
            .get_json(
                "GET decision-auto",
                self.redis.key("decision-auto", event_id),
            )
            .await
    }

    /// `<prefix>decision-by-head:<repo-slug>:<lowercased head sha>`.
    fn head_index_key(&self, repo: &str, head_sha: &str) -> String {
        self.redis.key(
            "decision-by-head",
            &format!("{}:{}", slug(repo), head_sha.to_ascii_lowercase()),
        )
    }
}

/// The content key of a verdict: SHA-256 over every part that changes the
/// answer (prompt version, analyzer, policy version, packed context…), each part
/// length-prefixed so `["ab", "c"]` and `["a", "bc"]` differ. A cryptographic hash,
/// because a collision would hand one change another change's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerdictKey(String);

impl VerdictKey {
    /// The key of these parts, in this order.
    pub fn from_parts<I, P>(parts: I) -> VerdictKey
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let mut hasher = Sha256::new();
        for part in parts {
            let part = part.as_ref();
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        VerdictKey(
            hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }

    /// The hex digest, as it appears in the Redis key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Verdicts by content (`<prefix>verdict:<sha256>`), kept for the configured TTL,
/// Remembers that something happened once (a notification delivered to a channel),
/// so a redelivered copy can be skipped. Expires after its TTL.
#[derive(Clone)]
pub struct Marks {
    redis: Redis,
    prefix: String,
    ttl_secs: u64,
}

impl std::fmt::Debug for Marks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Marks")
            .field("prefix", &self.prefix)
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

impl Marks {
    /// Whether `id` is marked.
    pub async fn contains(&self, id: &str) -> Result<bool, StoreError> {
        let key = format!("{}{id}", self.prefix);
        let mut conn = self.redis.manager.clone();
        self.redis
            .bounded("EXISTS", async move {
                redis::cmd("EXISTS")
                    .arg(&key)
                    .query_async::<u64>(&mut conn)
                    .await
            })
            .await
            .map(|n| n > 0)
    }

    /// Marks `id`; `Ok(false)` when it was already marked (`SET NX EX`).
    pub async fn insert(&self, id: &str) -> Result<bool, StoreError> {
        let key = format!("{}{id}", self.prefix);
        let ttl = self.ttl_secs;
        let mut conn = self.redis.manager.clone();
        self.redis
            .bounded("SET NX", async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl)
                    .query_async::<Option<String>>(&mut conn)
                    .await
            })
            .await
            .map(|reply| reply.is_some())
    }

    /// Forgets `id` (`DEL`), so the next [`Marks::insert`] of it succeeds: for a
    /// claim whose work failed and must be allowed again (a webhook delivery that
    /// was answered with an error, which the sender redelivers).
    pub async fn remove(&self, id: &str) -> Result<(), StoreError> {
        let key = format!("{}{id}", self.prefix);
        let mut conn = self.redis.manager.clone();
        self.redis
            .bounded("DEL", async move {
                redis::cmd("DEL")
                    .arg(&key)
                    .query_async::<u64>(&mut conn)
                    .await
            })
            .await
            .map(|_| ())
    }
}

/// so the same change seen again (another event, another branch) costs no model
/// call. Last write wins: any verdict for the same content is as good as another.
#[derive(Clone)]
pub struct VerdictCache {
    redis: Redis,
}

impl VerdictCache {
    /// The cached verdict for `key`, if any.
    pub async fn get(&self, key: &VerdictKey) -> Result<Option<Verdict>, StoreError> {
        self.redis
            .get_json("GET verdict", self.redis.key("verdict", key.as_str()))
            .await
    }

    /// Caches `verdict` under `key` with the configured TTL.
    pub async fn put(&self, key: &VerdictKey, verdict: &Verdict) -> Result<(), StoreError> {
        let redis_key = self.redis.key("verdict", key.as_str());
        let json = serde_json::to_string(verdict).map_err(StoreError::Encode)?;
        let ttl = self.redis.settings.verdict_ttl_secs.max(1);
        let mut conn = self.redis.manager.clone();
        let set = redis::cmd("SET")
            .arg(&redis_key)
            .arg(json)
            .arg("EX")
            .arg(ttl)
            .to_owned();
        self.redis
            .bounded("SET verdict", async move {
                set.query_async::<()>(&mut conn).await
            })
            .await
    }
}

/// Keys one SCAN round asks for, and decisions fetched per round trip.
const SCAN_BATCH: usize = 500;

/// Outcomes by event id (`<prefix>outcome:<event_id>`), next to the decision
/// (`<prefix>decision:<event_id>`): a hash with one field per result
/// (`deployed`, `rolled_back`, `incident`) holding that report's JSON, so a change
/// that went out and was later rolled back keeps both reports, and a redelivered
/// report overwrites itself instead of adding a duplicate. Kept for the decision
/// TTL from the last report.
#[derive(Clone)]
pub struct OutcomeStore {
    redis: Redis,
}

/// A stored decision with what is known of its fate, as
/// [`OutcomeStore::for_each_decision`] hands it out.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionOutcomes {
    /// The event's decision (a person's, when one superseded the automatic one).
    pub decision: Decision,
    /// The automatic decision a person's decision superseded, while it is kept.
    pub automatic: Option<Decision>,
    /// The outcomes reported for the event, in [`gate_core::OutcomeResult`] order.
    pub outcomes: Vec<Outcome>,
}

/// What a scan of the decisions read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Decisions handed to the visitor.
    pub n_decisions: u64,
    /// Decisions or outcomes skipped because their JSON is not this build's
    /// (written by another version, or by hand).
    pub n_unreadable: u64,
}

impl OutcomeStore {
    /// Stores `outcome` next to its event's decision, atomically with the key's
    /// TTL (`HSET` + `EXPIRE` in one transaction). Storing the same report again is
    /// harmless: the field is overwritten with the same value.
    pub async fn record(&self, outcome: &Outcome) -> Result<(), StoreError> {
        let key = self.redis.key("outcome", &outcome.event_id);
        let json = serde_json::to_string(outcome).map_err(StoreError::Encode)?;
        let ttl = self.redis.settings.decision_ttl_secs.max(1);
        let mut conn = self.redis.manager.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(&key)
            .arg(outcome.result.as_str())
            .arg(json)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(ttl)
            .ignore();
        self.redis
            .bounded("HSET outcome", async move {
                pipe.query_async::<()>(&mut conn).await
            })
            .await
    }

    /// The outcomes reported for `event_id`, in result order (deployed, rolled
    /// back, incident); empty when none was.
    pub async fn get(&self, event_id: &str) -> Result<Vec<Outcome>, StoreError> {
        let key = self.redis.key("outcome", event_id);
        let mut conn = self.redis.manager.clone();
        let get = redis::cmd("HGETALL").arg(&key).to_owned();
        let fields: Vec<(String, String)> = self
            .redis
            .bounded("HGETALL outcome", async move {
                get.query_async(&mut conn).await
            })
            .await?;
        let mut outcomes = Vec::with_capacity(fields.len());
        for (_, raw) in fields {
            let outcome = serde_json::from_str(&raw).map_err(|source| StoreError::Corrupt {
                key: key.clone(),
                source,
            })?;
            outcomes.push(outcome);
        }
        outcomes.sort_by_key(|o: &Outcome| o.result);
        Ok(outcomes)
    }

    /// Visits every stored decision under the key prefix with its outcomes and, for
    /// a person's decision, the automatic one it superseded: `deploy-gate
    /// calibrate`'s input. Reads with `SCAN` (never `KEYS`, which would stall a
    /// shared Redis) in rounds of 500 keys, three round trips per round; memory
    /// holds one round, not the whole store. A decision that expires between the
    /// scan and the read is skipped; one whose JSON is not this build's is
    /// counted in [`ScanSummary::n_unreadable`] and skipped. `SCAN` may return a key
    /// twice; each decision is visited once per call as long as the store holds
    /// fewer keys than fit in memory as a set of ids.
    pub async fn for_each_decision(
        &self,
        mut visit: impl FnMut(DecisionOutcomes),
    ) -> Result<ScanSummary, StoreError> {
        let decision_prefix = self.redis.key("decision", "");
        let pattern = format!("{}*", glob_escape(&decision_prefix));
        let mut seen = std::collections::HashSet::new();
        let mut summary = ScanSummary::default();
        let mut cursor = 0u64;
        loop {
            let mut conn = self.redis.manager.clone();
            let scan = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .to_owned();
            let (next, keys): (u64, Vec<String>) = self
                .redis
                .bounded("SCAN decisions", async move {
                    scan.query_async(&mut conn).await
                })
                .await?;
            let event_ids: Vec<String> = keys
                .iter()
                .filter_map(|key| key.strip_prefix(&decision_prefix))
                .filter(|id| seen.insert(id.to_string()))
                .map(str::to_string)
                .collect();
            if !event_ids.is_empty() {
                self.visit_batch(&event_ids, &mut visit, &mut summary)
                    .await?;
            }
            if next == 0 {
                return Ok(summary);
            }
            cursor = next;
        }
    }

    async fn visit_batch(
        &self,
        event_ids: &[String],
        visit: &mut impl FnMut(DecisionOutcomes),
        summary: &mut ScanSummary,
    ) -> Result<(), StoreError> {
        let keys = |kind: &str| -> Vec<String> {
            event_ids
                .iter()
                .map(|id| self.redis.key(kind, id))
                .collect()
        };
        let decisions = self.mget("MGET decisions", keys("decision")).await?;
        let automatic = self
            .mget("MGET decision-auto", keys("decision-auto"))
            .await?;
        let mut pipe = redis::pipe();
        for key in keys("outcome") {
            pipe.cmd("HGETALL").arg(key);
        }
        let mut conn = self.redis.manager.clone();
        let outcomes: Vec<Vec<(String, String)>> = self
            .redis
            .bounded("HGETALL outcomes", async move {
                pipe.query_async(&mut conn).await
            })
            .await?;
        let rows = decisions.into_iter().zip(automatic).zip(outcomes);
        for ((decision, automatic), fields) in rows {
            let Some(raw) = decision else {
                continue; // expired since the scan
            };
            let Ok(decision) = serde_json::from_str::<Decision>(&raw) else {
                summary.n_unreadable += 1;
                continue;
            };
            let automatic = automatic.and_then(|raw| serde_json::from_str::<Decision>(&raw).ok());
            let mut outcomes = Vec::with_capacity(fields.len());
            for (_, raw) in fields {
                match serde_json::from_str::<Outcome>(&raw) {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(_) => summary.n_unreadable += 1,
                }
            }
            outcomes.sort_by_key(|o| o.result);
            summary.n_decisions += 1;
            visit(DecisionOutcomes {
                decision,
                automatic,
                outcomes,
            });
        }
        Ok(())
    }

    async fn mget(
        &self,
        op: &'static str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<String>>, StoreError> {
        let mut conn = self.redis.manager.clone();
        let mget = redis::cmd("MGET").arg(keys).to_owned();
        self.redis
            .bounded(op, async move { mget.query_async(&mut conn).await })
            .await
    }
}

/// `text` with Redis glob characters escaped, for a literal prefix in `SCAN MATCH`.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_of_a_prefix_match_only_themselves() {
        assert_eq!(glob_escape("gate:decision:"), "gate:decision:");
        assert_eq!(glob_escape("t[1]*?\\:"), "t\\[1\\]\\*\\?\\\\:");
    }

    #[test]
    fn verdict_keys_are_stable_and_length_prefixed() {
        let key = VerdictKey::from_parts(["prompt-v1", "rules", "diff"]);
        assert_eq!(key, VerdictKey::from_parts(["prompt-v1", "rules", "diff"]));
        assert_eq!(key.as_str().len(), 64);
        assert_ne!(
            VerdictKey::from_parts(["ab", "c"]),
            VerdictKey::from_parts(["a", "bc"])
        );
    }

    #[test]
    fn redis_settings_refuse_unknown_fields() {
        let settings: RedisSettings =
            serde_json::from_str(r#"{"op_timeout_ms": 100}"#).expect("valid settings");
        assert_eq!(settings.op_timeout_ms, 100);
        assert_eq!(settings.key_prefix, "gate:");
        assert!(serde_json::from_str::<RedisSettings>(r#"{"timeout": 1}"#).is_err());
    }
}
