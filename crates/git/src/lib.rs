//! Reads a change out of a git repository as a [`DeployContext`]: the range, its
//! commits, every changed file, and the diff — redacted, shown line by line to a
//! [`DiffVisitor`], and packed into a character budget by risk priority.
//!
//! How: the git CLI (`std::process::Command`), in three kinds of call:
//! - small queries (`rev-parse`, `rev-list`, `log`) to resolve the range and commits;
//! - one `git diff --raw --numstat -z` listing, so every file's status, size and class
//!   is known before any diff text is read and packing is planned up front;
//! - one `git diff` whose output is read as a stream, line by line, and never held
//!   whole: memory is bounded by the packing budget, not by the size of the change.
//!
//! Architecture invariant: this crate knows nothing of queues or models; it depends on
//! `gate-core` only for the domain types, the diff parser and redaction.

mod cli;
mod error;
mod listing;
mod lockfile;
mod pack;
mod patches;
mod range;
mod stream;

use std::path::Path;

use gate_core::{DeployContext, DiffVisitor, Redactor, SecretFinding};

pub use error::GitError;
pub use patches::{build_context_from_patches, FilePatch, PatchSet};

/// Which change to read. Both ends take any revision git understands (`main~3`,
/// a tag, an id); `None` picks the default: the head is `HEAD`, the base is the head's
/// first parent — so a merge commit is read as what it brought into the branch, and
/// a root commit as its whole tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    /// Base revision; `None` for the head's first parent.
    pub base: Option<String>,
    /// Head revision; `None` for `HEAD`.
    pub head: Option<String>,
}

/// Knobs of [`build_context`]; the defaults suit one model call per change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextOptions {
    /// Size of the packed diff, in characters (about 4 characters a token).
    pub budget_chars: usize,
    /// How many commit messages to include (newest first); all are counted.
    pub max_commits: usize,
    /// How many omissions to list by name; all are counted.
    pub max_listed_omissions: usize,
    /// Repository name to report; `None` for the work tree's directory name.
    pub repo_name: Option<String>,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions {
            budget_chars: 12_000,
            max_commits: 10,
            max_listed_omissions: 200,
            repo_name: None,
        }
    }
}

/// The file name recorded for secrets found in commit messages.
const COMMIT_MESSAGE: &str = "<commit message>";

/// Builds the deploy context of `range` in the repository at `repo`.
///
/// Every line of the diff — packed or not — is redacted with a fresh line redactor per
/// file, recorded in `secrets` when something was redacted, and passed to `visitor`
/// (added and context lines with their new-file numbers, removed lines with their
/// old-file numbers). The packed diff is standard unified-diff text in risk order;
/// whatever is not in it is named in `omitted` (see `gate_core::DeployContext`).
///
/// `est_tokens` is the packed diff's length in characters divided by 4, rounded up:
/// the usual rule of thumb for English and code, enough to size a model request.
///
/// Errors name what is wrong in one line: a path that is no repository, an unknown
/// revision, a range with nothing in it, a shallow clone too shallow for the default
/// range, git missing or failing.
pub fn build_context(
    repo: &Path,
    range: &Range,
    options: &ContextOptions,
    redactor: &Redactor,
    visitor: &mut dyn DiffVisitor,
) -> Result<DeployContext, GitError> {
    let git = cli::Git::open(repo)?;
    let resolved = range::resolve(&git, range)?;
    let files = listing::list_files(&git, &resolved.base, &resolved.head)?;
    if files.is_empty() {
        return Err(GitError::EmptyRange {
            base: resolved.base_label,
            head: resolved.head_label,
        });
    }
    let (mut commits, n_commits) = range::commits(&git, &resolved, options.max_commits)?;
    let mut secrets: Vec<SecretFinding> = Vec::new();
    for commit in &mut commits {
        let redacted = redactor.redact(&commit.message);
        secrets.extend(redacted.kinds.iter().map(|kind| SecretFinding {
            kind: *kind,
            file: COMMIT_MESSAGE.to_owned(),
            line: None,
        }));
        commit.message = redacted.text.into_owned();
    }

    let mut packer = pack::Packer::new(&files, options.budget_chars);
    let findings = stream::stream_diff(
        &git,
        &resolved.base,
        &resolved.head,
        &files,
        &mut packer,
        redactor,
        visitor,
    )?;
    secrets.extend(findings.secrets);
    let packed = packer.finish(&files, &findings.dep_changes);

    let n_omitted = packed.omissions.len();
    let mut omitted = packed.omissions;
    omitted.truncate(options.max_listed_omissions);
    let est_tokens = packed.packed_diff.chars().count().div_ceil(4);
    Ok(DeployContext {
        repo: options
            .repo_name
            .clone()
            .unwrap_or_else(|| range::repo_name(&git)),
        base: resolved.base,
        head: resolved.head,
        head_is_merge: resolved.head_is_merge,
        root_commit: resolved.root_commit,
        commits,
        n_commits,
        lines_added: files.iter().map(|file| file.additions).sum(),
        lines_removed: files.iter().map(|file| file.deletions).sum(),
        files,
        packed_diff: packed.packed_diff,
        budget_chars: options.budget_chars,
        est_tokens,
        omitted,
        n_omitted,
        dep_changes: findings.dep_changes,
        secrets,
    })
}
