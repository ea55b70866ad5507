//! The status page (`deploy-gate dashboard`) in a real headless Chromium, driven
//! through chromedriver's W3C WebDriver HTTP API: the page loads without console
//! errors, lists the decisions already in the log, shows a decision made after
//! it opened (a real worker's, through the real broker) and a person's override
//! of it, and a screenshot of it is saved for people to look at.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/services.sh installs
//! them); `DEPLOY_GATE_TEST_CHROMIUM` / `DEPLOY_GATE_TEST_CHROMEDRIVER` name
//! other binaries. Missing, the test fails: it never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use gate_bus::Bus;
use serde_json::{json, Value};

use crate::fleet_harness::{
    app_repo, commit_code, free_port, wait_for_listener, Fleet, FleetOptions, AMQP_URL, REPO_NAME,
};

/// Where the screenshot goes (and is printed): the test's output directory.
fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshot.png")
}

/// A binary from the environment variable `var`, else `name` on the PATH.
fn find_binary(var: &str, name: &str) -> PathBuf {
    let wanted = std::env::var_os(var).unwrap_or_else(|| name.into());
    let wanted = PathBuf::from(wanted);
    if wanted.components().count() > 1 {
        return wanted;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(&wanted))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "`{}` is not installed: the status page test drives headless Chromium \
                 (apt-get install chromium chromium-driver; scripts/services.sh does it), \
                 or set {var}",
                wanted.display()
            )
        })
}

/// One headless Chromium behind chromedriver, with a fresh profile.
struct Browser {
    driver: Child,
    driver_log: PathBuf,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start(dir: &Path) -> Browser {
        let chromium = find_binary("DEPLOY_GATE_TEST_CHROMIUM", "chromium");
        let chromedriver = find_binary("DEPLOY_GATE_TEST_CHROMEDRIVER", "chromedriver");
        let port = free_port();
        let driver_log = dir.join("chromedriver.log");
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", driver_log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", chromedriver.display()));
        let base = format!("http://127.0.0.1:{port}");
        wait_for_listener(&format!("127.0.0.1:{port}"), Duration::from_secs(20));
        let profile = tempfile::Builder::new()
            .prefix("gate-e2e-chromium-")
            .tempdir()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut browser = Browser {
            driver,
            driver_log,
            http,
            runtime,
            base,
            session: String::new(),
            _profile: profile,
        };
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1440,900",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let created = browser.command(reqwest::Method::POST, "/session", Some(capabilities));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"))
            .to_string();
        browser
    }

    /// One WebDriver command; its `value`. A WebDriver error fails the test.
    fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let (status, text) = self.runtime.block_on(async {
            let mut request = self.http.request(method.clone(), &url);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
            let status = response.status();
            (status, response.text().await.unwrap_or_default())
        });
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "WebDriver {method} {path} answered {status}: {text}\nchromedriver log tail:\n{}",
            self.driver_log_tail()
        );
        parsed["value"].clone()
    }

    fn session_path(&self, tail: &str) -> String {
        format!("/session/{}{tail}", self.session)
    }

    fn goto(&self, url: &str) {
        self.command(
            reqwest::Method::POST,
            &self.session_path("/url"),
            Some(json!({"url": url})),
        );
    }

    /// Runs `script` (a function body) in the page; what it returns.
    fn execute(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            &self.session_path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
    }

    fn screenshot(&self) -> Vec<u8> {
        let encoded = self.command(
            reqwest::Method::GET,
            &self.session_path("/screenshot"),
            None,
        );
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("the screenshot is base64 text"))
            .expect("the screenshot is valid base64")
    }

    /// The browser's console since the last call (chromedriver's log endpoint).
    fn console(&self) -> Vec<Value> {
        let entries = self.command(
            reqwest::Method::POST,
            &self.session_path("/se/log"),
            Some(json!({"type": "browser"})),
        );
        entries.as_array().cloned().unwrap_or_default()
    }

    /// Polls `script` until `done` holds for what it returns; that value.
    fn wait_for(&self, what: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
        let timeout = Duration::from_secs(60);
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.execute(script);
            if done(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "the page did not show {what} within {timeout:?}; it shows {value:#}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn driver_log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.driver_log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self
                .runtime
                .block_on(async { self.http.delete(&url).send().await });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The listed decisions as the page shows them (text, not data).
const ROWS: &str = r#"
return Array.from(document.querySelectorAll('#rows tr[data-event-id]')).map(function (tr) {
  return {
    event_id: tr.dataset.eventId,
    human: tr.dataset.human === 'true',
    superseded: tr.classList.contains('superseded'),
    age: tr.querySelector('td.age').textContent,
    repo: tr.querySelector('td.repo').textContent,
    commit: tr.querySelector('td.commit').textContent,
    score: tr.querySelector('.score-value').textContent,
    recommendation: tr.querySelector('.pill').textContent,
    tags: Array.from(tr.querySelectorAll('.tag')).map(function (t) { return t.textContent; }),
    risk: tr.querySelector('td.risk').textContent
  };
});
"#;

/// The headline figures as the page shows them.
const FIGURES: &str = r#"
function text(id) { return document.getElementById(id).textContent; }
return {
  connection: document.getElementById('conn').dataset.state,
  rate: text('f-rate'), p95: text('f-p95'), cost: text('f-cost'),
  cache: text('f-cache'), cache_sub: text('f-cache-sub'),
  queue: text('f-queue'), queue_sub: text('f-queue-sub')
};
"#;

fn rows_of(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn row<'a>(rows: &'a Value, event_id: &str, human: bool) -> Option<&'a Value> {
    rows_of(rows)
        .iter()
        .find(|row| row["event_id"] == event_id && row["human"] == human)
}

/// A decision as a worker would have published it, decided `ago_secs` ago.
fn decision(
    event_id: &str,
    repo: &str,
    score: u8,
    recommendation: &str,
    cost_usd: f64,
    cached: bool,
    risk: Option<(&str, &str, &str)>,
) -> gate_core::Decision {
    let decided_at = (time::OffsetDateTime::now_utc() - time::Duration::seconds(20))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let band = match recommendation {
        "block" => "block",
        "hold" => "hold",
        _ => "review",
    };
    let risks: Vec<Value> = risk
        .into_iter()
        .map(|(category, severity, detail)| {
            json!({"category": category, "severity": severity, "detail": detail,
                   "evidence": [{"file": "migrations/V9__drop.sql", "line": 1}]})
        })
        .collect();
    serde_json::from_value(json!({
        "schema_version": 1,
        "event_id": event_id,
        "repo": repo,
        "base": "1".repeat(40),
        // A distinct commit id per decision, as a short sha reads.
        "head": format!("{:0<40}", format!("{:x}", 0x5eed_c0de_u64 * (u64::from(score) + 7))),
        "risk_score": score,
        "band": band,
        "recommendation": recommendation,
        "summary": format!("{repo}: a change scored {score}."),
        "risks": risks,
        "rollback_notes": ["git revert --no-edit HEAD"],
        "verdicts": [{
            "analyzer": "anthropic/claude-sonnet-4-5", "risk_score": score,
            "recommendation": recommendation, "summary": "", "risks": [], "rollback_notes": [],
            "latency_ms": 1800,
            "usage": {"input_tokens": 1000, "output_tokens": 100, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        }],
        "consensus": {"mode": "majority", "quorum": 1, "n_model_verdicts": 1, "agreed": true, "floor_applied": false},
        "usage": {"input_tokens": 1000, "output_tokens": 100, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        "cost_usd": cost_usd,
        "cached": cached,
        "decided_at": decided_at,
        "context": {"n_files": 3, "n_commits": 1, "lines_added": 40, "lines_removed": 2, "packed_chars": 1800, "n_omitted": 0}
    }))
    .unwrap()
}

#[test]
fn the_status_page_shows_a_decision_made_after_it_opened_and_logs_no_console_error() {
    let fleet = Fleet::start(FleetOptions { models: true });
    let p = &fleet.prefix;

    // Decisions already in the log when the page starts: it replays them.
    let earlier = [
        decision(
            &format!("{p}payments"),
            "acme/payments",
            88,
            "block",
            0.0123,
            false,
            Some((
                "schema",
                "critical",
                "DROP TABLE invoices in migrations/V9__drop.sql",
            )),
        ),
        decision(
            &format!("{p}docs"),
            "acme/docs-site",
            8,
            "deploy",
            0.0,
            true,
            None,
        ),
        decision(
            &format!("{p}api"),
            "acme/api",
            41,
            "deploy",
            0.0071,
            false,
            Some(("deps", "medium", "serde_json bumped across a minor version")),
        ),
    ];
    fleet.block_on(async {
        let bus = Bus::connect(AMQP_URL, fleet.bus_settings.clone())
            .await
            .unwrap();
        let publisher = bus.publisher().await.unwrap();
        for decision in &earlier {
            publisher.publish_decision(decision, None).await.unwrap();
        }
        let _ = bus.close().await;
    });

    let addr = format!("127.0.0.1:{}", free_port());
    let dashboard = fleet.spawn(&["dashboard", "--listen", &addr], &[]);
    wait_for_listener(&addr, Duration::from_secs(30));

    let browser = Browser::start(fleet.dir.path());
    browser.goto(&format!("http://{addr}/"));
    let title = browser.execute("return document.title;");
    assert_eq!(title, "deploy-gate · status");
    let replayed = browser.wait_for("the three decisions already in the log", ROWS, |rows| {
        rows_of(rows).len() == 3
    });
    let payments = row(&replayed, &format!("{p}payments"), false).unwrap();
    assert_eq!(payments["repo"], "acme/payments");
    assert_eq!(payments["score"], "88");
    assert_eq!(payments["recommendation"], "block");
    assert!(
        payments["risk"]
            .as_str()
            .unwrap()
            .contains("DROP TABLE invoices"),
        "{payments:#}"
    );
    let docs = row(&replayed, &format!("{p}docs"), false).unwrap();
    assert_eq!(docs["tags"], json!(["cached"]), "{docs:#}");

    // Now a merge goes through the real fleet: enqueue → worker (mock model) →
    // results exchange → decisions log → the open page.
    let _worker = fleet.spawn_worker(&[]);
    let repo = app_repo();
    let head = commit_code(&repo, 1, "MOCK:score=60");
    let event_id = format!("{p}shop");
    fleet.enqueue(&repo, &event_id);
    let decided = fleet.wait_for(&event_id, 0);
    assert_eq!(decided["recommendation"], "hold", "{decided:#}");
    let rows = browser.wait_for("the worker's decision", ROWS, |rows| {
        row(rows, &event_id, false).is_some()
    });
    let shown = row(&rows, &event_id, false).unwrap();
    assert_eq!(shown["repo"], REPO_NAME);
    assert_eq!(shown["score"], decided["risk_score"].to_string());
    assert_eq!(shown["recommendation"], "hold");
    assert_eq!(shown["commit"], &head[..8]);
    assert_eq!(
        rows_of(&rows)[0]["event_id"],
        event_id.as_str(),
        "the newest decision is listed first"
    );

    // A person overrides it: the page lists the override as such and marks the
    // automatic decision it supersedes.
    let approved = fleet.run(&[
        "approve",
        &event_id,
        "--by",
        "alice",
        "--reason",
        "rollback plan reviewed",
    ]);
    assert_eq!(approved.code, 0, "{}", approved.all_output());
    let rows = browser.wait_for("alice's override", ROWS, |rows| {
        row(rows, &event_id, true).is_some()
    });
    let human = row(&rows, &event_id, true).unwrap();
    assert_eq!(human["recommendation"], "deploy");
    assert_eq!(human["tags"], json!(["override · was hold"]), "{human:#}");
    assert!(
        human["risk"].as_str().unwrap().contains("alice"),
        "{human:#}"
    );
    let automatic = row(&rows, &event_id, false).unwrap();
    assert_eq!(automatic["superseded"], true, "{automatic:#}");
    assert_eq!(automatic["tags"], json!(["overridden by alice"]));

    // The figures: four automatic decisions today, one of them cached; the
    // events queue is read from the broker.
    let figures = browser.wait_for("the figures", FIGURES, |figures| {
        figures["cache"] == "25%"
            && figures["queue"] == "0"
            && figures["queue_sub"]
                .as_str()
                .is_some_and(|s| s.contains("1 worker"))
    });
    assert_eq!(figures["connection"], "live", "{figures:#}");
    assert_eq!(
        figures["cache_sub"], "1 of 4 today · 1 override",
        "{figures:#}"
    );
    assert_ne!(figures["p95"], "–", "{figures:#}");
    let cost = decided["cost_usd"].as_f64().unwrap_or(0.0) + 0.0123 + 0.0071;
    assert_eq!(figures["cost"], format!("${cost:.4}"), "{figures:#}");

    let png = browser.screenshot();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is a PNG"
    );
    let path = screenshot_path();
    std::fs::write(&path, &png).unwrap();
    println!("status page screenshot: {}", path.display());
    // The same page as a laptop in dark mode shows it.
    browser.command(
        reqwest::Method::POST,
        &browser.session_path("/goog/cdp/execute"),
        Some(json!({"cmd": "Emulation.setEmulatedMedia", "params": {
            "features": [{"name": "prefers-color-scheme", "value": "dark"}]
        }})),
    );
    let dark = path.with_file_name("dashboard-screenshot-dark.png");
    std::fs::write(&dark, browser.screenshot()).unwrap();
    println!("status page screenshot (dark): {}", dark.display());

    // No console error while all of that happened; then proof that the console
    // is really read: an error logged on purpose is seen.
    let console = browser.console();
    let errors: Vec<&Value> = console
        .iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.execute("console.error('deploy-gate e2e probe'); return null;");
    let probe = browser.console();
    assert!(
        probe.iter().any(|entry| entry["level"] == "SEVERE"
            && entry["message"]
                .as_str()
                .unwrap_or("")
                .contains("deploy-gate e2e probe")),
        "the browser log endpoint does not report console errors: {probe:#?}"
    );
    assert!(fleet.is_running(dashboard), "{}", fleet.log(dashboard));
    drop(browser);
    assert_eq!(
        fleet.terminate(dashboard, Duration::from_secs(15)),
        Some(0),
        "{}",
        fleet.log(dashboard)
    );
}
