//! Findings: what the rules saw, collapsed by (group, file) so that a 5,000-file commit
//! still reads as a short list. Memory is bounded by the number of distinct groups and
//! files, never by the number of lines.

use std::collections::BTreeMap;

use gate_core::{Category, Evidence, Severity};

/// Evidence entries kept per finding; the detail still counts every occurrence.
pub(crate) const MAX_EVIDENCE: usize = 5;
/// Labels kept per finding (`drop_table`, `remove_column`, …).
const MAX_LABELS: usize = 6;
/// Distinct findings kept; past this, new ones are only counted.
const MAX_FINDINGS: usize = 20_000;

/// A kind of finding: its category, severity and how it reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Group {
    /// Stable id (`schema.destructive`); part of the sort order.
    pub id: &'static str,
    pub category: Category,
    pub severity: Severity,
    /// Points above the severity's floor, to rank risks inside a band (0–20).
    pub bonus: u8,
    /// Sentence start: "Destructive schema change".
    pub title: &'static str,
}

/// Builds a [`Group`] in a `static` (the rule tables of `table.rs` and
/// `pathrules.rs` both use it).
pub(crate) const fn group(
    id: &'static str,
    category: Category,
    severity: Severity,
    bonus: u8,
    title: &'static str,
) -> Group {
    Group {
        id,
        category,
        severity,
        bonus,
        title,
    }
}

/// One collapsed finding.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    pub category: Category,
    pub severity: Severity,
    pub bonus: u8,
    pub title: &'static str,
    /// The file it is about; empty for findings that span files (evidence names them).
    pub file: String,
    pub labels: Vec<String>,
    pub evidence: Vec<Evidence>,
    /// Occurrences seen (lines, files or packages).
    pub count: u64,
    /// A detail written by the rule itself (dependencies, secrets) instead of the
    /// generic one.
    pub detail: Option<String>,
}

/// All findings of one analysis, keyed by (group id, file).
#[derive(Debug, Default)]
pub(crate) struct Findings {
    map: BTreeMap<(&'static str, String), Finding>,
    /// The highest severity recorded per (file, category), for cheap look-ups.
    worst: BTreeMap<(String, Category), Severity>,
    /// Findings dropped because the map was full.
    pub overflow: u64,
}

impl Findings {
    /// Records one occurrence of `group` about `file` (empty: spans files), with
    /// `evidence` and an optional label naming what matched.
    pub(crate) fn record(
        &mut self,
        group: &Group,
        file: &str,
        evidence: Evidence,
        label: Option<&str>,
    ) {
        self.record_with(group.id, group, file, evidence, label);
    }

    /// Like [`record`](Self::record) under an explicit key, for groups whose severity
    /// is decided at run time (the key keeps them apart).
    pub(crate) fn record_with(
        &mut self,
        key: &'static str,
        group: &Group,
        file: &str,
        evidence: Evidence,
        label: Option<&str>,
    ) {
        let map_key = (key, file.to_string());
        if !self.map.contains_key(&map_key) && self.map.len() >= MAX_FINDINGS {
            self.overflow += 1;
            return;
        }
        self.note_worst(file, group.category, group.severity);
        let finding = self.map.entry(map_key).or_insert_with(|| Finding {
            category: group.category,
            severity: group.severity,
            bonus: group.bonus,
            title: group.title,
            file: file.to_string(),
            labels: Vec::new(),
            evidence: Vec::new(),
            count: 0,
            detail: None,
        });
        // A line matched by two rules of the same group is one occurrence.
        let duplicate_line = evidence.line.is_some()
            && finding
                .evidence
                .iter()
                .any(|e| e.line == evidence.line && e.file == evidence.file);
        if !duplicate_line {
            finding.count += 1;
            if finding.evidence.len() < MAX_EVIDENCE {
                finding.evidence.push(evidence);
            }
        }
        if let Some(label) = label.filter(|l| !l.is_empty()) {
            if !finding.labels.iter().any(|l| l == label) && finding.labels.len() < MAX_LABELS {
                finding.labels.push(label.to_string());
            }
        }
    }

    /// Inserts a finding the caller built whole (dependencies, secrets).
    pub(crate) fn insert(&mut self, key: &'static str, finding: Finding) {
        let map_key = (key, finding.file.clone());
        if !self.map.contains_key(&map_key) && self.map.len() >= MAX_FINDINGS {
            self.overflow += 1;
            return;
        }
        self.note_worst(&finding.file, finding.category, finding.severity);
        self.map.insert(map_key, finding);
    }

    fn note_worst(&mut self, file: &str, category: Category, severity: Severity) {
        if file.is_empty() {
            return;
        }
        let worst = self
            .worst
            .entry((file.to_string(), category))
            .or_insert(severity);
        *worst = (*worst).max(severity);
    }

    /// Whether any finding about `file` in `category` reaches `severity`.
    pub(crate) fn file_has(&self, file: &str, category: Category, severity: Severity) -> bool {
        self.worst
            .get(&(file.to_string(), category))
            .is_some_and(|worst| *worst >= severity)
    }

    /// Whether any finding of group `key` exists, for any file.
    pub(crate) fn has_group(&self, key: &'static str) -> bool {
        self.map
            .range((key, String::new())..)
            .next()
            .is_some_and(|((k, _), _)| *k == key)
    }

    pub(crate) fn remove_group(&mut self, key: &'static str) {
        self.map.retain(|(k, _), _| *k != key);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn into_vec(self) -> Vec<(&'static str, Finding)> {
        self.map
            .into_iter()
            .map(|((key, _), finding)| (key, finding))
            .collect()
    }
}
