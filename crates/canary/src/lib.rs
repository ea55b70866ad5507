//! deploy-gate's canary analysis: after a deploy, judge the canary against its
//! baseline and answer `promote`, `continue` or `rollback`, with the rollback plan
//! the deploy decision already carries.
//!
//! - [`CanaryRequest`] says what to compare: the deploy's event id, the canary and
//!   baseline, the metrics (bad direction, criticality, weight, group) and where
//!   the samples are (inline, or PromQL templates for a [`Prometheus`] server).
//! - [`judge`] is pure: per metric a two-sided Mann-Whitney U test
//!   ([`mann_whitney_u`]) with an effect-size tolerance, after Kayenta's
//!   NetflixACAJudge; weighted group scores 0–100; `marginal` and `pass`
//!   thresholds tightened by the change's own risk score; a critical metric that
//!   fails fails the run; too few samples say `continue`.
//! - [`run`] is the bus-facing service behind `deploy-gate canary serve`.
//!
//! Architecture invariant: the judge does no I/O and reads no clock; the same
//! request, samples and deploy decision give the same [`CanaryDecision`].
//!
//! Architecture invariant: like the other roles, this crate knows neither lapin
//! nor redis (it uses `gate-bus`), and nothing of the worker or the notifier
//! beyond the messages: a rollback is told to people as a `Notification` on
//! `notify.<channel>.<severity>`, which the notifier delivers.

mod decision;
mod judge;
mod prometheus;
mod request;
mod service;
mod settings;
mod stats;

pub use decision::{
    CanaryDecision, CanaryResult, Classification, GroupScore, MetricJudgement, Thresholds,
    CANARY_DECISION_SCHEMA_VERSION,
};
pub use judge::{judge, thresholds, Evidence};
pub use prometheus::{Prometheus, SourceError};
pub use request::{
    render_query, BadDirection, CanaryRequest, CanarySpec, MetricSpec, PrometheusSource,
    RequestError, RequestIds, SeriesPair, Source, Target, CANARY_REQUEST_SCHEMA_VERSION,
};
pub use service::{
    count_judgement, decision_routing_key, publish_decision, publish_request, request_routing_key,
    rollback_notification, run, window_end, ServiceDeps, ServiceError, KIND_CANARY_DECISION,
    KIND_CANARY_REQUEST,
};
pub use settings::{CanarySettings, RiskTightening};
pub use stats::{hodges_lehmann, mann_whitney_u, normal_sf, MannWhitney, PMethod};
