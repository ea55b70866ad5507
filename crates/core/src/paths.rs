//! What a path says a file is. Used to pack the diff by risk priority (git crate) and
//! as the first signal of the rules analyzer.

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
    "cargo.lock",
    "go.sum",
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
];

const MANIFESTS: &[&str] = &[
    "package.json",
    "cargo.toml",
    "go.mod",
    "requirements.txt",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "pipfile",
    "gemfile",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "settings.gradle",
    "settings.gradle.kts",
    "composer.json",
    "packages.config",
    "directory.packages.props",
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

    if LOCKFILES.contains(&name) {
        return FileClass::Lockfile;
    }
    if in_dir(&["vendor", "node_modules", "third_party", "dist", "generated", "__generated__"])
        || name.ends_with(".min.js")
        || name.ends_with(".min.css")
        || name.ends_with(".pb.go")
        || name.ends_with("_pb2.py")
        || name.ends_with(".generated.cs")
        || name.ends_with(".snap")
        || ext == "map"
    {
        return FileClass::Generated;
    }
    if is_migration(&lower, name, dirs, ext) {
        return FileClass::Migration;
    }
    if is_test(name, dirs) {
        return FileClass::Test;
    }
    if MANIFESTS.contains(&name) || name.ends_with(".csproj") || name.ends_with(".fsproj") || name.ends_with(".gemspec")
        || (name.starts_with("requirements") && ext == "txt")
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
    if is_auth(&lower) {
        return FileClass::Auth;
    }
    FileClass::Code
}

fn is_migration(lower: &str, name: &str, dirs: &[&str], ext: &str) -> bool {
    ext == "sql"
        || dirs.iter().any(|d| {
            matches!(*d, "migrations" | "migration" | "migrate" | "db_migrations" | "alembic" | "flyway" | "liquibase" | "changelog" | "changelogs")
        })
        || lower.contains("db/migrate/")
        || lower.contains("priv/repo/migrations/")
        || lower.contains("alembic/versions/")
        || (name.contains("changelog") && matches!(ext, "xml" | "yaml" | "yml") && lower.contains("db"))
        || name == "schema.prisma"
        || name == "schema.rb"
        || name == "structure.sql"
}

fn is_test(name: &str, dirs: &[&str]) -> bool {
    dirs.iter().any(|d| matches!(*d, "test" | "tests" | "spec" | "specs" | "__tests__" | "testdata" | "fixtures" | "e2e" | "testing"))
        || name.starts_with("test_")
        || name.contains("_test.")
        || name.contains(".test.")
        || name.contains(".spec.")
        || name.contains("_spec.")
        || name.ends_with("test.java")
        || name.ends_with("tests.cs")
        || name.ends_with("test.kt")
}

fn is_docs(name: &str, dirs: &[&str], ext: &str) -> bool {
    matches!(ext, "md" | "mdx" | "rst" | "adoc" | "txt")
        || dirs.iter().any(|d| matches!(*d, "docs" | "doc" | "documentation"))
        || matches!(name, "license" | "licence" | "authors" | "contributors" | "changelog" | "codeowners" | "notice")
        || matches!(ext, "png" | "jpg" | "jpeg" | "gif" | "svg" | "webp" | "ico") && dirs.iter().any(|d| matches!(*d, "docs" | "doc" | "images" | "img" | "assets"))
}

fn is_infra(lower: &str, name: &str, dirs: &[&str], ext: &str) -> bool {
    name == "dockerfile"
        || name.starts_with("dockerfile.")
        || name.ends_with(".dockerfile")
        || name == "containerfile"
        || name.starts_with("docker-compose")
        || name.starts_with("compose.") && matches!(ext, "yml" | "yaml")
        || matches!(ext, "tf" | "tfvars" | "hcl")
        || name == "chart.yaml"
        || name == "values.yaml"
        || name == "kustomization.yaml"
        || name == "pulumi.yaml"
        || name.starts_with("pulumi.") && matches!(ext, "yaml" | "yml")
        || name == "procfile"
        || name == "jenkinsfile"
        || name == ".gitlab-ci.yml"
        || name == "azure-pipelines.yml"
        || name == "bitbucket-pipelines.yml"
        || name == ".travis.yml"
        || name == "nginx.conf"
        || name == "httpd.conf"
        || name == ".htaccess"
        || name == "caddyfile"
        || name == "haproxy.cfg"
        || name == "fly.toml"
        || name == "app.yaml"
        || name == "serverless.yml"
        || name == "skaffold.yaml"
        || lower.starts_with(".github/workflows/")
        || lower.starts_with(".circleci/")
        || lower.starts_with(".buildkite/")
        || dirs.iter().any(|d| {
            matches!(
                *d,
                "k8s" | "kubernetes" | "helm" | "charts" | "terraform" | "infra" | "infrastructure" | "deploy"
                    | "deployment" | "deployments" | "manifests" | "ansible" | "playbooks" | "roles" | "kustomize"
                    | "nginx" | "pulumi" | "cloudformation" | "argocd"
            )
        }) && matches!(ext, "yml" | "yaml" | "json" | "tf" | "conf" | "tpl" | "j2" | "ts" | "py" | "go" | "sh" | "")
}

fn is_config(name: &str, dirs: &[&str], ext: &str) -> bool {
    name == ".env"
        || name.starts_with(".env.")
        || name.ends_with(".env")
        || matches!(ext, "properties" | "ini" | "cfg" | "conf" | "toml" | "yml" | "yaml")
            && !name.starts_with('.')
        || dirs.iter().any(|d| matches!(*d, "config" | "configs" | "conf" | "settings" | "feature-flags" | "flags"))
        || name.starts_with("settings.")
        || name.starts_with("appsettings")
        || name.starts_with("application.")
        || name.contains("feature_flag")
        || name.contains("feature-flag")
        || name.contains("featureflag")
}

fn is_auth(lower: &str) -> bool {
    const AUTH_WORDS: &[&str] = &[
        "auth", "login", "logout", "session", "password", "passwd", "jwt", "oauth", "saml", "oidc", "sso",
        "permission", "rbac", "acl", "role", "policy", "policies", "crypto", "encrypt", "cipher", "token",
        "csrf", "cors", "security", "credential", "signin", "signup", "middleware/secure", "guard",
    ];
    AUTH_WORDS.iter().any(|w| lower.contains(w))
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
            ("src/main/resources/db/migration/V2__x.sql", FileClass::Migration),
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
}
