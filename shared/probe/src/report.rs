//! Gate reports: text for humans (grouped by kind, failures first), JSON (stable), JUnit XML.

use crate::check::{CheckResult, Status};
use crate::gate::Verdict;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;

fn sorted(results: &[CheckResult]) -> BTreeMap<&'static str, Vec<&CheckResult>> {
    let mut groups: BTreeMap<&'static str, Vec<&CheckResult>> = BTreeMap::new();
    for r in results {
        groups.entry(r.kind.as_str()).or_default().push(r);
    }
    for group in groups.values_mut() {
        group.sort_by(|a, b| (a.status, &a.target).cmp(&(b.status, &b.target)));
    }
    groups
}

/// The text report.
pub fn text(results: &[CheckResult], verdict: &Verdict) -> String {
    let mut out = String::new();
    let mut groups: Vec<_> = sorted(results).into_iter().collect();
    // Groups with failures first.
    groups.sort_by_key(|(kind, group)| (group.iter().map(|r| r.status).min(), *kind));
    for (kind, group) in groups {
        let _ = writeln!(out, "{kind}:");
        for r in group {
            let mark = match r.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Unknown => "UNKNOWN",
            };
            let _ = writeln!(
                out,
                "  {mark:<7} {}  {} ({} ms)",
                r.target, r.detail, r.latency_ms
            );
        }
    }
    let _ = writeln!(
        out,
        "gate {}: {} passed, {} failed, {} unknown",
        if verdict.pass { "passed" } else { "FAILED" },
        verdict.passed,
        verdict.failed,
        verdict.unknown
    );
    out
}

/// The JSON report: `{"verdict": {...}, "checks": [...]}`, checks in the order given.
pub fn json(results: &[CheckResult], verdict: &Verdict) -> String {
    json!({ "verdict": verdict, "checks": results }).to_string()
}

/// Escapes text for XML attribute and element content.
pub fn xml_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The JUnit XML report: one test suite per check kind, one test case per check; failures
/// are `<failure>`, unknowns `<error>`.
pub fn junit(results: &[CheckResult]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let groups = sorted(results);
    let failures = results.iter().filter(|r| r.status == Status::Fail).count();
    let errors = results
        .iter()
        .filter(|r| r.status == Status::Unknown)
        .count();
    let _ = writeln!(
        out,
        "<testsuites name=\"deploygraph gate\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">",
        results.len()
    );
    for (kind, group) in groups {
        let f = group.iter().filter(|r| r.status == Status::Fail).count();
        let e = group.iter().filter(|r| r.status == Status::Unknown).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{kind}\" tests=\"{}\" failures=\"{f}\" errors=\"{e}\">",
            group.len()
        );
        for r in group {
            let seconds = r.latency_ms as f64 / 1000.0;
            let _ = write!(
                out,
                "    <testcase classname=\"{kind}\" name=\"{}\" time=\"{seconds:.3}\"",
                xml_escape(&r.target)
            );
            match r.status {
                Status::Pass => out.push_str("/>\n"),
                Status::Fail => {
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\"/>\n    </testcase>",
                        xml_escape(&r.detail)
                    );
                }
                Status::Unknown => {
                    let _ = writeln!(
                        out,
                        ">\n      <error message=\"{}\"/>\n    </testcase>",
                        xml_escape(&r.detail)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::CheckKind;
    use crate::gate::{Policy, verdict};

    fn results() -> Vec<CheckResult> {
        vec![
            CheckResult::new(
                CheckKind::Tls,
                "ok.test:443",
                Status::Pass,
                "expires in 80d 0h; trusted",
            ),
            CheckResult::new(
                CheckKind::FileCert,
                "/etc/ca.pem",
                Status::Pass,
                "1 certificate(s)",
            ),
            CheckResult::new(
                CheckKind::Tls,
                "bad.test:443",
                Status::Fail,
                "expired 2d 0h ago <&>",
            ),
        ]
    }

    #[test]
    fn text_puts_failures_first() {
        let r = results();
        let text = text(&r, &verdict(&r, Policy::default()));
        let tls = text.find("tls:").unwrap_or(usize::MAX);
        let file = text.find("file-cert:").unwrap_or(0);
        assert!(tls < file, "{text}");
        assert!(
            text.find("FAIL").unwrap_or(usize::MAX) < text.find("PASS").unwrap_or(0),
            "{text}"
        );
        assert!(
            text.ends_with("gate FAILED: 2 passed, 1 failed, 0 unknown\n"),
            "{text}"
        );
    }

    #[test]
    fn junit_is_escaped_and_counts_failures() {
        let xml = junit(&results());
        assert!(
            xml.contains(
                "<testsuites name=\"deploygraph gate\" tests=\"3\" failures=\"1\" errors=\"0\">"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("<failure message=\"expired 2d 0h ago &lt;&amp;&gt;\"/>"),
            "{xml}"
        );
        assert_eq!(xml_escape("a\"b'c\u{1}"), "a&quot;b&apos;c");
    }
}
