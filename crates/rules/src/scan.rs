//! Streaming: what the analyzer remembers about the file being read (a few flags and
//! pending findings, never its lines) and what it collects across files.

use std::collections::BTreeMap;

use gate_core::{ChangedFile, Evidence, FileClass, FileStatus, LineKind};

use crate::deps::{DepEvent, ManifestScan};
use crate::engine::{Engine, Hit};
use crate::facts::{path_facts, Framework, PathFacts};
use crate::findings::{Findings, Group};
use crate::infra::{InfraScan, TerraformLedger};
use crate::table::{
    scope, Effect, AUTH_GUARD_ADDED, AUTH_GUARD_CHANGED, AUTH_GUARD_REMOVED, AUTH_UI_CHECK,
    CONFIG_DEBUG, CONFIG_HOSTS, DATA_BULK, DATA_UNBOUNDED, SCHEMA_NOT_NULL, SIGNATURES,
};

/// Distinct guard keys tallied across the change.
const MAX_GUARD_KEYS: usize = 4_096;
/// Removed guards waiting for the end of the change to be judged.
const MAX_GUARD_CANDIDATES: usize = 1_024;
/// Guards remembered per file and side.
const MAX_GUARDS_PER_FILE: usize = 64;
/// Files whose notes are kept.
const MAX_NOTES: usize = 50_000;
/// Lines after a `DELETE`/`UPDATE` within which a `WHERE` still counts.
const STATEMENT_WINDOW: u8 = 8;
/// Migration tools are named in a file's first lines (imports, headers, markers).
const SIGNATURE_WINDOW: u32 = 200;

/// What the content said about a file, for the path findings at the end.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileNotes {
    /// First DDL statement of a raw `.sql` file.
    pub ddl: Option<Evidence>,
    /// The migration tool the content names.
    pub signature: Option<Framework>,
    /// A Kubernetes manifest (`apiVersion:` seen).
    pub k8s: bool,
    /// Production-specific configuration content.
    pub prod: bool,
    /// Liquibase changesets added.
    pub changesets: u32,
    /// What a migration says about the one before it, for its rollback note.
    pub rollback: crate::rollback::MigrationHints,
}

impl FileNotes {
    fn is_empty(&self) -> bool {
        self.ddl.is_none()
            && self.signature.is_none()
            && !self.k8s
            && !self.prod
            && self.changesets == 0
            && self.rollback.is_empty()
    }
}

/// An access check seen on a removed (or added) line.
#[derive(Debug, Clone)]
pub(crate) struct GuardLine {
    /// Often, not always, an access check: never Critical on its own.
    weak: bool,
    keys: Vec<String>,
    evidence: Evidence,
    label: &'static str,
}

/// A removed access check that its own file did not replace; judged at the end.
#[derive(Debug)]
pub(crate) struct GuardCandidate {
    ui: bool,
    guard: GuardLine,
}

/// Everything collected across files.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub findings: Findings,
    /// Guard key → (removed, added) over the whole change.
    guard_tally: BTreeMap<String, (u32, u32)>,
    guard_candidates: Vec<GuardCandidate>,
    pub terraform: TerraformLedger,
    pub dep_events: Vec<DepEvent>,
    pub notes: BTreeMap<String, FileNotes>,
    /// Lines seen, for the record.
    pub n_lines: u64,
}

impl Collected {
    /// Judges the removed access checks once every file has been seen: a check whose
    /// key is missing from the whole change is removed; one that reappears elsewhere
    /// moved.
    pub(crate) fn resolve_guards(&mut self) {
        for candidate in std::mem::take(&mut self.guard_candidates) {
            let missing = candidate.guard.keys.iter().any(|key| {
                let (removed, added) = self.guard_tally.get(key).copied().unwrap_or((0, 0));
                removed > added
            });
            if !missing {
                continue;
            }
            let group = if candidate.ui {
                &AUTH_UI_CHECK
            } else if candidate.guard.weak {
                &AUTH_GUARD_CHANGED
            } else {
                &AUTH_GUARD_REMOVED
            };
            let file = candidate.guard.evidence.file.clone();
            self.findings.record(
                group,
                &file,
                candidate.guard.evidence,
                Some(candidate.guard.label),
            );
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Comments {
    hash: bool,
    slash: bool,
    sql: bool,
    xml: bool,
}

fn comments_for(facts: &PathFacts, path: &str) -> Comments {
    let ext = facts.ext.as_str();
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let hash = matches!(
        ext,
        "py" | "rb"
            | "sh"
            | "bash"
            | "zsh"
            | "yml"
            | "yaml"
            | "toml"
            | "tf"
            | "tofu"
            | "tfvars"
            | "hcl"
            | "r"
            | "pl"
            | "conf"
            | "cfg"
            | "ini"
            | "properties"
            | "env"
            | "ex"
            | "exs"
            | "rake"
            | "ps1"
            | "nix"
            | "cmake"
            | "mk"
            | "txt"
            | "php"
    ) || ext.is_empty()
        || name.starts_with(".env")
        || name.starts_with("dockerfile")
        || name == "gemfile"
        || name == "procfile";
    let slash = matches!(
        ext,
        "js" | "mjs"
            | "cjs"
            | "ts"
            | "jsx"
            | "tsx"
            | "java"
            | "kt"
            | "kts"
            | "go"
            | "rs"
            | "c"
            | "h"
            | "cc"
            | "cpp"
            | "hpp"
            | "cs"
            | "swift"
            | "scala"
            | "php"
            | "groovy"
            | "gradle"
            | "dart"
            | "tf"
            | "hcl"
            | "jsonc"
            | "json5"
            | "vue"
            | "svelte"
            | "proto"
            | "zig"
            | "sol"
    ) || name == "jenkinsfile";
    Comments {
        hash,
        slash,
        sql: facts.sql,
        xml: matches!(ext, "xml" | "csproj" | "props" | "html" | "config"),
    }
}

/// A statement whose verdict depends on a word that may come on a later line: the
/// `WHERE` of a `DELETE`/`UPDATE`, the `DEFAULT` of an `ADD COLUMN … NOT NULL`.
#[derive(Debug)]
struct PendingStatement {
    label: String,
    evidence: Evidence,
    lines_left: u8,
    /// The word that settles it.
    word: &'static str,
    /// Recorded when the word comes (none: the statement is harmless).
    if_found: Option<&'static Group>,
    /// Recorded when the statement ends without it.
    if_missing: &'static Group,
}

impl PendingStatement {
    fn settle(self, found: bool, out: &mut Collected, path: &str) {
        let group = if found {
            self.if_found
        } else {
            Some(self.if_missing)
        };
        if let Some(group) = group {
            out.findings
                .record(group, path, self.evidence, Some(&self.label));
        }
    }
}

/// The state of the file being streamed.
#[derive(Debug)]
pub(crate) struct FileScan {
    pub path: String,
    status: FileStatus,
    pub facts: PathFacts,
    /// Bits of [`scope`] the general table runs with; 0 for none.
    general_scope: u8,
    /// The migration table runs (migrations, raw SQL, backfills).
    migration: bool,
    comments: Comments,
    in_block_comment: bool,
    down_section: bool,
    in_rollback_block: bool,
    pending_statement: Option<PendingStatement>,
    lines_seen: u32,
    notes: FileNotes,
    run_guards: Vec<GuardLine>,
    removed_guards: Vec<GuardLine>,
    added_guards: Vec<GuardLine>,
    n_guards_removed: u32,
    n_guards_added: u32,
    manifest: Option<ManifestScan>,
    infra: Option<InfraScan>,
    hits: Vec<Hit>,
}

impl FileScan {
    pub(crate) fn new(file: &ChangedFile) -> FileScan {
        let facts = path_facts(&file.path, file.class);
        let inert = facts.is_inert() || facts.tooling || facts.asset;
        let migration = !inert
            && file.class == FileClass::Migration
            && !facts.schema_dump
            && !facts.prisma_schema;
        // A deleted file takes its code with it: only its infrastructure (deleted
        // workloads, destroyed resources) and dependencies still speak.
        let deleted = file.status == FileStatus::Deleted;
        let general_scope = if inert || migration || deleted {
            0
        } else {
            match file.class {
                FileClass::Code | FileClass::Auth => {
                    if facts.ui {
                        scope::UI
                    } else {
                        scope::CODE
                    }
                }
                FileClass::Config if facts.yaml => scope::CONFIG | scope::INFRA,
                FileClass::Config => scope::CONFIG,
                FileClass::Infra => scope::INFRA,
                _ => 0,
            }
        };
        let manifest = facts
            .manifest
            .filter(|_| !inert)
            .map(|kind| ManifestScan::new(kind, &file.path, facts.dev_manifest));
        let infra = (!inert
            && (file.class == FileClass::Infra || (file.class == FileClass::Config && facts.yaml)))
            .then(|| InfraScan::new(&file.path, facts.terraform));
        FileScan {
            path: file.path.clone(),
            status: file.status,
            comments: comments_for(&facts, &file.path),
            facts,
            general_scope,
            migration,
            in_block_comment: false,
            down_section: false,
            in_rollback_block: false,
            pending_statement: None,
            lines_seen: 0,
            notes: FileNotes::default(),
            run_guards: Vec::new(),
            removed_guards: Vec::new(),
            added_guards: Vec::new(),
            n_guards_removed: 0,
            n_guards_added: 0,
            manifest,
            infra,
            hits: Vec::new(),
        }
    }

    /// Whether any line of this file can matter.
    pub(crate) fn is_active(&self) -> bool {
        self.general_scope != 0 || self.migration || self.manifest.is_some() || self.infra.is_some()
    }

    /// One line of the file.
    pub(crate) fn line(
        &mut self,
        engine: &Engine,
        out: &mut Collected,
        kind: LineKind,
        line_no: u32,
        text: &str,
    ) {
        self.lines_seen = self.lines_seen.saturating_add(1);
        if let Some(manifest) = &mut self.manifest {
            manifest.line(kind, line_no, text);
        }
        if let Some(infra) = &mut self.infra {
            infra.line(kind, line_no, text, &mut out.findings, &mut out.terraform);
        }
        if self.migration {
            self.migration_line(engine, out, kind, line_no, text);
        } else if self.general_scope != 0 {
            self.general_line(engine, out, kind, line_no, text);
        }
    }

    fn is_comment(&mut self, trimmed: &str, track_blocks: bool) -> bool {
        let c = self.comments;
        if self.in_block_comment {
            if track_blocks && trimmed.contains("*/") {
                self.in_block_comment = false;
            }
            return true;
        }
        if (c.slash || c.sql) && trimmed.starts_with("/*") {
            if track_blocks && !trimmed.contains("*/") {
                self.in_block_comment = true;
            }
            return true;
        }
        (c.slash
            && (trimmed.starts_with("//")
                || trimmed.starts_with("* ")
                || trimmed == "*"
                || trimmed.starts_with("*/")))
            || (c.hash
                && trimmed.starts_with('#')
                && !trimmed.starts_with("#[")
                && !trimmed.starts_with("#!"))
            || (c.sql && trimmed.starts_with("--"))
            || (c.xml && trimmed.starts_with("<!--"))
    }

    // ---- application code, configuration, infrastructure ---------------------------

    fn general_line(
        &mut self,
        engine: &Engine,
        out: &mut Collected,
        kind: LineKind,
        line_no: u32,
        text: &str,
    ) {
        let trimmed = text.trim_start();
        if kind != LineKind::Removed && !self.run_guards.is_empty() {
            self.commit_guard_run();
        }
        if trimmed.is_empty() || kind == LineKind::Context {
            return;
        }
        if kind == LineKind::Removed
            && !self.run_guards.is_empty()
            && engine.definition().is_match(trimmed)
        {
            // The guard went away together with what it guarded (an endpoint removed).
            self.run_guards.clear();
        }
        if self.is_comment(trimmed, false) {
            return;
        }
        let added = kind == LineKind::Added;
        let mut hits = std::mem::take(&mut self.hits);
        // Indentation never matters to a rule (patterns anchor with `^\s*`).
        engine
            .general
            .scan(trimmed, added, self.general_scope, &mut hits);
        for hit in &hits {
            let rule = &engine.general.rules[hit.rule];
            match rule.effect {
                Effect::Guard | Effect::WeakGuard => {
                    let weak = rule.effect == Effect::WeakGuard;
                    self.guard_hit(
                        engine, hit.rule, weak, kind, line_no, text, trimmed, rule.label,
                    );
                }
                Effect::Prod => self.notes.prod = true,
                Effect::Report | Effect::Destructive => {
                    // Debug mode and open hosts are expected in development settings.
                    let dev_only =
                        rule.group.id == CONFIG_DEBUG.id || rule.group.id == CONFIG_HOSTS.id;
                    if dev_only && self.facts.non_prod {
                        continue;
                    }
                    let group = self.soften_for_ui(rule.group);
                    out.findings.record(
                        group,
                        &self.path,
                        Evidence::line(&self.path, line_no, text),
                        Some(rule.label),
                    );
                }
                Effect::Unbounded | Effect::NotNull | Effect::Ddl => {}
            }
        }
        self.hits = hits;
    }

    /// Auth findings in front-end views are presentation, not enforcement: one step down.
    fn soften_for_ui(&self, group: &'static Group) -> &'static Group {
        if self.general_scope == scope::UI && group.category == gate_core::Category::Auth {
            match group.severity {
                gate_core::Severity::Critical | gate_core::Severity::High => &AUTH_UI_CHECK,
                _ => group,
            }
        } else {
            group
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn guard_hit(
        &mut self,
        engine: &Engine,
        rule: usize,
        weak: bool,
        kind: LineKind,
        line_no: u32,
        text: &str,
        trimmed: &str,
        label: &'static str,
    ) {
        if is_import(trimmed) || engine.definition().is_match(trimmed) {
            return; // importing or defining a guard is not applying it
        }
        let mut keys: Vec<String> = match engine.general.confirm(rule) {
            Some(re) => re
                .find_iter(trimmed)
                .take(4)
                .map(|m| guard_key(m.as_str()))
                .collect(),
            None => Vec::new(),
        };
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return;
        }
        let guard = GuardLine {
            weak,
            keys,
            evidence: Evidence::line(&self.path, line_no, text),
            label,
        };
        match kind {
            LineKind::Added => {
                self.n_guards_added += 1;
                if self.added_guards.len() < MAX_GUARDS_PER_FILE {
                    self.added_guards.push(guard);
                }
            }
            LineKind::Removed
                if self.status != FileStatus::Deleted
                    && self.run_guards.len() < MAX_GUARDS_PER_FILE =>
            {
                self.run_guards.push(guard);
            }
            _ => {}
        }
    }

    fn commit_guard_run(&mut self) {
        for guard in self.run_guards.drain(..) {
            self.n_guards_removed += 1;
            if self.removed_guards.len() < MAX_GUARDS_PER_FILE {
                self.removed_guards.push(guard);
            }
        }
    }

    // ---- migrations and raw SQL ---------------------------------------------------------

    fn migration_line(
        &mut self,
        engine: &Engine,
        out: &mut Collected,
        kind: LineKind,
        line_no: u32,
        text: &str,
    ) {
        if kind == LineKind::Removed {
            return; // a removed DROP is not a drop; sections follow the new file
        }
        let trimmed = text.trim_start();
        self.track_structure(engine, trimmed);
        if let Some(pending) = &mut self.pending_statement {
            let found = contains_word_ci(trimmed, pending.word);
            if found || trimmed.is_empty() || trimmed.contains(';') || pending.lines_left == 0 {
                let pending = self
                    .pending_statement
                    .take()
                    .expect("pending statement present");
                pending.settle(found, out, &self.path);
            } else {
                pending.lines_left -= 1;
            }
        }
        if kind == LineKind::Context || trimmed.is_empty() {
            return;
        }
        if self.is_comment(trimmed, true) {
            return;
        }
        // SQL: ignore a trailing `-- comment`.
        let scanned = if self.comments.sql {
            text.split("--").next().unwrap_or(text)
        } else {
            text
        };
        let reversing = self.facts.down_file
            || self.down_section
            || self.in_rollback_block
            || trimmed.starts_with("<rollback");
        let mut hits = std::mem::take(&mut self.hits);
        let scanned = scanned.trim_start();
        engine
            .migration
            .scan(scanned, true, scope::MIGRATION, &mut hits);
        for hit in &hits {
            let rule = &engine.migration.rules[hit.rule];
            match rule.effect {
                Effect::Ddl if self.notes.ddl.is_none() => {
                    self.notes.ddl = Some(Evidence::line(&self.path, line_no, text));
                }
                Effect::Destructive | Effect::Report if !reversing => {
                    if rule.group.category == gate_core::Category::Schema
                        && self.notes.ddl.is_none()
                    {
                        self.notes.ddl = Some(Evidence::line(&self.path, line_no, text));
                    }
                    out.findings.record(
                        rule.group,
                        &self.path,
                        Evidence::line(&self.path, line_no, text),
                        Some(&matched_label(&scanned[hit.span.clone()], rule.label)),
                    );
                }
                Effect::Unbounded | Effect::NotNull if !reversing => {
                    let (word, if_found, if_missing): (
                        &'static str,
                        Option<&'static Group>,
                        &'static Group,
                    ) = if rule.effect == Effect::Unbounded {
                        ("where", Some(&DATA_BULK), &DATA_UNBOUNDED)
                    } else {
                        ("default", None, &SCHEMA_NOT_NULL)
                    };
                    let pending = PendingStatement {
                        label: matched_label(&scanned[hit.span.clone()], rule.label),
                        evidence: Evidence::line(&self.path, line_no, text),
                        lines_left: STATEMENT_WINDOW,
                        word,
                        if_found,
                        if_missing,
                    };
                    let rest = &scanned[hit.span.end.min(scanned.len())..];
                    if contains_word_ci(rest, word) {
                        pending.settle(true, out, &self.path);
                    } else if rest.contains([';', '"', '\'', '`', ')'])
                        || rest.trim_end().ends_with(',')
                    {
                        pending.settle(false, out, &self.path);
                    } else if let Some(previous) = self.pending_statement.replace(pending) {
                        previous.settle(false, out, &self.path);
                    }
                }
                _ => {}
            }
        }
        self.hits = hits;
    }

    /// Down sections, Liquibase rollback blocks, the tool's signature, changesets.
    fn track_structure(&mut self, engine: &Engine, trimmed: &str) {
        self.notes.rollback.line(trimmed);
        if self.notes.signature.is_none() && self.lines_seen <= SIGNATURE_WINDOW {
            self.notes.signature = SIGNATURES
                .iter()
                .find(|(needle, _)| trimmed.contains(needle))
                .map(|(_, fw)| *fw);
        }
        if self.comments.sql && trimmed.starts_with("--") {
            let lower = trimmed.to_ascii_lowercase();
            if lower.contains("+goose down")
                || lower.contains("+migrate down")
                || lower.contains("migrate:down")
            {
                self.down_section = true;
            } else if lower.contains("+goose up")
                || lower.contains("+migrate up")
                || lower.contains("migrate:up")
            {
                self.down_section = false;
            }
            return;
        }
        if trimmed.starts_with("rollback:") || trimmed.starts_with("\"rollback\"") {
            self.in_rollback_block = true; // Liquibase YAML/JSON: until the next changeset
        } else if trimmed.contains("<rollback") {
            self.in_rollback_block = !trimmed.contains("</rollback>") && !trimmed.ends_with("/>");
        } else if trimmed.contains("</rollback>") {
            self.in_rollback_block = false;
        }
        if trimmed.contains("<changeSet")
            || trimmed.contains("- changeSet:")
            || trimmed.contains("\"changeSet\"")
        {
            self.notes.changesets += 1;
            self.in_rollback_block = false;
        }
        if (trimmed.contains("down") || trimmed.contains("Down"))
            && engine.down_start().is_match(trimmed)
        {
            self.down_section = true;
        } else if (trimmed.contains("up") || trimmed.contains("Up") || trimmed.contains("change"))
            && engine.up_start().is_match(trimmed)
        {
            self.down_section = false;
        }
    }

    /// Closes the file: pending statements and guards are judged, manifests paired,
    /// notes kept.
    pub(crate) fn finish(mut self, out: &mut Collected) {
        if let Some(pending) = self.pending_statement.take() {
            pending.settle(false, out, &self.path);
        }
        self.commit_guard_run();
        self.finish_guards(out);
        if let Some(manifest) = self.manifest.take() {
            manifest.finish(&mut out.dep_events);
        }
        if let Some(infra) = self.infra.take() {
            self.notes.k8s = infra.k8s;
            infra.finish(&mut out.findings);
        }
        if !self.notes.is_empty() && out.notes.len() < MAX_NOTES {
            out.notes
                .insert(self.path.clone(), std::mem::take(&mut self.notes));
        }
    }

    /// Pairs the guards removed from this file with those added to it. A removed guard
    /// whose keys all come back in the file was only reformatted; one replaced by a
    /// different guard is a modified check (High); the rest wait for the whole change
    /// (a guard moved to another file is not removed).
    fn finish_guards(&mut self, out: &mut Collected) {
        if self.removed_guards.is_empty() && self.added_guards.is_empty() {
            return;
        }
        let mut added_keys: BTreeMap<&str, u32> = BTreeMap::new();
        for guard in &self.added_guards {
            for key in &guard.keys {
                *added_keys.entry(key.as_str()).or_default() += 1;
            }
        }
        let mut removed_keys: BTreeMap<String, u32> = BTreeMap::new();
        let mut unmatched = Vec::new();
        for guard in &self.removed_guards {
            for key in &guard.keys {
                *removed_keys.entry(key.clone()).or_default() += 1;
            }
            let carried = guard
                .keys
                .iter()
                .all(|key| added_keys.get(key.as_str()).is_some_and(|n| *n > 0));
            if carried {
                for key in &guard.keys {
                    if let Some(n) = added_keys.get_mut(key.as_str()) {
                        *n -= 1;
                    }
                }
            } else {
                unmatched.push(guard.clone());
            }
        }
        // Added guards not consumed by a carried-over removal are new checks.
        let ui = self.general_scope == scope::UI;
        let mut remaining = added_keys.clone();
        for guard in &self.added_guards {
            let new = guard
                .keys
                .iter()
                .any(|key| remaining.get(key.as_str()).is_some_and(|n| *n > 0));
            if new {
                for key in &guard.keys {
                    if let Some(n) = remaining.get_mut(key.as_str()) {
                        *n = n.saturating_sub(1);
                    }
                }
                let group = if ui {
                    &AUTH_UI_CHECK
                } else {
                    &AUTH_GUARD_ADDED
                };
                out.findings
                    .record(group, &self.path, guard.evidence.clone(), Some(guard.label));
            }
        }
        let deficit = self.n_guards_removed > self.n_guards_added;
        for guard in unmatched {
            if deficit && out.guard_candidates.len() < MAX_GUARD_CANDIDATES {
                out.guard_candidates.push(GuardCandidate { ui, guard });
            } else {
                let group = if ui {
                    &AUTH_UI_CHECK
                } else {
                    &AUTH_GUARD_CHANGED
                };
                out.findings
                    .record(group, &self.path, guard.evidence, Some(guard.label));
            }
        }
        for guard in &self.added_guards {
            for key in &guard.keys {
                tally(&mut out.guard_tally, key, false);
            }
        }
        for (key, n) in removed_keys {
            for _ in 0..n {
                tally(&mut out.guard_tally, &key, true);
            }
        }
    }
}

fn tally(map: &mut BTreeMap<String, (u32, u32)>, key: &str, removed: bool) {
    if !map.contains_key(key) && map.len() >= MAX_GUARD_KEYS {
        return;
    }
    let entry = map.entry(key.to_string()).or_default();
    if removed {
        entry.0 += 1;
    } else {
        entry.1 += 1;
    }
}

/// Normalised identity of a guard: lowercase, no whitespace, no leading `@`/`[`.
fn guard_key(matched: &str) -> String {
    matched
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .trim_start_matches(['@', '[', '#'])
        .to_ascii_lowercase()
}

fn is_import(trimmed: &str) -> bool {
    trimmed.starts_with("import ")
        || trimmed.starts_with("from ")
        || trimmed.starts_with("use ")
        || trimmed.starts_with("using ")
        || trimmed.starts_with("require ")
        || trimmed.starts_with("require_relative ")
        || trimmed.starts_with("#include")
        || trimmed.starts_with("alias ")
        || trimmed.contains("require(")
        || trimmed.contains("import(")
}

/// What a migration rule matched, as a label: `drop_table`, `DROP COLUMN`,
/// `migrations.RemoveField`; whitespace collapsed. Long matches fall back to the
/// rule's own label.
fn matched_label(matched: &str, fallback: &str) -> String {
    let collapsed: Vec<&str> = matched.split_whitespace().collect();
    let label = collapsed.join(" ");
    let noise = ['(', '<', ' ', '`', '"', '\'', '[', '.'];
    let label = label.trim_start_matches(noise).trim_end_matches(noise);
    if label.is_empty() || label.chars().count() > 40 {
        fallback.to_string()
    } else {
        label.to_string()
    }
}

/// Case-insensitive whole-word search (ASCII).
fn contains_word_ci(haystack: &str, word: &str) -> bool {
    let hay = haystack.as_bytes();
    let needle = word.as_bytes();
    if needle.is_empty() || hay.len() < needle.len() {
        return false;
    }
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    (0..=hay.len() - needle.len()).any(|i| {
        hay[i..i + needle.len()].eq_ignore_ascii_case(needle)
            && (i == 0 || !is_word(hay[i - 1]))
            && hay.get(i + needle.len()).is_none_or(|b| !is_word(*b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_is_found_as_a_word_in_any_case() {
        assert!(contains_word_ci("DELETE FROM x Where id = 1", "where"));
        assert!(contains_word_ci("  WHERE created_at < now()", "where"));
        assert!(!contains_word_ci("UPDATE nowhere SET a = 1", "where"));
        assert!(!contains_word_ci("somewhere_else", "where"));
    }

    #[test]
    fn guard_keys_ignore_spacing_and_sigils() {
        assert_eq!(guard_key("@login_required"), "login_required");
        assert_eq!(guard_key("[Authorize"), "authorize");
        assert_eq!(
            guard_key("before_action :authenticate_user!"),
            "before_action:authenticate_user!"
        );
    }
}
