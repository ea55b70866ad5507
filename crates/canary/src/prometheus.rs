//! The Prometheus source: one range query (`GET /api/v1/query_range`) per metric
//! and side, over the same window, read from the API's JSON
//! (`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{…},"values":[[<unix>,"<value>"],…]}]}}`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::request::{render_query, PrometheusSource, SeriesPair, Target};

/// Longest response body read from Prometheus.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Why samples could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The server could not be reached, timed out, or answered 5xx: the data may
    /// be there on the next attempt.
    #[error("prometheus at {base_url} is unavailable: {detail}")]
    Unavailable {
        /// The server (never with credentials: they are refused in the URL).
        base_url: String,
        /// What happened.
        detail: String,
    },
    /// Prometheus refused the query (`bad_data`: a PromQL error, `execution`, …):
    /// the request must change.
    #[error("prometheus refused the query for metric `{metric}` ({side}): {error_type}: {error}")]
    Refused {
        /// The metric whose query failed.
        metric: String,
        /// `canary` or `baseline`.
        side: &'static str,
        /// Prometheus' `errorType`.
        error_type: String,
        /// Prometheus' `error`.
        error: String,
    },
    /// The answer is not what the API documents, or the query returned more than
    /// one series.
    #[error("unexpected answer from prometheus for metric `{metric}` ({side}): {detail}")]
    Unexpected {
        /// The metric.
        metric: String,
        /// `canary` or `baseline`.
        side: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl SourceError {
    /// Whether trying again later may succeed (an outage), as opposed to a query
    /// that must change.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Unavailable { .. })
    }
}

/// A client of one Prometheus server.
#[derive(Debug, Clone)]
pub struct Prometheus {
    http: reqwest::Client,
    base_url: String,
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<RangeSeries>,
}

#[derive(Deserialize)]
struct RangeSeries {
    #[serde(default)]
    #[allow(dead_code)] // read for the shape; the labels are not needed
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

impl Prometheus {
    /// A client of `base_url` with `timeout` per request.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Prometheus, SourceError> {
        let base_url = base_url.trim().trim_end_matches('/').to_string();
        if let Ok(url) = reqwest::Url::parse(&base_url) {
            if !url.username().is_empty() || url.password().is_some() {
                return Err(SourceError::Unavailable {
                    base_url: format!("{}://{}", url.scheme(), url.host_str().unwrap_or("?")),
                    detail: "credentials in the URL are refused: they would appear in logs"
                        .to_string(),
                });
            }
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|error| SourceError::Unavailable {
                base_url: base_url.clone(),
                detail: error.to_string(),
            })?;
        Ok(Prometheus { http, base_url })
    }

    /// The samples of every metric of `source`, canary and baseline, over the
    /// window ending at `end` (Unix seconds). A query that returns no series gives
    /// no samples (the judge says `no_data`); non-numeric values (`NaN`, `+Inf`)
    /// are dropped.
    pub async fn fetch(
        &self,
        source: &PrometheusSource,
        canary: &Target,
        baseline: &Target,
        end: f64,
    ) -> Result<BTreeMap<String, SeriesPair>, SourceError> {
        let start = end - source.window_secs as f64;
        let step = source.step_secs as f64;
        let mut samples = BTreeMap::new();
        for (metric, template) in &source.queries {
            let mut pair = SeriesPair::default();
            for (side, target, values) in [
                ("canary", canary, &mut pair.canary),
                ("baseline", baseline, &mut pair.baseline),
            ] {
                let query = render_query(template, &target.scope);
                *values = self
                    .query_range(&query, start, end, step, metric, side)
                    .await?;
            }
            samples.insert(metric.clone(), pair);
        }
        Ok(samples)
    }

    /// One range query's values. More than one series is an error: the template
    /// must aggregate.
    pub async fn query_range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
        metric: &str,
        side: &'static str,
    ) -> Result<Vec<f64>, SourceError> {
        let unavailable = |detail: String| SourceError::Unavailable {
            base_url: self.base_url.clone(),
            detail,
        };
        let unexpected = |detail: String| SourceError::Unexpected {
            metric: metric.to_string(),
            side,
            detail,
        };
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/query_range", self.base_url))
            .map_err(|error| unavailable(format!("invalid base URL: {error}")))?;
        url.query_pairs_mut()
            .append_pair("query", query)
            .append_pair("start", &format!("{start:.3}"))
            .append_pair("end", &format!("{end:.3}"))
            .append_pair("step", &format!("{step}"));
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|error| unavailable(error_chain(&error)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| unavailable(error_chain(&error)))?;
        if body.len() > MAX_BODY_BYTES {
            return Err(unexpected(format!(
                "an answer of {} bytes, more than {MAX_BODY_BYTES}",
                body.len()
            )));
        }
        let parsed: Result<ApiResponse, _> = serde_json::from_slice(&body);
        let answer = match parsed {
            Ok(answer) => answer,
            Err(_) if status.is_server_error() => {
                return Err(unavailable(format!("HTTP {status}")));
            }
            Err(error) => {
                return Err(unexpected(format!(
                    "HTTP {status}, not the API's JSON: {error}"
                )));
            }
        };
        if answer.status != "success" {
            let error_type = answer.error_type.unwrap_or_else(|| "unknown".to_string());
            let error = answer.error.unwrap_or_default();
            // Timeouts and an unavailable server are worth another try; a bad
            // query is not.
            if status.is_server_error() && error_type != "execution" {
                return Err(unavailable(format!("HTTP {status}: {error_type}: {error}")));
            }
            return Err(SourceError::Refused {
                metric: metric.to_string(),
                side,
                error_type,
                error,
            });
        }
        let data = answer
            .data
            .ok_or_else(|| unexpected("`data` is missing".to_string()))?;
        if data.result_type != "matrix" {
            return Err(unexpected(format!(
                "resultType `{}`, expected `matrix`",
                data.result_type
            )));
        }
        match data.result.len() {
            0 => Ok(Vec::new()),
            1 => Ok(data
                .result
                .into_iter()
                .flat_map(|series| series.values)
                .filter_map(|(_, value)| value.parse::<f64>().ok())
                .filter(|value| value.is_finite())
                .collect()),
            n => Err(unexpected(format!(
                "{n} series; the query must return one (aggregate it, e.g. with sum(...))"
            ))),
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = source.and_then(|s| s.source());
    }
    text
}
