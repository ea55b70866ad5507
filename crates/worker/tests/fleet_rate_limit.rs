//! Fleet-wide rate limits through the real local Redis: a provider shares its
//! limits with the fleet (what `run` wires at start-up), falls back to its share
//! when Redis cannot be reached (cut through a fault proxy) and shares again when
//! it is back; a 429 with `retry-after` seen by one worker pauses the provider for
//! every worker.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gate_bus::{Admission, Budget, Redis, RedisSettings};
use gate_core::{DeployContext, Risk};
use gate_mock_llm::{Fault, MockConfig, MockServer};
use gate_models::{
    Analysis, Analyzer, AnthropicProvider, AnthropicSettings, ApiKey, BoxFuture, FleetLimiter,
    HttpSettings, ModelError, PriceTable, PromptSettings, ProviderSetup, RateLimitSettings,
    RetrySettings,
};
use gate_testkit::proxy::FaultProxy;

use common::{docs_variant, unique_prefix};

/// The scope of the provider below, as the fleet's keys name it.
const SCOPE: &str = "anthropic/claude-sonnet-4-5";

fn redis_at(addr: SocketAddr, prefix: &str) -> Redis {
    Redis::open(
        &format!("redis://{addr}/"),
        RedisSettings {
            key_prefix: prefix.to_string(),
            op_timeout_ms: 250,
            ..RedisSettings::default()
        },
    )
    .unwrap()
}

fn local_redis(prefix: &str) -> Redis {
    redis_at(SocketAddr::from(([127, 0, 0, 1], 6379)), prefix)
}

/// The Anthropic provider against the mock: 20 requests a minute for a fleet of 2
/// (a burst of 1 in the fleet's budget, then one every 3 s), retries that wait for
/// a 429's `retry-after`.
fn provider(mock: &MockServer) -> Arc<AnthropicProvider> {
    let setup = ProviderSetup::new(
        gate_core::Bands::default(),
        &PromptSettings::default(),
        PriceTable::default(),
    )
    .unwrap();
    let settings = AnthropicSettings {
        model: "claude-sonnet-4-5".into(),
        base_url: Some(mock.anthropic_base_url()),
        api_key: Some(ApiKey::new("test-key")),
        retry: RetrySettings {
            max_attempts: 3,
            initial_backoff_ms: 10,
            max_backoff_ms: 50,
            deadline_ms: 120_000,
        },
        http: HttpSettings {
            connect_timeout_ms: 1_000,
            request_timeout_ms: 15_000,
        },
        rate_limit: RateLimitSettings {
            requests_per_minute: Some(20),
            expected_workers: 2.try_into().unwrap(),
            ..RateLimitSettings::default()
        },
        ..Default::default()
    };
    Arc::new(AnthropicProvider::new(&settings, &setup).unwrap())
}

/// A worker's analyzer list holding `provider`, which the test keeps a handle on.
struct Handle(Arc<AnthropicProvider>);

impl Analyzer for Handle {
    fn id(&self) -> String {
        self.0.id()
    }

    fn analyze<'a>(
        &'a self,
        context: &'a DeployContext,
        rules_hints: &'a [Risk],
    ) -> BoxFuture<'a, Result<Analysis, ModelError>> {
        self.0.analyze(context, rules_hints)
    }

    fn share_limits(&self, fleet: Arc<dyn FleetLimiter>) {
        self.0.share_limits(fleet);
    }
}

/// Shares `provider`'s limits through `redis`, as a worker does at start-up.
fn share(provider: &Arc<AnthropicProvider>, redis: &Redis) {
    let analyzers: Vec<Box<dyn Analyzer>> = vec![Box::new(Handle(Arc::clone(provider)))];
    gate_worker::share_fleet_limits(redis, Duration::from_millis(100), &analyzers);
}

/// One request of the fleet's budget of 20 a minute.
const ONE_REQUEST: Budget<'static> = Budget {
    name: "requests",
    per_minute: 20,
    amount: 1,
};

async fn checked_local_redis(prefix: &str) -> Redis {
    let redis = local_redis(prefix);
    redis
        .ping()
        .await
        .expect("Redis must be running at 127.0.0.1:6379");
    redis
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_worker_keeps_to_its_share_and_shares_again_when_redis_is_back() {
    let prefix = unique_prefix();
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let direct = checked_local_redis(&prefix).await;
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], 6379)));
    let provider = provider(&mock);
    share(&provider, &redis_at(proxy.addr(), &prefix));
    // Another worker's view of the fleet's budget.
    let fleet = direct.fleet_limits(Duration::from_millis(100));

    // Redis is there: the analysis took the fleet's burst (one request), so the
    // other worker has to wait.
    provider.analyze_context(&docs_variant(1)).await.unwrap();
    assert!(provider.limiter().fleet_reachable());
    assert!(matches!(
        fleet.acquire(SCOPE, &[ONE_REQUEST]).await.unwrap(),
        Admission::Wait(_)
    ));

    // Redis is cut: the analysis goes on, on this worker's share of the limit
    // (half of 20 a minute, for the 2 expected workers).
    proxy.cut();
    provider.analyze_context(&docs_variant(2)).await.unwrap();
    assert!(!provider.limiter().fleet_reachable());
    assert_eq!(provider.limiter().fallback_limits(), (Some(10), None, None));

    // Redis is back: after the retry interval the budget is the fleet's again,
    // and the analysis is counted in it.
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(200)).await;
    provider.analyze_context(&docs_variant(3)).await.unwrap();
    assert!(provider.limiter().fleet_reachable());
    assert!(matches!(
        fleet.acquire(SCOPE, &[ONE_REQUEST]).await.unwrap(),
        Admission::Wait(_)
    ));
    assert_eq!(mock.stats().n_ok, 3);
    direct.delete_all_keys().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_seen_by_one_worker_pauses_the_provider_for_every_worker() {
    let prefix = unique_prefix();
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let direct = checked_local_redis(&prefix).await;
    let one = provider(&mock);
    let other = provider(&mock);
    share(&one, &local_redis(&prefix));
    share(&other, &local_redis(&prefix));
    mock.push_fault(
        Fault::RateLimited {
            retry_after_secs: 30,
        },
        1,
    );
    let first = {
        let one = Arc::clone(&one);
        tokio::spawn(async move { one.analyze_context(&docs_variant(1)).await })
    };
    // The first worker's 429 pauses the provider in Redis for its retry-after.
    let fleet = direct.fleet_limits(Duration::from_millis(100));
    let mut paused_for = None;
    for _ in 0..250 {
        if let Admission::Wait(wait) = fleet.acquire(SCOPE, &[]).await.unwrap() {
            paused_for = Some(wait);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let paused_for = paused_for.expect("the 429 never paused the fleet");
    assert!(
        paused_for > Duration::from_secs(20) && paused_for <= Duration::from_secs(30),
        "{paused_for:?}"
    );
    // The other worker, which never saw the 429, does not call the provider.
    let second = tokio::time::timeout(
        Duration::from_secs(1),
        other.analyze_context(&docs_variant(2)),
    )
    .await;
    assert!(second.is_err(), "the other worker called a paused provider");
    assert_eq!(mock.stats().n_requests, 1);
    first.abort();
    direct.delete_all_keys().await.unwrap();
}
