//! Measures `build_context` on a synthetic change of 5,000 files and about 50 MB of
//! diff against the baseline the issue sets: `git diff --stat` plus `git diff` of the
//! same range, run in the same process, median of 3 runs each. Also prints the peak
//! resident memory (VmHWM, Linux) and the start of the packed diff.
//!
//! Run: `cargo run --release -p gate-git --example measure_large`
//! Size: `GATE_MEASURE_FILES` (default 5000), `GATE_MEASURE_FILE_KIB` (default 10).
//! Not a test: timings depend on the machine.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gate_core::{ChangedFile, DiffVisitor, LineKind, Redactor};
use gate_git::{build_context, ContextOptions, Range};
use gate_testkit::TestRepo;

const RUNS: usize = 3;

/// Counts what it is shown, like a cheap analyzer would.
#[derive(Default)]
struct Counter {
    n_files: usize,
    n_lines: usize,
    n_bytes: usize,
}

impl DiffVisitor for Counter {
    fn file(&mut self, _file: &ChangedFile) {
        self.n_files += 1;
    }

    fn line(&mut self, _file: &ChangedFile, _kind: LineKind, _line_no: u32, text: &str) {
        self.n_lines += 1;
        self.n_bytes += text.len();
    }
}

fn main() {
    let n_files = env_or("GATE_MEASURE_FILES", 5_000);
    let file_kib = env_or("GATE_MEASURE_FILE_KIB", 10);
    let started = Instant::now();
    let repo = TestRepo::new();
    repo.write_many(n_files, |idx| (path_of(idx), format!("# module {idx}\n")));
    repo.commit("base");
    let lines_per_file = file_kib * 1024 / 48;
    repo.write_many(n_files, |idx| {
        let mut text = format!("# module {idx}\n");
        for line in 0..lines_per_file {
            text.push_str(&format!(
                "    value_{line:05} = compute({idx}, {line}) + offset  # v2\n"
            ));
        }
        (path_of(idx), text)
    });
    repo.commit("rewrite every module");
    let diff_bytes = Command::new("git")
        .current_dir(repo.path())
        .args(["diff", "HEAD^", "HEAD"])
        .output()
        .map(|out| out.stdout.len())
        .unwrap_or(0);
    println!(
        "repository built in {:.1} s: {n_files} files, {:.1} MB of diff",
        started.elapsed().as_secs_f64(),
        diff_bytes as f64 / 1e6
    );

    let git = |args: &[&str]| {
        let status = Command::new("git")
            .current_dir(repo.path())
            .args(args)
            .stdout(Stdio::null())
            .status()
            .map(|status| status.success());
        assert_eq!(status.ok(), Some(true), "git {args:?}");
    };
    let stat = median(|| timed(|| git(&["diff", "--stat", "HEAD^", "HEAD"])));
    let diff = median(|| timed(|| git(&["diff", "HEAD^", "HEAD"])));
    let listing = median(|| {
        timed(|| {
            git(&[
                "diff",
                "--raw",
                "--numstat",
                "-z",
                "-M",
                "-C",
                "HEAD^",
                "HEAD",
            ])
        })
    });

    let redactor = Redactor::new();
    let hwm_before = peak_rss_kib();
    let mut last = None;
    let gate = median(|| {
        timed(|| {
            let mut counter = Counter::default();
            let context = build_context(
                repo.path(),
                &Range::default(),
                &ContextOptions::default(),
                &redactor,
                &mut counter,
            )
            .expect("build_context");
            last = Some((context, counter));
        })
    });
    let hwm_after = peak_rss_kib();
    let Some((context, counter)) = last else {
        return;
    };

    let baseline = stat + diff;
    println!(
        "git diff --stat                    : {:>7.3} s",
        stat.as_secs_f64()
    );
    println!(
        "git diff                           : {:>7.3} s",
        diff.as_secs_f64()
    );
    println!(
        "baseline (sum)                     : {:>7.3} s",
        baseline.as_secs_f64()
    );
    println!(
        "git diff --raw --numstat -z -M -C  : {:>7.3} s",
        listing.as_secs_f64()
    );
    println!(
        "build_context                      : {:>7.3} s",
        gate.as_secs_f64()
    );
    println!(
        "ratio (target <= 1.50)             : {:>7.2}x",
        gate.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "peak RSS before / after (VmHWM)    : {:.1} MB / {:.1} MB",
        hwm_before as f64 / 1024.0,
        hwm_after as f64 / 1024.0
    );
    println!(
        "visitor saw {} files, {} lines, {:.1} MB; packed {} chars (~{} tokens), {} omitted, {} listed",
        counter.n_files,
        counter.n_lines,
        counter.n_bytes as f64 / 1e6,
        context.packed_diff.chars().count(),
        context.est_tokens,
        context.n_omitted,
        context.omitted.len()
    );
    println!("---- packed diff (first 1,200 chars) ----");
    println!(
        "{}",
        context.packed_diff.chars().take(1_200).collect::<String>()
    );
    println!("---- packed diff (last 400 chars) ----");
    let n_chars = context.packed_diff.chars().count();
    println!(
        "{}",
        context
            .packed_diff
            .chars()
            .skip(n_chars.saturating_sub(400))
            .collect::<String>()
    );
}

fn path_of(idx: usize) -> String {
    match idx % 500 {
        0 => format!("db/migrations/V{idx}__step.sql"),
        1 => format!("config/service_{idx}.yml"),
        _ => format!("src/pkg_{}/module_{idx}.py", idx % 50),
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn timed(mut run: impl FnMut()) -> Duration {
    let started = Instant::now();
    run();
    started.elapsed()
}

fn median(mut measure: impl FnMut() -> Duration) -> Duration {
    let mut samples: Vec<Duration> = (0..RUNS).map(|_| measure()).collect();
    samples.sort();
    samples[RUNS / 2]
}

/// Peak resident set size of this process so far, in KiB (0 where unknown).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}
