//! A mock GitHub: the REST API's compare endpoint over real HTTP, and webhook
//! deliveries (`push`, `pull_request`) signed like GitHub signs them.
//!
//! Why: the webhook receiver fetches every change from `GET /repos/{owner}/{repo}/
//! compare/{base}...{head}`; its tests need a server that answers in GitHub's JSON
//! shape (`commit-comparison`, `diff-entry`, `commit`), checks the token like GitHub
//! (a wrong token is 401 `Bad credentials`; no token is anonymous, so a private
//! repository is 404 `Not Found`; no `User-Agent` is 403), and records what the
//! client sent.
//!
//! Scripted, not computed: a test registers the comparison for a `base...head`
//! pair; anything else is 404 like an unknown commit.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use hmac::{Hmac, KeyInit, Mac};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The API version GitHub documents for these shapes; other values are answered 400.
pub const API_VERSION: &str = "2022-11-28";

/// One commit of a scripted comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockCommit {
    /// Full commit id.
    pub sha: String,
    /// The whole message.
    pub message: String,
    /// Author name (`commit.author.name`).
    pub author_name: String,
    /// Parent ids; two for a merge commit.
    pub parents: Vec<String>,
}

impl MockCommit {
    /// A commit with one parent.
    pub fn new(sha: &str, parent: &str, message: &str, author_name: &str) -> MockCommit {
        MockCommit {
            sha: sha.to_owned(),
            message: message.to_owned(),
            author_name: author_name.to_owned(),
            parents: vec![parent.to_owned()],
        }
    }
}

/// One changed file of a scripted comparison (GitHub's `diff-entry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockFile {
    /// `filename`: the path after the change.
    pub filename: String,
    /// `status`: added, removed, modified, renamed, copied, changed, unchanged.
    pub status: String,
    /// `additions`.
    pub additions: u64,
    /// `deletions`.
    pub deletions: u64,
    /// `patch`: the hunks; absent for binary files and diffs too large for GitHub.
    pub patch: Option<String>,
    /// `previous_filename`, for renames and copies.
    pub previous_filename: Option<String>,
}

impl MockFile {
    /// A file with this status and patch; line counts are read from the patch.
    pub fn with_patch(filename: &str, status: &str, patch: &str) -> MockFile {
        let additions = patch.lines().filter(|line| line.starts_with('+')).count() as u64;
        let deletions = patch.lines().filter(|line| line.starts_with('-')).count() as u64;
        MockFile {
            filename: filename.to_owned(),
            status: status.to_owned(),
            additions,
            deletions,
            patch: Some(patch.to_owned()),
            previous_filename: None,
        }
    }

    /// A new file holding `lines`.
    pub fn added(filename: &str, lines: &[&str]) -> MockFile {
        let mut patch = format!("@@ -0,0 +1,{} @@", lines.len());
        for line in lines {
            patch.push_str("\n+");
            patch.push_str(line);
        }
        MockFile::with_patch(filename, "added", &patch)
    }

    /// A binary file: GitHub lists it without a patch and with zero line counts.
    pub fn binary(filename: &str, status: &str) -> MockFile {
        MockFile {
            filename: filename.to_owned(),
            status: status.to_owned(),
            additions: 0,
            deletions: 0,
            patch: None,
            previous_filename: None,
        }
    }
}

/// What `compare/{base}...{head}` answers for one scripted pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// `base_commit.sha`.
    pub base_sha: String,
    /// `merge_base_commit.sha` (the base itself for a fast-forward).
    pub merge_base_sha: String,
    /// `commits`, oldest first, as GitHub lists them.
    pub commits: Vec<MockCommit>,
    /// `files`.
    pub files: Vec<MockFile>,
}

impl Comparison {
    /// A fast-forward comparison: the merge base is the base.
    pub fn new(base_sha: &str, commits: Vec<MockCommit>, files: Vec<MockFile>) -> Comparison {
        Comparison {
            base_sha: base_sha.to_owned(),
            merge_base_sha: base_sha.to_owned(),
            commits,
            files,
        }
    }
}

/// One request as it arrived, for assertions on what left the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Path and query, as sent (percent-encoded).
    pub path: String,
    /// Headers with lowercase names; `authorization` keeps only its scheme
    /// (`Bearer ****`).
    pub headers: HashMap<String, String>,
    /// The status answered.
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    /// `owner/repo` (lowercase) → `base...head` → comparison.
    comparisons: HashMap<String, HashMap<String, Comparison>>,
    /// Statuses to answer the next requests with, whatever they ask.
    faults: Vec<u16>,
    requests: Vec<RecordedRequest>,
}

struct Shared {
    token: String,
    base_url: String,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running mock GitHub API on `127.0.0.1`. Dropping it stops accepting
/// connections.
pub struct MockGitHub {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for MockGitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockGitHub")
            .field("addr", &self.addr)
            .finish()
    }
}

impl MockGitHub {
    /// Starts the mock on a free port; `token` is the one token it accepts.
    pub async fn start(token: &str) -> std::io::Result<MockGitHub> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            base_url: format!("http://{addr}"),
            inner: Mutex::new(Inner::default()),
        });
        let (shutdown, mut stopped) = watch::channel(false);
        let accept_shared = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let shared = Arc::clone(&accept_shared);
                        tokio::spawn(async move {
                            let service = service_fn(move |request| handle(Arc::clone(&shared), request));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        Ok(MockGitHub {
            addr,
            shared,
            _shutdown: shutdown,
        })
    }

    /// The API base URL to configure (`api_base_url`), e.g. `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Scripts the answer to `compare/{base}...{head}` of `repo` (`owner/name`).
    pub fn script_compare(&self, repo: &str, base: &str, head: &str, comparison: Comparison) {
        self.shared
            .lock()
            .comparisons
            .entry(repo.to_ascii_lowercase())
            .or_default()
            .insert(format!("{base}...{head}"), comparison);
    }

    /// The next request is answered with `status` and GitHub's error body for it,
    /// whatever it asks (e.g. 500, 503, 403 for a rate limit).
    pub fn fail_next(&self, status: u16) {
        self.shared.lock().faults.push(status);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }
}

type Reply = Response<Full<Bytes>>;

fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        "x-github-api-version-selected",
        HeaderValue::from_static(API_VERSION),
    );
    response
}

/// GitHub's error body: `message`, `documentation_url`, `status` (a string).
fn error_reply(status: StatusCode, message: &str, documentation_url: &str) -> Reply {
    json_reply(
        status,
        &json!({
            "message": message,
            "documentation_url": documentation_url,
            "status": status.as_u16().to_string(),
        }),
    )
}

const COMPARE_DOCS: &str = "https://docs.github.com/rest/commits/commits#compare-two-commits";

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Reply, Infallible> {
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    let headers: HashMap<String, String> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().to_ascii_lowercase();
            let value = value.to_str().unwrap_or("").to_owned();
            let value = if name == "authorization" {
                let scheme = value.split_whitespace().next().unwrap_or("");
                format!("{scheme} ****")
            } else {
                value
            };
            (name, value)
        })
        .collect();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let reply = answer(
        &shared,
        &method,
        request.uri().path(),
        &headers,
        authorization,
    );
    shared.lock().requests.push(RecordedRequest {
        method: method.to_string(),
        path,
        headers,
        status: reply.status().as_u16(),
    });
    Ok(reply)
}

fn answer(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HashMap<String, String>,
    authorization: Option<String>,
) -> Reply {
    let fault = {
        let mut inner = shared.lock();
        (!inner.faults.is_empty()).then(|| inner.faults.remove(0))
    };
    if let Some(status) = fault {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = status.canonical_reason().unwrap_or("Server Error");
        return error_reply(status, message, "https://docs.github.com/rest");
    }
    if headers.get("user-agent").is_none_or(|ua| ua.is_empty()) {
        return error_reply(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.",
            "https://docs.github.com/rest",
        );
    }
    if let Some(version) = headers.get("x-github-api-version") {
        if version != API_VERSION && version != "2026-03-10" {
            return error_reply(
                StatusCode::BAD_REQUEST,
                &format!("Invalid API version: {version}"),
                "https://docs.github.com/rest/overview/api-versions",
            );
        }
    }
    let authenticated = match authorization {
        None => false,
        Some(value) => {
            let mut parts = value.splitn(2, ' ');
            let scheme = parts.next().unwrap_or("").to_ascii_lowercase();
            let token = parts.next().unwrap_or("").trim();
            if (scheme == "bearer" || scheme == "token") && token == shared.token {
                true
            } else {
                return error_reply(
                    StatusCode::UNAUTHORIZED,
                    "Bad credentials",
                    "https://docs.github.com/rest",
                );
            }
        }
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (owner, repo, basehead) = match (method, segments.as_slice()) {
        (&Method::GET, ["repos", owner, repo, "compare", basehead]) => (*owner, *repo, *basehead),
        _ => {
            return error_reply(
                StatusCode::NOT_FOUND,
                "Not Found",
                "https://docs.github.com/rest",
            )
        }
    };
    // Every repository here is private: an anonymous request does not see it.
    if !authenticated {
        return error_reply(StatusCode::NOT_FOUND, "Not Found", COMPARE_DOCS);
    }
    let repo_name = format!("{}/{}", percent_decode(owner), percent_decode(repo));
    let basehead = percent_decode(basehead);
    let comparison = shared
        .lock()
        .comparisons
        .get(&repo_name.to_ascii_lowercase())
        .and_then(|by_range| by_range.get(&basehead))
        .cloned();
    match comparison {
        Some(comparison) => json_reply(
            StatusCode::OK,
            &comparison_json(&shared.base_url, &repo_name, &basehead, &comparison),
        ),
        None => error_reply(StatusCode::NOT_FOUND, "Not Found", COMPARE_DOCS),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        if bytes[idx] == b'%' && idx + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[idx + 1..idx + 3]).unwrap_or("");
            if let Ok(byte) = u8::from_str_radix(hex, 16) {
                out.push(byte);
                idx += 3;
                continue;
            }
        }
        out.push(bytes[idx]);
        idx += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn user(login: &str, base_url: &str) -> Value {
    json!({
        "login": login,
        "id": 583231,
        "node_id": "MDQ6VXNlcjU4MzIzMQ==",
        "avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4",
        "gravatar_id": "",
        "url": format!("{base_url}/users/{login}"),
        "html_url": format!("https://github.com/{login}"),
        "type": "User",
        "site_admin": false
    })
}

fn commit_json(base_url: &str, repo: &str, commit: &MockCommit) -> Value {
    let login = commit.author_name.to_ascii_lowercase().replace(' ', "-");
    let person = json!({
        "name": commit.author_name,
        "email": format!("{login}@users.noreply.github.com"),
        "date": "2026-01-05T10:00:00Z"
    });
    json!({
        "url": format!("{base_url}/repos/{repo}/commits/{}", commit.sha),
        "sha": commit.sha,
        "node_id": "C_kwDOAJy2KtoAKDZkY2IwOWI1YjU3ODc1ZjMzNGY2MWFlYmVkNjk1ZTJlNDE5M2RiNWU",
        "html_url": format!("https://github.com/{repo}/commit/{}", commit.sha),
        "comments_url": format!("{base_url}/repos/{repo}/commits/{}/comments", commit.sha),
        "commit": {
            "url": format!("{base_url}/repos/{repo}/git/commits/{}", commit.sha),
            "author": person,
            "committer": person,
            "message": commit.message,
            "tree": {
                "sha": "827efc6d56897b048c772eb4087f854f46256132",
                "url": format!("{base_url}/repos/{repo}/git/trees/827efc6d56897b048c772eb4087f854f46256132")
            },
            "comment_count": 0,
            "verification": {
                "verified": false,
                "reason": "unsigned",
                "signature": null,
                "payload": null,
                "verified_at": null
            }
        },
        "author": user(&login, base_url),
        "committer": user(&login, base_url),
        "parents": commit.parents.iter().map(|parent| json!({
            "sha": parent,
            "url": format!("{base_url}/repos/{repo}/commits/{parent}"),
            "html_url": format!("https://github.com/{repo}/commit/{parent}")
        })).collect::<Vec<_>>()
    })
}

/// The `commit-comparison` body GitHub answers for `compare/{basehead}` of `repo`.
pub fn comparison_json(
    base_url: &str,
    repo: &str,
    basehead: &str,
    comparison: &Comparison,
) -> Value {
    let base = MockCommit::new(&comparison.base_sha, &"0".repeat(40), "base", "Base Author");
    let merge_base = MockCommit::new(
        &comparison.merge_base_sha,
        &"0".repeat(40),
        "merge base",
        "Base Author",
    );
    let head_sha = comparison
        .commits
        .last()
        .map_or(comparison.base_sha.as_str(), |commit| commit.sha.as_str());
    let files: Vec<Value> = comparison
        .files
        .iter()
        .map(|file| {
            let mut entry = json!({
                "sha": "bbcd538c8e72b8c175046e27cc8f907076331401",
                "filename": file.filename,
                "status": file.status,
                "additions": file.additions,
                "deletions": file.deletions,
                "changes": file.additions + file.deletions,
                "blob_url": format!("https://github.com/{repo}/blob/{head_sha}/{}", file.filename),
                "raw_url": format!("https://github.com/{repo}/raw/{head_sha}/{}", file.filename),
                "contents_url": format!("{base_url}/repos/{repo}/contents/{}?ref={head_sha}", file.filename),
            });
            if let Some(patch) = &file.patch {
                entry["patch"] = json!(patch);
            }
            if let Some(previous) = &file.previous_filename {
                entry["previous_filename"] = json!(previous);
            }
            entry
        })
        .collect();
    let n_commits = comparison.commits.len();
    json!({
        "url": format!("{base_url}/repos/{repo}/compare/{basehead}"),
        "html_url": format!("https://github.com/{repo}/compare/{basehead}"),
        "permalink_url": format!("https://github.com/{repo}/compare/{}...{head_sha}", comparison.base_sha),
        "diff_url": format!("https://github.com/{repo}/compare/{basehead}.diff"),
        "patch_url": format!("https://github.com/{repo}/compare/{basehead}.patch"),
        "base_commit": commit_json(base_url, repo, &base),
        "merge_base_commit": commit_json(base_url, repo, &merge_base),
        "status": if n_commits == 0 { "identical" } else { "ahead" },
        "ahead_by": n_commits,
        "behind_by": 0,
        "total_commits": n_commits,
        "commits": comparison.commits.iter().map(|commit| commit_json(base_url, repo, commit)).collect::<Vec<_>>(),
        "files": files
    })
}

/// The `X-Hub-Signature-256` value GitHub sends: `sha256=` and the hex HMAC-SHA256 of
/// the body under the webhook's secret. Also the form of `X-Gate-Signature-256`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC takes keys of any length");
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

/// The headers GitHub sends with a delivery of `event` (`push`, `pull_request`,
/// `ping`), signed with `secret`.
pub fn delivery_headers(
    event: &str,
    delivery: &str,
    secret: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".to_owned()),
        ("user-agent", "GitHub-Hookshot/6f6d4c1".to_owned()),
        ("x-github-event", event.to_owned()),
        ("x-github-delivery", delivery.to_owned()),
        ("x-github-hook-id", "492370821".to_owned()),
        (
            "x-github-hook-installation-target-type",
            "repository".to_owned(),
        ),
        (
            "x-github-hook-installation-target-id",
            "35129377".to_owned(),
        ),
        ("x-hub-signature-256", sign(secret, body)),
    ]
}

fn repository(full_name: &str) -> Value {
    let (owner, name) = full_name.split_once('/').unwrap_or(("acme", full_name));
    json!({
        "id": 35129377,
        "node_id": "MDEwOlJlcG9zaXRvcnkzNTEyOTM3Nw==",
        "name": name,
        "full_name": full_name,
        "private": true,
        "owner": {
            "name": owner,
            "login": owner,
            "id": 21031067,
            "node_id": "MDEyOk9yZ2FuaXphdGlvbjIxMDMxMDY3",
            "type": "Organization",
            "site_admin": false
        },
        "html_url": format!("https://github.com/{full_name}"),
        "description": null,
        "fork": false,
        "url": format!("https://api.github.com/repos/{full_name}"),
        "default_branch": "main",
        "master_branch": "main",
        "visibility": "private"
    })
}

/// A `push` delivery, for building its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// `repository.full_name`, e.g. `acme/shop`.
    pub repo: String,
    /// `ref`, e.g. `refs/heads/main`.
    pub git_ref: String,
    /// `before`: the branch's previous head (forty zeros for a new branch).
    pub before: String,
    /// `after`: the branch's new head (forty zeros for a deleted branch).
    pub after: String,
    /// The pushed commits, oldest first.
    pub commits: Vec<MockCommit>,
}

impl PushEvent {
    /// The delivery body, in GitHub's `push` shape.
    pub fn to_json(&self) -> Vec<u8> {
        let zeros = "0".repeat(40);
        let commit = |commit: &MockCommit| {
            let login = commit.author_name.to_ascii_lowercase().replace(' ', "-");
            let person = json!({
                "name": commit.author_name,
                "email": format!("{login}@users.noreply.github.com"),
                "username": login
            });
            json!({
                "id": commit.sha,
                "tree_id": "827efc6d56897b048c772eb4087f854f46256132",
                "distinct": true,
                "message": commit.message,
                "timestamp": "2026-01-05T10:00:00Z",
                "url": format!("https://github.com/{}/commit/{}", self.repo, commit.sha),
                "author": person,
                "committer": person,
                "added": [],
                "removed": [],
                "modified": []
            })
        };
        let commits: Vec<Value> = self.commits.iter().map(commit).collect();
        let body = json!({
            "ref": self.git_ref,
            "before": self.before,
            "after": self.after,
            "repository": repository(&self.repo),
            "pusher": {"name": "ada", "email": "ada@users.noreply.github.com"},
            "sender": user("ada", "https://api.github.com"),
            "created": self.before == zeros,
            "deleted": self.after == zeros,
            "forced": false,
            "base_ref": null,
            "compare": format!("https://github.com/{}/compare/{}...{}", self.repo, short(&self.before), short(&self.after)),
            "commits": commits,
            "head_commit": self.commits.last().map(commit)
        });
        body.to_string().into_bytes()
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// A `pull_request` delivery, for building its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestEvent {
    /// `repository.full_name`.
    pub repo: String,
    /// `action`: `closed`, `opened`, `synchronize`, …
    pub action: String,
    /// `number`.
    pub number: u64,
    /// `pull_request.merged`.
    pub merged: bool,
    /// `pull_request.base.ref`, e.g. `main`.
    pub base_ref: String,
    /// `pull_request.base.sha`.
    pub base_sha: String,
    /// `pull_request.head.sha`.
    pub head_sha: String,
    /// `pull_request.merge_commit_sha`.
    pub merge_commit_sha: Option<String>,
    /// `pull_request.title`.
    pub title: String,
}

impl PullRequestEvent {
    /// The delivery body, in GitHub's `pull_request` shape.
    pub fn to_json(&self) -> Vec<u8> {
        let repo = repository(&self.repo);
        let closed = self.action == "closed";
        let body = json!({
            "action": self.action,
            "number": self.number,
            "pull_request": {
                "url": format!("https://api.github.com/repos/{}/pulls/{}", self.repo, self.number),
                "id": 1_934_562_173u64,
                "node_id": "PR_kwDOAhgPkc5zT0V9",
                "html_url": format!("https://github.com/{}/pull/{}", self.repo, self.number),
                "number": self.number,
                "state": if closed { "closed" } else { "open" },
                "locked": false,
                "title": self.title,
                "user": user("ada", "https://api.github.com"),
                "body": "Reviewed-by: Grace",
                "created_at": "2026-01-05T09:00:00Z",
                "updated_at": "2026-01-05T10:00:00Z",
                "closed_at": if closed { json!("2026-01-05T10:00:00Z") } else { Value::Null },
                "merged_at": if self.merged { json!("2026-01-05T10:00:00Z") } else { Value::Null },
                "merge_commit_sha": self.merge_commit_sha,
                "draft": false,
                "head": {
                    "label": "ada:feature",
                    "ref": "feature",
                    "sha": self.head_sha,
                    "user": user("ada", "https://api.github.com"),
                    "repo": repo
                },
                "base": {
                    "label": format!("acme:{}", self.base_ref),
                    "ref": self.base_ref,
                    "sha": self.base_sha,
                    "user": user("acme", "https://api.github.com"),
                    "repo": repo
                },
                "merged": self.merged,
                "mergeable": null,
                "merged_by": if self.merged { user("grace", "https://api.github.com") } else { Value::Null },
                "comments": 0,
                "commits": 1,
                "additions": 1,
                "deletions": 0,
                "changed_files": 1
            },
            "repository": repo,
            "sender": user("grace", "https://api.github.com")
        });
        body.to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_githubs_documented_example() {
        // From GitHub's "Validating webhook deliveries" page.
        assert_eq!(
            sign("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn percent_decoding_reads_escapes_and_leaves_the_rest() {
        assert_eq!(percent_decode("abc%5E...def"), "abc^...def");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%"), "%");
    }
}
