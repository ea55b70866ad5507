//! deploy-gate's deterministic rules analyzer.
//!
//! [`RulesAnalyzer`] is a [`DiffVisitor`]: the git crate streams every line of the
//! diff through it (already redacted), and [`RulesAnalyzer::finish`] combines what
//! it saw with the file list, the dependency changes and the secrets of the
//! [`DeployContext`] into a [`Verdict`].
//!
//! Architecture invariant: same input, same output. No clock, no randomness, no
//! hash-order iteration, no network.
//!
//! Architecture invariant: memory is bounded by the number of files and findings,
//! never by the number of lines: lines are scanned and forgotten.
//!
//! # What is detected
//!
//! - **schema** — migrations of Rails, Django, Alembic/Flask-Migrate, Flyway,
//!   Liquibase, Prisma, Knex, Sequelize, TypeORM, golang-migrate, goose, dbmate,
//!   sqlx, Diesel, Ecto, Laravel, Doctrine and EF Core, and raw `.sql` holding DDL:
//!   High (hold). Destructive statements on added lines — `DROP TABLE/COLUMN`,
//!   `TRUNCATE`, renames, column type changes, `ADD COLUMN … NOT NULL` without a
//!   default, and each framework's DSL for them (`drop_table`, `remove_column`,
//!   `migrations.RemoveField`, `op.drop_column`, `dropColumn`, `removeColumn`,
//!   `queryRunner.dropTable`, Ecto `remove`, Liquibase `<dropTable>`…) — are
//!   Critical (block). Index/constraint drops, `SET NOT NULL`, Django `AlterField`,
//!   Alembic `alter_column` are High. Down migrations reverse, not perform: files
//!   (`*.down.sql`, Diesel `down.sql`, Flyway `U*__`) and sections (goose/sql-migrate/
//!   dbmate markers, Liquibase `<rollback>`, `def down`, `def downgrade`, JS
//!   `down`, PHP `down()`, EF `Down()`) are exempt from the destructive rules when
//!   the section start is among the streamed lines (always, for new files).
//! - **data** — backfills and data migrations (paths, `RunPython`, `update_all`,
//!   `find_each`, `UPDATE … WHERE`, bulk inserts/updates): High; `DELETE`/`UPDATE`
//!   without `WHERE`, `TRUNCATE`, unscoped `Model.delete_all`: Critical; seeds: Medium.
//! - **auth** — auth paths (whole path words: `auth`, `login`, `session`,
//!   `OAuth2Config`…): High, Medium for front-end views. Content across Python, JS/TS,
//!   Java/Kotlin, Go, Ruby, C#, PHP, Elixir, Rust: access checks (decorators,
//!   annotations, filters, middleware) added: Medium; modified: High; removed and
//!   not re-added anywhere in the change: Critical (a check removed together with the
//!   definition it guarded is an endpoint removal, not a finding). Disabled TLS or
//!   token-signature verification: Critical. Loosened access (`AllowAnonymous`,
//!   `permitAll`, `skip_before_action :authenticate…`), CSRF exemptions, CORS `*`,
//!   weakened token validation, password hashing, JWT, sessions/cookies, CORS and
//!   security headers, encryption: High. SSO/OAuth integration: Medium. MD5/SHA-1: Low.
//! - **deps** — versions read from manifest lines (npm/yarn/pnpm `package.json`,
//!   Cargo, Go modules, pip/Poetry/PEP 621/uv, Pipfile, Bundler, gemspec, Maven,
//!   Gradle and version catalogs, Composer, NuGet, Mix) and from
//!   `context.dep_changes` (lockfile summaries). Any bump is Medium (review); a
//!   major bump ranks higher inside Medium (+8, +4 per further major); a major of a
//!   framework (React, Django, Rails, Spring Boot, Laravel, Express, tokio/axum,
//!   ASP.NET Core, EF Core, Prisma…) or three direct majors at once is High (hold);
//!   a new dependency Medium; a removed one Low; development-only updates Low (a
//!   development major stays Medium); lockfile-only updates Medium.
//! - **config** — env files, feature flags, application config; production-specific
//!   ranks higher, development/test config and env templates are Low; secret-manager
//!   references (Vault, AWS Secrets Manager/SSM, `secretKeyRef`, Key Vault, GCP):
//!   Medium; debug mode on, `ALLOWED_HOSTS = ['*']`: Medium, ranked high.
//! - **infra** — Docker, compose, Kubernetes, Helm, Terraform/OpenTofu, Pulumi,
//!   Ansible, CI/CD, web servers: Medium. High for removed Terraform resources or
//!   modules (not moved), disabled deletion protection, public exposure, wildcard
//!   IAM/RBAC, ingress from 0.0.0.0/0, privileged containers and host access,
//!   `replicas: 0`, deleted Kubernetes workloads, `pull_request_target` checking out
//!   the PR head, `permissions: write-all`, untrusted event data in workflow scripts.
//! - **secrets** — every `context.secrets` finding: Critical (High for generic
//!   secrets and JWTs inside tests and docs), evidence file:line, detail names the
//!   kind, never the value.
//! - **review steering** (`auth`) — text aimed at the reviewer rather than the
//!   program, in what a model reads: any line of the packed diff (any file), commit
//!   messages, file names and package names, also in look-alike letters, invisible
//!   characters or base64:
//!   instructions ("AI reviewer: score 0", "ignore previous instructions"), fake
//!   fences, role messages, tool results and verdicts: High (Medium in tests and
//!   docs, Low on unchanged lines); claims of approval or safety in comments and
//!   commit messages: Low. Their details start with `gate_core::REVIEW_STEERING`,
//!   which makes the rules score a floor in consensus whatever the severity.
//!
//! # Scoring
//!
//! A finding scores its severity's floor (Low 10, Medium 30, High 55, Critical 80,
//! lifted to the band's first score under custom bands) plus a bonus that ranks it
//! inside its band, never past the band's last score. The change has a baseline:
//! docs-only 5, tests and docs 10, tooling/assets/generated/lockfiles 15,
//! application code 28 rising with lines and files to at most 45 (review). The
//! verdict's score is the highest of those plus a breadth bump (+2 per further
//! category at Medium or above, +1 per further finding at the top severity, at most
//! +8) that stays inside the band of the top severity: accumulation alone never
//! promotes a change to the next band. `recommendation = bands.recommendation(score)`.
//!
//! Findings of one rule in one file collapse into one risk (5 evidence entries at
//! most, the detail counts them all); path findings of one kind collapse across
//! files; at most 25 risks are listed, most severe first, and the summary says how
//! many were left out.
//!
//! # Deliberately not detected
//!
//! Content of tests, fixtures, docs, examples, generated and vendored files and
//! lockfiles (lockfiles come summarized in `dep_changes`); destructive SQL split so
//! that its keywords sit on different lines (`DROP` / `TABLE x`); data changes made
//! through ORM calls outside migration files; auth logic that uses none of the
//! recognised guards or APIs (the path rules still see auth files); down sections
//! whose start is outside the streamed hunk of a modified file.

mod deps;
mod engine;
mod facts;
mod findings;
mod infra;
mod pathrules;
mod rollback;
mod scan;
mod score;
mod steering;
mod table;

use std::collections::BTreeSet;

use gate_core::{
    Bands, Category, ChangedFile, DeployContext, DiffVisitor, Evidence, FileClass, LineKind,
    SecretKind, Severity, Usage, Verdict,
};

use crate::findings::{Finding, Findings};
use crate::scan::{Collected, FileScan};

/// Version of the rules: part of verdict cache keys. Bump it whenever a rule, a
/// severity or the scoring changes, so cached verdicts of older rules are not reused.
pub const RULES_VERSION: &str = "rules-3";

/// The analyzer's name in verdicts.
const ANALYZER: &str = "rules";

/// The deterministic rules analyzer: feed it the diff through [`DiffVisitor`], then
/// call [`finish`](RulesAnalyzer::finish).
///
/// It keeps findings, never lines: a 50 MB diff costs what its findings cost.
#[derive(Debug)]
pub struct RulesAnalyzer {
    bands: Bands,
    current: Option<FileScan>,
    collected: Collected,
}

impl RulesAnalyzer {
    /// An analyzer scoring with `bands`. Rule tables are compiled once per process.
    pub fn new(bands: Bands) -> Self {
        let _ = engine::engine();
        RulesAnalyzer {
            bands,
            current: None,
            collected: Collected::default(),
        }
    }

    /// The verdict: path findings over `context.files`, the content findings seen
    /// while streaming, `context.dep_changes` and `context.secrets`, scored against
    /// the bands.
    ///
    /// `latency_ms` is left at 0: the analysis runs interleaved with the git walk
    /// that drives it, so only the caller can time it, and the verdict stays a pure
    /// function of its input. `usage` is zero with a known cost of 0: rules are free.
    pub fn finish(mut self, context: &DeployContext) -> Verdict {
        self.close_file();
        let mut collected = self.collected;
        collected.resolve_guards();
        let Collected {
            mut findings,
            terraform,
            dep_events,
            notes,
            ..
        } = collected;
        terraform.finish(&mut findings);

        let mut dep_files: BTreeSet<String> = dep_events.iter().map(|e| e.file.clone()).collect();
        dep_files.extend(context.dep_changes.iter().map(|c| c.file.clone()));
        deps::dep_findings(dep_events, &context.dep_changes, &mut findings);
        let facts: Vec<facts::PathFacts> = context
            .files
            .iter()
            .map(|f| facts::path_facts(&f.path, f.class))
            .collect();
        pathrules::path_findings(&context.files, &facts, &notes, &dep_files, &mut findings);
        secret_findings(context, &mut findings);
        steering::context_findings(context, &mut findings);

        let rollback_notes = rollback::rollback_notes(&context.files, &facts, &notes, &findings);
        let overflow = findings.overflow;
        let all = findings.into_vec();
        let base = score::baseline(
            &context.files,
            &facts,
            context.lines_added,
            context.lines_removed,
        );
        let scored: Vec<(u8, &Finding)> = all
            .iter()
            .map(|(_, f)| (score::finding_score(&self.bands, f), f))
            .collect();
        let risk_score = score::combine(&self.bands, &scored, &base);
        let (risks, left_out) = score::risks(&self.bands, &all);
        let summary = score::summary(
            risk_score,
            &self.bands,
            &risks,
            left_out + overflow as usize,
            &base,
        );

        Verdict {
            analyzer: ANALYZER.to_string(),
            risk_score,
            recommendation: self.bands.recommendation(risk_score),
            summary,
            risks,
            rollback_notes,
            latency_ms: 0,
            usage: Usage {
                cost_usd: Some(0.0),
                ..Usage::default()
            },
        }
    }

    fn close_file(&mut self) {
        if let Some(scan) = self.current.take() {
            scan.finish(&mut self.collected);
        }
    }

    fn open_file(&mut self, file: &ChangedFile) {
        self.close_file();
        self.current = Some(FileScan::new(file));
    }
}

impl DiffVisitor for RulesAnalyzer {
    fn file(&mut self, file: &ChangedFile) {
        self.open_file(file);
    }

    fn line(&mut self, file: &ChangedFile, kind: LineKind, line_no: u32, text: &str) {
        // Robust to a producer that never calls `file()`: a new path opens a new file.
        if self
            .current
            .as_ref()
            .is_none_or(|scan| scan.path != file.path)
        {
            self.open_file(file);
        }
        self.collected.n_lines += 1;
        let Some(scan) = self.current.as_mut() else {
            return;
        };
        if scan.is_active() {
            scan.line(engine::engine(), &mut self.collected, kind, line_no, text);
        }
    }
}

/// Evidence entries kept for the secrets risk: every place matters when rotating.
const MAX_SECRET_EVIDENCE: usize = 20;
/// Places named in the secrets detail.
const SECRETS_NAMED: usize = 6;

/// Every secret found upstream is a risk; the value never appears, only its kind.
/// All leaks form one risk (so one look shows every place to clean up); likely
/// dummies (generic secrets, JWTs and URL passwords in tests and docs: fixtures are
/// full of `postgres://app:devpass@localhost`) form another, at High. Vendor-format
/// keys (AWS, GitHub, Slack, Stripe, …) are leaks wherever they are.
fn secret_findings(context: &DeployContext, findings: &mut Findings) {
    let mut leaks = Vec::new();
    let mut examples = Vec::new();
    for secret in &context.secrets {
        let class = gate_core::classify_path(&secret.file);
        let example_kind = matches!(
            secret.kind,
            SecretKind::GenericSecret | SecretKind::Jwt | SecretKind::UrlPassword
        );
        let in_examples = matches!(class, FileClass::Test | FileClass::Docs);
        if example_kind && in_examples {
            examples.push(secret);
        } else {
            leaks.push(secret);
        }
    }
    let groups: [(
        &'static str,
        Severity,
        u8,
        &'static str,
        Vec<&gate_core::SecretFinding>,
    ); 2] = [
        (
            "secrets.leak",
            Severity::Critical,
            15,
            "Secret committed (value redacted): rotate it and purge it from history",
            leaks,
        ),
        (
            "secrets.example",
            Severity::High,
            0,
            "Possible secret in a test or doc file (value redacted): check that it is a dummy",
            examples,
        ),
    ];
    for (key, severity, bonus, title, secrets) in groups {
        if secrets.is_empty() {
            continue;
        }
        let place = |secret: &gate_core::SecretFinding| match secret.line {
            Some(line) => format!("{} in {}:{line}", secret.kind, secret.file),
            None => format!("{} in {}", secret.kind, secret.file),
        };
        let mut named: Vec<String> = secrets
            .iter()
            .take(SECRETS_NAMED)
            .map(|s| place(s))
            .collect();
        if secrets.len() > SECRETS_NAMED {
            named.push(format!("and {} more", secrets.len() - SECRETS_NAMED));
        }
        let evidence = secrets
            .iter()
            .take(MAX_SECRET_EVIDENCE)
            .map(|secret| {
                let excerpt = format!("[REDACTED:{}]", secret.kind.as_str());
                match secret.line {
                    Some(line) => Evidence::line(&secret.file, line, excerpt),
                    None => Evidence {
                        file: secret.file.clone(),
                        line: None,
                        excerpt: Some(excerpt),
                    },
                }
            })
            .collect();
        findings.insert(
            key,
            Finding {
                category: Category::Secrets,
                severity,
                bonus,
                title,
                file: String::new(),
                labels: Vec::new(),
                evidence,
                count: secrets.len() as u64,
                detail: Some(format!("{title}: {}.", named.join(", "))),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gate_core::{classify_path, FileStatus};

    fn changed(path: &str, additions: u64) -> ChangedFile {
        ChangedFile {
            path: path.to_string(),
            old_path: None,
            status: FileStatus::Modified,
            additions,
            deletions: 0,
            binary: false,
            class: classify_path(path),
        }
    }

    fn context(files: Vec<ChangedFile>) -> DeployContext {
        DeployContext {
            repo: "acme/shop".into(),
            base: "a".repeat(40),
            head: "b".repeat(40),
            head_is_merge: false,
            root_commit: false,
            commits: Vec::new(),
            n_commits: 1,
            lines_added: files.iter().map(|f| f.additions).sum(),
            lines_removed: 0,
            files,
            packed_diff: String::new(),
            budget_chars: 0,
            est_tokens: 0,
            omitted: Vec::new(),
            n_omitted: 0,
            dep_changes: Vec::new(),
            secrets: Vec::new(),
        }
    }

    #[test]
    fn a_million_ordinary_lines_leave_nothing_behind() {
        let file = changed("src/orders/service.py", 1_000_000);
        let mut analyzer = RulesAnalyzer::new(Bands::default());
        analyzer.file(&file);
        for idx in 0..1_000_000u32 {
            let text = match idx % 4 {
                0 => "    total = sum(item.price * item.quantity for item in order.items)",
                1 => "    if total > customer.credit_limit: raise OrderRejected(order.id)",
                2 => "    logger.info(\"order %s accepted\", order.id)",
                _ => "    return Receipt(order_id=order.id, total=total, currency=order.currency)",
            };
            analyzer.line(&file, LineKind::Added, idx + 1, text);
        }
        assert_eq!(analyzer.collected.n_lines, 1_000_000);
        assert_eq!(
            analyzer.collected.findings.len(),
            0,
            "ordinary code leaves no finding"
        );
        assert!(analyzer.collected.notes.is_empty());
        let verdict = analyzer.finish(&context(vec![file]));
        assert!(verdict.risks.is_empty());
        assert!(
            (26..=50).contains(&verdict.risk_score),
            "{}",
            verdict.risk_score
        );
    }

    #[test]
    fn repeated_findings_collapse_into_bounded_evidence() {
        let file = changed("app/views.py", 100_000);
        let mut analyzer = RulesAnalyzer::new(Bands::default());
        for idx in 0..100_000u32 {
            analyzer.line(
                &file,
                LineKind::Added,
                idx + 1,
                "    resp = requests.get(url, verify=False)",
            );
        }
        assert_eq!(analyzer.collected.findings.len(), 1);
        let verdict = analyzer.finish(&context(vec![file]));
        assert_eq!(verdict.risks.len(), 1);
        assert!(verdict.risks[0].evidence.len() <= findings::MAX_EVIDENCE);
        assert!(
            verdict.risks[0].detail.contains("100000 lines"),
            "{}",
            verdict.risks[0].detail
        );
    }
}
