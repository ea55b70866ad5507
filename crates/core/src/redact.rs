//! Secret redaction: every text that leaves the process (diff lines, commit messages,
//! evidence, rendered reports) goes through here first, so a leaked credential becomes
//! a `secrets` risk without its value ever reaching a prompt, a queue or a log.
//!
//! Why it is shaped this way:
//! - It runs on every line of diffs of a million lines, and almost none of them hold a
//!   secret. So each line costs one case-insensitive Aho-Corasick scan over trigger
//!   substrings (token prefixes, `://`, assignment keywords); a line without a trigger
//!   comes back borrowed, without allocating.
//! - Only the detectors whose trigger fired run on a line: anchored token regexes, a URL
//!   user-info regex, and a hand-written parser for `name = value` assignments whose value
//!   is judged by its shape and entropy (placeholders and references are not secrets).
//! - A private key block spans lines, so [`LineRedactor`] carries a little state from one
//!   line of a file to the next; [`Redactor::redact`] runs the same machine over a
//!   multi-line text, so both paths agree.
//! - All hits on a line are merged before replacing, so overlapping detectors never leave
//!   a fragment of a secret behind and never count one secret twice.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::fmt;
use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// What kind of credential a redacted span looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// AWS access key id (`AKIA…`, `ASIA…`).
    AwsAccessKey,
    /// AWS secret access key in an assignment, or in the two lines after an access key id.
    AwsSecretKey,
    /// A PEM private key block.
    PrivateKey,
    /// GitHub token (`ghp_`, `gho_`, `ghs_`, `ghu_`, `ghr_`, `github_pat_`).
    GithubToken,
    /// GitLab token (`glpat-` and friends).
    GitlabToken,
    /// Slack token (`xoxb-`, `xoxp-`, …).
    SlackToken,
    /// Slack incoming-webhook URL.
    SlackWebhook,
    /// Stripe secret or restricted key.
    StripeKey,
    /// A JSON Web Token.
    Jwt,
    /// A URL with a password in its user-info.
    UrlPassword,
    /// A high-entropy value assigned to a `password|secret|token|api_key`-like name (or a
    /// human-chosen password assigned to a password-like name), or an opaque
    /// `Authorization: Bearer`/`Basic` credential.
    GenericSecret,
    /// Anthropic API key (`sk-ant-…`): deploy-gate's own model provider keys are the
    /// likeliest thing to leak into its users' config files.
    AnthropicKey,
    /// OpenAI API key (`sk-proj-…`, `sk-svcacct-…`, legacy `sk-…T3BlbkFJ…`), for the same
    /// reason as Anthropic's.
    #[serde(rename = "openai_key")]
    OpenAiKey,
    /// Google API key (`AIza…`): bills to its project and is often pasted into frontend
    /// config.
    GoogleApiKey,
    /// npm access token (`npm_…`): publishing rights, a supply-chain risk.
    NpmToken,
}

impl SecretKind {
    /// The tag used in `[REDACTED:<kind>]`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::AwsAccessKey => "aws_access_key",
            SecretKind::AwsSecretKey => "aws_secret_key",
            SecretKind::PrivateKey => "private_key",
            SecretKind::GithubToken => "github_token",
            SecretKind::GitlabToken => "gitlab_token",
            SecretKind::SlackToken => "slack_token",
            SecretKind::SlackWebhook => "slack_webhook",
            SecretKind::StripeKey => "stripe_key",
            SecretKind::Jwt => "jwt",
            SecretKind::UrlPassword => "url_password",
            SecretKind::GenericSecret => "generic_secret",
            SecretKind::AnthropicKey => "anthropic_key",
            SecretKind::OpenAiKey => "openai_key",
            SecretKind::GoogleApiKey => "google_api_key",
            SecretKind::NpmToken => "npm_token",
        }
    }

    /// Which kind names a span found by several detectors at once: the most specific.
    fn priority(self) -> u8 {
        match self {
            SecretKind::PrivateKey => 5,
            SecretKind::GenericSecret => 1,
            SecretKind::UrlPassword => 2,
            SecretKind::AwsSecretKey => 3,
            _ => 4,
        }
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text after redaction, and the kinds of secret replaced in it (one entry per hit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted<'a> {
    /// The text with every secret replaced by `[REDACTED:<kind>]`.
    pub text: Cow<'a, str>,
    /// One entry per replaced secret, in order of appearance.
    pub kinds: Vec<SecretKind>,
}

impl<'a> Redacted<'a> {
    fn unchanged(text: &'a str) -> Self {
        Redacted {
            text: Cow::Borrowed(text),
            kinds: Vec::new(),
        }
    }
}

/// Finds and replaces secrets. Build once and share: construction compiles patterns.
///
/// The compiled patterns are built once per process and shared behind an `Arc`, so
/// `new()` and `clone()` after the first are cheap.
#[derive(Clone)]
pub struct Redactor {
    patterns: Arc<Patterns>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("n_triggers", &self.patterns.trigger_groups.len())
            .field("n_token_rules", &self.patterns.tokens.len())
            .finish()
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new()
    }
}

impl Redactor {
    /// A redactor with the built-in patterns.
    pub fn new() -> Self {
        static PATTERNS: OnceLock<Arc<Patterns>> = OnceLock::new();
        let patterns = PATTERNS.get_or_init(|| Arc::new(Patterns::build()));
        Redactor {
            patterns: Arc::clone(patterns),
        }
    }

    /// Redacts text a person wrote for people (an outcome note, an approval's
    /// reason): what [`Redactor::redact`] finds, and also any value assigned to a
    /// credential-like name (`password=hunter2`, `token: abc123`), however plain.
    /// In code such a value is often a fixture, and the code redactor judges it by
    /// its look; in a note nobody has a reason to write one.
    pub fn redact_prose<'a>(&self, text: &'a str) -> Redacted<'a> {
        static ASSIGNED: OnceLock<Regex> = OnceLock::new();
        let assigned = ASSIGNED.get_or_init(|| {
            Regex::new(
                r"(?i)\b(?:[a-z0-9]+[_-])*(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)\s*[:=]\s*([^\s,;]+)",
            )
            .expect("a valid pattern")
        });
        let first = self.redact(text);
        let mut kinds = first.kinds;
        let source = first.text;
        let mut out = String::new();
        let mut last = 0;
        for caps in assigned.captures_iter(&source) {
            let Some(value) = caps.get(1) else { continue };
            let bare = value
                .as_str()
                .trim_matches(|c| matches!(c, '"' | '\'' | '`'));
            if bare.len() < 3 || is_placeholder(bare) {
                continue;
            }
            out.push_str(&source[last..value.start()]);
            out.push_str("[REDACTED:");
            out.push_str(SecretKind::GenericSecret.as_str());
            out.push(']');
            kinds.push(SecretKind::GenericSecret);
            last = value.end();
        }
        if last == 0 {
            return Redacted {
                text: source,
                kinds,
            };
        }
        out.push_str(&source[last..]);
        Redacted {
            text: Cow::Owned(out),
            kinds,
        }
    }

    /// Redacts a multi-line text (commit message, evidence, a whole blob).
    ///
    /// Lines are redacted in order by one [`LineRedactor`], so a private key block
    /// inside the text is redacted whole. Line endings (`\n`, `\r\n`) are kept.
    pub fn redact<'a>(&self, text: &'a str) -> Redacted<'a> {
        // One scan of the whole text: every detector needs a trigger on some line first.
        if !self.patterns.triggers.is_match(text) {
            return Redacted::unchanged(text);
        }
        let mut lines = self.line_redactor();
        let mut out: Option<String> = None;
        let mut kinds = Vec::new();
        let mut line_start = 0;
        for line in text.split('\n') {
            let redacted = lines.redact_line(line);
            match (redacted.text, out.as_mut()) {
                (Cow::Owned(changed), Some(out)) => out.push_str(&changed),
                (Cow::Owned(changed), None) => {
                    let mut started = String::with_capacity(text.len() + 64);
                    started.push_str(&text[..line_start]);
                    started.push_str(&changed);
                    out = Some(started);
                }
                (Cow::Borrowed(same), Some(out)) => out.push_str(same),
                (Cow::Borrowed(_), None) => {}
            }
            kinds.extend(redacted.kinds);
            line_start += line.len();
            if line_start < text.len() {
                // The '\n' that `split` consumed.
                line_start += 1;
                if let Some(out) = out.as_mut() {
                    out.push('\n');
                }
            }
        }
        match out {
            Some(out) => Redacted {
                text: Cow::Owned(out),
                kinds,
            },
            None => Redacted {
                text: Cow::Borrowed(text),
                kinds,
            },
        }
    }

    /// A stateful redactor for a stream of lines of one file (private key blocks
    /// span lines).
    pub fn line_redactor(&self) -> LineRedactor<'_> {
        LineRedactor {
            redactor: self,
            state: LineState::default(),
            hits: Vec::new(),
            keyword_at: Vec::new(),
        }
    }
}

/// Redacts a file line by line, remembering when it is inside a private key block.
///
/// Besides key blocks it remembers two short-range hints: a 40-character value in the
/// two lines after an AWS access key id is taken for its secret key, and a Kubernetes
/// `- name: DB_PASSWORD` line makes the `value:` on the next line an assignment to it.
///
/// A private key block is counted once, on the line where it starts: the lines of its
/// body and its END line come back redacted with empty `kinds`.
#[derive(Debug)]
pub struct LineRedactor<'r> {
    redactor: &'r Redactor,
    state: LineState,
    /// Scratch space reused from line to line, so redacting allocates only for output.
    hits: Vec<Hit>,
    keyword_at: Vec<usize>,
}

impl LineRedactor<'_> {
    /// Redacts one line (without its newline).
    pub fn redact_line<'a>(&mut self, line: &'a str) -> Redacted<'a> {
        self.hits.clear();
        let patterns = &*self.redactor.patterns;
        patterns.scan_line(line, &mut self.state, &mut self.hits, &mut self.keyword_at);
        apply_hits(line, &mut self.hits)
    }

    /// Forgets block state; call at the start of each file.
    pub fn reset(&mut self) {
        self.state = LineState::default();
    }
}

/// What a line tells about the lines after it.
#[derive(Debug, Clone, Copy, Default)]
struct LineState {
    pem: PemState,
    /// How many more lines may hold the secret key of an access key id seen above.
    aws_window: u8,
    /// The previous line was `- name: <secret-like name>` of a Kubernetes env list.
    pending_env: Option<NameClass>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum PemState {
    #[default]
    Outside,
    /// A BEGIN marker alone in a string literal: a key only if key material follows.
    Mentioned,
    /// Inside a key block: every body line is redacted until END.
    Inside,
}

/// One span to replace. `counted` is false for the later lines of a key block, which
/// was counted where it began.
#[derive(Debug, Clone, Copy)]
struct Hit {
    start: usize,
    end: usize,
    kind: SecretKind,
    counted: bool,
}

impl Hit {
    fn new(start: usize, end: usize, kind: SecretKind) -> Self {
        Hit {
            start,
            end,
            kind,
            counted: true,
        }
    }

    fn key_continuation(start: usize, end: usize) -> Self {
        Hit {
            start,
            end,
            kind: SecretKind::PrivateKey,
            counted: false,
        }
    }

    fn is_key_continuation(&self) -> bool {
        self.kind == SecretKind::PrivateKey && !self.counted
    }
}

/// Replaces the hits in `line`, merging overlaps so no fragment of a secret survives
/// and each merged span counts once, under its most specific kind.
fn apply_hits<'a>(line: &'a str, hits: &mut [Hit]) -> Redacted<'a> {
    if hits.is_empty() {
        return Redacted::unchanged(line);
    }
    hits.sort_by_key(|hit| (hit.start, Reverse(hit.end), Reverse(hit.kind.priority())));
    let mut merged: Vec<Hit> = Vec::with_capacity(hits.len());
    for hit in hits.iter().filter(|hit| hit.start < hit.end) {
        match merged.last_mut() {
            Some(last) if hit.start < last.end => {
                last.end = last.end.max(hit.end);
                if last.is_key_continuation() || hit.is_key_continuation() {
                    *last = Hit::key_continuation(last.start, last.end);
                } else if hit.kind.priority() > last.kind.priority() {
                    last.kind = hit.kind;
                }
            }
            _ => merged.push(*hit),
        }
    }
    if merged.is_empty() {
        return Redacted::unchanged(line);
    }
    let mut text = String::with_capacity(line.len() + 24 * merged.len());
    let mut kinds = Vec::new();
    let mut copied_to = 0;
    for hit in &merged {
        text.push_str(&line[copied_to..hit.start]);
        text.push_str("[REDACTED:");
        text.push_str(hit.kind.as_str());
        text.push(']');
        copied_to = hit.end;
        if hit.counted {
            kinds.push(hit.kind);
        }
    }
    text.push_str(&line[copied_to..]);
    Redacted {
        text: Cow::Owned(text),
        kinds,
    }
}

/// Detector groups, as bits: a trigger substring enables the detectors of its group.
type Groups = u32;
const G_AWS_ID: Groups = 1 << 0;
const G_PEM: Groups = 1 << 1;
const G_GITHUB: Groups = 1 << 2;
const G_GITLAB: Groups = 1 << 3;
const G_SLACK: Groups = 1 << 4;
const G_SLACK_HOOK: Groups = 1 << 5;
const G_STRIPE: Groups = 1 << 6;
const G_JWT: Groups = 1 << 7;
const G_URL: Groups = 1 << 8;
const G_KEYWORD: Groups = 1 << 9;
const G_ANTHROPIC: Groups = 1 << 10;
const G_OPENAI: Groups = 1 << 11;
const G_GOOGLE: Groups = 1 << 12;
const G_NPM: Groups = 1 << 13;
const G_BEARER: Groups = 1 << 14;

/// Substrings (ASCII case-insensitive) without which a detector cannot match a line.
const TRIGGERS: &[(&str, Groups)] = &[
    ("AKIA", G_AWS_ID),
    ("ASIA", G_AWS_ID),
    ("AGPA", G_AWS_ID),
    ("AIDA", G_AWS_ID),
    ("AROA", G_AWS_ID),
    ("AIPA", G_AWS_ID),
    ("ANPA", G_AWS_ID),
    ("ANVA", G_AWS_ID),
    ("ABIA", G_AWS_ID),
    ("ACCA", G_AWS_ID),
    ("A3T", G_AWS_ID),
    ("-----BEGIN", G_PEM),
    ("---- BEGIN", G_PEM),
    ("ghp_", G_GITHUB),
    ("gho_", G_GITHUB),
    ("ghu_", G_GITHUB),
    ("ghs_", G_GITHUB),
    ("ghr_", G_GITHUB),
    ("github_pat_", G_GITHUB),
    ("glpat-", G_GITLAB),
    ("gldt-", G_GITLAB),
    ("glrt-", G_GITLAB),
    ("glptt-", G_GITLAB),
    ("glft-", G_GITLAB),
    ("glimt-", G_GITLAB),
    ("glagent-", G_GITLAB),
    ("glsoat-", G_GITLAB),
    ("gloas-", G_GITLAB),
    ("glcbt-", G_GITLAB),
    ("glffct-", G_GITLAB),
    ("GR1348941", G_GITLAB),
    ("xox", G_SLACK),
    ("xapp-", G_SLACK),
    ("hooks.slack.com", G_SLACK_HOOK),
    ("sk_live_", G_STRIPE),
    ("sk_test_", G_STRIPE),
    ("rk_live_", G_STRIPE),
    ("rk_test_", G_STRIPE),
    ("whsec_", G_STRIPE),
    ("eyJ", G_JWT),
    ("://", G_URL),
    ("sk-ant-", G_ANTHROPIC),
    ("sk-proj-", G_OPENAI),
    ("sk-svcacct-", G_OPENAI),
    ("sk-admin-", G_OPENAI),
    ("sk-None-", G_OPENAI),
    ("T3BlbkFJ", G_OPENAI),
    ("AIza", G_GOOGLE),
    ("npm_", G_NPM),
    ("bearer", G_BEARER),
    ("authorization", G_BEARER),
    // Assignment keywords: where one is found, the name around it is parsed.
    ("pass", G_KEYWORD),
    ("pwd", G_KEYWORD),
    ("secret", G_KEYWORD),
    ("token", G_KEYWORD),
    ("apikey", G_KEYWORD),
    ("api_key", G_KEYWORD),
    ("api-key", G_KEYWORD),
    ("accesskey", G_KEYWORD),
    ("access_key", G_KEYWORD),
    ("access-key", G_KEYWORD),
    ("privatekey", G_KEYWORD),
    ("private_key", G_KEYWORD),
    ("private-key", G_KEYWORD),
    ("authkey", G_KEYWORD),
    ("auth_key", G_KEYWORD),
    ("auth-key", G_KEYWORD),
];

/// A credential with a recognisable shape.
struct TokenRule {
    groups: Groups,
    kind: SecretKind,
    regex: Regex,
    /// Capture group holding the secret (0: the whole match).
    secret_group: usize,
    /// A last check on the matched text, for shapes a regex alone over-matches.
    accept: fn(&str) -> bool,
}

/// Everything compiled once per process.
struct Patterns {
    triggers: AhoCorasick,
    trigger_groups: Vec<Groups>,
    tokens: Vec<TokenRule>,
    pem_begin: Regex,
    pem_end: Regex,
    url_userinfo: Regex,
    bearer: Regex,
    base64_run: Regex,
}

/// Compiles a built-in pattern. They are literals checked by every test that builds a
/// `Redactor`, so failing here is a bug in this file, not a runtime condition.
fn compile(pattern: &str) -> Regex {
    Regex::new(pattern)
        .unwrap_or_else(|err| panic!("built-in redaction pattern {pattern:?}: {err}"))
}

fn always(_: &str) -> bool {
    true
}

/// AWS documents its examples with ids ending in `EXAMPLE` (`AKIAIOSFODNN7EXAMPLE`);
/// they fill SDK docs and tests everywhere and are not credentials.
fn not_aws_documentation_example(text: &str) -> bool {
    !text.ends_with("EXAMPLE")
}

/// Slack's real tokens carry numeric team/user ids; `xoxb-your-token-here` does not.
fn has_digit(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_digit())
}

impl Patterns {
    fn build() -> Self {
        let triggers = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(TRIGGERS.iter().map(|(pattern, _)| pattern))
            .unwrap_or_else(|err| panic!("built-in redaction triggers: {err}"));
        let rule = |groups, kind, pattern: &str, secret_group, accept| TokenRule {
            groups,
            kind,
            regex: compile(pattern),
            secret_group,
            accept,
        };
        let tokens = vec![
            rule(
                G_AWS_ID,
                SecretKind::AwsAccessKey,
                r"(?-u:\b)(?:A3T[A-Z0-9]|AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)",
                0,
                not_aws_documentation_example,
            ),
            rule(
                G_GITHUB,
                SecretKind::GithubToken,
                r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{36,247})(?-u:\b)",
                0,
                always,
            ),
            rule(
                G_GITLAB,
                SecretKind::GitlabToken,
                r"(?-u:\b)(?:(?:glpat|gldt|glrt|glptt|glft|glimt|glagent|glsoat|gloas|glcbt|glffct)-|GR1348941)[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_-]+)*",
                0,
                always,
            ),
            rule(
                G_SLACK,
                SecretKind::SlackToken,
                r"(?-u:\b)(?:xox[abposre]-|xoxe\.xox[bp]-|xapp-)[A-Za-z0-9-]{10,}",
                0,
                has_digit,
            ),
            rule(
                G_SLACK_HOOK,
                SecretKind::SlackWebhook,
                r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9_/+-]{16,})",
                1,
                always,
            ),
            rule(
                G_STRIPE,
                SecretKind::StripeKey,
                r"(?-u:\b)(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{24,}|whsec_[A-Za-z0-9+/=]{24,})",
                0,
                always,
            ),
            rule(
                G_JWT,
                SecretKind::Jwt,
                r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+){0,2}",
                0,
                always,
            ),
            rule(
                G_ANTHROPIC,
                SecretKind::AnthropicKey,
                r"(?-u:\b)sk-ant-[A-Za-z0-9_-]{20,}",
                0,
                always,
            ),
            rule(
                G_OPENAI,
                SecretKind::OpenAiKey,
                r"(?-u:\b)(?:sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})",
                0,
                always,
            ),
            rule(
                G_GOOGLE,
                SecretKind::GoogleApiKey,
                r"(?-u:\b)(AIza[0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|$)",
                1,
                always,
            ),
            rule(
                G_NPM,
                SecretKind::NpmToken,
                r"(?-u:\b)npm_[A-Za-z0-9]{36}(?-u:\b)",
                0,
                always,
            ),
        ];
        Patterns {
            triggers,
            trigger_groups: TRIGGERS.iter().map(|(_, groups)| *groups).collect(),
            tokens,
            pem_begin: compile(r"-{4,5} ?BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)? ?-{4,5}"),
            pem_end: compile(r"-{4,5} ?END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)? ?-{4,5}"),
            // scheme://user:password@host; the password may hold ':' and '@' (the last
            // '@' before the host ends it), never '/', '?', '#', quotes or whitespace.
            url_userinfo: compile(
                r#"(?-u:\b)[A-Za-z][A-Za-z0-9+.-]{0,30}://([^\s:/?#@"'<>`\[\]{}]*):([^\s/?#"'<>`]+)@[A-Za-z0-9\[_.%-]"#,
            ),
            bearer: compile(
                r"(?i)(?:(?-u:\b)bearer|authorization:\s*basic)\s+([A-Za-z0-9._~+/=-]{12,})",
            ),
            base64_run: compile(r"[A-Za-z0-9/+]+"),
        }
    }

    /// Finds the secrets of one line, updating what the line tells about the next ones.
    fn scan_line(
        &self,
        line: &str,
        state: &mut LineState,
        hits: &mut Vec<Hit>,
        keyword_at: &mut Vec<usize>,
    ) {
        match state.pem {
            PemState::Inside => {
                if let Some(end) = self.pem_end.find(line) {
                    hits.push(Hit::key_continuation(indent_len(line), end.end()));
                    state.pem = PemState::Outside;
                    // The rest of the line is ordinary text again.
                } else if pem_body_like(line) {
                    let content_end = line.trim_end().len();
                    hits.push(Hit::key_continuation(indent_len(line), content_end));
                    return;
                } else {
                    // Not key material: the block was truncated or never was a key.
                    state.pem = PemState::Outside;
                }
            }
            PemState::Mentioned => {
                state.pem = PemState::Outside;
                if pem_body_like(line) && self.longest_base64_run(line) >= 16 {
                    hits.push(Hit::new(
                        indent_len(line),
                        line.trim_end().len(),
                        SecretKind::PrivateKey,
                    ));
                    state.pem = PemState::Inside;
                    return;
                }
            }
            PemState::Outside => {}
        }
        let pending_env = state.pending_env.take();
        let mut aws_window = state.aws_window > 0;
        state.aws_window = state.aws_window.saturating_sub(1);

        let mut groups: Groups = 0;
        keyword_at.clear();
        if self.triggers.is_match(line) {
            for found in self.triggers.find_overlapping_iter(line) {
                let group = self.trigger_groups[found.pattern().as_usize()];
                groups |= group;
                if group == G_KEYWORD {
                    keyword_at.push(found.start());
                }
            }
        }
        if groups == 0 && pending_env.is_none() && !aws_window {
            return;
        }

        if groups & G_PEM != 0 {
            self.scan_pem_begin(line, state, hits);
        }
        for rule in &self.tokens {
            if groups & rule.groups == 0 {
                continue;
            }
            let before = hits.len();
            if rule.secret_group == 0 {
                hits.extend(
                    rule.regex
                        .find_iter(line)
                        .filter(|m| (rule.accept)(m.as_str()))
                        .map(|m| Hit::new(m.start(), m.end(), rule.kind)),
                );
            } else {
                hits.extend(
                    rule.regex
                        .captures_iter(line)
                        .filter_map(|caps| caps.get(rule.secret_group))
                        .filter(|m| (rule.accept)(m.as_str()))
                        .map(|m| Hit::new(m.start(), m.end(), rule.kind)),
                );
            }
            if rule.kind == SecretKind::AwsAccessKey && hits.len() > before {
                aws_window = true;
                state.aws_window = 2;
            }
        }
        if groups & G_URL != 0 {
            for caps in self.url_userinfo.captures_iter(line) {
                let (Some(user), Some(password)) = (caps.get(1), caps.get(2)) else {
                    continue;
                };
                // `guest:guest`, `postgres:postgres`: well-known local defaults, not secrets;
                // nor are the one- to three-character passwords of URL parser tests.
                if password.len() < 4
                    || is_placeholder(password.as_str())
                    || password.as_str() == user.as_str()
                {
                    continue;
                }
                hits.push(Hit::new(
                    password.start(),
                    password.end(),
                    SecretKind::UrlPassword,
                ));
            }
        }
        if groups & G_BEARER != 0 {
            for caps in self.bearer.captures_iter(line) {
                let Some(credential) = caps.get(1) else {
                    continue;
                };
                let value = credential.as_str();
                if !is_placeholder(value) && looks_like_secret_value(value, false) {
                    hits.push(Hit::new(
                        credential.start(),
                        credential.end(),
                        SecretKind::GenericSecret,
                    ));
                }
            }
        }
        if aws_window {
            for run in self.base64_run.find_iter(line) {
                if is_aws_secret_shape(run.as_str()) && !is_placeholder(run.as_str()) {
                    hits.push(Hit::new(run.start(), run.end(), SecretKind::AwsSecretKey));
                }
            }
        }
        if groups & G_KEYWORD != 0 {
            // Overlapping matches come out in order of their end; the parser wants starts.
            keyword_at.sort_unstable();
            scan_assignments(line, keyword_at, state, hits);
        }
        if let Some(class) = pending_env {
            scan_env_list_value(line, class, hits);
        }
    }

    /// Handles BEGIN markers: a whole block on one line, a block starting here, or a
    /// marker quoted alone (code that looks for keys, or a key split over literals).
    fn scan_pem_begin(&self, line: &str, state: &mut LineState, hits: &mut Vec<Hit>) {
        let mut from = 0;
        while let Some(begin) = self.pem_begin.find_at(line, from) {
            if let Some(end) = self.pem_end.find_at(line, begin.end()) {
                hits.push(Hit::new(begin.start(), end.end(), SecretKind::PrivateKey));
                from = end.end();
                continue;
            }
            let rest = &line[begin.end()..];
            let quote_before = line[..begin.start()].bytes().last();
            let quoted_alone = matches!(quote_before, Some(b'"' | b'\'' | b'`'))
                && rest.bytes().next() == quote_before;
            if quoted_alone && self.longest_base64_run(rest) < 32 {
                state.pem = PemState::Mentioned;
            } else {
                hits.push(Hit::new(
                    begin.start(),
                    line.trim_end().len(),
                    SecretKind::PrivateKey,
                ));
                state.pem = PemState::Inside;
            }
            return;
        }
    }

    fn longest_base64_run(&self, text: &str) -> usize {
        self.base64_run
            .find_iter(text)
            .map(|run| run.len())
            .max()
            .unwrap_or(0)
    }
}

fn indent_len(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Whether a line can be part of a PEM body: base64, an RFC 1421/4880 header, blank, or
/// one of those inside string-literal decoration (quotes, `\n`, `+`, `,`).
fn pem_body_like(line: &str) -> bool {
    const HEADERS: &[&str] = &[
        "Proc-Type:",
        "DEK-Info:",
        "Version:",
        "Comment:",
        "Hash:",
        "Charset:",
        "MessageID:",
    ];
    let mut core = line
        .trim()
        .trim_start_matches(['+', '-', '"', '\'', '`', ' ', '\t']);
    loop {
        let before = core.len();
        core = core.trim_end_matches(['"', '\'', '`', ',', ';', '+', ')', ' ', '\t', '\\']);
        for escape in ["\\n", "\\r"] {
            if let Some(stripped) = core.strip_suffix(escape) {
                core = stripped;
            }
        }
        if core.len() == before {
            break;
        }
    }
    core.is_empty()
        || HEADERS.iter().any(|header| core.starts_with(header))
        || core
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// How the name of an assignment says its value should be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameClass {
    /// A password: humans pick them, so a short mixed value counts even at low entropy.
    Password,
    /// An AWS secret access key name: a 40-character key value is an `AwsSecretKey`.
    Aws,
    /// Any other secret-like name: the value must be random-looking.
    Generic,
}

/// Last words of a name that make its value something about a secret, not the secret
/// (`secret_name`, `token_url`, `password_min_length`).
#[rustfmt::skip]
const NON_SECRET_SUFFIXES: &[&str] = &[
    "name", "names", "file", "files", "path", "paths", "dir", "url", "uri", "endpoint", "host",
    "ref", "reference", "env", "var", "variable", "type", "types", "kind", "length", "len", "size",
    "min", "max", "count", "limit", "ttl", "expiry", "expires", "expiration", "expire", "timeout",
    "lifetime", "age", "header", "headers", "field", "fields", "param", "parameter", "prefix",
    "suffix", "regex", "regexp", "pattern", "format", "policy", "rule", "rules", "mode", "version",
    "arn", "provider", "store", "manager", "source", "label", "description", "desc", "hint", "help",
    "prompt", "message", "msg", "error", "text", "title", "enabled", "disabled", "required",
    "location", "method", "scope", "scopes", "audience", "issuer", "algorithm", "alg", "budget",
    "usage", "cost", "encryption", "hashing", "hasher", "encoding", "placeholder", "template",
    "column", "table", "strength", "rotation", "interval", "period", "seconds", "secs", "ms", "at",
    "date", "time", "timestamp", "created", "updated", "command", "cmd", "script", "helper",
    "backend", "class", "input", "selector", "validator", "validation", "check", "reset", "set",
    "exists", "present", "mount", "volume", "namespace",
];

/// Splits `DB_PASSWORD`, `dbPassword`, `APIKey`, `oauth2-token` into words.
fn split_words(name: &str) -> Vec<&str> {
    let bytes = name.as_bytes();
    let mut words = Vec::new();
    let mut start = 0;
    for (idx, &byte) in bytes.iter().enumerate() {
        if matches!(byte, b'_' | b'-' | b'.') {
            if start < idx {
                words.push(&name[start..idx]);
            }
            start = idx + 1;
        } else if idx > start && byte.is_ascii_uppercase() {
            let prev = bytes[idx - 1];
            let next_is_lower = bytes.get(idx + 1).is_some_and(u8::is_ascii_lowercase);
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_is_lower)
            {
                words.push(&name[start..idx]);
                start = idx;
            }
        }
    }
    if start < bytes.len() {
        words.push(&name[start..]);
    }
    words
}

fn ends_with_ignore_case(word: &str, suffix: &str) -> bool {
    word.len() >= suffix.len()
        && word.as_bytes()[word.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// Whether a name holds a secret: one of its words is (or ends with) a secret keyword,
/// the keyword is not followed by more letters (`tokens`, `tokenizer`, `secretary`), and
/// its last word does not make it metadata about a secret.
fn classify_name(name: &str) -> Option<NameClass> {
    let words = split_words(name);
    let last = words.last()?;
    if NON_SECRET_SUFFIXES
        .iter()
        .any(|suffix| last.eq_ignore_ascii_case(suffix))
    {
        return None;
    }
    let mut class = None;
    let (mut saw_aws, mut saw_secret, mut saw_access) = (false, false, false);
    for (idx, word) in words.iter().enumerate() {
        let is = |other: &str| word.eq_ignore_ascii_case(other);
        let ends = |suffix: &str| ends_with_ignore_case(word, suffix);
        saw_aws |= is("aws");
        saw_access |= is("access") || ends("accesskey");
        if ["password", "passwd", "passphrase", "pwd"]
            .iter()
            .any(|k| ends(k))
            || is("pass")
        {
            class = Some(NameClass::Password);
        } else if ends("secret") || ends("secretkey") {
            saw_secret = true;
            class.get_or_insert(NameClass::Generic);
        } else if ["token", "apikey", "accesskey", "privatekey", "authkey"]
            .iter()
            .any(|k| ends(k))
        {
            class.get_or_insert(NameClass::Generic);
        } else if is("key") && idx > 0 {
            let prev = words[idx - 1];
            if ["api", "access", "private", "auth", "secret"]
                .iter()
                .any(|k| prev.eq_ignore_ascii_case(k))
            {
                class.get_or_insert(NameClass::Generic);
            }
        }
    }
    match class {
        Some(NameClass::Generic) if saw_secret && (saw_aws || saw_access) => Some(NameClass::Aws),
        other => other,
    }
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-')
}

/// Parses `name = value`-like assignments around each keyword hit and records the values
/// that look like secrets.
fn scan_assignments(line: &str, keyword_at: &[usize], state: &mut LineState, hits: &mut Vec<Hit>) {
    let bytes = line.as_bytes();
    let mut scanned_to = 0;
    for &keyword_start in keyword_at {
        if keyword_start < scanned_to {
            continue;
        }
        let mut name_start = keyword_start;
        while name_start > 0 && is_name_byte(bytes[name_start - 1]) {
            name_start -= 1;
        }
        // "…\nAWS_SECRET_ACCESS_KEY=…": the `n` belongs to the escape, not the name.
        if name_start > 0
            && bytes[name_start - 1] == b'\\'
            && matches!(bytes[name_start], b'n' | b'r' | b't')
            && name_start + 1 < keyword_start
        {
            name_start += 1;
        }
        let mut name_end = keyword_start;
        while name_end < bytes.len() && is_name_byte(bytes[name_end]) {
            name_end += 1;
        }
        scanned_to = name_end;
        let name = &line[name_start..name_end];
        let Some(class) = classify_name(name.trim_matches(['-', '.'])) else {
            continue;
        };
        let byte_before = name_start.checked_sub(1).map(|idx| bytes[idx]);
        // `$TOKEN`, `${TOKEN}`, `https://…/token`, `user@pass:host`: uses of a name, not
        // assignments to it.
        if matches!(byte_before, Some(b'$' | b'{' | b'/' | b'@')) {
            continue;
        }
        if is_env_list_name(line, name_start, name_end) {
            state.pending_env = Some(class);
            continue;
        }
        let Some(value) = parse_assignment(line, name_start, name_end) else {
            continue;
        };
        if let Some(kind) = judge_value(
            &line[value.start..value.end],
            class,
            value.bare,
            value.config_style,
        ) {
            hits.push(Hit::new(value.start, value.end, kind));
            scanned_to = scanned_to.max(value.end);
        }
    }
}

/// The value of an assignment: where it is, and how to read it.
#[derive(Debug, Clone, Copy)]
struct ValueSpan {
    start: usize,
    end: usize,
    /// Not in quotes: in code it is an expression, in config a literal.
    bare: bool,
    /// Config-like context (env file, YAML, CLI flag, query string), where a bare value
    /// is a literal rather than a reference to another variable.
    config_style: bool,
}

/// Finds the value after `name` in `name = v`, `name: v`, `"name": "v"`, `name := v`,
/// `name => v`, `--name v`, `--name=v`, `?name=v&`, `<name>v</name>`.
fn parse_assignment(line: &str, name_start: usize, name_end: usize) -> Option<ValueSpan> {
    let bytes = line.as_bytes();
    let name = &line[name_start..name_end];
    let byte_before = name_start.checked_sub(1).map(|idx| bytes[idx]);
    let cli = name.starts_with('-');
    let query = matches!(byte_before, Some(b'?' | b'&' | b'#'));
    if byte_before == Some(b'<') {
        if bytes.get(name_end) != Some(&b'>') {
            return None;
        }
        let start = name_end + 1;
        let end = line[start..]
            .find('<')
            .map_or(line.trim_end().len(), |idx| start + idx);
        return (start < end).then_some(ValueSpan {
            start,
            end,
            bare: true,
            config_style: true,
        });
    }
    let mut idx = name_end;
    // The closing quote of a quoted key, possibly escaped inside a JSON string.
    if bytes.get(idx) == Some(&b'\\') && matches!(bytes.get(idx + 1), Some(b'"' | b'\'')) {
        idx += 2;
    } else if matches!(bytes.get(idx), Some(b'"' | b'\'' | b'`')) {
        idx += 1;
    }
    // config["token"] = …
    if bytes.get(idx) == Some(&b']') {
        idx += 1;
    }
    let before_space = idx;
    idx = skip_blanks(bytes, idx);
    let spaced = idx > before_space;
    match (bytes.get(idx), bytes.get(idx + 1)) {
        (Some(b'='), Some(b'>')) | (Some(b':'), Some(b'=')) => idx += 2,
        (Some(b'='), next) if next != Some(&b'=') => idx += 1,
        (Some(b':'), next) if next != Some(&b':') => idx = skip_type_annotation(line, idx + 1),
        (Some(next), _) if cli && spaced && *next != b'-' => {}
        _ => return None,
    }
    idx = skip_blanks(bytes, idx);
    let prefix = line[..name_start]
        .trim()
        .trim_end_matches(['"', '\''])
        .trim();
    let config_style = cli
        || query
        || matches!(
            prefix,
            "" | "-" | "export" | "set" | "setenv" | "ENV" | "ARG" | "env" | "--env"
        );
    // 'token=…' or "DB_PASSWORD=…": the quote before the name closes after the value.
    let enclosing_quote = byte_before
        .filter(|quote| matches!(quote, b'"' | b'\'' | b'`'))
        .filter(|quote| bytes.get(name_end) != Some(quote));
    let context = ValueContext {
        config_style,
        query,
        enclosing_quote,
    };
    parse_value(line, idx, context)
}

/// Where a value sits, which decides where a bare value ends and how it is judged.
#[derive(Debug, Clone, Copy)]
struct ValueContext {
    /// Env file, YAML, CLI flag, query string: a bare value is a literal.
    config_style: bool,
    /// After `?`, `&` or `#` in a URL or form body: `&` and `#` end the value.
    query: bool,
    /// A quote opened before the name, which ends a bare value.
    enclosing_quote: Option<u8>,
}

/// Whether `rest` (after a `&`) starts another `name=` parameter.
fn starts_parameter(rest: &[u8]) -> bool {
    let name_len = rest
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .count();
    name_len > 0 && rest[0].is_ascii_alphabetic() && rest.get(name_len) == Some(&b'=')
}

/// In `token: &'static str = "…"` or `api_key: str = "…"` the value follows the type;
/// returns where it starts, or `idx` unchanged when no ` = ` follows a type-like text.
fn skip_type_annotation(line: &str, idx: usize) -> usize {
    let rest = &line[idx..];
    let Some(eq) = rest.find(" = ") else {
        return idx;
    };
    let annotation = rest[..eq].trim();
    let type_like = !annotation.is_empty()
        && annotation.len() <= 60
        && !annotation.contains(['"', '`', '=', ';', '(', ')', '{', '}']);
    if type_like {
        idx + eq + 3
    } else {
        idx
    }
}

fn skip_blanks(bytes: &[u8], mut idx: usize) -> usize {
    while matches!(bytes.get(idx), Some(b' ' | b'\t')) {
        idx += 1;
    }
    idx
}

/// Reads a quoted or bare value starting at `idx`.
fn parse_value(line: &str, mut idx: usize, context: ValueContext) -> Option<ValueSpan> {
    let ValueContext {
        config_style,
        query,
        enclosing_quote,
    } = context;
    let bytes = line.as_bytes();
    let first = *bytes.get(idx)?;
    // "…" escaped inside another string: {\"token\": \"…\"}
    if first == b'\\' && matches!(bytes.get(idx + 1), Some(b'"' | b'\'')) {
        let closing = [b'\\', bytes[idx + 1]];
        let start = idx + 2;
        let end = bytes[start..]
            .windows(2)
            .position(|pair| pair == closing)
            .map_or(line.trim_end().len(), |offset| start + offset);
        return (start < end).then_some(ValueSpan {
            start,
            end,
            bare: false,
            config_style,
        });
    }
    // r"…", b'…', f"…", u"…"
    if matches!(first, b'r' | b'b' | b'f' | b'u' | b'R' | b'B' | b'F' | b'U')
        && matches!(bytes.get(idx + 1), Some(b'"' | b'\''))
    {
        idx += 1;
    }
    let opening = bytes[idx];
    if matches!(opening, b'"' | b'\'' | b'`') {
        let start = idx + 1;
        let mut pos = start;
        let mut end = None;
        while pos < bytes.len() {
            match bytes[pos] {
                b'\\' => pos += 2,
                byte if byte == opening => {
                    end = Some(pos);
                    break;
                }
                _ => pos += 1,
            }
        }
        // An unterminated literal (a multi-line string) runs to the end of the line.
        let end = end
            .unwrap_or_else(|| line.trim_end().len())
            .min(bytes.len());
        return (start < end).then_some(ValueSpan {
            start,
            end,
            bare: false,
            config_style,
        });
    }
    let start = idx;
    let mut end = start;
    while end < bytes.len() {
        let byte = bytes[end];
        // `a=1&token=…&b=2` in a string: the next parameter starts another assignment.
        if byte == b'&' && starts_parameter(&bytes[end + 1..]) {
            break;
        }
        if Some(byte) == enclosing_quote {
            break;
        }
        let stops = if query {
            byte.is_ascii_whitespace() || matches!(byte, b'&' | b'#' | b'"' | b'\'' | b'`' | b'<')
        } else if config_style {
            // In an env file or YAML a bare value runs to the next blank: cutting it at
            // ',' or ')' could leave half a secret in the output.
            byte.is_ascii_whitespace() || byte == b'<'
        } else {
            // A backslash in code is an escape of an enclosing string ("…=v\n").
            byte.is_ascii_whitespace()
                || matches!(
                    byte,
                    b'\\' | b'"' | b'\'' | b'`' | b',' | b';' | b')' | b']' | b'}' | b'<' | b'&'
                )
        };
        if stops {
            break;
        }
        end += 1;
    }
    (start < end).then_some(ValueSpan {
        start,
        end,
        bare: true,
        config_style,
    })
}

/// `- name: DB_PASSWORD` alone on its line: the next line's `value:` is the secret.
fn is_env_list_name(line: &str, name_start: usize, name_end: usize) -> bool {
    let prefix = line[..name_start].trim_end_matches(['"', '\'']).trim();
    let prefix = prefix.strip_prefix('-').unwrap_or(prefix).trim_start();
    prefix == "name:"
        && line[name_end..]
            .trim_matches(['"', '\'', ' ', '\t', '\r'])
            .is_empty()
}

fn scan_env_list_value(line: &str, class: NameClass, hits: &mut Vec<Hit>) {
    let trimmed = line.trim_start();
    let Some(after) = trimmed.strip_prefix("value:") else {
        return;
    };
    let idx = skip_blanks(line.as_bytes(), line.len() - after.len());
    let context = ValueContext {
        config_style: true,
        query: false,
        enclosing_quote: None,
    };
    let Some(value) = parse_value(line, idx, context) else {
        return;
    };
    if let Some(kind) = judge_value(
        &line[value.start..value.end],
        class,
        value.bare,
        value.config_style,
    ) {
        hits.push(Hit::new(value.start, value.end, kind));
    }
}

/// Whether an assigned value is a secret worth redacting, and which kind.
fn judge_value(
    value: &str,
    class: NameClass,
    bare: bool,
    config_style: bool,
) -> Option<SecretKind> {
    if value.len() < 8 || is_placeholder(value) {
        return None;
    }
    if bare && is_reference(value, config_style) {
        return None;
    }
    if class == NameClass::Aws && is_aws_secret_shape(value) {
        return Some(SecretKind::AwsSecretKey);
    }
    looks_like_secret_value(value, class == NameClass::Password)
        .then_some(SecretKind::GenericSecret)
}

fn is_identifier(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A bare value that names something else: a call, an index, a path of fields
/// (`process.env.TOKEN`, `settings.SECRET_KEY`), or, in code, a variable.
fn is_reference(value: &str, config_style: bool) -> bool {
    let value = value.trim_end_matches([',', ';', ')']);
    // `&Self::Checkpoint`, `*anchor`: a Rust reference type, a YAML alias.
    if value.starts_with(['&', '*']) || value.bytes().any(|b| matches!(b, b'(' | b'[' | b'{')) {
        return true;
    }
    for separator in [".", "::", "->"] {
        if value.contains(separator) && value.split(separator).all(is_identifier) {
            return true;
        }
    }
    if is_identifier(value) {
        // `EphemeralPrivateKey`, `x25519_private_key`, `DEFAULT_TOKEN` name things
        // everywhere; `Xk9fQ2mZp7Lw4Rt8` is a literal in config, a variable in code.
        let snake_or_screaming = value.contains('_')
            && (value.bytes().all(|b| !b.is_ascii_uppercase())
                || value.bytes().all(|b| !b.is_ascii_lowercase()));
        return !has_digit(value) || snake_or_screaming || !config_style;
    }
    false
}

/// Made of dictionary-like words (`scram-sha-256`, `prod/database-credentials`,
/// `$serde_json::private::Number`, `challengePassword`) rather than the one- and
/// two-letter fragments between digits and case changes of a random token.
fn is_wordy(value: &str) -> bool {
    let (mut n_words, mut n_letters, mut n_short) = (0usize, 0usize, 0usize);
    let parts = value.split(['-', '_', '.', '/', ':', '$', '@', '+']);
    for word in parts.flat_map(split_words) {
        let letters = word.bytes().take_while(u8::is_ascii_alphabetic).count();
        if !word.bytes().skip(letters).all(|b| b.is_ascii_digit()) {
            return false;
        }
        if letters > 0 {
            n_words += 1;
            n_letters += letters;
            n_short += usize::from(letters <= 2);
        }
    }
    n_words > 0 && n_letters >= 3 * n_words && n_short * 3 <= n_words
}

/// Words and forms that stand for a secret without being one. Compared against the
/// value lowercased with everything but letters and digits removed.
#[rustfmt::skip]
const PLACEHOLDER_WORDS: &[&str] = &[
    "password", "passwd", "pass", "pwd", "secret", "token", "apikey", "key", "changeme",
    "changeit", "example", "redacted", "masked", "hidden", "none", "null", "nil", "undefined",
    "empty", "todo", "tbd", "fixme", "dummy", "sample", "placeholder", "default", "foo", "bar",
    "foobar", "admin", "root", "guest", "user", "username", "test", "secretkey", "accesskey",
    "privatekey", "mysecretpassword", "notasecret",
];

/// Whether a value is a stand-in: interpolation (`${X}`, `{{ .Values.x }}`, `$X`,
/// `%(x)s`, `<%= … %>`), a `<placeholder>`, a mask (`****`), an already redacted tag, or
/// a word like `changeme`.
fn is_placeholder(value: &str) -> bool {
    const TEMPLATE_MARKERS: &[&str] = &["${", "{{", "$(", "<%", "%(", "#{", "{%", "[REDACTED"];
    let value = value.trim();
    let bytes = value.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return true;
    };
    if TEMPLATE_MARKERS.iter().any(|marker| value.contains(marker)) {
        return true;
    }
    if first == b'$'
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return true;
    }
    if matches!(
        (first, last),
        (b'<', b'>') | (b'{', b'}') | (b'%', b'%') | (b'[', b']')
    ) {
        return true;
    }
    if value
        .chars()
        .all(|c| matches!(c, '*' | 'x' | 'X' | '•' | '.' | '#' | '-' | '_' | '?' | '0'))
    {
        return true;
    }
    let folded: String = value
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let stem = folded.trim_end_matches(|c: char| c.is_ascii_digit());
    folded.is_empty()
        || PLACEHOLDER_WORDS.contains(&stem)
        || folded.starts_with("your")
        || folded.ends_with("here")
        || ["changeme", "changeit", "placeholder", "replaceme"]
            .iter()
            .any(|word| folded.contains(word))
}

/// 40 characters of base64 with both cases and a digit or symbol: the shape of an AWS
/// secret access key, and not of a (lowercase hex) git object id.
fn is_aws_secret_shape(value: &str) -> bool {
    value.len() == 40
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+'))
        && value.bytes().any(|b| b.is_ascii_uppercase())
        && value.bytes().any(|b| b.is_ascii_lowercase())
        && value
            .bytes()
            .any(|b| b.is_ascii_digit() || matches!(b, b'/' | b'+'))
}

/// Shannon entropy in bits per byte: a random 20-character token scores about 4, a word
/// or an identifier about 3.
fn shannon_entropy(value: &str) -> f64 {
    let mut counts = [0u32; 256];
    for byte in value.bytes() {
        counts[usize::from(byte)] += 1;
    }
    let len = value.len() as f64;
    counts
        .iter()
        .filter(|&&count| count > 0)
        .map(|&count| {
            let p = f64::from(count) / len;
            -p * p.log2()
        })
        .sum()
}

/// Whether a literal looks like a credential rather than a URL, a path, a number, prose
/// or an identifier.
fn looks_like_secret_value(value: &str, password_like: bool) -> bool {
    #[rustfmt::skip]
    const FILE_EXTENSIONS: &[&str] = &[
        ".pem", ".key", ".json", ".txt", ".yaml", ".yml", ".env", ".crt", ".p12", ".pfx", ".jks",
        ".gpg", ".asc", ".pub", ".cfg", ".conf", ".ini", ".toml", ".enc", ".der", ".keystore",
    ];
    let bytes = value.as_bytes();
    if bytes.iter().any(u8::is_ascii_whitespace)
        || value.contains("://")
        || value.starts_with(['/', '~'])
        || value.starts_with("./")
        || value.starts_with("../")
        || value.starts_with("arn:")
        || (bytes.len() > 2 && bytes[1] == b':' && matches!(bytes[2], b'\\' | b'/'))
        || FILE_EXTENSIONS
            .iter()
            .any(|ext| ends_with_ignore_case(value, ext))
        || value
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'+' | b','))
        || is_email(value)
    {
        return false;
    }
    let has_lower = bytes.iter().any(u8::is_ascii_lowercase);
    let has_upper = bytes.iter().any(u8::is_ascii_uppercase);
    let has_digit = bytes.iter().any(u8::is_ascii_digit);
    let has_symbol = bytes.iter().any(|b| !b.is_ascii_alphanumeric());
    let alnum_classes = usize::from(has_lower) + usize::from(has_upper) + usize::from(has_digit);
    let entropy = shannon_entropy(value);
    let len = value.len();
    // The best entropy a string of `len` distinct bytes can reach is log2(len); random
    // tokens of 12 to 16 characters fall a little short of it, and of 3.5.
    let threshold = 3.5_f64.min((len as f64).log2() - 0.35);
    let random_looking =
        len >= 12 && alnum_classes >= 2 && entropy >= threshold && !is_wordy(value);
    // A password-like name makes a shorter, plainer value suspect: three classes of
    // character (`Tr0ub4dor&3`), or letters and digits that are not words and a
    // version (`hunter2hunter2`, but not `release2024`).
    let human_password = password_like
        && len >= 8
        && entropy >= 2.5
        && (alnum_classes + usize::from(has_symbol) >= 3
            || (alnum_classes >= 2 && !is_wordy(value)));
    random_looking || human_password
}

fn is_email(value: &str) -> bool {
    match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_loses_any_value_assigned_to_a_credential_name() {
        let redactor = Redactor::new();
        for (note, expected) in [
            (
                "rolled back; password=hunter2 was in the env",
                "rolled back; password=[REDACTED:generic_secret] was in the env",
            ),
            (
                "DB_PASSWORD: correcthorsebatterystaple, rotated",
                "DB_PASSWORD: [REDACTED:generic_secret], rotated",
            ),
            ("token = 'abc123'", "token = [REDACTED:generic_secret]"),
            // Placeholders and prose about passwords stay.
            ("password=${DB_PASSWORD}", "password=${DB_PASSWORD}"),
            (
                "the password rotation job failed",
                "the password rotation job failed",
            ),
            ("password: <redacted>", "password: <redacted>"),
        ] {
            let redacted = redactor.redact_prose(note);
            assert_eq!(redacted.text, expected, "{note}");
            assert_eq!(redacted.kinds.is_empty(), note == expected, "{note}");
        }
        // The code redactor is unchanged: a plain value in code is judged by its look.
        assert_eq!(redactor.redact("password=hunter2").text, "password=hunter2");
        // What the code redactor finds is still found, once.
        let redacted = redactor.redact_prose("api_key=sk-live-1234567890abcdef leaked");
        assert_eq!(redacted.text, "api_key=[REDACTED:generic_secret] leaked");
        assert_eq!(redacted.kinds.len(), 1);
    }

    #[test]
    fn names_split_into_words_across_case_and_separators() {
        assert_eq!(split_words("DB_PASSWORD"), ["DB", "PASSWORD"]);
        assert_eq!(split_words("dbPassword"), ["db", "Password"]);
        assert_eq!(split_words("APIKey"), ["API", "Key"]);
        assert_eq!(split_words("oauth2Token"), ["oauth2", "Token"]);
        assert_eq!(
            split_words("spring.datasource.password"),
            ["spring", "datasource", "password"]
        );
    }

    #[test]
    fn secret_names_are_told_from_names_about_secrets() {
        assert_eq!(classify_name("password"), Some(NameClass::Password));
        assert_eq!(classify_name("DB_PASS"), Some(NameClass::Password));
        assert_eq!(classify_name("githubToken"), Some(NameClass::Generic));
        assert_eq!(classify_name("x-api-key"), Some(NameClass::Generic));
        assert_eq!(classify_name("AWS_SECRET_ACCESS_KEY"), Some(NameClass::Aws));
        assert_eq!(classify_name("secretAccessKey"), Some(NameClass::Aws));
        assert_eq!(classify_name("max_tokens"), None);
        assert_eq!(classify_name("tokenizer"), None);
        assert_eq!(classify_name("secret_name"), None);
        assert_eq!(classify_name("password_min_length"), None);
        assert_eq!(classify_name("bypass"), None);
    }

    #[test]
    fn entropy_separates_random_tokens_from_words() {
        assert!(shannon_entropy("q8Zt3Vw9Lm2Xr7Pk5Ns1") > 4.0);
        assert!(shannon_entropy("aaaaaaaaaaaa") < 0.01);
        assert!(shannon_entropy("production") < 3.5);
    }

    #[test]
    fn placeholders_are_recognised() {
        for value in [
            "${DB_PASSWORD}",
            "$PASS",
            "<password>",
            "****",
            "changeme",
            "{{ .Values.token }}",
            "%(password)s",
            "[REDACTED:generic_secret]",
            "your-api-key-here",
            "password123",
        ] {
            assert!(is_placeholder(value), "{value}");
        }
        assert!(!is_placeholder("q8Zt3Vw9Lm2Xr7Pk5Ns1"));
    }
}
