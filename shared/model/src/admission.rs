//! Overrides of the admission gate: a workload change the gate would have refused (the
//! cluster's newest infra snapshot failing, stale or missing), admitted because its object
//! carried the break-glass annotation `deploygraph.io/gate-override: <reason>`.
//!
//! `(GateOverride)-[:ADMITTED]->(DeploymentEvent)`: the override is recorded before the API
//! server stores the change, so it is linked to the deployment recorded next for the same
//! workload (kind, namespace, name) as soon as that deployment is stored.

use crate::uid::Uid;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The annotation that admits a change the gate refuses; its value is the reason.
pub const GATE_OVERRIDE_ANNOTATION: &str = "deploygraph.io/gate-override";

/// Longest reason kept, in characters (longer ones are cut).
pub const GATE_OVERRIDE_REASON_MAX_CHARS: usize = 1024;

/// One admitted override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GateOverride {
    /// `Uid::derive("gate-override", [admission request uid])`: a retried review is one
    /// override.
    #[schema(value_type = String)]
    pub uid: Uid,
    /// When it was admitted.
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// The cluster the gate answers for, when named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: String,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's name.
    pub name: String,
    /// `CREATE` or `UPDATE`.
    pub operation: String,
    /// Who made the change (the API server's user).
    pub user: String,
    /// The annotation's value.
    pub reason: String,
    /// What the gate would have said: the failed checks, or why no snapshot counted.
    pub refusal: String,
    /// The admitted pod template's hash, as the watcher records it on the workload's
    /// deployment (`workload.template_hash`): the change it admitted, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_hash: Option<String>,
    /// The snapshot it was judged on, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub snapshot_uid: Option<Uid>,
    /// The deployment recorded for the change, once it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub deployment_uid: Option<Uid>,
}

impl GateOverride {
    /// The uid of the override made in the admission request `request_uid`.
    pub fn uid_for(request_uid: &str) -> Uid {
        Uid::derive("gate-override", &[request_uid])
    }
}
