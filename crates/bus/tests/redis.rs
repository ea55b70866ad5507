//! The decision store and the verdict cache against the real local Redis, and
//! against Redis that is not there or does not answer.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use gate_bus::{Insert, Redis, RedisSettings, StoreError, VerdictKey};

use common::{sample_decision, sample_verdict, unique_prefix, REDIS_URL};

/// A store under a key prefix no other test uses. Fails the test when Redis is
/// not running.
async fn test_redis(tweak: impl FnOnce(&mut RedisSettings)) -> Redis {
    test_redis_with_prefix(tweak).await.0
}

/// [`test_redis`], and the key prefix it uses.
async fn test_redis_with_prefix(tweak: impl FnOnce(&mut RedisSettings)) -> (Redis, String) {
    let mut settings = RedisSettings {
        key_prefix: format!("{}gate:", unique_prefix()),
        ..RedisSettings::default()
    };
    tweak(&mut settings);
    let prefix = settings.key_prefix.clone();
    let redis = Redis::open(REDIS_URL, settings).unwrap();
    // The first command also connects; give it more than one operation's time.
    let mut ping = redis.ping().await;
    for _ in 0..10 {
        if ping.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        ping = redis.ping().await;
    }
    ping.expect("Redis must be running at 127.0.0.1:6379");
    (redis, prefix)
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn the_first_decision_stored_for_an_event_wins() {
    let redis = test_redis(|_| {}).await;
    let store = redis.decision_store();
    assert_eq!(store.get("ev-1").await.unwrap(), None);

    let first = sample_decision("ev-1", "acme/shop", 90);
    let second = sample_decision("ev-1", "acme/shop", 10);
    assert_eq!(store.insert(&first).await.unwrap(), Insert::Stored);
    assert_eq!(
        store.insert(&second).await.unwrap(),
        Insert::AlreadyDecided(Box::new(first.clone()))
    );
    assert_eq!(store.get("ev-1").await.unwrap(), Some(first));

    // Another event is independent.
    let other = sample_decision("ev-2", "acme/shop", 10);
    assert_eq!(store.insert(&other).await.unwrap(), Insert::Stored);
    // Two decisions, and the head index entry they share (same repo and head).
    assert_eq!(redis.delete_all_keys().await.unwrap(), 3);
}

#[tokio::test]
async fn stored_decisions_expire_after_their_ttl() {
    let redis = test_redis(|settings| settings.decision_ttl_secs = 1).await;
    let store = redis.decision_store();
    store
        .insert(&sample_decision("ev-ttl", "r", 90))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(store.get("ev-ttl").await.unwrap(), None);
    let replacement = sample_decision("ev-ttl", "r", 10);
    assert_eq!(store.insert(&replacement).await.unwrap(), Insert::Stored);
    redis.delete_all_keys().await.unwrap();
}

#[tokio::test]
async fn a_cached_verdict_round_trips_and_expires_after_its_ttl() {
    let redis = test_redis(|settings| settings.verdict_ttl_secs = 1).await;
    let cache = redis.verdict_cache();
    let key = VerdictKey::from_parts(["prompt-v1", "rules", "policy-v1", "+DROP COLUMN"]);
    let other_key = VerdictKey::from_parts(["prompt-v2", "rules", "policy-v1", "+DROP COLUMN"]);
    assert_eq!(cache.get(&key).await.unwrap(), None);

    let verdict = sample_verdict(90);
    cache.put(&key, &verdict).await.unwrap();
    assert_eq!(cache.get(&key).await.unwrap(), Some(verdict));
    assert_eq!(
        cache.get(&other_key).await.unwrap(),
        None,
        "another prompt version misses"
    );

    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(cache.get(&key).await.unwrap(), None, "expired");
    redis.delete_all_keys().await.unwrap();
}

#[tokio::test]
async fn a_corrupt_stored_value_is_a_typed_error_not_a_panic() {
    let (redis, prefix) = test_redis_with_prefix(|_| {}).await;
    let store = redis.decision_store();
    let cache = redis.verdict_cache();
    let key = VerdictKey::from_parts(["x"]);
    // Written by hand (or by another version) under the keys the stores use.
    raw_set(&format!("{prefix}decision:ev-bad"), "{not json").await;
    raw_set(&format!("{prefix}verdict:{}", key.as_str()), "[]").await;

    let error = store.get("ev-bad").await.unwrap_err();
    assert!(
        matches!(error, StoreError::Corrupt { .. }) && !error.is_outage(),
        "{error}"
    );
    let error = store
        .insert(&sample_decision("ev-bad", "r", 10))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    let error = cache.get(&key).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    redis.delete_all_keys().await.unwrap();
}

#[tokio::test]
async fn one_lookup_reads_the_stored_decision_and_each_cached_verdict() {
    let (redis, prefix) = test_redis_with_prefix(|_| {}).await;
    let store = redis.decision_store();
    let cache = redis.verdict_cache();
    let (hit, miss, bad) = (
        VerdictKey::from_parts(["hit"]),
        VerdictKey::from_parts(["miss"]),
        VerdictKey::from_parts(["bad"]),
    );
    let decision = sample_decision("ev-1", "acme/shop", 30);
    assert_eq!(store.insert(&decision).await.unwrap(), Insert::Stored);
    cache.put(&hit, &sample_verdict(40)).await.unwrap();
    raw_set(&format!("{prefix}verdict:{}", bad.as_str()), "{not json").await;

    let found = store
        .lookup(Some("ev-1"), &[&hit, &miss, &bad])
        .await
        .unwrap();
    assert_eq!(found.decision.unwrap(), Some(decision));
    assert_eq!(found.verdicts.len(), 3);
    assert_eq!(
        found.verdicts[0]
            .as_ref()
            .unwrap()
            .as_ref()
            .unwrap()
            .risk_score,
        40
    );
    assert!(found.verdicts[1].as_ref().unwrap().is_none());
    // A bad value spoils its own slot, not the others.
    assert!(matches!(found.verdicts[2], Err(StoreError::Corrupt { .. })));

    // Another event's decision is not this one's; verdicts alone need no event.
    let found = store.lookup(Some("ev-2"), &[&hit]).await.unwrap();
    assert_eq!(found.decision.unwrap(), None);
    let found = store.lookup(None, &[&miss]).await.unwrap();
    assert!(found.decision.unwrap().is_none());
    assert!(found.verdicts[0].as_ref().unwrap().is_none());
    redis.delete_all_keys().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_redis_gives_a_typed_error_within_the_timeout() {
    let url = format!("redis://127.0.0.1:{}/", closed_port());
    let settings = RedisSettings {
        op_timeout_ms: 300,
        ..RedisSettings::default()
    };
    let redis = Redis::open(&url, settings).expect("opening does not connect");
    let store = redis.decision_store();
    let cache = redis.verdict_cache();
    for attempt in 0..3 {
        let started = Instant::now();
        let error = store.get("ev-1").await.unwrap_err();
        assert!(error.is_outage(), "attempt {attempt}: {error}");
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );

        let started = Instant::now();
        let error = cache
            .put(&VerdictKey::from_parts(["x"]), &sample_verdict(1))
            .await
            .unwrap_err();
        assert!(error.is_outage(), "attempt {attempt}: {error}");
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_redis_that_accepts_but_never_answers_times_out_instead_of_hanging() {
    // The kernel completes the TCP handshake into the backlog; nobody ever reads.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "redis://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    let settings = RedisSettings {
        op_timeout_ms: 300,
        ..RedisSettings::default()
    };
    let redis = Redis::open(&url, settings).unwrap();
    let started = Instant::now();
    let error = redis
        .decision_store()
        .insert(&sample_decision("ev-1", "r", 90))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::Timeout { after_ms: 300, .. }),
        "{error}"
    );
    assert!(error.is_outage());
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}

/// A TCP proxy to the real Redis that a test can cut and restore, to play an
/// outage without stopping the shared Redis.
struct CuttableProxy {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl CuttableProxy {
    async fn to_redis() -> CuttableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if *cut_rx.borrow() {
                    continue; // dropped: connection refused, in effect
                }
                let mut cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:6379").await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        CuttableProxy { port, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

#[tokio::test]
async fn the_stores_recover_by_themselves_when_redis_comes_back() {
    let proxy = CuttableProxy::to_redis().await;
    let settings = RedisSettings {
        key_prefix: format!("{}gate:", unique_prefix()),
        op_timeout_ms: 300,
        ..RedisSettings::default()
    };
    let redis = Redis::open(&format!("redis://127.0.0.1:{}/", proxy.port), settings).unwrap();
    let store = redis.decision_store();
    let decision = sample_decision("ev-outage", "r", 90);
    assert_eq!(store.insert(&decision).await.unwrap(), Insert::Stored);

    proxy.set_cut(true);
    let started = Instant::now();
    let error = store.get("ev-outage").await.unwrap_err();
    assert!(error.is_outage(), "{error}");
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );

    proxy.set_cut(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    let recovered = loop {
        match store.get("ev-outage").await {
            Ok(found) => break found,
            Err(error) if Instant::now() < deadline => {
                assert!(error.is_outage(), "{error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("no recovery within 5 s: {error}"),
        }
    };
    assert_eq!(recovered, Some(decision));
    redis.delete_all_keys().await.unwrap();
}

/// A sample decision for `repo` at head commit `head`.
fn decision_at(event_id: &str, repo: &str, head: &str, score: u8) -> gate_core::Decision {
    let mut decision = sample_decision(event_id, repo, score);
    decision.head = head.to_string();
    decision
}

/// Writes a key beside the stores (as a person or another version might).
async fn raw_set(key: &str, value: &str) {
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
}

/// The raw value of a key, read beside the stores.
async fn raw_get(key: &str) -> Option<String> {
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET")
        .arg(key)
        .query_async::<Option<String>>(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_inserted_decision_is_found_by_repository_and_head_commit() {
    let (redis, prefix) = test_redis_with_prefix(|_| {}).await;
    let store = redis.decision_store();
    let head = "c0ffee".repeat(6) + "abcd";
    assert_eq!(store.get_by_head("acme/shop", &head).await.unwrap(), None);

    let decision = decision_at("ev-h1", "Acme/Shop", &head, 90);
    assert_eq!(store.insert(&decision).await.unwrap(), Insert::Stored);
    assert_eq!(
        raw_get(&format!("{prefix}decision-by-head:acme-shop:{head}")).await,
        Some("ev-h1".to_string()),
        "the index key is <prefix>decision-by-head:<repo-slug>:<head-sha>"
    );
    assert_eq!(
        store.get_by_head("Acme/Shop", &head).await.unwrap(),
        Some(decision.clone())
    );
    assert_eq!(
        store
            .get_by_head("acme/shop", &head.to_ascii_uppercase())
            .await
            .unwrap(),
        Some(decision.clone()),
        "repository and sha compare without case"
    );
    assert_eq!(
        store
            .get_by_head("acme/shop", &"d".repeat(40))
            .await
            .unwrap(),
        None,
        "another commit"
    );
    assert_eq!(
        store.get_by_head("acme.shop", &head).await.unwrap(),
        None,
        "a repository that only shares the slug"
    );
    redis.delete_all_keys().await.unwrap();
}

#[tokio::test]
async fn the_head_index_follows_the_newest_event_and_a_redelivery_does_not_take_it_back() {
    let redis = test_redis(|_| {}).await;
    let store = redis.decision_store();
    let head = "e".repeat(40);
    let first = decision_at("ev-old", "acme/shop", &head, 90);
    let second = decision_at("ev-new", "acme/shop", &head, 10);
    assert_eq!(store.insert(&first).await.unwrap(), Insert::Stored);
    assert_eq!(store.insert(&second).await.unwrap(), Insert::Stored);
    assert_eq!(
        store.get_by_head("acme/shop", &head).await.unwrap(),
        Some(second.clone())
    );
    // The older event is redelivered: first write still wins for it, and the
    // index stays with the newer event.
    assert_eq!(
        store.insert(&first).await.unwrap(),
        Insert::AlreadyDecided(Box::new(first.clone()))
    );
    assert_eq!(
        store.get_by_head("acme/shop", &head).await.unwrap(),
        Some(second)
    );
    redis.delete_all_keys().await.unwrap();
}

#[tokio::test]
async fn a_redelivery_fills_a_missing_head_index() {
    let (redis, prefix) = test_redis_with_prefix(|_| {}).await;
    let store = redis.decision_store();
    let decision = sample_decision("ev-legacy", "acme/shop", 90);
    // Stored by a build without the index.
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET")
        .arg(format!("{prefix}decision:ev-legacy"))
        .arg(serde_json::to_string(&decision).unwrap())
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_by_head("acme/shop", &decision.head)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.insert(&decision).await.unwrap(),
        Insert::AlreadyDecided(Box::new(decision.clone()))
    );
    assert_eq!(
        store
            .get_by_head("acme/shop", &decision.head)
            .await
            .unwrap(),
        Some(decision)
    );
    redis.delete_all_keys().await.unwrap();
}

#[tokio::test]
async fn a_human_decision_supersedes_the_stored_one_and_the_automatic_one_is_kept() {
    let (redis, prefix) = test_redis_with_prefix(|_| {}).await;
    let store = redis.decision_store();
    let automatic = sample_decision("ev-s", "acme/shop", 90);
    assert_eq!(store.insert(&automatic).await.unwrap(), Insert::Stored);
    assert_eq!(store.get_superseded("ev-s").await.unwrap(), None);

    let mut approved = automatic.clone();
    approved.recommendation = gate_core::Recommendation::Deploy;
    approved.consensus.mode = "human".to_string();
    approved.approval = Some(gate_core::Approval {
        by: "alice".to_string(),
        reason: "verified on staging".to_string(),
        at: "2025-01-01T00:00:02Z".to_string(),
        superseded: automatic.recommendation,
    });
    store.supersede(&approved).await.unwrap();
    assert_eq!(store.get("ev-s").await.unwrap(), Some(approved.clone()));
    assert_eq!(
        store.get_superseded("ev-s").await.unwrap(),
        Some(automatic.clone())
    );
    assert!(raw_get(&format!("{prefix}decision-auto:ev-s"))
        .await
        .is_some());
    assert_eq!(
        store
            .get_by_head("acme/shop", &automatic.head)
            .await
            .unwrap(),
        Some(approved.clone())
    );

    // A redelivery of the event republishes the person's decision.
    assert_eq!(
        store.insert(&automatic).await.unwrap(),
        Insert::AlreadyDecided(Box::new(approved.clone()))
    );

    // Overriding the approval keeps the automatic decision, not the approval, as
    // the superseded one.
    let mut overridden = approved.clone();
    overridden.recommendation = gate_core::Recommendation::Block;
    if let Some(approval) = overridden.approval.as_mut() {
        approval.by = "bob".to_string();
    }
    store.supersede(&overridden).await.unwrap();
    assert_eq!(store.get("ev-s").await.unwrap(), Some(overridden));
    assert_eq!(store.get_superseded("ev-s").await.unwrap(), Some(automatic));
    redis.delete_all_keys().await.unwrap();
}

#[tokio::test]
async fn superseding_an_event_without_a_decision_stores_it_and_keeps_nothing_else() {
    let redis = test_redis(|_| {}).await;
    let store = redis.decision_store();
    let mut human = sample_decision("ev-none", "acme/shop", 10);
    human.approval = Some(gate_core::Approval {
        by: "alice".to_string(),
        reason: "manual".to_string(),
        at: "2025-01-01T00:00:02Z".to_string(),
        superseded: gate_core::Recommendation::Deploy,
    });
    store.supersede(&human).await.unwrap();
    assert_eq!(store.get("ev-none").await.unwrap(), Some(human.clone()));
    assert_eq!(store.get_superseded("ev-none").await.unwrap(), None);
    store.supersede(&human).await.unwrap();
    assert_eq!(
        store.get_superseded("ev-none").await.unwrap(),
        None,
        "a person's decision is never kept as the automatic one"
    );
    redis.delete_all_keys().await.unwrap();
}

#[tokio::test]
async fn the_index_and_supersede_fail_as_outages_when_redis_is_unreachable() {
    let url = format!("redis://127.0.0.1:{}/", closed_port());
    let settings = RedisSettings {
        op_timeout_ms: 300,
        ..RedisSettings::default()
    };
    let store = Redis::open(&url, settings).unwrap().decision_store();
    let decision = sample_decision("ev-1", "r", 90);
    let started = Instant::now();
    let error = store.get_by_head("r", &decision.head).await.unwrap_err();
    assert!(error.is_outage(), "{error}");
    let error = store.supersede(&decision).await.unwrap_err();
    assert!(error.is_outage(), "{error}");
    let error = store.get_superseded("ev-1").await.unwrap_err();
    assert!(error.is_outage(), "{error}");
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
}
