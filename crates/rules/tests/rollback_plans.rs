//! Rollback plans on real temporary repositories: for each migration framework, a
//! repository with a history, a change that adds migrations, the context built by
//! `gate-git` with the rules analyzer streaming the diff, and the decision built by
//! `gate_core::decide` exactly as `deploy-gate check` builds it. The plan is the
//! decision's `rollback_notes`: the exact `git revert` first, then the framework's
//! own down command, flagged IRREVERSIBLE where the migration drops data.

#![allow(clippy::unwrap_used)]

use gate_core::{Bands, ConsensusPolicy, Decision, DecisionInputs, Redactor};
use gate_git::{build_context, ContextOptions, Range};
use gate_rules::RulesAnalyzer;
use gate_testkit::TestRepo;

/// The decision for `range` of `repo`, rules-only, as `check` makes it.
fn decide_range(repo: &TestRepo, range: Range) -> Decision {
    let mut rules = RulesAnalyzer::new(Bands::default());
    let context = build_context(
        repo.path(),
        &range,
        &ContextOptions::default(),
        &Redactor::new(),
        &mut rules,
    )
    .unwrap_or_else(|error| panic!("build_context failed: {error}"));
    let verdict = rules.finish(&context);
    gate_core::decide(
        DecisionInputs {
            event_id: "rollback-test",
            context: &context,
            bands: &Bands::default(),
            policy: &ConsensusPolicy::default(),
            decided_at: "2026-01-01T00:00:00Z",
        },
        verdict,
        Vec::new(),
    )
}

/// The decision for the last commit (the default range).
fn decide(repo: &TestRepo) -> Decision {
    decide_range(repo, Range::default())
}

/// The first 12 characters of a commit id, as the revert command prints it.
fn short(sha: &str) -> &str {
    &sha[..12]
}

/// The plan: the revert command first, then exactly one note per framework.
/// Returns the framework notes.
fn plan(repo: &TestRepo) -> Vec<String> {
    let head = repo.head();
    let decision = decide(repo);
    assert_eq!(
        decision.rollback_notes[0],
        format!("git revert {}", short(&head)),
        "the revert comes first: {:#?}",
        decision.rollback_notes
    );
    decision.rollback_notes[1..].to_vec()
}

/// A repository with an initial commit holding `files`.
fn repo_with(files: &[(&str, &str)]) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("README.md", "# Shop\n");
    for (path, text) in files {
        repo.write(path, text);
    }
    repo.commit("Initial commit");
    repo
}

/// Commits `files` on top of `repo`.
fn change(repo: &TestRepo, message: &str, files: &[(&str, &str)]) {
    for (path, text) in files {
        repo.write(path, text);
    }
    repo.commit(message);
}

const IRREVERSIBLE: &str = "drop or rewrite data; rolling the schema back does not bring the data back — take a backup or snapshot before deploying.";

// ---- git revert ----------------------------------------------------------------------

#[test]
fn a_single_commit_is_reverted_by_its_id() {
    let repo = repo_with(&[("src/lib.rs", "pub fn a() {}\n")]);
    change(
        &repo,
        "Add b",
        &[("src/lib.rs", "pub fn a() {}\npub fn b() {}\n")],
    );
    let decision = decide(&repo);
    assert_eq!(
        decision.rollback_notes,
        vec![format!("git revert {}", short(&repo.head()))]
    );
}

#[test]
fn a_range_of_commits_is_reverted_as_a_range_without_an_editor() {
    let repo = repo_with(&[("src/lib.rs", "pub fn a() {}\n")]);
    let base = repo.head();
    change(&repo, "Add b", &[("src/b.rs", "pub fn b() {}\n")]);
    change(&repo, "Add c", &[("src/c.rs", "pub fn c() {}\n")]);
    change(&repo, "Add d", &[("src/d.rs", "pub fn d() {}\n")]);
    let head = repo.head();
    let decision = decide_range(
        &repo,
        Range {
            base: Some(base.clone()),
            head: None,
        },
    );
    assert_eq!(
        decision.rollback_notes[0],
        format!("git revert --no-edit {}..{}", short(&base), short(&head))
    );
}

#[test]
fn a_merge_is_reverted_against_its_first_parent() {
    let repo = repo_with(&[("src/lib.rs", "pub fn a() {}\n")]);
    repo.branch("feature");
    change(&repo, "Add b", &[("src/b.rs", "pub fn b() {}\n")]);
    change(&repo, "Add c", &[("src/c.rs", "pub fn c() {}\n")]);
    repo.checkout("main");
    let merge = repo.merge_no_ff("feature", "Merge feature");
    let decision = decide(&repo);
    assert_eq!(
        decision.rollback_notes[0],
        format!("git revert -m 1 {}", short(&merge))
    );
}

#[test]
fn a_merged_migration_gets_the_merge_revert_and_the_down_command() {
    let repo = repo_with(&[(
        "db/migrate/20240101000000_create_users.rb",
        "class CreateUsers < ActiveRecord::Migration[7.1]\n  def change\n    create_table :users\n  end\nend\n",
    )]);
    repo.branch("feature");
    change(
        &repo,
        "Add a bio",
        &[(
            "db/migrate/20240301120000_add_bio_to_users.rb",
            "class AddBioToUsers < ActiveRecord::Migration[7.1]\n  def change\n    add_column :users, :bio, :text\n  end\nend\n",
        )],
    );
    repo.checkout("main");
    let merge = repo.merge_no_ff("feature", "Merge feature");
    let decision = decide(&repo);
    assert_eq!(
        decision.rollback_notes,
        vec![
            format!("git revert -m 1 {}", short(&merge)),
            "Rails: bin/rails db:rollback STEP=1".to_string(),
        ]
    );
}

// ---- frameworks ----------------------------------------------------------------------

const DJANGO_0001: &str = "from django.db import migrations, models\n\n\nclass Migration(migrations.Migration):\n    initial = True\n\n    dependencies = []\n\n    operations = [\n        migrations.CreateModel(name=\"Order\", fields=[(\"id\", models.AutoField(primary_key=True))]),\n    ]\n";

#[test]
fn django_goes_back_to_the_migration_the_new_one_depends_on() {
    let repo = repo_with(&[
        ("shop/migrations/0001_initial.py", DJANGO_0001),
        ("shop/migrations/0002_order_total.py", "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n    dependencies = [(\"shop\", \"0001_initial\")]\n    operations = []\n"),
    ]);
    change(
        &repo,
        "Gift messages",
        &[
            (
                "shop/migrations/0003_order_gift_message.py",
                "from django.db import migrations, models\n\n\nclass Migration(migrations.Migration):\n\n    dependencies = [\n        (\"shop\", \"0002_order_total\"),\n        migrations.swappable_dependency(settings.AUTH_USER_MODEL),\n    ]\n\n    operations = [\n        migrations.AddField(\n            model_name=\"order\",\n            name=\"gift_message\",\n            field=models.TextField(blank=True, null=True),\n        ),\n    ]\n",
            ),
            (
                "shop/migrations/0004_order_gift_wrap.py",
                "from django.db import migrations, models\n\n\nclass Migration(migrations.Migration):\n    dependencies = [(\"shop\", \"0003_order_gift_message\")]\n    operations = [\n        migrations.AddField(model_name=\"order\", name=\"gift_wrap\", field=models.BooleanField(default=False)),\n    ]\n",
            ),
            (
                "accounts/migrations/0001_initial.py",
                DJANGO_0001,
            ),
        ],
    );
    assert_eq!(
        plan(&repo),
        vec![
            "Django: python manage.py migrate accounts zero; python manage.py migrate shop 0002_order_total"
        ]
    );
}

#[test]
fn django_falls_back_to_the_previous_number_and_flags_a_removed_field() {
    let repo = repo_with(&[("billing/migrations/0001_initial.py", DJANGO_0001)]);
    // No `dependencies` in the file (hand-written): the number before it, which
    // Django accepts as a unique prefix.
    change(
        &repo,
        "Drop the legacy avatar",
        &[(
            "billing/migrations/0012_remove_invoice_legacy_code.py",
            "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n    operations = [\n        migrations.RemoveField(model_name=\"invoice\", name=\"legacy_code\"),\n    ]\n",
        )],
    );
    assert_eq!(
        plan(&repo),
        vec![format!(
            "IRREVERSIBLE: billing/migrations/0012_remove_invoice_legacy_code.py {IRREVERSIBLE} Django: python manage.py migrate billing 0011"
        )]
    );
}

#[test]
fn rails_rolls_back_as_many_steps_as_the_change_has_migrations() {
    let repo = repo_with(&[(
        "db/migrate/20240101000000_create_orders.rb",
        "class CreateOrders < ActiveRecord::Migration[7.1]\n  def change\n    create_table :orders\n  end\nend\n",
    )]);
    change(
        &repo,
        "Ship dates and notes",
        &[
            (
                "db/migrate/20240611093012_add_shipped_at_to_orders.rb",
                "class AddShippedAtToOrders < ActiveRecord::Migration[7.1]\n  def change\n    add_column :orders, :shipped_at, :datetime\n  end\nend\n",
            ),
            (
                "db/migrate/20240611093500_add_notes_to_orders.rb",
                "class AddNotesToOrders < ActiveRecord::Migration[7.1]\n  def change\n    add_column :orders, :notes, :text\n  end\nend\n",
            ),
        ],
    );
    assert_eq!(
        plan(&repo),
        vec!["Rails: bin/rails db:rollback STEP=2 (reverts 20240611093500_add_notes_to_orders.rb, 20240611093012_add_shipped_at_to_orders.rb, newest first)"]
    );
}

#[test]
fn rails_flags_a_removed_column_as_irreversible() {
    let repo = repo_with(&[(
        "db/migrate/20240101000000_create_users.rb",
        "class CreateUsers < ActiveRecord::Migration[7.1]\n  def change\n    create_table :users\n  end\nend\n",
    )]);
    change(
        &repo,
        "Drop nicknames",
        &[(
            "db/migrate/20240801101010_remove_nickname_from_users.rb",
            "class RemoveNicknameFromUsers < ActiveRecord::Migration[7.1]\n  def change\n    remove_column :users, :nickname, :string\n  end\nend\n",
        )],
    );
    assert_eq!(
        plan(&repo),
        vec![format!(
            "IRREVERSIBLE: db/migrate/20240801101010_remove_nickname_from_users.rb {IRREVERSIBLE} Rails: bin/rails db:rollback STEP=1"
        )]
    );
}

fn alembic_revision(revision: &str, down: &str, body: &str) -> String {
    format!(
        "\"\"\"{body}\n\nRevision ID: {revision}\nRevises: {down}\n\"\"\"\nfrom alembic import op\nimport sqlalchemy as sa\n\nrevision: str = \"{revision}\"\ndown_revision: Union[str, None] = {down}\n\n\ndef upgrade():\n    op.add_column(\"users\", sa.Column(\"{body}\", sa.Text(), nullable=True))\n\n\ndef downgrade():\n    op.drop_column(\"users\", \"{body}\")\n"
    )
}

#[test]
fn alembic_downgrades_to_the_down_revision_read_from_the_file() {
    let repo = repo_with(&[(
        "alembic/versions/9a8f7e6d5c4b_create_users.py",
        &alembic_revision("9a8f7e6d5c4b", "None", "create_users"),
    )]);
    change(
        &repo,
        "Two columns",
        &[
            (
                "alembic/versions/4b1c2d9e7f10_add_last_login_ip.py",
                &alembic_revision("4b1c2d9e7f10", "\"9a8f7e6d5c4b\"", "last_login_ip"),
            ),
            (
                "alembic/versions/5c2d3e0f8a21_add_timezone.py",
                &alembic_revision("5c2d3e0f8a21", "\"4b1c2d9e7f10\"", "timezone"),
            ),
        ],
    );
    assert_eq!(
        plan(&repo),
        vec!["Alembic: alembic downgrade 9a8f7e6d5c4b (the revision before this change; alembic downgrade -2 while this change is the head)"]
    );
}

#[test]
fn alembic_downgrades_the_first_revision_to_base() {
    let repo = repo_with(&[("app/__init__.py", "")]);
    change(
        &repo,
        "First revision",
        &[(
            "alembic/versions/9a8f7e6d5c4b_create_users.py",
            &alembic_revision("9a8f7e6d5c4b", "None", "create_users"),
        )],
    );
    assert_eq!(
        plan(&repo),
        vec!["Alembic: alembic downgrade base (this change holds the first revision; alembic downgrade -1 while it is the head)"]
    );
}

#[test]
fn flyway_undoes_with_the_undo_script_of_the_change() {
    let repo = repo_with(&[(
        "src/main/resources/db/migration/V1__create_shipments.sql",
        "CREATE TABLE shipments (id BIGSERIAL PRIMARY KEY);\n",
    )]);
    change(
        &repo,
        "Shipment events",
        &[
            (
                "src/main/resources/db/migration/V2__create_shipment_events.sql",
                "CREATE TABLE shipment_events (id BIGSERIAL PRIMARY KEY, shipment_id BIGINT NOT NULL REFERENCES shipments (id));\n",
            ),
            (
                "src/main/resources/db/migration/U2__create_shipment_events.sql",
                "DROP TABLE shipment_events;\n",
            ),
        ],
    );
    assert_eq!(
        plan(&repo),
        vec!["Flyway: flyway undo (Teams edition: runs the U__ undo scripts of this change)"]
    );
}

#[test]
fn flyway_without_an_undo_script_gets_the_manual_step_and_a_drop_is_irreversible() {
    let repo = repo_with(&[(
        "src/main/resources/db/migration/V14__create_customer.sql",
        "CREATE TABLE customer (id BIGSERIAL PRIMARY KEY, legacy_code TEXT);\n",
    )]);
    change(
        &repo,
        "Drop legacy codes",
        &[(
            "src/main/resources/db/migration/V15__drop_customer_legacy_code.sql",
            "-- legacy_code is no longer read since 2.14\nalter table customer drop column legacy_code;\n",
        )],
    );
    assert_eq!(
        plan(&repo),
        vec![format!(
            "IRREVERSIBLE: src/main/resources/db/migration/V15__drop_customer_legacy_code.sql {IRREVERSIBLE} Flyway: no undo script (U<version>__*.sql) in this change for V15__drop_customer_legacy_code.sql: `flyway undo` (Teams edition) needs one; otherwise roll forward with a new V__ migration that reverses it"
        )]
    );
}

#[test]
fn prisma_marks_each_migration_rolled_back_after_the_reverse_sql() {
    let repo = repo_with(&[(
        "prisma/schema.prisma",
        "model User {\n  id    Int    @id @default(autoincrement())\n  email String @unique\n}\n",
    )]);
    change(
        &repo,
        "Bios and avatars",
        &[
            (
                "prisma/schema.prisma",
                "model User {\n  id     Int     @id @default(autoincrement())\n  email  String  @unique\n  bio    String?\n  avatar String?\n}\n",
            ),
            (
                "prisma/migrations/20240612101500_add_user_bio/migration.sql",
                "-- AlterTable\nALTER TABLE \"User\" ADD COLUMN     \"bio\" TEXT;\n",
            ),
            (
                "prisma/migrations/20240612101600_add_user_avatar/migration.sql",
                "-- AlterTable\nALTER TABLE \"User\" ADD COLUMN     \"avatar\" TEXT;\n",
            ),
        ],
    );
    assert_eq!(
        plan(&repo),
        vec!["Prisma has no down migrations: before deploying, while the database still has the old schema, write the reverse SQL with `npx prisma migrate diff --from-schema-datamodel prisma/schema.prisma --to-schema-datasource prisma/schema.prisma --script > down.sql`; to roll back, run `npx prisma db execute --file down.sql --schema prisma/schema.prisma`, then npx prisma migrate resolve --rolled-back 20240612101600_add_user_avatar; npx prisma migrate resolve --rolled-back 20240612101500_add_user_bio"]
    );
}

#[test]
fn knex_names_each_migration_to_take_down() {
    let repo = repo_with(&[("knexfile.js", "module.exports = { client: 'pg' };\n")]);
    change(
        &repo,
        "Notifications",
        &[(
            "db/migrations/20240410121314_create_notifications.js",
            "/**\n * @param { import(\"knex\").Knex } knex\n */\nexports.up = function (knex) {\n  return knex.schema.createTable('notifications', (table) => {\n    table.increments('id');\n  });\n};\n\nexports.down = function (knex) {\n  return knex.schema.dropTable('notifications');\n};\n",
        )],
    );
    assert_eq!(
        plan(&repo),
        vec!["Knex: npx knex migrate:down 20240410121314_create_notifications.js — or npx knex migrate:rollback, which reverts the last batch (this change, when it was deployed alone)"]
    );
}

#[test]
fn sequelize_undoes_each_migration_by_name_newest_first() {
    let repo = repo_with(&[(".sequelizerc", "module.exports = {};\n")]);
    change(
        &repo,
        "Avatars and bios",
        &[
            (
                "migrations/20240315101010-add-avatar-url-to-users.js",
                "'use strict';\nmodule.exports = {\n  async up(queryInterface, Sequelize) {\n    await queryInterface.addColumn('users', 'avatar_url', { type: Sequelize.STRING });\n  },\n  async down(queryInterface) {\n    await queryInterface.removeColumn('users', 'avatar_url');\n  },\n};\n",
            ),
            (
                "migrations/20240316101010-add-bio-to-users.js",
                "'use strict';\nmodule.exports = {\n  async up(queryInterface, Sequelize) {\n    await queryInterface.addColumn('users', 'bio', { type: Sequelize.TEXT });\n  },\n  async down(queryInterface) {\n    await queryInterface.removeColumn('users', 'bio');\n  },\n};\n",
            ),
        ],
    );
    assert_eq!(
        plan(&repo),
        vec!["Sequelize: npx sequelize-cli db:migrate:undo --name 20240316101010-add-bio-to-users.js; npx sequelize-cli db:migrate:undo --name 20240315101010-add-avatar-url-to-users.js"]
    );
}

#[test]
fn golang_migrate_goes_down_as_many_steps_as_the_change_has_migrations() {
    let repo = repo_with(&[
        ("go.mod", "module example.com/shop\n\ngo 1.22\n"),
        (
            "db/migrations/000001_create_users.up.sql",
            "CREATE TABLE users (id BIGSERIAL PRIMARY KEY);\n",
        ),
        (
            "db/migrations/000001_create_users.down.sql",
            "DROP TABLE users;\n",
        ),
    ]);
    change(
        &repo,
        "API keys",
        &[
            (
                "db/migrations/000002_create_api_keys.up.sql",
                "CREATE TABLE api_keys (id BIGSERIAL PRIMARY KEY);\n",
            ),
            (
                "db/migrations/000002_create_api_keys.down.sql",
                "DROP TABLE api_keys;\n",
            ),
            (
                "db/migrations/000003_index_api_keys.up.sql",
                "CREATE INDEX api_keys_id ON api_keys (id);\n",
            ),
            (
                "db/migrations/000003_index_api_keys.down.sql",
                "DROP INDEX api_keys_id;\n",
            ),
            (
                "internal/store/keys.go",
                "package store\n\nfunc Keys() {}\n",
            ),
        ],
    );
    assert_eq!(
        plan(&repo),
        vec!["golang-migrate: migrate -path db/migrations -database \"$DATABASE_URL\" down 2"]
    );
}

#[test]
fn golang_migrate_without_a_down_file_says_the_down_step_cannot_work() {
    let repo = repo_with(&[("go.mod", "module example.com/shop\n\ngo 1.22\n")]);
    change(
        &repo,
        "Feeds",
        &[(
            "db/migrations/000017_add_feeds.up.sql",
            "CREATE TABLE feeds (id BIGSERIAL PRIMARY KEY);\n",
        )],
    );
    assert_eq!(
        plan(&repo),
        vec!["golang-migrate: migrate -path db/migrations -database \"$DATABASE_URL\" down 1; sqlx: sqlx migrate revert --source db/migrations — no .down.sql in this change for 000017_add_feeds.up.sql: the down step fails or does nothing until one exists"]
    );
}

#[test]
fn sqlx_reverts_when_the_change_is_a_rust_one() {
    let repo = repo_with(&[("Cargo.toml", "[package]\nname = \"shop\"\n")]);
    change(
        &repo,
        "Bios",
        &[
            (
                "migrations/20240301120000_add_bio.up.sql",
                "ALTER TABLE users ADD COLUMN bio TEXT;\n",
            ),
            (
                "migrations/20240301120000_add_bio.down.sql",
                "ALTER TABLE users DROP COLUMN bio;\n",
            ),
            ("src/users.rs", "pub fn bio() {}\n"),
        ],
    );
    assert_eq!(plan(&repo), vec!["sqlx: sqlx migrate revert"]);
}

#[test]
fn goose_goes_down_from_the_migrations_directory() {
    let repo = repo_with(&[("go.mod", "module example.com/feeds\n\ngo 1.22\n")]);
    change(
        &repo,
        "Orders",
        &[(
            "db/migrations/20240301120000_add_orders.sql",
            "-- +goose Up\nCREATE TABLE orders (id BIGSERIAL PRIMARY KEY);\n\n-- +goose Down\nDROP TABLE orders;\n",
        )],
    );
    assert_eq!(
        plan(&repo),
        vec!["goose: goose -dir db/migrations <driver> \"$DATABASE_URL\" down"]
    );
}

#[test]
fn typeorm_reverts_once_per_migration() {
    let repo = repo_with(&[("package.json", "{\"name\": \"shop\"}\n")]);
    change(
        &repo,
        "Order notes",
        &[
            (
                "src/migrations/1712345678901-AddOrderNotes.ts",
                "import { MigrationInterface, QueryRunner } from \"typeorm\";\n\nexport class AddOrderNotes1712345678901 implements MigrationInterface {\n    public async up(queryRunner: QueryRunner): Promise<void> {\n        await queryRunner.query(`ALTER TABLE \"order\" ADD \"notes\" text`);\n    }\n\n    public async down(queryRunner: QueryRunner): Promise<void> {\n        await queryRunner.query(`ALTER TABLE \"order\" DROP COLUMN \"notes\"`);\n    }\n}\n",
            ),
            (
                "src/migrations/1712345679000-AddOrderTags.ts",
                "import { MigrationInterface, QueryRunner } from \"typeorm\";\n\nexport class AddOrderTags1712345679000 implements MigrationInterface {\n    public async up(queryRunner: QueryRunner): Promise<void> {\n        await queryRunner.query(`ALTER TABLE \"order\" ADD \"tags\" text`);\n    }\n\n    public async down(queryRunner: QueryRunner): Promise<void> {\n        await queryRunner.query(`ALTER TABLE \"order\" DROP COLUMN \"tags\"`);\n    }\n}\n",
            ),
        ],
    );
    assert_eq!(
        plan(&repo),
        vec!["TypeORM: npx typeorm migration:revert -d <path to your DataSource> — 2 times, newest first: 1712345679000-AddOrderTags.ts, 1712345678901-AddOrderNotes.ts (each run reverts the last executed migration)"]
    );
}

#[test]
fn ecto_rolls_back_by_steps() {
    let repo = repo_with(&[("mix.exs", "defmodule Shop.MixProject do\nend\n")]);
    change(
        &repo,
        "Invitations",
        &[(
            "priv/repo/migrations/20240214093011_create_invitations.exs",
            "defmodule Shop.Repo.Migrations.CreateInvitations do\n  use Ecto.Migration\n\n  def change do\n    create table(:invitations) do\n      add :email, :string\n    end\n  end\nend\n",
        )],
    );
    assert_eq!(plan(&repo), vec!["Ecto: mix ecto.rollback --step 1"]);
}

#[test]
fn diesel_reverts_and_notices_a_missing_down_file() {
    let repo = repo_with(&[("Cargo.toml", "[package]\nname = \"blog\"\n")]);
    change(
        &repo,
        "Comments and likes",
        &[
            (
                "migrations/2024-03-01-101010_create_comments/up.sql",
                "CREATE TABLE comments (id SERIAL PRIMARY KEY, body TEXT NOT NULL DEFAULT '');\n",
            ),
            (
                "migrations/2024-03-01-101010_create_comments/down.sql",
                "DROP TABLE comments;\n",
            ),
            (
                "migrations/2024-03-02-101010_create_likes/up.sql",
                "CREATE TABLE likes (id SERIAL PRIMARY KEY);\n",
            ),
        ],
    );
    assert_eq!(
        plan(&repo),
        vec!["Diesel: diesel migration revert -n 2 (reverts 2024-03-02-101010_create_likes, 2024-03-01-101010_create_comments, newest first) — no down.sql in this change for 2024-03-02-101010_create_likes: write it before deploying"]
    );
}

#[test]
fn liquibase_rolls_back_as_many_changesets_as_the_change_adds() {
    let repo = repo_with(&[(
        "src/main/resources/db/changelog/db.changelog-master.xml",
        "<databaseChangeLog>\n</databaseChangeLog>\n",
    )]);
    change(
        &repo,
        "Invoice notes",
        &[(
            "src/main/resources/db/changelog/changes/2024-05-add-invoice-note.xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<databaseChangeLog>\n    <changeSet id=\"2024-05-add-invoice-note\" author=\"ana\">\n        <addColumn tableName=\"invoice\">\n            <column name=\"note\" type=\"varchar(500)\"/>\n        </addColumn>\n    </changeSet>\n    <changeSet id=\"2024-05-index-invoice-note\" author=\"ana\">\n        <createIndex tableName=\"invoice\" indexName=\"idx_invoice_note\">\n            <column name=\"note\"/>\n        </createIndex>\n    </changeSet>\n</databaseChangeLog>\n",
        )],
    );
    assert_eq!(
        plan(&repo),
        vec!["Liquibase: liquibase rollbackCount 2 (Liquibase 4.4+: liquibase rollback-count --count=2); changesets without a <rollback> block roll back only when their change type is auto-reversible"]
    );
}

#[test]
fn two_frameworks_in_one_change_get_one_note_each() {
    let repo = repo_with(&[("README.md", "# Monorepo\n")]);
    change(
        &repo,
        "Both services",
        &[
            (
                "billing/db/migrate/20240301120000_add_vat_to_invoices.rb",
                "class AddVatToInvoices < ActiveRecord::Migration[7.1]\n  def change\n    add_column :invoices, :vat, :decimal\n  end\nend\n",
            ),
            (
                "catalog/priv/repo/migrations/20240301120000_add_sku.exs",
                "defmodule Catalog.Repo.Migrations.AddSku do\n  use Ecto.Migration\n\n  def change do\n    alter table(:products) do\n      add :sku, :string\n    end\n  end\nend\n",
            ),
        ],
    );
    assert_eq!(
        plan(&repo),
        vec![
            "Rails: bin/rails db:rollback STEP=1",
            "Ecto: mix ecto.rollback --step 1"
        ]
    );
}

#[test]
fn a_column_dropped_in_an_up_migration_is_irreversible_whatever_the_tool() {
    let repo = repo_with(&[("package.json", "{\"name\": \"shop\"}\n")]);
    change(
        &repo,
        "Drop middle names",
        &[(
            "migrations/20240502090000-remove-middle-name.js",
            "'use strict';\nmodule.exports = {\n  async up(queryInterface) {\n    await queryInterface.removeColumn('users', 'middle_name');\n  },\n  async down(queryInterface, Sequelize) {\n    await queryInterface.addColumn('users', 'middle_name', { type: Sequelize.STRING });\n  },\n};\n",
        )],
    );
    assert_eq!(
        plan(&repo),
        vec![format!(
            "IRREVERSIBLE: migrations/20240502090000-remove-middle-name.js {IRREVERSIBLE} Sequelize: npx sequelize-cli db:migrate:undo --name 20240502090000-remove-middle-name.js"
        )]
    );
}
