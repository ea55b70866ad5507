//! What an orchestrator asks: a canary request (`schemas/canary-request.schema.json`)
//! and the spec files of the CLI, with the checks that turn a bad one into an
//! error naming the field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The canary request schema version this build writes and reads.
pub const CANARY_REQUEST_SCHEMA_VERSION: u32 = 1;

/// Longest `canary_id` and `event_id`: the two travel together as the id of a
/// rollback notification, an AMQP short string of at most 255 bytes.
pub const MAX_ID_BYTES: usize = 120;
/// Most metrics one request may judge.
pub const MAX_METRICS: usize = 100;

/// Which way a metric moving is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadDirection {
    /// Higher on the canary is bad (error rates, latency).
    Increase,
    /// Lower on the canary is bad (throughput, success rate, cache hits).
    Decrease,
    /// Any significant move is bad.
    #[default]
    Either,
}

impl BadDirection {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BadDirection::Increase => "increase",
            BadDirection::Decrease => "decrease",
            BadDirection::Either => "either",
        }
    }
}

/// One side of the comparison: the canary or the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// A name for people (`shop-canary`, a pod set, a region).
    pub name: String,
    /// What `{{scope}}` becomes in the PromQL templates (a label value such as
    /// `canary`); empty when the source is inline.
    #[serde(default)]
    pub scope: String,
}

/// A metric to judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// The metric's name, unique in the request (`error_rate`).
    pub name: String,
    /// Which way moving is bad (default `either`).
    #[serde(default)]
    pub bad_direction: BadDirection,
    /// A critical metric that moves the bad way fails the whole run.
    #[serde(default)]
    pub critical: bool,
    /// Weight within its group (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// The group it is scored in (default `default`).
    #[serde(default = "default_group")]
    pub group: String,
    /// Relative change of the mean tolerated before a significant move counts
    /// (0.1 = 10 %); default `canary.tolerance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
}

fn one() -> f64 {
    1.0
}

fn default_group() -> String {
    "default".to_string()
}

/// The samples of one metric, canary and baseline (time order; the judge ignores
/// the order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesPair {
    /// The canary's samples.
    pub canary: Vec<f64>,
    /// The baseline's samples.
    pub baseline: Vec<f64>,
}

/// Where the samples come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// The samples travel in the request, by metric name.
    Inline {
        /// Samples by metric name; every metric of the request needs an entry.
        series: BTreeMap<String, SeriesPair>,
    },
    /// Range queries against a Prometheus HTTP API.
    Prometheus(PrometheusSource),
}

/// A Prometheus range query per metric, over the same window for both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSource {
    /// The server, e.g. `http://prometheus:9090` (the API is under `/api/v1`).
    pub base_url: String,
    /// PromQL by metric name, with `{{scope}}` where the target's scope goes; each
    /// must return one series (aggregate it, e.g. with `sum(...)`).
    pub queries: BTreeMap<String, String>,
    /// Resolution of the range query, in seconds.
    pub step_secs: u64,
    /// How far back from `end` the window reaches, in seconds.
    pub window_secs: u64,
    /// End of the window (RFC 3339); default: when the request is judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// A canary request, published on the events exchange as
/// `canary.request.<repo-slug>`. Its JSON is a public contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryRequest {
    /// Always [`CANARY_REQUEST_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// This judgement's id (the answer's message id): one per ask, so an
    /// orchestrator asking every minute uses a new id each time.
    pub canary_id: String,
    /// The deploy's event id: its decision gives the risk score and rollback plan.
    pub event_id: String,
    /// The repository (routing, and when the deploy decision cannot be found).
    pub repo: String,
    /// The canary.
    pub canary: Target,
    /// What the canary is compared with.
    pub baseline: Target,
    /// The metrics to judge.
    pub metrics: Vec<MetricSpec>,
    /// Weight of each group in the score, in percent; groups not listed share what
    /// is left of 100 equally.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, f64>,
    /// Where the samples come from.
    pub source: Source,
    /// The last judgement of the run: not enough evidence is a rollback, not a
    /// `continue` (fail closed).
    #[serde(default, rename = "final")]
    pub final_judgement: bool,
}

/// The CLI's spec file: what a request says besides its ids and source, plus the
/// inline series (`--metrics FILE`) or the PromQL templates (`--query-file FILE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanarySpec {
    /// The canary.
    pub canary: Target,
    /// The baseline.
    pub baseline: Target,
    /// The metrics to judge.
    pub metrics: Vec<MetricSpec>,
    /// Group weights in percent.
    #[serde(default)]
    pub groups: BTreeMap<String, f64>,
    /// Inline samples by metric name.
    #[serde(default)]
    pub series: Option<BTreeMap<String, SeriesPair>>,
    /// PromQL templates by metric name.
    #[serde(default)]
    pub queries: Option<BTreeMap<String, String>>,
}

/// What a request built from a [`CanarySpec`] says besides the spec.
#[derive(Debug, Clone, Copy)]
pub struct RequestIds<'a> {
    /// The judgement's id.
    pub canary_id: &'a str,
    /// The deploy's event id.
    pub event_id: &'a str,
    /// The repository.
    pub repo: &'a str,
    /// The run's last judgement.
    pub final_judgement: bool,
}

/// A request or spec that cannot be judged, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not JSON, or the wrong shape (the parser's message has line and column).
    #[error("malformed canary request: {0}")]
    Malformed(String),
    /// A schema version this build does not read.
    #[error("unknown canary request schema_version {found} (this build reads {CANARY_REQUEST_SCHEMA_VERSION})")]
    UnknownVersion {
        /// The version found.
        found: u64,
    },
    /// A field breaks a rule.
    #[error("canary request field `{field}`: {message}")]
    Invalid {
        /// The field, as a path (`metrics[2].weight`).
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> RequestError {
    RequestError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

impl CanaryRequest {
    /// Parses and checks a request: the version before the shape, so a future
    /// message says "unknown version", not "unknown field"; then [`CanaryRequest::validate`].
    pub fn from_json(payload: &[u8]) -> Result<CanaryRequest, RequestError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            schema_version: u64,
        }
        let malformed = |error: serde_json::Error| RequestError::Malformed(error.to_string());
        let version: VersionOnly = serde_json::from_slice(payload).map_err(malformed)?;
        if version.schema_version != u64::from(CANARY_REQUEST_SCHEMA_VERSION) {
            return Err(RequestError::UnknownVersion {
                found: version.schema_version,
            });
        }
        let request: CanaryRequest = serde_json::from_slice(payload).map_err(malformed)?;
        request.validate()?;
        Ok(request)
    }

    /// The rules serde cannot express: ids present and short enough, unique metric
    /// names, positive finite weights and tolerances, group weights that add up,
    /// a source with data (or a query) for every metric, scopes PromQL can quote.
    pub fn validate(&self) -> Result<(), RequestError> {
        for (field, id) in [("canary_id", &self.canary_id), ("event_id", &self.event_id)] {
            if id.trim().is_empty() {
                return Err(invalid(field, "is empty"));
            }
            if id.len() > MAX_ID_BYTES {
                return Err(invalid(
                    field,
                    format!("is {} bytes, longer than {MAX_ID_BYTES}", id.len()),
                ));
            }
        }
        if self.repo.trim().is_empty() {
            return Err(invalid("repo", "is empty"));
        }
        validate_parts(
            &self.canary,
            &self.baseline,
            &self.metrics,
            &self.groups,
            "",
        )?;
        match &self.source {
            Source::Inline { series } => validate_series(&self.metrics, series, "source.series"),
            Source::Prometheus(source) => {
                validate_prometheus(source)?;
                validate_queries(&self.metrics, &source.queries, "source.queries")?;
                for (field, target) in [("canary", &self.canary), ("baseline", &self.baseline)] {
                    validate_scope(&target.scope, &format!("{field}.scope"))?;
                }
                Ok(())
            }
        }
    }
}

impl CanarySpec {
    /// Parses a spec file's text; errors name the file, and the line and column
    /// where the parser stopped.
    pub fn from_json(text: &str, origin: &str) -> Result<CanarySpec, RequestError> {
        serde_json::from_str(text)
            .map_err(|error| RequestError::Malformed(format!("{origin}: {error}")))
    }

    /// The request with inline series (the spec must have them).
    pub fn inline_request(&self, ids: &RequestIds<'_>) -> Result<CanaryRequest, RequestError> {
        let Some(series) = &self.series else {
            return Err(invalid(
                "series",
                "is missing: --metrics needs the samples of every metric under `series`",
            ));
        };
        self.request(
            ids,
            Source::Inline {
                series: series.clone(),
            },
        )
    }

    /// The request against a Prometheus server (the spec must have the queries),
    /// over the `window_secs` before the judgement at `step_secs` resolution.
    pub fn prometheus_request(
        &self,
        ids: &RequestIds<'_>,
        base_url: &str,
        step_secs: u64,
        window_secs: u64,
    ) -> Result<CanaryRequest, RequestError> {
        let Some(queries) = &self.queries else {
            return Err(invalid(
                "queries",
                "is missing: --prometheus needs a PromQL template per metric under `queries`",
            ));
        };
        self.request(
            ids,
            Source::Prometheus(PrometheusSource {
                base_url: base_url.to_string(),
                queries: queries.clone(),
                step_secs,
                window_secs,
                end: None,
            }),
        )
    }

    fn request(&self, ids: &RequestIds<'_>, source: Source) -> Result<CanaryRequest, RequestError> {
        let request = CanaryRequest {
            schema_version: CANARY_REQUEST_SCHEMA_VERSION,
            canary_id: ids.canary_id.to_string(),
            event_id: ids.event_id.to_string(),
            repo: ids.repo.to_string(),
            canary: self.canary.clone(),
            baseline: self.baseline.clone(),
            metrics: self.metrics.clone(),
            groups: self.groups.clone(),
            source,
            final_judgement: ids.final_judgement,
        };
        request.validate()?;
        Ok(request)
    }
}

fn validate_parts(
    canary: &Target,
    baseline: &Target,
    metrics: &[MetricSpec],
    groups: &BTreeMap<String, f64>,
    prefix: &str,
) -> Result<(), RequestError> {
    for (field, target) in [("canary", canary), ("baseline", baseline)] {
        if target.name.trim().is_empty() {
            return Err(invalid(format!("{prefix}{field}.name"), "is empty"));
        }
    }
    if metrics.is_empty() {
        return Err(invalid(
            format!("{prefix}metrics"),
            "is empty: name at least one metric",
        ));
    }
    if metrics.len() > MAX_METRICS {
        return Err(invalid(
            format!("{prefix}metrics"),
            format!("has {} metrics, more than {MAX_METRICS}", metrics.len()),
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for (idx, metric) in metrics.iter().enumerate() {
        let field = |name: &str| format!("{prefix}metrics[{idx}].{name}");
        if metric.name.trim().is_empty() {
            return Err(invalid(field("name"), "is empty"));
        }
        if !names.insert(metric.name.as_str()) {
            return Err(invalid(
                field("name"),
                format!("`{}` is named twice", metric.name),
            ));
        }
        if metric.group.trim().is_empty() {
            return Err(invalid(field("group"), "is empty"));
        }
        if !(metric.weight.is_finite() && metric.weight > 0.0) {
            return Err(invalid(
                field("weight"),
                format!("must be a number above 0, got {}", metric.weight),
            ));
        }
        if let Some(tolerance) = metric.tolerance {
            if !(tolerance.is_finite() && tolerance >= 0.0) {
                return Err(invalid(
                    field("tolerance"),
                    format!("must be a fraction of 0 or more (0.1 = 10 %), got {tolerance}"),
                ));
            }
        }
    }
    let used: std::collections::BTreeSet<&str> = metrics.iter().map(|m| m.group.as_str()).collect();
    let mut listed_sum = 0.0;
    for (group, weight) in groups {
        let field = format!("{prefix}groups.{group}");
        if !used.contains(group.as_str()) {
            return Err(invalid(field, "no metric is in this group"));
        }
        if !(weight.is_finite() && *weight > 0.0 && *weight <= 100.0) {
            return Err(invalid(
                field,
                format!("must be a percentage above 0 and at most 100, got {weight}"),
            ));
        }
        listed_sum += weight;
    }
    if listed_sum > 100.0 + 1e-9 {
        return Err(invalid(
            format!("{prefix}groups"),
            format!("the weights add up to {listed_sum}, more than 100"),
        ));
    }
    let n_unlisted = used.iter().filter(|g| !groups.contains_key(**g)).count();
    if n_unlisted > 0 && listed_sum >= 100.0 - 1e-9 {
        return Err(invalid(
            format!("{prefix}groups"),
            "the listed groups take all of 100, which leaves nothing for the groups not listed",
        ));
    }
    Ok(())
}

fn validate_series(
    metrics: &[MetricSpec],
    series: &BTreeMap<String, SeriesPair>,
    field: &str,
) -> Result<(), RequestError> {
    for metric in metrics {
        if !series.contains_key(&metric.name) {
            return Err(invalid(
                field,
                format!("has no samples for metric `{}`", metric.name),
            ));
        }
    }
    for (name, pair) in series {
        if !metrics.iter().any(|m| &m.name == name) {
            return Err(invalid(
                format!("{field}.{name}"),
                "names no metric of the request",
            ));
        }
        for (side, values) in [("canary", &pair.canary), ("baseline", &pair.baseline)] {
            if let Some(idx) = values.iter().position(|v| !v.is_finite()) {
                return Err(invalid(
                    format!("{field}.{name}.{side}[{idx}]"),
                    "is not a finite number",
                ));
            }
        }
    }
    Ok(())
}

fn validate_queries(
    metrics: &[MetricSpec],
    queries: &BTreeMap<String, String>,
    field: &str,
) -> Result<(), RequestError> {
    for metric in metrics {
        match queries.get(&metric.name) {
            None => {
                return Err(invalid(
                    field,
                    format!("has no query for metric `{}`", metric.name),
                ))
            }
            Some(query) if query.trim().is_empty() => {
                return Err(invalid(format!("{field}.{}", metric.name), "is empty"))
            }
            Some(_) => {}
        }
    }
    if let Some(name) = queries
        .keys()
        .find(|name| !metrics.iter().any(|m| &m.name == *name))
    {
        return Err(invalid(
            format!("{field}.{name}"),
            "names no metric of the request",
        ));
    }
    Ok(())
}

fn validate_prometheus(source: &PrometheusSource) -> Result<(), RequestError> {
    let base = source.base_url.trim();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(invalid(
            "source.base_url",
            format!("must be an http:// or https:// URL, got {base:?}"),
        ));
    }
    if source.step_secs == 0 {
        return Err(invalid("source.step_secs", "must be at least 1"));
    }
    if source.window_secs < source.step_secs {
        return Err(invalid(
            "source.window_secs",
            "must be at least one step long",
        ));
    }
    // Prometheus refuses more than 11,000 points per series.
    if source.window_secs / source.step_secs > 11_000 {
        return Err(invalid(
            "source.window_secs",
            "holds more than 11,000 steps, which Prometheus refuses: raise step_secs",
        ));
    }
    if let Some(end) = &source.end {
        time::OffsetDateTime::parse(end, &time::format_description::well_known::Rfc3339)
            .map_err(|_| invalid("source.end", format!("is not an RFC 3339 time: {end:?}")))?;
    }
    Ok(())
}

/// A scope goes inside a PromQL string literal: no quotes, backslashes or line
/// breaks, so a template cannot be broken out of.
fn validate_scope(scope: &str, field: &str) -> Result<(), RequestError> {
    if scope.is_empty() {
        return Err(invalid(field, "is empty: the PromQL templates need it"));
    }
    if scope
        .chars()
        .any(|c| matches!(c, '"' | '\'' | '`' | '\\') || c.is_control())
    {
        return Err(invalid(
            field,
            format!("{scope:?} holds a quote, backslash or control character"),
        ));
    }
    Ok(())
}

/// The template with `{{scope}}` replaced by `scope`.
pub fn render_query(template: &str, scope: &str) -> String {
    template.replace("{{scope}}", scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_json(extra: &str) -> String {
        format!(
            r#"{{"schema_version": 1, "canary_id": "c-1", "event_id": "ev-1", "repo": "acme/shop",
                "canary": {{"name": "shop-canary"}}, "baseline": {{"name": "shop-baseline"}},
                "metrics": [{{"name": "error_rate", "bad_direction": "increase", "critical": true}}],
                "source": {{"kind": "inline", "series": {{"error_rate": {{"canary": [1, 2], "baseline": [1, 2]}}}}}}
                {extra}}}"#
        )
    }

    #[test]
    fn a_request_reads_with_its_defaults() {
        let request = CanaryRequest::from_json(request_json("").as_bytes()).expect("valid");
        assert_eq!(request.metrics[0].weight, 1.0);
        assert_eq!(request.metrics[0].group, "default");
        assert!(!request.final_judgement);
        let fin =
            CanaryRequest::from_json(request_json(r#", "final": true"#).as_bytes()).expect("valid");
        assert!(fin.final_judgement);
    }

    #[test]
    fn bad_requests_name_the_field() {
        let error = |json: String| {
            CanaryRequest::from_json(json.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert!(error(request_json(r#", "groups": {"latency": 50}"#)).contains("groups.latency"));
        assert!(error(request_json(r#", "typo": 1"#)).contains("unknown field `typo`"));
        let future = r#"{"schema_version": 2, "anything": true}"#.to_string();
        assert!(error(future).contains("unknown canary request schema_version 2"));
        let missing =
            request_json("").replace(r#""error_rate": {"canary""#, r#""latency": {"canary""#);
        assert!(error(missing).contains("no samples for metric `error_rate`"));
        let weight =
            request_json("").replace(r#""critical": true"#, r#""critical": true, "weight": -1"#);
        assert!(error(weight).contains("metrics[0].weight"));
    }

    #[test]
    fn prometheus_scopes_cannot_break_out_of_a_string() {
        assert!(validate_scope("canary", "canary.scope").is_ok());
        assert!(validate_scope("x\"} or vector(1) #", "canary.scope").is_err());
        assert_eq!(
            render_query(r#"sum(rate(errors{track="{{scope}}"}[1m]))"#, "canary"),
            r#"sum(rate(errors{track="canary"}[1m]))"#
        );
    }
}
