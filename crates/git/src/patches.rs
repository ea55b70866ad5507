//! A deploy context from per-file patches, as a git host's API returns them (GitHub's
//! compare endpoint, GitLab's diffs), for a process that has no clone of the
//! repository: the webhook receiver.
//!
//! It runs the same machinery as [`build_context`](crate::build_context) — the same
//! per-file line redaction, lockfile reading and risk-ordered [`Packer`] — over text
//! laid out as `git diff` would print it, so a context read from an API packs, is
//! redacted and is summarized exactly like one read from a repository. Only the
//! headers differ: an API gives no blob ids or file modes, so a section has just its
//! `diff --git` line, its rename or copy lines and its `---`/`+++` lines.
//!
//! Patch text is untrusted: only hunk headers, content lines and `\ No newline` lines
//! are taken from it, so a patch cannot forge a file header and have its lines read
//! as another file's.

use gate_core::{
    classify_path, ChangedFile, CommitInfo, DeployContext, DiffLine, DiffParser, DiffVisitor,
    FileClass, FileStatus, LineKind, Redactor, SecretFinding,
};

use crate::lockfile::LockfileReader;
use crate::pack::Packer;
use crate::{ContextOptions, GitError, COMMIT_MESSAGE};

/// The omission reason the packer gives a file that had no diff text; a patch set
/// says why instead.
const NO_DIFF_TEXT: &str = "no diff text from git";
/// What a missing patch means when a git host's API leaves it out.
const NO_PATCH: &str = "no patch from the git host (binary, or too large for its diff)";

/// One changed file as a git host's API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// Path after the change (for deletions, the removed path).
    pub path: String,
    /// Path before a rename or copy.
    pub old_path: Option<String>,
    /// How the file changed.
    pub status: FileStatus,
    /// Lines added, as the host counts them.
    pub additions: u64,
    /// Lines removed, as the host counts them.
    pub deletions: u64,
    /// The host says the file is binary: it is listed, never dumped.
    pub binary: bool,
    /// The file's hunks in unified diff form (from the first `@@` on, without the
    /// `diff --git`/`---`/`+++` headers); `None` when the host gave none (binary
    /// files, or a diff past the host's size limits).
    pub patch: Option<String>,
}

/// A change as a git host's API describes it: the range, its commits and its files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchSet {
    /// Repository name, e.g. `owner/name` (`ContextOptions::repo_name` wins).
    pub repo: String,
    /// Base commit id.
    pub base: String,
    /// Head commit id.
    pub head: String,
    /// The head is a merge commit.
    pub head_is_merge: bool,
    /// The range has no base: it is the head's whole tree.
    pub root_commit: bool,
    /// Commits of the range, newest first (messages not yet redacted; cut to
    /// `max_commits` here).
    pub commits: Vec<CommitInfo>,
    /// How many commits the range holds in all (the host may list fewer).
    pub n_commits: usize,
    /// Every changed file, in the host's order.
    pub files: Vec<FilePatch>,
}

/// Builds the deploy context of a change described by a git host's API.
///
/// Same contract as [`build_context`](crate::build_context): every line is redacted
/// with a fresh line redactor per file and shown to `visitor`; commit messages are
/// redacted; secrets found are listed; lockfiles are summarized as version changes;
/// the diff is packed by risk priority into `options.budget_chars`; whatever is left
/// out is named in `omitted` — a file without a patch as "no patch from the git host".
///
/// The one error is [`GitError::EmptyRange`]: a set without files has nothing to
/// analyse.
pub fn build_context_from_patches(
    patches: &PatchSet,
    options: &ContextOptions,
    redactor: &Redactor,
    visitor: &mut dyn DiffVisitor,
) -> Result<DeployContext, GitError> {
    if patches.files.is_empty() {
        return Err(GitError::EmptyRange {
            base: patches.base.clone(),
            head: patches.head.clone(),
        });
    }
    let files: Vec<ChangedFile> = patches
        .files
        .iter()
        .map(|file| ChangedFile {
            path: file.path.clone(),
            old_path: file.old_path.clone(),
            status: file.status,
            additions: file.additions,
            deletions: file.deletions,
            binary: file.binary,
            class: classify_path(&file.path),
        })
        .collect();

    let mut secrets: Vec<SecretFinding> = Vec::new();
    let mut commits: Vec<CommitInfo> = patches
        .commits
        .iter()
        .take(options.max_commits)
        .cloned()
        .collect();
    for commit in &mut commits {
        let redacted = redactor.redact(&commit.message);
        secrets.extend(redacted.kinds.iter().map(|kind| SecretFinding {
            kind: *kind,
            file: COMMIT_MESSAGE.to_owned(),
            line: None,
        }));
        commit.message = redacted.text.into_owned();
    }

    let mut packer = Packer::new(&files, options.budget_chars);
    let mut dep_changes = Vec::new();
    let mut line_redactor = redactor.line_redactor();
    for (file_idx, (file, patch)) in files.iter().zip(&patches.files).enumerate() {
        let Some(text) = patch.patch.as_deref().filter(|_| !patch.binary) else {
            continue;
        };
        line_redactor.reset();
        visitor.file(file);
        let mut lockfile =
            (file.class == FileClass::Lockfile).then(|| LockfileReader::new(&file.path));
        for header in section_headers(file) {
            packer.offer(file_idx, &[&header]);
        }
        let mut parser = DiffParser::new();
        // Put the parser inside a file section without letting the patch name it.
        parser.feed(b"diff --git a/x b/x");
        for line in text.split('\n') {
            if line.starts_with("diff --git ") {
                continue;
            }
            match parser.feed(line.as_bytes()) {
                DiffLine::Hunk { heading, .. } => {
                    if let Some(lockfile) = &mut lockfile {
                        lockfile.hunk();
                    }
                    let heading = String::from_utf8_lossy(heading);
                    let head = &line[..line.len() - heading.len()];
                    // The host's function context is a line of the old file: redact it.
                    let heading = redactor.redact(&heading);
                    packer.offer(file_idx, &[head, &heading.text]);
                }
                DiffLine::Content {
                    kind,
                    line_no,
                    text,
                } => {
                    let text = String::from_utf8_lossy(text);
                    let redacted = line_redactor.redact_line(&text);
                    secrets.extend(redacted.kinds.iter().map(|secret_kind| SecretFinding {
                        kind: *secret_kind,
                        file: file.path.clone(),
                        line: (kind != LineKind::Removed).then_some(line_no),
                    }));
                    visitor.line(file, kind, line_no, &redacted.text);
                    if let Some(lockfile) = &mut lockfile {
                        lockfile.line(kind, &redacted.text);
                    }
                    let marker = match kind {
                        LineKind::Added => "+",
                        LineKind::Removed => "-",
                        LineKind::Context => " ",
                    };
                    packer.offer(file_idx, &[marker, &redacted.text]);
                }
                DiffLine::NoNewline => packer.offer(file_idx, &[line]),
                // Anything else in a patch is not diff text a host would send.
                DiffLine::FileStart | DiffLine::Header | DiffLine::Binary | DiffLine::Other => {}
            }
        }
        if let Some(lockfile) = lockfile {
            dep_changes.extend(lockfile.finish(&file.path));
        }
    }

    let packed = packer.finish(&files, &dep_changes);
    let mut omitted = packed.omissions;
    for omission in &mut omitted {
        if omission.reason == NO_DIFF_TEXT {
            omission.reason = NO_PATCH.to_owned();
        }
    }
    let n_omitted = omitted.len();
    omitted.truncate(options.max_listed_omissions);
    let packed_diff = reword_footer(packed.packed_diff, options.budget_chars);
    let est_tokens = packed_diff.chars().count().div_ceil(4);
    Ok(DeployContext {
        repo: options
            .repo_name
            .clone()
            .unwrap_or_else(|| patches.repo.clone()),
        base: patches.base.clone(),
        head: patches.head.clone(),
        head_is_merge: patches.head_is_merge,
        root_commit: patches.root_commit,
        commits,
        n_commits: patches.n_commits.max(patches.commits.len()),
        lines_added: files.iter().map(|file| file.additions).sum(),
        lines_removed: files.iter().map(|file| file.deletions).sum(),
        files,
        packed_diff,
        budget_chars: options.budget_chars,
        est_tokens,
        omitted,
        n_omitted,
        dep_changes,
        secrets,
    })
}

/// The packer's closing line says "without diff text", which reads as a git failure
/// here; it is reworded when the longer words still fit the budget.
fn reword_footer(mut packed_diff: String, budget: usize) -> String {
    const GIT_WORDS: &str = "without diff text)";
    const HOST_WORDS: &str = "without a patch from the git host)";
    let body_end = packed_diff.trim_end_matches('\n').len();
    let footer_start = packed_diff[..body_end].rfind('\n').map_or(0, |at| at + 1);
    let footer = &packed_diff[footer_start..];
    if !footer.starts_with("… [deploy-gate: ")
        || packed_diff.len() + HOST_WORDS.len() - GIT_WORDS.len() > budget
    {
        return packed_diff;
    }
    if let Some(at) = footer.find(GIT_WORDS) {
        let at = footer_start + at;
        packed_diff.replace_range(at..at + GIT_WORDS.len(), HOST_WORDS);
    }
    packed_diff
}

/// The header lines `git diff` would print for `file`, less what an API does not
/// give (blob ids, modes, similarity).
fn section_headers(file: &ChangedFile) -> Vec<String> {
    let new_path = file.path.as_str();
    let old_path = file.old_path.as_deref().unwrap_or(new_path);
    let (a_old, b_new) = (
        quote(&format!("a/{old_path}")),
        quote(&format!("b/{new_path}")),
    );
    let mut headers = vec![format!("diff --git {a_old} {b_new}")];
    match file.status {
        FileStatus::Renamed => {
            headers.push(format!("rename from {}", quote(old_path)));
            headers.push(format!("rename to {}", quote(new_path)));
        }
        FileStatus::Copied => {
            headers.push(format!("copy from {}", quote(old_path)));
            headers.push(format!("copy to {}", quote(new_path)));
        }
        _ => {}
    }
    // git ends a `---`/`+++` name holding a space with a tab, so it reads unambiguously.
    let tab = |name: &str| if name.contains(' ') { "\t" } else { "" };
    let old_side = match file.status {
        FileStatus::Added => "/dev/null".to_owned(),
        _ => format!("{a_old}{}", tab(&a_old)),
    };
    let new_side = match file.status {
        FileStatus::Deleted => "/dev/null".to_owned(),
        _ => format!("{b_new}{}", tab(&b_new)),
    };
    headers.push(format!("--- {old_side}"));
    headers.push(format!("+++ {new_side}"));
    headers
}

/// A path as git prints it in headers: C-quoted when it holds a quote, a backslash
/// or a control character (so it cannot break a header line), as is otherwise.
fn quote(path: &str) -> String {
    if !path
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return path.to_owned();
    }
    let mut quoted = String::with_capacity(path.len() + 2);
    quoted.push('"');
    for c in path.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\t' => quoted.push_str("\\t"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    quoted.push_str(&format!("\\{byte:03o}"));
                }
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use gate_core::{walk_packed_diff, SecretKind};

    struct NoVisitor;
    impl DiffVisitor for NoVisitor {
        fn line(&mut self, _: &ChangedFile, _: LineKind, _: u32, _: &str) {}
    }

    /// Every line seen: path, kind (`+`, `-`, ` `), number, text.
    struct Lines(Vec<(String, char, u32, String)>);
    impl DiffVisitor for Lines {
        fn line(&mut self, file: &ChangedFile, kind: LineKind, line_no: u32, text: &str) {
            let kind = match kind {
                LineKind::Added => '+',
                LineKind::Removed => '-',
                LineKind::Context => ' ',
            };
            self.0
                .push((file.path.clone(), kind, line_no, text.to_owned()));
        }
    }

    fn file(path: &str, status: FileStatus, patch: Option<&str>) -> FilePatch {
        let (additions, deletions) = patch.map_or((0, 0), |patch| {
            let lines = patch.lines();
            let adds = lines.clone().filter(|l| l.starts_with('+')).count() as u64;
            let dels = lines.filter(|l| l.starts_with('-')).count() as u64;
            (adds, dels)
        });
        FilePatch {
            path: path.to_owned(),
            old_path: None,
            status,
            additions,
            deletions,
            binary: false,
            patch: patch.map(str::to_owned),
        }
    }

    fn set(files: Vec<FilePatch>) -> PatchSet {
        PatchSet {
            repo: "acme/shop".to_owned(),
            base: "a".repeat(40),
            head: "b".repeat(40),
            commits: vec![CommitInfo {
                sha: "b".repeat(40),
                author: "Ada".to_owned(),
                message: format!(
                    "Ship it\n\nused {} to test",
                    concat!("ghp_", "R8x2Lq9ZtV4mN7pK3sW6yB1cD5fG0hJ2kL4n")
                ),
                merge: false,
            }],
            n_commits: 1,
            files,
            ..PatchSet::default()
        }
    }

    #[test]
    fn patches_are_packed_by_risk_with_git_headers_and_redacted() {
        let key = concat!("AKIA", "Q3VZ7N2PLK4TXW8R");
        let patches = set(vec![
            file("README.md", FileStatus::Modified, Some("@@ -1 +1 @@\n-old\n+new")),
            file(
                "config/prod.env",
                FileStatus::Added,
                Some(&format!("@@ -0,0 +1,2 @@\n+AWS_ACCESS_KEY_ID={key}\n+REGION=eu")),
            ),
            file(
                "db/migrations/002_drop.sql",
                FileStatus::Added,
                Some("@@ -0,0 +1 @@\n+ALTER TABLE users DROP COLUMN legacy;\n\\ No newline at end of file"),
            ),
        ]);
        let mut lines = Lines(Vec::new());
        let context = build_context_from_patches(
            &patches,
            &ContextOptions::default(),
            &Redactor::new(),
            &mut lines,
        )
        .unwrap();
        assert!(
            !context.packed_diff.contains(key),
            "{}",
            context.packed_diff
        );
        assert!(context.commits[0].message.contains("[REDACTED:"));
        assert!(context
            .packed_diff
            .starts_with("diff --git a/db/migrations/002_drop.sql b/db/migrations/002_drop.sql\n--- /dev/null\n+++ b/db/migrations/002_drop.sql\n@@ -0,0 +1 @@\n+ALTER TABLE"));
        assert!(context
            .packed_diff
            .contains("\\ No newline at end of file\n"));
        let readme = context.packed_diff.find("README.md").unwrap();
        let config = context.packed_diff.find("config/prod.env").unwrap();
        assert!(config < readme, "risk order: {}", context.packed_diff);
        assert!(context
            .secrets
            .iter()
            .any(|s| s.kind == SecretKind::AwsAccessKey
                && s.file == "config/prod.env"
                && s.line == Some(1)));
        assert!(context.secrets.iter().any(|s| s.file == COMMIT_MESSAGE));
        assert_eq!((context.lines_added, context.lines_removed), (4, 1));
        assert!(lines
            .0
            .iter()
            .any(|(path, kind, no, text)| path == "config/prod.env"
                && *kind == '+'
                && *no == 2
                && text == "REGION=eu"));

        // The packed diff re-parses into the same files and line numbers.
        let mut replayed = Lines(Vec::new());
        walk_packed_diff(&context, &mut replayed);
        let mut seen = lines.0.clone();
        seen.sort();
        replayed.0.sort();
        assert_eq!(seen, replayed.0);
    }

    #[test]
    fn a_missing_patch_and_a_lockfile_are_named_in_the_omissions() {
        let lock = "@@ -10,3 +10,3 @@\n [[package]]\n name = \"serde\"\n-version = \"1.0.195\"\n+version = \"1.0.196\"";
        let patches = set(vec![
            file("src/huge.rs", FileStatus::Modified, None),
            file("Cargo.lock", FileStatus::Modified, Some(lock)),
            file(
                "src/lib.rs",
                FileStatus::Modified,
                Some("@@ -1 +1 @@\n-a\n+b"),
            ),
        ]);
        let context = build_context_from_patches(
            &patches,
            &ContextOptions::default(),
            &Redactor::new(),
            &mut NoVisitor,
        )
        .unwrap();
        let reasons: Vec<(&str, &str)> = context
            .omitted
            .iter()
            .map(|o| (o.path.as_str(), o.reason.as_str()))
            .collect();
        assert!(reasons.contains(&("src/huge.rs", NO_PATCH)), "{reasons:?}");
        assert!(reasons.contains(&("Cargo.lock", "lockfile (summarized)")));
        assert_eq!(context.dep_changes.len(), 1);
        assert_eq!(context.dep_changes[0].package, "serde");
        assert!(context.packed_diff.contains("serde: 1.0.195 → 1.0.196"));
        assert!(
            context
                .packed_diff
                .contains("without a patch from the git host"),
            "{}",
            context.packed_diff
        );
    }

    #[test]
    fn a_patch_cannot_forge_a_file_header() {
        let forged = "@@ -1 +1,2 @@\n-a\n+b\ndiff --git a/auth/keys.rs b/auth/keys.rs\n--- a/auth/keys.rs\n+++ b/auth/keys.rs\n+c";
        let patches = set(vec![file("src/lib.rs", FileStatus::Modified, Some(forged))]);
        let context = build_context_from_patches(
            &patches,
            &ContextOptions::default(),
            &Redactor::new(),
            &mut NoVisitor,
        )
        .unwrap();
        assert!(
            !context.packed_diff.contains("auth/keys.rs"),
            "{}",
            context.packed_diff
        );
        // The hunk ends at the first line that does not fit it, as in git's own diff.
        assert!(
            context.packed_diff.contains("+b\n"),
            "{}",
            context.packed_diff
        );
        assert!(
            !context.packed_diff.contains("+c"),
            "{}",
            context.packed_diff
        );
    }

    #[test]
    fn renames_and_awkward_paths_get_git_style_headers() {
        let mut renamed = file(
            "new name.rs",
            FileStatus::Renamed,
            Some("@@ -1 +1 @@\n-a\n+b"),
        );
        renamed.old_path = Some("old\"name.rs".to_owned());
        let context = build_context_from_patches(
            &set(vec![renamed]),
            &ContextOptions::default(),
            &Redactor::new(),
            &mut NoVisitor,
        )
        .unwrap();
        assert!(context.packed_diff.starts_with(
            "diff --git \"a/old\\\"name.rs\" b/new name.rs\nrename from \"old\\\"name.rs\"\nrename to new name.rs\n--- \"a/old\\\"name.rs\"\n+++ b/new name.rs\t\n"
        ), "{}", context.packed_diff);
        let mut replayed = Lines(Vec::new());
        walk_packed_diff(&context, &mut replayed);
        assert_eq!(replayed.0.len(), 2);
        assert!(replayed.0.iter().all(|(path, ..)| path == "new name.rs"));
    }

    /// The hunks of one file of `git diff base head`, as a git host's API gives them.
    fn host_patch(
        repo: &gate_testkit::TestRepo,
        base: &str,
        head: &str,
        path: &str,
    ) -> Option<String> {
        let diff = repo.git(&[
            "diff",
            "--find-renames",
            "--unified=3",
            base,
            head,
            "--",
            path,
        ]);
        let start = diff.find("\n@@ ")?;
        Some(diff[start + 1..].to_owned())
    }

    #[test]
    fn a_change_read_from_patches_matches_the_same_change_read_from_git() {
        let key = concat!("AKIA", "Q3VZ7N2PLK4TXW8R");
        let repo = gate_testkit::TestRepo::new();
        repo.write("src/lib.rs", &"fn old() {}\n".repeat(20))
            .write(
                "Cargo.lock",
                "[[package]]\nname = \"serde\"\nversion = \"1.0.195\"\n",
            )
            .write("docs/guide.md", "# Guide\n")
            .commit("init");
        let base = repo.head();
        let mut lib = "fn old() {}\n".repeat(20);
        lib.replace_range(0..11, "fn new() {}");
        repo.write("src/lib.rs", &lib)
            .write(
                "Cargo.lock",
                "[[package]]\nname = \"serde\"\nversion = \"1.0.196\"\n",
            )
            .write(
                "config/prod.env",
                &format!("REGION=eu\nAWS_ACCESS_KEY_ID={key}\n"),
            )
            .write(
                "db/migrations/002_drop.sql",
                "ALTER TABLE users DROP COLUMN legacy;\n",
            )
            .remove("docs/guide.md")
            .commit("Drop the legacy column");
        let head = repo.head();

        let redactor = Redactor::new();
        let options = ContextOptions {
            repo_name: Some("acme/shop".to_owned()),
            ..ContextOptions::default()
        };
        let range = crate::Range {
            base: Some(base.clone()),
            head: Some(head.clone()),
        };
        let mut from_git_lines = Lines(Vec::new());
        let from_git = crate::build_context(
            repo.path(),
            &range,
            &options,
            &redactor,
            &mut from_git_lines,
        )
        .unwrap();

        let patches = PatchSet {
            repo: "acme/shop".to_owned(),
            base: base.clone(),
            head: head.clone(),
            commits: from_git.commits.clone(),
            n_commits: from_git.n_commits,
            files: from_git
                .files
                .iter()
                .map(|file| FilePatch {
                    path: file.path.clone(),
                    old_path: file.old_path.clone(),
                    status: file.status,
                    additions: file.additions,
                    deletions: file.deletions,
                    binary: file.binary,
                    patch: host_patch(&repo, &base, &head, &file.path),
                })
                .collect(),
            ..PatchSet::default()
        };
        let mut from_patches_lines = Lines(Vec::new());
        let from_patches =
            build_context_from_patches(&patches, &options, &redactor, &mut from_patches_lines)
                .unwrap();

        assert_eq!(from_patches.files, from_git.files);
        assert_eq!(from_patches.dep_changes, from_git.dep_changes);
        assert_eq!(from_patches.secrets, from_git.secrets);
        assert_eq!(from_patches.omitted, from_git.omitted);
        assert_eq!(from_patches_lines.0, from_git_lines.0);
        // The packs differ only by the header lines an API does not give.
        let without_modes = |packed: &str| -> Vec<String> {
            packed
                .lines()
                .filter(|line| {
                    !line.starts_with("new file mode ") && !line.starts_with("deleted file mode ")
                })
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            without_modes(&from_patches.packed_diff),
            without_modes(&from_git.packed_diff)
        );
        assert!(!from_patches.packed_diff.contains(key));
    }

    #[test]
    fn an_empty_patch_set_is_an_empty_range() {
        let error = build_context_from_patches(
            &set(Vec::new()),
            &ContextOptions::default(),
            &Redactor::new(),
            &mut NoVisitor,
        )
        .unwrap_err();
        assert!(matches!(error, GitError::EmptyRange { .. }));
    }
}
