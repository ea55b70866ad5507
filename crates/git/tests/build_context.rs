//! `build_context` against real repositories built with the testkit.

use gate_core::{
    walk_packed_diff, ChangedFile, DeployContext, DiffVisitor, FileClass, FileStatus, LineKind,
    Redactor, SecretKind,
};
use gate_git::{build_context, ContextOptions, GitError, Range};
use gate_testkit::TestRepo;

/// A fake AWS key id, split in the source so this file carries no key for scanners.
const FAKE_AWS_KEY: &str = concat!("AKIA", "Q3VZ7N2PLK4TXW8R");

const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// One visited line: file, kind, line number, text.
type Seen = (String, LineKind, u32, String);

/// Records everything a visitor is shown.
#[derive(Debug, Default, PartialEq)]
struct Recorder {
    files: Vec<String>,
    lines: Vec<Seen>,
}

impl DiffVisitor for Recorder {
    fn file(&mut self, file: &ChangedFile) {
        self.files.push(file.path.clone());
    }

    fn line(&mut self, file: &ChangedFile, kind: LineKind, line_no: u32, text: &str) {
        self.lines
            .push((file.path.clone(), kind, line_no, text.to_owned()));
    }
}

impl Recorder {
    /// The same records grouped by file (packed order is risk order, not git's order).
    fn by_file(&self) -> (Vec<String>, Vec<Seen>) {
        let mut files = self.files.clone();
        files.sort();
        let mut lines = self.lines.clone();
        lines.sort_by(|a, b| a.0.cmp(&b.0)); // stable: line order within a file is kept
        (files, lines)
    }

    fn lines_of(&self, path: &str) -> Vec<(LineKind, u32, String)> {
        self.lines
            .iter()
            .filter(|line| line.0 == path)
            .map(|line| (line.1, line.2, line.3.clone()))
            .collect()
    }
}

fn build_with(
    repo: &TestRepo,
    range: Range,
    options: &ContextOptions,
) -> (DeployContext, Recorder) {
    let mut recorder = Recorder::default();
    let context = build_context(
        repo.path(),
        &range,
        options,
        &Redactor::new(),
        &mut recorder,
    )
    .unwrap_or_else(|error| panic!("build_context failed: {error}"));
    (context, recorder)
}

fn build(repo: &TestRepo) -> (DeployContext, Recorder) {
    build_with(repo, Range::default(), &ContextOptions::default())
}

fn build_err(repo_path: &std::path::Path, range: Range) -> GitError {
    let mut recorder = Recorder::default();
    match build_context(
        repo_path,
        &range,
        &ContextOptions::default(),
        &Redactor::new(),
        &mut recorder,
    ) {
        Ok(context) => panic!(
            "expected an error, got a context for {}..{}",
            context.base, context.head
        ),
        Err(error) => error,
    }
}

fn range(base: Option<&str>, head: Option<&str>) -> Range {
    Range {
        base: base.map(str::to_owned),
        head: head.map(str::to_owned),
    }
}

fn file<'c>(context: &'c DeployContext, path: &str) -> &'c ChangedFile {
    context
        .files
        .iter()
        .find(|file| file.path == path)
        .unwrap_or_else(|| panic!("{path} not in {:?}", context.files))
}

fn omission<'c>(context: &'c DeployContext, path: &str) -> Option<&'c str> {
    context
        .omitted
        .iter()
        .find(|omission| omission.path == path)
        .map(|omission| omission.reason.as_str())
}

fn numbered(n_lines: usize, word: &str) -> String {
    (1..=n_lines).map(|n| format!("{word} {n}\n")).collect()
}

fn assert_one_line(error: &GitError, must_name: &str) {
    let message = error.to_string();
    assert!(!message.contains('\n'), "not one line: {message}");
    assert!(
        message.contains(must_name),
        "{message:?} does not name {must_name:?}"
    );
}

// ---- ranges ------------------------------------------------------------------------

#[test]
fn default_range_is_the_head_against_its_first_parent() {
    let repo = TestRepo::new();
    repo.write("src/lib.rs", "fn a() {}\n");
    let first = repo.commit("first");
    repo.write("src/lib.rs", "fn a() {}\nfn b() {}\n");
    let second = repo.commit("second");

    let (context, _) = build(&repo);
    assert_eq!(
        (context.base.as_str(), context.head.as_str()),
        (first.as_str(), second.as_str())
    );
    assert!(!context.head_is_merge && !context.root_commit);
    assert_eq!(context.n_commits, 1);
    assert_eq!(context.commits[0].message, "second");
    assert_eq!(context.commits[0].author, "Test Author");
    assert_eq!((context.lines_added, context.lines_removed), (1, 0));
    assert_eq!(
        context.repo, "repo",
        "the testkit's work tree is <tmp>/repo"
    );
    assert!(
        context
            .packed_diff
            .starts_with("diff --git a/src/lib.rs b/src/lib.rs\n"),
        "{}",
        context.packed_diff
    );
    assert!(context.packed_diff.contains("\n+fn b() {}\n"));
    assert_eq!(context.n_omitted, 0);
    assert!(!context.is_truncated());
}

#[test]
fn explicit_base_and_head_take_any_revision() {
    let repo = TestRepo::new();
    repo.write("a.txt", "1\n");
    let first = repo.commit("one");
    repo.git(&["tag", "v1"]);
    repo.write("a.txt", "1\n2\n");
    let second = repo.commit("two");
    repo.write("a.txt", "1\n2\n3\n");
    repo.commit("three");

    let options = ContextOptions {
        repo_name: Some("acme/shop".to_owned()),
        ..ContextOptions::default()
    };
    let (context, _) = build_with(&repo, range(Some("v1"), Some("main~1")), &options);
    assert_eq!(
        (context.base.as_str(), context.head.as_str()),
        (first.as_str(), second.as_str())
    );
    assert_eq!(context.repo, "acme/shop");
    assert_eq!(context.n_commits, 1);

    let (context, _) = build_with(&repo, range(Some("v1"), None), &ContextOptions::default());
    assert_eq!(context.n_commits, 2);
    assert_eq!(context.lines_added, 2);
}

#[test]
fn head_alone_diffs_against_its_own_first_parent() {
    let repo = TestRepo::new();
    repo.write("a.txt", "1\n");
    let first = repo.commit("one");
    repo.write("a.txt", "1\n2\n");
    let second = repo.commit("two");
    repo.write("b.txt", "b\n");
    repo.commit("three");

    let (context, _) = build_with(
        &repo,
        range(None, Some(&second)),
        &ContextOptions::default(),
    );
    assert_eq!(
        (context.base.as_str(), context.head.as_str()),
        (first.as_str(), second.as_str())
    );
    assert_eq!(context.files.len(), 1);
}

#[test]
fn merge_commit_diffs_against_first_parent() {
    let repo = TestRepo::new();
    repo.write("README.md", "shop\n");
    repo.commit("initial");
    repo.branch("feature");
    repo.write("src/feature.rs", "pub fn feature() {}\n");
    repo.commit("add feature");
    repo.write("src/feature.rs", "pub fn feature() -> u8 { 1 }\n");
    repo.commit("tune feature");
    repo.checkout("main");
    repo.write("src/hotfix.rs", "pub fn hotfix() {}\n");
    let main_tip = repo.commit("hotfix on main");
    let merge = repo.merge_no_ff("feature", "Merge branch 'feature'");

    let (context, _) = build(&repo);
    assert!(context.head_is_merge);
    assert_eq!(
        (context.base.as_str(), context.head.as_str()),
        (main_tip.as_str(), merge.as_str())
    );
    let paths: Vec<&str> = context
        .files
        .iter()
        .map(|file| file.path.as_str())
        .collect();
    assert_eq!(paths, ["src/feature.rs"], "only what the merge brought in");
    assert_eq!(
        context.n_commits, 3,
        "the merge and the two feature commits"
    );
    assert!(context.commits[0].merge);
    assert_eq!(context.commits[0].message, "Merge branch 'feature'");
    assert!(!context.commits[1].merge);
    assert!(context.revert_command().starts_with("git revert -m 1 "));
}

#[test]
fn root_commit_diffs_against_the_empty_tree() {
    let repo = TestRepo::new();
    repo.write("src/main.rs", "fn main() {}\n")
        .write("Cargo.toml", "[package]\nname = \"x\"\n");
    let root = repo.commit("root");

    let (context, recorder) = build(&repo);
    assert!(context.root_commit);
    assert_eq!(context.base, EMPTY_TREE);
    assert_eq!(context.head, root);
    assert_eq!(context.n_commits, 1);
    assert!(context
        .files
        .iter()
        .all(|file| file.status == FileStatus::Added));
    assert_eq!(
        recorder.lines_of("src/main.rs"),
        [(LineKind::Added, 1, "fn main() {}".to_owned())]
    );
}

#[test]
fn depth_two_shallow_clone_reads_the_default_range() {
    let repo = TestRepo::new();
    for n in 1..=5 {
        repo.write("log.txt", &numbered(n, "entry"));
        repo.commit(&format!("commit {n}"));
    }
    let clone = repo.shallow_clone(2);

    let (context, _) = build(&clone);
    assert_eq!(context.head, repo.head());
    assert_eq!(context.base, repo.rev_parse("HEAD~1"));
    assert_eq!(context.n_commits, 1);
    assert_eq!(context.commits[0].message, "commit 5");
    assert_eq!(recorded_added(&context), ["entry 5"]);
}

fn recorded_added(context: &DeployContext) -> Vec<String> {
    let mut recorder = Recorder::default();
    walk_packed_diff(context, &mut recorder);
    recorder
        .lines
        .into_iter()
        .filter(|line| line.1 == LineKind::Added)
        .map(|line| line.3)
        .collect()
}

#[test]
fn depth_one_shallow_clone_says_to_fetch_deeper() {
    let repo = TestRepo::new();
    repo.write("a.txt", "1\n");
    repo.commit("one");
    repo.write("a.txt", "2\n");
    repo.commit("two");
    let clone = repo.shallow_clone(1);

    let error = build_err(clone.path(), Range::default());
    assert!(
        matches!(error, GitError::ShallowHistory { .. }),
        "{error:?}"
    );
    assert_one_line(&error, "shallow clone");
}

// ---- files -------------------------------------------------------------------------

#[test]
fn rename_reports_status_and_old_path() {
    let repo = TestRepo::new();
    repo.write("src/old_name.rs", &numbered(20, "line"));
    repo.commit("initial");
    repo.rename("src/old_name.rs", "src/new name.rs");
    repo.commit("rename");

    let (context, recorder) = build(&repo);
    let renamed = file(&context, "src/new name.rs");
    assert_eq!(renamed.status, FileStatus::Renamed);
    assert_eq!(renamed.old_path.as_deref(), Some("src/old_name.rs"));
    assert_eq!(recorder.files, ["src/new name.rs"]);
    assert!(context
        .packed_diff
        .contains("rename from src/old_name.rs\nrename to src/new name.rs\n"));
}

#[test]
fn copy_is_reported_with_its_source() {
    let repo = TestRepo::new();
    repo.write("config/base.yml", &numbered(30, "setting"));
    repo.commit("initial");
    repo.write(
        "config/base.yml",
        &format!("{}setting 31\n", numbered(30, "setting")),
    );
    repo.write("config/copy.yml", &numbered(30, "setting"));
    repo.commit("copy");

    let (context, _) = build(&repo);
    let copied = file(&context, "config/copy.yml");
    assert_eq!(copied.status, FileStatus::Copied);
    assert_eq!(copied.old_path.as_deref(), Some("config/base.yml"));
    assert_eq!(
        file(&context, "config/base.yml").status,
        FileStatus::Modified
    );
}

#[test]
fn deleted_file_is_listed_with_its_lines_numbered_in_the_old_file() {
    let repo = TestRepo::new();
    repo.write("src/gone.rs", "a\nb\n")
        .write("src/kept.rs", "k\n");
    repo.commit("initial");
    repo.remove("src/gone.rs");
    repo.commit("delete");

    let (context, recorder) = build(&repo);
    let gone = file(&context, "src/gone.rs");
    assert_eq!((gone.status, gone.deletions), (FileStatus::Deleted, 2));
    assert_eq!(
        recorder.lines_of("src/gone.rs"),
        [
            (LineKind::Removed, 1, "a".to_owned()),
            (LineKind::Removed, 2, "b".to_owned())
        ]
    );
}

#[test]
fn binary_file_is_listed_not_dumped() {
    let repo = TestRepo::new();
    repo.write_bytes("assets/logo.png", b"\x89PNG\r\n\x1a\n\0\0\0binary");
    repo.write("src/app.rs", "fn app() {}\n");
    repo.commit("initial");
    repo.write_bytes("assets/logo.png", b"\x89PNG\r\n\x1a\n\0\0\0changed");
    repo.write("src/app.rs", "fn app() { run() }\n");
    repo.commit("change");

    let (context, recorder) = build(&repo);
    let logo = file(&context, "assets/logo.png");
    assert!(logo.binary);
    assert_eq!((logo.additions, logo.deletions), (0, 0));
    assert_eq!(omission(&context, "assets/logo.png"), Some("binary"));
    assert!(
        !context.packed_diff.contains("logo.png"),
        "{}",
        context.packed_diff
    );
    assert!(context.packed_diff.contains("+fn app() { run() }"));
    assert!(
        context.packed_diff.contains("1 binary"),
        "the closing line counts it: {}",
        context.packed_diff
    );
    assert!(
        recorder.files.contains(&"assets/logo.png".to_owned()),
        "the visitor still sees the file start"
    );
    assert!(recorder.lines_of("assets/logo.png").is_empty());
}

#[test]
fn generated_file_is_listed_not_dumped_but_visited() {
    let repo = TestRepo::new();
    repo.write("vendor/lib/x.go", "package x\n");
    repo.commit("initial");
    repo.write("vendor/lib/x.go", "package x\n\nvar Y = 1\n");
    repo.commit("vendor update");

    let (context, recorder) = build(&repo);
    assert_eq!(
        file(&context, "vendor/lib/x.go").class,
        FileClass::Generated
    );
    assert_eq!(omission(&context, "vendor/lib/x.go"), Some("generated"));
    assert!(!context.packed_diff.contains("var Y"));
    assert!(recorder.lines_of("vendor/lib/x.go").contains(&(
        LineKind::Added,
        3,
        "var Y = 1".to_owned()
    )));
}

#[test]
fn unusual_paths_and_non_utf8_lines_are_read() {
    let repo = TestRepo::new();
    repo.write("docs/ünïcode name.md", "hello\n");
    repo.write("src/tab\there.rs", "x\n");
    repo.write_bytes("src/latin1.rs", b"// caf\xe9\n");
    repo.commit("odd names");

    let (context, recorder) = build(&repo);
    for path in ["docs/ünïcode name.md", "src/tab\there.rs", "src/latin1.rs"] {
        assert_eq!(file(&context, path).status, FileStatus::Added);
        assert!(
            recorder.files.contains(&path.to_owned()),
            "{path} not visited: {:?}",
            recorder.files
        );
    }
    assert_eq!(
        recorder.lines_of("src/tab\there.rs"),
        [(LineKind::Added, 1, "x".to_owned())]
    );
    assert_eq!(
        recorder.lines_of("src/latin1.rs"),
        [(LineKind::Added, 1, "// caf\u{fffd}".to_owned())]
    );
    let mut replay = Recorder::default();
    walk_packed_diff(&context, &mut replay);
    assert_eq!(replay.by_file(), recorder.by_file());
}

#[cfg(unix)]
#[test]
fn type_change_keeps_both_halves_on_the_same_file() {
    let repo = TestRepo::new();
    repo.write("bin/tool", "#!/bin/sh\necho hi\n")
        .write("bin/real", "x\n");
    repo.commit("initial");
    repo.symlink("bin/tool", "real");
    repo.write("src/after.rs", "after\n");
    repo.commit("tool becomes a link");

    let (context, recorder) = build(&repo);
    assert_eq!(file(&context, "bin/tool").status, FileStatus::TypeChanged);
    assert_eq!(
        recorder.lines_of("bin/tool"),
        [
            (LineKind::Removed, 1, "#!/bin/sh".to_owned()),
            (LineKind::Removed, 2, "echo hi".to_owned()),
            (LineKind::Added, 1, "real".to_owned())
        ]
    );
    assert_eq!(
        recorder.lines_of("src/after.rs"),
        [(LineKind::Added, 1, "after".to_owned())]
    );
}

// ---- line numbers and replay -------------------------------------------------------

#[test]
fn visitor_sees_added_lines_with_new_numbers_and_removed_lines_with_old_numbers() {
    let repo = TestRepo::new();
    repo.write("src/calc.rs", &numbered(20, "line"));
    repo.commit("initial");
    let mut lines: Vec<String> = (1..=20).map(|n| format!("line {n}")).collect();
    lines.remove(2); // old line 3
    lines.insert(9, "inserted".to_owned()); // new line 10
    lines[17] = "changed".to_owned(); // new line 18 replaces old line 18
    repo.write("src/calc.rs", &(lines.join("\n") + "\n"));
    repo.commit("edit");

    let (_, recorder) = build(&repo);
    let changed: Vec<(LineKind, u32, String)> = recorder
        .lines_of("src/calc.rs")
        .into_iter()
        .filter(|line| line.0 != LineKind::Context)
        .collect();
    assert_eq!(
        changed,
        [
            (LineKind::Removed, 3, "line 3".to_owned()),
            (LineKind::Added, 10, "inserted".to_owned()),
            (LineKind::Removed, 18, "line 18".to_owned()),
            (LineKind::Added, 18, "changed".to_owned()),
        ]
    );
    let context_lines = recorder.lines_of("src/calc.rs");
    assert!(context_lines.contains(&(LineKind::Context, 2, "line 2".to_owned())));
    assert!(
        context_lines.contains(&(LineKind::Context, 3, "line 4".to_owned())),
        "context numbered in the new file"
    );
}

#[test]
fn walk_packed_diff_replays_the_packed_diff_with_the_same_line_numbers() {
    let repo = TestRepo::new();
    repo.write("src/a.rs", &numbered(40, "a"))
        .write("db/migrate/001_init.rb", "create\n");
    repo.commit("initial");
    repo.write(
        "src/a.rs",
        &numbered(40, "a")
            .replace("a 7\n", "a seven\n")
            .replace("a 30\n", ""),
    );
    repo.write("db/migrate/001_init.rb", "create\nindex\n");
    repo.rename("db/migrate/001_init.rb", "db/migrate/002_init.rb");
    repo.write("src/b.rs", "no newline at end");
    repo.commit("edit");

    let (context, streamed) = build(&repo);
    assert_eq!(context.n_omitted, 0);
    let mut replayed = Recorder::default();
    walk_packed_diff(&context, &mut replayed);
    assert_eq!(replayed.by_file(), streamed.by_file());
    assert_eq!(
        replayed.files,
        ["db/migrate/002_init.rb", "src/b.rs", "src/a.rs"],
        "packed in risk order, small first"
    );
}

// ---- packing -----------------------------------------------------------------------

#[test]
fn migration_and_auth_files_beat_docs_and_tests_on_a_small_budget() {
    let repo = TestRepo::new();
    repo.write("README.md", "x\n");
    repo.commit("initial");
    repo.write("docs/guide.md", &numbered(60, "guide paragraph"));
    repo.write("tests/test_api.py", &numbered(60, "def test_case"));
    repo.write("migrations/0002_drop_users.sql", "DROP TABLE users;\n");
    repo.write(
        "src/auth/session.rs",
        "pub fn check(token: &str) -> bool { true }\n",
    );
    repo.commit("mixed change");

    let options = ContextOptions {
        budget_chars: 1_500,
        ..ContextOptions::default()
    };
    let (context, _) = build_with(&repo, Range::default(), &options);
    let packed = &context.packed_diff;
    assert!(
        packed.chars().count() <= 1_500,
        "{} chars",
        packed.chars().count()
    );
    let migration_at = packed.find("+DROP TABLE users;").expect("migration packed");
    let auth_at = packed.find("+pub fn check").expect("auth packed");
    assert!(migration_at < auth_at, "migration first");
    assert_eq!(omission(&context, "migrations/0002_drop_users.sql"), None);
    assert_eq!(omission(&context, "src/auth/session.rs"), None);
    assert!(omission(&context, "docs/guide.md").is_some());
    assert!(omission(&context, "tests/test_api.py").is_some());
    if let Some(docs_at) = packed.find("docs/guide.md") {
        assert!(auth_at < docs_at);
    }
    assert_eq!(context.n_omitted, 2);
    assert!(context.is_truncated());
}

#[test]
fn file_too_big_for_the_budget_is_cut_with_a_marker_and_an_omission() {
    let repo = TestRepo::new();
    repo.write("src/big.rs", "fn start() {}\n");
    repo.commit("initial");
    repo.write("src/big.rs", &numbered(400, "fn generated_function_number"));
    repo.commit("big change");

    let options = ContextOptions {
        budget_chars: 2_000,
        ..ContextOptions::default()
    };
    let (context, streamed) = build_with(&repo, Range::default(), &options);
    assert!(context.packed_diff.len() <= 2_000);
    assert!(
        context.packed_diff.contains("… [deploy-gate: truncated, "),
        "{}",
        context.packed_diff
    );
    let reason = omission(&context, "src/big.rs").expect("an omission for the cut file");
    assert!(
        reason.starts_with("truncated after ") && reason.ends_with(" chars"),
        "{reason}"
    );
    assert_eq!(context.n_omitted, 1);
    assert_eq!(
        context.est_tokens,
        context.packed_diff.chars().count().div_ceil(4)
    );

    // What is shown re-parses to exactly the first lines the visitor saw.
    let mut replayed = Recorder::default();
    walk_packed_diff(&context, &mut replayed);
    assert!(!replayed.lines.is_empty());
    assert_eq!(replayed.lines[..], streamed.lines[..replayed.lines.len()]);
    assert_eq!(streamed.lines.len(), 401, "the visitor saw every line");
}

#[test]
fn five_thousand_file_commit_lists_every_file_and_packs_within_budget() {
    let repo = TestRepo::new();
    repo.write("README.md", "big\n");
    repo.commit("initial");
    repo.write_many(5_000, |i| {
        (
            format!("src/module_{:02}/file_{i:04}.rs", i % 50),
            format!("pub fn f{i}() -> u32 {{\n    {i}\n}}\n"),
        )
    });
    repo.commit("five thousand files");

    let (context, recorder) = build(&repo);
    assert_eq!(context.files.len(), 5_000);
    assert_eq!(recorder.files.len(), 5_000);
    assert_eq!(recorder.lines.len(), 15_000);
    assert_eq!(context.lines_added, 15_000);
    assert!(
        context.packed_diff.len() <= 12_000,
        "{}",
        context.packed_diff.len()
    );
    let n_shown = context.packed_diff.matches("diff --git ").count();
    assert!(n_shown > 20, "only {n_shown} files shown");
    assert_eq!(
        context.n_omitted,
        5_000 - n_shown + usize::from(context.packed_diff.contains("truncated, "))
    );
    assert_eq!(context.omitted.len(), 200, "listed omissions are capped");
    assert!(
        context.packed_diff.contains("files not shown in full"),
        "closing line says so"
    );
}

#[test]
fn the_same_change_gives_the_same_context() {
    let repo = TestRepo::new();
    repo.write("a.sql", "x\n").write("b.md", "y\n");
    repo.commit("initial");
    repo.write_many(40, |i| (format!("src/f{i}.rs"), numbered(i + 1, "line")));
    repo.write("a.sql", "x\nz\n");
    repo.commit("change");

    let options = ContextOptions {
        budget_chars: 3_000,
        ..ContextOptions::default()
    };
    let (first, _) = build_with(&repo, Range::default(), &options);
    let (second, _) = build_with(&repo, Range::default(), &options);
    assert_eq!(first, second);
}

// ---- lockfiles ---------------------------------------------------------------------

const CARGO_LOCK_BEFORE: &str = r#"version = 3

[[package]]
name = "rand"
version = "0.8.4"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "aaaa"

[[package]]
name = "serde"
version = "1.0.195"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "bbbb"
"#;

const CARGO_LOCK_AFTER: &str = r#"version = 3

[[package]]
name = "serde"
version = "1.0.196"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "cccc"

[[package]]
name = "tokio"
version = "1.36.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "dddd"
"#;

#[test]
fn cargo_lock_is_summarized_as_version_changes() {
    let repo = TestRepo::new();
    repo.write("Cargo.lock", CARGO_LOCK_BEFORE);
    repo.commit("initial");
    repo.write("Cargo.lock", CARGO_LOCK_AFTER);
    repo.commit("bump deps");

    let (context, _) = build(&repo);
    let changes: Vec<(&str, Option<&str>, Option<&str>)> = context
        .dep_changes
        .iter()
        .map(|change| {
            (
                change.package.as_str(),
                change.old.as_deref(),
                change.new.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("rand", Some("0.8.4"), None),
            ("serde", Some("1.0.195"), Some("1.0.196")),
            ("tokio", None, Some("1.36.0"))
        ]
    );
    assert!(context
        .dep_changes
        .iter()
        .all(|change| change.file == "Cargo.lock"));
    assert_eq!(
        omission(&context, "Cargo.lock"),
        Some("lockfile (summarized)")
    );
    assert!(
        context.packed_diff.contains("lockfile summary"),
        "{}",
        context.packed_diff
    );
    assert!(
        context.packed_diff.contains("* serde: 1.0.195 → 1.0.196\n"),
        "{}",
        context.packed_diff
    );
    assert!(
        !context.packed_diff.contains("checksum"),
        "no raw lockfile lines"
    );
}

#[test]
fn package_lock_json_is_summarized_as_version_changes() {
    let before = r#"{
  "name": "shop",
  "version": "1.0.0",
  "lockfileVersion": 3,
  "packages": {
    "": {
      "name": "shop",
      "version": "1.0.0"
    },
    "node_modules/@scope/pad": {
      "version": "1.0.0",
      "resolved": "https://registry.npmjs.org/@scope/pad/-/pad-1.0.0.tgz"
    },
    "node_modules/lodash": {
      "version": "4.17.20",
      "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.20.tgz"
    }
  }
}
"#;
    let after = before.replace("4.17.20", "4.17.21");
    let repo = TestRepo::new();
    repo.write("web/package-lock.json", before)
        .write("src/app.ts", "x\n");
    repo.commit("initial");
    repo.write("web/package-lock.json", &after)
        .write("src/app.ts", "y\n");
    repo.commit("bump lodash");

    let (context, _) = build(&repo);
    assert_eq!(context.dep_changes.len(), 1, "{:?}", context.dep_changes);
    let change = &context.dep_changes[0];
    assert_eq!(
        (
            change.file.as_str(),
            change.package.as_str(),
            change.old.as_deref(),
            change.new.as_deref()
        ),
        (
            "web/package-lock.json",
            "lodash",
            Some("4.17.20"),
            Some("4.17.21")
        )
    );
    assert!(
        context
            .packed_diff
            .contains("* lodash: 4.17.20 → 4.17.21\n"),
        "{}",
        context.packed_diff
    );
    let code_at = context.packed_diff.find("+y").expect("code packed");
    let summary_at = context
        .packed_diff
        .find("lockfile summary")
        .expect("summary packed");
    assert!(code_at < summary_at, "lockfiles rank after code");
}

// ---- commits -----------------------------------------------------------------------

#[test]
fn commit_messages_are_capped_at_max_commits_with_the_total_counted() {
    let repo = TestRepo::new();
    repo.write("log.txt", "0\n");
    let base = repo.commit("base");
    for n in 1..=15 {
        repo.write("log.txt", &numbered(n, "entry"));
        repo.commit(&format!("commit {n}\n\nbody of commit {n}"));
    }

    let (context, _) = build_with(&repo, range(Some(&base), None), &ContextOptions::default());
    assert_eq!(context.n_commits, 15);
    assert_eq!(context.commits.len(), 10);
    assert_eq!(
        context.commits[0].message, "commit 15\n\nbody of commit 15",
        "newest first, whole message"
    );
    assert_eq!(context.commits[9].message.lines().next(), Some("commit 6"));

    let options = ContextOptions {
        max_commits: 3,
        ..ContextOptions::default()
    };
    let (context, _) = build_with(&repo, range(Some(&base), None), &options);
    assert_eq!((context.commits.len(), context.n_commits), (3, 15));
}

// ---- secrets (these wait for gate-core's redaction; they fail against its stub) -------

#[test]
fn aws_key_in_a_diff_line_is_redacted_everywhere_and_recorded() {
    let repo = TestRepo::new();
    repo.write("config/app.env", "REGION=eu-west-1\n");
    repo.commit("initial");
    repo.write(
        "config/app.env",
        &format!("REGION=eu-west-1\nAWS_ACCESS_KEY_ID={FAKE_AWS_KEY}\n"),
    );
    repo.commit("add key");

    let (context, recorder) = build(&repo);
    assert!(
        !context.packed_diff.contains(FAKE_AWS_KEY),
        "{}",
        context.packed_diff
    );
    assert!(
        context.packed_diff.contains("[REDACTED:aws_access_key]"),
        "{}",
        context.packed_diff
    );
    assert!(
        recorder
            .lines
            .iter()
            .all(|line| !line.3.contains(FAKE_AWS_KEY)),
        "the visitor sees redacted text"
    );
    let finding = context
        .secrets
        .iter()
        .find(|secret| secret.kind == SecretKind::AwsAccessKey)
        .expect("a finding");
    assert_eq!(
        (finding.file.as_str(), finding.line),
        ("config/app.env", Some(2))
    );
}

#[test]
fn aws_key_in_a_commit_message_is_redacted_and_recorded() {
    let repo = TestRepo::new();
    repo.write("a.txt", "1\n");
    repo.commit("initial");
    repo.write("a.txt", "2\n");
    repo.commit(&format!("rotate {FAKE_AWS_KEY}"));

    let (context, _) = build(&repo);
    assert!(!context.commits[0].message.contains(FAKE_AWS_KEY));
    assert!(context.commits[0]
        .message
        .contains("[REDACTED:aws_access_key]"));
    assert!(context
        .secrets
        .iter()
        .any(|secret| secret.file == "<commit message>" && secret.line.is_none()));
}

// ---- bad input ---------------------------------------------------------------------

#[test]
fn a_directory_that_is_not_a_repository_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = build_err(dir.path(), Range::default());
    assert!(
        matches!(error, GitError::NotARepository { .. }),
        "{error:?}"
    );
    assert_one_line(&error, &dir.path().display().to_string());
    assert!(error.is_usage_error());

    let missing = dir.path().join("no-such-dir");
    let error = build_err(&missing, Range::default());
    assert!(
        matches!(error, GitError::NotARepository { .. }),
        "{error:?}"
    );
}

#[test]
fn an_unknown_revision_is_named_as_typed() {
    let repo = TestRepo::new();
    repo.write("a.txt", "1\n");
    repo.commit("one");

    let error = build_err(repo.path(), range(Some("release/no-such-branch"), None));
    assert!(
        matches!(&error, GitError::UnknownRevision { rev } if rev == "release/no-such-branch"),
        "{error:?}"
    );
    assert_one_line(&error, "`release/no-such-branch`");

    let error = build_err(repo.path(), range(None, Some("--output=/tmp/x")));
    assert!(
        matches!(error, GitError::UnknownRevision { .. }),
        "options are not revisions: {error:?}"
    );
}

#[test]
fn an_empty_range_says_there_is_nothing_to_analyse() {
    let repo = TestRepo::new();
    repo.write("a.txt", "1\n");
    repo.commit("one");
    repo.write("a.txt", "2\n");
    repo.commit("two");

    let error = build_err(repo.path(), range(Some("main"), Some("HEAD")));
    assert!(matches!(error, GitError::EmptyRange { .. }), "{error:?}");
    assert_one_line(&error, "nothing to analyse between main and HEAD");

    repo.commit_empty("empty");
    let error = build_err(repo.path(), Range::default());
    assert!(matches!(error, GitError::EmptyRange { .. }), "{error:?}");
    assert_one_line(&error, "nothing to analyse between");
}

#[test]
fn a_repository_without_commits_has_no_head_to_read() {
    let repo = TestRepo::new();
    let error = build_err(repo.path(), Range::default());
    assert!(
        matches!(&error, GitError::UnknownRevision { rev } if rev == "HEAD"),
        "{error:?}"
    );
}
