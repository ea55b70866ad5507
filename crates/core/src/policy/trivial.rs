//! When a change is trivial enough that asking a model is money spent for nothing:
//! every changed file is documentation, a test, an operator-declared `skip_models`
//! path, or code whose every changed line is a comment.
//!
//! Conservative by construction: a file the checks cannot read in full (the diff was
//! cut), a rename, a mode change, a binary, a comment that may be a directive
//! (`//go:build`, `# frozen_string_literal:`, `# -*- coding`) or a language this
//! module does not know makes the change non-trivial, and the models are asked.

use std::collections::BTreeMap;
use std::fmt;

use crate::{
    classify_path, ChangedFile, DeployContext, DiffVisitor, FileClass, FileStatus, LineKind,
};

/// Why a change is trivial, as said in the decision ("models skipped: docs-only
/// change").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SkipReason {
    docs: bool,
    tests: bool,
    comments: bool,
    path_rules: bool,
}

impl SkipReason {
    /// The consensus note of a decision whose models were skipped.
    pub fn note(&self) -> String {
        format!("models skipped: {self} (the rules analyzer is certain it is trivial; no model was asked, nothing was spent)")
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = [
            (self.docs, "docs"),
            (self.tests, "tests"),
            (self.comments, "comments"),
            (self.path_rules, "skip_models path rules"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        match kinds.as_slice() {
            ["docs"] => f.write_str("docs-only change"),
            ["tests"] => f.write_str("tests-only change"),
            ["comments"] => f.write_str("comment-only change"),
            ["skip_models path rules"] => {
                f.write_str("every changed file matches a skip_models path rule")
            }
            _ => write!(f, "trivial change ({} only)", kinds.join(", ")),
        }
    }
}

/// What made one file trivial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileKind {
    Docs,
    Tests,
    Comments,
    PathRule,
}

/// Adds one file's kind to the reason.
pub(super) fn record(reason: &mut SkipReason, kind: FileKind) {
    match kind {
        FileKind::Docs => reason.docs = true,
        FileKind::Tests => reason.tests = true,
        FileKind::Comments => reason.comments = true,
        FileKind::PathRule => reason.path_rules = true,
    }
}

/// Docs or tests by the path classes of both the new and the old path.
pub(super) fn class_kind(file: &ChangedFile) -> Option<FileKind> {
    let old_class = file.old_path.as_deref().map(classify_path);
    let same = |class: FileClass| old_class.is_none_or(|old| old == class);
    match file.class {
        FileClass::Docs if same(FileClass::Docs) => Some(FileKind::Docs),
        FileClass::Test if same(FileClass::Test) => Some(FileKind::Tests),
        _ => None,
    }
}

/// The paths of the context's code files whose every changed line is a comment or
/// blank, read from the packed diff. Empty unless the whole diff was packed.
pub(super) fn comment_only_files(context: &DeployContext) -> Vec<String> {
    if context.n_omitted > 0 || !context.omitted.is_empty() {
        return Vec::new();
    }
    let mut seen = CommentScan::default();
    crate::walk_packed_diff(context, &mut seen);
    context
        .files
        .iter()
        .filter(|file| {
            file.status == FileStatus::Modified
                && file.old_path.is_none()
                && !file.binary
                && file.class == FileClass::Code
                && file.additions + file.deletions > 0
                && seen.files.get(&file.path).is_some_and(|scan| {
                    scan.all_comments && scan.n_changed == file.additions + file.deletions
                })
        })
        .map(|file| file.path.clone())
        .collect()
}

#[derive(Debug)]
struct FileScan {
    n_changed: u64,
    all_comments: bool,
}

#[derive(Debug, Default)]
struct CommentScan {
    files: BTreeMap<String, FileScan>,
}

impl DiffVisitor for CommentScan {
    fn line(&mut self, file: &ChangedFile, kind: LineKind, _line_no: u32, text: &str) {
        if kind == LineKind::Context {
            return;
        }
        let scan = self.files.entry(file.path.clone()).or_insert(FileScan {
            n_changed: 0,
            all_comments: true,
        });
        scan.n_changed += 1;
        if scan.all_comments && !is_comment_or_blank(&file.path, text) {
            scan.all_comments = false;
        }
    }
}

/// The comment syntaxes of a language, by file extension.
#[derive(Debug, Clone, Copy)]
struct Syntax {
    slashes: bool,
    hash: bool,
    dashes: bool,
}

fn syntax(path: &str) -> Option<Syntax> {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e)?;
    let (slashes, hash, dashes) = match ext {
        "rs" | "go" | "js" | "jsx" | "mjs" | "cjs" | "ts" | "tsx" | "mts" | "cts" | "java"
        | "kt" | "kts" | "scala" | "swift" | "c" | "h" | "cc" | "cpp" | "cxx" | "hpp" | "hh"
        | "cs" | "fs" | "dart" | "groovy" | "zig" | "sol" | "proto" => (true, false, false),
        "php" => (true, true, false),
        "py" | "pyi" | "rb" | "sh" | "bash" | "zsh" | "pl" | "pm" | "r" | "ex" | "exs" | "cr"
        | "nim" | "jl" | "ps1" | "coffee" => (false, true, false),
        "lua" | "hs" => (false, false, true),
        _ => return None,
    };
    Some(Syntax {
        slashes,
        hash,
        dashes,
    })
}

/// Whether a changed line of `path` is blank or a plain comment (not a directive
/// that changes how the file is built or read).
fn is_comment_or_blank(path: &str, text: &str) -> bool {
    let line = text.trim();
    if line.is_empty() {
        return true;
    }
    let Some(syntax) = syntax(path) else {
        return false;
    };
    if syntax.slashes {
        if let Some(rest) = line.strip_prefix("//") {
            const DIRECTIVES: &[&str] = &[
                "go:",
                "+build",
                "line ",
                "export ",
                "extern ",
                "/ <reference",
                "/<reference",
                "# sourcemappingurl",
                "#sourcemappingurl",
                "@ts-",
            ];
            let lower = rest.to_ascii_lowercase();
            let trimmed = lower.trim_start();
            if DIRECTIVES
                .iter()
                .any(|d| lower.starts_with(d) || trimmed.starts_with(d))
            {
                return false;
            }
            return true;
        }
        if line.starts_with("/*") && line.ends_with("*/") && !line[2..].contains("*/*") {
            return true;
        }
    }
    if syntax.hash && line.starts_with('#') && !line.starts_with("#!") && !line.starts_with("#[") {
        let lower = line.trim_start_matches('#').trim().to_ascii_lowercase();
        const MAGIC: &[&str] = &[
            "-*-",
            "coding",
            "encoding",
            "frozen_string_literal",
            "typed:",
            "type:",
            "pyright:",
            "mypy:",
            "pragma",
            "shareable_constant_value",
            "warn_indent",
        ];
        return !MAGIC.iter().any(|m| lower.starts_with(m)) && !lower.contains("-*-");
    }
    if syntax.dashes && line.starts_with("--") {
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_comments_are_comments_and_directives_are_not() {
        assert!(is_comment_or_blank("src/a.rs", "   // explain why"));
        assert!(is_comment_or_blank("src/a.rs", "/// docs"));
        assert!(is_comment_or_blank("src/a.ts", "/* one line */"));
        assert!(is_comment_or_blank("app/x.py", "# a note"));
        assert!(is_comment_or_blank("app/x.py", "   "));
        assert!(!is_comment_or_blank("src/a.rs", "let x = 1; // trailing"));
        assert!(!is_comment_or_blank("main.go", "//go:build linux"));
        assert!(!is_comment_or_blank("main.go", "// +build linux"));
        assert!(!is_comment_or_blank("src/a.ts", "// @ts-ignore"));
        assert!(!is_comment_or_blank(
            "app/x.py",
            "# -*- coding: latin-1 -*-"
        ));
        assert!(!is_comment_or_blank(
            "app/x.rb",
            "# frozen_string_literal: true"
        ));
        assert!(!is_comment_or_blank("run.sh", "#!/bin/bash"));
        assert!(!is_comment_or_blank("src/a.php", "#[Route('/admin')]"));
        assert!(!is_comment_or_blank("src/a.c", "#define X 1"));
        assert!(!is_comment_or_blank("src/a.unknown", "// hi"));
    }

    #[test]
    fn the_reason_names_what_the_change_is() {
        let mut reason = SkipReason::default();
        record(&mut reason, FileKind::Docs);
        assert_eq!(reason.to_string(), "docs-only change");
        assert!(reason
            .note()
            .starts_with("models skipped: docs-only change"));
        record(&mut reason, FileKind::Tests);
        assert_eq!(reason.to_string(), "trivial change (docs, tests only)");
    }
}
