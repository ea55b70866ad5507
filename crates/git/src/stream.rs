//! The one streaming pass over `git diff`: every line is redacted, shown to the
//! visitor, read for lockfile versions and offered to the packer, then forgotten.

use std::io::{BufRead, BufReader, Read};
use std::thread;

use gate_core::{
    ChangedFile, DepChange, DiffLine, DiffParser, DiffVisitor, FileClass, FileStatus, LineKind,
    LineRedactor, Redactor, SecretFinding,
};

use crate::cli::{failed, Git};
use crate::error::GitError;
use crate::listing::DIFF_FLAGS;
use crate::lockfile::LockfileReader;
use crate::pack::Packer;

/// Read buffer for git's stdout: large enough that a read is rarely a short one.
const READ_BUFFER: usize = 256 * 1024;
/// git's stderr is kept up to this size for the error message.
const STDERR_LIMIT: u64 = 64 * 1024;

/// What the streaming pass found besides the packed text.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Secrets redacted out of diff lines, in diff order.
    pub(crate) secrets: Vec<SecretFinding>,
    /// Version changes read from lockfiles, in diff order.
    pub(crate) dep_changes: Vec<DepChange>,
}

/// Streams `git diff <base> <head>` through the parser, the redactor, the visitor and
/// the packer. `files` must be the listing of the same range with the same flags:
/// git prints file sections in the listing's order.
pub(crate) fn stream_diff(
    git: &Git,
    base: &str,
    head: &str,
    files: &[ChangedFile],
    packer: &mut Packer,
    redactor: &Redactor,
    visitor: &mut dyn DiffVisitor,
) -> Result<Findings, GitError> {
    let mut args = vec!["diff", "--unified=3", "--src-prefix=a/", "--dst-prefix=b/"];
    args.extend_from_slice(DIFF_FLAGS);
    args.extend_from_slice(&[base, head, "--"]);

    let mut child = git.spawn(&args)?;
    let stderr = child.stderr.take();
    let stderr_reader = thread::spawn(move || {
        let mut message = Vec::new();
        if let Some(mut stderr) = stderr {
            let _ = Read::by_ref(&mut stderr)
                .take(STDERR_LIMIT)
                .read_to_end(&mut message);
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        }
        message
    });
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(GitError::Io {
            doing: "reading git diff",
            source: std::io::Error::other("no stdout pipe"),
        });
    };

    let mut reader = DiffReader {
        files,
        packer,
        redactor,
        line_redactor: redactor.line_redactor(),
        visitor,
        parser: DiffParser::new(),
        current: None,
        n_sections: 0,
        next_file: 0,
        lockfile: None,
        findings: Findings::default(),
    };
    let mut input = BufReader::with_capacity(READ_BUFFER, stdout);
    let mut line: Vec<u8> = Vec::with_capacity(4096);
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                reader.line(&line);
            }
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(GitError::Io {
                    doing: "reading the output of git diff",
                    source: error,
                });
            }
        }
    }
    reader.finish_lockfile();
    let findings = reader.findings;
    let status = child.wait().map_err(|source| GitError::Io {
        doing: "waiting for git diff",
        source,
    })?;
    let message = stderr_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(failed(&args, &message));
    }
    Ok(findings)
}

struct DiffReader<'a> {
    files: &'a [ChangedFile],
    packer: &'a mut Packer,
    redactor: &'a Redactor,
    line_redactor: LineRedactor<'a>,
    visitor: &'a mut dyn DiffVisitor,
    parser: DiffParser,
    /// Index in `files` of the section being read.
    current: Option<usize>,
    /// Sections read for the current file (a type change prints two).
    n_sections: u32,
    next_file: usize,
    lockfile: Option<LockfileReader>,
    findings: Findings,
}

impl DiffReader<'_> {
    fn line(&mut self, bytes: &[u8]) {
        match self.parser.feed(bytes) {
            DiffLine::FileStart => self.start_file(bytes),
            DiffLine::Header => {
                // The blob ids of `index` lines say nothing to a reader; keep the budget.
                if let (Some(file_idx), false) = (self.current, bytes.starts_with(b"index ")) {
                    self.packer
                        .offer(file_idx, &[&String::from_utf8_lossy(bytes)]);
                }
            }
            DiffLine::Hunk { heading, .. } => {
                let Some(file_idx) = self.current else { return };
                if let Some(lockfile) = &mut self.lockfile {
                    lockfile.hunk();
                }
                let head = String::from_utf8_lossy(&bytes[..bytes.len() - heading.len()]);
                let heading = String::from_utf8_lossy(heading);
                // git's function context is a line of the old file: redact it too.
                let heading = self.redactor.redact(&heading);
                self.packer.offer(file_idx, &[&head, &heading.text]);
            }
            DiffLine::Content {
                kind,
                line_no,
                text,
            } => self.content(kind, line_no, text),
            DiffLine::NoNewline => {
                if let Some(file_idx) = self.current {
                    self.packer
                        .offer(file_idx, &[&String::from_utf8_lossy(bytes)]);
                }
            }
            DiffLine::Binary | DiffLine::Other => {}
        }
    }

    fn start_file(&mut self, bytes: &[u8]) {
        let second_half_of_type_change = self.current.is_some_and(|idx| {
            self.files[idx].status == FileStatus::TypeChanged && self.n_sections == 1
        });
        if second_half_of_type_change {
            self.n_sections += 1;
        } else {
            self.finish_lockfile();
            let mut file_idx = self.next_file;
            // Sections follow the listing's order; a definite mismatch (never seen in
            // practice) realigns on the path rather than misattributing lines.
            if let Some(path) = self.parser.path() {
                if self
                    .files
                    .get(file_idx)
                    .is_some_and(|file| file.path != path)
                {
                    if let Some(offset) = self.files[file_idx..]
                        .iter()
                        .position(|file| file.path == path)
                    {
                        file_idx += offset;
                    }
                }
            }
            self.next_file = file_idx + 1;
            self.n_sections = 1;
            self.current = (file_idx < self.files.len()).then_some(file_idx);
            if let Some(file) = self.files.get(file_idx) {
                if file.class == FileClass::Lockfile {
                    self.lockfile = Some(LockfileReader::new(&file.path));
                }
            }
        }
        self.line_redactor.reset();
        if let Some(file_idx) = self.current {
            self.visitor.file(&self.files[file_idx]);
            self.packer
                .offer(file_idx, &[&String::from_utf8_lossy(bytes)]);
        }
    }

    fn content(&mut self, kind: LineKind, line_no: u32, text: &[u8]) {
        let Some(file_idx) = self.current else { return };
        let file = &self.files[file_idx];
        let text = String::from_utf8_lossy(text);
        let redacted = self.line_redactor.redact_line(&text);
        for secret_kind in &redacted.kinds {
            self.findings.secrets.push(SecretFinding {
                kind: *secret_kind,
                file: file.path.clone(),
                // Removed lines have no place in the new file.
                line: (kind != LineKind::Removed).then_some(line_no),
            });
        }
        self.visitor.line(file, kind, line_no, &redacted.text);
        if let Some(lockfile) = &mut self.lockfile {
            lockfile.line(kind, &redacted.text);
        }
        let marker = match kind {
            LineKind::Added => "+",
            LineKind::Removed => "-",
            LineKind::Context => " ",
        };
        self.packer.offer(file_idx, &[marker, &redacted.text]);
    }

    fn finish_lockfile(&mut self) {
        if let (Some(lockfile), Some(file_idx)) = (self.lockfile.take(), self.current) {
            self.findings
                .dep_changes
                .extend(lockfile.finish(&self.files[file_idx].path));
        }
    }
}
