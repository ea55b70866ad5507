//! Risks: what kind of danger a change carries, how bad, and where it was seen.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kinds of risk a change can carry. The set is part of the Decision contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Database schema changes: migrations, DDL.
    Schema,
    /// Authentication, authorization, sessions, crypto, security headers.
    Auth,
    /// Dependency manifests and lockfiles.
    Deps,
    /// Application configuration, env files, feature flags.
    Config,
    /// Data changes: backfills, data migrations, bulk updates.
    Data,
    /// Infrastructure: containers, Kubernetes, Terraform, CI/CD, web servers.
    Infra,
    /// Credentials found in the change.
    Secrets,
}

impl Category {
    /// Every category, in a stable order (used for reports and schemas).
    pub const ALL: [Category; 7] = [
        Category::Schema,
        Category::Auth,
        Category::Deps,
        Category::Config,
        Category::Data,
        Category::Infra,
        Category::Secrets,
    ];

    /// The lowercase name used on the wire and in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Schema => "schema",
            Category::Auth => "auth",
            Category::Deps => "deps",
            Category::Config => "config",
            Category::Data => "data",
            Category::Infra => "infra",
            Category::Secrets => "secrets",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a single risk is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing, no action needed.
    Info,
    /// Small risk; deploys automatically.
    Low,
    /// Needs a standard review (the 26–50 band).
    Medium,
    /// Needs a human before it ships (the hold band).
    High,
    /// Must not ship as is (the block band).
    Critical,
}

impl Severity {
    /// The lowest risk score a verdict carrying this severity may have, so that a
    /// severity always lands in its band under the default thresholds.
    pub fn floor_score(self) -> u8 {
        match self {
            Severity::Info => 0,
            Severity::Low => 10,
            Severity::Medium => 30,
            Severity::High => 55,
            Severity::Critical => 80,
        }
    }

    /// The lowercase name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the gate tells the orchestrator to do. Ordered from least to most strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    /// Ship it.
    Deploy,
    /// Wait for a human.
    Hold,
    /// Do not ship.
    Block,
}

impl Recommendation {
    /// The lowercase name used on the wire and in routing keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Recommendation::Deploy => "deploy",
            Recommendation::Hold => "hold",
            Recommendation::Block => "block",
        }
    }
}

impl fmt::Display for Recommendation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a risk was seen: a file and, when known, a line of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Path of the file, relative to the repository root.
    pub file: String,
    /// Line number in the new version of the file (old version for removed lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// A short, redacted excerpt of the line that triggered the finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
}

impl Evidence {
    /// Evidence for a whole file (path-based findings).
    pub fn file(path: impl Into<String>) -> Self {
        Evidence {
            file: path.into(),
            line: None,
            excerpt: None,
        }
    }

    /// Evidence for one line, with a short excerpt of it.
    pub fn line(path: impl Into<String>, line: u32, excerpt: impl Into<String>) -> Self {
        let excerpt = excerpt.into();
        Evidence {
            file: path.into(),
            line: Some(line),
            excerpt: Some(shorten(excerpt.trim(), 160)),
        }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}", self.file, line),
            None => f.write_str(&self.file),
        }
    }
}

/// One reason a change is risky.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    /// The kind of risk.
    pub category: Category,
    /// How bad it is.
    pub severity: Severity,
    /// One sentence a person can act on.
    pub detail: String,
    /// Where it was seen; never empty for rules findings.
    #[serde(default)]
    pub evidence: Vec<Evidence>,
}

/// Cuts `text` to at most `max_chars` characters on a char boundary, marking the cut.
pub(crate) fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some((idx, _)) => format!("{}…", &text[..idx]),
    }
}
