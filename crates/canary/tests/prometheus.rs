//! The Prometheus source against a real Prometheus (Debian's `prometheus`
//! package, or the binary named by `DEPLOY_GATE_PROMETHEUS_BIN`) scraping a
//! synthetic exporter this test serves: canary and baseline series of an error
//! ratio (doubled on the canary) and a latency (the same on both).
//!
//! The test fails, never skips, when the binary is missing.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gate_canary::{
    judge, BadDirection, CanaryResult, CanarySettings, Classification, Evidence, Prometheus,
    PrometheusSource, Source, SourceError, Target,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use common::{deploy_decision, metric, request, Rng};

const ERRORS: &str = r#"sum(app_error_ratio{track="{{scope}}"})"#;
const LATENCY: &str = r#"sum(app_latency_ms{track="{{scope}}"})"#;

/// A Prometheus process, killed on drop.
struct PrometheusProc {
    child: Child,
    base_url: String,
    _dir: tempfile::TempDir,
}

impl Drop for PrometheusProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self._dir.path().join("prometheus.log"))
                .unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "----- prometheus log (last 40 lines) -----\n{}",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
    }
}

/// Serves `/metrics` in the text exposition format; each scrape draws new values.
async fn start_exporter() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rng = Arc::new(Mutex::new(Rng::new(42)));
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let rng = Arc::clone(&rng);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = stream.read(&mut buf).await;
                let body = {
                    let mut rng = rng.lock().unwrap();
                    format!(
                        "# HELP app_error_ratio Share of failed requests.\n\
                         # TYPE app_error_ratio gauge\n\
                         app_error_ratio{{track=\"canary\"}} {}\n\
                         app_error_ratio{{track=\"baseline\"}} {}\n\
                         # HELP app_latency_ms Median latency.\n\
                         # TYPE app_latency_ms gauge\n\
                         app_latency_ms{{track=\"canary\"}} {}\n\
                         app_latency_ms{{track=\"baseline\"}} {}\n",
                        rng.normal(0.02, 0.002).max(0.0),
                        rng.normal(0.01, 0.001).max(0.0),
                        rng.normal(100.0, 5.0).max(0.0),
                        rng.normal(100.0, 5.0).max(0.0),
                    )
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    addr.to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(exporter: &str) -> PrometheusProc {
    let dir = tempfile::Builder::new()
        .prefix("gate-canary-prometheus-")
        .tempdir()
        .unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: synthetic\n    static_configs:\n      - targets: ['{exporter}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let binary =
        std::env::var("DEPLOY_GATE_PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".to_string());
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new(&binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "cannot start `{binary}` ({err}): this test needs a real Prometheus \
                 (Debian: apt-get install prometheus; or set DEPLOY_GATE_PROMETHEUS_BIN)"
            )
        });
    PrometheusProc {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

async fn wait_ready(base_url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = reqwest::Client::new();
    loop {
        if let Ok(response) = http.get(format!("{base_url}/-/ready")).send().await {
            if response.status().is_success() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "prometheus not ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn source(base_url: &str) -> PrometheusSource {
    let mut queries = BTreeMap::new();
    queries.insert("error_ratio".to_string(), ERRORS.to_string());
    queries.insert("latency_ms".to_string(), LATENCY.to_string());
    PrometheusSource {
        base_url: base_url.to_string(),
        queries,
        step_secs: 1,
        window_secs: 60,
        end: None,
    }
}

fn target(name: &str) -> Target {
    Target {
        name: format!("shop-{name}"),
        scope: name.to_string(),
    }
}

fn now() -> f64 {
    gate_canary::window_end(None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_queries_against_a_real_prometheus_feed_the_judge() {
    let exporter = start_exporter().await;
    let prometheus = start_prometheus(&exporter);
    wait_ready(&prometheus.base_url).await;
    let client = Prometheus::new(&prometheus.base_url, Duration::from_secs(5)).unwrap();
    let source = source(&prometheus.base_url);

    // Wait until both sides have enough distinct scrapes for the judge.
    let deadline = Instant::now() + Duration::from_secs(60);
    let samples = loop {
        let samples = client
            .fetch(&source, &target("canary"), &target("baseline"), now())
            .await
            .unwrap();
        let enough = samples
            .values()
            .all(|pair| pair.canary.len() >= 15 && pair.baseline.len() >= 15);
        if enough {
            break samples;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not collect 15 samples per series within 60 s: {samples:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The scope went into the right query: the canary's error ratio is twice the
    // baseline's.
    let errors = &samples["error_ratio"];
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&errors.canary) > 1.5 * mean(&errors.baseline),
        "{errors:?}"
    );

    let mut req = request(
        vec![
            metric("error_ratio", BadDirection::Increase, true, "errors"),
            metric("latency_ms", BadDirection::Increase, false, "latency"),
        ],
        BTreeMap::new(),
    );
    req.canary = target("canary");
    req.baseline = target("baseline");
    req.source = Source::Prometheus(source.clone());
    req.validate().unwrap();
    let deploy = deploy_decision("ev-1", 10);
    let decision = judge(
        &req,
        Evidence {
            samples: &samples,
            deploy: Some(&deploy),
            notes: &[],
            judged_at: "2026-03-01T10:30:00Z",
        },
        &CanarySettings::default(),
    );
    assert_eq!(
        decision.result,
        CanaryResult::Rollback,
        "{}",
        decision.table()
    );
    let class = |name: &str| {
        decision
            .metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap()
            .classification
    };
    assert_eq!(class("error_ratio"), Classification::High);
    assert_eq!(class("latency_ms"), Classification::Pass);

    // Prometheus' own error format: a query it cannot parse is refused, with its
    // errorType, and is not worth a retry.
    let refused = client
        .query_range(
            "sum(app_latency_ms{",
            now() - 60.0,
            now(),
            1.0,
            "latency_ms",
            "canary",
        )
        .await
        .unwrap_err();
    match &refused {
        SourceError::Refused {
            error_type, error, ..
        } => {
            assert_eq!(error_type, "bad_data");
            assert!(error.contains("parse error"), "{error}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!refused.is_transient());

    // A template that does not aggregate returns one series per track: refused by
    // the source, with the fix.
    let several = client
        .query_range(
            "app_latency_ms",
            now() - 60.0,
            now(),
            1.0,
            "latency_ms",
            "canary",
        )
        .await
        .unwrap_err();
    assert!(several.to_string().contains("2 series"), "{several}");

    // A metric that does not exist is no data, not an error.
    let nothing = client
        .query_range(
            "sum(no_such_metric)",
            now() - 60.0,
            now(),
            1.0,
            "x",
            "canary",
        )
        .await
        .unwrap();
    assert!(nothing.is_empty());
}

#[tokio::test]
async fn an_unreachable_prometheus_is_a_transient_outage() {
    let base_url = format!("http://127.0.0.1:{}", free_port());
    let client = Prometheus::new(&base_url, Duration::from_secs(2)).unwrap();
    let error = client
        .fetch(
            &source(&base_url),
            &target("canary"),
            &target("baseline"),
            now(),
        )
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("is unavailable"), "{error}");
}
