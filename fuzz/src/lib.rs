//! What the fuzz targets share: a realistic change to analyse (for the policy and
//! model-output targets), a small byte reader that splits one fuzz input into
//! fields, and a loopback HTTP server that answers with whatever the current input
//! says (the stand-in for GitHub's and the model providers' APIs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use gate_core::{Bands, DeployContext, FileStatus, Redactor, Verdict};
use gate_git::{build_context_from_patches, ContextOptions, FilePatch, PatchSet};
use gate_rules::RulesAnalyzer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

/// A change touching a migration, an auth file, a config file and the docs, packed
/// and analysed by the rules analyzer once per process.
pub fn sample_change() -> &'static (DeployContext, Verdict) {
    static SAMPLE: OnceLock<(DeployContext, Verdict)> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let patch = |path: &str, status, text: &str| FilePatch {
            path: path.to_owned(),
            old_path: None,
            status,
            additions: text.lines().filter(|l| l.starts_with('+')).count() as u64,
            deletions: text.lines().filter(|l| l.starts_with('-')).count() as u64,
            binary: false,
            patch: Some(text.to_owned()),
        };
        let patches = PatchSet {
            repo: "acme/shop".to_owned(),
            base: "a".repeat(40),
            head: "b".repeat(40),
            n_commits: 1,
            files: vec![
                patch(
                    "db/migrations/002_drop_legacy.sql",
                    FileStatus::Added,
                    "@@ -0,0 +1,1 @@\n+ALTER TABLE users DROP COLUMN legacy;",
                ),
                patch(
                    "src/auth/session.rs",
                    FileStatus::Modified,
                    "@@ -1,2 +1,2 @@\n fn check() {\n-    verify(token)\n+    true",
                ),
                patch(
                    "config/prod.toml",
                    FileStatus::Modified,
                    "@@ -1 +1 @@\n-replicas = 3\n+replicas = 1",
                ),
                patch(
                    "docs/README.md",
                    FileStatus::Modified,
                    "@@ -1 +1 @@\n-old\n+new",
                ),
            ],
            ..PatchSet::default()
        };
        let mut rules = RulesAnalyzer::new(Bands::default());
        let context = build_context_from_patches(
            &patches,
            &ContextOptions::default(),
            &Redactor::new(),
            &mut rules,
        )
        .expect("the sample change has files");
        let verdict = rules.finish(&context);
        (context, verdict)
    })
}

/// Splits one fuzz input into fields: a leading byte each for small choices, then
/// byte strings separated by a marker that seeds can write by hand.
pub struct Fields<'a> {
    rest: &'a [u8],
}

/// What separates two byte-string fields in an input: a line holding only `%%`.
pub const SEPARATOR: &[u8] = b"\n%%\n";

impl<'a> Fields<'a> {
    /// Reads `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Fields { rest: data }
    }

    /// The next byte (0 when the input is used up).
    pub fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((first, rest)) => {
                self.rest = rest;
                *first
            }
            None => 0,
        }
    }

    /// Everything up to the next separator (or the end).
    pub fn field(&mut self) -> &'a [u8] {
        match find(self.rest, SEPARATOR) {
            Some(at) => {
                let (field, rest) = self.rest.split_at(at);
                self.rest = &rest[SEPARATOR.len()..];
                field
            }
            None => std::mem::take(&mut self.rest),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// One current-thread runtime per fuzz process.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// A loopback HTTP/1.1 server that answers every request with the status and body
/// last set, and keeps the last request's body. It speaks just enough HTTP for
/// reqwest: one request per connection, `Content-Length` bodies.
#[derive(Clone)]
pub struct Stub {
    /// Where it listens.
    pub addr: SocketAddr,
    answer: Arc<Mutex<(u16, Vec<u8>)>>,
}

impl Stub {
    /// Starts the server on the shared runtime.
    pub fn start() -> Stub {
        let runtime = runtime();
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("binding a loopback port");
        let addr = listener.local_addr().expect("a local address");
        let answer = Arc::new(Mutex::new((200u16, b"{}".to_vec())));
        let shared = Arc::clone(&answer);
        runtime.spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 8192];
                    // Headers, then as much body as Content-Length says.
                    let body_start = loop {
                        let Ok(n) = stream.read(&mut buffer).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..n]);
                        if let Some(at) = find(&request, b"\r\n\r\n") {
                            break at + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&request[..body_start]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .and_then(|value| value.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    while request.len() < body_start + length {
                        let Ok(n) = stream.read(&mut buffer).await else {
                            return;
                        };
                        if n == 0 {
                            break;
                        }
                        request.extend_from_slice(&buffer[..n]);
                    }
                    let (status, body) = shared.lock().expect("stub lock").clone();
                    let mut response = format!(
                        "HTTP/1.1 {status} Fuzz\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    response.extend_from_slice(&body);
                    let _ = stream.write_all(&response).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Stub { addr, answer }
    }

    /// What the next requests are answered.
    pub fn answer(&self, status: u16, body: &[u8]) {
        *self.answer.lock().expect("stub lock") = (status, body.to_vec());
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
