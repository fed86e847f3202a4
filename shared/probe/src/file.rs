//! Certificate files and bundles (PEM with several certificates, or DER).

use crate::cert::{self, Expiry, expiry, human};
use crate::check::{CheckKind, CheckResult, Status};
use chrono::{Duration, Utc};
use std::path::Path;
use std::time::Instant;

/// Checks every certificate in the file at `path` against `checkend`. An unreadable file is
/// `unknown`; a file with no certificate is a failure.
pub async fn check(path: &Path, checkend: Duration) -> CheckResult {
    let started = Instant::now();
    let target = path.display().to_string();
    let mut result = match tokio::fs::read(path).await {
        Err(e) => CheckResult::new(
            CheckKind::FileCert,
            target,
            Status::Unknown,
            format!("cannot read: {e}"),
        ),
        Ok(bytes) => judge_bundle(CheckKind::FileCert, &bytes, target, checkend),
    };
    result.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    result
}

/// Judges every certificate of a PEM or DER bundle against `checkend`.
pub fn judge_bundle(
    kind: CheckKind,
    bytes: &[u8],
    target: String,
    checkend: Duration,
) -> CheckResult {
    let infos = match cert::parse_bundle(bytes).and_then(|ders| {
        ders.iter()
            .map(|d| cert::parse_der(d))
            .collect::<Result<Vec<_>, _>>()
    }) {
        Ok(infos) => infos,
        Err(reason) => return CheckResult::new(kind, target, Status::Fail, reason),
    };
    let now = Utc::now();
    let mut problems = Vec::new();
    let mut soonest: Option<chrono::DateTime<Utc>> = None;
    for info in &infos {
        soonest = Some(soonest.map_or(info.not_after, |s| s.min(info.not_after)));
        let problem = match expiry(info, now, checkend) {
            Expiry::Valid { .. } => None,
            Expiry::ExpiresSoon { remaining } => Some(format!("expires in {}", human(remaining))),
            Expiry::Expired { since } => Some(format!("expired {} ago", human(since))),
            Expiry::NotYetValid { starts_in } => {
                Some(format!("not valid for another {}", human(starts_in)))
            }
        };
        if let Some(problem) = problem {
            problems.push(format!("{}: {problem}", info.subject));
        }
    }
    let (status, detail) = if problems.is_empty() {
        let first = soonest.map(|t| human(t - now)).unwrap_or_default();
        (
            Status::Pass,
            format!("{} certificate(s); first expiry in {first}", infos.len()),
        )
    } else {
        (Status::Fail, problems.join("; "))
    };
    CheckResult {
        certificates: infos,
        ..CheckResult::new(kind, target, status, detail)
    }
}
