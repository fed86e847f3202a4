//! The gate's verdict over check results.

use crate::check::{CheckResult, Status};
use serde::Serialize;

/// How results turn into a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Whether `unknown` (timeouts, unreachable targets) passes. Off by default: the gate fails closed.
    pub allow_unknown: bool,
}

/// The gate's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Whether the pipeline may go on.
    pub pass: bool,
    /// Checks that passed.
    pub passed: usize,
    /// Checks that failed.
    pub failed: usize,
    /// Checks that could not tell.
    pub unknown: usize,
}

/// Decides the verdict.
pub fn verdict(results: &[CheckResult], policy: Policy) -> Verdict {
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let (passed, failed, unknown) = (
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Unknown),
    );
    Verdict {
        pass: failed == 0 && (unknown == 0 || policy.allow_unknown),
        passed,
        failed,
        unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::CheckKind;

    fn result(status: Status) -> CheckResult {
        CheckResult::new(CheckKind::Tls, "x:1", status, "")
    }

    #[test]
    fn the_gate_fails_closed_on_unknown_unless_allowed() {
        let all = [result(Status::Pass), result(Status::Unknown)];
        assert!(!verdict(&all, Policy::default()).pass);
        assert!(
            verdict(
                &all,
                Policy {
                    allow_unknown: true
                }
            )
            .pass
        );
        assert!(
            !verdict(
                &[result(Status::Fail)],
                Policy {
                    allow_unknown: true
                }
            )
            .pass
        );
        assert!(verdict(&[], Policy::default()).pass);
    }
}
