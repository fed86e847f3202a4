//! A chaos run from start to record: allow-list, steady state before, the fault through its
//! driver, abort conditions watched throughout, steady state after, the alerts the run RAISED,
//! recovery, and the ChaosRun recorded (TARGETED its service, AGAINST the deployment live on it).

use crate::scenario::{Driver, Scenario};
use chrono::{DateTime, Utc};
use deploygraph_model::{AlertStatus, ChaosRun, ChaosVerdict, DeploymentStatus, ServiceRef, Uid};
use deploygraph_store::{AlertFilter, DeploymentFilter, GraphStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario targets a namespace it does not allow.
    #[error(
        "namespace {namespace:?} is not in the scenario's allowed_namespaces {allowed:?}; nothing was created"
    )]
    NamespaceNotAllowed {
        /// The target namespace.
        namespace: String,
        /// The allow-list.
        allowed: Vec<String>,
    },
    /// The steady state did not hold before the fault; nothing was injected.
    #[error("the steady state does not hold before the experiment ({0}); nothing was injected")]
    NotSteady(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] deploygraph_store::Error),
    /// The driver failed.
    #[error("{0}")]
    Driver(String),
    /// The scenario cannot run this way.
    #[error("{0}")]
    Usage(String),
}

/// The run's uid: the scenario and its start, so re-recording the same run updates it.
pub fn run_uid(scenario: &str, started_at: &DateTime<Utc>) -> Uid {
    Uid::derive(
        "chaos-run",
        &[scenario, &deploygraph_model::format_time(started_at)],
    )
}

/// Checks the allow-list before anything is created.
///
/// # Errors
/// [`RunError::NamespaceNotAllowed`].
pub fn check_allowed(scenario: &Scenario) -> Result<(), RunError> {
    if let Some(ns) = &scenario.target.service.namespace
        && !scenario.allowed_namespaces.contains(ns)
    {
        return Err(RunError::NamespaceNotAllowed {
            namespace: ns.clone(),
            allowed: scenario.allowed_namespaces.clone(),
        });
    }
    if scenario.driver == Driver::Litmus && scenario.target.service.namespace.is_none() {
        return Err(RunError::Usage(
            "a litmus scenario needs target.namespace".into(),
        ));
    }
    Ok(())
}

/// Runs the scenario's steady-state checks: `Ok(None)` when they hold (or there are none),
/// `Ok(Some(what failed))` when not.
///
/// # Errors
/// A configuration the checks cannot run with.
pub async fn steady_state(scenario: &Scenario) -> Result<Option<String>, RunError> {
    let Some(text) = &scenario.steady_state else {
        return Ok(None);
    };
    let plan = deploygraph_probe::config::parse(text)
        .and_then(|c| c.plan())
        .map_err(|e| RunError::Usage(format!("steady_state.{}: {}", e.field, e.message)))?;
    let results = deploygraph_probe::runner::run(&plan.checks, &plan.options).await;
    let verdict = deploygraph_probe::gate::verdict(&results, plan.policy);
    if verdict.pass {
        return Ok(None);
    }
    let failing: Vec<String> = results
        .iter()
        .filter(|r| r.status != deploygraph_probe::check::Status::Pass)
        .map(|r| format!("{} {}: {}", r.kind.as_str(), r.target, r.detail))
        .collect();
    Ok(Some(failing.join("; ")))
}

/// The image digests the target's Pods run (`containerStatuses[].imageID`).
async fn running_digests(client: &kube::Client, scenario: &Scenario) -> Vec<String> {
    use kube::api::{Api, ListParams};
    let ns = scenario
        .target
        .service
        .namespace
        .clone()
        .unwrap_or_default();
    let selector = scenario.target.selector();
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().labels(&selector))
        .await;
    let Ok(pods) = pods else {
        return Vec::new();
    };
    let mut digests: Vec<String> = pods
        .items
        .iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| {
            c.image_id
                .rfind("sha256:")
                .map(|at| c.image_id[at..].to_owned())
        })
        .collect();
    digests.sort();
    digests.dedup();
    digests
}

/// The deployment running on the target: the newest whose images include one of `digests`
/// (what the target's Pods run), else the newest that succeeded or is rolling out.
///
/// # Errors
/// [`RunError::Store`].
pub async fn deployment_running(
    store: &dyn GraphStore,
    target: &ServiceRef,
    digests: &[String],
) -> Result<Option<Uid>, RunError> {
    let page = store
        .list_deployments(&DeploymentFilter {
            service: Some(target.name.clone()),
            environment: Some(target.environment.clone()),
            limit: 100,
            ..DeploymentFilter::default()
        })
        .await?;
    let deployments: Vec<_> = page
        .items
        .into_iter()
        .map(|s| s.deployment)
        .filter(|d| target.namespace.is_none() || d.namespace == target.namespace)
        .collect();
    let runs_a_digest = |d: &&deploygraph_model::Deployment| {
        d.images.iter().any(|i| {
            i.digest
                .as_ref()
                .is_some_and(|x| digests.iter().any(|g| g == x.as_str()))
        })
    };
    let live = |d: &&deploygraph_model::Deployment| {
        matches!(
            d.status,
            DeploymentStatus::Succeeded | DeploymentStatus::InProgress
        )
    };
    Ok(deployments
        .iter()
        .find(runs_a_digest)
        .or_else(|| deployments.iter().find(live))
        .map(|d| d.uid.clone()))
}

/// A run in progress, as first recorded.
pub fn started(
    scenario: &Scenario,
    engine: Option<String>,
    against: Option<Uid>,
    at: DateTime<Utc>,
) -> ChaosRun {
    ChaosRun {
        uid: run_uid(&scenario.name, &at),
        scenario: scenario.name.clone(),
        experiment: scenario.experiment.clone(),
        engine,
        target: scenario.target.service.clone(),
        verdict: ChaosVerdict::Awaited,
        phase: "Running".into(),
        probe_success_pct: None,
        probes: Vec::new(),
        started_at: at,
        ended_at: None,
        recovery_seconds: None,
        error_reason: None,
        against,
    }
}

/// Watches the abort conditions that need the graph: an alert of `severity` firing on the
/// target since `since`, and the deadline; `signal` (SIGINT/SIGTERM, `chaos abort`) too. The
/// receiver holds the first reason.
pub fn abort_monitor(
    store: Arc<dyn GraphStore>,
    target: ServiceRef,
    severity: Option<String>,
    since: DateTime<Utc>,
    deadline: Option<Duration>,
    signal: CancellationToken,
    poll: Duration,
) -> (watch::Receiver<Option<String>>, CancellationToken) {
    let (tx, rx) = watch::channel(None);
    let done = CancellationToken::new();
    let finished = done.clone();
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        loop {
            if let Some(severity) = &severity {
                let alerts = store
                    .list_alerts(&AlertFilter {
                        service: Some(target.name.clone()),
                        environment: Some(target.environment.clone()),
                        since: Some(since),
                        limit: 100,
                        ..AlertFilter::default()
                    })
                    .await;
                match alerts {
                    Ok(alerts) => {
                        if let Some(a) = alerts.iter().find(|a| {
                            a.status == AlertStatus::Firing
                                && a.severity.as_deref() == Some(severity.as_str())
                        }) {
                            let _ = tx.send(Some(format!(
                                "alert {} ({severity}) fired on {}",
                                a.name, target.name
                            )));
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error.message = %e, "abort monitor cannot read alerts")
                    }
                }
            }
            if let Some(deadline) = deadline
                && started.elapsed() >= deadline
            {
                let _ = tx.send(Some(format!(
                    "the deadline of {} passed",
                    humantime::format_duration(deadline)
                )));
                return;
            }
            tokio::select! {
                () = finished.cancelled() => return,
                () = signal.cancelled() => {
                    let _ = tx.send(Some("interrupted".into()));
                    return;
                }
                () = tokio::time::sleep(poll) => {}
            }
        }
    });
    (rx, done)
}

/// Links the alerts that fired on the target during the run (`RAISED`): their attribution is
/// recomputed, and a chaos run active at their start takes precedence over deployments.
///
/// # Errors
/// [`RunError::Store`].
pub async fn link_raised(
    store: &dyn GraphStore,
    run: &ChaosRun,
    now: DateTime<Utc>,
) -> Result<Vec<deploygraph_model::Alert>, RunError> {
    let alerts = store
        .list_alerts(&AlertFilter {
            service: Some(run.target.name.clone()),
            environment: Some(run.target.environment.clone()),
            since: Some(run.started_at),
            until: Some(run.ended_at.unwrap_or(now)),
            limit: 1000,
            ..AlertFilter::default()
        })
        .await?;
    let settings = deploygraph_analysis::attribution::Settings::default();
    for alert in &alerts {
        deploygraph_analysis::engine::attribute_alert(store, alert, &settings, now).await?;
    }
    Ok(alerts)
}

/// Seconds from the end of the fault until every alert it raised resolved and `ready` says the
/// target is ready again; `None` when that did not happen within `timeout`.
pub async fn recovery(
    store: &dyn GraphStore,
    raised: &[deploygraph_model::Alert],
    ended_at: DateTime<Utc>,
    timeout: Duration,
    mut ready: impl AsyncFnMut() -> bool,
) -> Option<f64> {
    let give_up = tokio::time::Instant::now() + timeout;
    loop {
        let mut open = false;
        for alert in raised {
            if let Ok(Some(a)) = store.get_alert(&alert.uid).await
                && a.status == AlertStatus::Firing
            {
                open = true;
            }
        }
        if !open && ready().await {
            let recovered = raised
                .iter()
                .filter_map(|a| a.ends_at)
                .chain(std::iter::once(Utc::now()))
                .max()
                .unwrap_or_else(Utc::now);
            return Some(((recovered - ended_at).num_milliseconds().max(0) as f64) / 1000.0);
        }
        if tokio::time::Instant::now() >= give_up {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Bounds of a run.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long the operator has to acknowledge a stop.
    pub ack_timeout: Duration,
    /// How long, after the fault, the raised alerts have to resolve and the target to be ready.
    pub recovery_timeout: Duration,
    /// How often abort conditions are checked.
    pub poll: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ack_timeout: Duration::from_secs(30),
            recovery_timeout: Duration::from_secs(300),
            poll: Duration::from_secs(1),
        }
    }
}

/// The ChaosEngine's name for a run of `scenario` started at `at`: the scenario's name and a
/// short suffix, within Kubernetes' 63 characters.
pub fn engine_name(scenario: &str, at: &DateTime<Utc>) -> String {
    let uid = run_uid(scenario, at);
    let suffix: String = uid.as_str().chars().rev().take(6).collect();
    let stem: String = scenario.chars().take(50).collect();
    format!("{}-{suffix}", stem.trim_end_matches('-'))
}

/// The ChaosEngine a Litmus scenario applies.
pub fn engine_request(scenario: &Scenario, engine: &str) -> crate::litmus::EngineRequest {
    let mut env = scenario.tunables.clone();
    env.insert(
        "TOTAL_CHAOS_DURATION".into(),
        scenario.duration.as_secs().max(1).to_string(),
    );
    let namespace = scenario
        .target
        .service
        .namespace
        .clone()
        .unwrap_or_default();
    crate::litmus::EngineRequest {
        namespace: namespace.clone(),
        engine: engine.to_owned(),
        experiment: scenario.experiment.clone(),
        app: crate::litmus::AppInfo {
            namespace,
            label: scenario.target.selector(),
            kind: scenario.target.kind.clone(),
        },
        service_account: scenario.service_account.clone(),
        env,
        probes: scenario
            .probes
            .iter()
            .map(|p| {
                let mut p = p.clone();
                if scenario.abort.on_probe_failure
                    && let Some(props) = p.get_mut("runProperties").and_then(|r| r.as_object_mut())
                {
                    props.insert("stopOnFailure".into(), serde_json::Value::Bool(true));
                }
                p
            })
            .collect(),
    }
}

/// The local fault of a scenario.
///
/// # Errors
/// [`RunError::Usage`] naming the field.
pub fn local_fault(scenario: &Scenario) -> Result<crate::local::LocalFault, RunError> {
    let value = scenario
        .local
        .clone()
        .ok_or_else(|| RunError::Usage("local: is required for the local driver".into()))?;
    crate::local::LocalFault::from_value(value).map_err(|e| RunError::Usage(format!("local: {e}")))
}

/// What a dry run would apply.
///
/// # Errors
/// [`RunError::NamespaceNotAllowed`], [`RunError::Usage`].
pub fn dry_run(scenario: &Scenario, at: DateTime<Utc>) -> Result<serde_json::Value, RunError> {
    check_allowed(scenario)?;
    Ok(match scenario.driver {
        Driver::Litmus => crate::litmus::engine_manifest(&engine_request(
            scenario,
            &engine_name(&scenario.name, &at),
        )),
        Driver::Local => serde_json::to_value(local_fault(scenario)?)
            .map_err(|e| RunError::Usage(e.to_string()))?,
    })
}

async fn record(store: &dyn GraphStore, run: &ChaosRun) -> Result<(), RunError> {
    let mut delay = Duration::from_millis(200);
    for attempt in 0..6 {
        match store.record_chaos_run(run).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_unavailable() && attempt < 5 => {
                tracing::warn!(error.message = %e, "cannot record the chaos run; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn workload_ready(client: &kube::Client, scenario: &Scenario) -> bool {
    use kube::api::{Api, ListParams};
    let ns = scenario
        .target
        .service
        .namespace
        .clone()
        .unwrap_or_default();
    let selector = scenario.target.selector();
    let lp = ListParams::default().labels(&selector);
    match scenario.target.kind.as_str() {
        "statefulset" => {
            Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(client.clone(), &ns)
                .list(&lp)
                .await
                .is_ok_and(|l| {
                    l.items.iter().all(|s| {
                        let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                        s.status
                            .as_ref()
                            .and_then(|s| s.ready_replicas)
                            .unwrap_or(0)
                            >= want
                    })
                })
        }
        "daemonset" => {
            Api::<k8s_openapi::api::apps::v1::DaemonSet>::namespaced(client.clone(), &ns)
                .list(&lp)
                .await
                .is_ok_and(|l| {
                    l.items.iter().all(|d| {
                        d.status
                            .as_ref()
                            .is_some_and(|s| s.number_ready >= s.desired_number_scheduled)
                    })
                })
        }
        _ => Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &ns)
            .list(&lp)
            .await
            .is_ok_and(|l| {
                l.items.iter().all(|d| {
                    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    d.status
                        .as_ref()
                        .and_then(|s| s.available_replicas)
                        .unwrap_or(0)
                        >= want
                })
            }),
    }
}

/// Where the run happens.
pub struct Context {
    /// The graph.
    pub store: Arc<dyn GraphStore>,
    /// The cluster, for Litmus scenarios.
    pub kube: Option<kube::Client>,
    /// Bounds.
    pub settings: Settings,
    /// SIGINT/SIGTERM.
    pub signal: CancellationToken,
}

/// Runs `scenario` and records it. Without `wait`, a Litmus run is recorded as started and left
/// to the operator (`chaos show` refreshes it); a local fault always runs to its end.
///
/// # Errors
/// [`RunError`]: the allow-list, the steady state before, the driver, the store.
pub async fn execute(scenario: &Scenario, ctx: &Context, wait: bool) -> Result<ChaosRun, RunError> {
    check_allowed(scenario)?;
    let store = ctx.store.as_ref();
    let fault = match scenario.driver {
        Driver::Local => Some(local_fault(scenario)?),
        Driver::Litmus => None,
    };
    let client = match scenario.driver {
        Driver::Litmus => Some(ctx.kube.clone().ok_or_else(|| {
            RunError::Usage("a litmus scenario needs a cluster (--kubeconfig)".into())
        })?),
        Driver::Local => None,
    };
    let ns = scenario
        .target
        .service
        .namespace
        .clone()
        .unwrap_or_default();
    if let Some(client) = &client {
        crate::litmus::ensure_experiment(client, &ns, &scenario.experiment)
            .await
            .map_err(|e| RunError::Driver(e.to_string()))?;
    }
    if let Some(reason) = steady_state(scenario).await? {
        return Err(RunError::NotSteady(reason));
    }
    let digests = match &client {
        Some(c) => running_digests(c, scenario).await,
        None => Vec::new(),
    };
    let against = deployment_running(store, &scenario.target.service, &digests).await?;
    let started_at = Utc::now();
    let engine =
        (scenario.driver == Driver::Litmus).then(|| engine_name(&scenario.name, &started_at));
    let mut run = started(scenario, engine.clone(), against, started_at);
    let (abort, monitor) = abort_monitor(
        Arc::clone(&ctx.store),
        scenario.target.service.clone(),
        scenario.abort.alert_severity.clone(),
        started_at,
        scenario.abort.deadline,
        ctx.signal.clone(),
        ctx.settings.poll,
    );
    let outcome: Result<(), RunError> = async {
        match (&client, &fault, &engine) {
            (Some(client), _, Some(engine)) => {
                let request = engine_request(scenario, engine);
                crate::litmus::create_engine(client, &request)
                    .await
                    .map_err(|e| RunError::Driver(e.to_string()))?;
                tracing::info!(engine, namespace = %ns, experiment = %scenario.experiment, "chaos engine created");
                record(store, &run).await?;
                if !wait {
                    return Ok(());
                }
                let o = crate::litmus::follow(client, &ns, engine, &scenario.experiment, abort.clone(), ctx.settings.ack_timeout)
                    .await
                    .map_err(|e| RunError::Driver(e.to_string()))?;
                run.verdict = o.verdict;
                run.phase = o.phase;
                run.probe_success_pct = o.probe_success_pct;
                run.probes = o.probes;
                run.error_reason = o.error_reason;
                run.ended_at = Some(o.ended_at.max(started_at));
                Ok(())
            }
            (None, Some(fault), _) => {
                // The local driver blocks (it runs ip, tc, kill and waits for processes).
                let fault = fault.clone();
                let mut guard = tokio::task::spawn_blocking(move || fault.inject())
                    .await
                    .map_err(|e| RunError::Driver(e.to_string()))?
                    .map_err(|e| RunError::Driver(e.to_string()))?;
                tracing::info!(scenario = %scenario.name, "local fault injected");
                record(store, &run).await?;
                let mut abort_rx = abort.clone();
                let stopped = tokio::select! {
                    () = tokio::time::sleep(scenario.duration) => None,
                    reason = async {
                        loop {
                            if let Some(r) = abort_rx.borrow_and_update().clone() {
                                return r;
                            }
                            if abort_rx.changed().await.is_err() {
                                std::future::pending::<()>().await;
                            }
                        }
                    } => Some(reason),
                };
                let reverted = tokio::task::spawn_blocking(move || guard.revert())
                    .await
                    .map_err(|e| RunError::Driver(e.to_string()))?;
                run.ended_at = Some(Utc::now());
                if let Err(e) = reverted {
                    run.verdict = ChaosVerdict::Error;
                    run.phase = "Error".into();
                    run.error_reason = Some(format!("the fault could not be reverted: {e}"));
                } else if let Some(reason) = stopped {
                    run.verdict = ChaosVerdict::Stopped;
                    run.phase = "Stopped".into();
                    run.error_reason = Some(reason);
                } else {
                    run.verdict = ChaosVerdict::Pass;
                    run.phase = "Completed".into();
                }
                Ok(())
            }
            _ => Err(RunError::Usage("the scenario's driver has nothing to run".into())),
        }
    }
    .await;
    monitor.cancel();
    if let Err(e) = outcome {
        if run.ended_at.is_none() && engine.is_none() {
            return Err(e);
        }
        run.verdict = ChaosVerdict::Error;
        run.phase = "Error".into();
        run.error_reason = Some(e.to_string());
        run.ended_at.get_or_insert_with(Utc::now);
        record(store, &run).await?;
        return Err(e);
    }
    if run.ended_at.is_none() {
        // Left to the operator.
        return Ok(run);
    }
    // The steady state must hold again afterwards.
    if run.verdict == ChaosVerdict::Pass
        && let Some(reason) = steady_state(scenario).await?
    {
        run.verdict = ChaosVerdict::Fail;
        run.phase = "Completed".into();
        run.error_reason = Some(format!(
            "the steady state does not hold after the experiment: {reason}"
        ));
    }
    record(store, &run).await?;
    let ended_at = run.ended_at.unwrap_or_else(Utc::now);
    let raised = link_raised(store, &run, Utc::now()).await?;
    let ready_client = client.clone();
    run.recovery_seconds = recovery(
        store,
        &raised,
        ended_at,
        ctx.settings.recovery_timeout,
        async || match &ready_client {
            Some(c) => workload_ready(c, scenario).await,
            None => steady_state(scenario).await.is_ok_and(|r| r.is_none()),
        },
    )
    .await;
    record(store, &run).await?;
    Ok(run)
}

/// Refreshes a Litmus run recorded without `--wait` from its ChaosResult; returns it updated
/// when the result is final.
///
/// # Errors
/// [`RunError::Driver`], [`RunError::Store`].
pub async fn refresh(
    store: &dyn GraphStore,
    client: &kube::Client,
    run: &ChaosRun,
) -> Result<Option<ChaosRun>, RunError> {
    use kube::api::{Api, DynamicObject};
    let (Some(engine), Some(ns)) = (&run.engine, &run.target.namespace) else {
        return Ok(None);
    };
    if run.ended_at.is_some() {
        return Ok(None);
    }
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &crate::litmus::result_resource());
    let Some(result) = api
        .get_opt(&crate::litmus::result_name(engine, &run.experiment))
        .await
        .map_err(|e| RunError::Driver(e.to_string()))?
    else {
        return Ok(None);
    };
    let status =
        crate::litmus::ResultStatus::parse(&result.data["status"]).map_err(RunError::Driver)?;
    if !status.is_final() {
        return Ok(None);
    }
    let mut updated = run.clone();
    updated.verdict = status.verdict;
    updated.phase = status.phase;
    updated.probe_success_pct = status.probe_success_pct;
    updated.probes = status.probes;
    updated.error_reason = status.error_reason;
    updated.ended_at = Some(Utc::now());
    record(store, &updated).await?;
    link_raised(store, &updated, Utc::now()).await?;
    Ok(Some(updated))
}

/// Stops a Litmus run in progress and records it stopped with `reason`.
///
/// # Errors
/// [`RunError::Usage`] for a run that is over or not a Litmus run; [`RunError::Driver`].
pub async fn abort(
    store: &dyn GraphStore,
    client: &kube::Client,
    run: &ChaosRun,
    reason: &str,
) -> Result<ChaosRun, RunError> {
    let (Some(engine), Some(ns)) = (&run.engine, &run.target.namespace) else {
        return Err(RunError::Usage(format!(
            "run {} is not a Litmus run; stop a local fault with SIGINT or SIGTERM to its chaos run",
            run.uid
        )));
    };
    if run.ended_at.is_some() {
        return Err(RunError::Usage(format!(
            "run {} is already over ({})",
            run.uid,
            run.verdict.as_str()
        )));
    }
    crate::litmus::stop_engine(client, ns, engine)
        .await
        .map_err(|e| RunError::Driver(e.to_string()))?;
    let mut stopped = run.clone();
    stopped.verdict = ChaosVerdict::Stopped;
    stopped.phase = "Stopped".into();
    stopped.error_reason = Some(reason.to_owned());
    stopped.ended_at = Some(Utc::now());
    record(store, &stopped).await?;
    Ok(stopped)
}
