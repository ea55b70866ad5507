//! The deploy context: everything the analyzers may know about one change.

use serde::{Deserialize, Serialize};

use crate::{FileClass, SecretKind};

/// How a file changed in the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// New file.
    Added,
    /// Changed in place.
    Modified,
    /// Removed.
    Deleted,
    /// Moved (possibly with changes); `old_path` holds the source.
    Renamed,
    /// Copied from `old_path`.
    Copied,
    /// File type changed (e.g. file ↔ symlink).
    TypeChanged,
}

impl FileStatus {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Added => "added",
            FileStatus::Modified => "modified",
            FileStatus::Deleted => "deleted",
            FileStatus::Renamed => "renamed",
            FileStatus::Copied => "copied",
            FileStatus::TypeChanged => "type_changed",
        }
    }
}

/// One changed file of the range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedFile {
    /// Path after the change (for deletions, the removed path).
    pub path: String,
    /// Path before a rename or copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// How the file changed.
    pub status: FileStatus,
    /// Lines added (0 for binary files).
    pub additions: u64,
    /// Lines removed (0 for binary files).
    pub deletions: u64,
    /// Git considers the file binary; its content is never dumped.
    #[serde(default)]
    pub binary: bool,
    /// What the path says the file is; drives packing priority.
    pub class: FileClass,
}

/// One commit of the range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// Full commit id.
    pub sha: String,
    /// Author name (not the e-mail, which is personal data).
    pub author: String,
    /// The whole message, redacted.
    pub message: String,
    /// More than one parent.
    #[serde(default)]
    pub merge: bool,
}

/// A dependency whose version changed, from a lockfile or manifest diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepChange {
    /// The lockfile or manifest it was read from.
    pub file: String,
    /// Package name.
    pub package: String,
    /// Version before (none when added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    /// Version after (none when removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

/// A file, or part of one, that is not in the packed diff, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Omission {
    /// The file concerned.
    pub path: String,
    /// Why it was cut, in words: "binary", "generated", "lockfile (summarized)",
    /// "over budget", "truncated after N of M chars".
    pub reason: String,
}

/// A secret found (and redacted) in the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFinding {
    /// What kind of secret it looks like.
    pub kind: SecretKind,
    /// The file it was in ("<commit message>" for commit messages).
    pub file: String,
    /// Line in the new version of the file, when it was on a diff line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

/// Everything the analyzers know about one change: the range, its commits, its files,
/// and its diff packed into a character budget by risk priority.
///
/// Invariant: every text field here has been through secret redaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployContext {
    /// Repository name (e.g. `owner/name`, or the directory name).
    pub repo: String,
    /// Base commit id of the range (the empty tree's id for a root commit).
    pub base: String,
    /// Head commit id of the range.
    pub head: String,
    /// The head is a merge commit (diffed against its first parent).
    #[serde(default)]
    pub head_is_merge: bool,
    /// The head has no parent: the range is the whole tree.
    #[serde(default)]
    pub root_commit: bool,
    /// Commits of the range, newest first, capped by configuration.
    pub commits: Vec<CommitInfo>,
    /// How many commits the range holds in all.
    pub n_commits: usize,
    /// Every changed file.
    pub files: Vec<ChangedFile>,
    /// Total lines added over all files.
    pub lines_added: u64,
    /// Total lines removed over all files.
    pub lines_removed: u64,
    /// The diff, redacted and packed by risk priority into the budget.
    pub packed_diff: String,
    /// The budget the diff was packed into, in characters.
    pub budget_chars: usize,
    /// Estimated tokens of `packed_diff` (about 4 characters a token).
    pub est_tokens: usize,
    /// What is not in the packed diff, and why. Capped; see `n_omitted`.
    #[serde(default)]
    pub omitted: Vec<Omission>,
    /// How many files are omitted or cut in all.
    #[serde(default)]
    pub n_omitted: usize,
    /// Version changes read from lockfiles and manifests.
    #[serde(default)]
    pub dep_changes: Vec<DepChange>,
    /// Secrets found and redacted anywhere in the change.
    #[serde(default)]
    pub secrets: Vec<SecretFinding>,
}

impl DeployContext {
    /// Whether some of the diff did not fit or was left out.
    pub fn is_truncated(&self) -> bool {
        self.n_omitted > 0
    }

    /// The `git revert` command that undoes this range on the deploy branch.
    pub fn revert_command(&self) -> String {
        let short = |sha: &str| sha.chars().take(12).collect::<String>();
        if self.head_is_merge {
            format!("git revert -m 1 {}", short(&self.head))
        } else if self.n_commits <= 1 || self.root_commit {
            format!("git revert {}", short(&self.head))
        } else {
            format!(
                "git revert --no-edit {}..{}",
                short(&self.base),
                short(&self.head)
            )
        }
    }
}

/// Which side of a diff a line is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Added by the change (`+`); its number is in the new file.
    Added,
    /// Removed by the change (`-`); its number is in the old file.
    Removed,
    /// Unchanged context (` `); its number is in the new file.
    Context,
}

/// Sees every line of the whole diff as it streams past, after redaction, whether or
/// not the line makes it into the packed diff. The rules analyzer is one.
pub trait DiffVisitor {
    /// A new file starts; its lines follow.
    fn file(&mut self, file: &ChangedFile) {
        let _ = file;
    }

    /// One diff line of the current file, without its `+`/`-`/` ` marker.
    fn line(&mut self, file: &ChangedFile, kind: LineKind, line_no: u32, text: &str);
}
