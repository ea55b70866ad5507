//! The corpus: realistic changes with the verdict the rules must reach, one TOML
//! file per theme under `tests/corpus/`. Each case lists changed files with their
//! diff text (unified-diff lines with `+`/`-`/` ` markers and optional `@@` hunk
//! headers, so line numbers are meaningful), optional lockfile summaries and secret
//! findings, and what is expected: the band, and the categories exactly
//! (`categories`) or as `include`/`exclude` sets.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;

use gate_core::{
    classify_path, ChangedFile, DepChange, DeployContext, DiffVisitor, FileStatus, LineKind,
    SecretFinding,
};
use gate_rules::RulesAnalyzer;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusFile {
    pub case: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// What the change is, in words (for whoever reads a failure).
    #[serde(default)]
    pub about: String,
    /// `auto`, `review`, `hold` or `block`.
    pub band: String,
    /// The exact set of categories of the verdict's risks.
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    /// Categories that must be present.
    #[serde(default)]
    pub include: Vec<String>,
    /// Categories that must be absent.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Substrings the rollback notes must contain (all of them, anywhere).
    #[serde(default)]
    pub rollback: Vec<String>,
    pub files: Vec<CaseFile>,
    #[serde(default)]
    pub dep_changes: Vec<DepChange>,
    #[serde(default)]
    pub secrets: Vec<SecretFinding>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    pub path: String,
    #[serde(default = "modified")]
    pub status: FileStatus,
    #[serde(default)]
    pub old_path: Option<String>,
    #[serde(default)]
    pub binary: bool,
    #[serde(default)]
    pub diff: String,
}

fn modified() -> FileStatus {
    FileStatus::Modified
}

/// One parsed diff line.
pub struct Line {
    pub kind: LineKind,
    pub line_no: u32,
    pub text: String,
}

/// Parses the unified-diff-ish text of a case file. Without a hunk header, numbering
/// starts at 1 on both sides.
pub fn parse_diff(diff: &str) -> Vec<Line> {
    let (mut old_no, mut new_no) = (1u32, 1u32);
    let mut lines = Vec::new();
    for raw in diff.lines() {
        if let Some(header) = raw.strip_prefix("@@") {
            let mut parts = header.split_whitespace();
            let old = parts
                .next()
                .and_then(|p| p.strip_prefix('-'))
                .unwrap_or("1");
            let new = parts
                .next()
                .and_then(|p| p.strip_prefix('+'))
                .unwrap_or("1");
            old_no = old
                .split(',')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1)
                .max(1);
            new_no = new
                .split(',')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1)
                .max(1);
            continue;
        }
        if raw.starts_with('\\') {
            continue; // "\ No newline at end of file"
        }
        let (kind, text) = match raw.chars().next() {
            Some('+') => (LineKind::Added, &raw[1..]),
            Some('-') => (LineKind::Removed, &raw[1..]),
            Some(' ') => (LineKind::Context, &raw[1..]),
            None => (LineKind::Context, ""),
            Some(_) => panic!("diff line without a marker: {raw:?}"),
        };
        let line_no = match kind {
            LineKind::Removed => {
                old_no += 1;
                old_no - 1
            }
            LineKind::Added => {
                new_no += 1;
                new_no - 1
            }
            LineKind::Context => {
                old_no += 1;
                new_no += 1;
                new_no - 1
            }
        };
        lines.push(Line {
            kind,
            line_no,
            text: text.to_string(),
        });
    }
    lines
}

/// The changed files and their lines, as the git crate would produce them.
pub fn build(case: &Case) -> (DeployContext, Vec<(ChangedFile, Vec<Line>)>) {
    let mut files = Vec::new();
    for file in &case.files {
        let lines = parse_diff(&file.diff);
        let additions = lines.iter().filter(|l| l.kind == LineKind::Added).count() as u64;
        let deletions = lines.iter().filter(|l| l.kind == LineKind::Removed).count() as u64;
        let changed = ChangedFile {
            path: file.path.clone(),
            old_path: file.old_path.clone(),
            status: file.status,
            additions,
            deletions,
            binary: file.binary,
            class: classify_path(&file.path),
        };
        files.push((changed, lines));
    }
    let context = DeployContext {
        repo: format!("corpus/{}", case.name),
        base: "0123456789abcdef0123456789abcdef01234567".to_string(),
        head: "89abcdef0123456789abcdef0123456789abcdef".to_string(),
        head_is_merge: false,
        root_commit: false,
        commits: Vec::new(),
        n_commits: 1,
        lines_added: files.iter().map(|(f, _)| f.additions).sum(),
        lines_removed: files.iter().map(|(f, _)| f.deletions).sum(),
        files: files.iter().map(|(f, _)| f.clone()).collect(),
        packed_diff: String::new(),
        budget_chars: 0,
        est_tokens: 0,
        omitted: Vec::new(),
        n_omitted: 0,
        dep_changes: case.dep_changes.clone(),
        secrets: case.secrets.clone(),
    };
    (context, files)
}

/// Streams a case through a fresh analyzer, the way the git crate does.
pub fn analyze(case: &Case, bands: gate_core::Bands) -> (DeployContext, gate_core::Verdict) {
    let (context, files) = build(case);
    let mut analyzer = RulesAnalyzer::new(bands);
    for (file, lines) in &files {
        analyzer.file(file);
        for line in lines {
            analyzer.line(file, line.kind, line.line_no, &line.text);
        }
    }
    let verdict = analyzer.finish(&context);
    (context, verdict)
}

/// Every case of every corpus file, in file then case order.
pub fn load_corpus() -> Vec<(String, Case)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut cases = Vec::new();
    let mut names = BTreeSet::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let file: CorpusFile =
            toml::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("?")
            .to_string();
        for case in file.case {
            assert!(
                names.insert(case.name.clone()),
                "duplicate case name {}",
                case.name
            );
            cases.push((stem.clone(), case));
        }
    }
    cases
}
