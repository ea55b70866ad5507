//! The file list of a range: one `git diff --raw --numstat -z` pass gives every file's
//! status, old path and line counts before any diff text is read, so packing can be
//! planned up front.

use gate_core::{classify_path, ChangedFile, FileStatus};

use crate::cli::Git;
use crate::error::GitError;

/// Flags shared by the listing and the diff pass: both must see the same files in the
/// same order, whatever the user's diff configuration says.
pub(crate) const DIFF_FLAGS: &[&str] = &[
    "--find-renames",
    "--find-copies",
    "--no-ext-diff",
    "--no-textconv",
    "--no-color",
    "--no-relative",
    "--ignore-submodules=none",
    "--submodule=short",
];

/// Lists the files changed between two commits (or trees), in git's order.
pub(crate) fn list_files(git: &Git, base: &str, head: &str) -> Result<Vec<ChangedFile>, GitError> {
    let mut args = vec!["diff", "--raw", "--numstat", "-z"];
    args.extend_from_slice(DIFF_FLAGS);
    args.extend_from_slice(&[base, head, "--"]);
    let stdout = git.run(&args)?;
    parse_listing(&stdout).ok_or_else(|| GitError::CommandFailed {
        command: format!("git {}", args.join(" ")),
        stderr: "output not understood (raw and numstat records do not match)".to_owned(),
    })
}

/// Parses `--raw --numstat -z` output: all raw records (`:modes ids STATUS\0path\0`,
/// two paths for renames and copies), then one numstat record per file in the same
/// order (`adds\tdels\tpath\0`, or `adds\tdels\t\0old\0new\0`; `-\t-` for binary).
fn parse_listing(stdout: &[u8]) -> Option<Vec<ChangedFile>> {
    let mut fields = stdout.split(|byte| *byte == 0).peekable();
    let mut files = Vec::new();
    while let Some(raw) = fields.next_if(|field| field.first() == Some(&b':')) {
        let status_field = raw.rsplit(|byte| *byte == b' ').next()?;
        let status = match status_field.first()? {
            b'A' => FileStatus::Added,
            b'M' => FileStatus::Modified,
            b'D' => FileStatus::Deleted,
            b'R' => FileStatus::Renamed,
            b'C' => FileStatus::Copied,
            b'T' => FileStatus::TypeChanged,
            // Unmerged or unknown: cannot happen between two commits; read as modified.
            _ => FileStatus::Modified,
        };
        let first = lossy(fields.next()?);
        let (path, old_path) = if matches!(status, FileStatus::Renamed | FileStatus::Copied) {
            (lossy(fields.next()?), Some(first))
        } else {
            (first, None)
        };
        let class = classify_path(&path);
        files.push(ChangedFile {
            path,
            old_path,
            status,
            additions: 0,
            deletions: 0,
            binary: false,
            class,
        });
    }
    for file in &mut files {
        let numstat = fields.next()?;
        let mut parts = numstat.splitn(3, |byte| *byte == b'\t');
        let (adds, dels, path) = (parts.next()?, parts.next()?, parts.next()?);
        if path.is_empty() {
            // Rename or copy: the two paths follow as their own fields.
            fields.next()?;
            fields.next()?;
        }
        if adds == b"-" && dels == b"-" {
            file.binary = true;
        } else {
            file.additions = number(adds)?;
            file.deletions = number(dels)?;
        }
    }
    Some(files)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn number(digits: &[u8]) -> Option<u64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_numstat_records_are_joined_in_order() {
        let out = b":100644 100644 a b M\0bin\0:100644 100644 a a R075\0x\0y\0:000000 100644 0 c A\0ta\tb\0-\t-\tbin\x001\t0\t\0x\0y\x002\t3\tta\tb\0";
        let files = parse_listing(out).unwrap();
        assert_eq!(files.len(), 3);
        assert!(files[0].binary);
        assert_eq!(
            (
                files[1].status,
                files[1].old_path.as_deref(),
                files[1].path.as_str()
            ),
            (FileStatus::Renamed, Some("x"), "y")
        );
        assert_eq!((files[1].additions, files[1].deletions), (1, 0));
        assert_eq!(
            (
                files[2].path.as_str(),
                files[2].additions,
                files[2].deletions
            ),
            ("ta\tb", 2, 3)
        );
    }

    #[test]
    fn empty_output_is_an_empty_list() {
        assert_eq!(parse_listing(b"").unwrap(), Vec::new());
    }
}
