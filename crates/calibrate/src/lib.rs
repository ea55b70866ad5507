//! Calibration: how the gate's decisions related to what then happened to the
//! changes, per risk category and band. `deploy-gate calibrate` feeds it every
//! stored decision with its outcome reports and prints the [`Report`] as a table
//! or as JSON.
//!
//! The questions it answers: of the changes a band let through, how many were
//! rolled back or caused an incident (is the band too lenient?), and how many holds
//! did a person override to deploy (is it too strict?).
//!
//! What each count means, per decision (a decision counts once in its band's row,
//! once in the row of each category among its risks, `none` when it has none, and
//! once in the `all` rows):
//!
//! - **band**: the band of the automatic decision, also when a person superseded
//!   it (read from the superseded decision while it is kept, otherwise from the
//!   approval's superseded recommendation);
//! - **deployed**: the change went out — an outcome `deployed`, `rolled_back` or
//!   `incident` was reported (a rollback or an incident implies the deploy);
//! - **rolled_back** / **incidents**: such an outcome was reported;
//! - **holds_overridden**: a person's decision replaced an automatic hold or block
//!   with deploy;
//! - **rollback_rate**: rolled_back / deployed (none when nothing went out).
//!
//! Architecture invariant: pure. No I/O, no clock: the caller reads the store.

use std::collections::{BTreeMap, BTreeSet};

use gate_core::{Band, Bands, Category, Decision, Outcome, OutcomeResult, Recommendation};
use serde::Serialize;

/// The version of the report's JSON shape.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// Bands in report order.
const BANDS: [Band; 4] = [Band::Auto, Band::Review, Band::Hold, Band::Block];

/// Which decisions a row counts, by category. Order is report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CategoryKey {
    All,
    Category(Category),
    /// Decisions without any risk.
    None,
}

impl CategoryKey {
    fn name(self) -> &'static str {
        match self {
            CategoryKey::All => "all",
            CategoryKey::Category(category) => category.as_str(),
            CategoryKey::None => "none",
        }
    }
}

/// Which decisions a row counts, by band. Order is report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum BandKey {
    Band(Band),
    All,
}

impl BandKey {
    fn name(self) -> &'static str {
        match self {
            BandKey::Band(band) => band.as_str(),
            BandKey::All => "all",
        }
    }
}

/// The counts of one row (see the crate documentation for what each means).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Decisions in the row.
    pub decisions: u64,
    /// Of those, changes that went out.
    pub deployed: u64,
    /// Of those, changes rolled back.
    pub rolled_back: u64,
    /// Of those, changes that caused an incident.
    pub incidents: u64,
    /// Automatic holds or blocks a person overrode to deploy.
    pub holds_overridden: u64,
}

impl Counts {
    /// Rolled back per deployed change; `None` when nothing went out.
    pub fn rollback_rate(&self) -> Option<f64> {
        (self.deployed > 0).then(|| self.rolled_back as f64 / self.deployed as f64)
    }

    fn add(&mut self, fate: &Fate) {
        self.decisions += 1;
        self.deployed += u64::from(fate.deployed);
        self.rolled_back += u64::from(fate.rolled_back);
        self.incidents += u64::from(fate.incident);
        self.holds_overridden += u64::from(fate.hold_overridden);
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// A category (`schema`, …), `none` (decisions without risks) or `all`.
    pub category: String,
    /// A band (`auto`, `review`, `hold`, `block`) or `all`.
    pub band: String,
    /// What happened to the row's decisions.
    #[serde(flatten)]
    pub counts: Counts,
    /// `rolled_back / deployed`; `null` when nothing went out.
    pub rollback_rate: Option<f64>,
}

/// The calibration report: `deploy-gate calibrate --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Decisions read.
    pub n_decisions: u64,
    /// Of those, decisions with at least one outcome reported.
    pub n_with_outcome: u64,
    /// Stored decisions or outcomes that could not be read (another version's
    /// JSON) and are not counted.
    pub n_unreadable: u64,
    /// `all` rows for every band and in total, then, per category with decisions
    /// (then `none`), a row per band that has decisions and the category's total.
    pub rows: Vec<Row>,
}

/// What happened to one decision's change.
struct Fate {
    deployed: bool,
    rolled_back: bool,
    incident: bool,
    hold_overridden: bool,
}

/// Accumulates decisions; [`Calibration::report`] reads the result. Memory holds
/// the rows, never the decisions.
#[derive(Debug, Clone)]
pub struct Calibration {
    bands: Bands,
    rows: BTreeMap<(CategoryKey, BandKey), Counts>,
    n_decisions: u64,
    n_with_outcome: u64,
    n_unreadable: u64,
}

impl Calibration {
    /// An empty calibration. `bands` only place a person's decision whose automatic
    /// one has expired and which superseded a deploy (auto or review by score).
    pub fn new(bands: Bands) -> Calibration {
        Calibration {
            bands,
            rows: BTreeMap::new(),
            n_decisions: 0,
            n_with_outcome: 0,
            n_unreadable: 0,
        }
    }

    /// Counts one decision: the event's stored decision, the automatic decision a
    /// person's one superseded (when still kept), and the outcomes reported.
    pub fn add(&mut self, decision: &Decision, automatic: Option<&Decision>, outcomes: &[Outcome]) {
        let has = |result: OutcomeResult| outcomes.iter().any(|o| o.result == result);
        let hold_overridden = decision.approval.as_ref().is_some_and(|approval| {
            approval.superseded != Recommendation::Deploy
                && decision.recommendation == Recommendation::Deploy
        });
        let fate = Fate {
            deployed: !outcomes.is_empty(),
            rolled_back: has(OutcomeResult::RolledBack),
            incident: has(OutcomeResult::Incident),
            hold_overridden,
        };
        let band = BandKey::Band(self.automatic_band(decision, automatic));
        let analysed = automatic
            .filter(|auto| auto.approval.is_none())
            .unwrap_or(decision);
        let mut categories: BTreeSet<CategoryKey> = analysed
            .risks
            .iter()
            .map(|risk| CategoryKey::Category(risk.category))
            .collect();
        if categories.is_empty() {
            categories.insert(CategoryKey::None);
        }
        categories.insert(CategoryKey::All);
        for category in categories {
            for band in [band, BandKey::All] {
                self.rows.entry((category, band)).or_default().add(&fate);
            }
        }
        self.n_decisions += 1;
        self.n_with_outcome += u64::from(!outcomes.is_empty());
    }

    /// Records stored values that could not be read, so the report says how many
    /// it left out.
    pub fn add_unreadable(&mut self, n: u64) {
        self.n_unreadable += n;
    }

    /// The report as it stands.
    pub fn report(&self) -> Report {
        let mut rows = Vec::new();
        let row = |category: CategoryKey, band: BandKey, counts: Counts| Row {
            category: category.name().to_string(),
            band: band.name().to_string(),
            counts,
            rollback_rate: counts.rollback_rate(),
        };
        for band in BANDS.map(BandKey::Band).into_iter().chain([BandKey::All]) {
            let counts = self
                .rows
                .get(&(CategoryKey::All, band))
                .copied()
                .unwrap_or_default();
            rows.push(row(CategoryKey::All, band, counts));
        }
        for (&(category, band), &counts) in &self.rows {
            if category != CategoryKey::All {
                rows.push(row(category, band, counts));
            }
        }
        Report {
            schema_version: REPORT_SCHEMA_VERSION,
            n_decisions: self.n_decisions,
            n_with_outcome: self.n_with_outcome,
            n_unreadable: self.n_unreadable,
            rows,
        }
    }

    /// The band the gate itself gave: the automatic decision's.
    fn automatic_band(&self, decision: &Decision, automatic: Option<&Decision>) -> Band {
        let Some(approval) = &decision.approval else {
            return decision.band;
        };
        if let Some(auto) = automatic.filter(|auto| auto.approval.is_none()) {
            return auto.band;
        }
        match approval.superseded {
            Recommendation::Hold => Band::Hold,
            Recommendation::Block => Band::Block,
            Recommendation::Deploy => match self.bands.band(decision.risk_score) {
                Band::Auto => Band::Auto,
                _ => Band::Review,
            },
        }
    }
}

impl Report {
    /// The report as an aligned text table, with a line saying what was read.
    pub fn table(&self) -> String {
        const HEADER: [&str; 8] = [
            "category",
            "band",
            "decisions",
            "deployed",
            "rolled_back",
            "incidents",
            "holds_overridden",
            "rollback_rate",
        ];
        let cells: Vec<[String; 8]> = self
            .rows
            .iter()
            .map(|row| {
                let c = &row.counts;
                [
                    row.category.clone(),
                    row.band.clone(),
                    c.decisions.to_string(),
                    c.deployed.to_string(),
                    c.rolled_back.to_string(),
                    c.incidents.to_string(),
                    c.holds_overridden.to_string(),
                    row.rollback_rate
                        .map_or_else(|| "-".to_string(), |rate| format!("{:.1}%", rate * 100.0)),
                ]
            })
            .collect();
        let mut widths = HEADER.map(str::len);
        for line in &cells {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut push_line = |line: &[&str]| {
            let mut text = String::new();
            for (idx, (cell, width)) in line.iter().zip(widths).enumerate() {
                if idx > 0 {
                    text.push_str("  ");
                }
                // Names left, numbers right.
                if idx < 2 {
                    text.push_str(&format!("{cell:<width$}"));
                } else {
                    text.push_str(&format!("{cell:>width$}"));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        push_line(&HEADER);
        for line in &cells {
            let line: Vec<&str> = line.iter().map(String::as_str).collect();
            push_line(&line);
        }
        let plural = if self.n_decisions == 1 { "" } else { "s" };
        out.push_str(&format!(
            "\n{} decision{plural}, {} with an outcome reported; rollback_rate = rolled_back / deployed.\n",
            self.n_decisions, self.n_with_outcome
        ));
        if self.n_unreadable > 0 {
            out.push_str(&format!(
                "{} stored values could not be read (another version's format) and are not counted.\n",
                self.n_unreadable
            ));
        }
        out
    }

    /// The report as pretty JSON, ending with a newline.
    pub fn json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string());
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use gate_core::{Approval, Consensus, ContextSummary, Evidence, Risk, Severity, Usage};

    use super::*;

    fn decision(band: Band, categories: &[Category]) -> Decision {
        Decision {
            schema_version: gate_core::DECISION_SCHEMA_VERSION,
            event_id: "ev".into(),
            repo: "acme/shop".into(),
            base: "a".repeat(40),
            head: "b".repeat(40),
            risk_score: match band {
                Band::Auto => 10,
                Band::Review => 30,
                Band::Hold => 60,
                Band::Block => 90,
            },
            band,
            recommendation: band.recommendation(),
            summary: String::new(),
            risks: categories
                .iter()
                .map(|category| Risk {
                    category: *category,
                    severity: Severity::High,
                    detail: "x".into(),
                    evidence: vec![Evidence {
                        file: "f".into(),
                        line: None,
                        excerpt: None,
                    }],
                })
                .collect(),
            rollback_notes: vec![],
            verdicts: vec![],
            consensus: Consensus {
                mode: "rules_only".into(),
                quorum: 0,
                n_model_verdicts: 0,
                agreed: true,
                floor_applied: false,
                notes: vec![],
            },
            usage: Usage::default(),
            cost_usd: Some(0.0),
            cached: false,
            decided_at: "2026-01-01T00:00:00Z".into(),
            produced_at: None,
            context: ContextSummary {
                n_files: 1,
                n_commits: 1,
                lines_added: 1,
                lines_removed: 0,
                packed_chars: 1,
                n_omitted: 0,
                omitted: vec![],
            },
            approval: None,
        }
    }

    fn outcome(result: OutcomeResult) -> Outcome {
        Outcome::new("ev", result, "", time::OffsetDateTime::UNIX_EPOCH).expect("valid outcome")
    }

    fn row<'r>(report: &'r Report, category: &str, band: &str) -> &'r Counts {
        &report
            .rows
            .iter()
            .find(|r| r.category == category && r.band == band)
            .unwrap_or_else(|| panic!("no row {category}/{band}"))
            .counts
    }

    #[test]
    fn a_rollback_or_an_incident_counts_as_a_deploy() {
        let mut calibration = Calibration::new(Bands::default());
        let d = decision(Band::Review, &[Category::Deps]);
        calibration.add(&d, None, &[outcome(OutcomeResult::RolledBack)]);
        calibration.add(&d, None, &[outcome(OutcomeResult::Incident)]);
        calibration.add(&d, None, &[]);
        let report = calibration.report();
        let deps = row(&report, "deps", "review");
        assert_eq!(
            *deps,
            Counts {
                decisions: 3,
                deployed: 2,
                rolled_back: 1,
                incidents: 1,
                holds_overridden: 0
            }
        );
        assert_eq!(deps.rollback_rate(), Some(0.5));
        assert_eq!(report.n_with_outcome, 2);
    }

    #[test]
    fn an_overridden_hold_counts_in_the_automatic_band_even_once_that_decision_expired() {
        let mut calibration = Calibration::new(Bands::default());
        let automatic = decision(Band::Hold, &[Category::Schema]);
        let mut human = automatic.clone();
        human.recommendation = Recommendation::Deploy;
        human.band = Band::Review;
        human.approval = Some(Approval {
            by: "ana".into(),
            reason: "checked".into(),
            at: "2026-01-01T01:00:00Z".into(),
            superseded: Recommendation::Hold,
        });
        calibration.add(&human, Some(&automatic), &[]);
        calibration.add(&human, None, &[]);
        let report = calibration.report();
        assert_eq!(row(&report, "schema", "hold").holds_overridden, 2);
        assert!(report
            .rows
            .iter()
            .all(|r| r.band != "review" || r.counts.decisions == 0));
    }

    #[test]
    fn an_empty_store_still_prints_every_band() {
        let report = Calibration::new(Bands::default()).report();
        let bands: Vec<&str> = report.rows.iter().map(|r| r.band.as_str()).collect();
        assert_eq!(bands, ["auto", "review", "hold", "block", "all"]);
        assert!(report.rows.iter().all(|r| r.rollback_rate.is_none()));
        assert!(report
            .table()
            .contains("0 decisions, 0 with an outcome reported"));
    }
}
