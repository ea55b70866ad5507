//! Turning what the caller typed into a base and a head commit.

use gate_core::CommitInfo;

use crate::cli::{text, Git};
use crate::error::GitError;
use crate::Range;

/// A range resolved to ids.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// Base commit id, or the empty tree's id for a root commit.
    pub(crate) base: String,
    pub(crate) head: String,
    pub(crate) head_is_merge: bool,
    pub(crate) root_commit: bool,
    /// How to name base and head in messages: as typed, else a short id.
    pub(crate) base_label: String,
    pub(crate) head_label: String,
}

/// Resolves a range: `head` defaults to `HEAD`; `base` to the head's first parent, or
/// the empty tree when the head has no parent.
pub(crate) fn resolve(git: &Git, range: &Range) -> Result<Resolved, GitError> {
    let head_rev = range.head.as_deref().unwrap_or("HEAD");
    let head = resolve_commit(git, head_rev)?;
    let parents = parents(git, &head)?;
    let head_label = range
        .head
        .clone()
        .unwrap_or_else(|| format!("HEAD ({})", short(&head)));
    let (base, root_commit, base_label) = match range.base.as_deref() {
        Some(base_rev) => (resolve_commit(git, base_rev)?, false, base_rev.to_owned()),
        None => match parents.first() {
            Some(first_parent) => (
                first_parent.clone(),
                false,
                format!("{head_rev}^1 ({})", short(first_parent)),
            ),
            None if is_shallow_boundary(git, &head)? => {
                return Err(GitError::ShallowHistory {
                    rev: head_rev.to_owned(),
                });
            }
            None => (empty_tree(git)?, true, "the empty tree".to_owned()),
        },
    };
    let head_is_merge = parents.len() > 1 && parents.first() == Some(&base);
    if base == head {
        return Err(GitError::EmptyRange {
            base: base_label,
            head: head_label,
        });
    }
    Ok(Resolved {
        base,
        head,
        head_is_merge,
        root_commit,
        base_label,
        head_label,
    })
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// `git rev-parse --verify --quiet <rev>^{commit}`: the commit a revision names.
fn resolve_commit(git: &Git, rev: &str) -> Result<String, GitError> {
    let unknown = || GitError::UnknownRevision {
        rev: rev.to_owned(),
    };
    // A leading dash would be read as an option; no revision starts with one.
    if rev.is_empty() || rev.starts_with('-') || rev.contains('\0') {
        return Err(unknown());
    }
    let spec = format!("{rev}^{{commit}}");
    let id = git
        .query(&["rev-parse", "--verify", "--quiet", &spec])?
        .map(|out| text(&out))
        .unwrap_or_default();
    if id.is_empty() {
        return Err(unknown());
    }
    Ok(id)
}

/// The commit's parents as git sees them (none at a root or a shallow boundary).
fn parents(git: &Git, commit: &str) -> Result<Vec<String>, GitError> {
    let line = text(&git.run(&["rev-list", "--parents", "--max-count=1", commit, "--"])?);
    Ok(line.split_whitespace().skip(1).map(str::to_owned).collect())
}

/// Whether git shows `commit` without parents only because a shallow clone cut them.
fn is_shallow_boundary(git: &Git, commit: &str) -> Result<bool, GitError> {
    if text(&git.run(&["rev-parse", "--is-shallow-repository"])?) != "true" {
        return Ok(false);
    }
    let shallow_file = text(&git.run(&["rev-parse", "--git-path", "shallow"])?);
    let shallow_file = git.path().join(shallow_file);
    let listed = std::fs::read_to_string(&shallow_file).map_err(|source| GitError::Io {
        doing: "reading the shallow clone's boundary list",
        source,
    })?;
    Ok(listed.lines().any(|line| line.trim() == commit))
}

/// The empty tree's id in this repository's hash (SHA-1 or SHA-256).
fn empty_tree(git: &Git) -> Result<String, GitError> {
    Ok(text(&git.run(&["hash-object", "-t", "tree", "--stdin"])?))
}

/// Commits of the range, newest first, at most `max_commits`, with the total count.
/// A root commit's range is the commit itself. In a shallow clone the walk stops at
/// the boundary, so a merged branch's older commits may be missing from the count.
pub(crate) fn commits(
    git: &Git,
    range: &Resolved,
    max_commits: usize,
) -> Result<(Vec<CommitInfo>, usize), GitError> {
    let spec = if range.root_commit {
        range.head.clone()
    } else {
        format!("{}..{}", range.base, range.head)
    };
    let n_commits = text(&git.run(&["rev-list", "--count", &spec, "--"])?)
        .parse::<usize>()
        .unwrap_or(0);
    if max_commits == 0 || n_commits == 0 {
        return Ok((Vec::new(), n_commits));
    }
    let max = format!("--max-count={max_commits}");
    let out = git.run(&[
        "log",
        "-z",
        "--no-show-signature",
        "--no-color",
        "--encoding=UTF-8",
        "--format=%H%x1f%P%x1f%an%x1f%B",
        &max,
        &spec,
        "--",
    ])?;
    let mut commits = Vec::new();
    for record in out
        .split(|byte| *byte == 0)
        .filter(|record| !record.is_empty())
    {
        let record = String::from_utf8_lossy(record);
        let mut fields = record.splitn(4, '\u{1f}');
        let (Some(sha), Some(parents), Some(author), Some(message)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        commits.push(CommitInfo {
            sha: sha.trim().to_owned(),
            author: author.to_owned(),
            message: message.trim_end().to_owned(),
            merge: parents.split_whitespace().count() > 1,
        });
    }
    Ok((commits, n_commits))
}

/// The repository's name: its top-level directory's name.
pub(crate) fn repo_name(git: &Git) -> String {
    let top = git
        .run(&["rev-parse", "--show-toplevel"])
        .map(|out| text(&out))
        .unwrap_or_default();
    let path = if top.is_empty() {
        std::fs::canonicalize(git.path()).unwrap_or_else(|_| git.path().to_owned())
    } else {
        top.into()
    };
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.strip_suffix(".git").map(str::to_owned).unwrap_or(name)
}
