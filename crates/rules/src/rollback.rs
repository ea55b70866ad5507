//! Rollback notes for detected migrations: the tool's own down command where it is
//! knowable, flagged IRREVERSIBLE when the migration drops or rewrites data. The
//! `git revert` line is added by whoever builds the decision.

use std::collections::BTreeMap;

use gate_core::{Category, ChangedFile, FileStatus, Severity};

use crate::facts::{Framework, PathFacts};
use crate::findings::Findings;
use crate::scan::FileNotes;

/// Notes for every migration tool the change touches.
pub(crate) fn rollback_notes(
    files: &[ChangedFile],
    facts: &[PathFacts],
    notes: &BTreeMap<String, FileNotes>,
    findings: &Findings,
) -> Vec<String> {
    // framework → (paths of new or edited migrations, destructive paths)
    let mut by_framework: BTreeMap<Framework, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
    for (file, facts) in files.iter().zip(facts) {
        if file.status == FileStatus::Deleted {
            continue;
        }
        if facts.down_file {
            continue;
        }
        let signature = notes.get(&file.path).and_then(|n| n.signature);
        let framework = match facts.migration {
            Some(Framework::Unknown | Framework::SqlMigrations) => signature.or(facts.migration),
            Some(framework) => Some(framework),
            None if signature.is_some() => signature,
            None if facts.raw_sql && notes.get(&file.path).is_some_and(|n| n.ddl.is_some()) => {
                Some(Framework::SqlMigrations)
            }
            None => None,
        };
        let Some(framework) = framework else { continue };
        let entry = by_framework.entry(framework).or_default();
        entry.0.push(file.path.as_str());
        let destructive = findings.file_has(&file.path, Category::Schema, Severity::Critical)
            || findings.file_has(&file.path, Category::Data, Severity::Critical);
        if destructive {
            entry.1.push(file.path.as_str());
        }
    }

    let mut out = Vec::new();
    for (framework, (paths, destructive)) in by_framework {
        let n = paths.len();
        let changesets: u32 = paths
            .iter()
            .filter_map(|p| notes.get(*p))
            .map(|n| n.changesets)
            .sum();
        let mut note = command(framework, &paths, n, changesets);
        if !destructive.is_empty() {
            note = format!(
                "IRREVERSIBLE: {} drop or rewrite data; rolling the schema back does not bring the data back — take a backup or snapshot before deploying. {note}",
                list(&destructive)
            );
        }
        out.push(note);
    }
    out
}

fn list(paths: &[&str]) -> String {
    let mut text = paths.iter().take(3).copied().collect::<Vec<_>>().join(", ");
    if paths.len() > 3 {
        text.push_str(&format!(" and {} more", paths.len() - 3));
    }
    text
}

fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(".", |(dir, _)| dir)
}

fn command(framework: Framework, paths: &[&str], n: usize, changesets: u32) -> String {
    let times = if n == 1 {
        String::new()
    } else {
        format!(" ({n} times, once per migration)")
    };
    match framework {
        Framework::Rails => format!("Rails: bin/rails db:rollback STEP={n}"),
        Framework::RailsData => {
            format!("data_migrate: bin/rails data:rollback STEP={n} (only if the data migration defines `down`)")
        }
        Framework::Django => django(paths),
        Framework::Alembic => format!("Alembic: alembic downgrade -{n}"),
        Framework::FlaskMigrate => format!("Flask-Migrate: flask db downgrade{times}"),
        Framework::Flyway => {
            let has_undo = paths.iter().any(|p| p.rsplit('/').next().unwrap_or(p).starts_with('U'));
            if has_undo {
                "Flyway: flyway undo (Teams edition, uses the U__ scripts)".to_string()
            } else {
                format!(
                    "Flyway: no undo script for {}; `flyway undo` needs U__ scripts (Teams edition), otherwise ship a compensating V__ migration",
                    list(paths)
                )
            }
        }
        Framework::Liquibase => {
            let count = changesets.max(1);
            format!("Liquibase: liquibase rollback-count {count} (changesets need rollback blocks for non-auto-reversible changes)")
        }
        Framework::Prisma => {
            let names: Vec<&str> = paths.iter().map(|p| dir_of(p).rsplit('/').next().unwrap_or(p)).collect();
            format!(
                "Prisma has no down migrations: generate one with `npx prisma migrate diff --from-schema-datasource prisma/schema.prisma --to-migrations prisma/migrations --script`, apply it, then `npx prisma migrate resolve --rolled-back {}`",
                names.first().copied().unwrap_or("<migration>")
            )
        }
        Framework::Knex => "Knex: npx knex migrate:rollback (reverts the last batch)".to_string(),
        Framework::Sequelize => format!("Sequelize: npx sequelize-cli db:migrate:undo{times}"),
        Framework::TypeOrm => format!("TypeORM: npx typeorm migration:revert -d <data-source>{times}"),
        Framework::GolangMigrate => {
            format!(
                "golang-migrate: migrate -path {} -database \"$DATABASE_URL\" down {n} (sqlx: sqlx migrate revert{times})",
                dir_of(paths[0])
            )
        }
        Framework::Goose => format!("goose: goose -dir {} <driver> \"$DATABASE_URL\" down{times}", dir_of(paths[0])),
        Framework::Dbmate => format!("dbmate: dbmate rollback{times}"),
        Framework::Diesel => format!("Diesel: diesel migration revert{times}"),
        Framework::Ecto => format!("Ecto: mix ecto.rollback --step {n}"),
        Framework::Laravel => format!("Laravel: php artisan migrate:rollback --step={n}"),
        Framework::Doctrine => format!("Doctrine: php bin/console doctrine:migrations:migrate prev{times}"),
        Framework::EfCore => {
            "EF Core: dotnet ef database update <the migration before this one>, then dotnet ef migrations remove"
                .to_string()
        }
        Framework::SqlMigrations | Framework::Unknown => format!(
            "No framework down command is known for {}: prepare and test a compensating migration before deploying",
            list(paths)
        ),
    }
}

/// `python manage.py migrate <app> <previous>` per app; Django accepts a unique
/// prefix of a migration name, so the previous number is enough.
fn django(paths: &[&str]) -> String {
    let mut lowest: BTreeMap<&str, u32> = BTreeMap::new();
    for path in paths {
        let mut parts = path.rsplit('/');
        let name = parts.next().unwrap_or(path);
        let _migrations = parts.next();
        let app = parts.next().unwrap_or("<app>");
        let number: u32 = name
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(1);
        let entry = lowest.entry(app).or_insert(number);
        *entry = (*entry).min(number);
    }
    let commands: Vec<String> = lowest
        .into_iter()
        .map(|(app, number)| {
            let target = if number <= 1 {
                "zero".to_string()
            } else {
                format!("{:04}", number - 1)
            };
            format!("python manage.py migrate {app} {target}")
        })
        .collect();
    format!("Django: {}", commands.join("; "))
}
