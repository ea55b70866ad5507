//! What can go wrong reading a change out of a repository.

use std::path::PathBuf;

/// Why a deploy context could not be built. Every message is one line that names the
/// thing at fault, so a CLI can print it as is and a worker can put it in a header.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The `git` program could not be started.
    #[error("git is not installed or not on PATH: install git (2.28 or newer) to read changes")]
    GitNotFound,

    /// The path is not inside a git work tree or repository.
    #[error("{} is not a git repository (or does not exist)", path.display())]
    NotARepository {
        /// The path as given.
        path: PathBuf,
    },

    /// A revision does not name a commit in the repository.
    #[error("unknown revision `{rev}`: no commit by that name in this repository (fetch it, or check the spelling)")]
    UnknownRevision {
        /// The revision as the caller typed it.
        rev: String,
    },

    /// The range changes nothing: base and head are the same commit, or their trees
    /// are identical.
    #[error("nothing to analyse between {base} and {head}: the range changes no file")]
    EmptyRange {
        /// The base as typed (or its short id when defaulted).
        base: String,
        /// The head as typed (or its short id when defaulted).
        head: String,
    },

    /// The head's parent was cut off by a shallow clone, so the default range cannot
    /// be formed (a depth-1 clone).
    #[error("the parent of {rev} is not in this shallow clone: fetch at least 2 commits deep (e.g. `git fetch --deepen=1`) or pass an explicit base")]
    ShallowHistory {
        /// The head whose parent is missing.
        rev: String,
    },

    /// A git command exited with an error.
    #[error("`{command}` failed: {stderr}")]
    CommandFailed {
        /// The command line, e.g. `git diff --raw … <base> <head>`.
        command: String,
        /// git's stderr, on one line.
        stderr: String,
    },

    /// Reading git's output failed.
    #[error("I/O error while {doing}: {source}")]
    Io {
        /// What was being done, e.g. "reading the output of git diff".
        doing: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl GitError {
    /// Whether the caller's input or environment is at fault: a path that is no
    /// repository, a revision that does not exist, an empty range, a clone too shallow,
    /// git missing. Why: such an error is reported to the user as a usage or
    /// configuration error (CLI exit 2) and never retried — a worker dead-letters it.
    /// Otherwise git failed while reading a valid range (no decision could be made;
    /// exit 3), and trying again may succeed.
    pub fn is_usage_error(&self) -> bool {
        !matches!(self, GitError::CommandFailed { .. } | GitError::Io { .. })
    }
}

/// git's stderr as one readable line: `fatal:`/`error:` kept, lines joined by "; ".
pub(crate) fn one_line(stderr: &[u8]) -> String {
    const MAX_CHARS: usize = 400;
    let text = String::from_utf8_lossy(stderr);
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if joined.is_empty() {
        return "no message from git".to_owned();
    }
    if joined.chars().count() > MAX_CHARS {
        let mut cut: String = joined.chars().take(MAX_CHARS).collect();
        cut.push('…');
        return cut;
    }
    joined
}
