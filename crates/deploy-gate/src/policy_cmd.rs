//! `deploy-gate policy check FILE` and `deploy-gate policy explain`: validate a
//! policy before it is deployed, and say which of its rules apply to a path.

use std::path::Path;

use gate_core::Policy;

use crate::exit::{CliError, Exit};
use crate::settings::Settings;

/// Reads and validates a policy file; any problem is a usage error (exit 2) whose
/// message starts with `file:line:column:` and names the key.
fn read(file: &Path) -> Result<Policy, CliError> {
    let text = std::fs::read_to_string(file).map_err(|err| {
        CliError::usage(format!("cannot read policy file {}: {err}", file.display()))
    })?;
    Policy::parse(&text, &file.display().to_string()).map_err(CliError::usage)
}

/// `deploy-gate policy check FILE`: prints `ok: N repo rules, M path rules, version
/// <hash>` (exit 0), or the precise error (exit 2). It needs no other configuration,
/// so a policy can be checked in the pull request that changes it.
pub fn check(file: &Path) -> Result<Exit, CliError> {
    let policy = read(file)?;
    println!(
        "ok: {} repo rules, {} path rules, version {}",
        policy.n_repo_rules(),
        policy.n_path_rules(),
        policy.version()
    );
    Ok(Exit::Proceed)
}

/// `deploy-gate policy explain --repo R --path P [--file FILE]`: the rules that
/// apply to `path` in `repo`, in the order they are applied, from `file` or, without
/// it, from the configured policy.
pub fn explain(
    settings: &Settings,
    repo: &str,
    path: &str,
    file: Option<&Path>,
) -> Result<Exit, CliError> {
    let read_policy;
    let policy = match file {
        Some(file) => {
            read_policy = read(file)?;
            &read_policy
        }
        None => &settings.loaded_policy,
    };
    for line in policy.explain(repo, path) {
        println!("{line}");
    }
    Ok(Exit::Proceed)
}
