//! Writes the seed corpus of every fuzz target into `fuzz/corpus/<target>/` from
//! real examples: the rules corpus (`crates/rules/tests/corpus/*.toml`), the
//! shipped policy, and JSON built by the project's own types and the testkit's
//! GitHub builders (merge events, decisions, outcomes, deliveries, compare answers,
//! model responses in both providers' wire formats).
//!
//! Run from the repository root:
//! `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds`.
//! It only adds and overwrites its own files (`gen-*`); hand-written seeds stay.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use deploy_gate_fuzz::{sample_change, SEPARATOR};
use gate_core::{
    Bands, ConsensusPolicy, MergeEvent, Outcome, OutcomeResult, Policy, EVENT_SCHEMA_VERSION,
    VERDICT_TOOL_NAME,
};
use gate_testkit::github::{
    comparison_json, Comparison, MockCommit, MockFile, PullRequestEvent, PushEvent,
};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct CorpusFile {
    #[serde(default, rename = "case")]
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    files: Vec<CaseFile>,
}

#[derive(Deserialize)]
struct CaseFile {
    path: String,
    #[serde(default)]
    old_path: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    diff: Option<String>,
    #[serde(default)]
    binary: bool,
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("fuzz/corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format!("gen-{name}")), bytes).unwrap();
}

fn joined(first: &[u8], fields: &[&[u8]]) -> Vec<u8> {
    let mut out = first.to_vec();
    for (idx, field) in fields.iter().enumerate() {
        if idx > 0 {
            out.extend_from_slice(SEPARATOR);
        }
        out.extend_from_slice(field);
    }
    out
}

fn status_letter(status: Option<&str>) -> &'static str {
    match status.unwrap_or("modified") {
        "added" => "A",
        "deleted" | "removed" => "D",
        "renamed" => "R",
        "copied" => "C",
        _ => "M",
    }
}

fn rules_corpus() {
    let mut entries: Vec<_> = fs::read_dir("crates/rules/tests/corpus")
        .expect("run from the repository root")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    entries.sort();
    for path in entries {
        let text = fs::read_to_string(&path).unwrap();
        let corpus: CorpusFile = toml::from_str(&text).unwrap();
        for case in corpus.cases {
            let mut unified = String::new();
            let mut pack_fields: Vec<Vec<u8>> = vec![format!("Change: {}", case.name).into_bytes()];
            for file in &case.files {
                let old = file.old_path.as_deref().unwrap_or(&file.path);
                let letter = status_letter(file.status.as_deref());
                unified.push_str(&format!("diff --git a/{old} b/{}\n", file.path));
                match letter {
                    "A" => unified.push_str(&format!(
                        "new file mode 100644\n--- /dev/null\n+++ b/{}\n",
                        file.path
                    )),
                    "D" => unified.push_str(&format!(
                        "deleted file mode 100644\n--- a/{old}\n+++ /dev/null\n"
                    )),
                    _ => unified.push_str(&format!("--- a/{old}\n+++ b/{}\n", file.path)),
                }
                let diff = file.diff.as_deref().unwrap_or("").trim_start_matches('\n');
                if file.binary {
                    unified.push_str(&format!(
                        "Binary files a/{old} and b/{} differ\n",
                        file.path
                    ));
                } else {
                    unified.push_str(diff);
                    if !diff.ends_with('\n') {
                        unified.push('\n');
                    }
                }
                let mut header = format!("{letter} {}", file.path);
                if let Some(old_path) = &file.old_path {
                    header.push(' ');
                    header.push_str(old_path);
                }
                let body = if file.binary {
                    "BINARY"
                } else {
                    diff.trim_end_matches('\n')
                };
                pack_fields.push(format!("{header}\n{body}").into_bytes());
            }
            write("diff", &case.name, unified.as_bytes());
            let refs: Vec<&[u8]> = pack_fields.iter().map(Vec::as_slice).collect();
            // 187 × 64 = 11,968 characters: about the default budget.
            write("pack", &case.name, &joined(&[187], &refs));
            write(
                "pack",
                &format!("{}-tight", case.name),
                &joined(&[4], &refs),
            );
        }
    }
}

fn sha(digit: char) -> String {
    digit.to_string().repeat(40)
}

fn envelopes_and_deliveries() {
    let (context, rules) = sample_change();
    let event = MergeEvent {
        schema_version: EVENT_SCHEMA_VERSION,
        event_id: "gh-72d3162e-cc78-11e3-81ab-4c9367dc0958".to_owned(),
        repo: context.repo.clone(),
        base: context.base.clone(),
        head: context.head.clone(),
        git_ref: Some("refs/heads/main".to_owned()),
        produced_at: "2026-01-01T00:00:00Z".to_owned(),
        source: "webhook".to_owned(),
        context: context.clone(),
    };
    let event_json = serde_json::to_vec_pretty(&event).unwrap();
    write("envelope", "merge-event.json", &event_json);
    let mut future = serde_json::to_value(&event).unwrap();
    future["schema_version"] = json!(2);
    write(
        "envelope",
        "merge-event-v2.json",
        &serde_json::to_vec(&future).unwrap(),
    );
    let mut empty = serde_json::to_value(&event).unwrap();
    empty["event_id"] = json!("  ");
    write(
        "envelope",
        "merge-event-empty-id.json",
        &serde_json::to_vec(&empty).unwrap(),
    );

    let policy = Policy::parse(include_str!("../../config/policy.toml"), "policy.toml").unwrap();
    let plan = policy.plan(
        context,
        rules,
        Bands::default(),
        &ConsensusPolicy::default(),
        0,
    );
    let decision = plan.decide(
        &event.event_id,
        context,
        "2026-01-01T00:00:05Z",
        rules.clone(),
        Vec::new(),
    );
    write(
        "envelope",
        "decision.json",
        &serde_json::to_vec_pretty(&decision).unwrap(),
    );
    let outcome = Outcome::new(
        &event.event_id,
        OutcomeResult::RolledBack,
        "rolled back after p99 latency doubled",
        time::OffsetDateTime::UNIX_EPOCH,
    )
    .unwrap();
    write(
        "envelope",
        "outcome.json",
        &serde_json::to_vec_pretty(&outcome).unwrap(),
    );
    write("envelope", "not-json", b"schema_version: 1");

    // Deliveries: route byte, signing byte, then body, compare answer, signature, id.
    let (base, middle, head) = (sha('a'), sha('c'), sha('b'));
    let comparison = Comparison {
        base_sha: base.clone(),
        merge_base_sha: base.clone(),
        commits: vec![
            MockCommit::new(&middle, &base, "Add the prod config", "Ada Lovelace"),
            MockCommit::new(&head, &middle, "Drop the legacy column", "Grace Hopper"),
        ],
        files: vec![
            MockFile::with_patch("README.md", "modified", "@@ -1,2 +1,2 @@\n # shop\n-old words\n+new words"),
            MockFile::added("db/migrations/002_drop_legacy.sql", &["ALTER TABLE users DROP COLUMN legacy;"]),
            MockFile::with_patch(
                "Cargo.lock",
                "modified",
                "@@ -10,3 +10,3 @@\n [[package]]\n name = \"serde\"\n-version = \"1.0.195\"\n+version = \"1.0.196\"",
            ),
            MockFile::binary("assets/logo.png", "added"),
        ],
    };
    let compare = serde_json::to_vec(&comparison_json(
        "https://api.github.com",
        "acme/shop",
        &format!("{base}...{head}"),
        &comparison,
    ))
    .unwrap();
    let push = PushEvent {
        repo: "acme/shop".to_owned(),
        git_ref: "refs/heads/main".to_owned(),
        before: base.clone(),
        after: head.clone(),
        commits: vec![MockCommit::new(
            &head,
            &base,
            "Drop the legacy column",
            "Grace Hopper",
        )],
    }
    .to_json();
    let new_branch = PushEvent {
        before: "0".repeat(40),
        ..PushEvent {
            repo: "acme/shop".to_owned(),
            git_ref: "refs/heads/main".to_owned(),
            before: String::new(),
            after: head.clone(),
            commits: vec![MockCommit::new(&head, &base, "First", "Ada Lovelace")],
        }
    }
    .to_json();
    let pull = PullRequestEvent {
        repo: "acme/shop".to_owned(),
        action: "closed".to_owned(),
        number: 42,
        merged: true,
        base_ref: "main".to_owned(),
        base_sha: base.clone(),
        head_sha: middle.clone(),
        merge_commit_sha: Some(head.clone()),
        title: "Drop the legacy column".to_owned(),
    }
    .to_json();
    write("webhook", "push", &joined(&[0, 0], &[&push, &compare]));
    write(
        "webhook",
        "push-new-branch",
        &joined(&[0, 0], &[&new_branch, &compare]),
    );
    write(
        "webhook",
        "pull-request",
        &joined(&[1, 0], &[&pull, &compare]),
    );
    write(
        "webhook",
        "ping",
        &joined(
            &[2, 0],
            &[br#"{"zen":"Keep it logically awesome.","hook_id":1}"#],
        ),
    );
    write(
        "webhook",
        "other-event",
        &joined(&[3, 0], &[br#"{"action":"published"}"#]),
    );
    write("webhook", "events", &joined(&[4, 0], &[&event_json]));
    let zeros = format!("sha256={}", "0".repeat(64));
    write(
        "webhook",
        "push-bad-signature",
        &joined(&[0, 1], &[&push, &compare, zeros.as_bytes()]),
    );
    write(
        "webhook",
        "push-unsigned",
        &joined(&[0, 2], &[&push, &compare]),
    );
    write(
        "webhook",
        "push-compare-fails",
        &joined(&[0, 0], &[&push, br#"{"message":"Not Found"}"#]),
    );
}

fn model_outputs() {
    let verdicts = [
        json!({
            "risk_score": 62,
            "recommendation": "hold",
            "summary": "Drops a column that the running release still reads.",
            "risks": [{
                "category": "schema",
                "severity": "high",
                "detail": "DROP COLUMN legacy while the previous release selects it",
                "evidence": [{"file": "db/migrations/002_drop_legacy.sql", "line": 1}]
            }],
            "rollback_notes": ["Restore the column from the backup before reverting."]
        }),
        json!({
            "risk_score": 10,
            "recommendation": "deploy",
            "summary": "Documentation only.",
            "risks": [],
            "rollback_notes": []
        }),
        // Invalid: the recommendation does not match the band (the repair turn's case).
        json!({
            "risk_score": 90,
            "recommendation": "deploy",
            "summary": "Looks fine.",
            "risks": [{"category": "auth", "severity": "critical", "detail": "check removed", "evidence": []}],
            "rollback_notes": []
        }),
    ];
    for (idx, verdict) in verdicts.iter().enumerate() {
        let mut direct = vec![2u8];
        direct.extend_from_slice(&serde_json::to_vec(verdict).unwrap());
        write("model_output", &format!("verdict-{idx}"), &direct);
        let anthropic = json!({
            "id": "msg_mock_000001",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-6",
            "content": [{"type": "tool_use", "id": "toolu_01", "name": VERDICT_TOOL_NAME, "input": verdict}],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {
                "input_tokens": 1200,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 2400,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "output_tokens": 180
            }
        });
        let mut body = vec![0u8];
        body.extend_from_slice(&serde_json::to_vec(&anthropic).unwrap());
        write("model_output", &format!("anthropic-{idx}"), &body);
        let openai = json!({
            "id": "chatcmpl-mock-1",
            "object": "chat.completion",
            "created": 1767225600,
            "model": "gpt-4.1-mini",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": verdict.to_string(), "refusal": null},
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 1500, "completion_tokens": 160, "total_tokens": 1660,
                      "prompt_tokens_details": {"cached_tokens": 1024}}
        });
        let mut body = vec![1u8];
        body.extend_from_slice(&serde_json::to_vec(&openai).unwrap());
        write("model_output", &format!("openai-{idx}"), &body);
    }
    let refusal = json!({
        "id": "msg_mock_000002", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "I can't help with that."}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 8}
    });
    let mut body = vec![0u8];
    body.extend_from_slice(&serde_json::to_vec(&refusal).unwrap());
    write("model_output", "anthropic-text-only", &body);
}

fn main() {
    rules_corpus();
    envelopes_and_deliveries();
    model_outputs();
    fs::create_dir_all("fuzz/corpus/policy").unwrap();
    fs::copy("config/policy.toml", "fuzz/corpus/policy/gen-default.toml").unwrap();
    for target in [
        "envelope",
        "webhook",
        "diff",
        "pack",
        "model_output",
        "policy",
    ] {
        let n = fs::read_dir(Path::new("fuzz/corpus").join(target))
            .unwrap()
            .count();
        println!("{target}: {n} seeds");
    }
}
