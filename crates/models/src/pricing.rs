//! What models cost, when they retire, and how long a prompt must be to be cached.
//! All three are tables in config with defaults here, because they change faster
//! than releases.

use std::collections::BTreeMap;

use gate_core::Usage;
use serde::{Deserialize, Serialize};
use time::Date;

/// Prices of one model in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Uncached input.
    pub input: f64,
    /// Output.
    pub output: f64,
    /// Input written to the cache with the 5-minute TTL (OpenAI: same as `input`).
    pub cache_write_5m: f64,
    /// Input written to the cache with the 1-hour TTL.
    pub cache_write_1h: f64,
    /// Input read from the cache.
    pub cache_read: f64,
}

impl Price {
    const fn anthropic(input: f64, output: f64) -> Price {
        Price {
            input,
            output,
            cache_write_5m: input * 1.25,
            cache_write_1h: input * 2.0,
            cache_read: input * 0.1,
        }
    }

    const fn openai(input: f64, output: f64, cache_read: f64) -> Price {
        Price {
            input,
            output,
            cache_write_5m: input,
            cache_write_1h: input,
            cache_read,
        }
    }

    /// The cost of one call. `cache_write_1h_tokens` is the part of
    /// `usage.cache_creation_input_tokens` written with the 1-hour TTL.
    pub fn cost(&self, usage: &Usage, cache_write_1h_tokens: u64) -> f64 {
        let write_1h = cache_write_1h_tokens.min(usage.cache_creation_input_tokens);
        let write_5m = usage.cache_creation_input_tokens - write_1h;
        let per_token = |tokens: u64, per_mtok: f64| tokens as f64 * per_mtok / 1_000_000.0;
        per_token(usage.input_tokens, self.input)
            + per_token(usage.output_tokens, self.output)
            + per_token(write_5m, self.cache_write_5m)
            + per_token(write_1h, self.cache_write_1h)
            + per_token(usage.cache_read_input_tokens, self.cache_read)
    }
}

/// Prices by model id. A dated id (`claude-sonnet-4-5-20250929`) falls back to its
/// undated alias; a model with no entry has an unknown cost, never 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PriceTable(pub BTreeMap<String, Price>);

impl Default for PriceTable {
    fn default() -> Self {
        let entries = [
            ("claude-opus-4-5", Price::anthropic(5.0, 25.0)),
            ("claude-sonnet-4-6", Price::anthropic(3.0, 15.0)),
            ("claude-sonnet-4-5", Price::anthropic(3.0, 15.0)),
            ("claude-haiku-4-5", Price::anthropic(1.0, 5.0)),
            ("gpt-4o", Price::openai(2.5, 10.0, 1.25)),
            ("gpt-4o-mini", Price::openai(0.15, 0.6, 0.075)),
            ("gpt-4.1", Price::openai(2.0, 8.0, 0.5)),
            ("gpt-4.1-mini", Price::openai(0.4, 1.6, 0.1)),
            ("gpt-5", Price::openai(1.25, 10.0, 0.125)),
            ("gpt-5-mini", Price::openai(0.25, 2.0, 0.025)),
        ];
        PriceTable(
            entries
                .into_iter()
                .map(|(model, price)| (model.to_string(), price))
                .collect(),
        )
    }
}

impl PriceTable {
    /// The price of a model, by exact id or by the longest known id it extends with a
    /// date suffix.
    pub fn get(&self, model: &str) -> Option<&Price> {
        if let Some(price) = self.0.get(model) {
            return Some(price);
        }
        self.0
            .iter()
            .filter(|(known, _)| {
                model.strip_prefix(known.as_str()).is_some_and(|rest| {
                    rest.strip_prefix('-').is_some_and(|suffix| {
                        !suffix.is_empty() && suffix.chars().all(|c| c.is_ascii_digit() || c == '-')
                    })
                })
            })
            .max_by_key(|(known, _)| known.len())
            .map(|(_, price)| price)
    }

    /// The cost of a call, `None` when the model has no price.
    pub fn cost(&self, model: &str, usage: &Usage, cache_write_1h_tokens: u64) -> Option<f64> {
        self.get(model)
            .map(|price| price.cost(usage, cache_write_1h_tokens))
    }
}

/// When a model id stops working, and what replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deprecation {
    /// Model id (undated alias; dated ids match it too).
    pub model: String,
    /// Last day the model answers, `YYYY-MM-DD`.
    pub end_of_life: String,
    /// The model to move to.
    #[serde(default)]
    pub replacement: Option<String>,
}

/// Known retirements, for a warning at start-up before a model stops answering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeprecationTable(pub Vec<Deprecation>);

impl Default for DeprecationTable {
    fn default() -> Self {
        DeprecationTable(vec![Deprecation {
            model: "claude-sonnet-4-5".to_string(),
            end_of_life: "2026-11-30".to_string(),
            replacement: Some("claude-sonnet-4-6".to_string()),
        }])
    }
}

impl DeprecationTable {
    /// One warning per configured model that is past its end of life or within
    /// `warn_days` of it, as of `today`.
    pub fn warnings<'a>(
        &self,
        models: impl IntoIterator<Item = &'a str>,
        today: Date,
        warn_days: i64,
    ) -> Vec<String> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let mut warnings = Vec::new();
        for model in models {
            let Some(entry) = self.0.iter().find(|entry| {
                model == entry.model || model.starts_with(&format!("{}-", entry.model))
            }) else {
                continue;
            };
            let instead = entry
                .replacement
                .as_deref()
                .map(|r| format!("; move to {r}"))
                .unwrap_or_default();
            match Date::parse(&entry.end_of_life, &format) {
                Err(_) => warnings.push(format!(
                    "deprecation table: `{}` has an unreadable end_of_life `{}` (want YYYY-MM-DD)",
                    entry.model, entry.end_of_life
                )),
                Ok(eol) => {
                    let days_left = (eol - today).whole_days();
                    if days_left < 0 {
                        warnings.push(format!("model {model} reached its end of life on {eol}: calls will fail{instead}"));
                    } else if days_left <= warn_days {
                        warnings.push(format!("model {model} reaches its end of life on {eol}, in {days_left} days{instead}"));
                    }
                }
            }
        }
        warnings
    }
}

/// The shortest prefix (in tokens) Anthropic caches for a model, when known.
pub fn anthropic_min_cacheable_tokens(model: &str) -> Option<u64> {
    let table: [(&str, u64); 6] = [
        ("claude-opus-4-5", 4_096),
        ("claude-opus-4-6", 4_096),
        ("claude-haiku-4-5", 4_096),
        ("claude-sonnet-4-6", 2_048),
        ("claude-sonnet-4-5", 1_024),
        ("claude-sonnet-4", 1_024),
    ];
    table
        .iter()
        .find(|(known, _)| model == *known || model.starts_with(&format!("{known}-")))
        .map(|(_, min)| *min)
}

/// A start-up message when the static prompt is too short to be cached on `model`,
/// with the numbers; `None` when it is long enough or the minimum is unknown.
pub fn cacheability_warning(model: &str, static_tokens: u64) -> Option<String> {
    let min = anthropic_min_cacheable_tokens(model)?;
    (static_tokens < min).then(|| {
        format!(
            "the static prompt is about {static_tokens} tokens, below the {min} tokens {model} needs to cache it: \
             every analysis pays full input price; add organisation policy or incident notes, or pick a model with a lower minimum"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_counts_each_kind_of_token_at_its_price() {
        let table = PriceTable::default();
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_creation_input_tokens: 1_000_000,
            cache_read_input_tokens: 1_000_000,
            cost_usd: None,
        };
        let cost = table.cost("claude-sonnet-4-5", &usage, 0).unwrap();
        assert!((cost - (3.0 + 1.5 + 3.75 + 0.3)).abs() < 1e-9, "{cost}");
        let cost_1h = table
            .cost("claude-sonnet-4-5-20250929", &usage, 1_000_000)
            .unwrap();
        assert!(
            (cost_1h - (3.0 + 1.5 + 6.0 + 0.3)).abs() < 1e-9,
            "{cost_1h}"
        );
    }

    #[test]
    fn an_unknown_model_has_no_cost_rather_than_zero() {
        assert_eq!(
            PriceTable::default().cost("llama3.1:8b", &Usage::default(), 0),
            None
        );
        assert_eq!(
            PriceTable::default().get("gpt-4o-mini").map(|p| p.input),
            Some(0.15)
        );
    }

    #[test]
    fn sonnet_4_5_warns_before_and_after_its_end_of_life() {
        let table = DeprecationTable::default();
        let before = table.warnings(
            ["claude-sonnet-4-5"],
            time::macros::date!(2026 - 11 - 01),
            60,
        );
        assert!(before[0].contains("in 29 days"), "{before:?}");
        let after = table.warnings(
            ["claude-sonnet-4-5-20250929"],
            time::macros::date!(2026 - 12 - 01),
            60,
        );
        assert!(after[0].contains("reached its end of life"), "{after:?}");
        assert!(table
            .warnings(
                ["claude-sonnet-4-6"],
                time::macros::date!(2026 - 12 - 01),
                60
            )
            .is_empty());
    }

    #[test]
    fn a_short_static_prompt_is_reported_with_the_numbers() {
        let warning = cacheability_warning("claude-haiku-4-5", 2_500).unwrap();
        assert!(
            warning.contains("2500") && warning.contains("4096"),
            "{warning}"
        );
        assert!(cacheability_warning("claude-sonnet-4-5", 2_500).is_none());
    }
}
