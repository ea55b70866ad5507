//! Findings from the list of changed files: what a path (and what the content said
//! about it, through [`FileNotes`]) tells about a change, whatever its lines.

use std::collections::BTreeSet;

use gate_core::{Category, ChangedFile, Evidence, FileClass, FileStatus, Severity};

use crate::facts::{DataKind, Framework, PathFacts};
use crate::findings::{group, Findings, Group};
use crate::scan::FileNotes;

use Category::{Auth, Config, Data, Deps, Infra, Schema};
use Severity::{High, Low, Medium};

pub(crate) static SCHEMA_MIGRATION: Group =
    group("schema.migration", Schema, High, 0, "Database migration");
pub(crate) static SCHEMA_MIGRATION_EDITED: Group = group(
    "schema.migration-edited",
    Schema,
    High,
    4,
    "Existing migration edited (databases that already ran it will not run it again)",
);
pub(crate) static SCHEMA_MIGRATION_DELETED: Group = group(
    "schema.migration-deleted",
    Schema,
    High,
    2,
    "Migration file deleted",
);
pub(crate) static SCHEMA_DOWN_ONLY: Group = group(
    "schema.down-migration",
    Schema,
    Medium,
    4,
    "Down migration changed (runs only on rollback)",
);
pub(crate) static SCHEMA_SQL_SCRIPT: Group = group(
    "schema.sql-script",
    Schema,
    High,
    0,
    "SQL script changes the schema",
);
pub(crate) static SCHEMA_DUMP: Group = group(
    "schema.dump",
    Schema,
    Medium,
    6,
    "Schema dump changed without a migration",
);
pub(crate) static SCHEMA_PRISMA: Group =
    group("schema.prisma", Schema, High, 0, "Prisma schema changed");
pub(crate) static DATA_BACKFILL: Group =
    group("data.backfill", Data, High, 6, "Backfill / data migration");
pub(crate) static DATA_SEEDS: Group = group("data.seeds", Data, Medium, 0, "Seed data changed");
pub(crate) static AUTH_PATH: Group = group(
    "auth.path",
    Auth,
    High,
    2,
    "Authentication/authorization code changed",
);
pub(crate) static AUTH_PATH_DELETED: Group = group(
    "auth.path-deleted",
    Auth,
    High,
    8,
    "Authentication/authorization code deleted",
);
pub(crate) static AUTH_UI: Group =
    group("auth.ui", Auth, Medium, 2, "Login/account screens changed");
pub(crate) static CONFIG_APP: Group = group(
    "config.app",
    Config,
    Medium,
    0,
    "Application configuration changed",
);
pub(crate) static CONFIG_APP_PROD: Group = group(
    "config.app-prod",
    Config,
    Medium,
    8,
    "Production configuration changed",
);
pub(crate) static CONFIG_NON_PROD: Group = group(
    "config.non-prod",
    Config,
    Low,
    8,
    "Development/test configuration changed",
);
pub(crate) static CONFIG_ENV: Group =
    group("config.env", Config, Medium, 4, "Environment file changed");
pub(crate) static CONFIG_ENV_PROD: Group = group(
    "config.env-prod",
    Config,
    Medium,
    10,
    "Production environment file changed",
);
pub(crate) static CONFIG_ENV_TEMPLATE: Group = group(
    "config.env-template",
    Config,
    Low,
    4,
    "Environment template (example values) changed",
);
pub(crate) static CONFIG_FLAGS: Group =
    group("config.flags", Config, Medium, 2, "Feature flags changed");
pub(crate) static INFRA_CHANGE: Group =
    group("infra.change", Infra, Medium, 2, "Infrastructure changed");
pub(crate) static INFRA_CHANGE_CORE: Group = group(
    "infra.change-core",
    Infra,
    Medium,
    5,
    "Deployed infrastructure changed",
);
pub(crate) static INFRA_CHANGE_PROD: Group = group(
    "infra.change-prod",
    Infra,
    Medium,
    9,
    "Production infrastructure changed",
);
pub(crate) static DEPS_MANIFEST: Group = group(
    "deps.manifest",
    Deps,
    Low,
    4,
    "Build manifest changed (no dependency version change read)",
);
pub(crate) static DEPS_LOCKFILE: Group =
    group("deps.lockfile-only", Deps, Low, 8, "Lockfile changed");

/// Path findings for every changed file (`facts[i]` are the facts of `files[i]`).
/// `dep_files` are the files some dependency change was read from.
pub(crate) fn path_findings(
    files: &[ChangedFile],
    facts: &[PathFacts],
    notes: &std::collections::BTreeMap<String, FileNotes>,
    dep_files: &BTreeSet<String>,
    findings: &mut Findings,
) {
    for (file, facts) in files.iter().zip(facts) {
        let note = notes.get(&file.path);
        file_findings(file, facts, note, dep_files, findings);
    }
    // A schema dump that comes with a migration adds nothing.
    let has_migration = findings.has_group("schema.migration")
        || findings.has_group("schema.migration-edited")
        || findings.has_group("schema.sql-script")
        || findings.has_group("schema.destructive");
    if has_migration {
        findings.remove_group("schema.dump");
    }
}

fn file_findings(
    file: &ChangedFile,
    facts: &PathFacts,
    note: Option<&FileNotes>,
    dep_files: &BTreeSet<String>,
    findings: &mut Findings,
) {
    let path = file.path.as_str();
    let evidence = || Evidence::file(path);
    let deleted = file.status == FileStatus::Deleted;
    if matches!(
        file.class,
        FileClass::Docs | FileClass::Test | FileClass::Generated
    ) {
        return;
    }

    // schema and data
    if file.class == FileClass::Migration {
        let signature = note.and_then(|n| n.signature);
        let framework = match facts.migration {
            Some(Framework::Unknown | Framework::SqlMigrations) => signature.or(facts.migration),
            Some(framework) => Some(framework),
            // Code (or SQL) outside known migration locations is a migration only if
            // its content names a migration tool.
            None => signature,
        };
        if facts.schema_dump {
            findings.record(&SCHEMA_DUMP, "", evidence(), None);
        } else if facts.prisma_schema {
            findings.record(&SCHEMA_PRISMA, "", evidence(), None);
        } else if let Some(framework) = framework {
            let label = Some(framework.name());
            if deleted {
                findings.record(&SCHEMA_MIGRATION_DELETED, "", evidence(), label);
            } else if facts.down_file {
                findings.record(&SCHEMA_DOWN_ONLY, "", evidence(), label);
            } else if file.status == FileStatus::Modified && edits_are_suspicious(framework, path) {
                findings.record(&SCHEMA_MIGRATION_EDITED, "", evidence(), label);
            } else {
                findings.record(&SCHEMA_MIGRATION, "", evidence(), label);
            }
        } else if facts.raw_sql {
            if let Some(ddl) = note.and_then(|n| n.ddl.clone()) {
                findings.record(&SCHEMA_SQL_SCRIPT, path, ddl, None);
            }
        }
        // A backfill, wherever it lives; content findings already name the data
        // change when there are any.
        if facts.data == Some(DataKind::Backfill)
            && !deleted
            && !findings.file_has(path, Data, High)
        {
            findings.record(&DATA_BACKFILL, "", evidence(), None);
        }
    }
    if facts.data == Some(DataKind::Seeds) && file.class != FileClass::Migration {
        findings.record(&DATA_SEEDS, "", evidence(), None);
    }

    // auth
    if facts.auth_path
        && matches!(
            file.class,
            FileClass::Auth | FileClass::Code | FileClass::Config
        )
        && !facts.tooling
    {
        if facts.ui {
            findings.record(&AUTH_UI, "", evidence(), None);
        } else if deleted {
            findings.record(&AUTH_PATH_DELETED, "", evidence(), None);
        } else if !findings.file_has(path, Auth, High) {
            // Content findings already say what changed in this file.
            findings.record(&AUTH_PATH, "", evidence(), None);
        }
    }

    // configuration (a Kubernetes manifest under config/ is infrastructure)
    let k8s = note.is_some_and(|n| n.k8s);
    if file.class == FileClass::Config && !facts.tooling && !k8s {
        let prod = facts.prod || note.is_some_and(|n| n.prod);
        let group = if facts.env_template {
            &CONFIG_ENV_TEMPLATE
        } else if facts.env_file {
            if prod {
                &CONFIG_ENV_PROD
            } else {
                &CONFIG_ENV
            }
        } else if facts.feature_flags {
            &CONFIG_FLAGS
        } else if prod {
            &CONFIG_APP_PROD
        } else if facts.non_prod {
            &CONFIG_NON_PROD
        } else {
            &CONFIG_APP
        };
        findings.record(group, "", evidence(), None);
    }

    // infrastructure
    if (file.class == FileClass::Infra || (file.class == FileClass::Config && k8s))
        && !facts.tooling
    {
        let kind = facts
            .infra
            .map_or("Kubernetes", |k| if k8s { "Kubernetes" } else { k.name() });
        let core = matches!(
            kind,
            "Terraform" | "Kubernetes" | "Helm" | "Pulumi" | "CloudFormation" | "web server"
        );
        let group = if facts.prod {
            &INFRA_CHANGE_PROD
        } else if core {
            &INFRA_CHANGE_CORE
        } else {
            &INFRA_CHANGE
        };
        findings.record(group, "", evidence(), Some(kind));
    }

    // dependencies whose versions could not be read
    if file.class == FileClass::Manifest && !dep_files.contains(path) {
        findings.record(&DEPS_MANIFEST, "", evidence(), None);
    }
    if file.class == FileClass::Lockfile && !dep_files.contains(path) {
        findings.record(&DEPS_LOCKFILE, "", evidence(), None);
    }
}

/// Whether editing an already-committed migration is a smell for this tool: the
/// tools that record applied migrations by name skip edited files.
fn edits_are_suspicious(framework: Framework, path: &str) -> bool {
    match framework {
        Framework::Liquibase | Framework::SqlMigrations | Framework::Unknown => false,
        // Flyway repeatable migrations (`R__*.sql`) are meant to be edited.
        Framework::Flyway => !path.rsplit('/').next().unwrap_or(path).starts_with("R__"),
        _ => true,
    }
}
