//! Running the git CLI: one place that knows the flags, the environment and how git's
//! failures map to [`GitError`].

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::error::{one_line, GitError};

/// Variables that would point git at another repository than the one asked for (they
/// are set inside git hooks). Object-directory variables are kept on purpose: a
/// pre-receive hook's quarantined objects are only reachable through them.
const REPO_OVERRIDES: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
];

/// A repository, as seen through the git CLI.
#[derive(Debug)]
pub(crate) struct Git {
    repo: PathBuf,
}

impl Git {
    /// Checks that `repo` is a repository git can read.
    pub(crate) fn open(repo: &Path) -> Result<Git, GitError> {
        let git = Git {
            repo: repo.to_owned(),
        };
        if !repo.is_dir() {
            return Err(GitError::NotARepository {
                path: repo.to_owned(),
            });
        }
        let output = git.output(["rev-parse", "--git-dir"])?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stderr.contains("not a git repository") {
                return Err(GitError::NotARepository {
                    path: repo.to_owned(),
                });
            }
            return Err(failed(&["rev-parse", "--git-dir"], &output.stderr));
        }
        Ok(git)
    }

    /// The path the repository was opened with.
    pub(crate) fn path(&self) -> &Path {
        &self.repo
    }

    /// `git -C <repo> <args>`, with settings that make git's output independent of the
    /// user's configuration where it matters for parsing.
    pub(crate) fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new("git");
        command
            .arg("-C")
            .arg(&self.repo)
            .args(["-c", "core.quotePath=false", "-c", "color.ui=never"])
            .args(args)
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .stdin(Stdio::null());
        for var in REPO_OVERRIDES {
            command.env_remove(var);
        }
        command
    }

    fn output<const N: usize>(&self, args: [&str; N]) -> Result<std::process::Output, GitError> {
        self.command(args).output().map_err(spawn_error)
    }

    /// Runs git to completion and returns its stdout; a non-zero exit is an error.
    /// For small outputs only (listings, ids): the diff itself goes through [`Git::spawn`].
    pub(crate) fn run(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        let output = self.command(args).output().map_err(spawn_error)?;
        if !output.status.success() {
            return Err(failed(args, &output.stderr));
        }
        Ok(output.stdout)
    }

    /// Like [`Git::run`] for `--verify --quiet` queries: exit status 1 with no message
    /// means "no such thing" and yields `None`.
    pub(crate) fn query(&self, args: &[&str]) -> Result<Option<Vec<u8>>, GitError> {
        let output = self.command(args).output().map_err(spawn_error)?;
        if output.status.success() {
            return Ok(Some(output.stdout));
        }
        if output.status.code() == Some(1) {
            return Ok(None);
        }
        Err(failed(args, &output.stderr))
    }

    /// Starts git with stdout and stderr piped, for output read as it is produced.
    pub(crate) fn spawn(&self, args: &[&str]) -> Result<Child, GitError> {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)
    }
}

/// A failed command as an error naming it (`git <args>`) and quoting git.
pub(crate) fn failed(args: &[&str], stderr: &[u8]) -> GitError {
    GitError::CommandFailed {
        command: format!("git {}", args.join(" ")),
        stderr: one_line(stderr),
    }
}

pub(crate) fn spawn_error(error: io::Error) -> GitError {
    if error.kind() == io::ErrorKind::NotFound {
        GitError::GitNotFound
    } else {
        GitError::Io {
            doing: "starting git",
            source: error,
        }
    }
}

/// Text output of a git query: UTF-8 (lossy), trailing newline removed.
pub(crate) fn text(stdout: &[u8]) -> String {
    String::from_utf8_lossy(stdout)
        .trim_end_matches(['\n', '\r'])
        .to_owned()
}
