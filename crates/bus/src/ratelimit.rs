//! Fleet-wide rate limits: the budgets every worker shares for one model provider
//! and model, kept in Redis and taken atomically by a Lua script, and the pause a
//! 429's `retry-after` puts on the provider for the whole fleet.
//!
//! Each budget (requests, input tokens, output tokens per minute) is a GCRA
//! ("generic cell rate algorithm", a token bucket kept as one timestamp): the key
//! holds the theoretical arrival time, in microseconds of Redis's own clock
//! (`TIME`), so the workers' clocks do not matter. The script takes every budget of
//! a request or none, and answers how long to wait otherwise.
//!
//! The bucket is sized so that **any 60-second window holds at most the limit**:
//! a burst of `limit / 20` (at least 1), refilled at `limit - (burst - 1)` a
//! minute. Providers refill continuously (a burst of a whole minute), so staying
//! inside every sliding minute is stricter than they are and never earns a 429;
//! it costs 5 % of the limit.
//!
//! A request larger than the burst (a big prompt against a small token budget) is
//! admitted once the bucket is otherwise full and leaves it in debt: the following
//! requests wait until the debt is paid, so the rate over time holds.
//!
//! Keys, under the stores' key prefix, share a Redis Cluster hash tag per scope:
//! `<prefix>ratelimit:{<provider-model>}:<budget>` and
//! `<prefix>ratelimit:{<provider-model>}:pause` (a key with a `PX` expiry).
//!
//! Scripts run with `EVALSHA`; when Redis does not know the script (first call, a
//! restart, `SCRIPT FLUSH`) with `EVAL`, loading it in the same round trip.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use redis::FromRedisValue;

use crate::store::{Redis, StoreError};
use crate::topology::slug;

/// One budget of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget<'a> {
    /// `requests`, `input_tokens`, `output_tokens`: the last part of the key.
    pub name: &'a str,
    /// The fleet's limit per minute.
    pub per_minute: u32,
    /// What this request takes of it.
    pub amount: u64,
}

/// What the fleet's budgets answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Every budget had room, and the request's amounts are taken.
    Admitted,
    /// Nothing was taken: a budget is spent, or the scope is paused. Ask again
    /// after this long.
    Wait(Duration),
    /// Redis failed at the last try, less than the retry interval ago: not asked.
    RedisDown,
}

/// GCRA parameters of a budget: microseconds per unit, and the burst in units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rate {
    interval_us: u64,
    burst: u64,
}

impl Rate {
    /// At most `per_minute` units in any 60-second window (see the module docs).
    fn sliding_minute(per_minute: u32) -> Rate {
        let limit = u64::from(per_minute.max(1));
        let burst = (limit / 20).max(1);
        let refill = limit - (burst - 1);
        Rate {
            interval_us: 60_000_000u64.div_ceil(refill),
            burst,
        }
    }
}

/// Takes every budget or none. KEYS: the pause key, then one key per budget;
/// ARGV: amount, interval (µs), burst, per budget. Returns `{1, 0}` admitted, or
/// `{0, wait_us}`.
const ACQUIRE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local paused = redis.call('PTTL', KEYS[1])
if paused > 0 then
  return {0, paused * 1000}
end
local wait = 0
local next_tat = {}
for i = 2, #KEYS do
  local j = (i - 2) * 3
  local amount = tonumber(ARGV[j + 1])
  local interval = tonumber(ARGV[j + 2])
  local burst = tonumber(ARGV[j + 3])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < now then
    tat = now
  end
  local over = tat + math.min(amount, burst) * interval - now - burst * interval
  if over > wait then
    wait = over
  end
  next_tat[i] = tat + amount * interval
end
if wait > 0 then
  return {0, math.ceil(wait)}
end
for i = 2, #KEYS do
  local ttl_ms = math.ceil((next_tat[i] - now) / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%.0f', next_tat[i]), 'PX', ttl_ms)
end
return {1, 0}
";

/// Moves a budget's arrival time by `delta` units (negative: gives back). KEYS: the
/// budget key; ARGV: delta, interval (µs).
const SETTLE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then
  tat = now
end
tat = tat + tonumber(ARGV[1]) * tonumber(ARGV[2])
if tat <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return 1
";

/// Sets the pause key for ARGV[1] ms unless it is already set for longer.
const PAUSE: &str = r"
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
  return 1
end
return 0
";

/// A Lua script and, once Redis told us, its SHA1.
struct LuaScript {
    op: &'static str,
    code: &'static str,
    sha: OnceLock<String>,
}

static ACQUIRE_SCRIPT: LuaScript = LuaScript {
    op: "fleet limit acquire",
    code: ACQUIRE,
    sha: OnceLock::new(),
};
static SETTLE_SCRIPT: LuaScript = LuaScript {
    op: "fleet limit settle",
    code: SETTLE,
    sha: OnceLock::new(),
};
static PAUSE_SCRIPT: LuaScript = LuaScript {
    op: "fleet limit pause",
    code: PAUSE,
    sha: OnceLock::new(),
};

/// The fleet's shared rate-limit budgets and pauses. Cheap to clone.
///
/// While Redis is down, one call per retry interval tries it again; the others
/// answer [`Admission::RedisDown`] (or fail) at once, so a dead Redis costs a
/// request at most one operation timeout per interval, not one each.
#[derive(Clone)]
pub struct FleetLimits {
    redis: Redis,
    retry_interval: Duration,
    down_since_try: Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for FleetLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetLimits")
            .field("key_prefix", &self.redis.settings.key_prefix)
            .field("retry_interval", &self.retry_interval)
            .finish()
    }
}

impl Redis {
    /// The fleet's rate-limit budgets on this connection. While Redis is down,
    /// it is tried again once per `retry_interval`.
    pub fn fleet_limits(&self, retry_interval: Duration) -> FleetLimits {
        FleetLimits {
            redis: self.clone(),
            retry_interval,
            down_since_try: Arc::new(Mutex::new(None)),
        }
    }
}

impl FleetLimits {
    /// Takes `budgets` of `scope` (`provider/model`) at once, or says how long to
    /// wait: while the scope is paused, or until every budget has room. With no
    /// budgets, only the pause is checked.
    pub async fn acquire(
        &self,
        scope: &str,
        budgets: &[Budget<'_>],
    ) -> Result<Admission, StoreError> {
        if !self.may_try() {
            return Ok(Admission::RedisDown);
        }
        let mut keys = vec![self.key(scope, "pause")];
        let mut args = Vec::with_capacity(budgets.len() * 3);
        for budget in budgets {
            let rate = Rate::sliding_minute(budget.per_minute);
            keys.push(self.key(scope, budget.name));
            args.extend([budget.amount, rate.interval_us, rate.burst]);
        }
        let answer: Result<(u8, u64), StoreError> =
            self.run(&ACQUIRE_SCRIPT, keys, args_of(&args)).await;
        match self.record(answer)? {
            (1, _) => Ok(Admission::Admitted),
            (_, wait_us) => Ok(Admission::Wait(Duration::from_micros(wait_us.max(1)))),
        }
    }

    /// Corrects what a request took of a budget: `actual` was used where
    /// `reserved.amount` was taken (more gives back, less takes the rest).
    pub async fn settle(
        &self,
        scope: &str,
        reserved: Budget<'_>,
        actual: u64,
    ) -> Result<(), StoreError> {
        if !self.may_try() || reserved.amount == actual {
            return Ok(());
        }
        let rate = Rate::sliding_minute(reserved.per_minute);
        let delta = i128::from(actual) - i128::from(reserved.amount);
        let delta = i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX });
        let keys = vec![self.key(scope, reserved.name)];
        let args = vec![delta.to_string(), rate.interval_us.to_string()];
        let answer: Result<u8, StoreError> = self.run(&SETTLE_SCRIPT, keys, args).await;
        self.record(answer).map(drop)
    }

    /// Pauses `scope` for the whole fleet for `duration`, unless it is already
    /// paused for longer.
    pub async fn pause(&self, scope: &str, duration: Duration) -> Result<(), StoreError> {
        if !self.may_try() {
            return Ok(());
        }
        let millis = u64::try_from(duration.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let keys = vec![self.key(scope, "pause")];
        let answer: Result<u8, StoreError> = self
            .run(&PAUSE_SCRIPT, keys, vec![millis.to_string()])
            .await;
        self.record(answer).map(drop)
    }

    fn key(&self, scope: &str, name: &str) -> String {
        format!(
            "{}ratelimit:{{{}}}:{name}",
            self.redis.settings.key_prefix,
            slug(scope)
        )
    }

    /// False while Redis failed less than the retry interval ago (and another call
    /// is the one trying it again).
    fn may_try(&self) -> bool {
        let mut failed_at = self
            .down_since_try
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match *failed_at {
            Some(at) if at.elapsed() < self.retry_interval => false,
            Some(_) => {
                // This call is the retry; the others keep skipping meanwhile.
                *failed_at = Some(Instant::now());
                true
            }
            None => true,
        }
    }

    fn record<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        let mut failed_at = self
            .down_since_try
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *failed_at = match &result {
            Ok(_) => None,
            Err(_) => Some(Instant::now()),
        };
        result
    }

    /// `EVALSHA`, or `EVAL` (with `SCRIPT LOAD` in the same round trip, to learn
    /// the SHA) when the SHA is unknown here or to Redis.
    async fn run<T: FromRedisValue + Send + 'static>(
        &self,
        script: &'static LuaScript,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<T, StoreError> {
        if let Some(sha) = script.sha.get() {
            let mut conn = self.redis.manager.clone();
            let evalsha = redis::cmd("EVALSHA")
                .arg(sha)
                .arg(keys.len())
                .arg(&keys)
                .arg(&args)
                .to_owned();
            match self
                .redis
                .bounded(
                    script.op,
                    async move { evalsha.query_async(&mut conn).await },
                )
                .await
            {
                Err(StoreError::Command { source, .. }) if source.code() == Some("NOSCRIPT") => {}
                other => return other,
            }
        }
        let mut conn = self.redis.manager.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("SCRIPT").arg("LOAD").arg(script.code);
        pipe.cmd("EVAL")
            .arg(script.code)
            .arg(keys.len())
            .arg(&keys)
            .arg(&args);
        let (sha, value): (String, T) = self
            .redis
            .bounded(script.op, async move { pipe.query_async(&mut conn).await })
            .await?;
        let _ = script.sha.set(sha);
        Ok(value)
    }
}

fn args_of(numbers: &[u64]) -> Vec<String> {
    numbers.iter().map(u64::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedisSettings;

    const REDIS_URL: &str = "redis://127.0.0.1:6379/";

    fn unique_prefix() -> String {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("test-ratelimit-{hex}:")
    }

    /// A connection under a key prefix of its own, checked to answer.
    async fn connect(prefix: &str) -> Redis {
        let redis = Redis::open(
            REDIS_URL,
            RedisSettings {
                key_prefix: prefix.to_string(),
                op_timeout_ms: 2_000,
                ..RedisSettings::default()
            },
        )
        .unwrap();
        redis
            .ping()
            .await
            .expect("Redis must be running at 127.0.0.1:6379");
        redis
    }

    fn requests(per_minute: u32) -> Budget<'static> {
        Budget {
            name: "requests",
            per_minute,
            amount: 1,
        }
    }

    #[test]
    fn a_sliding_minute_never_holds_more_than_the_limit() {
        for limit in [1u32, 2, 19, 20, 60, 300, 4_000, 2_000_000] {
            let rate = Rate::sliding_minute(limit);
            // At most burst + (60 s / interval) - 1 admissions fit in any
            // half-open 60-second window.
            let in_window = rate.burst + 60_000_000u64.div_ceil(rate.interval_us) - 1;
            assert!(in_window <= u64::from(limit), "{limit}: {rate:?}");
            assert!(
                in_window * 100 >= u64::from(limit) * 90,
                "{limit}: {rate:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_clients_never_take_more_than_the_budget() {
        let prefix = unique_prefix();
        let redis = connect(&prefix).await;
        // 1,200 a minute: a burst of 60, then one every ~51 ms.
        let per_minute = 1_200;
        let rate = Rate::sliding_minute(per_minute);
        let n_clients = 8;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..n_clients {
            let limits = connect(&prefix).await.fleet_limits(Duration::from_secs(1));
            tasks.push(tokio::spawn(async move {
                let mut n_admitted = 0u64;
                // Each client asks, and waits when told to, for 1.5 seconds.
                while started.elapsed() < Duration::from_millis(1_500) {
                    match limits.acquire("anthropic/m", &[requests(per_minute)]).await {
                        Ok(Admission::Admitted) => n_admitted += 1,
                        Ok(Admission::Wait(wait)) => tokio::time::sleep(wait).await,
                        other => panic!("unexpected answer: {other:?}"),
                    }
                }
                n_admitted
            }));
        }
        let mut n_admitted = 0;
        for task in tasks {
            n_admitted += task.await.unwrap();
        }
        let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap();
        // However the asks interleave: the burst, plus what refilled meanwhile.
        let most = rate.burst + elapsed_us / rate.interval_us + 1;
        assert!(
            (rate.burst..=most).contains(&n_admitted),
            "{n_admitted} admitted in {elapsed_us} µs, at most {most} allowed"
        );
        redis.delete_all_keys().await.unwrap();
    }

    #[tokio::test]
    async fn a_request_is_admitted_on_every_budget_or_none() {
        let prefix = unique_prefix();
        let redis = connect(&prefix).await;
        let limits = redis.fleet_limits(Duration::from_secs(1));
        // 20 input tokens a minute: a burst of 1 token.
        let tokens = Budget {
            name: "input_tokens",
            per_minute: 20,
            amount: 1,
        };
        assert_eq!(
            limits.acquire("s", &[requests(600), tokens]).await.unwrap(),
            Admission::Admitted
        );
        // The token budget is spent: the request budget must not be charged.
        for _ in 0..5 {
            assert!(matches!(
                limits.acquire("s", &[requests(600), tokens]).await.unwrap(),
                Admission::Wait(_)
            ));
        }
        // The request budget still has its burst less one.
        for _ in 0..29 {
            assert_eq!(
                limits.acquire("s", &[requests(600)]).await.unwrap(),
                Admission::Admitted
            );
        }
        assert!(matches!(
            limits.acquire("s", &[requests(600)]).await.unwrap(),
            Admission::Wait(_)
        ));
        redis.delete_all_keys().await.unwrap();
    }

    #[tokio::test]
    async fn settling_gives_back_what_a_call_did_not_use() {
        let prefix = unique_prefix();
        let redis = connect(&prefix).await;
        let limits = redis.fleet_limits(Duration::from_secs(1));
        // 2,000 tokens a minute: a burst of 100.
        let reserved = Budget {
            name: "output_tokens",
            per_minute: 2_000,
            amount: 100,
        };
        assert_eq!(
            limits.acquire("s", &[reserved]).await.unwrap(),
            Admission::Admitted
        );
        assert!(matches!(
            limits.acquire("s", &[reserved]).await.unwrap(),
            Admission::Wait(_)
        ));
        // The call used 10 of its 100: 90 come back, enough for 80 more.
        limits.settle("s", reserved, 10).await.unwrap();
        let next = Budget {
            amount: 80,
            ..reserved
        };
        assert_eq!(
            limits.acquire("s", &[next]).await.unwrap(),
            Admission::Admitted
        );
        // Using more than reserved takes the rest from the budget.
        limits.settle("s", next, 500).await.unwrap();
        let Admission::Wait(wait) = limits
            .acquire(
                "s",
                &[Budget {
                    amount: 1,
                    ..reserved
                }],
            )
            .await
            .unwrap()
        else {
            panic!("the overdraft must make the next request wait");
        };
        assert!(wait > Duration::from_secs(10), "{wait:?}");
        redis.delete_all_keys().await.unwrap();
    }

    #[tokio::test]
    async fn a_pause_holds_every_client_of_the_scope_and_only_grows() {
        let prefix = unique_prefix();
        let redis = connect(&prefix).await;
        let one = redis.fleet_limits(Duration::from_secs(1));
        let other = connect(&prefix).await.fleet_limits(Duration::from_secs(1));
        one.pause("anthropic/m", Duration::from_secs(30))
            .await
            .unwrap();
        // A shorter pause does not shorten it.
        one.pause("anthropic/m", Duration::from_secs(1))
            .await
            .unwrap();
        let Admission::Wait(wait) = other.acquire("anthropic/m", &[]).await.unwrap() else {
            panic!("a paused scope must make every client wait");
        };
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        // Another scope is not paused.
        assert_eq!(
            other.acquire("openai/m", &[requests(60)]).await.unwrap(),
            Admission::Admitted
        );
        redis.delete_all_keys().await.unwrap();
    }

    #[tokio::test]
    async fn a_flushed_script_is_loaded_again() {
        let prefix = unique_prefix();
        let redis = connect(&prefix).await;
        let limits = redis.fleet_limits(Duration::from_secs(1));
        assert_eq!(
            limits.acquire("s", &[requests(600)]).await.unwrap(),
            Admission::Admitted
        );
        let mut conn = redis.manager.clone();
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            limits.acquire("s", &[requests(600)]).await.unwrap(),
            Admission::Admitted
        );
        redis.delete_all_keys().await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_tried_once_per_interval() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redis = Redis::open(
            &format!("redis://127.0.0.1:{port}/"),
            RedisSettings::default(),
        )
        .unwrap();
        let limits = redis.fleet_limits(Duration::from_secs(3600));
        assert!(limits.acquire("s", &[requests(60)]).await.is_err());
        // Within the interval nobody tries again.
        for _ in 0..3 {
            assert_eq!(
                limits.acquire("s", &[requests(60)]).await.unwrap(),
                Admission::RedisDown
            );
        }
    }
}
