//! What the rules need to know about a path beyond its [`FileClass`]: which migration
//! framework, which manifest format, which kind of infrastructure, whether it is
//! production-specific, UI, tooling…  Pure functions of the path.

use gate_core::FileClass;

/// A database migration tool, as far as the path (and later the content) tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Framework {
    Rails,
    RailsData,
    Django,
    Alembic,
    FlaskMigrate,
    Flyway,
    Liquibase,
    Prisma,
    Knex,
    Sequelize,
    TypeOrm,
    GolangMigrate,
    Goose,
    Dbmate,
    Diesel,
    Ecto,
    Laravel,
    Doctrine,
    EfCore,
    /// SQL files in a migrations directory whose tool the content does not name.
    SqlMigrations,
    /// Code in a migrations directory whose tool the content does not name.
    Unknown,
}

impl Framework {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Framework::Rails => "Rails",
            Framework::RailsData => "Rails data",
            Framework::Django => "Django",
            Framework::Alembic => "Alembic",
            Framework::FlaskMigrate => "Flask-Migrate",
            Framework::Flyway => "Flyway",
            Framework::Liquibase => "Liquibase",
            Framework::Prisma => "Prisma",
            Framework::Knex => "Knex",
            Framework::Sequelize => "Sequelize",
            Framework::TypeOrm => "TypeORM",
            Framework::GolangMigrate => "golang-migrate/sqlx",
            Framework::Goose => "goose",
            Framework::Dbmate => "dbmate",
            Framework::Diesel => "Diesel",
            Framework::Ecto => "Ecto",
            Framework::Laravel => "Laravel",
            Framework::Doctrine => "Doctrine",
            Framework::EfCore => "EF Core",
            Framework::SqlMigrations => "SQL",
            Framework::Unknown => "database",
        }
    }
}

/// Dependency manifest formats the rules read versions from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManifestKind {
    /// package.json, composer.json: `"name": "range"` inside dependency objects.
    JsonDeps,
    /// Cargo.toml, pyproject.toml (Poetry and PEP 621), Pipfile, libs.versions.toml.
    Toml,
    GoMod,
    /// requirements*.txt, constraints.txt.
    PipRequirements,
    /// setup.py / setup.cfg: quoted or indented requirement specifiers.
    PySetup,
    Gemfile,
    Gemspec,
    Maven,
    Gradle,
    /// .csproj, Directory.Packages.props, packages.config.
    NuGet,
    Mix,
    /// A manifest we classify but do not read versions from (pubspec, Podfile, …).
    Other,
}

/// The kind of infrastructure a file describes; named in risk details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InfraKind {
    Docker,
    Compose,
    Kubernetes,
    Helm,
    Terraform,
    Pulumi,
    Ansible,
    GithubActions,
    Ci,
    WebServer,
    Platform,
    CloudFormation,
    Other,
}

impl InfraKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            InfraKind::Docker => "container image",
            InfraKind::Compose => "compose",
            InfraKind::Kubernetes => "Kubernetes",
            InfraKind::Helm => "Helm",
            InfraKind::Terraform => "Terraform",
            InfraKind::Pulumi => "Pulumi",
            InfraKind::Ansible => "Ansible",
            InfraKind::GithubActions => "GitHub Actions",
            InfraKind::Ci => "CI/CD",
            InfraKind::WebServer => "web server",
            InfraKind::Platform => "platform",
            InfraKind::CloudFormation => "CloudFormation",
            InfraKind::Other => "infrastructure",
        }
    }
}

/// Data-changing scripts recognised by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataKind {
    Backfill,
    Seeds,
}

/// Facts about one path. Computed once per file.
#[derive(Debug, Clone)]
pub(crate) struct PathFacts {
    pub class: FileClass,
    pub ext: String,
    /// `.sql` (comments are `--` and `/* */`).
    pub sql: bool,
    /// A file in a migration location, with the tool the path suggests.
    pub migration: Option<Framework>,
    /// A `.sql` file outside migration locations: schema only if it holds DDL.
    pub raw_sql: bool,
    /// `*.down.sql`, Diesel's `down.sql`, Flyway's `U<n>__*.sql`: reverse migrations.
    pub down_file: bool,
    /// `db/schema.rb`, `structure.sql`, EF model snapshots: dumps of the schema.
    pub schema_dump: bool,
    pub prisma_schema: bool,
    pub data: Option<DataKind>,
    pub manifest: Option<ManifestKind>,
    /// A manifest section that only holds development dependencies
    /// (`requirements-dev.txt`).
    pub dev_manifest: bool,
    pub infra: Option<InfraKind>,
    pub terraform: bool,
    pub yaml: bool,
    /// The path names authentication, authorization, sessions or crypto.
    pub auth_path: bool,
    /// Front-end view code: an auth change there is presentation, not enforcement.
    pub ui: bool,
    pub prod: bool,
    /// Local/dev/test/example configuration: lower stakes than production.
    pub non_prod: bool,
    pub env_file: bool,
    /// `.env.example` and friends: documentation of variables, not values.
    pub env_template: bool,
    pub feature_flags: bool,
    /// Linters, formatters, editor and repository tooling: never deployed.
    pub tooling: bool,
    /// Images, fonts and other static assets.
    pub asset: bool,
}

impl PathFacts {
    /// Content rules never run on these: prose, tests, fixtures, generated code, lockfiles.
    pub(crate) fn is_inert(&self) -> bool {
        matches!(
            self.class,
            FileClass::Docs | FileClass::Test | FileClass::Generated | FileClass::Lockfile
        )
    }

    /// Application source that lands in the "code changed" baseline.
    pub(crate) fn is_code(&self) -> bool {
        match self.class {
            FileClass::Code | FileClass::Auth => !self.asset && !self.tooling,
            FileClass::Migration => self.raw_sql,
            _ => false,
        }
    }
}

/// Lowercase words of a path, split on punctuation and camelCase (core's reading).
pub(crate) fn words(path: &str) -> Vec<String> {
    gate_core::path_words(path).collect()
}

use gate_core::is_auth_path;

const TOOLING_NAMES: &[&str] = &[
    ".editorconfig",
    ".gitignore",
    ".gitattributes",
    ".gitmodules",
    ".dockerignore",
    ".npmignore",
    ".prettierignore",
    ".eslintignore",
    ".nvmrc",
    ".node-version",
    ".python-version",
    ".ruby-version",
    ".tool-versions",
    ".pre-commit-config.yaml",
    ".pre-commit-config.yml",
    ".golangci.yml",
    ".golangci.yaml",
    "rustfmt.toml",
    ".rustfmt.toml",
    "clippy.toml",
    ".clippy.toml",
    "rust-toolchain",
    "rust-toolchain.toml",
    "deny.toml",
    "tsconfig.json",
    "jsconfig.json",
    ".babelrc",
    ".browserslistrc",
    "tox.ini",
    "pytest.ini",
    ".flake8",
    "mypy.ini",
    ".mypy.ini",
    "ruff.toml",
    ".ruff.toml",
    ".coveragerc",
    ".pylintrc",
    "pylintrc",
    ".isort.cfg",
    ".yamllint",
    ".yamllint.yml",
    ".yamllint.yaml",
    ".rubocop.yml",
    ".rubocop_todo.yml",
    ".swiftlint.yml",
    ".swift-format",
    "codecov.yml",
    ".codecov.yml",
    "renovate.json",
    "renovate.json5",
    ".renovaterc",
    ".renovaterc.json",
    "dependabot.yml",
    "dependabot.yaml",
    "lerna.json",
    "nx.json",
    "turbo.json",
    ".releaserc",
    ".releaserc.json",
    ".lintstagedrc",
    ".lintstagedrc.json",
    ".markdownlint.json",
    ".markdownlint.yaml",
    ".markdownlintrc",
    ".stylelintrc",
    ".stylelintrc.json",
    ".commitlintrc",
    ".commitlintrc.json",
    ".cz.toml",
    "typos.toml",
    "_typos.toml",
    ".typos.toml",
    "cspell.json",
    ".cspell.json",
    ".shellcheckrc",
    ".hadolint.yaml",
    ".sqlfluff",
    "biome.json",
    ".mailmap",
    ".clang-format",
    ".clang-tidy",
];

const TOOLING_PREFIXES: &[&str] = &[
    ".eslintrc",
    "eslint.config.",
    ".prettierrc",
    "prettier.config.",
    "babel.config.",
    "jest.config.",
    "vitest.config.",
    "karma.conf.",
    "cypress.config.",
    "playwright.config.",
    "commitlint.config.",
    "stylelint.config.",
    "tsconfig.",
    ".stylelintrc.",
    "lint-staged.config.",
    "postcss.config.",
    "tailwind.config.",
    ".swcrc",
];

const ASSET_EXTS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tiff", "avif", "woff", "woff2",
    "ttf", "otf", "eot", "mp3", "mp4", "wav", "ogg", "webm", "mov", "pdf", "psd", "sketch", "fig",
];

const UI_EXTS: &[&str] = &[
    "tsx",
    "jsx",
    "vue",
    "svelte",
    "html",
    "htm",
    "erb",
    "haml",
    "slim",
    "hbs",
    "handlebars",
    "ejs",
    "pug",
    "twig",
    "css",
    "scss",
    "sass",
    "less",
    "cshtml",
    "razor",
    "astro",
    "jinja",
    "jinja2",
];

/// Computes the facts of `path`, whose class the git crate (or a test) already set.
pub(crate) fn path_facts(path: &str, class: FileClass) -> PathFacts {
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower).to_string();
    let segments: Vec<&str> = lower.split('/').collect();
    let dirs: Vec<&str> = segments[..segments.len().saturating_sub(1)].to_vec();
    let has_dir = |wanted: &[&str]| dirs.iter().any(|d| wanted.contains(d));
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_string())
        .unwrap_or_default();
    let path_words = words(path);
    let has_word = |wanted: &[&str]| path_words.iter().any(|w| wanted.contains(&w.as_str()));
    let original_name = path.rsplit('/').next().unwrap_or(path);

    let sql = ext == "sql";
    let migration_dir = has_dir(&[
        "migrations",
        "migration",
        "migrate",
        "db_migrations",
        "alembic",
        "flyway",
        "liquibase",
        "versions",
        "changelog",
        "changelogs",
    ]);
    let schema_dump = name == "schema.rb"
        || name == "structure.sql"
        || (ext == "cs" && name.ends_with("modelsnapshot.cs"))
        || (sql && has_dir(&["db"]) && name == "schema.sql");
    let prisma_schema = name == "schema.prisma" || (ext == "prisma" && has_dir(&["prisma"]));
    let down_file = sql
        && (name.ends_with(".down.sql")
            || name.ends_with("_down.sql")
            || name == "down.sql"
            || (original_name.starts_with('U') && original_name.contains("__")));

    let mut migration = None;
    if class == FileClass::Migration && !schema_dump && !prisma_schema {
        migration = migration_framework(&lower, &name, &dirs, &ext, original_name, migration_dir);
    }
    let raw_sql = sql && migration.is_none() && !schema_dump && class == FileClass::Migration;

    let data = if has_word(&["backfill", "backfills"])
        || lower.contains("data_migration")
        || lower.contains("data-migration")
        || lower.contains("datamigration")
        || lower.contains("db/data/")
    {
        Some(DataKind::Backfill)
    } else if (has_dir(&["seeds", "seeders"])
        || matches!(
            name.as_str(),
            "seeds.rb" | "seeds.py" | "seed.sql" | "seeds.sql"
        )
        || (has_dir(&["db", "database", "prisma", "supabase"])
            && has_word(&["seeds", "seed", "seeders", "seeder", "seeding"])))
        && !matches!(
            class,
            FileClass::Docs | FileClass::Test | FileClass::Generated
        )
    {
        Some(DataKind::Seeds)
    } else {
        None
    };
    if data == Some(DataKind::Backfill) && lower.contains("db/data/") {
        migration = Some(Framework::RailsData);
    }

    let manifest = (class == FileClass::Manifest).then(|| manifest_kind(&name));
    let dev_manifest = class == FileClass::Manifest
        && (name.contains("dev")
            || name.contains("test")
            || name.contains("lint")
            || name.contains("docs"))
        && (name.ends_with(".txt") || has_dir(&["requirements"]));

    let infra = (class == FileClass::Infra).then(|| infra_kind(&lower, &name, &dirs, &ext));
    let terraform = matches!(ext.as_str(), "tf" | "tofu" | "hcl" | "tfvars");
    let yaml = matches!(ext.as_str(), "yml" | "yaml");

    let tooling = TOOLING_NAMES.contains(&name.as_str())
        || TOOLING_PREFIXES.iter().any(|p| name.starts_with(p))
        || lower.starts_with(".vscode/")
        || lower.starts_with(".idea/")
        || lower.starts_with(".devcontainer/")
        || lower.starts_with(".husky/")
        || lower.starts_with(".cargo/")
        || name == "pnpm-workspace.yaml"
        || name == ".npmrc"
        || name == ".yarnrc.yml"
        || lower.starts_with(".changeset/");
    let asset = ASSET_EXTS.contains(&ext.as_str());
    let ui = UI_EXTS.contains(&ext.as_str())
        || (matches!(ext.as_str(), "ts" | "js" | "mjs")
            && has_dir(&[
                "components",
                "pages",
                "views",
                "screens",
                "widgets",
                "frontend",
                "client",
                "ui",
            ])
            && !has_dir(&[
                "api",
                "server",
                "middleware",
                "middlewares",
                "backend",
                "lib",
                "routes",
                "handlers",
            ]));

    let auth_path = match class {
        FileClass::Auth => true,
        FileClass::Config | FileClass::Code => is_auth_path(path),
        _ => false,
    };

    let prod = has_word(&["prod", "production", "prd"]);
    let non_prod = has_word(&[
        "dev",
        "development",
        "local",
        "test",
        "testing",
        "example",
        "sample",
        "template",
        "ci",
        "staging",
        "stage",
        "sandbox",
        "demo",
    ]) && !prod;
    let env_file = name == ".env" || name.starts_with(".env.") || name.ends_with(".env");
    let env_template = env_file
        && (name.contains("example")
            || name.contains("sample")
            || name.contains("template")
            || name.contains("dist"));
    let feature_flags = has_dir(&["flags", "feature-flags", "feature_flags", "features-flags"])
        || name.contains("feature_flag")
        || name.contains("feature-flag")
        || name.contains("featureflag")
        || name.starts_with("flags.")
        || has_word(&["flipper", "unleash", "launchdarkly"]);

    PathFacts {
        class,
        ext,
        sql,
        migration,
        raw_sql,
        down_file,
        schema_dump,
        prisma_schema,
        data,
        manifest,
        dev_manifest,
        infra,
        terraform,
        yaml,
        auth_path,
        ui,
        prod,
        non_prod,
        env_file,
        env_template,
        feature_flags,
        tooling,
        asset,
    }
}

fn starts_with_digits(name: &str, min: usize) -> bool {
    name.bytes().take_while(u8::is_ascii_digit).count() >= min
}

fn migration_framework(
    lower: &str,
    name: &str,
    dirs: &[&str],
    ext: &str,
    original_name: &str,
    migration_dir: bool,
) -> Option<Framework> {
    let has_dir = |wanted: &str| dirs.contains(&wanted);
    let framework = if lower.contains("db/migrate/") && ext == "rb" {
        Framework::Rails
    } else if lower.contains("priv/repo/migrations/") || (migration_dir && ext == "exs") {
        Framework::Ecto
    } else if lower.contains("alembic/versions/") || (has_dir("versions") && has_dir("alembic")) {
        Framework::Alembic
    } else if lower.contains("migrations/versions/") && ext == "py" {
        Framework::FlaskMigrate
    } else if has_dir("migrations") && ext == "py" && starts_with_digits(name, 4) {
        Framework::Django
    } else if lower.contains("prisma/migrations/")
        || (name == "migration.sql" && lower.contains("prisma"))
    {
        Framework::Prisma
    } else if ext == "sql"
        && (original_name.starts_with('V')
            || original_name.starts_with('U')
            || original_name.starts_with('R'))
        && original_name.contains("__")
    {
        Framework::Flyway
    } else if matches!(ext, "xml" | "yaml" | "yml" | "json")
        && (lower.contains("liquibase") || lower.contains("changelog"))
    {
        Framework::Liquibase
    } else if ext == "sql" && (name == "up.sql" || name == "down.sql") {
        Framework::Diesel
    } else if ext == "sql" && (name.ends_with(".up.sql") || name.ends_with(".down.sql")) {
        Framework::GolangMigrate
    } else if lower.contains("database/migrations/") && ext == "php" {
        Framework::Laravel
    } else if ext == "php" && migration_dir && name.starts_with("version") {
        Framework::Doctrine
    } else if ext == "cs" && migration_dir && starts_with_digits(name, 8) {
        Framework::EfCore
    } else if ext == "sql" && migration_dir {
        Framework::SqlMigrations
    } else if migration_dir
        && matches!(ext, "js" | "ts" | "mjs" | "cjs")
        && (starts_with_digits(name, 3) || name.contains("migration"))
    {
        // Knex, Sequelize or TypeORM; the content tells which.
        Framework::Unknown
    } else if migration_dir
        && matches!(
            ext,
            "go" | "rb" | "py" | "php" | "cs" | "java" | "kt" | "ex" | "rs"
        )
    {
        if starts_with_digits(name, 3)
            || (name.starts_with('v') && starts_with_digits(&name[1..], 1))
        {
            Framework::Unknown
        } else {
            // Code in a migrations directory without a migration's name (a runner, a
            // helper): a migration only if its content says so.
            return None;
        }
    } else if lower.contains("migrat") || lower.contains("liquibase") || lower.contains("flyway") {
        if ext == "sql" {
            Framework::SqlMigrations
        } else {
            return None;
        }
    } else {
        return None;
    };
    Some(framework)
}

fn manifest_kind(name: &str) -> ManifestKind {
    match name {
        "package.json" | "composer.json" => ManifestKind::JsonDeps,
        "cargo.toml" | "pyproject.toml" | "pipfile" | "libs.versions.toml" => ManifestKind::Toml,
        "go.mod" => ManifestKind::GoMod,
        "setup.py" | "setup.cfg" => ManifestKind::PySetup,
        "gemfile" => ManifestKind::Gemfile,
        "pom.xml" => ManifestKind::Maven,
        "build.gradle" | "build.gradle.kts" => ManifestKind::Gradle,
        "packages.config" | "directory.packages.props" | "directory.build.props" => {
            ManifestKind::NuGet
        }
        "mix.exs" => ManifestKind::Mix,
        _ if name.ends_with(".csproj")
            || name.ends_with(".fsproj")
            || name.ends_with(".vbproj") =>
        {
            ManifestKind::NuGet
        }
        _ if name.ends_with(".gemspec") => ManifestKind::Gemspec,
        _ if name.ends_with(".txt") => ManifestKind::PipRequirements,
        _ => ManifestKind::Other,
    }
}

fn infra_kind(lower: &str, name: &str, dirs: &[&str], ext: &str) -> InfraKind {
    let has_dir = |wanted: &[&str]| dirs.iter().any(|d| wanted.contains(d));
    if name == "dockerfile"
        || name.starts_with("dockerfile.")
        || name.ends_with(".dockerfile")
        || name == "containerfile"
    {
        InfraKind::Docker
    } else if name.starts_with("docker-compose") || name.starts_with("compose.") {
        InfraKind::Compose
    } else if matches!(ext, "tf" | "tofu" | "tfvars" | "hcl")
        || has_dir(&["terraform", "opentofu", "tofu"])
    {
        InfraKind::Terraform
    } else if lower.starts_with(".github/workflows/") || lower.starts_with(".github/actions/") {
        InfraKind::GithubActions
    } else if name == "jenkinsfile"
        || name == ".gitlab-ci.yml"
        || name == "azure-pipelines.yml"
        || name == "bitbucket-pipelines.yml"
        || name == ".travis.yml"
        || name == ".drone.yml"
        || name.starts_with("cloudbuild")
        || name == "buildspec.yml"
        || lower.starts_with(".circleci/")
        || lower.starts_with(".buildkite/")
        || lower.starts_with(".gitlab-ci/")
        || lower.starts_with(".tekton/")
    {
        InfraKind::Ci
    } else if name == "chart.yaml"
        || name.starts_with("values")
        || name == "helmfile.yaml"
        || has_dir(&["helm", "charts"])
    {
        InfraKind::Helm
    } else if has_dir(&[
        "k8s",
        "kubernetes",
        "kustomize",
        "manifests",
        "argocd",
        "flux",
    ]) || name.starts_with("kustomization")
    {
        InfraKind::Kubernetes
    } else if has_dir(&["pulumi", "cdk"]) || name.starts_with("pulumi") || name == "cdk.json" {
        InfraKind::Pulumi
    } else if has_dir(&["ansible", "playbooks", "roles"]) {
        InfraKind::Ansible
    } else if name.contains("nginx")
        || name == "httpd.conf"
        || name == "apache2.conf"
        || name == ".htaccess"
        || name == "caddyfile"
        || name == "haproxy.cfg"
        || name.starts_with("traefik")
        || has_dir(&[
            "nginx",
            "sites-available",
            "sites-enabled",
            "conf.d",
            "haproxy",
            "caddy",
            "apache2",
            "httpd",
        ])
    {
        InfraKind::WebServer
    } else if has_dir(&["cloudformation"]) || ext == "bicep" {
        InfraKind::CloudFormation
    } else if matches!(
        name,
        "procfile"
            | "fly.toml"
            | "render.yaml"
            | "app.yaml"
            | "netlify.toml"
            | "vercel.json"
            | "wrangler.toml"
            | "serverless.yml"
            | "serverless.yaml"
            | "appspec.yml"
    ) {
        InfraKind::Platform
    } else {
        InfraKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gate_core::classify_path;

    fn facts(path: &str) -> PathFacts {
        path_facts(path, classify_path(path))
    }

    #[test]
    fn migration_frameworks_are_recognised_from_paths() {
        let cases = [
            (
                "db/migrate/20240101120000_add_email.rb",
                Some(Framework::Rails),
            ),
            (
                "shop/migrations/0007_order_status.py",
                Some(Framework::Django),
            ),
            (
                "alembic/versions/3f2a_add_index.py",
                Some(Framework::Alembic),
            ),
            (
                "migrations/versions/3f2a_add_index.py",
                Some(Framework::FlaskMigrate),
            ),
            (
                "src/main/resources/db/migration/V12__drop_legacy.sql",
                Some(Framework::Flyway),
            ),
            (
                "prisma/migrations/20240101_init/migration.sql",
                Some(Framework::Prisma),
            ),
            (
                "migrations/000012_users.up.sql",
                Some(Framework::GolangMigrate),
            ),
            (
                "migrations/2024-01-01-000000_create_posts/up.sql",
                Some(Framework::Diesel),
            ),
            (
                "priv/repo/migrations/20240101_create_users.exs",
                Some(Framework::Ecto),
            ),
            (
                "database/migrations/2024_01_01_000000_create_flights_table.php",
                Some(Framework::Laravel),
            ),
            (
                "src/Migrations/20240101120000_AddBlog.cs",
                Some(Framework::EfCore),
            ),
            (
                "migrations/20240101_create_users.js",
                Some(Framework::Unknown),
            ),
            (
                "db/migrations/00012_add_orders.sql",
                Some(Framework::SqlMigrations),
            ),
            ("queries/users.sql", None),
            ("db/schema.rb", None),
        ];
        for (path, want) in cases {
            assert_eq!(facts(path).migration, want, "{path}");
        }
        assert!(facts("queries/users.sql").raw_sql);
        assert!(facts("migrations/000012_users.down.sql").down_file);
        assert!(facts("db/schema.rb").schema_dump);
    }

    #[test]
    fn seeds_need_a_database_context_and_views_need_a_front_end() {
        assert_eq!(facts("db/seeds.rb").data, Some(DataKind::Seeds));
        assert_eq!(
            facts("database/seeders/PlanSeeder.php").data,
            Some(DataKind::Seeds)
        );
        assert_eq!(facts("prisma/seed.ts").data, Some(DataKind::Seeds));
        assert_eq!(facts("src/random/seed.rs").data, None);
        assert!(facts("web/src/components/LoginForm.tsx").ui);
        assert!(facts("src/pages/account.js").ui);
        assert!(!facts("app/services/session.js").ui);
        assert!(!facts("src/pages/api/login.ts").ui);
        assert!(facts("config/initializers/devise.rb").auth_path);
        assert!(facts("config/environments/development.rb").non_prod);
        assert!(facts(".env.production").prod);
    }

    #[test]
    fn words_split_camel_case_and_punctuation() {
        assert_eq!(
            words("src/OAuth2Config.java"),
            ["src", "o", "auth2", "config", "java"]
        );
        assert_eq!(words("app/HTTPServer_v2"), ["app", "http", "server", "v2"]);
    }
}
