//! Event ids from CI systems' own run identifiers.
//!
//! Why: a CI step that fails half-way and is retried must enqueue the *same* event,
//! so the fleet answers it with the decision already made instead of analysing (and
//! paying for) the merge twice. The CI's run and job ids are exactly "this attempt
//! of this step": stable across a retried step, new for a re-run job.

use sha2::{Digest, Sha256};

/// Longest id built here; the bus carries ids as AMQP short strings (255 bytes).
const MAX_ID_LEN: usize = 200;

/// An event id for this CI run and `head`, or `None` outside a recognised CI.
///
/// `env` looks a variable up (pass `&|name| std::env::var(name).ok()`); `head` is the
/// commit being decided (its first 12 characters go into the id, so two changes
/// enqueued by one job get two ids). Recognised, in this order (first match wins):
///
/// | CI | detected by | id |
/// | --- | --- | --- |
/// | GitHub Actions | `GITHUB_ACTIONS=true` | `gha-[<host>-]<GITHUB_RUN_ID>-<GITHUB_RUN_ATTEMPT>-<head>`; the host of `GITHUB_SERVER_URL` only for GitHub Enterprise |
/// | GitLab CI | `GITLAB_CI=true` | `gitlab-<CI_SERVER_HOST>-<CI_PIPELINE_ID>-<CI_JOB_ID>-<head>` |
/// | Buildkite | `BUILDKITE=true` | `buildkite-<BUILDKITE_JOB_ID>-<BUILDKITE_RETRY_COUNT>-<head>` |
/// | CircleCI | `CIRCLECI=true` | `circleci-<CIRCLE_WORKFLOW_ID>-<CIRCLE_BUILD_NUM>-<head>` |
/// | Jenkins | `JENKINS_URL` set | `jenkins-<host of JENKINS_URL>-<JOB_NAME>-<BUILD_NUMBER>-<head>` |
///
/// A re-run (a new attempt, a retried job, a rebuild) gets a new id and so a fresh
/// decision; retrying the same step inside one attempt keeps the id. A system whose
/// run-id variables are missing is skipped. Characters other than letters, digits,
/// `.`, `_` and `-` become `-`; an id longer than 200 characters is cut and ends in 16
/// hex digits of the whole id's SHA-256, so it stays unique.
pub fn ci_event_id(env: &dyn Fn(&str) -> Option<String>, head: &str) -> Option<String> {
    let var = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    let is_true = |name: &str| var(name).is_some_and(|value| value.eq_ignore_ascii_case("true"));
    let head: String = head.chars().take(12).collect();

    let parts: Option<Vec<String>> = if is_true("GITHUB_ACTIONS") {
        (|| {
            let mut parts = vec!["gha".to_owned()];
            if let Some(host) = var("GITHUB_SERVER_URL").as_deref().and_then(url_host) {
                if host != "github.com" {
                    parts.push(host);
                }
            }
            parts.push(var("GITHUB_RUN_ID")?);
            parts.push(var("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".to_owned()));
            Some(parts)
        })()
    } else {
        None
    };
    let parts = parts.or_else(|| {
        if !is_true("GITLAB_CI") {
            return None;
        }
        Some(vec![
            "gitlab".to_owned(),
            var("CI_SERVER_HOST").unwrap_or_else(|| "gitlab".to_owned()),
            var("CI_PIPELINE_ID")?,
            var("CI_JOB_ID")?,
        ])
    });
    let parts = parts.or_else(|| {
        if !is_true("BUILDKITE") {
            return None;
        }
        Some(vec![
            "buildkite".to_owned(),
            var("BUILDKITE_JOB_ID")?,
            var("BUILDKITE_RETRY_COUNT").unwrap_or_else(|| "0".to_owned()),
        ])
    });
    let parts = parts.or_else(|| {
        if !is_true("CIRCLECI") {
            return None;
        }
        Some(vec![
            "circleci".to_owned(),
            var("CIRCLE_WORKFLOW_ID")?,
            var("CIRCLE_BUILD_NUM")?,
        ])
    });
    let parts = parts.or_else(|| {
        let jenkins = var("JENKINS_URL")?;
        Some(vec![
            "jenkins".to_owned(),
            url_host(&jenkins).unwrap_or_else(|| "jenkins".to_owned()),
            var("JOB_NAME")?,
            var("BUILD_NUMBER")?,
        ])
    });

    let mut parts = parts?;
    if !head.is_empty() {
        parts.push(head);
    }
    let id: String = parts
        .iter()
        .map(|part| sanitize(part))
        .collect::<Vec<_>>()
        .join("-");
    Some(bounded(id))
}

/// The host of `scheme://[user@]host[:port]/…`, lowercased.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = host.split(':').next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn sanitize(part: &str) -> String {
    part.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn bounded(id: String) -> String {
    if id.len() <= MAX_ID_LEN {
        return id;
    }
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    // Sanitized ids are ASCII, so any byte index is a character boundary.
    format!("{}-{hex}", &id[..MAX_ID_LEN - 17])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const HEAD: &str = "0123456789abcdef0123456789abcdef01234567";

    fn id(vars: &[(&str, &str)]) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ci_event_id(&|name| vars.get(name).cloned(), HEAD)
    }

    #[test]
    fn github_actions_ids_name_the_run_and_its_attempt() {
        let vars = [
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_RUN_ID", "9876543210"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_SERVER_URL", "https://github.com"),
        ];
        assert_eq!(id(&vars).as_deref(), Some("gha-9876543210-2-0123456789ab"));
        let enterprise = [
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_RUN_ID", "42"),
            ("GITHUB_SERVER_URL", "https://GHE.acme.example:8443"),
        ];
        assert_eq!(
            id(&enterprise).as_deref(),
            Some("gha-ghe.acme.example-42-1-0123456789ab")
        );
        assert_eq!(id(&[("GITHUB_ACTIONS", "true")]), None, "no run id");
    }

    #[test]
    fn gitlab_buildkite_circleci_and_jenkins_ids_use_their_own_variables() {
        assert_eq!(
            id(&[
                ("GITLAB_CI", "true"),
                ("CI_SERVER_HOST", "gitlab.acme.example"),
                ("CI_PIPELINE_ID", "1001"),
                ("CI_JOB_ID", "5005"),
            ])
            .as_deref(),
            Some("gitlab-gitlab.acme.example-1001-5005-0123456789ab")
        );
        assert_eq!(
            id(&[
                ("BUILDKITE", "true"),
                ("BUILDKITE_JOB_ID", "0190a3f2-aaaa-bbbb-cccc-1234567890ab"),
                ("BUILDKITE_RETRY_COUNT", "1"),
            ])
            .as_deref(),
            Some("buildkite-0190a3f2-aaaa-bbbb-cccc-1234567890ab-1-0123456789ab")
        );
        assert_eq!(
            id(&[
                ("CIRCLECI", "true"),
                ("CIRCLE_WORKFLOW_ID", "6f1c2d3e-0000-1111-2222-333344445555"),
                ("CIRCLE_BUILD_NUM", "77"),
            ])
            .as_deref(),
            Some("circleci-6f1c2d3e-0000-1111-2222-333344445555-77-0123456789ab")
        );
        assert_eq!(
            id(&[
                ("JENKINS_URL", "https://ci.acme.example/jenkins/"),
                ("JOB_NAME", "shop/deploy main"),
                ("BUILD_NUMBER", "314"),
            ])
            .as_deref(),
            Some("jenkins-ci.acme.example-shop-deploy-main-314-0123456789ab")
        );
    }

    #[test]
    fn outside_ci_there_is_no_id_and_the_first_system_wins() {
        assert_eq!(id(&[]), None);
        assert_eq!(id(&[("CI", "true")]), None);
        let both = [
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_RUN_ID", "1"),
            ("JENKINS_URL", "https://ci.example"),
            ("JOB_NAME", "x"),
            ("BUILD_NUMBER", "2"),
        ];
        assert!(id(&both).unwrap().starts_with("gha-"));
    }

    #[test]
    fn long_ids_are_cut_and_stay_unique() {
        let long_job = "j".repeat(300);
        let other_job = format!("{long_job}x");
        let first = id(&[
            ("JENKINS_URL", "https://ci.example"),
            ("JOB_NAME", &long_job),
            ("BUILD_NUMBER", "1"),
        ])
        .unwrap();
        let second = id(&[
            ("JENKINS_URL", "https://ci.example"),
            ("JOB_NAME", &other_job),
            ("BUILD_NUMBER", "1"),
        ])
        .unwrap();
        assert_eq!(first.len(), MAX_ID_LEN);
        assert_ne!(first, second);
    }
}
