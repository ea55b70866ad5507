//! `POST /github`: GitHub `push` and merged `pull_request` deliveries, and the call to
//! GitHub's compare API that fetches the change they announce.
//!
//! Which range is read:
//! - `push` to a deploy branch: `before...after`. A new branch (`before` is forty
//!   zeros) is read from the parent of the first pushed commit (`<first>^`, or
//!   `<after>^` when the push lists no commit), and the answer says so; the event's
//!   base is the merge base GitHub reports. A push that deletes the branch, or
//!   pushes a tag, is ignored.
//! - `pull_request` with `action: closed` and `merged: true` into a deploy branch:
//!   `base.sha...merge_commit_sha`. Closed without merging, or any other action, is
//!   ignored.
//!
//! Configure the GitHub webhook with one of the two events, not both: a merged pull
//! request also pushes to its base branch, and two deliveries are two events (two
//! ids, two decisions). `push` alone covers direct pushes as well.
//!
//! GitHub's compare lists at most 300 files (and 250 commits per page); a change
//! with more says so in its omissions.

use gate_core::{CommitInfo, FileStatus, Omission};
use gate_git::{build_context_from_patches, FilePatch, GitError, PatchSet};
use hyper::body::Bytes;
use hyper::header::CONTENT_TYPE;
use hyper::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::replay::Claim;
use super::signature::verify;
use super::{duplicate, enqueue_reply, enqueued, error, ignored, reply, traceparent, App, Reply};
use crate::merge_event;

/// GitHub's signature header.
const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// The API version whose shapes this reads.
const API_VERSION: &str = "2022-11-28";
/// How many files GitHub's compare lists at most.
const GITHUB_FILE_CAP: usize = 300;
/// What the event's `source` says.
const SOURCE: &str = "webhook";

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    repository: Repository,
    #[serde(default)]
    commits: Vec<PushCommit>,
}

#[derive(Deserialize)]
struct PushCommit {
    id: String,
}

#[derive(Deserialize)]
struct PullRequestPayload {
    action: String,
    pull_request: PullRequest,
    repository: Repository,
}

#[derive(Deserialize)]
struct PullRequest {
    number: u64,
    #[serde(default)]
    merged: Option<bool>,
    #[serde(default)]
    merge_commit_sha: Option<String>,
    base: Branch,
}

#[derive(Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
}

/// The change a delivery announces, once it is known to need a decision.
struct Change {
    repo: String,
    /// What to put before `...` in the compare call (a commit id, or `<id>^`).
    base_rev: String,
    head: String,
    git_ref: String,
    /// The base is to be taken from GitHub's merge base (new branches).
    base_from_merge_base: bool,
    note: Option<String>,
}

/// Why a delivery is not turned into an event.
enum Refusal {
    Ignored(String),
    Malformed(String),
}

pub(crate) async fn handle(app: &App, headers: &HeaderMap, body: Bytes) -> Reply {
    let Some(secret) = &app.deps.secrets.github else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "/github is off: {} is not set on this receiver",
                app.settings.github_secret_env
            ),
        );
    };
    let signature = headers.get(SIGNATURE_HEADER).map(|value| value.as_bytes());
    if let Err(refused) = verify(secret.expose().as_bytes(), &body, signature) {
        tracing::warn!(reason = ?refused, "refused a GitHub delivery: bad signature");
        return error(StatusCode::UNAUTHORIZED, refused.reason(SIGNATURE_HEADER));
    }
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let Some(event) = header("x-github-event") else {
        return error(StatusCode::BAD_REQUEST, "missing X-GitHub-Event header");
    };
    let delivery = match header("x-github-delivery") {
        Some(id)
            if !id.is_empty()
                && id.len() <= 100
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            id.to_owned()
        }
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed X-GitHub-Delivery header",
            )
        }
        None => return error(StatusCode::BAD_REQUEST, "missing X-GitHub-Delivery header"),
    };
    if header(CONTENT_TYPE.as_str())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "form-encoded delivery: set the webhook's content type to application/json",
        );
    }
    if event == "ping" {
        return reply(StatusCode::OK, &json!({"status": "pong"}));
    }
    let event = event.to_owned();
    let event_id = format!("gh-{delivery}");
    let replay_key = format!("github:{delivery}");
    if app.replay.claim(&replay_key).await == Claim::Duplicate {
        return duplicate(&event_id);
    }
    let answer = process(app, headers, &body, &event, event_id).await;
    if !enqueued(&answer) {
        app.replay.release(&replay_key).await;
    }
    answer
}

/// A signed, first-seen delivery: reads it, fetches the change, enqueues the event.
async fn process(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    event: &str,
    event_id: String,
) -> Reply {
    let change = match event {
        "push" => read_push(app, body),
        "pull_request" => read_pull_request(app, body),
        other => Err(Refusal::Ignored(format!(
            "event `{other}` is not a merge: only push and pull_request are read"
        ))),
    };
    let change = match change {
        Ok(change) => change,
        Err(Refusal::Ignored(reason)) => return ignored(reason),
        Err(Refusal::Malformed(reason)) => return error(StatusCode::BAD_REQUEST, reason),
    };
    let comparison = match compare(app, &change).await {
        Ok(comparison) => comparison,
        Err(reason) => {
            tracing::warn!(%event_id, %reason, "GitHub API call failed");
            return error(StatusCode::BAD_GATEWAY, reason);
        }
    };
    let Change {
        repo,
        base_rev,
        head,
        git_ref,
        base_from_merge_base,
        note,
    } = change;
    let base = match (&comparison.merge_base_commit, base_from_merge_base) {
        (Some(merge_base), true) => merge_base.sha.clone(),
        _ => base_rev,
    };
    let patches = patch_set(repo, base, head, comparison);
    let mut options = app.deps.context.clone();
    options.repo_name = None;
    let redactor = app.redactor.clone();
    let n_files = patches.files.len();
    let built = tokio::task::spawn_blocking(move || {
        let mut visitor = NoVisitor;
        build_context_from_patches(&patches, &options, &redactor, &mut visitor)
    })
    .await;
    let mut context = match built {
        Ok(Ok(context)) => context,
        Ok(Err(GitError::EmptyRange { .. })) => {
            return ignored("the range changes no file: nothing to decide");
        }
        Ok(Err(other)) => return error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "building the context failed",
            )
        }
    };
    if n_files >= GITHUB_FILE_CAP {
        context.n_omitted += 1;
        context.omitted.insert(
            0,
            Omission {
                path: "(files past GitHub's list)".to_owned(),
                reason: format!(
                    "GitHub's compare lists at most {GITHUB_FILE_CAP} files; any further files are not analysed"
                ),
            },
        );
    }
    let event = merge_event(context, Some(event_id.clone()), Some(git_ref), SOURCE);
    let result = app
        .deps
        .producer
        .enqueue(&event, traceparent(headers))
        .await;
    let extra = match note {
        Some(note) => json!({"note": note}),
        None => json!({}),
    };
    enqueue_reply(&event_id, result, extra)
}

fn parse<T: serde::de::DeserializeOwned>(kind: &str, body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body)
        .map_err(|invalid| Refusal::Malformed(format!("malformed {kind} payload: {invalid}")))
}

fn read_push(app: &App, body: &[u8]) -> Result<Change, Refusal> {
    let push: PushPayload = parse("push", body)?;
    let Some(branch) = push.git_ref.strip_prefix("refs/heads/") else {
        return Err(Refusal::Ignored(format!(
            "{} is not a branch",
            push.git_ref
        )));
    };
    if !app.settings.is_deploy_branch(branch) {
        return Err(Refusal::Ignored(format!("{branch} is not a deploy branch")));
    }
    if push.deleted || is_zero(&push.after) {
        return Err(Refusal::Ignored(format!("the push deletes {branch}")));
    }
    let after = commit_id("after", &push.after)?;
    let (base_rev, base_from_merge_base, note) = if is_zero(&push.before) {
        let first = match push.commits.first() {
            Some(commit) => commit_id("commits[0].id", &commit.id)?,
            None => after.clone(),
        };
        let note = format!(
            "new branch {branch}: compared against the parent of the first pushed commit ({first}^)"
        );
        (format!("{first}^"), true, Some(note))
    } else {
        (commit_id("before", &push.before)?, false, None)
    };
    if base_rev == after {
        return Err(Refusal::Ignored(
            "before and after are the same commit".to_owned(),
        ));
    }
    Ok(Change {
        repo: repo_name(&push.repository)?,
        base_rev,
        head: after,
        git_ref: push.git_ref,
        base_from_merge_base,
        note,
    })
}

fn read_pull_request(app: &App, body: &[u8]) -> Result<Change, Refusal> {
    let event: PullRequestPayload = parse("pull_request", body)?;
    let pull = &event.pull_request;
    if event.action != "closed" {
        return Err(Refusal::Ignored(format!(
            "pull request #{} was {}, not merged",
            pull.number, event.action
        )));
    }
    if pull.merged != Some(true) {
        return Err(Refusal::Ignored(format!(
            "pull request #{} was closed without merging",
            pull.number
        )));
    }
    if !app.settings.is_deploy_branch(&pull.base.git_ref) {
        return Err(Refusal::Ignored(format!(
            "pull request #{} merged into {}, not a deploy branch",
            pull.number, pull.base.git_ref
        )));
    }
    let Some(merge_commit) = &pull.merge_commit_sha else {
        return Err(Refusal::Malformed(format!(
            "merged pull request #{} has no merge_commit_sha",
            pull.number
        )));
    };
    Ok(Change {
        repo: repo_name(&event.repository)?,
        base_rev: commit_id("pull_request.base.sha", &pull.base.sha)?,
        head: commit_id("pull_request.merge_commit_sha", merge_commit)?,
        git_ref: format!("refs/heads/{}", pull.base.git_ref),
        base_from_merge_base: false,
        note: None,
    })
}

fn is_zero(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// A full commit id (SHA-1 or SHA-256 hex), lowercased; anything else is malformed.
fn commit_id(field: &str, sha: &str) -> Result<String, Refusal> {
    if (sha.len() == 40 || sha.len() == 64) && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha.to_ascii_lowercase())
    } else {
        Err(Refusal::Malformed(format!("`{field}` is not a commit id")))
    }
}

/// `owner/name`, checked to be two path-safe segments.
fn repo_name(repository: &Repository) -> Result<String, Refusal> {
    let name = repository.full_name.as_str();
    let safe = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    match name.split_once('/') {
        Some((owner, repo)) if safe(owner) && safe(repo) => Ok(name.to_owned()),
        _ => Err(Refusal::Malformed(format!(
            "`repository.full_name` {name:?} is not owner/name"
        ))),
    }
}

#[derive(Deserialize)]
struct Comparison {
    #[serde(default)]
    merge_base_commit: Option<CommitRef>,
    #[serde(default)]
    total_commits: Option<usize>,
    #[serde(default)]
    commits: Vec<ApiCommit>,
    #[serde(default)]
    files: Vec<ApiFile>,
}

#[derive(Deserialize)]
struct CommitRef {
    sha: String,
}

#[derive(Deserialize)]
struct ApiCommit {
    sha: String,
    commit: CommitDetail,
    #[serde(default)]
    parents: Vec<CommitRef>,
}

#[derive(Deserialize)]
struct CommitDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    author: Option<Person>,
}

#[derive(Deserialize)]
struct Person {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct ApiFile {
    filename: String,
    status: String,
    #[serde(default)]
    additions: u64,
    #[serde(default)]
    deletions: u64,
    #[serde(default)]
    patch: Option<String>,
    #[serde(default)]
    previous_filename: Option<String>,
}

/// `GET {api}/repos/{repo}/compare/{base}...{head}`; the error is the 502 reason,
/// naming the status and GitHub's message, never the token.
async fn compare(app: &App, change: &Change) -> Result<Comparison, String> {
    let api = app.settings.api_base_url.trim_end_matches('/');
    let basehead = format!("{}...{}", encode(&change.base_rev), encode(&change.head));
    let url = format!("{api}/repos/{}/compare/{basehead}", change.repo);
    let what = format!(
        "GitHub compare {}...{} of {}",
        change.base_rev, change.head, change.repo
    );
    let mut request = app
        .http
        .get(&url)
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", API_VERSION);
    if let Some(token) = &app.deps.secrets.github_token {
        request = request.bearer_auth(token.expose());
    }
    let mut response = request
        .send()
        .await
        .map_err(|failure| format!("{what} failed: {}", without_url(&failure)))?;
    let status = response.status();
    let limit = app.settings.max_api_response_bytes;
    let mut body: Vec<u8> = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(format!(
                        "{what}: the answer exceeds webhook.max_api_response_bytes ({limit} bytes)"
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(failure) => {
                return Err(format!(
                    "{what}: reading the answer failed: {}",
                    without_url(&failure)
                ))
            }
        }
    }
    if !status.is_success() {
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|value| value.get("message")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        let message: String = message.chars().take(300).collect();
        let hint = match status.as_u16() {
            401 => format!(
                ": the token in {} is missing, expired or revoked",
                app.settings.github_token_env
            ),
            403 | 429 => ": forbidden or rate-limited; GitHub can redeliver later".to_owned(),
            404 => format!(
                ": the repository or a commit is unknown to GitHub, or the token in {} cannot read the repository",
                app.settings.github_token_env
            ),
            _ => String::new(),
        };
        return Err(format!(
            "{what} answered {} {message}{hint}",
            status.as_u16()
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|invalid| format!("{what}: the answer is not a commit comparison: {invalid}"))
}

/// A reqwest error's words without its URL (which names the repository, harmless,
/// but keeps messages short and uniform).
fn without_url(failure: &reqwest::Error) -> String {
    let mut text = failure.to_string();
    if let Some(url) = failure.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    if failure.is_timeout() {
        format!("timed out ({text})")
    } else {
        text
    }
}

/// Percent-encodes a revision for a URL path segment; commit ids and `^` pass as they
/// are.
fn encode(rev: &str) -> String {
    let mut out = String::with_capacity(rev.len());
    for byte in rev.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'^') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The comparison as a patch set: commits newest first, statuses mapped, files
/// GitHub lists as `unchanged` left out.
fn patch_set(repo: String, base: String, head: String, comparison: Comparison) -> PatchSet {
    let head_is_merge = comparison
        .commits
        .last()
        .is_some_and(|commit| commit.sha.eq_ignore_ascii_case(&head) && commit.parents.len() > 1);
    let n_listed = comparison.commits.len();
    let commits: Vec<CommitInfo> = comparison
        .commits
        .into_iter()
        .rev()
        .map(|commit| CommitInfo {
            merge: commit.parents.len() > 1,
            sha: commit.sha,
            author: commit
                .commit
                .author
                .and_then(|person| person.name)
                .unwrap_or_default(),
            message: commit.commit.message.trim_end().to_owned(),
        })
        .collect();
    let files = comparison
        .files
        .into_iter()
        .filter_map(|file| {
            let status = match file.status.as_str() {
                "added" => FileStatus::Added,
                "removed" => FileStatus::Deleted,
                "renamed" => FileStatus::Renamed,
                "copied" => FileStatus::Copied,
                "unchanged" => return None,
                // "modified", and "changed" (mode only); anything new reads as modified.
                _ => FileStatus::Modified,
            };
            let old_path = file
                .previous_filename
                .filter(|_| matches!(status, FileStatus::Renamed | FileStatus::Copied));
            Some(FilePatch {
                path: file.filename,
                old_path,
                status,
                additions: file.additions,
                deletions: file.deletions,
                binary: false,
                patch: file.patch,
            })
        })
        .collect();
    PatchSet {
        repo,
        base,
        head,
        head_is_merge,
        root_commit: false,
        commits,
        n_commits: comparison.total_commits.unwrap_or(n_listed),
        files,
    }
}

struct NoVisitor;

impl gate_core::DiffVisitor for NoVisitor {
    fn line(&mut self, _: &gate_core::ChangedFile, _: gate_core::LineKind, _: u32, _: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_are_encoded_for_a_path_segment() {
        assert_eq!(encode("abc123^"), "abc123^");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn commit_ids_and_repository_names_are_checked() {
        assert!(commit_id("after", &"A".repeat(40)).is_ok());
        assert!(commit_id("after", "main").is_err());
        assert!(commit_id("after", &"g".repeat(40)).is_err());
        let repo = |name: &str| {
            repo_name(&Repository {
                full_name: name.to_owned(),
            })
            .is_ok()
        };
        assert!(repo("acme/shop.web"));
        assert!(!repo("acme/../etc"));
        assert!(!repo("acme"));
        assert!(!repo("acme/shop/extra"));
    }
}
