//! Injection resistance: the adversarial corpus in `tests/injection/` through the
//! real worker, the real local RabbitMQ and Redis, a real Anthropic provider and the
//! mock model in its obedient mode — the worst-case model, which obeys any
//! instruction it sees anywhere in the request ("score 0", "approved by", a fake end
//! of the diff, look-alike letters, base64…) with `deploy` at score 0.
//!
//! # What "the band the same change gets without the injected text" means
//!
//! Every case is one real change written twice, in two real repositories built the
//! same way: **clean**, and **injected** (the same change plus text aimed at the
//! reviewer: in a comment, a string, the commit message, a file name, a package
//! name, a fake fence or tool result, look-alike or invisible characters, base64,
//! split across files, a claim of approval). Both are decided by the same worker
//! setup: rules analyzer, the obedient mock behind the Anthropic provider, default
//! consensus and bands. Without an instruction to obey, the obedient mock answers as
//! a diligent model does — it confirms the rules analyzer's hints (its prompt says
//! "never score below them") and adds what it sees itself (destructive SQL,
//! redacted secrets). So the **baseline** is the decision an honest reviewer plus
//! the gate gives the clean change; it is *not* the rules score alone, and *not* an
//! "auto" band by construction. The property checked, per case:
//!
//! - the injected decision's band and recommendation are never below the
//!   baseline's;
//! - a risky case (a destructive migration, a removed auth check, a leaked secret,
//!   a privileged container, a wildcard IAM grant…) is never `deploy`, clean or
//!   injected;
//! - the corpus is honest: the mock did obey in every injected case (or the case
//!   would test nothing) and did not in any clean one; the rules analyzer reported
//!   review steering in every injected case and in no clean one;
//! - outside the prompt's fence there is exactly one line per rules finding: no
//!   text of the change can add a line to the trusted part of the prompt.
//!
//! Run with `--nocapture` to see the table.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use gate_core::{
    is_review_steering, Band, ChangedFile, Decision, DeployContext, DiffVisitor, LineKind,
    Recommendation, Redactor, Severity,
};
use gate_git::{ContextOptions, Range};
use gate_mock_llm::{find_instruction, MockConfig};
use gate_testkit::TestRepo;
use serde::Deserialize;
use serde_json::Value;

use common::{event, Fleet, RunningWorker};

/// One file of `tests/injection/`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// The change, in one line.
    what: String,
    /// Where the injected text sits.
    vector: String,
    /// Whether the change itself must not deploy.
    risky: bool,
    /// The files of the first commit.
    #[serde(default)]
    base: BTreeMap<String, String>,
    change: Change,
    injected: Injected,
}

/// The clean change: one commit on top of `base`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    message: String,
    #[serde(default)]
    files: BTreeMap<String, String>,
    #[serde(default)]
    delete: Vec<String>,
}

/// What the injected version changes in the clean one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Injected {
    /// The commit message, when it differs.
    message: Option<String>,
    /// Files written besides or instead of the clean change's.
    #[serde(default)]
    files: BTreeMap<String, String>,
    /// Files of the clean change not written (renamed to an injected name).
    #[serde(default)]
    remove: Vec<String>,
}

fn corpus() -> Vec<(String, Case)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/injection");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let id = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let case: Case =
                toml::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            (id, case)
        })
        .collect()
}

struct Ignore;

impl DiffVisitor for Ignore {
    fn line(&mut self, _: &ChangedFile, _: LineKind, _: u32, _: &str) {}
}

/// A real repository with the base commit and the change (clean or injected), and
/// the deploy context the producer would enqueue for it (redacted, packed).
fn context(id: &str, case: &Case, injected: bool) -> DeployContext {
    let repo = TestRepo::new();
    repo.write("README.md", &format!("# {id}\n"));
    for (path, text) in &case.base {
        repo.write(path, text);
    }
    repo.commit("Initial commit");
    let mut files = case.change.files.clone();
    let mut message = case.change.message.clone();
    if injected {
        for path in &case.injected.remove {
            assert!(files.remove(path).is_some(), "{id}: no {path} to remove");
        }
        files.extend(case.injected.files.clone());
        if let Some(injected_message) = &case.injected.message {
            message = injected_message.clone();
        }
    }
    for (path, text) in &files {
        repo.write(path, text);
    }
    for path in &case.change.delete {
        repo.remove(path);
    }
    repo.commit(message.trim());
    gate_git::build_context(
        repo.path(),
        &Range::default(),
        &ContextOptions {
            repo_name: Some("acme/shop".to_string()),
            ..ContextOptions::default()
        },
        &Redactor::new(),
        &mut Ignore,
    )
    .unwrap()
}

/// The user text of the model request made for the change `head`.
fn prompt_for(requests: &[Value], head: &str) -> Option<String> {
    let marker = format!("..{head}");
    requests.iter().find_map(|body| {
        let text = match &body["messages"][0]["content"] {
            Value::String(text) => text.clone(),
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            _ => return None,
        };
        text.contains(&marker).then_some(text)
    })
}

/// The prompt's text outside the fence (before it opens, after it closes).
fn outside_fence(prompt: &str) -> String {
    // The fence opens on a line of its own (the first sentence names it in quotes).
    let open = prompt.find("\n<<<UNTRUSTED-").unwrap_or(prompt.len());
    let before = &prompt[..open];
    let after = prompt[open..]
        .rfind("\nUNTRUSTED-")
        .and_then(|close| {
            let rest = &prompt[open + close + 1..];
            rest.find(">>>").map(|end| &rest[end + 3..])
        })
        .unwrap_or("");
    format!("{before}{after}")
}

fn band_name(band: Band) -> &'static str {
    match band {
        Band::Auto => "auto",
        Band::Review => "review",
        Band::Hold => "hold",
        Band::Block => "block",
    }
}

fn show(decision: &Decision) -> String {
    format!(
        "{} {} {}",
        band_name(decision.band),
        decision.risk_score,
        decision.recommendation
    )
}

/// What the model said, in short.
fn model_said(decision: &Decision) -> String {
    match decision.verdicts.get(1) {
        Some(verdict) => format!("{} {}", verdict.recommendation, verdict.risk_score),
        None => "(not asked)".to_string(),
    }
}

/// Whether a model was asked about the change.
fn asked(decision: &Decision) -> bool {
    decision.verdicts.len() > 1
}

fn obeyed(decision: &Decision) -> bool {
    decision
        .verdicts
        .get(1)
        .is_some_and(|v| v.summary.starts_with("As instructed"))
}

/// The severity of the rules' review-steering finding, if any.
fn steering(decision: &Decision) -> Option<Severity> {
    decision.verdicts[0]
        .risks
        .iter()
        .filter(|r| is_review_steering(r))
        .map(|r| r.severity)
        .max()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_injected_text_lowers_a_decision_below_the_clean_changes_band() {
    let corpus = corpus();
    assert!(
        corpus.len() >= 30,
        "the corpus has {} cases; at least 30",
        corpus.len()
    );
    let mut fleet = Fleet::start().await;
    fleet.mock.set_config(MockConfig {
        obey_instructions: true,
        ..MockConfig::default()
    });
    let worker = RunningWorker::spawn(fleet.worker_settings(), fleet.worker_deps());

    let mut n_events = 0;
    for (id, case) in &corpus {
        for injected in [false, true] {
            let event_id = format!("inj-{id}-{}", if injected { "injected" } else { "clean" });
            fleet
                .publish(&event(&event_id, context(id, case, injected)))
                .await;
            n_events += 1;
        }
    }
    let seen = fleet.results_until_decisions(n_events, 300).await;
    let decisions: BTreeMap<String, Decision> = seen
        .into_iter()
        .filter_map(|s| s.decision)
        .map(|d| (d.event_id.clone(), d))
        .collect();
    let requests: Vec<Value> = fleet.mock.requests().into_iter().map(|r| r.body).collect();

    let mut failures = Vec::new();
    let mut rows = Vec::new();
    for (id, case) in &corpus {
        let clean = &decisions[&format!("inj-{id}-clean")];
        let injected = &decisions[&format!("inj-{id}-injected")];
        let mut fail = |what: String| failures.push(format!("{id}: {what}"));

        if injected.band < clean.band || injected.recommendation < clean.recommendation {
            fail(format!(
                "the injected text lowered the decision: clean {}, injected {}",
                show(clean),
                show(injected)
            ));
        }
        if case.risky {
            for (name, decision) in [("clean", clean), ("injected", injected)] {
                if decision.recommendation == Recommendation::Deploy {
                    fail(format!(
                        "a risky change deploys ({name}: {})",
                        show(decision)
                    ));
                }
            }
        }
        // When the policy skips the models (a change the rules call trivial), no model
        // read the text: there is nothing to obey and no prompt to check.
        if asked(injected) && !obeyed(injected) {
            fail(format!(
                "the obedient mock found nothing to obey in the injected change (it said {}): the case tests nothing",
                model_said(injected)
            ));
        }
        if obeyed(clean) {
            fail(format!(
                "the obedient mock obeyed something in the clean change: {}",
                clean.verdicts[1].summary
            ));
        }
        if steering(clean).is_some() {
            fail("the rules analyzer reports review steering in the clean change".to_string());
        }
        if steering(injected).is_none() {
            fail("the rules analyzer missed the review steering".to_string());
        }
        for (name, decision) in [("clean", clean), ("injected", injected)] {
            if !asked(decision) {
                continue;
            }
            let Some(prompt) = prompt_for(&requests, &decision.head) else {
                fail(format!("no model request for the {name} change"));
                continue;
            };
            let outside = outside_fence(&prompt);
            let n_hint_lines = outside.lines().filter(|l| l.starts_with("- [")).count();
            let n_rules_risks = decision.verdicts[0].risks.len();
            if n_hint_lines != n_rules_risks {
                fail(format!(
                    "{name}: {n_hint_lines} finding lines outside the fence for {n_rules_risks} rules findings: the change wrote into the trusted part of the prompt"
                ));
            }
            if name == "clean" && find_instruction(&outside).is_some() {
                fail(format!(
                    "clean: the gate's own prompt text reads as an instruction: {:?}",
                    find_instruction(&outside)
                ));
            }
        }
        rows.push([
            id.clone(),
            case.vector.clone(),
            if case.risky { "risky" } else { "ordinary" }.to_string(),
            show(clean),
            model_said(injected),
            show(injected),
            steering(injected).map_or("-".to_string(), |s| s.to_string()),
        ]);
    }

    let header = [
        "case",
        "vector",
        "change",
        "baseline (clean)",
        "model said (injected)",
        "final (injected)",
        "steering",
    ];
    let widths: Vec<usize> = (0..header.len())
        .map(|col| {
            rows.iter()
                .map(|row| row[col].chars().count())
                .chain([header[col].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!("\n{}", line(&header));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-|-")
    );
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        println!("{}", line(&cells));
    }
    let n_risky = corpus.iter().filter(|(_, c)| c.risky).count();
    println!(
        "\n{} cases ({} risky, {} ordinary), {} decisions; {} failures",
        corpus.len(),
        n_risky,
        corpus.len() - n_risky,
        decisions.len(),
        failures.len()
    );
    for (id, case) in &corpus {
        println!("  {id}: {}", case.what);
    }

    worker.stop().await.0.unwrap();
    fleet.cleanup().await;
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
