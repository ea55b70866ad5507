//! What a path says a file is. Used to pack the diff by risk priority (git crate) and
//! as the first signal of the rules analyzer.
//!
//! The order of the checks matters and encodes a few decisions:
//! - lockfiles and generated/vendored files first: their content is never read;
//! - prose (`*.md`, `*.rst`, …) and tests/fixtures before migrations, so a `DROP TABLE`
//!   in `tests/fixtures/schema.sql` or `docs/migrations.md` is a test or a doc;
//! - authentication is recognised by whole words of the path (`auth`, `login`,
//!   `session`, `OAuth2Config`…), never by substrings, so `processor.rs` (…sso…),
//!   `oracle.go` (…acl…) or `authors.py` are ordinary code.

use serde::{Deserialize, Serialize};

/// The kind of file a path names, ordered by packing priority (most risky first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileClass {
    /// Database migration or raw SQL.
    Migration,
    /// Authentication / authorization / crypto code.
    Auth,
    /// Application configuration, env files, feature flags.
    Config,
    /// Infrastructure: containers, Kubernetes, Terraform, CI/CD, web servers.
    Infra,
    /// Dependency manifest (package.json, Cargo.toml, go.mod, …).
    Manifest,
    /// Application code.
    Code,
    /// Dependency lockfile: summarized as version changes, not dumped.
    Lockfile,
    /// Tests and fixtures.
    Test,
    /// Documentation.
    Docs,
    /// Generated or vendored files: listed, not dumped.
    Generated,
}

impl FileClass {
    /// Whether the diff of such a file is worth packing at all.
    pub fn is_dumped(self) -> bool {
        !matches!(self, FileClass::Lockfile | FileClass::Generated)
    }
}

const LOCKFILES: &[&str] = &[
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "bun.lock",
    "cargo.lock",
    "go.sum",
    "go.work.sum",
    "poetry.lock",
    "pipfile.lock",
    "uv.lock",
    "pdm.lock",
    "gemfile.lock",
    "composer.lock",
    "packages.lock.json",
    "gradle.lockfile",
    "mix.lock",
    "pubspec.lock",
    "podfile.lock",
    "flake.lock",
    "package.resolved",
    "deno.lock",
];

const MANIFESTS: &[&str] = &[
    "package.json",
    "cargo.toml",
    "go.mod",
    "requirements.txt",
    "constraints.txt",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "pipfile",
    "environment.yml",
    "gemfile",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "settings.gradle",
    "settings.gradle.kts",
    "libs.versions.toml",
    "composer.json",
    "packages.config",
    "directory.packages.props",
    "directory.build.props",
    "mix.exs",
    "pubspec.yaml",
    "podfile",
];

/// Classifies a repository-relative path. Pure and deterministic.
pub fn classify_path(path: &str) -> FileClass {
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let segments: Vec<&str> = lower.split('/').collect();
    let dirs = &segments[..segments.len().saturating_sub(1)];
    let in_dir = |wanted: &[&str]| dirs.iter().any(|d| wanted.contains(d));
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");

    if LOCKFILES.contains(&name) || (ext == "lock" && !name.starts_with('.')) {
        return FileClass::Lockfile;
    }
    if is_generated(&lower, name, dirs, ext) {
        return FileClass::Generated;
    }
    if is_prose(name, dirs, ext) {
        return FileClass::Docs;
    }
    if is_test(path, name, dirs) {
        return FileClass::Test;
    }
    if in_dir(&[
        "docs",
        "doc",
        "documentation",
        "examples",
        "example",
        "samples",
    ]) || is_repo_meta(&lower, name, dirs)
    {
        return FileClass::Docs;
    }
    if is_migration(&lower, name, dirs, ext) {
        return FileClass::Migration;
    }
    if MANIFESTS.contains(&name)
        || name.ends_with(".csproj")
        || name.ends_with(".fsproj")
        || name.ends_with(".vbproj")
        || name.ends_with(".gemspec")
        || (name.starts_with("requirements") && ext == "txt")
        || (in_dir(&["requirements"]) && ext == "txt")
    {
        return FileClass::Manifest;
    }
    if is_infra(&lower, name, dirs, ext) {
        return FileClass::Infra;
    }
    if is_docs(name, dirs, ext) {
        return FileClass::Docs;
    }
    if is_config(name, dirs, ext) {
        return FileClass::Config;
    }
    if is_auth_path(path) {
        return FileClass::Auth;
    }
    FileClass::Code
}

fn is_generated(lower: &str, name: &str, dirs: &[&str], ext: &str) -> bool {
    dirs.iter().any(|d| {
        matches!(
            *d,
            "vendor"
                | "node_modules"
                | "third_party"
                | "third-party"
                | "dist"
                | "generated"
                | "__generated__"
                | "__snapshots__"
        )
    }) || lower.starts_with(".yarn/releases/")
        || lower.starts_with(".yarn/plugins/")
        || name.ends_with(".min.js")
        || name.ends_with(".min.css")
        || name.ends_with(".pb.go")
        || name.ends_with(".pb.gw.go")
        || name.ends_with("_pb2.py")
        || name.ends_with("_pb2_grpc.py")
        || name.ends_with(".generated.cs")
        || name.ends_with(".designer.cs")
        || name.ends_with(".g.dart")
        || name.ends_with(".freezed.dart")
        || name.ends_with("_generated.go")
        || name.starts_with("zz_generated")
        || name.ends_with(".snap")
        || name == ".pnp.cjs"
        || name == ".pnp.loader.mjs"
        || ext == "map"
}

/// Prose by extension, wherever it lives. Text files that are really build inputs are
/// excluded (`requirements.txt`, `CMakeLists.txt`).
fn is_prose(name: &str, dirs: &[&str], ext: &str) -> bool {
    match ext {
        "md" | "mdx" | "markdown" | "rst" | "adoc" | "asciidoc" => true,
        "txt" => {
            !(name.starts_with("requirements")
                || name == "constraints.txt"
                || name == "cmakelists.txt"
                || name == "robots.txt"
                || dirs.contains(&"requirements"))
        }
        _ => false,
    }
}

/// Repository metadata that never reaches production: issue templates, funding,
/// code owners, translations.
fn is_repo_meta(lower: &str, name: &str, dirs: &[&str]) -> bool {
    let github_meta = lower.starts_with(".github/")
        && !lower.starts_with(".github/workflows/")
        && !lower.starts_with(".github/actions/")
        && name != "dependabot.yml"
        && name != "dependabot.yaml";
    let locale = dirs.iter().any(|d| {
        matches!(
            *d,
            "locales" | "locale" | "i18n" | "l10n" | "translations" | "lang"
        )
    }) && !name.ends_with(".py")
        && !name.ends_with(".rs")
        && !name.ends_with(".go");
    let translation_ext = name.ends_with(".po")
        || name.ends_with(".pot")
        || name.ends_with(".xlf")
        || name.ends_with(".arb");
    // Release-note fragments (`changelogs/unreleased/*.yml`), unless the directory is a
    // Liquibase changelog under a database tree.
    let release_notes = dirs.iter().any(|d| {
        matches!(
            *d,
            "changelog" | "changelogs" | "changes" | "newsfragments" | ".changeset"
        )
    }) && !(lower.contains("db/")
        || lower.contains("database")
        || lower.contains("liquibase")
        || lower.contains("resources/"));
    github_meta || locale || translation_ext || release_notes
}

fn is_migration(lower: &str, name: &str, dirs: &[&str], ext: &str) -> bool {
    const MIGRATION_DIRS: &[&str] = &[
        "migrations",
        "migration",
        "migrate",
        "db_migrations",
        "alembic",
        "flyway",
        "liquibase",
        "data_migrations",
        "data-migrations",
    ];
    let changelog_dir = dirs
        .iter()
        .any(|d| matches!(*d, "changelog" | "changelogs"))
        && matches!(ext, "xml" | "yaml" | "yml" | "json" | "sql")
        && (lower.contains("db/")
            || lower.contains("database")
            || lower.contains("liquibase")
            || lower.contains("resources/"));
    ext == "sql"
        || (dirs.iter().any(|d| MIGRATION_DIRS.contains(d))
            && !matches!(ext, "json" | "lock" | "png" | "svg"))
        || changelog_dir
        || lower.contains("db/data/")
        || lower.contains("priv/repo/migrations/")
        || lower.contains("alembic/versions/")
        || (name.contains("changelog")
            && matches!(ext, "xml" | "yaml" | "yml")
            && lower.contains("db"))
        || path_words(lower).any(|w| w == "backfill" || w == "backfills")
        || name == "schema.prisma"
        || name == "schema.rb"
        || name == "structure.sql"
}

fn is_test(path: &str, name: &str, dirs: &[&str]) -> bool {
    let test_dir = |d: &&str| {
        matches!(
            *d,
            "test"
                | "tests"
                | "spec"
                | "specs"
                | "__tests__"
                | "__mocks__"
                | "testdata"
                | "test-data"
                | "test_data"
                | "fixtures"
                | "e2e"
                | "testing"
                | "cypress"
                | "playwright"
                | "testutil"
                | "testutils"
                | "testhelpers"
                | "benches"
                | "benchmarks"
                | "androidtest"
                | "integrationtest"
                | "testfixtures"
        ) || d.starts_with("test_")
            || d.starts_with("test-")
            || d.ends_with("_test")
            || d.ends_with("-test")
            || d.ends_with("_tests")
            || d.ends_with("-tests")
    };
    if dirs.iter().any(test_dir) {
        return true;
    }
    if name.starts_with("test_")
        || name.contains("_test.")
        || name.contains(".test.")
        || name.contains(".spec.")
        || name.contains("_spec.")
        || name.contains("-test.")
        || name == "conftest.py"
        || name == "tests.py"
        || name == "tests.rs"
    {
        return true;
    }
    // CamelCase suffixes need the original case: `UserServiceTest.java` is a test,
    // `latest.js` and `contest.py` are not.
    let original_name = path.rsplit('/').next().unwrap_or(path);
    let stem = original_name.split('.').next().unwrap_or(original_name);
    let code_ext = matches!(
        name.rsplit_once('.').map(|(_, e)| e).unwrap_or(""),
        "java"
            | "kt"
            | "kts"
            | "scala"
            | "groovy"
            | "cs"
            | "fs"
            | "vb"
            | "php"
            | "swift"
            | "m"
            | "go"
            | "rb"
            | "py"
            | "ts"
            | "js"
    );
    code_ext
        && stem.len() > 4
        && (stem.ends_with("Test")
            || stem.ends_with("Tests")
            || stem.ends_with("Spec")
            || stem.ends_with("IT")
            || stem.ends_with("TestCase"))
}

fn is_docs(name: &str, dirs: &[&str], ext: &str) -> bool {
    matches!(
        name,
        "license"
            | "licence"
            | "authors"
            | "contributors"
            | "changelog"
            | "changes"
            | "history"
            | "news"
            | "codeowners"
            | "notice"
            | "mkdocs.yml"
            | ".readthedocs.yaml"
            | ".readthedocs.yml"
            | "book.toml"
    ) || matches!(ext, "png" | "jpg" | "jpeg" | "gif" | "svg" | "webp" | "ico")
        && dirs
            .iter()
            .any(|d| matches!(*d, "docs" | "doc" | "images" | "img" | "screenshots"))
}

fn is_infra(lower: &str, name: &str, dirs: &[&str], ext: &str) -> bool {
    let has_dir = |wanted: &[&str]| dirs.iter().any(|d| wanted.contains(d));
    let named = name == "dockerfile"
        || name.starts_with("dockerfile.")
        || name.ends_with(".dockerfile")
        || name == "containerfile"
        || name.starts_with("docker-compose")
        || (name.starts_with("compose.") && matches!(ext, "yml" | "yaml"))
        || matches!(ext, "tf" | "tofu" | "tfvars" | "hcl" | "bicep" | "nomad")
        || name == "chart.yaml"
        || name == "values.yaml"
        || (name.starts_with("values-") && matches!(ext, "yml" | "yaml"))
        || (name.starts_with("values.") && matches!(ext, "yml" | "yaml"))
        || name == "kustomization.yaml"
        || name == "kustomization.yml"
        || name == "helmfile.yaml"
        || name == "pulumi.yaml"
        || (name.starts_with("pulumi.") && matches!(ext, "yaml" | "yml"))
        || name == "procfile"
        || name == "jenkinsfile"
        || name == "vagrantfile"
        || name == "tiltfile"
        || name == "earthfile"
        || name == ".gitlab-ci.yml"
        || name == "azure-pipelines.yml"
        || name == "bitbucket-pipelines.yml"
        || name == ".travis.yml"
        || name == ".drone.yml"
        || name == "cloudbuild.yaml"
        || name == "cloudbuild.yml"
        || name == "buildspec.yml"
        || name == "appspec.yml"
        || name == "nginx.conf"
        || (name.contains("nginx") && matches!(ext, "conf" | "template"))
        || name == "httpd.conf"
        || name == "apache2.conf"
        || name == ".htaccess"
        || name == "caddyfile"
        || name == "haproxy.cfg"
        || name == "traefik.yml"
        || name == "traefik.toml"
        || name == "fly.toml"
        || name == "render.yaml"
        || name == "app.yaml"
        || name == "netlify.toml"
        || name == "vercel.json"
        || name == "wrangler.toml"
        || name == "serverless.yml"
        || name == "serverless.yaml"
        || name == "skaffold.yaml"
        || name == "cdk.json"
        || ext == "service" && has_dir(&["systemd"])
        || lower.starts_with(".github/workflows/")
        || lower.starts_with(".github/actions/")
        || lower.starts_with(".gitlab-ci/")
        || lower.starts_with(".circleci/")
        || lower.starts_with(".buildkite/")
        || lower.starts_with(".tekton/");
    if named {
        return true;
    }
    let infra_data_ext = matches!(
        ext,
        "yml" | "yaml" | "json" | "tf" | "conf" | "tpl" | "j2" | "sh" | "cfg" | ""
    );
    let declarative_dirs = has_dir(&[
        "k8s",
        "kubernetes",
        "helm",
        "charts",
        "terraform",
        "infra",
        "infrastructure",
        "deploy",
        "deployment",
        "deployments",
        "manifests",
        "ansible",
        "playbooks",
        "kustomize",
        "nginx",
        "cloudformation",
        "argocd",
        "flux",
        "sites-available",
        "sites-enabled",
        "conf.d",
        "haproxy",
        "caddy",
        "opentofu",
        "tofu",
    ]);
    // Ansible roles only where the role layout shows (`roles/web/tasks/main.yml`), so
    // an application's `roles/` package (authorization) is not taken for Ansible.
    let ansible_role = has_dir(&["roles"])
        && has_dir(&["tasks", "handlers", "defaults", "vars", "meta", "templates"]);
    // Infrastructure as real code (Pulumi, CDK) lives in its own directories.
    let iac_code =
        has_dir(&["pulumi", "cdk"]) && matches!(ext, "ts" | "py" | "go" | "cs" | "java" | "js");
    (declarative_dirs && infra_data_ext)
        || (ansible_role && matches!(ext, "yml" | "yaml" | "j2"))
        || iac_code
}

fn is_config(name: &str, dirs: &[&str], ext: &str) -> bool {
    // In compiled languages a `config` directory is a package of code
    // (`com/acme/config/SecurityConfig.java`), not configuration.
    let compiled = matches!(
        ext,
        "java" | "kt" | "scala" | "cs" | "go" | "rs" | "swift" | "cpp" | "c" | "h"
    );
    name == ".env"
        || name.starts_with(".env.")
        || name.ends_with(".env")
        || matches!(
            ext,
            "properties" | "ini" | "cfg" | "conf" | "toml" | "yml" | "yaml"
        ) && !name.starts_with('.')
        || (!compiled
            && dirs.iter().any(|d| {
                matches!(
                    *d,
                    "config"
                        | "configs"
                        | "conf"
                        | "settings"
                        | "feature-flags"
                        | "feature_flags"
                        | "flags"
                )
            }))
        || name.starts_with("settings.")
        || name.starts_with("appsettings")
        || name.starts_with("application.")
        || name.starts_with("application-")
        || name.contains("feature_flag")
        || name.contains("feature-flag")
        || name.contains("featureflag")
}

/// Splits a path into lowercase words: on every non-alphanumeric character and on
/// camelCase boundaries (`OAuth2Config` → `o`, `auth2`, `config`). Shared with the
/// rules analyzer, so path classes and path rules read a path the same way.
pub fn path_words(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|chunk| !chunk.is_empty())
        .flat_map(|chunk| {
            let bytes = chunk.as_bytes();
            let mut parts = Vec::new();
            let mut start = 0;
            for i in 1..bytes.len() {
                let (prev, cur) = (bytes[i - 1], bytes[i]);
                let next_lower = bytes.get(i + 1).is_some_and(|b| b.is_ascii_lowercase());
                let boundary = ((prev.is_ascii_lowercase() || prev.is_ascii_digit())
                    && cur.is_ascii_uppercase())
                    || (prev.is_ascii_uppercase() && cur.is_ascii_uppercase() && next_lower);
                if boundary {
                    parts.push(chunk[start..i].to_ascii_lowercase());
                    start = i;
                }
            }
            parts.push(chunk[start..].to_ascii_lowercase());
            parts
        })
}

/// Whether a path word names authentication, authorization, sessions or crypto
/// (`oauth2`, `session`, `rbac`, `authorize`…, but not `author`).
pub fn is_auth_word(word: &str) -> bool {
    const AUTH_WORDS: &[&str] = &[
        "authn",
        "authz",
        "oauth",
        "oauth2",
        "oidc",
        "openid",
        "saml",
        "saml2",
        "sso",
        "jwt",
        "jwts",
        "jwk",
        "jwks",
        "login",
        "logins",
        "logout",
        "signin",
        "signout",
        "signup",
        "session",
        "sessions",
        "password",
        "passwords",
        "passwd",
        "permission",
        "permissions",
        "rbac",
        "abac",
        "acl",
        "acls",
        "role",
        "roles",
        "crypto",
        "cryptography",
        "encryption",
        "encrypt",
        "decrypt",
        "cipher",
        "csrf",
        "xsrf",
        "cors",
        "security",
        "credential",
        "credentials",
        "mfa",
        "totp",
        "twofactor",
        "webauthn",
        "passkey",
        "passkeys",
        "keycloak",
        "cognito",
        "devise",
        "doorkeeper",
        "pundit",
        "cancancan",
        "omniauth",
        "passport",
        "policies",
        "authenticator",
        "impersonation",
        "apikey",
        "apikeys",
    ];
    if AUTH_WORDS.contains(&word) {
        return true;
    }
    // `auth`, `authentication`, `authorize`, `auth0`… but not `author`, `authors`.
    word.starts_with("auth")
        && (!word.starts_with("author")
            || word.starts_with("authoriz")
            || word.starts_with("authoris"))
}

/// Whether a path names authentication or authorization code: one of its words
/// is an auth word ([`is_auth_word`]), or it follows a framework's convention for
/// access checks — Pundit's `app/policies/post_policy.rb`, NestJS's
/// `roles.guard.ts`, a `guards/` directory. "Guard" alone is not enough: a
/// `sql_guard.py` or `null_guard.rs` guards something else.
pub fn is_auth_path(path: &str) -> bool {
    if path_words(path).any(|w| is_auth_word(&w)) {
        return true;
    }
    let lower = path.to_ascii_lowercase();
    lower.ends_with("_policy.rb")
        || lower.contains(".guard.")
        || lower.starts_with("guards/")
        || lower.contains("/guards/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_across_ecosystems() {
        let cases = [
            ("db/migrate/20240101_add_users.rb", FileClass::Migration),
            ("app/migrations/0002_auto.py", FileClass::Migration),
            ("alembic/versions/abc123_add.py", FileClass::Migration),
            (
                "src/main/resources/db/migration/V2__x.sql",
                FileClass::Migration,
            ),
            ("prisma/schema.prisma", FileClass::Migration),
            ("package-lock.json", FileClass::Lockfile),
            ("Cargo.lock", FileClass::Lockfile),
            ("go.sum", FileClass::Lockfile),
            ("package.json", FileClass::Manifest),
            ("services/api/go.mod", FileClass::Manifest),
            ("Dockerfile", FileClass::Infra),
            ("infra/main.tf", FileClass::Infra),
            (".github/workflows/ci.yml", FileClass::Infra),
            ("README.md", FileClass::Docs),
            ("docs/guide/intro.rst", FileClass::Docs),
            ("tests/test_api.py", FileClass::Test),
            ("src/app.test.ts", FileClass::Test),
            ("pkg/server/handler_test.go", FileClass::Test),
            ("src/auth/session.rs", FileClass::Auth),
            (".env.production", FileClass::Config),
            ("config/app.yml", FileClass::Config),
            ("src/lib.rs", FileClass::Code),
            ("vendor/github.com/x/y.go", FileClass::Generated),
        ];
        for (path, want) in cases {
            assert_eq!(classify_path(path), want, "{path}");
        }
    }

    #[test]
    fn auth_is_matched_on_whole_words_not_substrings() {
        let cases = [
            ("src/processor.rs", FileClass::Code),
            ("pkg/oracle/client.go", FileClass::Code),
            ("scripts/authors.py", FileClass::Code),
            ("src/tokenizer.rs", FileClass::Code),
            ("app/models/payroll.rb", FileClass::Code),
            (
                "src/main/java/com/acme/SecurityConfig.java",
                FileClass::Auth,
            ),
            (
                "src/main/java/com/acme/OAuth2LoginSuccessHandler.java",
                FileClass::Auth,
            ),
            ("app/controllers/sessions_controller.rb", FileClass::Auth),
            ("src/guards/roles.guard.ts", FileClass::Auth),
            ("src/auth/jwt-auth.guard.ts", FileClass::Auth),
            ("app/Http/Guards/TokenGuard.php", FileClass::Auth),
            ("src/lint/sql_guard.py", FileClass::Code),
            ("pkg/retry/null_guard.go", FileClass::Code),
            ("internal/authz/enforcer.go", FileClass::Auth),
            ("app/policies/post_policy.rb", FileClass::Auth),
            ("api/middleware/authentication.py", FileClass::Auth),
        ];
        for (path, want) in cases {
            assert_eq!(classify_path(path), want, "{path}");
        }
    }

    #[test]
    fn tests_fixtures_and_prose_win_over_migrations() {
        let cases = [
            ("tests/fixtures/schema.sql", FileClass::Test),
            (
                "spec/dummy/db/migrate/20240101_create_posts.rb",
                FileClass::Test,
            ),
            ("docs/migrations.md", FileClass::Docs),
            ("docs/db/schema.sql", FileClass::Docs),
            (
                "src/test/resources/db/migration/V1__init.sql",
                FileClass::Test,
            ),
            (
                "src/test/java/com/acme/UserServiceTest.java",
                FileClass::Test,
            ),
            ("src/main/java/com/acme/UserService.java", FileClass::Code),
            ("web/src/latest.js", FileClass::Code),
            ("changelogs/unreleased/fix-login.yml", FileClass::Docs),
            (
                "src/main/resources/db/changelog/db.changelog-master.xml",
                FileClass::Migration,
            ),
            ("db/data/20240101_backfill_names.rb", FileClass::Migration),
            ("lib/tasks/backfill_user_names.rake", FileClass::Migration),
            ("CMakeLists.txt", FileClass::Code),
            ("requirements-dev.txt", FileClass::Manifest),
            ("requirements/base.txt", FileClass::Manifest),
            ("charts/api/Chart.lock", FileClass::Lockfile),
            (
                "app/src/androidTest/java/com/acme/LoginTest.kt",
                FileClass::Test,
            ),
        ];
        for (path, want) in cases {
            assert_eq!(classify_path(path), want, "{path}");
        }
    }

    #[test]
    fn infrastructure_needs_infrastructure_shapes() {
        let cases = [
            (
                "src/infrastructure/repositories/user_repository.ts",
                FileClass::Code,
            ),
            ("internal/infra/db/postgres.go", FileClass::Code),
            ("deploy/k8s/api-deployment.yaml", FileClass::Infra),
            ("ansible/roles/web/tasks/main.yml", FileClass::Infra),
            ("charts/api/templates/deployment.yaml", FileClass::Infra),
            ("infra/pulumi/index.ts", FileClass::Infra),
            ("nginx/conf.d/default.conf", FileClass::Infra),
            ("docker-compose.prod.yml", FileClass::Infra),
            (".github/ISSUE_TEMPLATE/bug_report.yml", FileClass::Docs),
            ("config/locales/en.yml", FileClass::Docs),
            ("app/roles/admin.py", FileClass::Auth),
            (
                "src/main/java/com/acme/config/SecurityConfig.java",
                FileClass::Auth,
            ),
            ("internal/config/loader.go", FileClass::Code),
            ("config/initializers/sidekiq.rb", FileClass::Config),
        ];
        for (path, want) in cases {
            assert_eq!(classify_path(path), want, "{path}");
        }
    }
}
