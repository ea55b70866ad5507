//! Diff parsing: the unified-diff line reader (`DiffParser`) over arbitrary lines,
//! and `walk_packed_diff` replaying an arbitrary packed diff through the rules
//! analyzer, as a worker does with the context of every event it receives (the
//! packed diff comes from the producer: untrusted).
//!
//! Properties beyond "no panic": every content line the parser reports is a line it
//! was fed, without its first character (or a blank context line); the rules analyzer's verdict keeps its
//! score within 0–100 and gives every risk evidence.

#![no_main]

use gate_core::{
    walk_packed_diff, Bands, DeployContext, DiffLine, DiffParser, DiffVisitor, LineKind,
};
use gate_rules::RulesAnalyzer;
use libfuzzer_sys::fuzz_target;

/// Counts what the walk shows, and checks each line is one of the packed diff's.
struct Lines<'a> {
    packed: &'a str,
    n_lines: usize,
}

impl DiffVisitor for Lines<'_> {
    fn line(&mut self, _file: &gate_core::ChangedFile, _kind: LineKind, _no: u32, text: &str) {
        self.n_lines += 1;
        assert!(
            self.packed.contains(text) || text.contains('\u{FFFD}'),
            "a line the packed diff does not hold: {text:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parser = DiffParser::new();
    for line in data.split(|&b| b == b'\n') {
        if let DiffLine::Content { text, .. } = parser.feed(line) {
            let marker_stripped = line.len() == text.len() + 1 && line.ends_with(text);
            let blank_context = line.is_empty() && text.is_empty();
            assert!(
                marker_stripped || blank_context,
                "content {text:?} of line {line:?}"
            );
        }
        let _ = (parser.path(), parser.old_path());
    }

    let Ok(packed) = std::str::from_utf8(data) else {
        return;
    };
    let (sample, _) = deploy_gate_fuzz::sample_change();
    let context = DeployContext {
        packed_diff: packed.to_owned(),
        ..sample.clone()
    };
    let mut lines = Lines { packed, n_lines: 0 };
    walk_packed_diff(&context, &mut lines);
    let mut rules = RulesAnalyzer::new(Bands::default());
    walk_packed_diff(&context, &mut rules);
    let verdict = rules.finish(&context);
    assert!(verdict.risk_score <= 100);
    for risk in &verdict.risks {
        assert!(
            !risk.evidence.is_empty(),
            "a risk without evidence: {risk:?}"
        );
    }
});
