//! Dependencies: versions read from manifest diff lines as they stream, merged with the
//! lockfile summaries the git crate put in `context.dep_changes`, and turned into
//! findings.
//!
//! Scoring judgement (documented in the crate docs): any version change is Medium
//! (review); a major bump ranks higher inside Medium; a major bump of a framework, or
//! three or more direct major bumps, is High (hold); new dependencies are Medium;
//! removed ones Low; development-only updates Low (a dev major stays Medium); lockfile
//! only updates (transitive, or `cargo update`) Medium.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use gate_core::{classify_path, Category, DepChange, Evidence, FileClass, LineKind, Severity};
use regex::Regex;

use crate::facts::ManifestKind;
use crate::findings::{Finding, Findings, MAX_EVIDENCE};

/// Dependency lines kept per manifest file and side.
const MAX_LINES_PER_FILE: usize = 2_000;
/// Dependency events kept in all.
const MAX_EVENTS: usize = 20_000;

/// Frameworks whose major upgrade changes how the whole application behaves.
const FRAMEWORKS: &[&str] = &[
    "react",
    "react-dom",
    "next",
    "vue",
    "nuxt",
    "@angular/core",
    "svelte",
    "@sveltejs/kit",
    "express",
    "fastify",
    "@nestjs/core",
    "koa",
    "@hapi/hapi",
    "electron",
    "react-native",
    "django",
    "flask",
    "fastapi",
    "starlette",
    "sqlalchemy",
    "pydantic",
    "celery",
    "rails",
    "activerecord",
    "actionpack",
    "railties",
    "sinatra",
    "org.springframework.boot:spring-boot-starter-parent",
    "spring-boot",
    "spring-boot-starter-parent",
    "spring-boot-starter-web",
    "spring-core",
    "spring-framework",
    "hibernate-core",
    "tokio",
    "actix-web",
    "axum",
    "rocket",
    "hyper",
    "diesel",
    "sqlx",
    "sea-orm",
    "laravel/framework",
    "symfony/framework-bundle",
    "symfony/http-kernel",
    "github.com/gin-gonic/gin",
    "github.com/labstack/echo",
    "gorm.io/gorm",
    "github.com/gofiber/fiber",
    "microsoft.aspnetcore.app",
    "microsoft.entityframeworkcore",
    "phoenix",
    "ecto",
    "ecto_sql",
    "prisma",
    "@prisma/client",
    "sequelize",
    "typeorm",
    "mongoose",
    "knex",
    "dotnet",
    "go",
];

/// One dependency line of a manifest diff.
#[derive(Debug, Clone)]
struct DepLine {
    name: String,
    version: Option<String>,
    dev: bool,
    evidence: Evidence,
}

/// A dependency that changed, from a manifest line pair or a lockfile summary.
#[derive(Debug, Clone)]
pub(crate) struct DepEvent {
    pub file: String,
    pub package: String,
    pub old: Option<String>,
    pub new: Option<String>,
    pub dev: bool,
    /// Read from a manifest (a direct dependency) rather than a lockfile.
    pub direct: bool,
    /// A language runtime or target framework (`go 1.22`, `net8.0`), not a package.
    pub toolchain: bool,
    pub evidence: Evidence,
}

/// How a version moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Change {
    Added,
    Removed,
    Major,
    Minor,
    Patch,
    Downgrade,
    /// Versions that do not parse as numbers (git refs, paths, tags).
    Changed,
}

struct Patterns {
    json_dep: Regex,
    json_section: Regex,
    toml_section: Regex,
    toml_plain: Regex,
    toml_table: Regex,
    toml_version: Regex,
    toml_workspace: Regex,
    pep508_quoted: Regex,
    go_require: Regex,
    go_directive: Regex,
    pip_line: Regex,
    gem: Regex,
    gem_group: Regex,
    gemspec: Regex,
    maven_artifact: Regex,
    maven_version: Regex,
    maven_property: Regex,
    gradle_dep: Regex,
    gradle_plugin: Regex,
    gradle_var: Regex,
    nuget_include: Regex,
    nuget_version: Regex,
    nuget_packages_config: Regex,
    target_framework: Regex,
    mix_dep: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let re = |p: &str| Regex::new(p).expect("dependency pattern compiles");
        Patterns {
            json_dep: re(r#"^\s*"(@?[A-Za-z0-9][\w.@/+-]*)"\s*:\s*"([^"]*)"\s*,?\s*$"#),
            json_section: re(r#"^\s*"([\w-]+)"\s*:\s*\{"#),
            toml_section: re(r"^\s*\[+\s*([^\]]+?)\s*\]+\s*(#.*)?$"),
            toml_plain: re(r#"^\s*([A-Za-z0-9_][\w.-]*)\s*=\s*["']([^"']+)["']\s*(#.*)?$"#),
            toml_table: re(r#"^\s*([A-Za-z0-9_][\w.-]*)\s*=\s*\{(.*)\}"#),
            toml_version: re(r#"\bversion\s*=\s*["']([^"']+)["']"#),
            toml_workspace: re(r"\bworkspace\s*=\s*true"),
            pep508_quoted: re(r#"^\s*["']([A-Za-z0-9][\w.-]*)(\[[^\]]*\])?\s*((?:[<>=!~]=?|===)\s*[^"';]+)?(;[^"']*)?["']\s*,?\s*(#.*)?$"#),
            go_require: re(r"^\s*(?:require\s+)?([A-Za-z0-9][\w.~-]*\.[\w.~/-]+)\s+(v\d[\w.+-]*)(\s*//\s*indirect)?\s*$"),
            go_directive: re(r"^\s*(go|toolchain)\s+(go)?(\d+\.\d+(\.\d+)?)\s*$"),
            pip_line: re(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*((?:==|>=|<=|~=|!=|===|>|<)\s*[^\s;#,]+(?:\s*,\s*(?:==|>=|<=|~=|!=|>|<)\s*[^\s;#,]+)*)?\s*(;[^#]*)?(#.*)?$"),
            gem: re(r#"^\s*gem\s+['"]([\w.-]+)['"]\s*(?:,\s*['"]([^'"]+)['"])?(.*)$"#),
            gem_group: re(r"^\s*group\s+(.*)\s+do\s*$"),
            gemspec: re(r#"add_(runtime_|development_)?dependency\s*\(?\s*['"]([\w.-]+)['"]\s*(?:,\s*['"]([^'"]+)['"])?"#),
            maven_artifact: re(r"<artifactId>\s*([^<\s]+)\s*</artifactId>"),
            maven_version: re(r"^\s*<version>\s*([^<\s]+)\s*</version>"),
            maven_property: re(r"^\s*<([\w.-]+?)[.-]version>\s*([^<\s]+)\s*</"),
            gradle_dep: re(r#"\b(implementation|api|compile|compileOnly|runtimeOnly|testImplementation|testRuntimeOnly|testCompileOnly|androidTestImplementation|debugImplementation|kapt|ksp|annotationProcessor|classpath|developmentOnly)\s*\(?\s*(?:platform\(\s*)?['"]([\w.-]+):([\w.-]+):([^'"@:]+)['"]"#),
            gradle_plugin: re(r#"\bid\s*\(?\s*['"]([\w.-]+)['"]\s*\)?\s+version\s+['"]([^'"]+)['"]"#),
            gradle_var: re(r#"^\s*(?:val\s+|def\s+|ext\.)?([A-Za-z][\w]*[vV]ersion)\s*=\s*['"](\d[^'"]*)['"]"#),
            nuget_include: re(r#"<(?:PackageReference|PackageVersion|GlobalPackageReference)\s+(?:[^>]*\s)?(?:Include|Update)\s*=\s*"([^"]+)""#),
            nuget_version: re(r#"\bVersion\s*=\s*"([^"]+)"|<Version>\s*([^<]+)\s*</Version>"#),
            nuget_packages_config: re(r#"<package\s+id="([^"]+)"\s+version="([^"]+)""#),
            target_framework: re(r"<TargetFrameworks?>\s*([^<]+)\s*</TargetFrameworks?>"),
            mix_dep: re(r#"\{\s*:(\w+)\s*,\s*"([^"]+)""#),
        }
    })
}

/// Streaming state of one manifest file.
#[derive(Debug)]
pub(crate) struct ManifestScan {
    kind: ManifestKind,
    path: String,
    file_dev: bool,
    /// Current section (`dependencies`, `dev-dependencies`, `tool.poetry.group.dev.dependencies`…), lowercase.
    section: Option<String>,
    /// Inside a PEP 621 / setup.py requirement list, and whether it is a dev list.
    in_list: Option<bool>,
    gem_dev_group: bool,
    /// Maven: inside `<dependency>`, `<plugin>` or `<parent>`, and the artifact seen there.
    maven_block: bool,
    maven_artifact: Option<String>,
    nuget_include: Option<String>,
    removed: Vec<DepLine>,
    added: Vec<DepLine>,
}

impl ManifestScan {
    pub(crate) fn new(kind: ManifestKind, path: &str, file_dev: bool) -> Self {
        ManifestScan {
            kind,
            path: path.to_string(),
            file_dev,
            section: None,
            in_list: None,
            gem_dev_group: false,
            maven_block: false,
            maven_artifact: None,
            nuget_include: None,
            removed: Vec::new(),
            added: Vec::new(),
        }
    }

    /// Reads one diff line: context lines move the section state, added and removed
    /// lines may name a dependency.
    pub(crate) fn line(&mut self, kind: LineKind, line_no: u32, text: &str) {
        let p = patterns();
        let changed = kind != LineKind::Context;
        let found: Option<(String, Option<String>, bool)> = match self.kind {
            ManifestKind::JsonDeps => self.json_line(p, text),
            ManifestKind::Toml => self.toml_line(p, text),
            ManifestKind::GoMod => go_line(p, text),
            ManifestKind::PipRequirements => pip_line(p, text).map(|(n, v)| (n, v, false)),
            ManifestKind::PySetup => self.pysetup_line(p, text),
            ManifestKind::Gemfile => self.gem_line(p, text),
            ManifestKind::Gemspec => p.gemspec.captures(text).map(|c| {
                (
                    c[2].to_string(),
                    c.get(3).map(|m| m.as_str().to_string()),
                    c.get(1).is_some_and(|m| m.as_str() == "development_"),
                )
            }),
            ManifestKind::Maven => self.maven_line(p, text, changed),
            ManifestKind::Gradle => gradle_line(p, text),
            ManifestKind::NuGet => self.nuget_line(p, text),
            ManifestKind::Mix => p.mix_dep.captures(text).map(|c| {
                let dev = text.contains(":dev") || text.contains(":test");
                (c[1].to_string(), Some(c[2].to_string()), dev)
            }),
            ManifestKind::Other => None,
        };
        let Some((name, version, dev)) = found else {
            return;
        };
        if !changed {
            return;
        }
        let entry = DepLine {
            name,
            version,
            dev: dev || self.file_dev,
            evidence: Evidence::line(self.path.clone(), line_no, text),
        };
        let side = if kind == LineKind::Added {
            &mut self.added
        } else {
            &mut self.removed
        };
        if side.len() < MAX_LINES_PER_FILE {
            side.push(entry);
        }
    }

    fn json_line(&mut self, p: &Patterns, text: &str) -> Option<(String, Option<String>, bool)> {
        if let Some(c) = p.json_section.captures(text) {
            self.section = Some(c[1].to_ascii_lowercase());
            return None;
        }
        if text.trim_start().starts_with('}') {
            self.section = None;
            return None;
        }
        let c = p.json_dep.captures(text)?;
        let (name, value) = (c[1].to_string(), c[2].to_string());
        let in_deps = match self.section.as_deref() {
            Some(s) => matches!(
                s,
                "dependencies"
                    | "devdependencies"
                    | "peerdependencies"
                    | "optionaldependencies"
                    | "require"
                    | "require-dev"
                    | "resolutions"
                    | "overrides"
            ),
            None => !JSON_TOP_KEYS.contains(&name.as_str()) && looks_like_version(&value),
        };
        if !in_deps || !looks_like_version(&value) {
            return None;
        }
        let dev = matches!(
            self.section.as_deref(),
            Some("devdependencies" | "require-dev")
        );
        Some((name, Some(value), dev))
    }

    fn toml_line(&mut self, p: &Patterns, text: &str) -> Option<(String, Option<String>, bool)> {
        if let Some(c) = p.toml_section.captures(text) {
            self.section = Some(c[1].trim().trim_matches('"').to_ascii_lowercase());
            self.in_list = None;
            return None;
        }
        let section = self.section.clone().unwrap_or_default();
        let dev_section =
            section.contains("dev") || section.contains("test") || section.contains("lint");
        // PEP 621 lists: `dependencies = [` … `]`, `[project.optional-dependencies]` entries.
        let trimmed = text.trim();
        if let Some(dev) = self.in_list {
            if trimmed.starts_with(']') {
                self.in_list = None;
                return None;
            }
            return p.pep508_quoted.captures(text).map(|c| {
                (
                    c[1].to_string(),
                    c.get(3).map(|m| m.as_str().trim().to_string()),
                    dev,
                )
            });
        }
        if let Some((key, rest)) = trimmed.split_once('=') {
            let key = key.trim();
            if rest.trim_start().starts_with('[') && !rest.contains(']') {
                let list_of_deps = key == "dependencies"
                    || key == "requires"
                    || section.contains("optional-dependencies")
                    || section == "dependency-groups";
                if list_of_deps {
                    self.in_list = Some(dev_section || key != "dependencies" && key != "requires");
                }
                return None;
            }
        }
        let deps_section = section.contains("dependencies")
            || section == "packages"
            || section == "dev-packages"
            || section == "versions"
            || section == "libraries"
            || section == "plugins";
        let section_name_dep = section
            .strip_prefix("dependencies.")
            .or_else(|| section.strip_prefix("dev-dependencies."))
            .or_else(|| section.strip_prefix("workspace.dependencies."));
        if let Some(name) = section_name_dep {
            if let Some(c) = p.toml_version.captures(text) {
                return Some((
                    name.to_string(),
                    Some(c[1].to_string()),
                    section.starts_with("dev-"),
                ));
            }
            return None;
        }
        let dev = dev_section || section == "dev-packages";
        if let Some(c) = p.toml_table.captures(text) {
            let name = c[1].to_string();
            if !deps_section && TOML_NON_DEPS.contains(&name.as_str()) {
                return None;
            }
            if !deps_section && self.section.is_some() {
                return None;
            }
            let inner = &c[2];
            if let Some(v) = p.toml_version.captures(inner) {
                return Some((name, Some(v[1].to_string()), dev));
            }
            if p.toml_workspace.is_match(inner) {
                return Some((name, Some("workspace".to_string()), dev));
            }
            return deps_section.then_some((name, None, dev));
        }
        if let Some(c) = p.toml_plain.captures(text) {
            let (name, value) = (c[1].to_string(), c[2].to_string());
            if TOML_NON_DEPS.contains(&name.as_str()) || !(deps_section || self.section.is_none()) {
                return None;
            }
            // Gradle catalogs: `lib = "group:artifact:1.2"`.
            if let Some((ga, version)) = value.rsplit_once(':') {
                if ga.contains(':') {
                    return Some((ga.to_string(), Some(version.to_string()), dev));
                }
            }
            if !looks_like_version(&value) {
                return None;
            }
            return Some((name, Some(value), dev));
        }
        None
    }

    fn pysetup_line(&mut self, p: &Patterns, text: &str) -> Option<(String, Option<String>, bool)> {
        let trimmed = text.trim();
        if trimmed.contains("extras_require") || trimmed.contains("tests_require") {
            self.in_list = Some(true);
        } else if trimmed.contains("install_requires") {
            self.in_list = Some(false);
        }
        let dev = self.in_list.unwrap_or(false);
        if let Some(c) = p.pep508_quoted.captures(text) {
            // Only specifiers with an operator: a bare quoted word is anything.
            return c.get(3).map(|spec| {
                (
                    c[1].to_string(),
                    Some(spec.as_str().trim().to_string()),
                    dev,
                )
            });
        }
        // setup.cfg: indented `name>=1.0` under install_requires.
        if text.starts_with([' ', '\t']) {
            if let Some((name, Some(version))) = pip_line(p, text) {
                return Some((name, Some(version), dev));
            }
        }
        None
    }

    fn gem_line(&mut self, p: &Patterns, text: &str) -> Option<(String, Option<String>, bool)> {
        let trimmed = text.trim();
        if let Some(c) = p.gem_group.captures(trimmed) {
            self.gem_dev_group = !c[1].contains(":production")
                && (c[1].contains(":development") || c[1].contains(":test"));
            return None;
        }
        if trimmed == "end" {
            self.gem_dev_group = false;
            return None;
        }
        let c = p.gem.captures(text)?;
        let rest = c.get(3).map_or("", |m| m.as_str());
        let dev = self.gem_dev_group || rest.contains(":development") || rest.contains(":test");
        Some((
            c[1].to_string(),
            c.get(2).map(|m| m.as_str().to_string()),
            dev,
        ))
    }

    fn maven_line(
        &mut self,
        p: &Patterns,
        text: &str,
        changed: bool,
    ) -> Option<(String, Option<String>, bool)> {
        let trimmed = text.trim();
        if trimmed.starts_with("<dependency>")
            || trimmed.starts_with("<plugin>")
            || trimmed.starts_with("<parent>")
        {
            self.maven_block = true;
            self.maven_artifact = None;
        }
        if trimmed.starts_with("</dependency>")
            || trimmed.starts_with("</plugin>")
            || trimmed.starts_with("</parent>")
        {
            self.maven_block = false;
        }
        if let Some(c) = p.maven_artifact.captures(text) {
            self.maven_artifact = Some(c[1].to_string());
            if changed && self.maven_block && !text.contains("<version>") {
                // A changed artifact line: a dependency swapped for another.
                return Some((c[1].to_string(), None, false));
            }
        }
        if let Some(c) = p.maven_version.captures(text) {
            if self.maven_block {
                if let Some(artifact) = &self.maven_artifact {
                    return Some((artifact.clone(), Some(c[1].to_string()), false));
                }
            }
            return None;
        }
        if let Some(c) = p.maven_property.captures(text) {
            let name = c[1].to_string();
            if name != "project" && name != "maven.compiler" {
                return Some((name, Some(c[2].to_string()), false));
            }
        }
        None
    }

    fn nuget_line(&mut self, p: &Patterns, text: &str) -> Option<(String, Option<String>, bool)> {
        if let Some(c) = p.target_framework.captures(text) {
            return Some((
                "TargetFramework".to_string(),
                Some(c[1].trim().to_string()),
                false,
            ));
        }
        if let Some(c) = p.nuget_packages_config.captures(text) {
            return Some((c[1].to_string(), Some(c[2].to_string()), false));
        }
        if let Some(c) = p.nuget_include.captures(text) {
            let name = c[1].to_string();
            self.nuget_include = Some(name.clone());
            let version = p
                .nuget_version
                .captures(text)
                .and_then(|v| v.get(1).or(v.get(2)))
                .map(|m| m.as_str().to_string());
            return Some((name, version, false));
        }
        if let Some(v) = p.nuget_version.captures(text) {
            if let (Some(name), Some(version)) = (&self.nuget_include, v.get(2)) {
                return Some((
                    name.clone(),
                    Some(version.as_str().trim().to_string()),
                    false,
                ));
            }
        }
        if text.contains("</PackageReference>") {
            self.nuget_include = None;
        }
        None
    }

    /// Pairs removed and added lines of the file into version changes.
    pub(crate) fn finish(self, events: &mut Vec<DepEvent>) {
        let mut removed: BTreeMap<String, DepLine> = BTreeMap::new();
        for line in self.removed {
            removed.entry(package_key(&line.name)).or_insert(line);
        }
        let mut seen = std::collections::BTreeSet::new();
        for line in self.added {
            let key = package_key(&line.name);
            if !seen.insert(key.clone()) {
                continue;
            }
            let old = removed.remove(&key);
            if let Some(old) = &old {
                if old.version == line.version {
                    continue; // moved or reformatted
                }
            }
            push_event(
                events,
                DepEvent {
                    file: self.path.clone(),
                    package: line.name.clone(),
                    old: old.map(|o| o.version.unwrap_or_else(|| "?".to_string())),
                    new: Some(line.version.clone().unwrap_or_else(|| "?".to_string())),
                    dev: line.dev,
                    direct: true,
                    toolchain: is_toolchain(&line.name),
                    evidence: line.evidence,
                },
            );
        }
        for (_, line) in removed {
            push_event(
                events,
                DepEvent {
                    file: self.path.clone(),
                    package: line.name.clone(),
                    old: Some(line.version.unwrap_or_else(|| "?".to_string())),
                    new: None,
                    dev: line.dev,
                    direct: true,
                    toolchain: is_toolchain(&line.name),
                    evidence: line.evidence,
                },
            );
        }
    }
}

fn push_event(events: &mut Vec<DepEvent>, event: DepEvent) {
    if events.len() < MAX_EVENTS {
        events.push(event);
    }
}

const JSON_TOP_KEYS: &[&str] = &[
    "name",
    "version",
    "description",
    "main",
    "module",
    "types",
    "typings",
    "license",
    "author",
    "homepage",
    "private",
    "type",
    "packageManager",
    "browser",
    "node",
    "npm",
    "yarn",
    "pnpm",
    "php",
    "minimum-stability",
    "engines",
];

const TOML_NON_DEPS: &[&str] = &[
    "version",
    "name",
    "edition",
    "rust-version",
    "license",
    "description",
    "authors",
    "readme",
    "homepage",
    "repository",
    "documentation",
    "resolver",
    "publish",
    "build",
    "links",
    "default-run",
    "opt-level",
    "lto",
    "codegen-units",
    "debug",
    "panic",
    "strip",
    "incremental",
    "python",
    "requires-python",
    "python_version",
    "keywords",
    "categories",
    "exclude",
    "include",
    "members",
    "package-mode",
    "url",
    "verify_ssl",
    "channel",
];

fn go_line(p: &Patterns, text: &str) -> Option<(String, Option<String>, bool)> {
    if let Some(c) = p.go_directive.captures(text) {
        return Some((c[1].to_string(), Some(c[3].to_string()), false));
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with("module ") || trimmed.starts_with("replace ") || trimmed.contains("=>") {
        return None;
    }
    let c = p.go_require.captures(text)?;
    // Indirect requirements behave like lockfile entries: treated as development-ish.
    Some((c[1].to_string(), Some(c[2].to_string()), c.get(3).is_some()))
}

fn pip_line(p: &Patterns, text: &str) -> Option<(String, Option<String>)> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with(['#', '-']) || trimmed.contains("://") {
        return None;
    }
    let c = p.pip_line.captures(trimmed)?;
    Some((
        c[1].to_string(),
        c.get(3).map(|m| m.as_str().replace(' ', "")),
    ))
}

fn gradle_line(p: &Patterns, text: &str) -> Option<(String, Option<String>, bool)> {
    if let Some(c) = p.gradle_dep.captures(text) {
        let dev = c[1].starts_with("test")
            || c[1].starts_with("androidTest")
            || c[1].starts_with("debug");
        return Some((format!("{}:{}", &c[2], &c[3]), Some(c[4].to_string()), dev));
    }
    if let Some(c) = p.gradle_plugin.captures(text) {
        return Some((c[1].to_string(), Some(c[2].to_string()), false));
    }
    if let Some(c) = p.gradle_var.captures(text) {
        return Some((
            c[1].trim_end_matches("Version")
                .trim_end_matches("version")
                .to_string(),
            Some(c[2].to_string()),
            false,
        ));
    }
    None
}

fn looks_like_version(value: &str) -> bool {
    let v = value.trim();
    let first = v.chars().next();
    first.is_some_and(|c| c.is_ascii_digit() || "^~<>=*vx".contains(c))
        || v.starts_with("workspace:")
        || v.starts_with("npm:")
        || v.starts_with("file:")
        || v.starts_with("link:")
        || v.starts_with("git")
        || v.starts_with("http")
        || v.starts_with("catalog:")
        || matches!(v, "latest" | "next" | "beta" | "canary")
        || v.starts_with("dev-")
}

fn is_toolchain(name: &str) -> bool {
    matches!(name, "go" | "toolchain" | "TargetFramework")
}

/// The name under which two mentions of a package are the same package.
fn package_key(name: &str) -> String {
    let mut key = name.to_ascii_lowercase().replace(['_', '.'], "-");
    // Go major versions live in the module path: `…/v4` and `…/v5` are one package.
    if let Some((head, tail)) = key.rsplit_once("/v") {
        if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
            key = head.to_string();
        }
    }
    key
}

/// Leading numbers of a version or range (`^1.2.3` → [1, 2, 3], `>=2,<3` → [2]).
fn parse_version(version: &str) -> Option<Vec<u64>> {
    let v = version.trim();
    let v = v.rsplit_once('@').map_or(v, |(_, after)| after);
    let v = v.strip_prefix("workspace:").unwrap_or(v);
    let start = v.find(|c: char| c.is_ascii_digit())?;
    let prefix = &v[..start];
    if !prefix.chars().all(|c| "^~<>=! vV".contains(c)) {
        return None;
    }
    let nums: Vec<u64> = v[start..]
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?
        .split('.')
        .take(3)
        .map_while(|part| part.parse().ok())
        .collect();
    (!nums.is_empty()).then_some(nums)
}

/// How a version moved from `old` to `new`.
pub(crate) fn classify_change(old: Option<&str>, new: Option<&str>) -> Change {
    let (old, new) = match (old, new) {
        (None, Some(_)) => return Change::Added,
        (Some(_), None) => return Change::Removed,
        (Some(o), Some(n)) => (o, n),
        (None, None) => return Change::Changed,
    };
    let (Some(o), Some(n)) = (parse_version(old), parse_version(new)) else {
        return Change::Changed;
    };
    let at = |v: &Vec<u64>, i: usize| v.get(i).copied().unwrap_or(0);
    // Semver: below 1.0 the minor is the breaking component.
    let breaking = if at(&o, 0) == 0 && at(&n, 0) == 0 {
        1
    } else {
        0
    };
    for idx in 0..3 {
        let (a, b) = (at(&o, idx), at(&n, idx));
        if a != b {
            return if b < a {
                Change::Downgrade
            } else if idx <= breaking {
                Change::Major
            } else if idx == breaking + 1 {
                Change::Minor
            } else {
                Change::Patch
            };
        }
    }
    Change::Patch
}

/// Turns the dependency changes of the whole change into findings.
pub(crate) fn dep_findings(
    manifest_events: Vec<DepEvent>,
    dep_changes: &[DepChange],
    findings: &mut Findings,
) {
    let mut by_key: BTreeMap<String, DepEvent> = BTreeMap::new();
    for event in manifest_events {
        by_key.entry(package_key(&event.package)).or_insert(event);
    }
    for change in dep_changes {
        let direct = classify_path(&change.file) == FileClass::Manifest;
        let key = package_key(&change.package);
        if let Some(existing) = by_key.get_mut(&key) {
            // The manifest named the package; the lockfile knows the exact versions.
            if classify_change(existing.old.as_deref(), existing.new.as_deref()) == Change::Changed
            {
                existing.old = change.old.clone().or(existing.old.take());
                existing.new = change.new.clone().or(existing.new.take());
            }
            continue;
        }
        if by_key.len() >= MAX_EVENTS {
            break;
        }
        let excerpt = format!(
            "{} {} → {}",
            change.package,
            change.old.as_deref().unwrap_or("(new)"),
            change.new.as_deref().unwrap_or("(removed)")
        );
        by_key.insert(
            key,
            DepEvent {
                file: change.file.clone(),
                package: change.package.clone(),
                old: change.old.clone(),
                new: change.new.clone(),
                dev: false,
                direct,
                toolchain: false,
                evidence: Evidence {
                    file: change.file.clone(),
                    line: None,
                    excerpt: Some(excerpt),
                },
            },
        );
    }

    #[derive(Default)]
    struct Bucket {
        items: Vec<(DepEvent, Change)>,
        frameworks: usize,
    }
    let mut buckets: BTreeMap<&'static str, Bucket> = BTreeMap::new();
    for (key, event) in by_key {
        let change = classify_change(event.old.as_deref(), event.new.as_deref());
        let framework = FRAMEWORKS.contains(&key.as_str())
            || FRAMEWORKS.iter().any(|f| key.ends_with(&format!(":{f}")))
            || key.starts_with("microsoft-aspnetcore")
            || key.starts_with("microsoft-entityframeworkcore")
            || key.starts_with("spring-boot-starter")
            || key.starts_with("org-springframework-boot");
        let bucket = if event.toolchain {
            "deps.toolchain"
        } else if !event.direct {
            "deps.lockfile"
        } else if event.dev {
            if change == Change::Major {
                "deps.dev-major"
            } else {
                "deps.dev"
            }
        } else {
            match change {
                Change::Major => "deps.major",
                Change::Added => "deps.added",
                Change::Removed => "deps.removed",
                Change::Downgrade => "deps.downgrade",
                Change::Minor | Change::Patch | Change::Changed => "deps.update",
            }
        };
        let entry = buckets.entry(bucket).or_default();
        if framework && change == Change::Major {
            entry.frameworks += 1;
        }
        entry.items.push((event, change));
    }

    for (key, bucket) in buckets {
        let n = bucket.items.len();
        let small_n = n.min(50) as u8;
        let majors = bucket
            .items
            .iter()
            .filter(|(_, c)| *c == Change::Major)
            .count();
        let (severity, bonus, title): (Severity, u8, &'static str) = match key {
            "deps.major" if bucket.frameworks > 0 => (
                Severity::High,
                (4 + 2 * small_n.saturating_sub(1)).min(14),
                "Major upgrade of a framework",
            ),
            "deps.major" if n >= 3 => (
                Severity::High,
                (2 * small_n.saturating_sub(2)).min(12),
                "Several major dependency upgrades",
            ),
            "deps.major" => (
                Severity::Medium,
                (8 + 4 * small_n.saturating_sub(1)).min(18),
                "Major dependency upgrade",
            ),
            "deps.added" => (Severity::Medium, 4, "New dependency"),
            "deps.removed" => (Severity::Low, 6, "Dependency removed"),
            "deps.downgrade" => (Severity::Medium, 4, "Dependency downgraded"),
            "deps.update" => (Severity::Medium, (small_n / 5).min(4), "Dependency updated"),
            "deps.dev-major" => (
                Severity::Medium,
                2,
                "Major upgrade of a development dependency",
            ),
            "deps.dev" => (Severity::Low, 8, "Development dependency updated"),
            "deps.lockfile" => (
                Severity::Medium,
                (2 * majors.min(5) as u8).min(10),
                "Locked dependency versions changed",
            ),
            _ => (
                Severity::Medium,
                6,
                "Language runtime or target framework changed",
            ),
        };
        let mut listed: Vec<String> = bucket
            .items
            .iter()
            .take(6)
            .map(|(e, _)| match (&e.old, &e.new) {
                (Some(o), Some(n)) => format!("{} {o} → {n}", e.package),
                (None, Some(n)) => format!("{} {n}", e.package),
                (Some(o), None) => format!("{} (was {o})", e.package),
                (None, None) => e.package.clone(),
            })
            .collect();
        if n > 6 {
            listed.push(format!("and {} more", n - 6));
        }
        let mut files: Vec<&str> = bucket.items.iter().map(|(e, _)| e.file.as_str()).collect();
        files.sort_unstable();
        files.dedup();
        let detail = format!(
            "{title}: {} ({}{}).",
            listed.join(", "),
            files.iter().take(3).copied().collect::<Vec<_>>().join(", "),
            if files.len() > 3 { ", …" } else { "" }
        );
        let evidence = bucket
            .items
            .iter()
            .take(MAX_EVIDENCE)
            .map(|(e, _)| e.evidence.clone())
            .collect();
        findings.insert(
            key_static(key),
            Finding {
                category: Category::Deps,
                severity,
                bonus,
                title,
                file: String::new(),
                labels: Vec::new(),
                evidence,
                count: n as u64,
                detail: Some(detail),
            },
        );
    }
}

fn key_static(key: &str) -> &'static str {
    match key {
        "deps.major" => "deps.major",
        "deps.added" => "deps.added",
        "deps.removed" => "deps.removed",
        "deps.downgrade" => "deps.downgrade",
        "deps.update" => "deps.update",
        "deps.dev-major" => "deps.dev-major",
        "deps.dev" => "deps.dev",
        "deps.lockfile" => "deps.lockfile",
        _ => "deps.toolchain",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_semver_including_zero_major() {
        assert_eq!(
            classify_change(Some("^17.0.2"), Some("^18.2.0")),
            Change::Major
        );
        assert_eq!(classify_change(Some("1.2.3"), Some("1.3.0")), Change::Minor);
        assert_eq!(classify_change(Some("1.2.3"), Some("1.2.4")), Change::Patch);
        assert_eq!(classify_change(Some("0.11"), Some("0.12")), Change::Major);
        assert_eq!(
            classify_change(Some("0.11.1"), Some("0.11.2")),
            Change::Minor
        );
        assert_eq!(
            classify_change(Some("==4.2.11"), Some("==5.0.1")),
            Change::Major
        );
        assert_eq!(
            classify_change(Some("v1.9.1"), Some("v1.10.0")),
            Change::Minor
        );
        assert_eq!(classify_change(Some("2.0"), Some("1.9")), Change::Downgrade);
        assert_eq!(classify_change(Some("main"), Some("v2")), Change::Changed);
        assert_eq!(classify_change(None, Some("1.0")), Change::Added);
        assert_eq!(
            classify_change(Some("~> 7.0"), Some("~> 7.1")),
            Change::Minor
        );
        assert_eq!(
            classify_change(Some("[1.0,2.0)"), Some("[2.0,3.0)")),
            Change::Changed
        );
    }

    #[test]
    fn go_major_versions_pair_by_module_path() {
        assert_eq!(
            package_key("github.com/jackc/pgx/v4"),
            package_key("github.com/jackc/pgx/v5")
        );
        assert_eq!(package_key("Django_Filter"), package_key("django-filter"));
    }
}
