//! What the page shows, in bounded memory: the last decisions (a ring), the
//! samples behind the windowed figures (a capped queue), and today's running
//! sums. Pure: the caller passes the clock, so the figures are unit-tested.
//!
//! A person's approval or override is a decision of its own in the log: it is
//! listed (marked as such, and the automatic row it supersedes is marked too) but
//! counted only as an override, never in the rate, latency, cost or cache figures,
//! which describe the automatic gate.

use std::collections::VecDeque;

use gate_core::{Decision, Severity};
use serde::Serialize;
use time::{format_description::well_known::Rfc3339, Date, OffsetDateTime};

/// The window of "decisions per minute".
pub(crate) const RATE_WINDOW_SECS: i64 = 5 * 60;
/// The window of the latency percentile.
pub(crate) const LATENCY_WINDOW_SECS: i64 = 60 * 60;
/// Most samples kept for the windowed figures: past it the oldest go first, so a
/// burst bigger than this per hour is measured over its most recent part.
pub(crate) const MAX_SAMPLES: usize = 50_000;

/// The most severe risk of a decision, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct TopRisk {
    pub category: String,
    pub severity: String,
    pub detail: String,
}

/// Who overrode a decision, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Override {
    pub by: String,
    pub reason: String,
    /// The automatic recommendation it replaced.
    pub superseded: String,
}

/// One listed decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Row {
    pub event_id: String,
    pub repo: String,
    pub head: String,
    pub head_short: String,
    pub risk_score: u8,
    pub recommendation: String,
    pub summary: String,
    pub top_risk: Option<TopRisk>,
    pub n_risks: usize,
    pub decided_at: String,
    pub cached: bool,
    pub cost_usd: Option<f64>,
    /// Merge event produced → decided; for decisions without `produced_at`, the
    /// slowest analyzer's wall time (they run in parallel). `None` for a person's
    /// decision.
    pub decision_ms: Option<u64>,
    /// Set when this row is a person's decision.
    pub approval: Option<Override>,
    /// Set when a person's decision later superseded this automatic one: who.
    pub superseded_by: Option<String>,
    pub offset: Option<u64>,
}

/// A point behind the windowed figures: one automatic decision.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at: OffsetDateTime,
    decision_ms: u64,
}

/// Running sums over the automatic decisions of one UTC day.
#[derive(Debug, Clone, Default, PartialEq)]
struct Today {
    day: Option<Date>,
    n_decisions: u64,
    n_cached: u64,
    cost_usd: f64,
    n_unpriced: u64,
    n_overrides: u64,
}

/// The events queue's backlog as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct QueueView {
    pub name: String,
    pub messages: Option<u64>,
    pub consumers: Option<u64>,
    /// Why the last poll failed; `None` when it worked.
    pub error: Option<String>,
    /// When the numbers were read (RFC 3339).
    pub read_at: Option<String>,
}

/// The headline figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Figures {
    pub decisions_per_minute: f64,
    pub rate_window_minutes: i64,
    pub p95_decision_ms: Option<u64>,
    pub n_latency_samples: usize,
    pub latency_window_minutes: i64,
    pub decisions_today: u64,
    pub cost_today_usd: f64,
    /// Decisions today whose cost is unknown (a price missing): not in the sum.
    pub n_unpriced_today: u64,
    pub cached_today: u64,
    pub cache_hit_ratio: Option<f64>,
    pub overrides_today: u64,
}

/// How far the page has read the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LogView {
    pub name: String,
    /// Whether the replay reached the log's tail as it was at start.
    pub caught_up: bool,
    pub next_offset: Option<u64>,
    pub n_read: u64,
}

/// Everything the page shows, at one instant (`/api/status`, each `/events`
/// message).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Snapshot {
    pub generated_at: String,
    pub figures: Figures,
    pub queue: QueueView,
    pub log: LogView,
    /// Newest first.
    pub decisions: Vec<Row>,
    pub capacity: usize,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Board {
    capacity: usize,
    rows: VecDeque<Row>,
    samples: VecDeque<Sample>,
    today: Today,
    queue: QueueView,
    log: LogView,
    /// The first offset of the log's last chunk when the page started; reading
    /// past it means the replay is done.
    replay_tail: Option<u64>,
}

impl Board {
    /// An empty board listing at most `capacity` decisions.
    pub(crate) fn new(capacity: usize, log_name: &str, queue_name: &str) -> Board {
        Board {
            capacity: capacity.max(1),
            rows: VecDeque::with_capacity(capacity.clamp(1, 1024)),
            samples: VecDeque::new(),
            today: Today::default(),
            queue: QueueView {
                name: queue_name.to_string(),
                messages: None,
                consumers: None,
                error: None,
                read_at: None,
            },
            log: LogView {
                name: log_name.to_string(),
                caught_up: false,
                next_offset: None,
                n_read: 0,
            },
            replay_tail: None,
        }
    }

    /// Where the replay ends (`None`: the log was empty, nothing to catch up).
    pub(crate) fn set_replay_tail(&mut self, tail: Option<u64>) {
        self.replay_tail = tail;
        self.log.caught_up = tail.is_none();
    }

    /// Takes one decision from the log at `offset`, `now` being the clock.
    /// Returns false for a copy of a decision already listed (a redelivered event
    /// republishes its stored decision), which changes nothing.
    pub(crate) fn add(
        &mut self,
        decision: &Decision,
        offset: Option<u64>,
        now: OffsetDateTime,
    ) -> bool {
        self.log.n_read += 1;
        if let Some(offset) = offset {
            self.log.next_offset = Some(offset.saturating_add(1));
            if self.replay_tail.is_some_and(|tail| offset >= tail) {
                self.log.caught_up = true;
            }
        }
        let row = row_of(decision, offset);
        if self.rows.iter().any(|listed| same_decision(listed, &row)) {
            return false;
        }
        let decided_at = OffsetDateTime::parse(&decision.decided_at, &Rfc3339).ok();
        self.roll_day(now);
        let is_today = decided_at.is_some_and(|at| Some(at.date()) == self.today.day);
        if let Some(approval) = &row.approval {
            for listed in self.rows.iter_mut() {
                if listed.event_id == row.event_id && listed.approval.is_none() {
                    listed.superseded_by = Some(approval.by.clone());
                }
            }
            if is_today {
                self.today.n_overrides += 1;
            }
        } else {
            if let (Some(at), Some(decision_ms)) = (decided_at, row.decision_ms) {
                self.samples.push_back(Sample { at, decision_ms });
                while self.samples.len() > MAX_SAMPLES {
                    self.samples.pop_front();
                }
                self.prune(now);
            }
            if is_today {
                self.today.n_decisions += 1;
                self.today.n_cached += u64::from(decision.cached);
                match decision.cost_usd {
                    Some(cost) if cost.is_finite() && cost >= 0.0 => self.today.cost_usd += cost,
                    _ => self.today.n_unpriced += 1,
                }
            }
        }
        self.rows.push_back(row);
        while self.rows.len() > self.capacity {
            self.rows.pop_front();
        }
        true
    }

    /// Records a queue-depth poll: the numbers, or why there are none.
    pub(crate) fn set_queue(&mut self, depth: Result<(u64, u64), String>, now: OffsetDateTime) {
        match depth {
            Ok((messages, consumers)) => {
                self.queue.messages = Some(messages);
                self.queue.consumers = Some(consumers);
                self.queue.error = None;
                self.queue.read_at = now.format(&Rfc3339).ok();
            }
            Err(error) => self.queue.error = Some(error),
        }
    }

    /// The headline figures at `now`.
    pub(crate) fn figures(&mut self, now: OffsetDateTime) -> Figures {
        self.roll_day(now);
        self.prune(now);
        let rate_from = now - time::Duration::seconds(RATE_WINDOW_SECS);
        let n_recent = self
            .samples
            .iter()
            .filter(|sample| sample.at > rate_from && sample.at <= now)
            .count();
        let mut latencies: Vec<u64> = self.samples.iter().map(|s| s.decision_ms).collect();
        let today = &self.today;
        Figures {
            decisions_per_minute: per_minute(n_recent, RATE_WINDOW_SECS),
            rate_window_minutes: RATE_WINDOW_SECS / 60,
            p95_decision_ms: p95(&mut latencies),
            n_latency_samples: latencies.len(),
            latency_window_minutes: LATENCY_WINDOW_SECS / 60,
            decisions_today: today.n_decisions,
            cost_today_usd: today.cost_usd,
            n_unpriced_today: today.n_unpriced,
            cached_today: today.n_cached,
            cache_hit_ratio: ratio(today.n_cached, today.n_decisions),
            overrides_today: today.n_overrides,
        }
    }

    /// Everything the page shows at `now`.
    pub(crate) fn snapshot(&mut self, now: OffsetDateTime) -> Snapshot {
        Snapshot {
            generated_at: now.format(&Rfc3339).unwrap_or_default(),
            figures: self.figures(now),
            queue: self.queue.clone(),
            log: self.log.clone(),
            decisions: self.rows.iter().rev().cloned().collect(),
            capacity: self.capacity,
        }
    }

    /// Starts a new day's sums when the UTC date changed.
    fn roll_day(&mut self, now: OffsetDateTime) {
        let day = now.to_offset(time::UtcOffset::UTC).date();
        if self.today.day != Some(day) {
            self.today = Today {
                day: Some(day),
                ..Today::default()
            };
        }
    }

    /// Forgets samples older than the latency window.
    fn prune(&mut self, now: OffsetDateTime) {
        let from = now - time::Duration::seconds(LATENCY_WINDOW_SECS);
        self.samples.retain(|sample| sample.at > from);
    }
}

/// The 95th percentile by the nearest-rank method (the smallest value with at
/// least 95 % of the values at or below it); `None` without values. Sorts
/// `values`.
pub(crate) fn p95(values: &mut [u64]) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    // rank = ceil(0.95 × n), in integers: (95n + 99) / 100.
    let rank = (values.len() * 95).div_ceil(100);
    values.get(rank.saturating_sub(1)).copied()
}

/// `n` events over `window_secs`, per minute.
pub(crate) fn per_minute(n: usize, window_secs: i64) -> f64 {
    if window_secs <= 0 {
        return 0.0;
    }
    n as f64 * 60.0 / window_secs as f64
}

/// `part / whole`, `None` when `whole` is 0 (no decision: no ratio, not 0 %).
pub(crate) fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn row_of(decision: &Decision, offset: Option<u64>) -> Row {
    let top_risk = decision
        .risks
        .iter()
        .min_by_key(|risk| severity_rank(risk.severity))
        .map(|risk| TopRisk {
            category: risk.category.as_str().to_string(),
            severity: risk.severity.as_str().to_string(),
            detail: risk.detail.clone(),
        });
    let approval = decision.approval.as_ref().map(|approval| Override {
        by: approval.by.clone(),
        reason: approval.reason.clone(),
        superseded: approval.superseded.as_str().to_string(),
    });
    let decision_ms = if approval.is_some() {
        None
    } else {
        Some(end_to_end_ms(decision).unwrap_or_else(|| {
            decision
                .verdicts
                .iter()
                .map(|verdict| verdict.latency_ms)
                .max()
                .unwrap_or(0)
        }))
    };
    Row {
        event_id: decision.event_id.clone(),
        repo: decision.repo.clone(),
        head: decision.head.clone(),
        head_short: decision.head.chars().take(8).collect(),
        risk_score: decision.risk_score,
        recommendation: decision.recommendation.as_str().to_string(),
        summary: decision.summary.clone(),
        top_risk,
        n_risks: decision.risks.len(),
        decided_at: decision.decided_at.clone(),
        cached: decision.cached,
        cost_usd: decision.cost_usd,
        decision_ms,
        approval,
        superseded_by: None,
        offset,
    }
}

/// From the merge event's `produced_at` to `decided_at`, when the decision carries
/// both (decisions of older workers do not: their analysis time stands in).
fn end_to_end_ms(decision: &Decision) -> Option<u64> {
    let produced = OffsetDateTime::parse(decision.produced_at.as_deref()?, &Rfc3339).ok()?;
    let decided = OffsetDateTime::parse(&decision.decided_at, &Rfc3339).ok()?;
    u64::try_from((decided - produced).whole_milliseconds()).ok()
}

/// Most severe first; `min_by_key` keeps the first of equals, and decisions list
/// their risks most severe first already.
fn severity_rank(severity: Severity) -> u8 {
    match severity {
        Severity::Critical => 0,
        Severity::High => 1,
        Severity::Medium => 2,
        Severity::Low => 3,
        Severity::Info => 4,
    }
}

/// A redelivery republishes the stored decision unchanged: same event, same
/// time, same author.
fn same_decision(a: &Row, b: &Row) -> bool {
    a.event_id == b.event_id && a.decided_at == b.decided_at && a.approval == b.approval
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use gate_core::{Approval, Category, Recommendation, Risk};
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-03-10 12:00:00 UTC);

    /// A decision decided `ago_secs` before NOW.
    fn decision(event_id: &str, ago_secs: i64, decision_ms: u64) -> Decision {
        let decided_at = (NOW - time::Duration::seconds(ago_secs))
            .format(&Rfc3339)
            .unwrap();
        let json = serde_json::json!({
            "schema_version": 1,
            "event_id": event_id,
            "repo": "acme/shop",
            "base": "a".repeat(40),
            "head": "0123456789abcdef0123456789abcdef01234567",
            "risk_score": 30,
            "band": "review",
            "recommendation": "deploy",
            "summary": "A small change.",
            "risks": [],
            "rollback_notes": [],
            "verdicts": [],
            "consensus": {"mode": "rules_only", "quorum": 0, "n_model_verdicts": 0, "agreed": true, "floor_applied": false},
            "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            "cost_usd": 0.0,
            "cached": false,
            "decided_at": decided_at,
            "context": {"n_files": 1, "n_commits": 1, "lines_added": 1, "lines_removed": 0, "packed_chars": 10, "n_omitted": 0},
        });
        let mut decision: Decision = serde_json::from_value(json).unwrap();
        let mut verdict = gate_core::Verdict {
            analyzer: "rules".into(),
            risk_score: 30,
            recommendation: Recommendation::Deploy,
            summary: String::new(),
            risks: Vec::new(),
            rollback_notes: Vec::new(),
            latency_ms: 3,
            usage: gate_core::Usage::default(),
        };
        decision.verdicts.push(verdict.clone());
        verdict.analyzer = "anthropic/claude".into();
        verdict.latency_ms = decision_ms;
        decision.verdicts.push(verdict);
        decision
    }

    fn board() -> Board {
        Board::new(3, "gate.decisions.log", "gate.merge-events")
    }

    #[test]
    fn p95_is_the_nearest_rank_and_none_without_values() {
        assert_eq!(p95(&mut []), None);
        assert_eq!(p95(&mut [7]), Some(7));
        let mut hundred: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(p95(&mut hundred), Some(95));
        // 20 values: rank ceil(19) = 19, the second largest.
        let mut twenty: Vec<u64> = (1..=20).map(|v| v * 10).collect();
        assert_eq!(p95(&mut twenty), Some(190));
        // 10 values: rank ceil(9.5) = 10, the largest.
        let mut ten: Vec<u64> = (1..=10).collect();
        assert_eq!(p95(&mut ten), Some(10));
    }

    #[test]
    fn the_rate_counts_automatic_decisions_of_the_last_five_minutes_only() {
        let mut board = Board::new(100, "log", "queue");
        for (n, ago) in [10, 60, 120, 299, 301, 900].into_iter().enumerate() {
            board.add(&decision(&format!("e{n}"), ago, 1_000), Some(n as u64), NOW);
        }
        let mut human = decision("e0", 5, 0);
        human.approval = Some(Approval {
            by: "alice".into(),
            reason: "reviewed".into(),
            at: human.decided_at.clone(),
            superseded: Recommendation::Hold,
        });
        board.add(&human, Some(6), NOW);
        let figures = board.figures(NOW);
        // Four within 300 s: 4 / 5 min.
        assert!(
            (figures.decisions_per_minute - 0.8).abs() < 1e-9,
            "{figures:?}"
        );
        assert_eq!(per_minute(0, RATE_WINDOW_SECS), 0.0);
        assert_eq!(per_minute(30, 60), 30.0);
        // Ten minutes later every one of them has left the window.
        let later = board.figures(NOW + time::Duration::minutes(10));
        assert_eq!(later.decisions_per_minute, 0.0);
    }

    #[test]
    fn p95_latency_is_over_the_last_hour_of_automatic_decisions() {
        let mut board = Board::new(5, "log", "queue");
        for n in 0..19u64 {
            board.add(&decision(&format!("fast{n}"), 60, 100 + n), Some(n), NOW);
        }
        board.add(&decision("slow", 30, 9_000), Some(19), NOW);
        board.add(&decision("old", 2 * 3600, 60_000), Some(20), NOW);
        let figures = board.figures(NOW);
        // 20 samples in the hour (the list keeps 5, the samples are not the list):
        // nearest rank 19 is the largest of the fast ones.
        assert_eq!(figures.n_latency_samples, 20);
        assert_eq!(figures.p95_decision_ms, Some(118));
        board.add(&decision("slow2", 10, 8_000), Some(21), NOW);
        assert_eq!(board.figures(NOW).p95_decision_ms, Some(8_000));
        assert_eq!(Board::new(1, "l", "q").figures(NOW).p95_decision_ms, None);
    }

    #[test]
    fn decision_time_runs_from_the_events_production_when_the_decision_carries_it() {
        let mut with_queue_wait = decision("queued", 60, 250);
        let decided = OffsetDateTime::parse(&with_queue_wait.decided_at, &Rfc3339).unwrap();
        with_queue_wait.produced_at = Some(
            (decided - time::Duration::seconds(4))
                .format(&Rfc3339)
                .unwrap(),
        );
        let row = row_of(&with_queue_wait, None);
        assert_eq!(row.decision_ms, Some(4_000));
        // Without produced_at (an older worker), the analysis time stands in.
        assert_eq!(
            row_of(&decision("old", 60, 250), None).decision_ms,
            Some(250)
        );
    }

    #[test]
    fn cost_today_sums_todays_priced_decisions_and_counts_the_unpriced() {
        let mut board = board();
        let mut yesterday = decision("y", 13 * 3600, 10);
        yesterday.cost_usd = Some(5.0);
        board.add(&yesterday, Some(0), NOW);
        for (n, cost) in [Some(0.012), Some(0.03), None, Some(0.0)]
            .into_iter()
            .enumerate()
        {
            let mut today = decision(&format!("t{n}"), 60, 10);
            today.cost_usd = cost;
            board.add(&today, Some(n as u64 + 1), NOW);
        }
        let figures = board.figures(NOW);
        assert_eq!(figures.decisions_today, 4);
        assert!(
            (figures.cost_today_usd - 0.042).abs() < 1e-12,
            "{figures:?}"
        );
        assert_eq!(figures.n_unpriced_today, 1);
        // A person's decision costs nothing more, whatever it carries.
        let mut human = decision("t0", 1, 0);
        human.cost_usd = Some(1.0);
        human.approval = Some(Approval {
            by: "bob".into(),
            reason: "hotfix".into(),
            at: human.decided_at.clone(),
            superseded: Recommendation::Block,
        });
        board.add(&human, Some(9), NOW);
        let figures = board.figures(NOW);
        assert!((figures.cost_today_usd - 0.042).abs() < 1e-12);
        assert_eq!(figures.overrides_today, 1);
        // At midnight UTC the day starts again.
        let tomorrow = datetime!(2026-03-11 00:00:01 UTC);
        assert_eq!(board.figures(tomorrow).cost_today_usd, 0.0);
        assert_eq!(board.figures(tomorrow).decisions_today, 0);
    }

    #[test]
    fn the_cache_hit_ratio_is_todays_cached_share_and_none_before_the_first_decision() {
        let mut board = board();
        assert_eq!(board.figures(NOW).cache_hit_ratio, None);
        for n in 0..4u64 {
            let mut d = decision(&format!("c{n}"), 30, 10);
            d.cached = n == 0;
            board.add(&d, Some(n), NOW);
        }
        assert_eq!(board.figures(NOW).cache_hit_ratio, Some(0.25));
        assert_eq!(board.figures(NOW).cached_today, 1);
        assert_eq!(ratio(0, 0), None);
        assert_eq!(ratio(3, 3), Some(1.0));
    }

    #[test]
    fn the_list_is_a_ring_newest_first_without_redelivered_copies() {
        let mut board = board();
        for n in 0..5u64 {
            let mut d = decision(&format!("r{n}"), 100 - n as i64, 10);
            d.risks.push(Risk {
                category: Category::Config,
                severity: Severity::Low,
                detail: "docs".into(),
                evidence: Vec::new(),
            });
            d.risks.push(Risk {
                category: Category::Schema,
                severity: Severity::Critical,
                detail: "DROP TABLE customers".into(),
                evidence: Vec::new(),
            });
            assert!(board.add(&d, Some(n), NOW));
        }
        let copy = decision("r4", 96, 10);
        assert!(
            !board.add(&copy, Some(5), NOW),
            "a redelivered copy is not listed twice"
        );
        let snapshot = board.snapshot(NOW);
        let ids: Vec<&str> = snapshot
            .decisions
            .iter()
            .map(|r| r.event_id.as_str())
            .collect();
        assert_eq!(ids, ["r4", "r3", "r2"]);
        let top = snapshot.decisions[0].top_risk.as_ref().unwrap();
        assert_eq!(
            (top.category.as_str(), top.severity.as_str()),
            ("schema", "critical")
        );
        assert_eq!(snapshot.decisions[0].head_short, "01234567");
        assert_eq!(snapshot.log.next_offset, Some(6));
        assert_eq!(
            snapshot.figures.decisions_today, 5,
            "the copy is not counted"
        );
    }

    #[test]
    fn an_override_is_listed_as_such_and_marks_the_decision_it_supersedes() {
        let mut board = board();
        board.set_replay_tail(Some(1));
        board.add(&decision("held", 60, 10), Some(0), NOW);
        assert!(!board.snapshot(NOW).log.caught_up);
        let mut human = decision("held", 5, 0);
        human.recommendation = Recommendation::Deploy;
        human.approval = Some(Approval {
            by: "alice".into(),
            reason: "rollback plan reviewed".into(),
            at: human.decided_at.clone(),
            superseded: Recommendation::Hold,
        });
        board.add(&human, Some(1), NOW);
        let snapshot = board.snapshot(NOW);
        assert!(snapshot.log.caught_up);
        let [newest, older] = &snapshot.decisions[..] else {
            panic!("{snapshot:?}")
        };
        assert_eq!(newest.approval.as_ref().unwrap().by, "alice");
        assert_eq!(newest.approval.as_ref().unwrap().superseded, "hold");
        assert_eq!(newest.decision_ms, None);
        assert_eq!(older.superseded_by.as_deref(), Some("alice"));
        assert_eq!(snapshot.figures.decisions_today, 1);
        assert_eq!(snapshot.figures.n_latency_samples, 1);
    }
}
