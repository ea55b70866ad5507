//! Rollback notes for detected migrations: the tool's own down command where it is
//! knowable, flagged IRREVERSIBLE when the migration drops or rewrites data. The
//! `git revert` line is added by whoever builds the decision.
//!
//! The commands are exact where the change tells enough: Django's previous
//! migration comes from the new migration's own `dependencies`, Alembic's target
//! from its `down_revision`, Flyway's undo from the `U<version>__` scripts in the
//! change, Sequelize and Knex name each migration file. Where the change does not
//! tell (a previous migration outside the change, a data source's path), the note
//! says what to fill in rather than guessing. Migrations are reverted newest first.

use std::collections::{BTreeMap, BTreeSet};

use gate_core::{Category, ChangedFile, FileStatus, Severity};

use crate::facts::{Framework, PathFacts};
use crate::findings::Findings;
use crate::scan::FileNotes;

/// Django dependencies remembered per migration file: a migration depends on a
/// handful of others, never hundreds.
const MAX_DEPENDENCIES: usize = 16;

/// What a migration's own lines say about the migration before it. Filled while
/// the diff streams (added and context lines of migration files), kept in the
/// file's notes, read when the notes are written.
#[derive(Debug, Clone, Default)]
pub(crate) struct MigrationHints {
    /// Alembic `revision = "…"`.
    revision: Option<String>,
    /// Alembic `down_revision = …`.
    down_revision: Option<DownRevision>,
    /// Django `dependencies = [("app", "0006_name"), …]`.
    dependencies: Vec<(String, String)>,
    /// Inside a multi-line Django `dependencies = [` list.
    in_dependencies: bool,
}

/// Alembic's `down_revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DownRevision {
    /// `None`: the first revision; downgrading goes to `base`.
    Base,
    /// One parent revision.
    One(String),
    /// A merge revision (a tuple of parents): no single target.
    Many,
}

impl MigrationHints {
    /// Looks at one added or context line of a migration file (leading whitespace
    /// already trimmed).
    pub(crate) fn line(&mut self, trimmed: &str) {
        if self.in_dependencies {
            self.dependency_tuples(trimmed);
            if trimmed.contains(']') {
                self.in_dependencies = false;
            }
            return;
        }
        if let Some(value) = assignment(trimmed, "down_revision") {
            if self.down_revision.is_none() {
                self.down_revision = down_revision(value);
            }
        } else if let Some(value) = assignment(trimmed, "revision") {
            if self.revision.is_none() {
                self.revision = quoted(value).map(str::to_string);
            }
        } else if let Some(value) = assignment(trimmed, "dependencies") {
            if let Some(list) = value.strip_prefix('[') {
                self.dependency_tuples(list);
                self.in_dependencies = !list.contains(']');
            }
        }
    }

    /// Whether nothing was learned (the notes of ordinary files stay empty).
    pub(crate) fn is_empty(&self) -> bool {
        self.revision.is_none() && self.down_revision.is_none() && self.dependencies.is_empty()
    }

    /// Every `("app", "name")` pair on a line of a dependencies list.
    fn dependency_tuples(&mut self, text: &str) {
        let mut rest = text;
        while let Some(open) = rest.find('(') {
            let Some(close) = rest[open..].find(')') else {
                return;
            };
            let inner = &rest[open + 1..open + close];
            rest = &rest[open + close + 1..];
            let mut strings = quoted_strings(inner);
            if let (Some(app), Some(name), None) = (strings.next(), strings.next(), strings.next())
            {
                if self.dependencies.len() < MAX_DEPENDENCIES {
                    self.dependencies.push((app.to_string(), name.to_string()));
                }
            }
        }
    }
}

/// The value of `name = value` or `name: Type = value` at the start of a line.
fn assignment<'a>(trimmed: &'a str, name: &str) -> Option<&'a str> {
    let rest = trimmed.strip_prefix(name)?;
    let rest = match rest.chars().next()? {
        ' ' | '=' | ':' => rest,
        _ => return None,
    };
    let rest = rest.trim_start();
    let rest = if let Some(annotated) = rest.strip_prefix(':') {
        // `: Union[str, None] = …`: the value follows the first `=` that is not `==`.
        let (_, value) = annotated.split_once('=')?;
        value
    } else {
        rest.strip_prefix('=')?
    };
    if rest.starts_with('=') {
        return None; // a comparison, not an assignment
    }
    Some(rest.trim())
}

fn down_revision(value: &str) -> Option<DownRevision> {
    if value.starts_with("None") {
        return Some(DownRevision::Base);
    }
    if value.starts_with('(') || value.starts_with('[') {
        let parents: Vec<&str> = quoted_strings(value).collect();
        return match parents.as_slice() {
            [] => None,
            [one] => Some(DownRevision::One((*one).to_string())),
            _ => Some(DownRevision::Many),
        };
    }
    quoted(value).map(|rev| DownRevision::One(rev.to_string()))
}

/// The first quoted string of `text` (single or double quotes), if it starts with one.
fn quoted(text: &str) -> Option<&str> {
    quoted_strings(text)
        .next()
        .filter(|_| text.starts_with(['"', '\'']))
}

/// Every quoted string of `text`, in order.
fn quoted_strings(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find(['"', '\''])?;
        let quote = rest[start..].chars().next()?;
        let body = &rest[start + 1..];
        let end = body.find(quote)?;
        let value = &body[..end];
        rest = &body[end + 1..];
        Some(value)
    })
}

/// The migrations of one tool in the change.
#[derive(Debug, Default)]
struct Group<'a> {
    /// New or edited migrations (not down files), sorted: oldest first.
    paths: Vec<&'a str>,
    /// Those whose content drops or rewrites data.
    destructive: Vec<&'a str>,
}

/// What every note may look at besides its own group.
struct Change<'a> {
    /// Every path the change adds or modifies, down files included.
    paths: BTreeSet<&'a str>,
    notes: &'a BTreeMap<String, FileNotes>,
    /// The change touches Rust sources or Cargo manifests (sqlx, not golang-migrate).
    rust: bool,
    /// The change touches Go sources or `go.mod` (golang-migrate, not sqlx).
    go: bool,
}

impl Change<'_> {
    fn hints(&self, path: &str) -> Option<&MigrationHints> {
        self.notes.get(path).map(|notes| &notes.rollback)
    }
}

/// Notes for every migration tool the change touches.
pub(crate) fn rollback_notes(
    files: &[ChangedFile],
    facts: &[PathFacts],
    notes: &BTreeMap<String, FileNotes>,
    findings: &Findings,
) -> Vec<String> {
    let mut by_framework: BTreeMap<Framework, Group<'_>> = BTreeMap::new();
    for (file, facts) in files.iter().zip(facts) {
        if file.status == FileStatus::Deleted || facts.down_file {
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
        let group = by_framework.entry(framework).or_default();
        group.paths.push(file.path.as_str());
        let destructive = findings.file_has(&file.path, Category::Schema, Severity::Critical)
            || findings.file_has(&file.path, Category::Data, Severity::Critical);
        if destructive {
            group.destructive.push(file.path.as_str());
        }
    }

    let live = || {
        files
            .iter()
            .filter(|f| f.status != FileStatus::Deleted)
            .map(|f| f.path.as_str())
    };
    let change = Change {
        paths: live().collect(),
        notes,
        rust: live().any(|p| p.ends_with(".rs") || file_name(p).starts_with("Cargo.")),
        go: live().any(|p| p.ends_with(".go") || file_name(p) == "go.mod"),
    };
    let mut out = Vec::new();
    for (framework, mut group) in by_framework {
        group
            .paths
            .sort_by_key(|p| migration_order_key(framework, p));
        let mut note = command(framework, &group, &change);
        if !group.destructive.is_empty() {
            note = format!(
                "IRREVERSIBLE: {} drop or rewrite data; rolling the schema back does not bring the data back — take a backup or snapshot before deploying. {note}",
                list(&group.destructive)
            );
        }
        out.push(note);
    }
    out
}

/// Migrations sort by their name (timestamps, numbers) except where the version
/// lives in the directory (Prisma, Diesel).
fn migration_order_key(framework: Framework, path: &str) -> String {
    match framework {
        Framework::Prisma | Framework::Diesel => dir_name(path).to_string(),
        _ => file_name(path).to_string(),
    }
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

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The name of the directory holding `path` (`20240612_add_bio` for
/// `prisma/migrations/20240612_add_bio/migration.sql`).
fn dir_name(path: &str) -> &str {
    file_name(dir_of(path))
}

/// Names joined newest first, for "run it once per migration" notes.
fn newest_first<'a>(names: impl DoubleEndedIterator<Item = &'a str>) -> String {
    names.rev().collect::<Vec<_>>().join(", ")
}

/// `, once per migration, newest first: a, b` when there are several.
fn times(names: &[&str]) -> String {
    if names.len() <= 1 {
        String::new()
    } else {
        format!(
            " — {} times, newest first: {}",
            names.len(),
            newest_first(names.iter().copied())
        )
    }
}

fn command(framework: Framework, group: &Group<'_>, change: &Change<'_>) -> String {
    let paths = &group.paths;
    let n = paths.len();
    let names: Vec<&str> = paths.iter().map(|p| file_name(p)).collect();
    match framework {
        Framework::Rails => {
            let mut note = format!("Rails: bin/rails db:rollback STEP={n}");
            if n > 1 {
                note.push_str(&format!(
                    " (reverts {}, newest first)",
                    newest_first(names.iter().copied())
                ));
            }
            note
        }
        Framework::RailsData => {
            format!("data_migrate: bin/rails data:rollback STEP={n} (only if the data migration defines `down`)")
        }
        Framework::Django => django(paths, change),
        Framework::Alembic => alembic("Alembic: alembic downgrade", paths, change),
        Framework::FlaskMigrate => alembic("Flask-Migrate: flask db downgrade", paths, change),
        Framework::Flyway => flyway(paths, change),
        Framework::Liquibase => {
            let count: u32 = paths
                .iter()
                .filter_map(|p| change.notes.get(*p))
                .map(|n| n.changesets)
                .sum::<u32>()
                .max(1);
            format!(
                "Liquibase: liquibase rollbackCount {count} (Liquibase 4.4+: liquibase rollback-count --count={count}); changesets without a <rollback> block roll back only when their change type is auto-reversible"
            )
        }
        Framework::Prisma => prisma(paths),
        Framework::Knex => {
            let downs: Vec<String> = names
                .iter()
                .rev()
                .map(|name| format!("npx knex migrate:down {name}"))
                .collect();
            format!(
                "Knex: {} — or npx knex migrate:rollback, which reverts the last batch (this change, when it was deployed alone)",
                downs.join("; ")
            )
        }
        Framework::Sequelize => {
            let undos: Vec<String> = names
                .iter()
                .rev()
                .map(|name| format!("npx sequelize-cli db:migrate:undo --name {name}"))
                .collect();
            format!("Sequelize: {}", undos.join("; "))
        }
        Framework::TypeOrm => format!(
            "TypeORM: npx typeorm migration:revert -d <path to your DataSource>{} (each run reverts the last executed migration)",
            times(&names)
        ),
        Framework::GolangMigrate => golang_migrate(paths, change),
        Framework::Goose => format!(
            "goose: goose -dir {} <driver> \"$DATABASE_URL\" down{}",
            dir_of(paths[0]),
            times(&names)
        ),
        Framework::Dbmate => format!("dbmate: dbmate rollback{}", times(&names)),
        Framework::Diesel => diesel(paths, change),
        Framework::Ecto => {
            let mut note = format!("Ecto: mix ecto.rollback --step {n}");
            if n > 1 {
                note.push_str(&format!(
                    " (reverts {}, newest first)",
                    newest_first(names.iter().copied())
                ));
            }
            note
        }
        Framework::Laravel => format!("Laravel: php artisan migrate:rollback --step={n}"),
        Framework::Doctrine => {
            format!(
                "Doctrine: php bin/console doctrine:migrations:migrate prev{}",
                times(&names)
            )
        }
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

/// `python manage.py migrate <app> <previous>` per app. The previous migration is
/// the earliest new migration's own dependency on its app when the diff shows it
/// (`0006_auto_20240215_0931`), else the number before it (Django accepts a unique
/// prefix), else `zero` for an app's first migration.
fn django(paths: &[&str], change: &Change<'_>) -> String {
    // app → (number, path) of its earliest migration in the change
    let mut earliest: BTreeMap<&str, (u32, &str)> = BTreeMap::new();
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
        let entry = earliest.entry(app).or_insert((number, path));
        if number < entry.0 {
            *entry = (number, path);
        }
    }
    let commands: Vec<String> = earliest
        .into_iter()
        .map(|(app, (number, path))| {
            let declared: Vec<&str> = change
                .hints(path)
                .map(|h| {
                    h.dependencies
                        .iter()
                        .filter(|(dep_app, _)| dep_app == app)
                        .map(|(_, name)| name.as_str())
                        .collect()
                })
                .unwrap_or_default();
            let target = match declared.as_slice() {
                [previous] => (*previous).to_string(),
                _ if number <= 1 => "zero".to_string(),
                _ => format!("{:04}", number - 1),
            };
            format!("python manage.py migrate {app} {target}")
        })
        .collect();
    format!("Django: {}", commands.join("; "))
}

/// Downgrade to the revision the change's oldest revision revises (read from its
/// `down_revision`), or by count when the change does not say.
fn alembic(prefix: &str, paths: &[&str], change: &Change<'_>) -> String {
    let n = paths.len();
    let hints: Vec<&MigrationHints> = paths.iter().filter_map(|p| change.hints(p)).collect();
    let revisions: BTreeSet<&str> = hints.iter().filter_map(|h| h.revision.as_deref()).collect();
    let mut targets: Vec<&DownRevision> = hints
        .iter()
        .filter_map(|h| h.down_revision.as_ref())
        .filter(|down| match down {
            DownRevision::One(parent) => !revisions.contains(parent.as_str()),
            DownRevision::Base | DownRevision::Many => true,
        })
        .collect();
    targets.dedup();
    let complete = hints.len() == n && revisions.len() == n;
    match (complete, targets.as_slice()) {
        (true, [DownRevision::One(parent)]) => format!(
            "{prefix} {parent} (the revision before this change; {prefix_short} -{n} while this change is the head)",
            prefix_short = short_command(prefix)
        ),
        (true, [DownRevision::Base]) => format!(
            "{prefix} base (this change holds the first revision; {prefix_short} -{n} while it is the head)",
            prefix_short = short_command(prefix)
        ),
        _ => format!("{prefix} -{n} (while this change is the head)"),
    }
}

/// `alembic downgrade` from `Alembic: alembic downgrade`.
fn short_command(prefix: &str) -> &str {
    prefix
        .split_once(": ")
        .map_or(prefix, |(_, command)| command)
}

/// Flyway undoes a versioned migration only with its `U<version>__` script (Teams
/// edition); repeatable `R__` migrations are re-applied from the reverted file.
fn flyway(paths: &[&str], change: &Change<'_>) -> String {
    let undo_versions: BTreeSet<&str> = change
        .paths
        .iter()
        .filter_map(|p| flyway_version(file_name(p), 'U'))
        .collect();
    let mut versioned = Vec::new();
    let mut missing = Vec::new();
    let mut repeatable = Vec::new();
    for path in paths {
        let name = file_name(path);
        if let Some(version) = flyway_version(name, 'V') {
            versioned.push(name);
            if !undo_versions.contains(version) {
                missing.push(name);
            }
        } else if name.starts_with('R') {
            repeatable.push(name);
        }
    }
    let mut parts = Vec::new();
    if !versioned.is_empty() {
        if missing.is_empty() {
            parts.push(format!(
                "flyway undo (Teams edition: runs the U__ undo scripts of this change){}",
                times(&versioned)
            ));
        } else {
            parts.push(format!(
                "no undo script (U<version>__*.sql) in this change for {}: `flyway undo` (Teams edition) needs one; otherwise roll forward with a new V__ migration that reverses it",
                missing.join(", ")
            ));
        }
    }
    if !repeatable.is_empty() {
        parts.push(format!(
            "repeatable {}: reverting the commit and running flyway migrate re-applies the previous version",
            repeatable.join(", ")
        ));
    }
    format!("Flyway: {}", parts.join("; "))
}

/// The version of a Flyway script name: `V15__x.sql` → `15` for prefix `V`.
fn flyway_version(name: &str, prefix: char) -> Option<&str> {
    let rest = name.strip_prefix(prefix)?;
    let (version, _) = rest.split_once("__")?;
    (!version.is_empty()).then_some(version)
}

/// Prisma migrations have no down side: the documented rollback is reverse SQL
/// generated before deploying, executed, then each migration marked rolled back.
fn prisma(paths: &[&str]) -> String {
    let names: Vec<&str> = paths.iter().map(|p| dir_name(p)).collect();
    // prisma/migrations/<name>/migration.sql → prisma/schema.prisma
    let prisma_dir = dir_of(dir_of(dir_of(paths[0])));
    let schema = if prisma_dir == "." {
        "schema.prisma".to_string()
    } else {
        format!("{prisma_dir}/schema.prisma")
    };
    let resolves: Vec<String> = names
        .iter()
        .rev()
        .map(|name| format!("npx prisma migrate resolve --rolled-back {name}"))
        .collect();
    format!(
        "Prisma has no down migrations: before deploying, while the database still has the old schema, write the reverse SQL with `npx prisma migrate diff --from-schema-datamodel {schema} --to-schema-datasource {schema} --script > down.sql`; to roll back, run `npx prisma db execute --file down.sql --schema {schema}`, then {}",
        resolves.join("; ")
    )
}

/// golang-migrate and sqlx share the `<version>_<name>.up.sql` / `.down.sql` layout;
/// the rest of the change says which tool it is (Rust → sqlx, Go → golang-migrate),
/// and both commands are given when it does not.
fn golang_migrate(paths: &[&str], change: &Change<'_>) -> String {
    let n = paths.len();
    let dir = dir_of(paths[0]);
    let names: Vec<&str> = paths.iter().map(|p| file_name(p)).collect();
    let golang =
        format!("golang-migrate: migrate -path {dir} -database \"$DATABASE_URL\" down {n}");
    let source = if dir == "migrations" {
        String::new()
    } else {
        format!(" --source {dir}")
    };
    let sqlx = format!("sqlx: sqlx migrate revert{source}{}", times(&names));
    let mut note = match (change.rust, change.go) {
        (true, false) => sqlx,
        (false, true) => golang,
        _ => format!("{golang}; {sqlx}"),
    };
    let missing: Vec<&str> = paths
        .iter()
        .filter(|p| p.ends_with(".up.sql"))
        .filter(|p| {
            let down = format!("{}.down.sql", p.trim_end_matches(".up.sql"));
            !change.paths.contains(down.as_str())
        })
        .map(|p| file_name(p))
        .collect();
    if !missing.is_empty() {
        note.push_str(&format!(
            " — no .down.sql in this change for {}: the down step fails or does nothing until one exists",
            missing.join(", ")
        ));
    }
    note
}

/// `diesel migration revert` (with `-n` for several); a migration directory without
/// `down.sql` in the change cannot be reverted by the tool.
fn diesel(paths: &[&str], change: &Change<'_>) -> String {
    let names: Vec<&str> = paths.iter().map(|p| dir_name(p)).collect();
    let n = names.len();
    let mut note = if n == 1 {
        "Diesel: diesel migration revert".to_string()
    } else {
        format!(
            "Diesel: diesel migration revert -n {n} (reverts {}, newest first)",
            newest_first(names.iter().copied())
        )
    };
    let missing: Vec<&str> = paths
        .iter()
        .filter(|p| {
            !change
                .paths
                .contains(format!("{}/down.sql", dir_of(p)).as_str())
        })
        .map(|p| dir_name(p))
        .collect();
    if !missing.is_empty() {
        note.push_str(&format!(
            " — no down.sql in this change for {}: write it before deploying",
            missing.join(", ")
        ));
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(lines: &[&str]) -> MigrationHints {
        let mut hints = MigrationHints::default();
        for line in lines {
            hints.line(line.trim_start());
        }
        hints
    }

    #[test]
    fn alembic_revisions_are_read_with_or_without_annotations() {
        let plain = hints(&[
            "revision = \"4b1c2d9e7f10\"",
            "down_revision = '9a8f7e6d5c4b'",
        ]);
        assert_eq!(plain.revision.as_deref(), Some("4b1c2d9e7f10"));
        assert_eq!(
            plain.down_revision,
            Some(DownRevision::One("9a8f7e6d5c4b".into()))
        );
        let annotated = hints(&[
            "revision: str = \"ae1027a6acf\"",
            "down_revision: Union[str, None] = None",
        ]);
        assert_eq!(annotated.revision.as_deref(), Some("ae1027a6acf"));
        assert_eq!(annotated.down_revision, Some(DownRevision::Base));
        let merge = hints(&["down_revision = (\"a1\", \"b2\")"]);
        assert_eq!(merge.down_revision, Some(DownRevision::Many));
        let compare = hints(&["revision == other"]);
        assert!(compare.is_empty());
    }

    #[test]
    fn django_dependencies_are_read_on_one_line_or_several() {
        let one = hints(&["dependencies = [(\"catalog\", \"0030_product_weight\")]"]);
        assert_eq!(
            one.dependencies,
            vec![("catalog".to_string(), "0030_product_weight".to_string())]
        );
        let several = hints(&[
            "dependencies = [",
            "    ('shop', '0006_auto_20240215_0931'),",
            "    migrations.swappable_dependency(settings.AUTH_USER_MODEL),",
            "    (\"auth\", \"0012_alter_user_first_name_max_length\"),",
            "]",
            "operations = [(\"not\", \"a dependency\")]",
        ]);
        assert_eq!(
            several.dependencies,
            vec![
                ("shop".to_string(), "0006_auto_20240215_0931".to_string()),
                (
                    "auth".to_string(),
                    "0012_alter_user_first_name_max_length".to_string()
                ),
            ]
        );
    }

    #[test]
    fn flyway_versions_come_from_the_prefix() {
        assert_eq!(flyway_version("V15__drop.sql", 'V'), Some("15"));
        assert_eq!(flyway_version("U1_2__undo.sql", 'U'), Some("1_2"));
        assert_eq!(flyway_version("R__views.sql", 'V'), None);
        assert_eq!(flyway_version("V__nothing.sql", 'V'), None);
    }
}
