//! Reading unified diff text line by line.
//!
//! One state machine serves both ends of the fleet: the git crate feeds it the lines of
//! `git diff` as they stream out of git, and [`walk_packed_diff`] feeds it the packed
//! diff of a [`DeployContext`] when a worker only has the context. Both therefore agree
//! on what a file start, a hunk and a line number are.
//!
//! No I/O here: the parser takes one line at a time, as bytes, without its newline.

use std::borrow::Cow;

use crate::{classify_path, ChangedFile, DeployContext, DiffVisitor, FileStatus, LineKind};

/// What one line of unified diff text is, as understood by [`DiffParser::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffLine<'a> {
    /// `diff --git a/… b/…`: a new file section starts. Its path may only be settled
    /// by the header lines that follow ([`DiffParser::path`]), so consumers that need
    /// it wait for the first [`DiffLine::Hunk`] or the next file start.
    FileStart,
    /// An extended header line of the current file (`index`, modes, `similarity index`,
    /// `rename from/to`, `copy from/to`, `---`, `+++`, …).
    Header,
    /// `Binary files … differ` or `GIT binary patch`: the file has no text lines.
    Binary,
    /// A hunk header `@@ -old_start,old_count +new_start,new_count @@ heading`.
    Hunk {
        /// First line of the hunk in the old file.
        old_start: u32,
        /// Lines of the old file in the hunk.
        old_count: u32,
        /// First line of the hunk in the new file.
        new_start: u32,
        /// Lines of the new file in the hunk.
        new_count: u32,
        /// Whatever follows the closing `@@` (git's function context), verbatim.
        heading: &'a [u8],
    },
    /// An added, removed or context line, with its text (marker stripped) and its line
    /// number: in the new file for added and context lines, in the old file for removed.
    Content {
        /// Which side the line is on.
        kind: LineKind,
        /// Line number (see above).
        line_no: u32,
        /// The line without its marker and newline.
        text: &'a [u8],
    },
    /// `\ No newline at end of file` after a content line.
    NoNewline,
    /// Anything else: text outside any file, or a line that breaks the hunk's counts
    /// (such as a truncation marker). A hunk ends at such a line.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first `diff --git`.
    Outside,
    /// In the header lines of a file, before its first hunk.
    Header,
    /// Inside a hunk with lines still to come.
    Hunk,
    /// A hunk's counted lines are all seen; only `\`, `@@` or a new file may follow.
    AfterHunk,
}

/// A line-at-a-time unified diff reader that tracks the current file's paths and the
/// line numbers of every content line.
///
/// Feed it every line of the diff in order. It trusts hunk counts (so a removed line
/// reading `-- x` is never taken for a `---` header) yet recovers at any `diff --git`
/// or `@@` line, so text cut short still parses.
#[derive(Debug, Clone)]
pub struct DiffParser {
    state: State,
    old_next: u32,
    new_next: u32,
    old_left: u32,
    new_left: u32,
    old_path: Option<String>,
    new_path: Option<String>,
}

impl Default for DiffParser {
    fn default() -> Self {
        DiffParser::new()
    }
}

impl DiffParser {
    /// A parser positioned before the first file.
    pub fn new() -> Self {
        DiffParser {
            state: State::Outside,
            old_next: 0,
            new_next: 0,
            old_left: 0,
            new_left: 0,
            old_path: None,
            new_path: None,
        }
    }

    /// The current file's path as known so far: the new path, or the old one for a
    /// deletion. Settled once the header lines are read (at the first hunk).
    pub fn path(&self) -> Option<&str> {
        self.new_path.as_deref().or(self.old_path.as_deref())
    }

    /// The current file's path before the change (`None` for an added file).
    pub fn old_path(&self) -> Option<&str> {
        self.old_path.as_deref()
    }

    /// Reads one line (without its `\n`) and says what it is.
    pub fn feed<'a>(&mut self, line: &'a [u8]) -> DiffLine<'a> {
        if self.state == State::Hunk {
            if let Some(content) = self.content(line) {
                return content;
            }
        }
        if let Some(rest) = line.strip_prefix(b"diff --git ") {
            self.start_file(rest);
            return DiffLine::FileStart;
        }
        if self.state == State::Outside {
            return DiffLine::Other;
        }
        if line.starts_with(b"@@ ") {
            if let Some(hunk) = parse_hunk_header(line) {
                if let DiffLine::Hunk {
                    old_start,
                    old_count,
                    new_start,
                    new_count,
                    ..
                } = hunk
                {
                    self.old_next = old_start;
                    self.new_next = new_start;
                    self.old_left = old_count;
                    self.new_left = new_count;
                    self.state = if old_count == 0 && new_count == 0 {
                        State::AfterHunk
                    } else {
                        State::Hunk
                    };
                }
                return hunk;
            }
        }
        if line.starts_with(b"\\ ") && matches!(self.state, State::Hunk | State::AfterHunk) {
            // Follows the last line of either side, possibly mid-hunk.
            return DiffLine::NoNewline;
        }
        match self.state {
            State::Header => self.header(line),
            _ => {
                self.state = State::AfterHunk;
                DiffLine::Other
            }
        }
    }

    fn content<'a>(&mut self, line: &'a [u8]) -> Option<DiffLine<'a>> {
        // git writes an empty context line as "" with diff.suppressBlankEmpty.
        let (marker, text) = match line.split_first() {
            Some((marker, text)) => (*marker, text),
            None => (b' ', line),
        };
        let (kind, line_no) = match marker {
            b'+' if self.new_left > 0 => {
                self.new_left -= 1;
                self.new_next += 1;
                (LineKind::Added, self.new_next - 1)
            }
            b'-' if self.old_left > 0 => {
                self.old_left -= 1;
                self.old_next += 1;
                (LineKind::Removed, self.old_next - 1)
            }
            b' ' if self.old_left > 0 && self.new_left > 0 => {
                self.old_left -= 1;
                self.new_left -= 1;
                self.old_next += 1;
                self.new_next += 1;
                (LineKind::Context, self.new_next - 1)
            }
            _ => return None,
        };
        if self.old_left == 0 && self.new_left == 0 {
            self.state = State::AfterHunk;
        }
        Some(DiffLine::Content {
            kind,
            line_no,
            text,
        })
    }

    fn start_file(&mut self, names: &[u8]) {
        self.state = State::Header;
        let (old, new) = split_git_header_names(names);
        self.old_path = old;
        self.new_path = new;
    }

    fn header<'a>(&mut self, line: &'a [u8]) -> DiffLine<'a> {
        if line.starts_with(b"Binary files ") || line.starts_with(b"GIT binary patch") {
            return DiffLine::Binary;
        }
        if let Some(name) = line.strip_prefix(b"--- ") {
            self.old_path = header_path(name, "a/");
        } else if let Some(name) = line.strip_prefix(b"+++ ") {
            self.new_path = header_path(name, "b/");
        } else if let Some(name) = strip_any(line, &[b"rename from ", b"copy from "]) {
            self.old_path = Some(unquote(name));
        } else if let Some(name) = strip_any(line, &[b"rename to ", b"copy to "]) {
            self.new_path = Some(unquote(name));
        }
        DiffLine::Header
    }
}

fn strip_any<'a>(line: &'a [u8], prefixes: &[&[u8]]) -> Option<&'a [u8]> {
    prefixes
        .iter()
        .find_map(|prefix| line.strip_prefix(*prefix))
}

/// A `---`/`+++` name: `/dev/null` is no file; git appends a tab to names with spaces.
fn header_path(name: &[u8], prefix: &str) -> Option<String> {
    let name = name.strip_suffix(b"\t").unwrap_or(name);
    if name == b"/dev/null" {
        return None;
    }
    let name = unquote(name);
    Some(name.strip_prefix(prefix).map(str::to_owned).unwrap_or(name))
}

/// Splits `a/old b/new` from a `diff --git` line. Unquoted names with spaces are only
/// unambiguous when both are the same, which is every change but a rename or copy
/// (whose `rename to`/`copy to` lines settle the names right after).
fn split_git_header_names(names: &[u8]) -> (Option<String>, Option<String>) {
    let names = names.strip_suffix(b"\r").unwrap_or(names);
    if names.first() == Some(&b'"') {
        if let Some((old, rest)) = take_quoted(names) {
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            let new = if rest.first() == Some(&b'"') {
                take_quoted(rest).map(|(name, _)| name)
            } else {
                Some(String::from_utf8_lossy(rest).into_owned())
            };
            return (strip_side(Some(old), "a/"), strip_side(new, "b/"));
        }
        return (None, None);
    }
    if let Some(quote) = names.windows(2).position(|pair| pair == b" \"") {
        let old = String::from_utf8_lossy(&names[..quote]).into_owned();
        let new = take_quoted(&names[quote + 1..]).map(|(name, _)| name);
        return (strip_side(Some(old), "a/"), strip_side(new, "b/"));
    }
    // Symmetric case: "a/P b/P".
    if names.len() % 2 == 1 {
        let half = names.len() / 2;
        let (old, new) = (&names[..half], &names[half + 1..]);
        if names[half] == b' '
            && old.get(2..) == new.get(2..)
            && old.starts_with(b"a/")
            && new.starts_with(b"b/")
        {
            let path = String::from_utf8_lossy(&old[2..]).into_owned();
            return (Some(path.clone()), Some(path));
        }
    }
    // Renamed without spaces: exactly one " b/" separator.
    let separators: Vec<usize> = names
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == b" b/")
        .map(|(i, _)| i)
        .collect();
    if let [at] = separators[..] {
        let old = String::from_utf8_lossy(&names[..at]).into_owned();
        let new = String::from_utf8_lossy(&names[at + 1..]).into_owned();
        return (strip_side(Some(old), "a/"), strip_side(Some(new), "b/"));
    }
    (None, None)
}

fn strip_side(name: Option<String>, prefix: &str) -> Option<String> {
    name.map(|name| name.strip_prefix(prefix).map(str::to_owned).unwrap_or(name))
}

/// Reads a C-quoted name (`"a/tab\there"`) at the start of `text`; returns it unquoted
/// and the rest after the closing quote.
fn take_quoted(text: &[u8]) -> Option<(String, &[u8])> {
    let body = text.strip_prefix(b"\"")?;
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => return Some((String::from_utf8_lossy(&out).into_owned(), &body[i + 1..])),
            b'\\' => {
                let escaped = *body.get(i + 1)?;
                i += 2;
                match escaped {
                    b'a' => out.push(0x07),
                    b'b' => out.push(0x08),
                    b't' => out.push(b'\t'),
                    b'n' => out.push(b'\n'),
                    b'v' => out.push(0x0b),
                    b'f' => out.push(0x0c),
                    b'r' => out.push(b'\r'),
                    b'0'..=b'7' => {
                        let mut value = u32::from(escaped - b'0');
                        let mut digits = 1;
                        while digits < 3 && i < body.len() && (b'0'..=b'7').contains(&body[i]) {
                            value = value * 8 + u32::from(body[i] - b'0');
                            i += 1;
                            digits += 1;
                        }
                        out.push(u8::try_from(value & 0xff).unwrap_or(b'?'));
                    }
                    other => out.push(other),
                }
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    None
}

/// A name as git prints it in header lines: C-quoted when it holds unusual bytes.
fn unquote(name: &[u8]) -> String {
    if name.first() == Some(&b'"') {
        if let Some((unquoted, _)) = take_quoted(name) {
            return unquoted;
        }
    }
    String::from_utf8_lossy(name).into_owned()
}

fn parse_hunk_header(line: &[u8]) -> Option<DiffLine<'_>> {
    let rest = line.strip_prefix(b"@@ -")?;
    let (old_start, old_count, rest) = parse_range(rest)?;
    let rest = rest.strip_prefix(b" +")?;
    let (new_start, new_count, rest) = parse_range(rest)?;
    let heading = rest.strip_prefix(b" @@")?;
    Some(DiffLine::Hunk {
        old_start,
        old_count,
        new_start,
        new_count,
        heading,
    })
}

/// `start[,count]`; a missing count means one line.
fn parse_range(text: &[u8]) -> Option<(u32, u32, &[u8])> {
    let (start, rest) = parse_number(text)?;
    match rest.strip_prefix(b",") {
        Some(rest) => {
            let (count, rest) = parse_number(rest)?;
            Some((start, count, rest))
        }
        None => Some((start, 1, rest)),
    }
}

fn parse_number(text: &[u8]) -> Option<(u32, &[u8])> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 {
        return None;
    }
    let value = text[..digits]
        .iter()
        .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
    Some((value, &text[digits..]))
}

/// Replays a context's packed diff through a visitor, with the same file starts, line
/// kinds and line numbers the visitor would have seen while the diff streamed out of
/// git (for the part of the diff that was packed).
///
/// Why: the fleet's workers receive only the packed context, yet run the same
/// visitors (the rules analyzer) as the CLI does against a repository.
///
/// Each file section is matched to `context.files` by path; a section whose path is
/// not listed (a hand-edited context) gets a stand-in `ChangedFile` so no line is lost.
/// Text outside file sections (truncation markers, the lockfile summary) is skipped.
pub fn walk_packed_diff(context: &DeployContext, visitor: &mut dyn DiffVisitor) {
    let mut parser = DiffParser::new();
    let mut pending_start = false;
    let mut current: Option<Cow<'_, ChangedFile>> = None;
    for line in context.packed_diff.split('\n') {
        if pending_start && line.starts_with("diff --git ") {
            // A section without hunks (pure rename, mode change): its paths are final.
            announce(context, &parser, &mut current, visitor);
        }
        match parser.feed(line.as_bytes()) {
            DiffLine::FileStart => {
                pending_start = true;
                current = None;
            }
            DiffLine::Hunk { .. } if pending_start => {
                pending_start = false;
                announce(context, &parser, &mut current, visitor);
            }
            DiffLine::Content {
                kind,
                line_no,
                text,
            } => {
                if let Some(file) = current.as_deref() {
                    visitor.line(file, kind, line_no, &String::from_utf8_lossy(text));
                }
            }
            _ => {}
        }
    }
    if pending_start {
        announce(context, &parser, &mut current, visitor);
    }
}

/// Calls `visitor.file` for the section the parser is in, once its paths are settled.
fn announce<'c>(
    context: &'c DeployContext,
    parser: &DiffParser,
    current: &mut Option<Cow<'c, ChangedFile>>,
    visitor: &mut dyn DiffVisitor,
) {
    let path = parser.path().unwrap_or_default();
    let file = match context.files.iter().find(|file| file.path == path) {
        Some(file) => Cow::Borrowed(file),
        None => Cow::Owned(ChangedFile {
            path: path.to_owned(),
            old_path: parser
                .old_path()
                .filter(|old| *old != path)
                .map(str::to_owned),
            status: FileStatus::Modified,
            additions: 0,
            deletions: 0,
            binary: false,
            class: classify_path(path),
        }),
    };
    visitor.file(&file);
    *current = Some(file);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(text: &str) -> (DiffParser, Vec<String>) {
        let mut parser = DiffParser::new();
        let mut seen = Vec::new();
        for line in text.lines() {
            let described = match parser.feed(line.as_bytes()) {
                DiffLine::FileStart => "file".to_owned(),
                DiffLine::Header => "header".to_owned(),
                DiffLine::Binary => "binary".to_owned(),
                DiffLine::Hunk {
                    old_start,
                    old_count,
                    new_start,
                    new_count,
                    ..
                } => {
                    format!("hunk {old_start},{old_count} {new_start},{new_count}")
                }
                DiffLine::Content {
                    kind,
                    line_no,
                    text,
                } => {
                    format!("{kind:?} {line_no} {}", String::from_utf8_lossy(text))
                }
                DiffLine::NoNewline => "nonewline".to_owned(),
                DiffLine::Other => "other".to_owned(),
            };
            seen.push(described);
        }
        (parser, seen)
    }

    #[test]
    fn numbers_added_lines_in_the_new_file_and_removed_lines_in_the_old() {
        let diff = "diff --git a/x b/x\nindex 1..2 100644\n--- a/x\n+++ b/x\n@@ -10,3 +20,3 @@ fn f()\n a\n-b\n+c\n d\n";
        let (parser, seen) = feed_all(diff);
        assert_eq!(
            seen,
            [
                "file",
                "header",
                "header",
                "header",
                "hunk 10,3 20,3",
                "Context 20 a",
                "Removed 11 b",
                "Added 21 c",
                "Context 22 d"
            ]
        );
        assert_eq!(parser.path(), Some("x"));
    }

    #[test]
    fn removed_line_that_looks_like_a_header_stays_a_line() {
        let diff = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,2 +1,0 @@\n--- a/y\n-+++ b/y\n";
        let (_, seen) = feed_all(diff);
        assert_eq!(seen[4..], ["Removed 1 -- a/y", "Removed 2 +++ b/y"]);
    }

    #[test]
    fn reads_quoted_renamed_and_deleted_paths() {
        let (parser, _) = feed_all("diff --git \"a/ta\\tb\" \"b/ta\\tb\"\nnew file mode 100644\n");
        assert_eq!(parser.path(), Some("ta\tb"));
        let (parser, _) = feed_all("diff --git a/d i/x y b/d i/z w\nsimilarity index 90%\nrename from d i/x y\nrename to d i/z w\n");
        assert_eq!(
            (parser.old_path(), parser.path()),
            (Some("d i/x y"), Some("d i/z w"))
        );
        let (parser, _) = feed_all("diff --git a/sp ace b/sp ace\nnew file mode 100644\n");
        assert_eq!(parser.path(), Some("sp ace"));
        let (parser, _) = feed_all("diff --git a/gone b/gone\ndeleted file mode 100644\n--- a/gone\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n");
        assert_eq!(parser.path(), Some("gone"));
        let (parser, _) = feed_all("diff --git \"a/\\303\\251\" \"b/\\303\\251\"\n");
        assert_eq!(parser.path(), Some("é"));
    }

    #[test]
    fn no_newline_marker_and_binary_notice_are_recognised() {
        let diff = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n\\ No newline at end of file\ndiff --git a/y b/y\nBinary files a/y and b/y differ\n";
        let (_, seen) = feed_all(diff);
        assert_eq!(
            seen[3..],
            [
                "hunk 1,1 1,1",
                "Removed 1 a",
                "nonewline",
                "Added 1 b",
                "nonewline",
                "file",
                "binary"
            ]
        );
    }

    #[test]
    fn text_cut_short_recovers_at_the_next_file() {
        let diff = "diff --git a/x b/x\n@@ -1,5 +1,5 @@\n a\n… [cut]\n+not a line\ndiff --git a/y b/y\n@@ -0,0 +1 @@\n+y\n";
        let (_, seen) = feed_all(diff);
        assert_eq!(
            seen,
            [
                "file",
                "hunk 1,5 1,5",
                "Context 1 a",
                "other",
                "other",
                "file",
                "hunk 0,0 1,1",
                "Added 1 y"
            ]
        );
    }
}
