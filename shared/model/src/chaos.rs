//! Chaos experiments: `(ChaosRun)-[:TARGETED]->(Service)`, `-[:AGAINST]->(DeploymentEvent)`,
//! `-[:RAISED]->(Alert)`.
//!
//! A run is recorded when it starts and again as it progresses; its uid stays the same, so the
//! later record replaces the earlier one. Attribution reads runs to tell chaos from a
//! deployment: an alert on a service under a running experiment is the experiment's.

use crate::alert::ServiceRef;
use crate::newtypes::{Environment, ServiceName};
use crate::uid::Uid;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A run's verdict (Litmus' ChaosResult verdicts, plus runs that were stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Upper bounds on a chaos run's text and lists.
pub mod limits {
    /// Names: scenario, experiment, engine, phase, probe names and verdicts.
    pub const NAME: usize = 256;
    /// `error_reason`.
    pub const REASON: usize = 4096;
    /// Probes per run.
    pub const PROBES: usize = 256;
}

/// A service as a request names it (a chaos run's target, a change's services).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRefInput {
    /// Service name.
    pub name: ServiceName,
    /// Namespace (empty or absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schema::Namespace>)]
    pub namespace: Option<String>,
    /// Environment.
    pub environment: Environment,
    /// The cluster (absent: `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::Cluster>)]
    pub cluster: Option<String>,
}

/// One probe's outcome, as a request gives it.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChaosProbeInput {
    /// Probe name.
    #[schema(min_length = 1, max_length = 256)]
    pub name: String,
    /// Probe type (`httpProbe`, `cmdProbe`, …).
    #[serde(default)]
    #[schema(max_length = 256)]
    pub probe_type: Option<String>,
    /// `Passed`, `Failed`, `Awaited` …
    #[schema(min_length = 1, max_length = 256)]
    pub verdict: String,
}

/// The body of `POST /v1/chaos/runs`: a run recorded (or updated) by a client. Unknown fields
/// are rejected; the uid, when given, must be a chaos run's, else it is derived from the
/// scenario and start time as the runner does.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChaosRunInput {
    /// The run's uid (default: derived from `scenario` and `started_at`).
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::ChaosRunUid>)]
    pub uid: Option<String>,
    /// The scenario's name.
    #[schema(min_length = 1, max_length = 256)]
    pub scenario: String,
    /// The experiment (`pod-delete`).
    #[schema(min_length = 1, max_length = 256)]
    pub experiment: String,
    /// The ChaosEngine's name, for Litmus runs.
    #[serde(default)]
    #[schema(max_length = 256)]
    pub engine: Option<String>,
    /// The service under test.
    pub target: ServiceRefInput,
    /// Verdict so far.
    pub verdict: ChaosVerdict,
    /// Phase (`Running`, `Completed`, `Stopped` …).
    #[schema(min_length = 1, max_length = 256)]
    pub phase: String,
    /// Probe success percentage.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100)]
    pub probe_success_pct: Option<f64>,
    /// Per-probe verdicts.
    #[serde(default)]
    #[schema(max_items = 256, nullable = false)]
    pub probes: Vec<ChaosProbeInput>,
    /// When the fault started.
    #[schema(value_type = crate::schema::InputTime)]
    pub started_at: String,
    /// When it ended (not before `started_at`).
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::InputTime>)]
    pub ended_at: Option<String>,
    /// Seconds from the end of the fault until recovery.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub recovery_seconds: Option<f64>,
    /// Why it failed or stopped.
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub error_reason: Option<String>,
    /// The deployment live on the target during the run.
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::DeploymentUid>)]
    pub against: Option<String>,
}

fn bounded_text(field: &str, value: &str, max: usize) -> crate::Result<()> {
    if value.chars().count() > max {
        return Err(crate::Error::new(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    Ok(())
}

fn required_text(field: &str, value: &str, max: usize) -> crate::Result<()> {
    if value.is_empty() {
        return Err(crate::Error::new(field, "is required"));
    }
    bounded_text(field, value, max)
}

impl ChaosRunInput {
    /// Validates the request into a run.
    ///
    /// # Errors
    /// The first invalid field, by its path in the input.
    pub fn validate(self) -> crate::Result<ChaosRun> {
        use crate::schema::parse_input_time;
        required_text("scenario", &self.scenario, limits::NAME)?;
        required_text("experiment", &self.experiment, limits::NAME)?;
        if let Some(engine) = &self.engine {
            bounded_text("engine", engine, limits::NAME)?;
        }
        required_text("phase", &self.phase, limits::NAME)?;
        let namespace = match self.target.namespace.filter(|n| !n.is_empty()) {
            Some(ns) if crate::newtypes::is_dns1123_label(&ns) => Some(ns),
            Some(ns) => {
                return Err(crate::Error::new(
                    "target.namespace",
                    format!("{ns:?} is not a DNS-1123 label"),
                ));
            }
            None => None,
        };
        if self
            .probe_success_pct
            .is_some_and(|p| !(0.0..=100.0).contains(&p))
        {
            return Err(crate::Error::new(
                "probe_success_pct",
                "must be between 0 and 100",
            ));
        }
        if self.recovery_seconds.is_some_and(|s| s < 0.0) {
            return Err(crate::Error::new(
                "recovery_seconds",
                "must not be negative",
            ));
        }
        if self.probes.len() > limits::PROBES {
            return Err(crate::Error::new(
                "probes",
                format!("at most {} probes", limits::PROBES),
            ));
        }
        for (i, probe) in self.probes.iter().enumerate() {
            bounded_text(&format!("probes[{i}].name"), &probe.name, limits::NAME)?;
            if probe.name.is_empty() {
                return Err(crate::Error::new(
                    format!("probes[{i}].name"),
                    "is required",
                ));
            }
            bounded_text(
                &format!("probes[{i}].verdict"),
                &probe.verdict,
                limits::NAME,
            )?;
            if probe.verdict.is_empty() {
                return Err(crate::Error::new(
                    format!("probes[{i}].verdict"),
                    "is required",
                ));
            }
            if let Some(t) = &probe.probe_type {
                bounded_text(&format!("probes[{i}].probe_type"), t, limits::NAME)?;
            }
        }
        if let Some(reason) = &self.error_reason {
            bounded_text("error_reason", reason, limits::REASON)?;
        }
        let started_at = parse_input_time("started_at", &self.started_at)?;
        let ended_at = self
            .ended_at
            .as_deref()
            .map(|t| parse_input_time("ended_at", t))
            .transpose()?;
        if ended_at.is_some_and(|end| end < started_at) {
            return Err(crate::Error::new("ended_at", "is before started_at"));
        }
        let uid = match &self.uid {
            Some(uid) => Uid::parse_derived(crate::uid::CHAOS_RUN_PREFIX, uid)
                .map_err(|e| crate::Error::new("uid", e.message))?,
            None => Uid::derive(
                crate::uid::CHAOS_RUN_PREFIX,
                &[&self.scenario, &crate::newtypes::format_time(&started_at)],
            ),
        };
        let against = self
            .against
            .as_deref()
            .map(Uid::parse_deployment)
            .transpose()
            .map_err(|e| crate::Error::new("against", e.message))?;
        Ok(ChaosRun {
            uid,
            scenario: self.scenario,
            experiment: self.experiment,
            engine: self.engine.filter(|e| !e.is_empty()),
            target: ServiceRef {
                name: self.target.name,
                namespace,
                environment: self.target.environment,
                cluster: crate::Cluster::parse_field(
                    self.target.cluster.as_deref(),
                    "target.cluster",
                )?,
            },
            verdict: self.verdict,
            phase: self.phase,
            probe_success_pct: self.probe_success_pct,
            probes: self
                .probes
                .into_iter()
                .map(|p| ChaosProbe {
                    name: p.name,
                    probe_type: p.probe_type.filter(|t| !t.is_empty()),
                    verdict: p.verdict,
                })
                .collect(),
            started_at,
            ended_at,
            recovery_seconds: self.recovery_seconds,
            error_reason: self.error_reason.filter(|r| !r.is_empty()),
            against,
        })
    }
}
