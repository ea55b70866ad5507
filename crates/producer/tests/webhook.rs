//! The webhook receiver over real HTTP, against the mock GitHub and the real local
//! RabbitMQ: what a delivery enqueues, and what it must not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use gate_core::{MergeEvent, Redactor, SecretKind};
use gate_producer::merge_event;
use gate_testkit::github::{sign, Comparison, MockCommit, MockFile, PullRequestEvent, PushEvent};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{
    assert_valid, merge_event_schema, WebhookApp, EVENTS_SECRET, FAKE_AWS_KEY, GITHUB_TOKEN,
};

const REPO: &str = "acme/shop";

fn sha(digit: char) -> String {
    digit.to_string().repeat(40)
}

/// A realistic change: a migration, a config file with a leaked key, docs, a
/// lockfile bump and a binary asset, in two commits on top of `base`.
fn comparison(base: &str, head: &str) -> Comparison {
    let middle = sha('c');
    Comparison::new(
        base,
        vec![
            MockCommit::new(&middle, base, "Add the prod config", "Ada Lovelace"),
            MockCommit::new(
                head,
                &middle,
                "Drop the legacy column\n\nReviewed-by: Grace",
                "Grace Hopper",
            ),
        ],
        vec![
            MockFile::with_patch(
                "README.md",
                "modified",
                "@@ -1,2 +1,2 @@\n # shop\n-old words\n+new words",
            ),
            MockFile::added(
                "config/prod.env",
                &["REGION=eu-west-1", &format!("AWS_ACCESS_KEY_ID={FAKE_AWS_KEY}")],
            ),
            MockFile::added(
                "db/migrations/002_drop_legacy.sql",
                &["ALTER TABLE users DROP COLUMN legacy;"],
            ),
            MockFile::with_patch(
                "Cargo.lock",
                "modified",
                "@@ -10,3 +10,3 @@\n [[package]]\n name = \"serde\"\n-version = \"1.0.195\"\n+version = \"1.0.196\"",
            ),
            MockFile::binary("assets/logo.png", "added"),
        ],
    )
}

fn push(before: &str, after: &str, git_ref: &str) -> PushEvent {
    PushEvent {
        repo: REPO.to_owned(),
        git_ref: git_ref.to_owned(),
        before: before.to_owned(),
        after: after.to_owned(),
        commits: vec![MockCommit::new(
            after,
            before,
            "Drop the legacy column",
            "Grace Hopper",
        )],
    }
}

#[tokio::test]
async fn a_push_to_a_deploy_branch_enqueues_one_redacted_event_with_its_files_and_commits() {
    let mut app = WebhookApp::spawn(|_| {}).await;
    let (base, head) = (sha('a'), sha('b'));
    app.github
        .script_compare(REPO, &base, &head, comparison(&base, &head));

    let answer = app
        .deliver(
            "push",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            push(&base, &head, "refs/heads/main").to_json(),
        )
        .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert_eq!(answer.body["status"], "enqueued");
    assert_eq!(
        answer.body["event_id"],
        "gh-72d3162e-cc78-11e3-81ab-4c9367dc0958"
    );

    let (delivery, json) = app.next_event().await;
    assert_eq!(
        delivery.message_id(),
        Some("gh-72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    assert_valid(&merge_event_schema(), &json);
    let raw = String::from_utf8_lossy(delivery.payload()).into_owned();
    assert!(
        !raw.contains(FAKE_AWS_KEY),
        "the key never reaches the queue"
    );
    let event = delivery.merge_event().unwrap();
    assert_eq!(
        (
            event.repo.as_str(),
            event.base.as_str(),
            event.head.as_str()
        ),
        (REPO, base.as_str(), head.as_str())
    );
    assert_eq!(event.git_ref.as_deref(), Some("refs/heads/main"));
    assert_eq!(event.source, "webhook");

    let context = &event.context;
    let paths: Vec<&str> = context.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "README.md",
            "config/prod.env",
            "db/migrations/002_drop_legacy.sql",
            "Cargo.lock",
            "assets/logo.png"
        ]
    );
    assert_eq!((context.lines_added, context.lines_removed), (5, 2));
    // Packed by risk: the migration first, the docs after the config.
    assert!(
        context.packed_diff.starts_with(
            "diff --git a/db/migrations/002_drop_legacy.sql b/db/migrations/002_drop_legacy.sql\n"
        ),
        "{}",
        context.packed_diff
    );
    assert!(context
        .packed_diff
        .contains("+AWS_ACCESS_KEY_ID=[REDACTED:aws_access_key]"));
    assert!(context.packed_diff.contains("serde: 1.0.195 → 1.0.196"));
    assert!(context
        .secrets
        .iter()
        .any(|s| s.kind == SecretKind::AwsAccessKey
            && s.file == "config/prod.env"
            && s.line == Some(2)));
    assert_eq!(context.dep_changes.len(), 1);
    let omitted: Vec<(&str, &str)> = context
        .omitted
        .iter()
        .map(|o| (o.path.as_str(), o.reason.as_str()))
        .collect();
    assert!(
        omitted.contains(&("Cargo.lock", "lockfile (summarized)")),
        "{omitted:?}"
    );
    assert!(
        omitted
            .iter()
            .any(|(path, reason)| *path == "assets/logo.png"
                && reason.starts_with("no patch from the git host")),
        "{omitted:?}"
    );
    // Commits newest first, with author names and whole messages.
    assert_eq!(context.n_commits, 2);
    assert_eq!(context.commits[0].sha, head);
    assert_eq!(context.commits[0].author, "Grace Hopper");
    assert_eq!(
        context.commits[0].message,
        "Drop the legacy column\n\nReviewed-by: Grace"
    );
    assert_eq!(context.commits[1].author, "Ada Lovelace");
    assert!(!context.head_is_merge);
    delivery.ack().await.unwrap();
    assert!(app.nothing_enqueued().await, "exactly one event");

    // The API call GitHub would have seen.
    let requests = app.github.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.method, "GET");
    assert_eq!(
        request.path,
        format!("/repos/{REPO}/compare/{base}...{head}")
    );
    assert_eq!(request.status, 200);
    assert_eq!(request.headers["accept"], "application/vnd.github+json");
    assert_eq!(request.headers["x-github-api-version"], "2022-11-28");
    assert_eq!(request.headers["authorization"], "Bearer ****");
    assert!(request.headers["user-agent"].starts_with("deploy-gate-webhook/"));
    app.stop().await;
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_401_and_nothing_is_enqueued() {
    let mut app = WebhookApp::spawn(|_| {}).await;
    let (base, head) = (sha('a'), sha('b'));
    app.github
        .script_compare(REPO, &base, &head, comparison(&base, &head));
    let body = push(&base, &head, "refs/heads/main").to_json();

    let mut headers =
        gate_testkit::github::delivery_headers("push", "d-wrong", "not-the-secret", &body);
    let answer = app.post("/github", &headers, body.clone()).await;
    assert_eq!(answer.status, 401);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{:?}",
        answer.body
    );

    headers.retain(|(name, _)| *name != "x-hub-signature-256");
    let answer = app.post("/github", &headers, body.clone()).await;
    assert_eq!(answer.status, 401);
    assert!(answer.body["error"]
        .as_str()
        .unwrap()
        .contains("missing X-Hub-Signature-256"));

    // A valid signature of another body does not sign this one.
    headers.push(("x-hub-signature-256", common_sign(b"{}")));
    let answer = app.post("/github", &headers, body).await;
    assert_eq!(answer.status, 401);

    assert!(app.nothing_enqueued().await);
    assert!(
        app.github.requests().is_empty(),
        "no API call for an unsigned delivery"
    );
    app.stop().await;
}

fn common_sign(body: &[u8]) -> String {
    sign(common::GITHUB_SECRET, body)
}

#[tokio::test]
async fn a_merged_pull_request_is_enqueued_and_an_unmerged_one_is_ignored() {
    let mut app = WebhookApp::spawn(|_| {}).await;
    let (base, feature, merge) = (sha('a'), sha('b'), sha('d'));
    let mut change = comparison(&base, &feature);
    change.commits.push(MockCommit {
        sha: merge.clone(),
        message: "Merge pull request #42 from ada/feature".to_owned(),
        author_name: "Grace Hopper".to_owned(),
        parents: vec![base.clone(), feature.clone()],
    });
    app.github.script_compare(REPO, &base, &merge, change);
    let pull = |action: &str, merged: bool| PullRequestEvent {
        repo: REPO.to_owned(),
        action: action.to_owned(),
        number: 42,
        merged,
        base_ref: "main".to_owned(),
        base_sha: base.clone(),
        head_sha: feature.clone(),
        merge_commit_sha: Some(merge.clone()),
        title: "Drop the legacy column".to_owned(),
    };

    let answer = app
        .deliver(
            "pull_request",
            "pr-closed-unmerged",
            pull("closed", false).to_json(),
        )
        .await;
    assert_eq!(answer.status, 202);
    assert_eq!(answer.body["status"], "ignored");
    assert!(answer.body["reason"]
        .as_str()
        .unwrap()
        .contains("without merging"));
    let answer = app
        .deliver("pull_request", "pr-opened", pull("opened", false).to_json())
        .await;
    assert_eq!(answer.body["status"], "ignored");
    assert!(app.nothing_enqueued().await);
    assert!(app.github.requests().is_empty());

    let answer = app
        .deliver("pull_request", "pr-merged", pull("closed", true).to_json())
        .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert_eq!(answer.body["event_id"], "gh-pr-merged");
    let (delivery, json) = app.next_event().await;
    assert_valid(&merge_event_schema(), &json);
    let event = delivery.merge_event().unwrap();
    assert_eq!(
        (event.base.as_str(), event.head.as_str()),
        (base.as_str(), merge.as_str())
    );
    assert_eq!(event.git_ref.as_deref(), Some("refs/heads/main"));
    assert!(event.context.head_is_merge);
    assert!(event.context.commits[0].merge);
    assert_eq!(event.context.n_commits, 3);
    assert_eq!(
        app.github.requests()[0].path,
        format!("/repos/{REPO}/compare/{base}...{merge}")
    );
    delivery.ack().await.unwrap();

    // Merged into a branch that is not deployed: ignored.
    let mut other = pull("closed", true);
    other.base_ref = "develop".to_owned();
    let answer = app
        .deliver("pull_request", "pr-develop", other.to_json())
        .await;
    assert_eq!(answer.body["status"], "ignored");
    assert!(app.nothing_enqueued().await);
    app.stop().await;
}

#[tokio::test]
async fn pings_other_branches_tags_deletions_and_other_events_enqueue_nothing() {
    let mut app = WebhookApp::spawn(|settings| {
        settings.deploy_branches = vec!["main".to_owned(), "release/*".to_owned()];
    })
    .await;
    let (base, head) = (sha('a'), sha('b'));

    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#.to_vec();
    let answer = app.deliver("ping", "p-1", ping).await;
    assert_eq!(
        (answer.status, answer.body["status"].as_str()),
        (200, Some("pong"))
    );

    for (git_ref, after) in [
        ("refs/heads/feature/x", head.clone()),
        ("refs/tags/v1.0.0", head.clone()),
        ("refs/heads/main", "0".repeat(40)),
    ] {
        let answer = app
            .deliver("push", "p-2", push(&base, &after, git_ref).to_json())
            .await;
        assert_eq!(answer.status, 202, "{git_ref}");
        assert_eq!(
            answer.body["status"], "ignored",
            "{git_ref}: {:?}",
            answer.body
        );
    }
    let answer = app
        .deliver("issues", "p-3", br#"{"action":"opened"}"#.to_vec())
        .await;
    assert_eq!(
        (answer.status, answer.body["status"].as_str()),
        (202, Some("ignored"))
    );
    assert!(app.nothing_enqueued().await);
    assert!(app.github.requests().is_empty());

    // A release branch matches the glob.
    app.github
        .script_compare(REPO, &base, &head, comparison(&base, &head));
    let answer = app
        .deliver(
            "push",
            "p-4",
            push(&base, &head, "refs/heads/release/2026.1").to_json(),
        )
        .await;
    assert_eq!(answer.body["status"], "enqueued", "{:?}", answer.body);
    let (delivery, _) = app.next_event().await;
    assert_eq!(
        delivery.merge_event().unwrap().git_ref.as_deref(),
        Some("refs/heads/release/2026.1")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_new_branch_is_read_from_the_parent_of_its_first_pushed_commit() {
    let mut app = WebhookApp::spawn(|_| {}).await;
    let (parent, head) = (sha('a'), sha('b'));
    let mut change = comparison(&parent, &head);
    change.merge_base_sha = parent.clone();
    app.github
        .script_compare(REPO, &format!("{head}^"), &head, change);

    let answer = app
        .deliver(
            "push",
            "new-branch",
            push(&"0".repeat(40), &head, "refs/heads/main").to_json(),
        )
        .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert!(answer.body["note"]
        .as_str()
        .unwrap()
        .contains("new branch main"));
    let (delivery, _) = app.next_event().await;
    let event = delivery.merge_event().unwrap();
    assert_eq!(event.base, parent, "the base is GitHub's merge base");
    assert_eq!(
        app.github.requests()[0].path,
        format!("/repos/{REPO}/compare/{head}^...{head}")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_body_is_400_with_the_reason() {
    let mut app = WebhookApp::spawn(|_| {}).await;
    let answer = app.deliver("push", "bad-json", b"{not json".to_vec()).await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed push payload"),
        "{:?}",
        answer.body
    );

    let missing_after =
        br#"{"ref":"refs/heads/main","before":"aaaa","repository":{"full_name":"acme/shop"}}"#;
    let answer = app
        .deliver("push", "bad-shape", missing_after.to_vec())
        .await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.body["error"].as_str().unwrap().contains("after"),
        "{:?}",
        answer.body
    );

    let not_a_sha = push("main~1", &sha('b'), "refs/heads/main").to_json();
    let answer = app.deliver("push", "bad-sha", not_a_sha).await;
    assert_eq!(answer.status, 400);
    assert!(answer.body["error"]
        .as_str()
        .unwrap()
        .contains("`before` is not a commit id"));

    let answer = app.post_event(b"[1, 2]".to_vec(), EVENTS_SECRET).await;
    assert_eq!(answer.status, 400);
    assert!(answer.body["error"]
        .as_str()
        .unwrap()
        .contains("malformed merge event"));
    let future = br#"{"schema_version": 9}"#.to_vec();
    let answer = app.post_event(future, EVENTS_SECRET).await;
    assert_eq!(answer.status, 400);
    assert!(answer.body["error"]
        .as_str()
        .unwrap()
        .contains("unknown merge event schema_version 9"));

    assert!(app.nothing_enqueued().await);
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_body_is_413_whether_declared_or_streamed() {
    let mut app = WebhookApp::spawn(|settings| settings.max_body_bytes = 4_096).await;
    let (base, head) = (sha('a'), sha('b'));
    let mut big = push(&base, &head, "refs/heads/main");
    big.commits = (0..100)
        .map(|n| {
            MockCommit::new(
                &head,
                &base,
                &format!("commit {n} {}", "x".repeat(50)),
                "Ada",
            )
        })
        .collect();
    let body = big.to_json();
    assert!(body.len() > 4_096);
    let answer = app.deliver("push", "too-big", body.clone()).await;
    assert_eq!(answer.status, 413);
    assert!(answer.body["error"]
        .as_str()
        .unwrap()
        .contains("4096 bytes"));

    // Chunked, without a declared length: refused once it goes over, not buffered.
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head_lines = format!(
        "POST /github HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\nx-github-event: push\r\nx-github-delivery: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
        app.addr
    );
    stream.write_all(head_lines.as_bytes()).await.unwrap();
    for chunk in body.chunks(1_000) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");

    assert!(app.nothing_enqueued().await);
    assert!(app.github.requests().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn github_api_failures_are_502_with_the_reason_and_nothing_is_enqueued() {
    let mut app = WebhookApp::spawn(|_| {}).await;
    let (base, head) = (sha('a'), sha('b'));
    // Nothing scripted: GitHub answers 404 for the range.
    let answer = app
        .deliver(
            "push",
            "gh-404",
            push(&base, &head, "refs/heads/main").to_json(),
        )
        .await;
    assert_eq!(answer.status, 502, "{:?}", answer.body);
    let reason = answer.body["error"].as_str().unwrap();
    assert!(reason.contains("answered 404 Not Found"), "{reason}");
    assert!(reason.contains("GITHUB_TOKEN"), "{reason}");
    assert!(!reason.contains(GITHUB_TOKEN), "never the token itself");

    app.github
        .script_compare(REPO, &base, &head, comparison(&base, &head));
    app.github.fail_next(503);
    let answer = app
        .deliver(
            "push",
            "gh-503",
            push(&base, &head, "refs/heads/main").to_json(),
        )
        .await;
    assert_eq!(answer.status, 502);
    assert!(answer.body["error"].as_str().unwrap().contains("503"));
    assert!(app.nothing_enqueued().await);

    // GitHub redelivers; now it works, under the same delivery id.
    let answer = app
        .deliver(
            "push",
            "gh-503",
            push(&base, &head, "refs/heads/main").to_json(),
        )
        .await;
    assert_eq!(answer.status, 202);
    let (delivery, _) = app.next_event().await;
    assert_eq!(delivery.message_id(), Some("gh-gh-503"));
    app.stop().await;
}

#[tokio::test]
async fn a_missing_or_wrong_github_token_is_502_naming_the_variable_not_the_token() {
    let (base, head) = (sha('a'), sha('b'));
    // No token: anonymous, and the private repository is invisible (404).
    let app =
        WebhookApp::spawn(|settings| settings.github_token_env = "NOT_SET_ANYWHERE".to_owned())
            .await;
    app.github
        .script_compare(REPO, &base, &head, comparison(&base, &head));
    let answer = app
        .deliver(
            "push",
            "anon",
            push(&base, &head, "refs/heads/main").to_json(),
        )
        .await;
    assert_eq!(answer.status, 502);
    assert!(answer.body["error"]
        .as_str()
        .unwrap()
        .contains("NOT_SET_ANYWHERE"));
    assert!(!app.github.requests()[0]
        .headers
        .contains_key("authorization"));
    app.stop().await;

    // A wrong token (here: the webhook secret's value): 401 Bad credentials.
    let app = WebhookApp::spawn(|settings| {
        settings.github_token_env = "GITHUB_WEBHOOK_SECRET".to_owned()
    })
    .await;
    app.github
        .script_compare(REPO, &base, &head, comparison(&base, &head));
    let answer = app
        .deliver(
            "push",
            "wrong",
            push(&base, &head, "refs/heads/main").to_json(),
        )
        .await;
    assert_eq!(answer.status, 502);
    let reason = answer.body["error"].as_str().unwrap();
    assert!(reason.contains("401 Bad credentials"), "{reason}");
    assert!(
        reason.contains("GITHUB_WEBHOOK_SECRET is missing, expired or revoked"),
        "{reason}"
    );
    assert!(
        !reason.contains(common::GITHUB_SECRET),
        "never the token itself"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_replayed_delivery_enqueues_nothing_and_is_answered_duplicate() {
    let mut app = WebhookApp::spawn(|_| {}).await;
    let (base, head) = (sha('a'), sha('b'));
    app.github
        .script_compare(REPO, &base, &head, comparison(&base, &head));
    let body = push(&base, &head, "refs/heads/main").to_json();
    let first = app.deliver("push", "dup-1", body.clone()).await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    assert_eq!(first.body["event_id"], "gh-dup-1");
    let (enqueued, _) = app.next_event().await;
    assert_eq!(enqueued.message_id(), Some("gh-dup-1"));

    // GitHub's "Redeliver", or an attacker replaying the captured request.
    let replay = app.deliver("push", "dup-1", body).await;
    assert_eq!(replay.status, 200, "{:?}", replay.body);
    assert_eq!(replay.body["status"], "duplicate");
    assert_eq!(replay.body["event_id"], "gh-dup-1");
    assert!(app.nothing_enqueued().await, "a replay enqueues nothing");
    app.stop().await;
}

/// A MergeEvent as an outside event bus would send it: unredacted.
fn outside_event(event_id: &str) -> MergeEvent {
    let (base, head) = (sha('a'), sha('b'));
    let mut comparison = comparison(&base, &head);
    comparison.files.truncate(2);
    let set = gate_git::PatchSet {
        repo: REPO.to_owned(),
        base: base.clone(),
        head: head.clone(),
        n_commits: 1,
        files: comparison
            .files
            .iter()
            .map(|file| gate_git::FilePatch {
                path: file.filename.clone(),
                old_path: None,
                status: gate_core::FileStatus::Added,
                additions: file.additions,
                deletions: file.deletions,
                binary: false,
                patch: file.patch.clone(),
            })
            .collect(),
        ..gate_git::PatchSet::default()
    };
    struct NoVisitor;
    impl gate_core::DiffVisitor for NoVisitor {
        fn line(&mut self, _: &gate_core::ChangedFile, _: gate_core::LineKind, _: u32, _: &str) {}
    }
    let mut context = gate_git::build_context_from_patches(
        &set,
        &gate_git::ContextOptions::default(),
        &Redactor::new(),
        &mut NoVisitor,
    )
    .unwrap();
    // The sender's "redaction" let the key through.
    context.packed_diff = context
        .packed_diff
        .replace("[REDACTED:aws_access_key]", FAKE_AWS_KEY);
    context.secrets.clear();
    context.commits = vec![gate_core::CommitInfo {
        sha: head,
        author: "Bus".to_owned(),
        message: format!("deploy with {FAKE_AWS_KEY}"),
        merge: false,
    }];
    merge_event(context, Some(event_id.to_owned()), None, "acme-bus")
}

#[tokio::test]
async fn events_with_a_good_signature_are_redacted_and_enqueued_and_a_bad_one_is_401() {
    let mut app = WebhookApp::spawn(|_| {}).await;
    let event = outside_event("bus-17");
    let body = serde_json::to_vec(&event).unwrap();
    assert!(String::from_utf8_lossy(&body).contains(FAKE_AWS_KEY));

    let answer = app.post_event(body.clone(), "wrong secret").await;
    assert_eq!(answer.status, 401);
    assert!(answer.body["error"]
        .as_str()
        .unwrap()
        .contains("X-Gate-Signature-256"));
    let unsigned = app
        .post(
            "/events",
            &[("content-type", "application/json".to_owned())],
            body.clone(),
        )
        .await;
    assert_eq!(unsigned.status, 401);
    assert!(app.nothing_enqueued().await);

    let answer = app.post_event(body, EVENTS_SECRET).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert_eq!(answer.body["event_id"], "bus-17");
    assert_eq!(answer.body["n_secrets_redacted"], 2);
    let (delivery, json) = app.next_event().await;
    assert_eq!(delivery.message_id(), Some("bus-17"));
    assert_valid(&merge_event_schema(), &json);
    assert!(!String::from_utf8_lossy(delivery.payload()).contains(FAKE_AWS_KEY));
    let received = delivery.merge_event().unwrap();
    assert_eq!(received.source, "acme-bus");
    assert!(received
        .context
        .secrets
        .iter()
        .any(|s| s.kind == SecretKind::AwsAccessKey && s.file == "config/prod.env"));
    assert!(received.context.commits[0]
        .message
        .contains("[REDACTED:aws_access_key]"));
    app.stop().await;
}

#[tokio::test]
async fn healthz_answers_and_unknown_routes_and_methods_are_refused() {
    let app = WebhookApp::spawn(|_| {}).await;
    let health = app
        .client
        .get(format!("http://{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let body: Value = health.json_body().await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["amqp"], "connected");

    let missing = app
        .client
        .get(format!("http://{}/nope", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let wrong_method = app
        .client
        .get(format!("http://{}/github", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    app.stop().await;
}

/// `reqwest::Response::json` without reqwest's `json` feature.
trait JsonBody {
    async fn json_body(self) -> Value;
}

impl JsonBody for reqwest::Response {
    async fn json_body(self) -> Value {
        serde_json::from_slice(&self.bytes().await.unwrap()).unwrap()
    }
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_after_the_read_timeout() {
    let mut app = WebhookApp::spawn(|settings| settings.read_timeout_ms = 300).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "POST /events HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"schema",
        app.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(app.nothing_enqueued().await);
    app.stop().await;
}
