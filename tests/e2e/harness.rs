//! Runs the real binary the way a CI job does, isolated from the developer's own
//! environment and configuration.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// What one run of the binary produced.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The outcome of a finished command.
    pub fn from_output(output: Output) -> Run {
        Run {
            code: output
                .status
                .code()
                .expect("deploy-gate was killed by a signal"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// stdout parsed as the Decision JSON, checked against the published schema.
    pub fn decision(&self) -> Value {
        let value: Value = serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!(
                "stdout is not JSON ({err}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        });
        let errors: Vec<String> = decision_schema()
            .iter_errors(&value)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "decision violates schemas/decision.schema.json: {errors:#?}"
        );
        value
    }

    /// Everything the run printed.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

fn decision_schema() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/decision.schema.json"
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

/// A command for the binary with a clean environment: no config dir, no GitHub
/// variables, no git config of the developer.
pub fn gate(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deploy-gate"));
    cmd.current_dir(cwd)
        .env_remove("DEPLOY_GATE_CONFIG_DIR")
        .env_remove("DEPLOY_GATE_ENV")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("NO_COLOR", "1");
    // The developer's own model keys and endpoints must not reach a test.
    for name in [
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
    ] {
        cmd.env_remove(name);
    }
    for (name, _) in std::env::vars() {
        if name.starts_with("DEPLOY_GATE__") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Runs `deploy-gate <args>` in `cwd`.
pub fn run(cwd: &Path, args: &[&str]) -> Run {
    Run::from_output(
        gate(cwd)
            .args(args)
            .output()
            .expect("cannot start deploy-gate"),
    )
}

/// Runs `deploy-gate check --json` on the repository's last commit.
pub fn check_json(repo: &Path) -> (Run, Value) {
    let run = run(repo, &["check", "--json"]);
    assert!(
        run.code == 0 || run.code == 1,
        "check exited {}:\n{}",
        run.code,
        run.all_output()
    );
    let decision = run.decision();
    (run, decision)
}

/// The categories of a decision's risks.
pub fn categories(decision: &Value) -> Vec<String> {
    let mut categories: Vec<String> = decision["risks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|risk| risk["category"].as_str().unwrap().to_string())
        .collect();
    categories.sort();
    categories.dedup();
    categories
}

/// The risk score of a decision.
pub fn score(decision: &Value) -> u64 {
    decision["risk_score"].as_u64().unwrap()
}
