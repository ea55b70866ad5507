//! Secret redaction. STUB: interface fixed, implementation in progress.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of credential a redacted span looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// AWS access key id (`AKIA…`, `ASIA…`).
    AwsAccessKey,
    /// AWS secret access key in an assignment.
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
    /// A high-entropy value assigned to a `password|secret|token|api_key`-like name.
    GenericSecret,
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

/// Finds and replaces secrets. Build once and share: construction compiles patterns.
#[derive(Debug, Clone, Default)]
pub struct Redactor {}

impl Redactor {
    /// A redactor with the built-in patterns.
    pub fn new() -> Self {
        Redactor {}
    }

    /// Redacts a multi-line text (commit message, evidence, a whole blob).
    pub fn redact<'a>(&self, text: &'a str) -> Redacted<'a> {
        Redacted { text: Cow::Borrowed(text), kinds: Vec::new() }
    }

    /// A stateful redactor for a stream of lines of one file (private key blocks
    /// span lines).
    pub fn line_redactor(&self) -> LineRedactor<'_> {
        LineRedactor { redactor: self }
    }
}

/// Redacts a file line by line, remembering when it is inside a private key block.
#[derive(Debug)]
pub struct LineRedactor<'r> {
    redactor: &'r Redactor,
}

impl LineRedactor<'_> {
    /// Redacts one line (without its newline).
    pub fn redact_line<'a>(&mut self, line: &'a str) -> Redacted<'a> {
        self.redactor.redact(line)
    }

    /// Forgets block state; call at the start of each file.
    pub fn reset(&mut self) {}
}
