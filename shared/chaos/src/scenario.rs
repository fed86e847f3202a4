//! Scenario files (`chaos-scenarios/*.yaml`): what to break, how, for how long, what must hold
//! before and after, when to stop early, and what verdict is expected.
//!
//! ```yaml
//! name: payments-pod-delete             # default: the file name without .yaml
//! description: Kill payments pods; the service keeps answering.
//! target:
//!   service: payments                   # the Service node the run is TARGETED at
//!   environment: production
//!   namespace: prod                     # must be in allowed_namespaces
//!   kind: deployment                    # deployment | statefulset | daemonset
//!   labels: {app: payments}             # how Litmus finds the pods (appinfo.applabel)
//! driver: litmus                        # litmus | local
//! experiment: pod-delete                # the ChaosExperiment (litmus) or a name for the fault (local)
//! duration: 60s                         # TOTAL_CHAOS_DURATION
//! tunables: {CHAOS_INTERVAL: "10", FORCE: "false"}   # experiment env
//! probes: []                            # Litmus probe specs, passed through
//! steady_state: {http: […], dns: […]}   # gate checks (deploygraph gate's file format), before and after
//! abort:
//!   alert_severity: critical            # an alert of this severity firing on the target stops the run
//!   on_probe_failure: true              # a failed probe stops it (Litmus stopOnFailure)
//!   deadline: 5m                        # the whole run, chaos and recovery, is over by then
//! allowed_namespaces: [prod]
//! expected_verdict: Pass
//! service_account: litmus-admin         # the experiment's ServiceAccount (litmus)
//! local: {fault: network-partition, …}  # the fault (local)
//! ```

use deploygraph_model::newtypes::is_dns1123_label;
use deploygraph_model::{ChaosVerdict, Environment, ServiceName, ServiceRef};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A scenario error, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct ScenarioError {
    /// The scenario file.
    pub file: String,
    /// The field (`target.namespace`); empty for the document.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Which driver injects the fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// LitmusChaos: a ChaosEngine in the cluster.
    Litmus,
    /// A fault injected on this host (process, network namespace, cgroup).
    Local,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    service: String,
    environment: String,
    namespace: Option<String>,
    cluster: Option<String>,
    kind: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AbortFile {
    alert_severity: Option<String>,
    #[serde(default)]
    on_probe_failure: bool,
    deadline: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: Option<String>,
    description: Option<String>,
    target: TargetFile,
    driver: Driver,
    experiment: String,
    duration: String,
    #[serde(default)]
    tunables: BTreeMap<String, serde_norway::Value>,
    #[serde(default)]
    probes: Vec<serde_json::Value>,
    steady_state: Option<serde_norway::Value>,
    #[serde(default)]
    abort: AbortFile,
    #[serde(default)]
    allowed_namespaces: Vec<String>,
    expected_verdict: Option<String>,
    service_account: Option<String>,
    local: Option<serde_json::Value>,
}

/// What the run targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The Service node.
    pub service: ServiceRef,
    /// The workload kind (`deployment`), for Litmus.
    pub kind: String,
    /// Pod labels, for Litmus (`app=payments`).
    pub labels: BTreeMap<String, String>,
}

impl Target {
    /// The label selector of its Pods (`app=payments`).
    pub fn selector(&self) -> String {
        self.labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// When to stop early.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Abort {
    /// An alert of this severity firing on the target.
    pub alert_severity: Option<String>,
    /// A probe failing.
    pub on_probe_failure: bool,
    /// The whole run's bound.
    pub deadline: Option<Duration>,
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// For humans.
    pub description: Option<String>,
    /// What it targets.
    pub target: Target,
    /// Who injects the fault.
    pub driver: Driver,
    /// The experiment.
    pub experiment: String,
    /// How long the fault lasts.
    pub duration: Duration,
    /// Experiment env (Litmus), strings.
    pub tunables: BTreeMap<String, String>,
    /// Litmus probe specs, as written.
    pub probes: Vec<serde_json::Value>,
    /// The gate checks that must pass before and after (the gate file format, as YAML text).
    pub steady_state: Option<String>,
    /// Abort conditions.
    pub abort: Abort,
    /// Namespaces the scenario may touch.
    pub allowed_namespaces: Vec<String>,
    /// The verdict the scenario expects.
    pub expected_verdict: ChaosVerdict,
    /// The experiment's ServiceAccount (Litmus).
    pub service_account: String,
    /// The local fault, as written (the local driver validates it).
    pub local: Option<serde_json::Value>,
}

fn err(file: &str, field: &str, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        file: file.to_owned(),
        field: field.to_owned(),
        message: message.into(),
    }
}

fn duration(file: &str, field: &str, value: &str) -> Result<Duration, ScenarioError> {
    deploygraph_probe::config::parse_duration(value).map_err(|e| err(file, field, e))
}

/// Parses and validates a scenario; `file` names it in errors and gives the default name.
///
/// # Errors
/// The first problem, naming its field.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let de = serde_norway::Deserializer::from_str(text);
    let f: ScenarioFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        err(
            file,
            if path == "." { "" } else { &path },
            e.into_inner().to_string(),
        )
    })?;
    let name = match f.name {
        Some(n) => n,
        None => Path::new(file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("scenario")
            .to_owned(),
    };
    if !is_dns1123_label(&name) {
        return Err(err(
            file,
            "name",
            format!("{name:?} is not a DNS-1123 label (it names the ChaosEngine)"),
        ));
    }
    let service = ServiceName::parse(&f.target.service)
        .map_err(|e| err(file, "target.service", e.message))?;
    let environment = Environment::parse(&f.target.environment)
        .map_err(|e| err(file, "target.environment", e.message))?;
    let cluster = deploygraph_model::Cluster::parse_field(f.target.cluster.as_deref(), "")
        .map_err(|e| err(file, "target.cluster", e.message))?;
    let kind = f.target.kind.unwrap_or_else(|| "deployment".into());
    if !matches!(kind.as_str(), "deployment" | "statefulset" | "daemonset") {
        return Err(err(
            file,
            "target.kind",
            format!("{kind:?} is not one of deployment, statefulset, daemonset"),
        ));
    }
    let labels = f.target.labels.unwrap_or_default();
    if f.driver == Driver::Litmus {
        if f.target.namespace.is_none() {
            return Err(err(
                file,
                "target.namespace",
                "is required for the litmus driver",
            ));
        }
        if labels.is_empty() {
            return Err(err(
                file,
                "target.labels",
                "is required for the litmus driver (how the experiment finds the pods)",
            ));
        }
        if f.local.is_some() {
            return Err(err(file, "local", "is only for the local driver"));
        }
    }
    if f.driver == Driver::Local && f.local.is_none() {
        return Err(err(
            file,
            "local",
            "is required for the local driver (the fault to inject)",
        ));
    }
    if !is_dns1123_label(&f.experiment) {
        return Err(err(
            file,
            "experiment",
            format!("{:?} is not an experiment name", f.experiment),
        ));
    }
    let duration_value = duration(file, "duration", &f.duration)?;
    if duration_value.is_zero() {
        return Err(err(file, "duration", "must be longer than 0s"));
    }
    let mut tunables = BTreeMap::new();
    for (key, value) in f.tunables {
        let text = match value {
            serde_norway::Value::String(s) => s,
            serde_norway::Value::Number(n) => n.to_string(),
            serde_norway::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(err(
                    file,
                    &format!("tunables.{key}"),
                    "must be a string, number or boolean",
                ));
            }
        };
        if key == "TOTAL_CHAOS_DURATION" {
            return Err(err(
                file,
                "tunables.TOTAL_CHAOS_DURATION",
                "is set from duration",
            ));
        }
        tunables.insert(key, text);
    }
    for (i, probe) in f.probes.iter().enumerate() {
        for key in ["name", "type", "mode"] {
            if probe.get(key).and_then(serde_json::Value::as_str).is_none() {
                return Err(err(file, &format!("probes[{i}].{key}"), "is required"));
            }
        }
        let kind = probe["type"].as_str().unwrap_or_default();
        if !matches!(
            kind,
            "k8sProbe" | "httpProbe" | "cmdProbe" | "promProbe" | "sloProbe"
        ) {
            return Err(err(
                file,
                &format!("probes[{i}].type"),
                format!("{kind:?} is not a Litmus probe type"),
            ));
        }
        if probe.get("runProperties").is_none() {
            return Err(err(
                file,
                &format!("probes[{i}].runProperties"),
                "is required (probeTimeout, interval)",
            ));
        }
    }
    let steady_state = match f.steady_state {
        None => None,
        Some(value) => {
            let text = serde_norway::to_string(&value)
                .map_err(|e| err(file, "steady_state", e.to_string()))?;
            deploygraph_probe::config::parse(&text).map_err(|e| {
                err(
                    file,
                    &if e.field.is_empty() {
                        "steady_state".to_owned()
                    } else {
                        format!("steady_state.{}", e.field)
                    },
                    e.message,
                )
            })?;
            Some(text)
        }
    };
    let deadline = f
        .abort
        .deadline
        .as_deref()
        .map(|d| duration(file, "abort.deadline", d))
        .transpose()?;
    if deadline.is_some_and(|d| d <= duration_value) {
        return Err(err(file, "abort.deadline", "must be longer than duration"));
    }
    if let Some(severity) = &f.abort.alert_severity
        && severity.trim().is_empty()
    {
        return Err(err(file, "abort.alert_severity", "is empty"));
    }
    if f.allowed_namespaces.is_empty() {
        return Err(err(
            file,
            "allowed_namespaces",
            "is required: the namespaces this scenario may touch",
        ));
    }
    if let Some(ns) = &f.target.namespace
        && !f.allowed_namespaces.contains(ns)
    {
        return Err(err(
            file,
            "target.namespace",
            format!(
                "{ns:?} is not in allowed_namespaces {:?}",
                f.allowed_namespaces
            ),
        ));
    }
    let expected_verdict = match f.expected_verdict.as_deref() {
        None => ChaosVerdict::Pass,
        Some(v) => ChaosVerdict::parse(v).map_err(|e| err(file, "expected_verdict", e.message))?,
    };
    Ok(Scenario {
        name,
        description: f.description,
        target: Target {
            service: ServiceRef {
                name: service,
                namespace: f.target.namespace,
                environment,
                cluster,
            },
            kind,
            labels,
        },
        driver: f.driver,
        experiment: f.experiment,
        duration: duration_value,
        tunables,
        probes: f.probes,
        steady_state,
        abort: Abort {
            alert_severity: f.abort.alert_severity,
            on_probe_failure: f.abort.on_probe_failure,
            deadline,
        },
        allowed_namespaces: f.allowed_namespaces,
        expected_verdict,
        service_account: f.service_account.unwrap_or_else(|| "litmus-admin".into()),
        local: f.local,
    })
}

/// Reads and parses a scenario file.
///
/// # Errors
/// An unreadable file, or the first problem in it.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| err(&file, "", e.to_string()))?;
    parse(&file, &text)
}

/// Every `*.yaml` scenario in `dir`, by name.
///
/// # Errors
/// An unreadable directory or the first invalid scenario.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let file = dir.display().to_string();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| err(&file, "", e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load(p)).collect()
}
