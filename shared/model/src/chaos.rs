//! Chaos experiments: `(ChaosRun)-[:TARGETED]->(Service)`, `-[:AGAINST]->(DeploymentEvent)`,
//! `-[:RAISED]->(Alert)`.
//!
//! A run is recorded when it starts and again as it progresses; its uid stays the same, so the
//! later record replaces the earlier one. Attribution reads runs to tell chaos from a
//! deployment: an alert on a service under a running experiment is the experiment's.

use crate::alert::ServiceRef;
use crate::uid::Uid;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A run's verdict (Litmus' ChaosResult verdicts, plus runs that were stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChaosVerdict {
    /// Still running, or the result is not in yet.
    Awaited,
    /// The target met its steady state throughout.
    Pass,
    /// It did not.
    Fail,
    /// Aborted before the end.
    Stopped,
    /// The experiment itself errored.
    Error,
}

impl ChaosVerdict {
    /// The wire name (`Pass`, as Litmus spells it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Awaited => "Awaited",
            Self::Pass => "Pass",
            Self::Fail => "Fail",
            Self::Stopped => "Stopped",
            Self::Error => "Error",
        }
    }

    /// Parses the wire name.
    ///
    /// # Errors
    /// An invalid-field error naming `verdict`.
    pub fn parse(value: &str) -> crate::Result<Self> {
        Ok(match value {
            "Awaited" => Self::Awaited,
            "Pass" => Self::Pass,
            "Fail" => Self::Fail,
            "Stopped" => Self::Stopped,
            "Error" => Self::Error,
            other => {
                return Err(crate::Error::new(
                    "verdict",
                    format!("{other:?} is not one of Awaited, Pass, Fail, Stopped, Error"),
                ));
            }
        })
    }
}

/// One probe's outcome in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChaosProbe {
    /// Probe name.
    pub name: String,
    /// Probe type (`httpProbe`, `cmdProbe`, …), when known.
    #[serde(default)]
    pub probe_type: Option<String>,
    /// `Passed`, `Failed`, `Awaited` …
    pub verdict: String,
}

/// One chaos experiment run against a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChaosRun {
    /// Stable across updates of the same run.
    pub uid: Uid,
    /// The scenario file's name.
    pub scenario: String,
    /// The experiment (`pod-delete`).
    pub experiment: String,
    /// The ChaosEngine's name, for Litmus runs.
    #[serde(default)]
    pub engine: Option<String>,
    /// The service under test.
    pub target: ServiceRef,
    /// Verdict so far.
    pub verdict: ChaosVerdict,
    /// Phase (`Running`, `Completed`, `Stopped` …).
    pub phase: String,
    /// Probe success percentage, when probes ran.
    #[serde(default)]
    pub probe_success_pct: Option<f64>,
    /// Per-probe verdicts.
    #[serde(default)]
    pub probes: Vec<ChaosProbe>,
    /// When the fault started.
    pub started_at: DateTime<Utc>,
    /// When it ended, when it has.
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds from the end of the fault until the alerts it raised resolved and the target was
    /// ready again.
    #[serde(default)]
    pub recovery_seconds: Option<f64>,
    /// Why it failed or stopped.
    #[serde(default)]
    pub error_reason: Option<String>,
    /// The deployment live on the target during the run.
    #[serde(default)]
    pub against: Option<Uid>,
}

impl ChaosRun {
    /// Whether the run was active at `at`.
    pub fn active_at(&self, at: DateTime<Utc>) -> bool {
        self.started_at <= at && self.ended_at.is_none_or(|end| at <= end)
    }
}
