//! Reading a policy file: TOML into raw, span-carrying structs, then validation
//! into the compiled [`Policy`](super::Policy), with every error located at the
//! file, line, column and key it is about.

use std::collections::BTreeMap;
use std::ops::Range;

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;
use toml::Spanned;

use super::{PathRule, PathSpec, Policy, PolicyError, PolicySpec, RepoRule, RepoSpec};
use crate::{Bands, Category, Recommendation};

/// The policy file as written: every value that validation may refuse keeps its
/// span, so the error can point at it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    bands: Option<RawBands>,
    #[serde(default)]
    on_analysis_error: Option<Spanned<Recommendation>>,
    #[serde(default)]
    always_hold: Vec<Category>,
    #[serde(default)]
    skip_models_when_trivial: Option<bool>,
    #[serde(default)]
    notify: BTreeMap<Spanned<String>, Recommendation>,
    #[serde(default)]
    repo: Vec<RawRepo>,
    #[serde(default)]
    path: Vec<RawPath>,
}

/// All three thresholds, each with its span.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBands {
    review_from: Spanned<u8>,
    hold_from: Spanned<u8>,
    block_from: Spanned<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepo {
    name: Spanned<String>,
    #[serde(default)]
    bands: Option<RawBands>,
    #[serde(default)]
    on_analysis_error: Option<Spanned<Recommendation>>,
    #[serde(default)]
    always_hold: Option<Vec<Category>>,
    #[serde(default)]
    skip_models_when_trivial: Option<bool>,
    #[serde(default)]
    min_recommendation: Option<Recommendation>,
    #[serde(default)]
    path: Vec<RawPath>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    glob: Spanned<String>,
    #[serde(default)]
    min_recommendation: Option<Recommendation>,
    #[serde(default)]
    max_recommendation: Option<Spanned<Recommendation>>,
    #[serde(default)]
    skip_models: Option<bool>,
    #[serde(default)]
    reason: Option<String>,
}

/// Parses and validates `text`, read from `origin` (a path, or a name such as
/// "the built-in config/policy.toml"), into a policy.
pub(super) fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
    let raw: RawPolicy = toml::from_str(text).map_err(|err| {
        let span = err.span().unwrap_or(0..0);
        let message = err.message().trim().to_string();
        PolicyError::syntax(origin, text, span, message)
    })?;
    Validator { text, origin }.policy(raw)
}

struct Validator<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Validator<'_> {
    fn error(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> PolicyError {
        PolicyError::rule(self.origin, self.text, span, key, message.into())
    }

    fn policy(&self, raw: RawPolicy) -> Result<Policy, PolicyError> {
        let bands = raw
            .bands
            .as_ref()
            .map(|b| self.bands(b, "bands"))
            .transpose()?;
        let on_analysis_error = raw
            .on_analysis_error
            .as_ref()
            .map(|r| self.on_error(r, "on_analysis_error"))
            .transpose()?;
        let mut notify = BTreeMap::new();
        for (channel, min) in &raw.notify {
            if channel.get_ref().trim().is_empty() {
                return Err(self.error(channel.span(), "notify", "a channel name is empty"));
            }
            notify.insert(channel.get_ref().clone(), *min);
        }

        let mut paths = Vec::with_capacity(raw.path.len());
        for (idx, path) in raw.path.into_iter().enumerate() {
            paths.push(self.path(path, &format!("path[{idx}]"))?);
        }
        let mut repos = Vec::with_capacity(raw.repo.len());
        for (idx, repo) in raw.repo.into_iter().enumerate() {
            repos.push(self.repo(repo, &format!("repo[{idx}]"))?);
        }

        let spec = PolicySpec {
            bands,
            on_analysis_error,
            always_hold: normalized(raw.always_hold),
            skip_models_when_trivial: raw.skip_models_when_trivial.unwrap_or(true),
            notify,
            repo: repos.iter().map(|r| r.spec.clone()).collect(),
            path: paths.iter().map(|p| p.spec.clone()).collect(),
        };
        Ok(Policy::from_parts(self.origin, spec, repos, paths))
    }

    fn repo(&self, raw: RawRepo, key: &str) -> Result<RepoRule, PolicyError> {
        let matcher = self.glob(&raw.name, &format!("{key}.name"))?;
        let bands = raw
            .bands
            .as_ref()
            .map(|b| self.bands(b, &format!("{key}.bands")))
            .transpose()?;
        let on_analysis_error = raw
            .on_analysis_error
            .as_ref()
            .map(|r| self.on_error(r, &format!("{key}.on_analysis_error")))
            .transpose()?;
        let mut paths = Vec::with_capacity(raw.path.len());
        for (idx, path) in raw.path.into_iter().enumerate() {
            paths.push(self.path(path, &format!("{key}.path[{idx}]"))?);
        }
        let spec = RepoSpec {
            name: raw.name.get_ref().clone(),
            bands,
            on_analysis_error,
            always_hold: raw.always_hold.map(normalized),
            skip_models_when_trivial: raw.skip_models_when_trivial,
            min_recommendation: raw.min_recommendation,
            path: paths.iter().map(|p| p.spec.clone()).collect(),
        };
        Ok(RepoRule {
            key: key.to_string(),
            line: line_of(self.text, raw.name.span().start),
            spec,
            matcher,
            paths,
        })
    }

    fn path(&self, raw: RawPath, key: &str) -> Result<PathRule, PolicyError> {
        let matcher = self.glob(&raw.glob, &format!("{key}.glob"))?;
        let max = raw.max_recommendation.as_ref().map(|m| *m.get_ref());
        if raw.min_recommendation.is_none() && max.is_none() && raw.skip_models.is_none() {
            return Err(self.error(
                raw.glob.span(),
                key,
                "the rule does nothing: set min_recommendation, max_recommendation or skip_models",
            ));
        }
        if let (Some(min), Some(max_spanned)) = (raw.min_recommendation, &raw.max_recommendation) {
            if min > *max_spanned.get_ref() {
                return Err(self.error(
                    max_spanned.span(),
                    &format!("{key}.max_recommendation"),
                    format!(
                        "max_recommendation `{}` is below min_recommendation `{min}`",
                        max_spanned.get_ref()
                    ),
                ));
            }
        }
        Ok(PathRule {
            key: key.to_string(),
            line: line_of(self.text, raw.glob.span().start),
            spec: PathSpec {
                glob: raw.glob.get_ref().clone(),
                min_recommendation: raw.min_recommendation,
                max_recommendation: max,
                skip_models: raw.skip_models,
                reason: raw.reason.filter(|r| !r.trim().is_empty()),
            },
            matcher,
        })
    }

    fn glob(&self, pattern: &Spanned<String>, key: &str) -> Result<GlobMatcher, PolicyError> {
        let text = pattern.get_ref();
        let refuse = |message: String| Err(self.error(pattern.span(), key, message));
        if text.trim().is_empty() {
            return refuse("the glob is empty".to_string());
        }
        if text.starts_with('/') || text.starts_with("./") {
            return refuse(format!(
                "`{text}` never matches: globs match names relative to the repository root (and repository names as `owner/name`), without a leading `/` or `./`"
            ));
        }
        match GlobBuilder::new(text).literal_separator(true).build() {
            Ok(glob) => Ok(glob.compile_matcher()),
            Err(err) => refuse(format!("invalid glob `{text}`: {}", err.kind())),
        }
    }

    fn bands(&self, raw: &RawBands, key: &str) -> Result<Bands, PolicyError> {
        let (review, hold, block) = (&raw.review_from, &raw.hold_from, &raw.block_from);
        if *review.get_ref() == 0 {
            return Err(self.error(
                review.span(),
                &format!("{key}.review_from"),
                "must be at least 1: the auto band needs room (scores go from 0 to 100)",
            ));
        }
        for (value, name) in [
            (review, "review_from"),
            (hold, "hold_from"),
            (block, "block_from"),
        ] {
            if *value.get_ref() > 100 {
                return Err(self.error(
                    value.span(),
                    &format!("{key}.{name}"),
                    format!(
                        "{} is out of range: scores go from 0 to 100",
                        value.get_ref()
                    ),
                ));
            }
        }
        if hold.get_ref() <= review.get_ref() {
            return Err(self.error(
                hold.span(),
                &format!("{key}.hold_from"),
                format!(
                    "bands out of order: hold_from ({}) must be above review_from ({})",
                    hold.get_ref(),
                    review.get_ref()
                ),
            ));
        }
        if block.get_ref() <= hold.get_ref() {
            return Err(self.error(
                block.span(),
                &format!("{key}.block_from"),
                format!(
                    "bands out of order: block_from ({}) must be above hold_from ({})",
                    block.get_ref(),
                    hold.get_ref()
                ),
            ));
        }
        Ok(Bands {
            review_from: *review.get_ref(),
            hold_from: *hold.get_ref(),
            block_from: *block.get_ref(),
        })
    }

    fn on_error(
        &self,
        value: &Spanned<Recommendation>,
        key: &str,
    ) -> Result<Recommendation, PolicyError> {
        if *value.get_ref() == Recommendation::Deploy {
            return Err(self.error(
                value.span(),
                key,
                "must be `hold` or `block`: a failed analysis never deploys",
            ));
        }
        Ok(*value.get_ref())
    }
}

fn normalized(mut categories: Vec<Category>) -> Vec<Category> {
    categories.sort();
    categories.dedup();
    categories
}

/// The 1-based line and column of byte `offset` of `text`.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |idx| idx + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn line_of(text: &str, offset: usize) -> usize {
    line_col(text, offset).0
}

/// The key a serde error at `offset` is about, as a dotted path with array indices
/// (`path[1].max_recommendation`): the `key = value` on that line under its table
/// header, or the header itself when the error is about a whole table.
pub(super) fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |idx| idx + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut arrays: Vec<String> = Vec::new();
    let mut header: Option<String> = None;
    // Headers up to and including this line decide which table the line is in.
    let upto = text[line_start..]
        .find('\n')
        .map_or(text.len(), |idx| line_start + idx);
    for raw in text[..upto].lines() {
        let raw = raw.trim();
        if let Some(name) = raw.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            let name = name.trim().to_string();
            *counts.entry(name.clone()).or_insert(0) += 1;
            let nested = format!("{name}.");
            counts.retain(|k, _| !k.starts_with(&nested));
            if !arrays.contains(&name) {
                arrays.push(name.clone());
            }
            header = Some(name);
        } else if let Some(name) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            header = Some(name.trim().to_string());
        }
    }
    let section = header.map(|name| {
        let mut rendered = String::new();
        let mut prefix = String::new();
        for part in name.split('.') {
            if !prefix.is_empty() {
                prefix.push('.');
                rendered.push('.');
            }
            prefix.push_str(part);
            rendered.push_str(part);
            if arrays.contains(&prefix) {
                let n = counts.get(&prefix).copied().unwrap_or(1);
                rendered.push_str(&format!("[{}]", n.saturating_sub(1)));
            }
        }
        rendered
    });
    if line.starts_with('[') {
        return section;
    }
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('#') {
        return section;
    }
    Some(match section {
        Some(section) => format!("{section}.{key}"),
        None => key.to_string(),
    })
}
