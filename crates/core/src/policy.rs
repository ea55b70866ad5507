//! Policy as code: the operator's own rules over the consensus (`config/policy.toml`).
//!
//! Why a separate step after [`decide`](crate::decide): the consensus says what the
//! analyzers think of a change; the policy says what this organisation does about
//! it — `docs/**` may auto-deploy, `**/migrations/**` always waits for a human, a
//! legacy repository has its own thresholds, a `secrets` risk always holds. Keeping
//! the two apart keeps each testable and keeps the rules floor out of the policy's
//! reach.
//!
//! Precedence, strongest first:
//! 1. a failed analysis (fewer model verdicts than the quorum) is never capped;
//! 2. the rules analyzer's certain findings are a floor no cap goes below: a high
//!    finding holds, a critical one blocks (a secret in a doc still blocks);
//! 3. floors: `always_hold` categories, a repository's `min_recommendation`, path
//!    rules' `min_recommendation` (when ANY changed file matches);
//! 4. caps: path rules' `max_recommendation` (only when ALL changed files match),
//!    which lower what the models said but never below 1–3.
//!
//! The policy never changes the score; it changes the recommendation and says why
//! in one consensus note per rule that changed something.
//!
//! `POLICY_VERSION` is [`Policy::version`]: a hash of the normalized policy (comments,
//! key order and defaults spelled out or not give the same version). It goes into
//! the worker's verdict cache key, so a changed policy never serves a verdict given
//! under the old one.

mod parse;
mod trivial;

use std::collections::BTreeMap;

use globset::GlobMatcher;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{
    Bands, Category, ChangedFile, ConsensusPolicy, Decision, DecisionInputs, DeployContext,
    ModelOutcome, Recommendation, Severity, Verdict,
};

pub use trivial::SkipReason;

/// Prefix of the hashed normalized policy: bump it when the normalized form changes
/// meaning, so old versions never collide with new ones.
const POLICY_FORMAT: &str = "deploy-gate policy v1";

/// A validated policy: band thresholds, per-repository and per-path rules with
/// compiled globs, categories that always hold, notify thresholds per channel, and
/// what a failed analysis yields. Built by [`Policy::parse`]; the default is the
/// empty policy (no rule; trivial changes skip the models).
#[derive(Debug, Clone)]
pub struct Policy {
    origin: String,
    spec: PolicySpec,
    repos: Vec<RepoRule>,
    paths: Vec<PathRule>,
    version: String,
}

impl Default for Policy {
    fn default() -> Self {
        let spec = PolicySpec {
            bands: None,
            on_analysis_error: None,
            always_hold: Vec::new(),
            skip_models_when_trivial: true,
            notify: BTreeMap::new(),
            repo: Vec::new(),
            path: Vec::new(),
        };
        Policy::from_parts("the empty policy", spec, Vec::new(), Vec::new())
    }
}

/// A policy file that cannot be used. Each message starts with
/// `file:line:column:` and names the key; the remedy is always to fix the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not TOML, an unknown key (a typo), or a value of the wrong type.
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        /// The file (or "the built-in config/policy.toml").
        origin: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The dotted key (`path[1].glob`), when known.
        key: Option<String>,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A well-typed value that breaks a rule: a bad glob, bands out of order or out
    /// of range, a rule that does nothing, a failed analysis that would deploy.
    #[error("{origin}:{line}:{column}: {message}")]
    Rule {
        /// The file.
        origin: String,
        /// 1-based line of the offending value.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The dotted key.
        key: Option<String>,
        /// What is wrong, naming the key.
        message: String,
    },
}

impl PolicyError {
    fn syntax(origin: &str, text: &str, span: std::ops::Range<usize>, message: String) -> Self {
        let (line, column) = parse::line_col(text, span.start);
        let key = parse::key_at(text, span.start);
        PolicyError::Syntax {
            origin: origin.to_string(),
            line,
            column,
            message: with_key(key.as_deref(), message),
            key,
        }
    }

    fn rule(
        origin: &str,
        text: &str,
        span: std::ops::Range<usize>,
        key: &str,
        message: String,
    ) -> Self {
        let (line, column) = parse::line_col(text, span.start);
        PolicyError::Rule {
            origin: origin.to_string(),
            line,
            column,
            message: with_key(Some(key), message),
            key: Some(key.to_string()),
        }
    }

    /// The dotted key the error is about, when known.
    pub fn key(&self) -> Option<&str> {
        match self {
            PolicyError::Syntax { key, .. } | PolicyError::Rule { key, .. } => key.as_deref(),
        }
    }

    /// The 1-based line of the offending text.
    pub fn line(&self) -> usize {
        match self {
            PolicyError::Syntax { line, .. } | PolicyError::Rule { line, .. } => *line,
        }
    }
}

/// Prefixes `message` with the key unless the message already names it (serde's
/// "unknown field `alwys_hold`" does).
fn with_key(key: Option<&str>, message: String) -> String {
    match key {
        Some(key) => {
            let last = key.rsplit('.').next().unwrap_or(key);
            let last = last.split('[').next().unwrap_or(last);
            if message.contains(&format!("`{last}`")) {
                message
            } else {
                format!("`{key}`: {message}")
            }
        }
        None => message,
    }
}

/// The normalized policy: what the version hashes and what `explain` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct PolicySpec {
    bands: Option<Bands>,
    on_analysis_error: Option<Recommendation>,
    always_hold: Vec<Category>,
    skip_models_when_trivial: bool,
    notify: BTreeMap<String, Recommendation>,
    repo: Vec<RepoSpec>,
    path: Vec<PathSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct RepoSpec {
    name: String,
    bands: Option<Bands>,
    on_analysis_error: Option<Recommendation>,
    always_hold: Option<Vec<Category>>,
    skip_models_when_trivial: Option<bool>,
    min_recommendation: Option<Recommendation>,
    path: Vec<PathSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct PathSpec {
    glob: String,
    min_recommendation: Option<Recommendation>,
    max_recommendation: Option<Recommendation>,
    skip_models: Option<bool>,
    reason: Option<String>,
}

/// A `[[repo]]` entry with its compiled name glob.
#[derive(Debug, Clone)]
struct RepoRule {
    /// `repo[0]`.
    key: String,
    line: usize,
    spec: RepoSpec,
    matcher: GlobMatcher,
    paths: Vec<PathRule>,
}

/// A `[[path]]` (or `[[repo.path]]`) entry with its compiled glob.
#[derive(Debug, Clone)]
struct PathRule {
    /// `path[1]` or `repo[0].path[0]`.
    key: String,
    line: usize,
    spec: PathSpec,
    matcher: GlobMatcher,
}

impl PathRule {
    /// Whether the rule covers `file`: its path, and for a rename or copy its old
    /// path too (`any`: either; otherwise: both).
    fn covers(&self, file: &ChangedFile, any: bool) -> bool {
        let new = self.matcher.is_match(&file.path);
        match &file.old_path {
            Some(old) if any => new || self.matcher.is_match(old),
            Some(old) => new && self.matcher.is_match(old),
            None => new,
        }
    }

    fn label(&self) -> String {
        format!("{} `{}`", self.key, self.spec.glob)
    }

    fn why(&self) -> String {
        self.spec
            .reason
            .as_ref()
            .map(|r| format!(" — {r}"))
            .unwrap_or_default()
    }
}

/// What applies to one repository: the matching `[[repo]]` entries merged in file
/// order over the top-level values, and the path rules (top-level, then the
/// repositories').
struct Effective<'p> {
    repos: Vec<&'p RepoRule>,
    bands: Option<(Bands, String)>,
    on_analysis_error: Option<(Recommendation, String)>,
    always_hold: (&'p [Category], String),
    skip_trivial: (bool, String),
    paths: Vec<&'p PathRule>,
}

impl Policy {
    /// Parses and validates a policy file. `origin` names it in errors and in
    /// `explain` (a path, or "the built-in config/policy.toml").
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        parse::parse(text, origin)
    }

    fn from_parts(
        origin: &str,
        spec: PolicySpec,
        repos: Vec<RepoRule>,
        paths: Vec<PathRule>,
    ) -> Policy {
        let normalized = serde_json::to_string(&spec).unwrap_or_default();
        let mut hasher = Sha256::new();
        hasher.update(POLICY_FORMAT.as_bytes());
        hasher.update(b"\n");
        hasher.update(normalized.as_bytes());
        let version: String = hasher
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        Policy {
            origin: origin.to_string(),
            spec,
            repos,
            paths,
            version,
        }
    }

    /// `POLICY_VERSION`: 16 hex digits of a SHA-256 of the normalized policy. Equal
    /// policies (whatever their comments, key order or spelled-out defaults) have
    /// equal versions; any change of meaning changes it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Where the policy was read from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The policy's own `[bands]`, which replace the main configuration's.
    pub fn bands(&self) -> Option<Bands> {
        self.spec.bands
    }

    /// The policy's top-level `on_analysis_error`, which replaces the main
    /// configuration's `consensus.on_analysis_error`.
    pub fn on_analysis_error(&self) -> Option<Recommendation> {
        self.spec.on_analysis_error
    }

    /// Notify thresholds per channel (channel → least strict recommendation told).
    /// Empty: the worker's `[worker.notify]` settings decide.
    pub fn notify(&self) -> &BTreeMap<String, Recommendation> {
        &self.spec.notify
    }

    /// How many `[[repo]]` entries the policy holds.
    pub fn n_repo_rules(&self) -> usize {
        self.repos.len()
    }

    /// How many path rules the policy holds, top-level and per repository.
    pub fn n_path_rules(&self) -> usize {
        self.paths.len() + self.repos.iter().map(|r| r.paths.len()).sum::<usize>()
    }

    /// The channels to notify of a decision with this recommendation, when the
    /// policy has notify thresholds (`None`: it has none, the worker's settings
    /// decide).
    pub fn notify_channels(&self, recommendation: Recommendation) -> Option<Vec<String>> {
        if self.spec.notify.is_empty() {
            return None;
        }
        Some(
            self.spec
                .notify
                .iter()
                .filter(|(_, min)| recommendation >= **min)
                .map(|(channel, _)| channel.clone())
                .collect(),
        )
    }

    fn effective(&self, repo: &str) -> Effective<'_> {
        let mut effective = Effective {
            repos: Vec::new(),
            bands: self
                .spec
                .bands
                .map(|b| (b, "the policy's [bands]".to_string())),
            on_analysis_error: self
                .spec
                .on_analysis_error
                .map(|r| (r, "the policy's on_analysis_error".to_string())),
            always_hold: (&self.spec.always_hold, "always_hold".to_string()),
            skip_trivial: (
                self.spec.skip_models_when_trivial,
                "skip_models_when_trivial".to_string(),
            ),
            paths: self.paths.iter().collect(),
        };
        for rule in self.repos.iter().filter(|r| r.matcher.is_match(repo)) {
            let source = format!("{} `{}`", rule.key, rule.spec.name);
            if let Some(bands) = rule.spec.bands {
                effective.bands = Some((bands, source.clone()));
            }
            if let Some(on_error) = rule.spec.on_analysis_error {
                effective.on_analysis_error = Some((on_error, source.clone()));
            }
            if let Some(always_hold) = &rule.spec.always_hold {
                effective.always_hold = (always_hold, format!("{source} always_hold"));
            }
            if let Some(skip) = rule.spec.skip_models_when_trivial {
                effective.skip_trivial = (skip, format!("{source} skip_models_when_trivial"));
            }
            effective.paths.extend(rule.paths.iter());
            effective.repos.push(rule);
        }
        effective
    }

    /// Which rules apply to `path` in `repo`, in the order they are applied, in
    /// words. What `deploy-gate policy explain` prints.
    pub fn explain(&self, repo: &str, path: &str) -> Vec<String> {
        let effective = self.effective(repo);
        let mut lines = vec![format!("policy {} (version {})", self.origin, self.version)];
        lines.push(match &effective.bands {
            Some((b, source)) => format!(
                "bands: review from {}, hold from {}, block from {} ({source})",
                b.review_from, b.hold_from, b.block_from
            ),
            None => "bands: the main configuration's [bands]".to_string(),
        });
        lines.push(match &effective.on_analysis_error {
            Some((r, source)) => format!("a failed analysis: {r} ({source})"),
            None => "a failed analysis: consensus.on_analysis_error of the main configuration (the consensus settings stay in [consensus])".to_string(),
        });
        lines.push(format!("repository {repo}:"));
        if effective.repos.is_empty() {
            lines.push("  no [[repo]] rule matches".to_string());
        }
        for rule in &effective.repos {
            let mut what = Vec::new();
            if let Some(b) = rule.spec.bands {
                what.push(format!(
                    "bands review from {}, hold from {}, block from {}",
                    b.review_from, b.hold_from, b.block_from
                ));
            }
            if let Some(r) = rule.spec.on_analysis_error {
                what.push(format!("a failed analysis gives {r}"));
            }
            if let Some(categories) = &rule.spec.always_hold {
                what.push(format!("always_hold = [{}]", join(categories)));
            }
            if let Some(skip) = rule.spec.skip_models_when_trivial {
                what.push(format!("skip_models_when_trivial = {skip}"));
            }
            if let Some(min) = rule.spec.min_recommendation {
                what.push(format!("every change at least {min}"));
            }
            if !rule.paths.is_empty() {
                what.push(format!("{} path rule(s) of its own", rule.paths.len()));
            }
            lines.push(format!(
                "  {} `{}` (line {}) matches: {}",
                rule.key,
                rule.spec.name,
                rule.line,
                if what.is_empty() {
                    "no override".to_string()
                } else {
                    what.join("; ")
                }
            ));
        }
        lines.push(format!("path {path}:"));
        let file = ChangedFile {
            path: path.to_string(),
            old_path: None,
            status: crate::FileStatus::Modified,
            additions: 0,
            deletions: 0,
            binary: false,
            class: crate::classify_path(path),
        };
        let matching: Vec<&&PathRule> = effective
            .paths
            .iter()
            .filter(|rule| rule.covers(&file, true))
            .collect();
        if matching.is_empty() {
            lines.push("  no path rule matches".to_string());
        }
        for rule in matching {
            let mut what = Vec::new();
            if let Some(min) = rule.spec.min_recommendation {
                what.push(format!("at least {min} when any changed file matches"));
            }
            if let Some(max) = rule.spec.max_recommendation {
                what.push(format!(
                    "at most {max} when every changed file matches (never below the rules floor)"
                ));
            }
            match rule.spec.skip_models {
                Some(true) => what.push(
                    "matching files count as trivial: models skipped when every changed file is trivial"
                        .to_string(),
                ),
                Some(false) => what.push("models always asked when any changed file matches".to_string()),
                None => {}
            }
            lines.push(format!(
                "  {} (line {}) matches: {}{}",
                rule.label(),
                rule.line,
                what.join("; "),
                rule.why()
            ));
        }
        let (categories, source) = &effective.always_hold;
        if categories.is_empty() {
            lines.push("always_hold: no category".to_string());
        } else {
            lines.push(format!(
                "always_hold: [{}] ({source}): at least hold when the decision has a risk of one of them",
                join(categories)
            ));
        }
        let (skip, source) = &effective.skip_trivial;
        let class = match crate::classify_path(path) {
            crate::FileClass::Docs => " (this path is documentation)",
            crate::FileClass::Test => " (this path is a test)",
            _ => "",
        };
        lines.push(if *skip {
            format!("models: skipped when the rules analyzer is certain the change is trivial: docs, tests or comment-only code ({source} = true){class}")
        } else {
            format!("models: asked for every change ({source} = false)")
        });
        if self.spec.notify.is_empty() {
            lines.push("notify: the worker's [worker.notify] settings".to_string());
        } else {
            let thresholds: Vec<String> = self
                .spec
                .notify
                .iter()
                .map(|(channel, min)| format!("{channel} from {min}"))
                .collect();
            lines.push(format!("notify: {}", thresholds.join(", ")));
        }
        lines.push("precedence: a failed analysis is never capped; the rules analyzer's high (hold) and critical (block) findings, always_hold and min_recommendation are floors; max_recommendation caps only above them".to_string());
        lines
    }

    /// The first step for one change, before any model is asked: the bands and
    /// consensus settings for its repository, and whether the models are skipped.
    ///
    /// `bands` and `consensus` are the main configuration's; the rules verdict
    /// `rules` decides whether the rules analyzer is certain (no finding of medium
    /// severity or above, no secret); `n_models` is how many model providers would
    /// be asked (none: there is nothing to skip).
    pub fn plan(
        &self,
        context: &DeployContext,
        rules: &Verdict,
        bands: Bands,
        consensus: &ConsensusPolicy,
        n_models: usize,
    ) -> PolicyPlan<'_> {
        let effective = self.effective(&context.repo);
        let mut notes = Vec::new();
        let mut plan_bands = self.spec.bands.unwrap_or(bands);
        if let Some((repo_bands, source)) = &effective.bands {
            plan_bands = *repo_bands;
            if *repo_bands != bands && source.starts_with("repo[") {
                notes.push(format!(
                    "policy: {source} sets this repository's bands: review from {}, hold from {}, block from {}",
                    repo_bands.review_from, repo_bands.hold_from, repo_bands.block_from
                ));
            }
        }
        let mut consensus = consensus.clone();
        if let Some((on_error, _)) = effective.on_analysis_error {
            consensus.on_analysis_error = on_error;
        }
        let skip_models = if n_models > 0 {
            self.skip_reason(&effective, context, rules)
        } else {
            None
        };
        if skip_models.is_some() {
            consensus.quorum = 0;
        }
        PolicyPlan {
            policy: self,
            rebanded: plan_bands != bands,
            bands: plan_bands,
            consensus,
            skip_models,
            notes,
        }
    }

    fn skip_reason(
        &self,
        effective: &Effective<'_>,
        context: &DeployContext,
        rules: &Verdict,
    ) -> Option<SkipReason> {
        if context.files.is_empty()
            || !context.secrets.is_empty()
            || rules.risks.iter().any(|r| r.severity >= Severity::Medium)
        {
            return None;
        }
        let forced = effective.paths.iter().any(|rule| {
            rule.spec.skip_models == Some(false)
                && context.files.iter().any(|file| rule.covers(file, true))
        });
        if forced {
            return None;
        }
        let by_class = effective.skip_trivial.0;
        let comment_only = if by_class {
            trivial::comment_only_files(context)
        } else {
            Vec::new()
        };
        let mut reason = SkipReason::default();
        for file in &context.files {
            // What the file is says more than which rule covers it: a doc under a
            // `skip_models` rule still reads "docs-only change".
            let by_what = if by_class {
                trivial::class_kind(file).or_else(|| {
                    comment_only
                        .contains(&file.path)
                        .then_some(trivial::FileKind::Comments)
                })
            } else {
                None
            };
            let kind = by_what.or_else(|| {
                effective
                    .paths
                    .iter()
                    .any(|rule| rule.spec.skip_models == Some(true) && rule.covers(file, false))
                    .then_some(trivial::FileKind::PathRule)
            });
            trivial::record(&mut reason, kind?);
        }
        Some(reason)
    }
}

fn join(categories: &[Category]) -> String {
    categories
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The policy's decisions for one change, made before the models are asked (see
/// [`Policy::plan`]); [`PolicyPlan::decide`] finishes the job after them.
#[derive(Debug, Clone)]
pub struct PolicyPlan<'p> {
    policy: &'p Policy,
    /// The bands this repository's decision uses.
    pub bands: Bands,
    /// The consensus settings with this repository's `on_analysis_error` (and a
    /// quorum of 0 when the models are skipped).
    pub consensus: ConsensusPolicy,
    /// Set when the change is trivial: ask no model.
    pub skip_models: Option<SkipReason>,
    rebanded: bool,
    notes: Vec<String>,
}

impl PolicyPlan<'_> {
    /// Whether the models are skipped for this change.
    pub fn skips_models(&self) -> bool {
        self.skip_models.is_some()
    }

    /// [`decide`](crate::decide) under this plan, then [`apply_policy`]: with a
    /// repository's own bands, every verdict's recommendation is read again from
    /// its score under them; skipped models are said so ("models skipped:
    /// docs-only change", quorum 0, no model verdict).
    pub fn decide(
        &self,
        event_id: &str,
        context: &DeployContext,
        decided_at: &str,
        mut rules: Verdict,
        mut models: Vec<ModelOutcome>,
    ) -> Decision {
        if self.skips_models() {
            models.clear();
        }
        if self.rebanded {
            rules.recommendation = self.bands.recommendation(rules.risk_score);
            for verdict in models.iter_mut().filter_map(|m| m.result.as_mut().ok()) {
                verdict.recommendation = self.bands.recommendation(verdict.risk_score);
            }
        }
        let inputs = DecisionInputs {
            event_id,
            context,
            bands: &self.bands,
            policy: &self.consensus,
            decided_at,
        };
        let mut decision = crate::decide(inputs, rules, models);
        if let Some(reason) = &self.skip_models {
            decision
                .consensus
                .notes
                .retain(|note| !note.starts_with("no model configured"));
            decision.consensus.notes.insert(0, reason.note());
            decision.consensus.quorum = 0;
        }
        decision.consensus.notes.extend(self.notes.iter().cloned());
        apply_policy(self.policy, &context.repo, &context.files, decision)
    }
}

/// The least strict recommendation the rules analyzer's own findings allow: a high
/// finding holds, a critical one blocks, whatever the thresholds.
fn rules_floor(decision: &Decision) -> (Recommendation, Option<Severity>) {
    let top = decision
        .verdicts
        .iter()
        .filter(|v| v.analyzer == "rules")
        .flat_map(|v| v.risks.iter())
        .map(|r| r.severity)
        .max();
    let floor = match top {
        Some(Severity::Critical) => Recommendation::Block,
        Some(Severity::High) => Recommendation::Hold,
        _ => Recommendation::Deploy,
    };
    (floor, top)
}

/// Applies the policy's floors and caps to a decision of `repo` whose changed files
/// are `files` (see the module documentation for the precedence). Adds one
/// consensus note per rule that changed something, or that wanted to and was
/// overruled by a stronger one.
pub fn apply_policy(
    policy: &Policy,
    repo: &str,
    files: &[ChangedFile],
    mut decision: Decision,
) -> Decision {
    let effective = policy.effective(repo);
    let before = decision.recommendation;
    let mut recommendation = before;
    let mut notes = Vec::new();
    let analysis_failed = decision.consensus.n_model_verdicts < decision.consensus.quorum;
    let (floor, top) = rules_floor(&decision);
    let top = top.map(|s| s.as_str()).unwrap_or("");

    // Caps: only when every changed file matches, never below the rules floor, and
    // never for a failed analysis.
    for rule in &effective.paths {
        let Some(cap) = rule.spec.max_recommendation else {
            continue;
        };
        if files.is_empty() || !files.iter().all(|f| rule.covers(f, false)) {
            continue;
        }
        if recommendation <= cap {
            continue;
        }
        if analysis_failed {
            notes.push(format!(
                "policy: {} would cap at {cap}, but the analysis did not complete: {recommendation} stands",
                rule.label()
            ));
            continue;
        }
        let limited = cap.max(floor);
        if limited < recommendation {
            notes.push(format!(
                "policy: {} caps at {cap}: every changed file matches (was {recommendation}){}",
                rule.label(),
                rule.why()
            ));
            recommendation = limited;
        }
        if floor > cap {
            notes.push(format!(
                "policy: {} would cap at {cap}, but the rules analyzer's {top} finding keeps at least {floor}",
                rule.label()
            ));
        }
    }

    // The rules floor, whatever this repository's bands say.
    if recommendation < floor {
        notes.push(format!(
            "policy: the rules analyzer's {top} finding requires at least {floor} (was {recommendation})"
        ));
        recommendation = floor;
    }

    // Floors: the repository's, the paths', the categories'.
    for rule in &effective.repos {
        if let Some(min) = rule.spec.min_recommendation {
            if recommendation < min {
                notes.push(format!(
                    "policy: {} `{}` requires at least {min} (was {recommendation})",
                    rule.key, rule.spec.name
                ));
                recommendation = min;
            }
        }
    }
    for rule in &effective.paths {
        let Some(min) = rule.spec.min_recommendation else {
            continue;
        };
        let Some(file) = files.iter().find(|f| rule.covers(f, true)) else {
            continue;
        };
        if recommendation < min {
            notes.push(format!(
                "policy: {} requires at least {min} ({} matches; was {recommendation}){}",
                rule.label(),
                file.path,
                rule.why()
            ));
            recommendation = min;
        }
    }
    let (categories, _) = effective.always_hold;
    for category in categories {
        let Some(risk) = decision
            .risks
            .iter()
            .find(|r| r.category == *category && r.severity > Severity::Info)
        else {
            continue;
        };
        if recommendation < Recommendation::Hold {
            notes.push(format!(
                "policy: always_hold {category}: a {} {category} risk holds (was {recommendation}): {}",
                risk.severity, risk.detail
            ));
            recommendation = Recommendation::Hold;
        }
    }

    if recommendation != before {
        if let Some(last) = notes.iter().rev().find(|n| !n.contains("would cap")) {
            decision.summary = format!("{} ({last})", decision.summary);
        }
    }
    decision.recommendation = recommendation;
    decision.consensus.notes.extend(notes);
    decision
}

#[cfg(test)]
mod tests;
