//! Domain model of deploygraph.
//!
//! Every fact that reaches the graph is first turned into one of these types. Values that have a
//! format (image digests, commit SHAs, service names, times) are validated newtypes, so an
//! invalid value cannot travel further than the edge that received it. Node identities are
//! deterministic ([`uid`]), so recording the same fact twice is a no-op.

pub mod admission;
pub mod alert;
pub mod alertmanager;
pub mod backstage;
pub mod canary;
pub mod change;
pub mod chaos;
pub mod deployment;
pub mod error;
pub mod fixture;
pub mod fuzzing;
pub mod infra;
pub mod newtypes;
pub mod redact;
pub mod release_summary;
pub mod rollback;
pub mod schema;
pub mod topology;
pub mod uid;
pub mod verdict;

pub use admission::GateOverride;
pub use alert::{
    Alert, AlertOutcome, AlertStatus, MetricOnset, ServiceMetric, ServiceRef, SubjectKind, Trigger,
    merge_alert,
};
pub use canary::{
    CanaryAnalysis, CanaryAnalysisInput, CanaryBaselineKind, CanaryMetricKind, CanaryVerdict,
    MetricVerdict, MetricVerdictInput, NewCanaryAnalysis,
};
pub use change::{Change, ChangeEventInput, ChangeType, KeyChange, KeyChangeInput};
pub use chaos::{ChaosProbe, ChaosRun, ChaosVerdict};
pub use deployment::{
    ChangeKind, Commit, ConfigChange, Deployment, DeploymentStatus, HelmRevision, Image, Reconcile,
    Source, ValidationResult, Workload, reconcile,
};
pub use error::{Error, Result};
pub use infra::{CertificateRecord, CertificateUse, CheckRecord, InfraSnapshot, Verdict};
pub use newtypes::{
    Cluster, CommitSha, Environment, ImageDigest, ServiceName, format_time, parse_time,
};
pub use release_summary::{NewReleaseSummary, ReleaseSummary};
pub use rollback::{NewRollback, Rollback, RollbackInput};
pub use uid::Uid;
pub use verdict::{SuspectVerdict, VerdictInput, VerdictKind};
