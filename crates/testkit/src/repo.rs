//! `TestRepo`: a throw-away git repository with a small, chainable builder API.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

/// Environment variables that would point git at another repository (set when tests
/// run inside a git hook) and are removed from every command.
const INHERITED_GIT_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
];

/// First commit date (2024-01-01T00:00:00Z); each commit is one minute later.
const EPOCH: u64 = 1_704_067_200;

/// A git repository in a temporary directory, deleted on drop.
///
/// Why: tests of anything that reads a change need real commits — merges, renames,
/// shallow clones — and building them with the git CLI keeps tests honest about what
/// git really prints.
///
/// Layout: `<tmp>/repo` is the work tree ([`TestRepo::path`]); `<tmp>/home` is the
/// `HOME` of the git commands run here, so no personal config leaks in.
#[derive(Debug)]
pub struct TestRepo {
    dir: TempDir,
    work_tree: PathBuf,
    n_commits: Cell<u64>,
}

impl TestRepo {
    /// An empty repository on branch `main`, with a local author and unsigned commits.
    pub fn new() -> TestRepo {
        let repo = TestRepo::empty_dir();
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo.configure();
        repo
    }

    /// A repository whose last commit only documents the project: a shop crate,
    /// then a README section on running it. The change every policy finds trivial.
    pub fn with_docs_only_change() -> TestRepo {
        let repo = TestRepo::new();
        repo.write("README.md", "# Shop\n\nSells things.\n")
            .write("src/lib.rs", "pub fn price() -> u32 { 1 }\n");
        repo.commit("Initial commit");
        repo.write(
            "README.md",
            "# Shop\n\nSells things.\n\n## Running\n\n`cargo run` starts the shop.\n",
        );
        repo.commit("Document how to run the shop");
        repo
    }

    fn empty_dir() -> TestRepo {
        let dir = tempfile::Builder::new()
            .prefix("gate-testkit-")
            .tempdir()
            .unwrap_or_else(|error| {
                panic!("testkit: cannot create a temporary directory: {error}")
            });
        for sub in ["repo", "home"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap_or_else(|error| {
                panic!(
                    "testkit: cannot create {sub} in {}: {error}",
                    dir.path().display()
                )
            });
        }
        let work_tree = dir.path().join("repo");
        TestRepo {
            dir,
            work_tree,
            n_commits: Cell::new(0),
        }
    }

    fn configure(&self) {
        for (key, value) in [
            ("user.name", "Test Author"),
            ("user.email", "author@example.invalid"),
            ("commit.gpgsign", "false"),
            ("tag.gpgsign", "false"),
            ("core.autocrlf", "false"),
            ("init.defaultBranch", "main"),
        ] {
            self.git(&["config", "--local", key, value]);
        }
    }

    /// The work tree: pass this to the code under test.
    pub fn path(&self) -> &Path {
        &self.work_tree
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    /// Runs `git <args>` in the work tree with the isolated environment and returns its
    /// stdout, trimmed of the final newline. Panics (with git's stderr) if git fails.
    pub fn git(&self, args: &[&str]) -> String {
        let output = self
            .command(args)
            .output()
            .unwrap_or_else(|error| panic!("testkit: cannot run git {args:?}: {error}"));
        if !output.status.success() {
            panic!(
                "testkit: `git {}` failed ({}):\n{}{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if stdout.ends_with('\n') {
            stdout.pop();
        }
        stdout
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("git");
        command.current_dir(self.path()).args(args);
        for var in INHERITED_GIT_VARS {
            command.env_remove(var);
        }
        let date = format!("@{} +0000", EPOCH + 60 * self.n_commits.get());
        command
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        command
    }

    fn full_path(&self, path: &str) -> PathBuf {
        let full = self.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|error| {
                panic!("testkit: cannot create {}: {error}", parent.display())
            });
        }
        full
    }

    /// Writes a text file (creating directories), replacing any previous content.
    pub fn write(&self, path: &str, text: &str) -> &Self {
        self.write_bytes(path, text.as_bytes())
    }

    /// Writes a file's raw bytes: binary files, invalid UTF-8, CRLF endings.
    pub fn write_bytes(&self, path: &str, bytes: &[u8]) -> &Self {
        let full = self.full_path(path);
        std::fs::write(&full, bytes)
            .unwrap_or_else(|error| panic!("testkit: cannot write {}: {error}", full.display()));
        self
    }

    /// Writes `n_files` files at once, `file(i)` giving each one's path and content.
    /// Why: the 5,000-file cases must build in seconds; the next [`TestRepo::commit`]
    /// stages them all with a single `git add -A`.
    pub fn write_many(
        &self,
        n_files: usize,
        mut file: impl FnMut(usize) -> (String, String),
    ) -> &Self {
        for file_idx in 0..n_files {
            let (path, content) = file(file_idx);
            self.write(&path, &content);
        }
        self
    }

    /// Deletes a file from the work tree (staged by the next commit).
    pub fn remove(&self, path: &str) -> &Self {
        let full = self.path().join(path);
        std::fs::remove_file(&full)
            .unwrap_or_else(|error| panic!("testkit: cannot remove {}: {error}", full.display()));
        self
    }

    /// Moves a file; with unchanged or similar content git reports a rename.
    pub fn rename(&self, from: &str, to: &str) -> &Self {
        let source = self.path().join(from);
        let target = self.full_path(to);
        std::fs::rename(&source, &target).unwrap_or_else(|error| {
            panic!(
                "testkit: cannot rename {} to {}: {error}",
                source.display(),
                target.display()
            )
        });
        self
    }

    /// Replaces a path by a symbolic link to `target` (a type change for git).
    #[cfg(unix)]
    pub fn symlink(&self, path: &str, target: &str) -> &Self {
        let full = self.full_path(path);
        if full.symlink_metadata().is_ok() {
            std::fs::remove_file(&full).unwrap_or_else(|error| {
                panic!("testkit: cannot remove {}: {error}", full.display())
            });
        }
        std::os::unix::fs::symlink(target, &full).unwrap_or_else(|error| {
            panic!(
                "testkit: cannot link {} to {target}: {error}",
                full.display()
            )
        });
        self
    }

    /// Stages everything (`git add -A`) and commits it; returns the new commit id.
    /// Panics when there is nothing to commit: use [`TestRepo::commit_empty`] for that.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "--no-verify", "-m", message]);
        self.next_commit()
    }

    /// Commits with no change at all (an empty range for the code under test).
    pub fn commit_empty(&self, message: &str) -> String {
        self.git(&[
            "commit",
            "--quiet",
            "--no-verify",
            "--allow-empty",
            "-m",
            message,
        ]);
        self.next_commit()
    }

    fn next_commit(&self) -> String {
        self.n_commits.set(self.n_commits.get() + 1);
        self.head()
    }

    /// The commit id of `HEAD`.
    pub fn head(&self) -> String {
        self.rev_parse("HEAD")
    }

    /// The full commit id a revision names.
    pub fn rev_parse(&self, rev: &str) -> String {
        self.git(&["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
    }

    /// Creates a branch at `HEAD` and switches to it (`git checkout -b`), so the
    /// next commits land on it; [`TestRepo::checkout`] goes back.
    pub fn branch(&self, name: &str) -> &Self {
        self.git(&["checkout", "--quiet", "-b", name]);
        self
    }

    /// Switches the work tree to a branch or commit.
    pub fn checkout(&self, name: &str) -> &Self {
        self.git(&["checkout", "--quiet", name]);
        self
    }

    /// Merges `branch` into the current branch with a merge commit even when a
    /// fast-forward would do, as deploy branches usually are; returns the merge's id.
    /// Panics when the branch is already merged (git would create no commit).
    pub fn merge_no_ff(&self, branch: &str, message: &str) -> String {
        let before = self.head();
        self.git(&[
            "merge",
            "--quiet",
            "--no-ff",
            "--no-verify",
            "-m",
            message,
            branch,
        ]);
        let merge = self.next_commit();
        assert_ne!(
            merge, before,
            "testkit: merging {branch} created no commit: it is already merged"
        );
        merge
    }

    /// A `git clone --depth <depth>` of this repository (through `file://`, so the
    /// depth is honoured), configured like a new `TestRepo`.
    pub fn shallow_clone(&self, depth: u32) -> TestRepo {
        let clone = TestRepo::empty_dir();
        let source = format!("file://{}", self.path().display());
        let target = clone.path().to_owned();
        let target_arg = target.to_string_lossy().into_owned();
        let output = clone
            .command(&[
                "clone",
                "--quiet",
                "--depth",
                &depth.to_string(),
                &source,
                &target_arg,
            ])
            .current_dir(clone.root())
            .output()
            .unwrap_or_else(|error| panic!("testkit: cannot run git clone: {error}"));
        if !output.status.success() {
            panic!(
                "testkit: `git clone --depth {depth} {source}` failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        clone.configure();
        clone.n_commits.set(self.n_commits.get());
        clone
    }
}

impl Default for TestRepo {
    fn default() -> Self {
        TestRepo::new()
    }
}
