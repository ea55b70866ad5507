//! Risk-aware packing of the diff into a character budget.
//!
//! The policy, decided up front from the file list:
//! - **Order.** Files are ranked by [`FileClass`] (migrations, auth, config, infra,
//!   manifests, code, then lockfiles, tests, docs, generated), then by size in changed
//!   lines, smallest first — so many small risky files beat one huge one — then by path
//!   so the order is total and the output deterministic.
//! - **Not dumped.** Binary files ("binary") and generated files ("generated") are only
//!   listed; lockfiles are summarized as dependency version changes in a short
//!   `lockfile summary` section placed at the lockfiles' rank.
//! - **Shares.** The pack is the budget-long prefix of the ranked files' diff text, cut
//!   at line boundaries, each file limited to a share set from estimated sizes (line
//!   counts): class by class in rank order, the budget still unclaimed is split evenly
//!   among the class's files (water-filling: small files take what they need, the
//!   rest share what is left), never below [`MIN_SHARE`] — so ten migrations each
//!   show their start rather than three showing everything — and no file takes more
//!   than a third of the budget unless the other files' estimates leave it more — so
//!   one huge migration cannot starve the auth change ranked after it, yet a change
//!   with one big file shows most of it. An overestimate only leaves budget unused.
//! - **Reserves.** Room is set aside for the lockfile summary and for a closing line
//!   counting what was left out; a file cut short pays for its truncation marker.
//!
//! While the diff streams, [`Packer`] keeps exactly that prefix and nothing more: a
//! line of a high-ranked file that does not fit evicts the tail of the lowest-ranked
//! file held, so memory stays bounded by the budget whatever order git prints files in.
//!
//! Sizes are counted in bytes of UTF-8, never fewer than characters, so `packed_diff`
//! never exceeds `budget_chars` characters (nor bytes).

use std::collections::BTreeSet;

use gate_core::{ChangedFile, DepChange, DiffLine, DiffParser, FileClass, LineKind, Omission};

/// Bytes held back for a truncation marker line (the marker itself is shorter).
const MARKER_RESERVE: usize = 96;
/// Bytes held back for the closing "N files not shown in full" line.
const FOOTER_RESERVE: usize = 240;
/// Bytes the lockfile summary is assumed to need per changed lockfile line.
const LOCK_BYTES_PER_LINE: usize = 24;

/// How a file is represented in the pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Its diff text competes for the budget.
    Dump,
    /// Listed, never dumped.
    Binary,
    /// Listed, never dumped.
    Generated,
    /// Summarized as dependency changes.
    Lockfile,
}

/// One file's share of the pack.
#[derive(Debug, Default)]
struct Slot {
    rank: usize,
    dumped: bool,
    /// Most bytes this file may take, marker included.
    cap: usize,
    /// The kept prefix of the file's section; each line ends with `\n`.
    text: String,
    /// Where each kept line ends in `text`.
    line_ends: Vec<usize>,
    /// Size of the whole section as it would be packed.
    full_bytes: usize,
    full_chars: usize,
    /// Some of the section is not kept.
    cut: bool,
    /// git printed a section for this file.
    seen: bool,
}

impl Slot {
    fn pop_line(&mut self) -> usize {
        let end = self.line_ends.pop().unwrap_or(0);
        let start = self.line_ends.last().copied().unwrap_or(0);
        self.text.truncate(start);
        end - start
    }
}

/// The streaming half of packing: holds the budget-long, rank-ordered prefix of the
/// diff text seen so far.
#[derive(Debug)]
pub(crate) struct Packer {
    budget: usize,
    /// Budget for file sections: the budget less the reserves.
    avail: usize,
    lock_reserve: usize,
    used: usize,
    slots: Vec<Slot>,
    order: Vec<usize>,
    dispositions: Vec<Disposition>,
    /// Ranks of files that hold text.
    holders: BTreeSet<usize>,
}

impl Packer {
    /// Plans the pack for `files` (see the module docs).
    pub(crate) fn new(files: &[ChangedFile], budget: usize) -> Packer {
        let dispositions: Vec<Disposition> = files.iter().map(disposition).collect();
        let mut order: Vec<usize> = (0..files.len()).collect();
        order.sort_by(|&a, &b| {
            let key = |idx: usize| {
                (
                    files[idx].class,
                    files[idx].additions + files[idx].deletions,
                    &files[idx].path,
                )
            };
            key(a).cmp(&key(b)).then(a.cmp(&b))
        });

        let lock_lines: u64 = files
            .iter()
            .zip(&dispositions)
            .filter(|(_, d)| **d == Disposition::Lockfile)
            .map(|(file, _)| file.additions + file.deletions)
            .sum();
        let has_lockfile = dispositions.contains(&Disposition::Lockfile);
        let lock_reserve = if has_lockfile {
            (budget / 8).min(
                96 + LOCK_BYTES_PER_LINE
                    .saturating_mul(usize::try_from(lock_lines).unwrap_or(usize::MAX)),
            )
        } else {
            0
        };
        let footer_reserve = FOOTER_RESERVE.min(budget / 4);
        let avail = budget.saturating_sub(lock_reserve + footer_reserve);

        let estimates: Vec<usize> = files
            .iter()
            .zip(&dispositions)
            .map(|(file, d)| {
                if *d == Disposition::Dump {
                    estimate(file)
                } else {
                    0
                }
            })
            .collect();
        let caps = plan_caps(files, &order, &dispositions, &estimates, avail);
        let mut slots: Vec<Slot> = caps
            .iter()
            .zip(&dispositions)
            .map(|(cap, d)| Slot {
                dumped: *d == Disposition::Dump,
                cap: *cap,
                ..Slot::default()
            })
            .collect();
        for (rank, &idx) in order.iter().enumerate() {
            slots[idx].rank = rank;
        }
        Packer {
            budget,
            avail,
            lock_reserve,
            used: 0,
            slots,
            order,
            dispositions,
            holders: BTreeSet::new(),
        }
    }

    /// Offers one line of file `file_idx`'s section (the concatenation of `parts`, a
    /// newline is added). Kept if it belongs to the budget-long prefix; either way
    /// counted in the file's full size.
    pub(crate) fn offer(&mut self, file_idx: usize, parts: &[&str]) {
        let Some(slot) = self.slots.get_mut(file_idx) else {
            return;
        };
        if !slot.dumped {
            return;
        }
        let len = parts.iter().map(|part| part.len()).sum::<usize>() + 1;
        slot.full_bytes += len;
        slot.full_chars += parts.iter().map(|part| part.chars().count()).sum::<usize>() + 1;
        slot.seen = true;
        if slot.cut {
            return;
        }
        if slot.text.len() + len > slot.cap {
            self.cut(file_idx);
            return;
        }
        let rank = slot.rank;
        if !self.make_room(rank, len) {
            self.cut(file_idx);
            return;
        }
        let slot = &mut self.slots[file_idx];
        for part in parts {
            slot.text.push_str(part);
        }
        slot.text.push('\n');
        slot.line_ends.push(slot.text.len());
        self.used += len;
        self.holders.insert(rank);
    }

    /// Stops keeping a file's lines; it now pays for a truncation marker.
    fn cut(&mut self, file_idx: usize) {
        let slot = &mut self.slots[file_idx];
        slot.cut = true;
        while !slot.text.is_empty() && slot.text.len() + MARKER_RESERVE > slot.cap {
            self.used -= slot.pop_line();
        }
        let rank = slot.rank;
        if !self.slots[file_idx].text.is_empty() && !self.make_room(rank, MARKER_RESERVE) {
            let slot = &mut self.slots[file_idx];
            while !slot.text.is_empty() && self.used + MARKER_RESERVE > self.avail {
                self.used -= slot.pop_line();
            }
        }
        if self.slots[file_idx].text.is_empty() {
            self.holders.remove(&rank);
        } else {
            self.used += MARKER_RESERVE;
        }
    }

    /// Evicts lines from the tails of files ranked after `rank` until `need` more bytes
    /// fit; false if even that is not enough.
    fn make_room(&mut self, rank: usize, need: usize) -> bool {
        while self.used + need > self.avail {
            let Some(&lowest) = self.holders.last() else {
                return false;
            };
            if lowest <= rank {
                return false;
            }
            let slot = &mut self.slots[self.order[lowest]];
            if !slot.cut {
                slot.cut = true;
                self.used += MARKER_RESERVE;
            }
            self.used -= slot.pop_line();
            while !slot.text.is_empty() && slot.text.len() + MARKER_RESERVE > slot.cap {
                self.used -= slot.pop_line();
            }
            if slot.text.is_empty() {
                self.used -= MARKER_RESERVE;
                self.holders.remove(&lowest);
            }
        }
        true
    }

    /// Lays out the packed diff in rank order and says what it leaves out.
    pub(crate) fn finish(self, files: &[ChangedFile], dep_changes: &[DepChange]) -> Packed {
        let mut packed = String::with_capacity(self.budget.min(1 << 20));
        let mut omissions: Vec<Omission> = Vec::new();
        let mut counts = OmissionCounts::default();
        let summary_room = (self.avail + self.lock_reserve).saturating_sub(self.used);
        let mut summary_written = false;
        for &idx in &self.order {
            let file = &files[idx];
            if !summary_written && file.class >= FileClass::Lockfile {
                write_lock_summary(&mut packed, summary_room, files, &self, dep_changes);
                summary_written = true;
            }
            let slot = &self.slots[idx];
            let reason = match self.dispositions[idx] {
                Disposition::Binary => Some(("binary".to_owned(), &mut counts.binary)),
                Disposition::Generated => Some(("generated".to_owned(), &mut counts.generated)),
                Disposition::Lockfile => {
                    Some(("lockfile (summarized)".to_owned(), &mut counts.lockfile))
                }
                Disposition::Dump if !slot.seen => {
                    Some(("no diff text from git".to_owned(), &mut counts.missing))
                }
                Disposition::Dump if !slot.cut => {
                    packed.push_str(&slot.text);
                    None
                }
                Disposition::Dump => {
                    let (shown, has_content) = close_cut_section(&slot.text);
                    if has_content {
                        let shown_chars = shown.chars().count();
                        packed.push_str(&shown);
                        packed.push_str(&format!(
                            "… [deploy-gate: truncated, {} of {} chars shown]\n",
                            thousands(shown_chars),
                            thousands(slot.full_chars)
                        ));
                        let reason = format!(
                            "truncated after {} of {} chars",
                            thousands(shown_chars),
                            thousands(slot.full_chars)
                        );
                        Some((reason, &mut counts.truncated))
                    } else {
                        Some(("over budget".to_owned(), &mut counts.over_budget))
                    }
                }
            };
            if let Some((reason, count)) = reason {
                *count += 1;
                omissions.push(Omission {
                    path: file.path.clone(),
                    reason,
                });
            }
        }
        if !summary_written {
            write_lock_summary(&mut packed, summary_room, files, &self, dep_changes);
        }
        if !omissions.is_empty() {
            let footer = counts.footer(omissions.len(), files.len());
            if packed.len() + footer.len() <= self.budget {
                packed.push_str(&footer);
            }
        }
        if packed.len() > self.budget {
            // Unreachable by the accounting above; kept so the budget is a hard limit.
            let cut = packed[..self.budget].rfind('\n').map_or(0, |at| at + 1);
            packed.truncate(cut);
        }
        Packed {
            packed_diff: packed,
            omissions,
        }
    }
}

/// The layout of the pack and its omissions (all of them, in rank order).
#[derive(Debug)]
pub(crate) struct Packed {
    pub(crate) packed_diff: String,
    pub(crate) omissions: Vec<Omission>,
}

#[derive(Debug, Default)]
struct OmissionCounts {
    truncated: usize,
    over_budget: usize,
    binary: usize,
    generated: usize,
    lockfile: usize,
    missing: usize,
}

impl OmissionCounts {
    fn footer(&self, n_omitted: usize, n_files: usize) -> String {
        let parts: Vec<String> = [
            (self.truncated, "truncated"),
            (self.over_budget, "over budget"),
            (self.binary, "binary"),
            (self.generated, "generated"),
            (self.lockfile, "lockfiles summarized"),
            (self.missing, "without diff text"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{} {what}", thousands(*n)))
        .collect();
        format!(
            "… [deploy-gate: {} of {} files not shown in full ({}); the context's omissions list them]\n",
            thousands(n_omitted),
            thousands(n_files),
            parts.join(", ")
        )
    }
}

fn disposition(file: &ChangedFile) -> Disposition {
    if file.binary {
        Disposition::Binary
    } else if file.class == FileClass::Generated {
        Disposition::Generated
    } else if file.class == FileClass::Lockfile {
        Disposition::Lockfile
    } else {
        Disposition::Dump
    }
}

/// The smallest share worth giving a file: its header and a dozen lines.
const MIN_SHARE: usize = 600;

/// Each file's cap (see the module docs), by file index; 0 for files not dumped.
fn plan_caps(
    files: &[ChangedFile],
    order: &[usize],
    dispositions: &[Disposition],
    estimates: &[usize],
    avail: usize,
) -> Vec<usize> {
    let total_estimate: usize = estimates.iter().fold(0, |sum, e| sum.saturating_add(*e));
    let mut caps = vec![0; files.len()];
    let mut unclaimed = avail;
    let dumped: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&idx| dispositions[idx] == Disposition::Dump)
        .collect();
    for class_files in dumped.chunk_by(|&a, &b| files[a].class == files[b].class) {
        let mut class_estimates: Vec<usize> =
            class_files.iter().map(|&idx| estimates[idx]).collect();
        class_estimates.sort_unstable();
        let level = water_level(&class_estimates, unclaimed);
        let mut claimed = 0usize;
        for &idx in class_files {
            let others = total_estimate - estimates[idx];
            let third = (avail / 3).max(avail.saturating_sub(others));
            let cap = level.min(third).max(MIN_SHARE).min(avail);
            caps[idx] = cap;
            claimed = claimed.saturating_add(estimates[idx].min(cap));
        }
        unclaimed = unclaimed.saturating_sub(claimed);
    }
    caps
}

/// The level `L` at which `Σ min(estimate, L)` fills `room`; `usize::MAX` when
/// everything fits. `sorted` is ascending.
fn water_level(sorted: &[usize], room: usize) -> usize {
    let mut room_left = room;
    for (taken, estimate) in sorted.iter().enumerate() {
        let n_left = sorted.len() - taken;
        if estimate.saturating_mul(n_left) > room_left {
            return room_left / n_left;
        }
        room_left -= estimate;
    }
    usize::MAX
}

/// A guess at a file's packed size: headers (the path four times) plus changed lines
/// and a hunk's context at about 45 bytes a line.
fn estimate(file: &ChangedFile) -> usize {
    let lines = usize::try_from(file.additions + file.deletions).unwrap_or(usize::MAX);
    (40 + 4 * file.path.len()).saturating_add(lines.saturating_add(6).saturating_mul(45))
}

/// Ends a file section that was cut mid-way: the last hunk's header is rewritten to
/// count only the lines shown (so the pack stays a well-formed patch and re-parses
/// with the right line numbers), an empty trailing hunk is dropped. Also says whether
/// any content line is shown at all.
fn close_cut_section(text: &str) -> (String, bool) {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut parser = DiffParser::new();
    let mut has_content = false;
    let mut last_hunk: Option<(usize, [u32; 4], String)> = None;
    let (mut old_seen, mut new_seen) = (0u32, 0u32);
    for (line_idx, line) in lines.iter().enumerate() {
        match parser.feed(line.trim_end_matches('\n').as_bytes()) {
            DiffLine::Hunk {
                old_start,
                old_count,
                new_start,
                new_count,
                heading,
            } => {
                let heading = String::from_utf8_lossy(heading).into_owned();
                last_hunk = Some((
                    line_idx,
                    [old_start, old_count, new_start, new_count],
                    heading,
                ));
                (old_seen, new_seen) = (0, 0);
            }
            DiffLine::Content { kind, .. } => {
                has_content = true;
                match kind {
                    LineKind::Added => new_seen += 1,
                    LineKind::Removed => old_seen += 1,
                    LineKind::Context => {
                        old_seen += 1;
                        new_seen += 1;
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = String::with_capacity(text.len());
    for (line_idx, line) in lines.iter().enumerate() {
        match &last_hunk {
            Some((hunk_idx, [old_start, old_count, new_start, new_count], heading))
                if *hunk_idx == line_idx =>
            {
                if old_seen == 0 && new_seen == 0 {
                    continue;
                }
                if (old_seen, new_seen) == (*old_count, *new_count) {
                    out.push_str(line);
                    continue;
                }
                out.push_str(&format!(
                    "@@ -{} +{} @@{heading}\n",
                    hunk_range(*old_start, *old_count, old_seen),
                    hunk_range(*new_start, *new_count, new_seen)
                ));
            }
            _ => out.push_str(line),
        }
    }
    (out, has_content)
}

/// A hunk side in git's notation: `start` alone for one line; an empty side names the
/// line before it.
fn hunk_range(start: u32, original_count: u32, count: u32) -> String {
    match count {
        1 => start.to_string(),
        0 if original_count > 0 => format!("{},0", start.saturating_sub(1)),
        _ => format!("{start},{count}"),
    }
}

/// The `lockfile summary` section: each lockfile's version changes as
/// `package: old → new`, within `room` bytes, ending with a count of what did not fit.
fn write_lock_summary(
    out: &mut String,
    room: usize,
    files: &[ChangedFile],
    packer: &Packer,
    dep_changes: &[DepChange],
) {
    const HEADER: &str = "… [deploy-gate: lockfile summary; raw lockfile diffs are not shown]\n";
    const MORE_RESERVE: usize = 80;
    let lockfiles: Vec<&ChangedFile> = packer
        .order
        .iter()
        .filter(|&&idx| packer.dispositions[idx] == Disposition::Lockfile)
        .map(|&idx| &files[idx])
        .collect();
    if lockfiles.is_empty() || room < HEADER.len() + MORE_RESERVE {
        return;
    }
    let mut lines: Vec<String> = Vec::new();
    for lockfile in &lockfiles {
        let changes: Vec<&DepChange> = dep_changes
            .iter()
            .filter(|change| change.file == lockfile.path)
            .collect();
        if changes.is_empty() {
            lines.push(format!(
                "{}: {} lines added, {} removed; no version changes recognized\n",
                lockfile.path, lockfile.additions, lockfile.deletions
            ));
            continue;
        }
        lines.push(format!("{}:\n", lockfile.path));
        for change in changes {
            let old = change.old.as_deref().unwrap_or("(none)");
            let new = change.new.as_deref().unwrap_or("(removed)");
            lines.push(format!("* {}: {old} → {new}\n", change.package));
        }
    }
    let mut used = HEADER.len();
    let mut section = String::from(HEADER);
    let n_lines = lines.len();
    for (line_idx, line) in lines.into_iter().enumerate() {
        let is_last = line_idx + 1 == n_lines;
        let reserve = if is_last { 0 } else { MORE_RESERVE };
        if used + line.len() + reserve > room {
            let n_more = n_lines - line_idx;
            section.push_str(&format!(
                "… [deploy-gate: {} more lockfile summary lines not shown]\n",
                thousands(n_more)
            ));
            break;
        }
        used += line.len();
        section.push_str(&line);
    }
    out.push_str(&section);
}

/// `1234567` → `1,234,567`, for numbers people read.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (idx, digit) in digits.chars().enumerate() {
        if idx > 0 && (digits.len() - idx) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use gate_core::{classify_path, FileStatus};

    fn file(path: &str, lines: u64) -> ChangedFile {
        ChangedFile {
            path: path.to_owned(),
            old_path: None,
            status: FileStatus::Modified,
            additions: lines,
            deletions: 0,
            binary: false,
            class: classify_path(path),
        }
    }

    fn section(packer: &mut Packer, idx: usize, path: &str, n_lines: usize) {
        packer.offer(idx, &["diff --git a/", path, " b/", path]);
        packer.offer(idx, &[&format!("@@ -0,0 +1,{n_lines} @@")]);
        for line in 0..n_lines {
            packer.offer(
                idx,
                &[
                    "+",
                    &format!("line {line} of {path} with some padding to make it longer"),
                ],
            );
        }
    }

    #[test]
    fn a_higher_ranked_file_evicts_a_lower_one_seen_earlier() {
        let paths = [
            "docs/guide.md",
            "migrations/001.sql",
            "migrations/002.sql",
            "migrations/003.sql",
        ];
        let files: Vec<ChangedFile> = paths.iter().map(|path| file(path, 100)).collect();
        let mut packer = Packer::new(&files, 2_000);
        for (idx, path) in paths.iter().enumerate() {
            section(&mut packer, idx, path, 100);
        }
        let packed = packer.finish(&files, &[]);
        assert!(
            packed.packed_diff.len() <= 2_000,
            "{}",
            packed.packed_diff.len()
        );
        assert!(packed
            .packed_diff
            .starts_with("diff --git a/migrations/001.sql"));
        assert!(
            !packed.packed_diff.contains("guide.md b/"),
            "{}",
            packed.packed_diff
        );
        let reasons: Vec<&str> = packed.omissions.iter().map(|o| o.reason.as_str()).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(
            reasons[..3]
                .iter()
                .all(|r| r.starts_with("truncated after")),
            "{reasons:?}"
        );
        assert_eq!(reasons[3], "over budget");
    }

    #[test]
    fn equal_files_of_one_class_share_the_budget_evenly() {
        let paths: Vec<String> = (0..10).map(|n| format!("migrations/{n:03}.sql")).collect();
        let files: Vec<ChangedFile> = paths.iter().map(|path| file(path, 200)).collect();
        let mut packer = Packer::new(&files, 12_000);
        for (idx, path) in paths.iter().enumerate() {
            section(&mut packer, idx, path, 200);
        }
        let packed = packer.finish(&files, &[]);
        assert!(packed.packed_diff.len() <= 12_000);
        for path in &paths {
            assert!(
                packed.packed_diff.contains(&format!("+line 0 of {path}")),
                "{path} not shown"
            );
        }
    }

    #[test]
    fn water_level_fills_the_room() {
        assert_eq!(water_level(&[100, 200], 1_000), usize::MAX);
        assert_eq!(water_level(&[100, 1_000, 1_000], 1_000), 450);
        assert_eq!(water_level(&[], 10), usize::MAX);
    }

    #[test]
    fn cut_hunk_header_counts_only_the_lines_shown() {
        let (shown, has_content) =
            close_cut_section("diff --git a/x b/x\n@@ -10,4 +10,6 @@ fn f\n a\n-b\n+c\n");
        assert!(has_content);
        assert_eq!(
            shown,
            "diff --git a/x b/x\n@@ -10,2 +10,2 @@ fn f\n a\n-b\n+c\n"
        );
        let (_, has_content) = close_cut_section("diff --git a/x b/x\n@@ -1 +1 @@\n");
        assert!(!has_content);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(9_876_543), "9,876,543");
    }
}
