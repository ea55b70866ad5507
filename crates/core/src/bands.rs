//! Risk bands: the thresholds that turn a 0–100 score into a recommendation.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Recommendation;

/// Which band a score falls in. Two bands deploy; they differ in review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// Deploy automatically (default 0–25).
    Auto,
    /// Deploy, with a standard review (default 26–50).
    Review,
    /// Hold for a human (default 51–75).
    Hold,
    /// Block (default 76–100).
    Block,
}

impl Band {
    /// What the orchestrator is told for a score in this band.
    pub fn recommendation(self) -> Recommendation {
        match self {
            Band::Auto | Band::Review => Recommendation::Deploy,
            Band::Hold => Recommendation::Hold,
            Band::Block => Recommendation::Block,
        }
    }

    /// The wire name of the band.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Auto => "auto",
            Band::Review => "review",
            Band::Hold => "hold",
            Band::Block => "block",
        }
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lowest score of each band above `auto`. Configurable; defaults are the design's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bands {
    /// First score of the review band (default 26).
    pub review_from: u8,
    /// First score of the hold band (default 51).
    pub hold_from: u8,
    /// First score of the block band (default 76).
    pub block_from: u8,
}

impl Default for Bands {
    fn default() -> Self {
        Bands {
            review_from: 26,
            hold_from: 51,
            block_from: 76,
        }
    }
}

/// Thresholds that do not describe four ordered bands inside 0–100.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bands must satisfy 0 < review_from < hold_from < block_from <= 100, got review_from={review_from}, hold_from={hold_from}, block_from={block_from}")]
pub struct BandsError {
    /// The offending review threshold.
    pub review_from: u8,
    /// The offending hold threshold.
    pub hold_from: u8,
    /// The offending block threshold.
    pub block_from: u8,
}

impl Bands {
    /// Checks that the thresholds are ordered and inside 1–100.
    pub fn validate(&self) -> Result<(), BandsError> {
        let ok = 0 < self.review_from
            && self.review_from < self.hold_from
            && self.hold_from < self.block_from
            && self.block_from <= 100;
        if ok {
            Ok(())
        } else {
            Err(BandsError {
                review_from: self.review_from,
                hold_from: self.hold_from,
                block_from: self.block_from,
            })
        }
    }

    /// The band a score falls in. Scores above 100 count as 100.
    pub fn band(&self, score: u8) -> Band {
        let score = score.min(100);
        if score >= self.block_from {
            Band::Block
        } else if score >= self.hold_from {
            Band::Hold
        } else if score >= self.review_from {
            Band::Review
        } else {
            Band::Auto
        }
    }

    /// The recommendation for a score.
    pub fn recommendation(&self, score: u8) -> Recommendation {
        self.band(score).recommendation()
    }

    /// The lowest score inside `band`, used to lift a score to a floor.
    pub fn lowest_score(&self, band: Band) -> u8 {
        match band {
            Band::Auto => 0,
            Band::Review => self.review_from,
            Band::Hold => self.hold_from,
            Band::Block => self.block_from,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_bands_match_the_design() {
        let bands = Bands::default();
        assert_eq!(bands.band(0), Band::Auto);
        assert_eq!(bands.band(25), Band::Auto);
        assert_eq!(bands.band(26), Band::Review);
        assert_eq!(bands.band(50), Band::Review);
        assert_eq!(bands.band(51), Band::Hold);
        assert_eq!(bands.band(75), Band::Hold);
        assert_eq!(bands.band(76), Band::Block);
        assert_eq!(bands.band(100), Band::Block);
        assert_eq!(bands.band(255), Band::Block);
        assert_eq!(bands.recommendation(50), Recommendation::Deploy);
        assert_eq!(bands.recommendation(51), Recommendation::Hold);
    }

    #[test]
    fn unordered_bands_are_refused() {
        let bands = Bands {
            review_from: 40,
            hold_from: 30,
            block_from: 90,
        };
        let err = bands.validate().unwrap_err();
        assert!(err.to_string().contains("hold_from=30"), "{err}");
        assert!(Bands {
            review_from: 0,
            hold_from: 30,
            block_from: 90
        }
        .validate()
        .is_err());
        assert!(Bands {
            review_from: 10,
            hold_from: 30,
            block_from: 101
        }
        .validate()
        .is_err());
    }

    #[test]
    fn each_severity_floor_lands_in_its_band_under_defaults() {
        use crate::Severity;
        let bands = Bands::default();
        assert_eq!(bands.band(Severity::Low.floor_score()), Band::Auto);
        assert_eq!(bands.band(Severity::Medium.floor_score()), Band::Review);
        assert_eq!(bands.band(Severity::High.floor_score()), Band::Hold);
        assert_eq!(bands.band(Severity::Critical.floor_score()), Band::Block);
    }
}
