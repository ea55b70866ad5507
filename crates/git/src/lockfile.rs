//! Lockfile diffs summarized as dependency version changes.
//!
//! A lockfile diff is long and says little line by line; what a reviewer needs is
//! "which packages moved from which version to which". Each format is read from its
//! diff lines alone (context lines give the package a version line belongs to), with
//! plain string matching so a 50,000-line lockfile diff costs next to nothing.

use std::collections::{BTreeMap, BTreeSet};

use gate_core::{DepChange, LineKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `[[package]]` / `name = "x"` / `version = "1"`: Cargo.lock, poetry.lock, uv.lock, pdm.lock.
    Toml,
    /// package-lock.json v1–v3, npm-shrinkwrap.json, Pipfile.lock: `"key": {` then `"version": "1"`.
    NpmJson,
    /// composer.lock: `"name": "vendor/x"` then `"version": "v1"`.
    Composer,
    /// yarn.lock v1 and berry: `spec@range, spec@range:` then `  version "1"` / `  version: 1`.
    Yarn,
    /// pnpm-lock.yaml: package keys `/name@1.0.0:`, `name@1.0.0(peer):`, `/name/1.0.0:`.
    Pnpm,
    /// go.sum: `module version[/go.mod] hash`.
    GoSum,
    /// Gemfile.lock: `    name (1.2.3)` under `specs:`.
    Gemfile,
    /// gradle.lockfile: `group:artifact:1.2.3=configurations`.
    Gradle,
    /// pubspec.lock: `  name:` then `    version: "1.2.3"`.
    Pubspec,
    /// A lockfile whose format is not read: only its line counts are reported.
    Unknown,
}

impl Format {
    fn of(path: &str) -> Format {
        let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
        match name.as_str() {
            "cargo.lock" | "poetry.lock" | "uv.lock" | "pdm.lock" => Format::Toml,
            "package-lock.json" | "npm-shrinkwrap.json" | "pipfile.lock" => Format::NpmJson,
            "composer.lock" => Format::Composer,
            "yarn.lock" => Format::Yarn,
            "pnpm-lock.yaml" => Format::Pnpm,
            "go.sum" => Format::GoSum,
            "gemfile.lock" => Format::Gemfile,
            "gradle.lockfile" => Format::Gradle,
            "pubspec.lock" => Format::Pubspec,
            _ => Format::Unknown,
        }
    }
}

/// The package a version line belongs to, per side of the diff.
#[derive(Debug, Default)]
struct Sides {
    old: Option<String>,
    new: Option<String>,
}

/// Reads one lockfile's diff lines and collects the versions added and removed.
#[derive(Debug)]
pub(crate) struct LockfileReader {
    format: Format,
    current: Sides,
    /// package → (versions on removed lines, versions on added lines)
    versions: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
}

impl LockfileReader {
    /// A reader for the lockfile at `path` (the format comes from its file name).
    pub(crate) fn new(path: &str) -> LockfileReader {
        LockfileReader {
            format: Format::of(path),
            current: Sides::default(),
            versions: BTreeMap::new(),
        }
    }

    /// A new hunk starts: the package being read is no longer known.
    pub(crate) fn hunk(&mut self) {
        self.current = Sides::default();
    }

    /// Reads one diff line of the lockfile.
    pub(crate) fn line(&mut self, kind: LineKind, text: &str) {
        match self.read(text) {
            Some(Item::Name(name)) => match kind {
                LineKind::Added => self.current.new = Some(name),
                LineKind::Removed => self.current.old = Some(name),
                LineKind::Context => {
                    self.current.old = Some(name.clone());
                    self.current.new = Some(name);
                }
            },
            Some(Item::Reset) => self.current = Sides::default(),
            Some(Item::Version(version)) => {
                let name = match kind {
                    LineKind::Added => self.current.new.clone(),
                    LineKind::Removed => self.current.old.clone(),
                    LineKind::Context => None,
                };
                if let Some(name) = name {
                    self.record(kind, name, version);
                }
            }
            Some(Item::Both(name, version)) if kind != LineKind::Context => {
                self.record(kind, name, version)
            }
            Some(Item::Both(..)) | None => {}
        }
    }

    fn record(&mut self, kind: LineKind, name: String, version: String) {
        let entry = self.versions.entry(name).or_default();
        match kind {
            LineKind::Removed => entry.0.insert(version),
            _ => entry.1.insert(version),
        };
    }

    /// The version changes read, by package name; a version only on the removed side
    /// is a removal, only on the added side an addition.
    pub(crate) fn finish(self, file: &str) -> Vec<DepChange> {
        let mut changes = Vec::new();
        for (package, (old, new)) in self.versions {
            let gone: Vec<&String> = old.difference(&new).collect();
            let came: Vec<&String> = new.difference(&old).collect();
            let n_pairs = gone.len().max(came.len());
            for pair_idx in 0..n_pairs {
                changes.push(DepChange {
                    file: file.to_owned(),
                    package: package.clone(),
                    old: gone.get(pair_idx).map(|v| (*v).clone()),
                    new: came.get(pair_idx).map(|v| (*v).clone()),
                });
            }
        }
        changes
    }

    fn read(&self, text: &str) -> Option<Item> {
        match self.format {
            Format::Toml => read_toml(text),
            Format::NpmJson => read_npm_json(text),
            Format::Composer => read_composer(text),
            Format::Yarn => read_yarn(text),
            Format::Pnpm => read_pnpm(text),
            Format::GoSum => read_go_sum(text),
            Format::Gemfile => read_gemfile(text),
            Format::Gradle => read_gradle(text),
            Format::Pubspec => read_pubspec(text),
            Format::Unknown => None,
        }
    }
}

/// What a lockfile line says.
#[derive(Debug, PartialEq, Eq)]
enum Item {
    /// The package the next version lines belong to.
    Name(String),
    /// A version of the current package.
    Version(String),
    /// A package and its version on one line.
    Both(String, String),
    /// A new entry starts whose name is not known yet.
    Reset,
}

/// `key = "value"` → value, for a given key.
fn toml_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let rest = text
        .trim()
        .strip_prefix(key)?
        .trim_start()
        .strip_prefix('=')?
        .trim();
    rest.strip_prefix('"')?.strip_suffix('"')
}

fn read_toml(text: &str) -> Option<Item> {
    if text.trim() == "[[package]]" {
        return Some(Item::Reset);
    }
    if let Some(name) = toml_value(text, "name") {
        return Some(Item::Name(name.to_owned()));
    }
    toml_value(text, "version").map(|version| Item::Version(version.to_owned()))
}

/// `"key": "value"` → value, for a given key.
fn json_string<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let rest = text
        .trim()
        .strip_prefix('"')?
        .strip_prefix(key)?
        .strip_prefix("\":")?
        .trim();
    let rest = rest.strip_suffix(',').unwrap_or(rest);
    rest.strip_prefix('"')?.strip_suffix('"')
}

/// Keys of package-lock.json objects that are not packages.
const NPM_FIELDS: &[&str] = &[
    "packages",
    "dependencies",
    "devDependencies",
    "optionalDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "requires",
    "engines",
    "bin",
    "funding",
    "scripts",
    "os",
    "cpu",
    "default",
    "develop",
    "_meta",
    "hash",
    "sources",
    "requires_python",
];

fn read_npm_json(text: &str) -> Option<Item> {
    if let Some(version) = json_string(text, "version") {
        return Some(Item::Version(version.trim_start_matches("==").to_owned()));
    }
    let key = text
        .trim()
        .strip_suffix('{')?
        .trim_end()
        .strip_suffix(':')?
        .trim_end();
    let key = key.strip_prefix('"')?.strip_suffix('"')?;
    if key.is_empty() {
        return Some(Item::Reset);
    }
    if let Some(at) = key.rfind("node_modules/") {
        return Some(Item::Name(key[at + "node_modules/".len()..].to_owned()));
    }
    if NPM_FIELDS.contains(&key) {
        return None;
    }
    Some(Item::Name(key.to_owned()))
}

fn read_composer(text: &str) -> Option<Item> {
    if let Some(name) = json_string(text, "name") {
        return Some(Item::Name(name.to_owned()));
    }
    json_string(text, "version").map(|version| Item::Version(version.to_owned()))
}

/// `name@range` → name; scoped names (`@scope/x@1`) keep their leading `@`.
fn spec_name(spec: &str) -> Option<&str> {
    let spec = spec.trim().trim_matches('"');
    let at = spec.get(1..)?.find('@')? + 1;
    Some(&spec[..at])
}

fn read_yarn(text: &str) -> Option<Item> {
    if text.starts_with('#') || text.trim().is_empty() {
        return None;
    }
    if !text.starts_with(' ') {
        let header = text.strip_suffix(':')?;
        let first = header.split(", ").next()?;
        return spec_name(first).map(|name| Item::Name(name.to_owned()));
    }
    let rest = text.trim().strip_prefix("version")?;
    let version = rest
        .strip_prefix(':')
        .unwrap_or(rest)
        .trim()
        .trim_matches('"');
    (!version.is_empty()).then(|| Item::Version(version.to_owned()))
}

fn read_pnpm(text: &str) -> Option<Item> {
    if !text.starts_with("  ") {
        return None;
    }
    let key = text.trim().strip_suffix(':')?;
    let key = key.trim_matches(|c| c == '\'' || c == '"');
    let key = key.strip_prefix('/').unwrap_or(key);
    let key = key.split('(').next()?;
    if let Some(name) = spec_name(key) {
        let version = &key[name.len() + 1..];
        if version.starts_with(|c: char| c.is_ascii_digit()) {
            return Some(Item::Both(name.to_owned(), version.to_owned()));
        }
    }
    // pnpm v5: /name/1.2.3 or /@scope/name/1.2.3_peer@1.
    let (name, version) = key.rsplit_once('/')?;
    let version = version.split('_').next()?;
    (version.starts_with(|c: char| c.is_ascii_digit()) && !name.is_empty())
        .then(|| Item::Both(name.to_owned(), version.to_owned()))
}

fn read_go_sum(text: &str) -> Option<Item> {
    let mut parts = text.split_whitespace();
    let (module, version) = (parts.next()?, parts.next()?);
    let version = version.strip_suffix("/go.mod").unwrap_or(version);
    Some(Item::Both(module.to_owned(), version.to_owned()))
}

fn read_gemfile(text: &str) -> Option<Item> {
    let entry = text.strip_prefix("    ")?;
    if entry.starts_with(' ') {
        return None; // a gem's own dependency, with a constraint
    }
    let (name, rest) = entry.split_once(" (")?;
    let version = rest.strip_suffix(')')?;
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| Item::Both(name.to_owned(), version.to_owned()))
}

fn read_gradle(text: &str) -> Option<Item> {
    if text.starts_with('#') {
        return None;
    }
    let coordinates = text.split('=').next()?;
    let (name, version) = coordinates.rsplit_once(':')?;
    name.contains(':')
        .then(|| Item::Both(name.to_owned(), version.to_owned()))
}

fn read_pubspec(text: &str) -> Option<Item> {
    if let Some(entry) = text.strip_prefix("  ") {
        if !entry.starts_with(' ') {
            let name = entry.strip_suffix(':')?;
            return Some(Item::Name(name.trim_matches('"').to_owned()));
        }
    }
    let rest = text.trim().strip_prefix("version:")?;
    Some(Item::Version(rest.trim().trim_matches('"').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(path: &str, diff: &str) -> Vec<(String, Option<String>, Option<String>)> {
        let mut reader = LockfileReader::new(path);
        for line in diff.lines() {
            let (kind, text) = match line.split_at(1) {
                ("+", text) => (LineKind::Added, text),
                ("-", text) => (LineKind::Removed, text),
                (_, text) => (LineKind::Context, text),
            };
            reader.line(kind, text);
        }
        reader
            .finish(path)
            .into_iter()
            .map(|c| (c.package, c.old, c.new))
            .collect()
    }

    fn change(
        package: &str,
        old: Option<&str>,
        new: Option<&str>,
    ) -> (String, Option<String>, Option<String>) {
        (
            package.to_owned(),
            old.map(str::to_owned),
            new.map(str::to_owned),
        )
    }

    #[test]
    fn reads_cargo_lock_versions_with_the_name_from_context() {
        let diff = " [[package]]\n name = \"serde\"\n-version = \"1.0.195\"\n+version = \"1.0.196\"\n source = \"x\"\n+[[package]]\n+name = \"rand\"\n+version = \"0.8.5\"\n";
        assert_eq!(
            changes("Cargo.lock", diff),
            [
                change("rand", None, Some("0.8.5")),
                change("serde", Some("1.0.195"), Some("1.0.196"))
            ]
        );
    }

    #[test]
    fn reads_package_lock_v3_and_v1_entries() {
        let v3 = "     \"node_modules/@scope/left-pad\": {\n-      \"version\": \"1.0.0\",\n+      \"version\": \"1.1.0\",\n";
        assert_eq!(
            changes("package-lock.json", v3),
            [change("@scope/left-pad", Some("1.0.0"), Some("1.1.0"))]
        );
        let v1 = "     \"lodash\": {\n-      \"version\": \"4.17.20\",\n+      \"version\": \"4.17.21\",\n";
        assert_eq!(
            changes("package-lock.json", v1),
            [change("lodash", Some("4.17.20"), Some("4.17.21"))]
        );
    }

    #[test]
    fn reads_yarn_pnpm_go_gem_composer_and_gradle() {
        let yarn = "-\"@babel/core@^7.0.0\", \"@babel/core@^7.1.0\":\n-  version \"7.1.0\"\n+\"@babel/core@^7.0.0\", \"@babel/core@^7.1.0\":\n+  version \"7.2.0\"\n";
        assert_eq!(
            changes("yarn.lock", yarn),
            [change("@babel/core", Some("7.1.0"), Some("7.2.0"))]
        );
        let pnpm = "-  /lodash@4.17.20:\n+  /lodash@4.17.21:\n-  '@types/node@20.1.0(x@1)':\n+  '@types/node@20.2.0':\n";
        assert_eq!(
            changes("pnpm-lock.yaml", pnpm),
            [
                change("@types/node", Some("20.1.0"), Some("20.2.0")),
                change("lodash", Some("4.17.20"), Some("4.17.21"))
            ]
        );
        let go = "-github.com/x/y v1.2.3 h1:a=\n-github.com/x/y v1.2.3/go.mod h1:b=\n+github.com/x/y v1.3.0 h1:c=\n+github.com/x/y v1.3.0/go.mod h1:d=\n";
        assert_eq!(
            changes("go.sum", go),
            [change("github.com/x/y", Some("v1.2.3"), Some("v1.3.0"))]
        );
        let gem = "-    rails (7.0.4)\n+    rails (7.0.5)\n-      actionpack (= 7.0.4)\n";
        assert_eq!(
            changes("Gemfile.lock", gem),
            [change("rails", Some("7.0.4"), Some("7.0.5"))]
        );
        let composer = "             \"name\": \"monolog/monolog\",\n-            \"version\": \"2.9.1\",\n+            \"version\": \"3.0.0\",\n";
        assert_eq!(
            changes("composer.lock", composer),
            [change("monolog/monolog", Some("2.9.1"), Some("3.0.0"))]
        );
        let gradle = "-com.google:guava:31.0-jre=compileClasspath\n+com.google:guava:32.0-jre=compileClasspath\n";
        assert_eq!(
            changes("gradle.lockfile", gradle),
            [change(
                "com.google:guava",
                Some("31.0-jre"),
                Some("32.0-jre")
            )]
        );
        let poetry = " name = \"requests\"\n-version = \"2.31.0\"\n+version = \"2.32.0\"\n";
        assert_eq!(
            changes("poetry.lock", poetry),
            [change("requests", Some("2.31.0"), Some("2.32.0"))]
        );
    }

    #[test]
    fn unchanged_versions_are_not_changes() {
        let diff = "-github.com/x/y v1.2.3 h1:a=\n+github.com/x/y v1.2.3 h1:a=\n";
        assert!(changes("go.sum", diff).is_empty());
    }
}
