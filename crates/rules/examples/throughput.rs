//! Streams a synthetic diff of realistic lines through the analyzer and prints the
//! throughput: `cargo run --release -p gate-rules --example throughput [MB]`.
//!
//! The budget: the rules analyzer should cost well under half of `git diff`'s own
//! time on the same diff (the benchmark allows the whole pipeline 1.5× `git diff`).

use std::time::Instant;

use gate_core::{classify_path, Bands, ChangedFile, DiffVisitor, FileStatus, LineKind};
use gate_rules::RulesAnalyzer;

const LINES: &[&str] = &[
    "    const total = items.reduce((sum, item) => sum + item.price * item.quantity, 0);",
    "    if err != nil { return fmt.Errorf(\"loading order %s: %w\", id, err) }",
    "        logger.info(\"processed %d records in %.2fs\", count, elapsed)",
    "  def call(user:, params:)",
    "import { useEffect, useState } from \"react\";",
    "        return ResponseEntity.ok(orderService.findById(id).orElseThrow());",
    "    session.add(order); session.commit()",
    "      <div className=\"flex items-center justify-between\">{children}</div>",
    "    let config = Config::from_env().context(\"reading configuration\")?;",
    "",
    "    # TODO: handle the authentication edge case for expired tokens",
    "    @login_required",
    "    user = authenticate(request, username=form.cleaned_data['username'])",
];

const PATHS: &[&str] = &[
    "src/orders/service.ts",
    "internal/orders/store.go",
    "app/jobs/sync.py",
    "app/services/checkout.rb",
    "web/src/components/Cart.tsx",
    "src/main/java/com/acme/OrderController.java",
    "src/config.rs",
    "db/migrate/20240101000000_add_x.rb",
    "package-lock.json",
    "docs/guide.md",
];

fn main() {
    let megabytes: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let target = megabytes * 1024 * 1024;
    let files: Vec<ChangedFile> = (0..2_000)
        .map(|i| {
            let path = format!(
                "{}{}",
                PATHS[i % PATHS.len()],
                if i < PATHS.len() {
                    String::new()
                } else {
                    format!(".{i}")
                }
            );
            let path = if i < PATHS.len() {
                PATHS[i].to_string()
            } else {
                path
            };
            ChangedFile {
                class: classify_path(PATHS[i % PATHS.len()]),
                path,
                old_path: None,
                status: FileStatus::Modified,
                additions: 0,
                deletions: 0,
                binary: false,
            }
        })
        .collect();
    // Pre-build the stream so only the analyzer is timed.
    let mut stream: Vec<(usize, LineKind, u32, &str)> = Vec::new();
    let mut bytes = 0;
    let mut n = 0usize;
    // BENCH_PLAIN=1: only lines without any trigger (the common case).
    let plain = std::env::var_os("BENCH_PLAIN").is_some();
    while bytes < target {
        let file = (n / 500) % files.len();
        let text = if plain {
            LINES[n % 10]
        } else {
            LINES[n % LINES.len()]
        };
        let kind = match n % 5 {
            0 => LineKind::Removed,
            1 | 2 => LineKind::Added,
            _ => LineKind::Context,
        };
        stream.push((file, kind, (n % 500) as u32 + 1, text));
        bytes += text.len() + 2;
        n += 1;
    }
    let started = Instant::now();
    let mut analyzer = RulesAnalyzer::new(Bands::default());
    let mut current = usize::MAX;
    for (file, kind, line_no, text) in &stream {
        if *file != current {
            analyzer.file(&files[*file]);
            current = *file;
        }
        analyzer.line(&files[*file], *kind, *line_no, text);
    }
    let streamed = started.elapsed();
    let context_files = files.clone();
    let mut context = gate_core::DeployContext {
        repo: "bench".into(),
        base: "0".repeat(40),
        head: "1".repeat(40),
        head_is_merge: false,
        root_commit: false,
        commits: Vec::new(),
        n_commits: 1,
        files: Vec::new(),
        lines_added: 0,
        lines_removed: 0,
        packed_diff: String::new(),
        budget_chars: 0,
        est_tokens: 0,
        omitted: Vec::new(),
        n_omitted: 0,
        dep_changes: Vec::new(),
        secrets: Vec::new(),
    };
    context.files = context_files;
    let verdict = analyzer.finish(&context);
    let total = started.elapsed();
    let mb = bytes as f64 / (1024.0 * 1024.0);
    println!(
        "{} lines, {mb:.1} MB: streamed in {:.3}s ({:.0} MB/s), finished in {:.3}s; score {} with {} risks",
        stream.len(),
        streamed.as_secs_f64(),
        mb / streamed.as_secs_f64(),
        total.as_secs_f64(),
        verdict.risk_score,
        verdict.risks.len()
    );
}
