//! The compiled rule tables: per file scope, one Aho-Corasick automaton over the
//! triggers of the rules that apply (case-insensitive, the per-line prefilter); per
//! rule, the confirming and cancelling regexes.
//!
//! Everything is compiled lazily and once per process: an automaton when the first
//! file of its scope streams past, a regex when its rule first wakes up. A typical
//! diff wakes few rules, so a `deploy-gate check` does not pay for 200 regexes.

use std::ops::Range;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::Regex;

use crate::table::{scope, LineRule, Side, GENERAL, MIGRATION};

/// A rule's regexes, compiled on first use.
struct LazyRegexes {
    confirm: OnceLock<Option<Regex>>,
    cancel: OnceLock<Option<Regex>>,
}

fn compile(pattern: &str) -> Option<Regex> {
    (!pattern.is_empty())
        .then(|| Regex::new(pattern).unwrap_or_else(|e| panic!("rule regex {pattern:?}: {e}")))
}

/// One rule table (general or migration) with its lazily compiled parts.
pub(crate) struct RuleSet {
    pub rules: &'static [LineRule],
    regexes: Vec<LazyRegexes>,
    /// One automaton per file scope, built on first use.
    automata: Vec<(u8, OnceLock<Automaton>)>,
    /// Lines shorter than the shortest trigger cannot wake any rule.
    min_trigger_len: usize,
}

/// The triggers of the rules that apply to one scope.
struct Automaton {
    automaton: AhoCorasick,
    /// Trigger pattern index → rule index in the set.
    trigger_rule: Vec<usize>,
}

/// A rule confirmed on a line, with the span that matched.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    /// Index of the rule in its set.
    pub rule: usize,
    pub span: Range<usize>,
}

impl RuleSet {
    fn new(rules: &'static [LineRule], scopes: &[u8]) -> RuleSet {
        assert!(
            rules.len() <= 128,
            "a table holds at most 128 rules (the hit mask is a u128)"
        );
        RuleSet {
            rules,
            regexes: rules
                .iter()
                .map(|_| LazyRegexes {
                    confirm: OnceLock::new(),
                    cancel: OnceLock::new(),
                })
                .collect(),
            automata: scopes.iter().map(|s| (*s, OnceLock::new())).collect(),
            min_trigger_len: rules
                .iter()
                .flat_map(|r| r.triggers)
                .map(|t| t.len())
                .min()
                .unwrap_or(0),
        }
    }

    fn automaton(&self, scope: u8) -> &Automaton {
        let cell = self
            .automata
            .iter()
            .find(|(s, _)| *s == scope)
            .map(|(_, cell)| cell)
            .unwrap_or_else(|| panic!("no automaton for scope {scope:#b}"));
        cell.get_or_init(|| {
            let mut triggers = Vec::new();
            let mut trigger_rule = Vec::new();
            for (idx, rule) in self
                .rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.scope & scope != 0)
            {
                for trigger in rule.triggers {
                    triggers.push(*trigger);
                    trigger_rule.push(idx);
                }
            }
            let automaton = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .kind(Some(AhoCorasickKind::DFA))
                .build(&triggers)
                .expect("rule triggers build an automaton");
            Automaton {
                automaton,
                trigger_rule,
            }
        })
    }

    /// The confirming regex of a rule, for callers that need every match on a line.
    pub(crate) fn confirm(&self, rule: usize) -> Option<&Regex> {
        self.regexes[rule]
            .confirm
            .get_or_init(|| compile(self.rules[rule].pattern))
            .as_ref()
    }

    fn cancel(&self, rule: usize) -> Option<&Regex> {
        self.regexes[rule]
            .cancel
            .get_or_init(|| compile(self.rules[rule].unless))
            .as_ref()
    }

    /// Fills `hits` with the rules of `scope` confirmed on `text`, a line on the
    /// added side or not. The common case — no trigger on the line — costs one
    /// automaton pass.
    pub(crate) fn scan(&self, text: &str, added: bool, scope: u8, hits: &mut Vec<Hit>) {
        hits.clear();
        if text.len() < self.min_trigger_len {
            return;
        }
        let automaton = self.automaton(scope);
        let Some(first) = automaton.automaton.find(text) else {
            return;
        };
        let mut mask: u128 = 1 << automaton.trigger_rule[first.pattern().as_usize()];
        for m in automaton.automaton.find_overlapping_iter(text) {
            mask |= 1 << automaton.trigger_rule[m.pattern().as_usize()];
        }
        while mask != 0 {
            let idx = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let rule = &self.rules[idx];
            if rule.scope & scope == 0 || (rule.side == Side::Added && !added) {
                continue;
            }
            let span = match self.confirm(idx) {
                Some(re) => match re.find(text) {
                    Some(m) => m.range(),
                    None => continue,
                },
                None => 0..text.len(),
            };
            if self.cancel(idx).is_some_and(|re| re.is_match(text)) {
                continue;
            }
            hits.push(Hit { rule: idx, span });
        }
    }
}

/// The file scopes the general table is scanned with (see `scan::FileScan::new`).
const GENERAL_SCOPES: [u8; 5] = [
    scope::CODE,
    scope::UI,
    scope::CONFIG,
    scope::CONFIG | scope::INFRA,
    scope::INFRA,
];

/// Everything compiled.
pub(crate) struct Engine {
    pub general: RuleSet,
    pub migration: RuleSet,
    /// Start of a down migration section (Rails/Ecto `def down`, Alembic
    /// `def downgrade`, Knex/Sequelize/TypeORM `down`, Laravel/Doctrine
    /// `public function down`, EF Core `override void Down`).
    down_start: OnceLock<Regex>,
    /// Start of an up section (`def up`, `def change`, `upgrade`, …).
    up_start: OnceLock<Regex>,
    /// A line that starts a definition (function, method, class): a guard removed
    /// together with the definition it decorated went away with its endpoint.
    definition: OnceLock<Regex>,
}

impl Engine {
    pub(crate) fn down_start(&self) -> &Regex {
        self.down_start.get_or_init(|| {
            Regex::new(
                r"^\s*(def\s+(self\.)?(down|downgrade)\b|(export\s+)?(default\s+)?(async\s+)?function\s+down\b|(module\.)?exports\.down\b|(public\s+)?(async\s+)?down\s*\(|down\s*:\s*(async\b|function\b|\()|async\s+down\s*\(|public\s+function\s+down\s*\(|(protected\s+|public\s+)?override\s+void\s+Down\s*\()",
            )
            .expect("down regex")
        })
    }

    pub(crate) fn up_start(&self) -> &Regex {
        self.up_start.get_or_init(|| {
            Regex::new(
                r"^\s*(def\s+(self\.)?(up|upgrade|change)\b|(export\s+)?(default\s+)?(async\s+)?function\s+up\b|(module\.)?exports\.up\b|(public\s+)?(async\s+)?up\s*\(|up\s*:\s*(async\b|function\b|\()|async\s+up\s*\(|public\s+function\s+up\s*\(|(protected\s+|public\s+)?override\s+void\s+Up\s*\()",
            )
            .expect("up regex")
        })
    }

    pub(crate) fn definition(&self) -> &Regex {
        self.definition.get_or_init(|| {
            Regex::new(
                r"^\s*((async\s+def|def|fun|fn|func|function|async\s+function|async\s+fn|pub(\([\w:]+\))?\s+(async\s+)?fn|class|public|private|protected|internal)\b|export\s+(default\s+)?(async\s+)?(function|class|const)\b|(const|let|var)\s+\w+\s*=\s*(async\s*)?(\(|function\b|\w+\s*=>))",
            )
            .expect("definition regex")
        })
    }
}

/// The process-wide engine (its parts compile on first use).
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine {
        general: RuleSet::new(GENERAL, &GENERAL_SCOPES),
        migration: RuleSet::new(MIGRATION, &[scope::MIGRATION]),
        down_start: OnceLock::new(),
        up_start: OnceLock::new(),
        definition: OnceLock::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every regex of every rule compiles (they are otherwise compiled lazily, on a
    /// rule's first hit, and a typo would only show on real traffic).
    #[test]
    fn every_rule_regex_compiles_and_every_rule_has_triggers() {
        let engine = engine();
        for set in [&engine.general, &engine.migration] {
            for (idx, rule) in set.rules.iter().enumerate() {
                assert!(!rule.triggers.is_empty(), "{} has no trigger", rule.label);
                assert!(
                    rule.triggers.iter().all(|t| *t == t.to_ascii_lowercase()),
                    "{}: triggers are lowercase",
                    rule.label
                );
                let _ = set.confirm(idx);
                let _ = set.cancel(idx);
            }
        }
        for scope in GENERAL_SCOPES {
            let _ = engine.general.automaton(scope);
        }
        let _ = engine.migration.automaton(scope::MIGRATION);
        let _ = (engine.down_start(), engine.up_start(), engine.definition());
    }
}
