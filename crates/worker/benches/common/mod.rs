//! What both fleet benchmarks send: one documentation change from a real git
//! repository, varied per event so that no two share a verdict cache key.

use anyhow::{ensure, Result};
use gate_core::{ChangedFile, DeployContext, DiffVisitor, LineKind, MergeEvent, Redactor};
use gate_git::{ContextOptions, Range};
use gate_testkit::TestRepo;

/// The line of the docs change that every event rewrites, so each has its own diff.
pub const VARIED_LINE: &str = "+`cargo run` starts the shop.";

struct Ignore;

impl DiffVisitor for Ignore {
    fn line(&mut self, _: &ChangedFile, _: LineKind, _: u32, _: &str) {}
}

/// A merge that only touches documentation, built from a real git repository,
/// as repository `repo_name`.
pub fn docs_change(repo_name: &str) -> Result<DeployContext> {
    let repo = TestRepo::with_docs_only_change();
    let context = gate_git::build_context(
        repo.path(),
        &Range::default(),
        &ContextOptions {
            repo_name: Some(repo_name.to_string()),
            ..ContextOptions::default()
        },
        &Redactor::new(),
        &mut Ignore,
    )?;
    ensure!(
        context.packed_diff.contains(VARIED_LINE),
        "the docs change's packed diff lost the line the benchmarks vary:\n{}",
        context.packed_diff
    );
    Ok(context)
}

/// Event `event_id` from `base`, variant `variant`: its own head, commit
/// messages and diff (the varied line names `build`).
pub fn varied_event(
    base: &DeployContext,
    build: &str,
    variant: usize,
    event_id: String,
) -> MergeEvent {
    let mut context = base.clone();
    context.packed_diff = context.packed_diff.replacen(
        VARIED_LINE,
        &format!("+`cargo run` starts the shop (build {build})."),
        1,
    );
    context.head = format!("{:040x}", 0x00c0_ffee_u64 + variant as u64);
    for commit in &mut context.commits {
        commit.message = format!("Document how to run the shop (build {variant})");
    }
    if let Some(last) = context.commits.last_mut() {
        last.sha = context.head.clone();
    }
    gate_producer::merge_event(
        context,
        Some(event_id),
        Some("refs/heads/main".to_string()),
        "bench",
    )
}
