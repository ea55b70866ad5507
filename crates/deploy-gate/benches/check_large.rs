//! Benchmark: `deploy-gate check --json` on a synthetic commit of 5,000 changed files
//! and about 50 MB of diff, against the baseline of `git diff --stat` plus `git diff`
//! of the same range, measured in the same run. Prints both, their ratio, and the
//! peak resident memory of `check`.
//!
//! Run: `cargo bench -p deploy-gate --bench check_large`
//! Size: `DEPLOY_GATE_BENCH_FILES` (default 5000), `DEPLOY_GATE_BENCH_FILE_KIB` (default 10).
//! Target (issue 2): ratio ≤ 1.5 and peak RSS < 200 MB.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gate_testkit::TestRepo;

const RUNS: usize = 3;

fn main() {
    let n_files: usize = env_or("DEPLOY_GATE_BENCH_FILES", 5_000);
    let file_kib: usize = env_or("DEPLOY_GATE_BENCH_FILE_KIB", 10);
    let repo = synthetic_repo(n_files, file_kib);
    let diff_bytes = git_stdout_len(repo.path(), &["diff", "HEAD^", "HEAD"]);
    println!(
        "check_large: {} files changed, {:.1} MB of diff, median of {RUNS} runs each",
        n_files,
        diff_bytes as f64 / 1e6
    );

    let baseline = median(RUNS, || {
        let started = Instant::now();
        run_quiet(repo.path(), "git", &["diff", "--stat", "HEAD^", "HEAD"]);
        run_quiet(repo.path(), "git", &["diff", "HEAD^", "HEAD"]);
        (started.elapsed(), 0)
    });
    let gate = median(RUNS, || {
        let started = Instant::now();
        let peak_kib = run_measuring_peak(
            repo.path(),
            env!("CARGO_BIN_EXE_deploy-gate"),
            &["check", "--json"],
        );
        (started.elapsed(), peak_kib)
    });

    let ratio = gate.0.as_secs_f64() / baseline.0.as_secs_f64();
    println!(
        "baseline  git diff --stat + git diff : {:>8.3} s",
        baseline.0.as_secs_f64()
    );
    println!(
        "deploy-gate check --json            : {:>8.3} s",
        gate.0.as_secs_f64()
    );
    println!("ratio (target <= 1.50)               : {ratio:>8.2}x");
    println!(
        "peak RSS of check (target < 200 MB)  : {:>8.1} MB",
        gate.1 as f64 / 1024.0
    );
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One parent commit with `n_files` small files, then a commit that rewrites each of
/// them to about `file_kib` KiB of new lines (a realistic code-like mix, with a few
/// migrations and config files among them so packing has choices to make).
fn synthetic_repo(n_files: usize, file_kib: usize) -> TestRepo {
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
    repo
}

fn path_of(idx: usize) -> String {
    match idx % 500 {
        0 => format!("db/migrations/V{idx}__step.sql"),
        1 => format!("config/service_{idx}.yml"),
        _ => format!("src/pkg_{}/module_{idx}.py", idx % 50),
    }
}

fn median(runs: usize, mut measure: impl FnMut() -> (Duration, u64)) -> (Duration, u64) {
    let mut samples: Vec<(Duration, u64)> = (0..runs).map(|_| measure()).collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn run_quiet(cwd: &Path, program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .status()
        .expect("cannot start command");
    assert!(status.success(), "{program} {args:?} failed");
}

fn git_stdout_len(cwd: &Path, args: &[&str]) -> usize {
    let output = Command::new("git")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("git");
    output.stdout.len()
}

/// Runs a command with stdout discarded, polling its peak resident set (VmHWM, which
/// only grows) until it exits. Returns the peak in KiB.
fn run_measuring_peak(cwd: &Path, program: &str, args: &[&str]) -> u64 {
    // Rules-only (no model call is part of this figure), and quiet.
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start deploy-gate");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(status) = child.try_wait().expect("waiting for deploy-gate") {
            assert!(
                matches!(status.code(), Some(0..=4)),
                "deploy-gate failed: {status}"
            );
            return peak_kib;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
