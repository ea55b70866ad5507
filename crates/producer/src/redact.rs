//! Redacting a MergeEvent that arrived from outside: its sender may not have run
//! redaction, or may have run an older one.

use gate_core::{DiffLine, DiffParser, LineKind, MergeEvent, Redactor, SecretFinding};

/// The file name recorded for secrets found in commit messages (as `gate-git` does).
const COMMIT_MESSAGE: &str = "<commit message>";
/// The file name recorded for secrets found outside any file section of the diff.
const PACKED_DIFF: &str = "<packed diff>";

/// Redacts every free-text field of `event` in place — commit messages and authors,
/// the packed diff line by line (content lines without their marker, with a fresh
/// line redactor per file section), omission notes — and records what was found in
/// `context.secrets`, so a leaked credential becomes a `secrets` risk. Returns how
/// many secrets were found.
pub(crate) fn redact_event(event: &mut MergeEvent, redactor: &Redactor) -> usize {
    let context = &mut event.context;
    let mut found: Vec<SecretFinding> = Vec::new();
    for commit in &mut context.commits {
        for text in [&mut commit.message, &mut commit.author] {
            let redacted = redactor.redact(text);
            if redacted.kinds.is_empty() {
                continue;
            }
            found.extend(redacted.kinds.iter().map(|kind| SecretFinding {
                kind: *kind,
                file: COMMIT_MESSAGE.to_owned(),
                line: None,
            }));
            *text = redacted.text.into_owned();
        }
    }
    for omission in &mut context.omitted {
        let redacted = redactor.redact(&omission.reason);
        if !redacted.kinds.is_empty() {
            found.extend(redacted.kinds.iter().map(|kind| SecretFinding {
                kind: *kind,
                file: omission.path.clone(),
                line: None,
            }));
            omission.reason = redacted.text.into_owned();
        }
    }

    if let Some((packed, secrets)) = redact_packed_diff(&context.packed_diff, redactor) {
        context.packed_diff = packed;
        context.est_tokens = context.packed_diff.chars().count().div_ceil(4);
        found.extend(secrets);
    }
    let n_found = found.len();
    context.secrets.extend(found);
    n_found
}

/// The packed diff redacted, with what was found; `None` when nothing was.
fn redact_packed_diff(packed: &str, redactor: &Redactor) -> Option<(String, Vec<SecretFinding>)> {
    let mut parser = DiffParser::new();
    let mut lines = redactor.line_redactor();
    let mut out = String::with_capacity(packed.len());
    let mut secrets = Vec::new();
    for (line_idx, line) in packed.split('\n').enumerate() {
        if line_idx > 0 {
            out.push('\n');
        }
        match parser.feed(line.as_bytes()) {
            DiffLine::FileStart => {
                lines.reset();
                let redacted = redactor.redact(line);
                out.push_str(&redacted.text);
                record(&mut secrets, &redacted.kinds, PACKED_DIFF, None);
            }
            DiffLine::Content {
                kind,
                line_no,
                text,
            } => {
                let text = String::from_utf8_lossy(text);
                let redacted = lines.redact_line(&text);
                let file = parser.path().unwrap_or(PACKED_DIFF).to_owned();
                let line_no = (kind != LineKind::Removed).then_some(line_no);
                record(&mut secrets, &redacted.kinds, &file, line_no);
                if redacted.kinds.is_empty() && redacted.text == text {
                    out.push_str(line);
                } else {
                    out.push(line.chars().next().unwrap_or(' '));
                    out.push_str(&redacted.text);
                }
            }
            _ => {
                let redacted = redactor.redact(line);
                let file = parser.path().unwrap_or(PACKED_DIFF).to_owned();
                record(&mut secrets, &redacted.kinds, &file, None);
                out.push_str(&redacted.text);
            }
        }
    }
    if out == packed {
        return None;
    }
    Some((out, secrets))
}

fn record(
    secrets: &mut Vec<SecretFinding>,
    kinds: &[gate_core::SecretKind],
    file: &str,
    line: Option<u32>,
) {
    secrets.extend(kinds.iter().map(|kind| SecretFinding {
        kind: *kind,
        file: file.to_owned(),
        line,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use gate_core::{CommitInfo, DeployContext, SecretKind, EVENT_SCHEMA_VERSION};

    #[test]
    fn secrets_in_the_diff_and_messages_are_redacted_and_recorded() {
        let key = concat!("AKIA", "Q3VZ7N2PLK4TXW8R");
        let packed = format!(
            "diff --git a/config/prod.env b/config/prod.env\n--- a/config/prod.env\n+++ b/config/prod.env\n@@ -1,2 +1,2 @@\n REGION=eu\n-OLD=1\n+AWS_ACCESS_KEY_ID={key}\n"
        );
        let mut event = MergeEvent {
            schema_version: EVENT_SCHEMA_VERSION,
            event_id: "e".to_owned(),
            repo: "r".to_owned(),
            base: "a".to_owned(),
            head: "b".to_owned(),
            git_ref: None,
            produced_at: "2026-01-01T00:00:00Z".to_owned(),
            source: "bus".to_owned(),
            context: DeployContext {
                repo: "r".to_owned(),
                base: "a".to_owned(),
                head: "b".to_owned(),
                head_is_merge: false,
                root_commit: false,
                commits: vec![CommitInfo {
                    sha: "b".to_owned(),
                    author: "Ada".to_owned(),
                    message: format!("rotate {key}"),
                    merge: false,
                }],
                n_commits: 1,
                files: vec![],
                lines_added: 1,
                lines_removed: 1,
                packed_diff: packed,
                budget_chars: 1000,
                est_tokens: 10,
                omitted: vec![],
                n_omitted: 0,
                dep_changes: vec![],
                secrets: vec![],
            },
        };
        let n_found = redact_event(&mut event, &Redactor::new());
        assert_eq!(n_found, 2);
        let json = serde_json::to_string(&event).unwrap();
        assert!(!json.contains(key), "{json}");
        assert!(event
            .context
            .packed_diff
            .contains("\n REGION=eu\n-OLD=1\n+AWS_ACCESS_KEY_ID=[REDACTED:"));
        assert!(event.context.packed_diff.ends_with('\n'));
        let in_diff = event
            .context
            .secrets
            .iter()
            .find(|s| s.file == "config/prod.env")
            .unwrap();
        assert_eq!(
            (in_diff.kind, in_diff.line),
            (SecretKind::AwsAccessKey, Some(2))
        );

        // Redacting again finds nothing new and changes nothing.
        let before = event.clone();
        assert_eq!(redact_event(&mut event, &Redactor::new()), 0);
        assert_eq!(event, before);
    }
}
