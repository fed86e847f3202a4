//! Check results as a graph snapshot, and as a Mermaid diagram for pull-request comments.

use crate::check::{CheckResult, Status};
use chrono::{DateTime, Utc};
use deploygraph_model::{CertificateRecord, CheckRecord, InfraSnapshot, Uid, Verdict, format_time};
use std::fmt::Write as _;

fn verdict(status: Status) -> Verdict {
    match status {
        Status::Pass => Verdict::Pass,
        Status::Fail => Verdict::Fail,
        Status::Unknown => Verdict::Unknown,
    }
}

/// The snapshot of `results` taken at `taken_at`.
pub fn from_results(
    results: &[CheckResult],
    taken_at: DateTime<Utc>,
    cluster: Option<String>,
    deployment: Option<Uid>,
) -> InfraSnapshot {
    let checks = results
        .iter()
        .map(|r| CheckRecord {
            kind: r.kind.as_str().to_owned(),
            target: r.target.clone(),
            status: verdict(r.status),
            detail: r.detail.clone(),
            latency_ms: r.latency_ms,
            certificates: r.certificates.clone(),
            uses: r.uses.clone(),
        })
        .collect();
    InfraSnapshot::new(taken_at, cluster, deployment, checks)
}

fn label(text: &str) -> String {
    text.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

/// A Mermaid flowchart of what was checked and its state.
pub fn mermaid(snapshot: &InfraSnapshot) -> String {
    let mut out = String::from("flowchart LR\n");
    let title = match &snapshot.cluster {
        Some(cluster) => format!("{cluster} at {}", format_time(&snapshot.taken_at)),
        None => format_time(&snapshot.taken_at),
    };
    let _ = writeln!(
        out,
        "  snapshot[\"infra snapshot<br/>{}<br/>verdict: {}\"]",
        label(&title),
        snapshot.verdict.as_str()
    );
    if let Some(deployment) = &snapshot.deployment_uid {
        let _ = writeln!(
            out,
            "  snapshot -- taken for --> deployment[\"{}\"]",
            label(deployment.as_str())
        );
    }
    let mut certificates: Vec<&CertificateRecord> = Vec::new();
    for (i, check) in snapshot.checks.iter().enumerate() {
        let _ = writeln!(
            out,
            "  snapshot --> c{i}[\"{} {}<br/>{}\"]",
            check.kind,
            label(&check.target),
            check.status.as_str()
        );
        let _ = writeln!(out, "  class c{i} {}", check.status.as_str());
        for cert in &check.certificates {
            let j = match certificates.iter().position(|c| c.sha256 == cert.sha256) {
                Some(j) => j,
                None => {
                    certificates.push(cert);
                    let j = certificates.len() - 1;
                    let _ = writeln!(
                        out,
                        "  cert{j}[\"{}<br/>until {}\"]",
                        label(&cert.subject),
                        format_time(&cert.not_after)
                    );
                    j
                }
            };
            let _ = writeln!(out, "  c{i} --> cert{j}");
        }
    }
    out.push_str("  classDef pass fill:#d8f5d8,stroke:#2e7d32\n");
    out.push_str("  classDef fail fill:#fadbd8,stroke:#c62828\n");
    out.push_str("  classDef unknown fill:#eeeeee,stroke:#757575\n");
    let _ = writeln!(out, "  class snapshot {}", snapshot.verdict.as_str());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::CheckKind;

    #[test]
    fn the_diagram_shows_checks_their_state_and_shared_certificates() {
        let now = Utc::now();
        let cert = CertificateRecord {
            sha256: "ab".repeat(32),
            subject: "CN=\"api\"".into(),
            issuer: "CN=ca".into(),
            sans: vec![],
            not_before: now,
            not_after: now,
            is_ca: false,
        };
        let mut tls = CheckResult::new(CheckKind::Tls, "api:443", Status::Fail, "expired");
        tls.certificates = vec![cert.clone()];
        let mut file = CheckResult::new(CheckKind::FileCert, "/etc/a.pem", Status::Pass, "ok");
        file.certificates = vec![cert];
        let snapshot = from_results(
            &[tls, file],
            now,
            Some("prod".into()),
            Some(Uid::from_stored("deployment-1")),
        );
        assert_eq!(snapshot.verdict, Verdict::Fail);
        let diagram = mermaid(&snapshot);
        assert!(diagram.starts_with("flowchart LR\n"), "{diagram}");
        assert!(
            diagram.contains("snapshot -- taken for --> deployment[\"deployment-1\"]"),
            "{diagram}"
        );
        assert!(diagram.contains("class c0 fail"), "{diagram}");
        assert_eq!(
            diagram.matches("cert0[").count(),
            1,
            "a certificate seen twice is drawn once: {diagram}"
        );
        assert!(diagram.contains("CN=#quot;api#quot;"), "{diagram}");
    }
}
