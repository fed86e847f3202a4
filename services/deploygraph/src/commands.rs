//! The subcommands, and the exit code of each outcome ([`EXIT_CODES`]).

use crate::cli::{
    Command, HelmCommand, MigrateArgs, Output, QueryCommand, QueryDeploymentsArgs, RecordCommand,
    RecordDeploymentArgs, ServeArgs, StoreOptions,
};
use anyhow::Context as _;
use deploygraph_api::snapshotter::Snapshotter;
use deploygraph_api::{ApiConfig, AppState};
use deploygraph_client::DeploymentsQuery;
use deploygraph_model::deployment::{CommitInput, DeploymentInput, ImageInput};
use deploygraph_model::{Source, format_time};
use deploygraph_store::{FilterParams, GraphStore, MigrationSource, StoreConfig};
use secrecy::SecretString;
use serde_json::Value;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Time limit of one alert-onset read from Prometheus (`serve --prometheus`).
const ONSET_TIMEOUT: Duration = Duration::from_secs(5);

/// The exit codes of every command, as `--help` and the README print them.
pub const EXIT_CODES: &str = "\
Exit codes (every command):
  0  ok
  1  rejected or failed: the server or store said no (401, 403, 404, 409, …), a check
     failed, a verdict was not the expected one, a canary failed
  2  usage: a bad flag or value, an unreadable or invalid input file, a request the
     server refused as invalid (400, 422), a query stopped at its time limit (504
     `query_timed_out`), or that the store cannot answer (404 `unsupported`: Cypher on
     SQLite)
  3  unreachable: the server or store could not be reached (after the retries of
     --server, or a 503 that outlasted them), or Prometheus for `canary analyze` and
     `canary summarize`
  4  canary inconclusive or no data: `canary analyze` reached --max-duration without a
     pass or a fail; `canary summarize` found no series for any metric (nothing recorded)
  5  rollback failed: `canary analyze --rollback` found the canary failed and could not
     roll back (a paused Deployment, no previous revision, the API server or helm refused)

`canary analyze --deployment`/`--environment` exits 2 or 3 only before the first analysis
(a deployment that cannot be recorded); a failed recording afterwards is reported and
the exit code stays the verdict's; so does a rollback that was done but not recorded.";

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// What went wrong, for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Exit 2: bad usage or input.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }

    /// Exit 1: rejected, or a check failed.
    pub fn rejected(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }

    /// Exit 3: the server or store could not be reached.
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self {
            code: 3,
            message: message.into(),
        }
    }

    /// Exit 4: a canary analysis ended without a pass or a fail.
    pub fn inconclusive(message: impl Into<String>) -> Self {
        Self {
            code: 4,
            message: message.into(),
        }
    }

    /// Exit 5: the canary failed and `--rollback` could not roll it back.
    pub fn rollback_failed(message: impl Into<String>) -> Self {
        Self {
            code: 5,
            message: message.into(),
        }
    }

    /// Standard output was closed by its reader (`| head`): nothing more to say, exit 0.
    pub fn output_closed() -> Self {
        Self {
            code: 0,
            message: String::new(),
        }
    }

    /// An API request that failed while doing `what`, with its exit code: 2 for a request the
    /// server calls invalid (400, 422) or cannot answer on its store (`unsupported`), 3 when it could not
    /// be reached, 1 for every other refusal.
    pub fn from_api(what: &str, e: deploygraph_client::Error) -> Self {
        use deploygraph_client::Error;
        match e {
            Error::Rejected {
                status,
                code,
                message,
                field,
            } => {
                let field = field
                    .filter(|f| !f.is_empty())
                    .map_or(String::new(), |f| format!("{f}: "));
                let text = format!("{what}: refused ({status}): {field}{message}");
                match status {
                    // The store cannot do this at all (Cypher on SQLite): a usage error.
                    _ if code == "unsupported" => Self::usage(format!(
                        "{text} (Cypher needs a Neo4j store: --store neo4j://… or a server on one)"
                    )),
                    // A query stopped at the server's time limit: the query is to change,
                    // as for a refused one.
                    _ if code == "query_timed_out" => Self::usage(text),
                    400 | 422 | 501 => Self::usage(text),
                    _ => Self::rejected(text),
                }
            }
            e @ Error::Unavailable { .. } => Self::unreachable(format!("{what}: {e}")),
            // The request reached the server, which may still be working on it: not sent again.
            e @ (Error::Protocol { .. } | Error::NoAnswer { .. }) => {
                Self::rejected(format!("{what}: {:#}", anyhow::Error::new(e)))
            }
        }
    }

    /// A store error while doing `what`: exit 3 when the store cannot be reached, else 1.
    pub fn from_store(what: &str, e: deploygraph_store::Error) -> Self {
        let unavailable = e.is_unavailable();
        let text = format!("{:#}", anyhow::Error::new(e).context(what.to_owned()));
        if unavailable {
            Self::unreachable(text)
        } else {
            Self::rejected(text)
        }
    }
}

/// Anything else that went wrong: a failure, exit 1.
impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self {
            code: 1,
            message: format!("{e:#}"),
        }
    }
}

type Outcome = Result<(), Failure>;

pub async fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Serve(args) => serve(*args).await,
        Command::Agent(args) => crate::agent::run(*args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Record(RecordCommand::Deployment(args)) => record_deployment(*args).await,
        Command::Record(RecordCommand::Alert(args)) => record_alert(*args).await,
        Command::Record(RecordCommand::Change(args)) => crate::record_change::run(*args).await,
        Command::Query(QueryCommand::Deployments(args)) => query_deployments(args).await,
        Command::Gate(args) => crate::gate::gate(args).await,
        Command::Snapshot(args) => crate::gate::snapshot(args).await,
        Command::Helm(HelmCommand::Decode(args)) => crate::helm::decode(&args),
        Command::Helm(HelmCommand::Diff(args)) => crate::helm::diff(&args).await,
        Command::Query(QueryCommand::Alerts(args)) => crate::insight::query_alerts(args).await,
        Command::Query(QueryCommand::Suspects(args)) => crate::insight::query_suspects(args).await,
        Command::Query(QueryCommand::Timeline(args)) => crate::insight::query_timeline(args).await,
        Command::Query(QueryCommand::CommonFactors(args)) => {
            crate::insight::query_common_factors(args).await
        }
        Command::Query(QueryCommand::Dora(args)) => crate::insight::query_dora(args).await,
        Command::Query(QueryCommand::Cypher(args)) => crate::insight::query_cypher(args).await,
        Command::Ask(args) => crate::insight::ask(args).await,
        Command::Healthcheck(args) => healthcheck(args).await,
        Command::Report(crate::cli::ReportCommand::Incident(args)) => {
            crate::insight::report_incident(args).await
        }
        Command::Chaos(crate::cli::ChaosCommand::List(args)) => crate::chaos::list(args).await,
        Command::Chaos(crate::cli::ChaosCommand::Show(args)) => crate::chaos::show(args).await,
        Command::Chaos(crate::cli::ChaosCommand::Run(args)) => crate::chaos::run(args).await,
        Command::Chaos(crate::cli::ChaosCommand::Abort(args)) => crate::chaos::abort(args).await,
        Command::Query(QueryCommand::Resilience(args)) => {
            crate::insight::query_resilience(args).await
        }
        Command::Topology(crate::cli::TopologyCommand::Apply(args)) => {
            crate::topology::apply(args).await
        }
        Command::Topology(crate::cli::TopologyCommand::Import(args)) => {
            crate::topology::import(args).await
        }
        Command::Canary(crate::cli::CanaryCommand::Summarize(args)) => {
            crate::canary_history::summarize(*args).await
        }
        Command::Canary(crate::cli::CanaryCommand::Analyze(args)) => {
            crate::canary::analyze(*args).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("error: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

fn store_config(options: &StoreOptions) -> Result<StoreConfig, Failure> {
    StoreConfig::parse(
        &options.store,
        options.neo4j_user.clone(),
        options.neo4j_password.clone().map(SecretString::from),
    )
    .map(|config| {
        config
            .with_max_connections(options.neo4j.max_connections.map(usize::from))
            .with_database(options.neo4j.database.clone())
    })
    .map_err(|e| Failure::usage(format!("--store: {e}")))
}

fn migration_source(options: &StoreOptions) -> MigrationSource {
    options
        .migrations_dir
        .clone()
        .map_or(MigrationSource::Embedded, MigrationSource::Directory)
}

async fn open_store(options: &StoreOptions) -> Result<Arc<dyn GraphStore>, Failure> {
    let config = store_config(options)?;
    // A store that opens badly (a path that cannot be created, say) is a bad --store value.
    deploygraph_store::open(&config, migration_source(options))
        .await
        .map_err(|e| {
            let failure = Failure::from_store("failed to open the store", e);
            if failure.code == 3 {
                failure
            } else {
                Failure::usage(format!("--store: {}", failure.message))
            }
        })
}

/// A migration that cannot apply is a bad input file (`--migrations-dir`, exit 2); a store
/// that cannot be reached exits 3.
fn migration_failure(e: deploygraph_store::Error) -> Failure {
    let failure = Failure::from_store("failed to migrate the store", e);
    if failure.code == 3 {
        failure
    } else {
        Failure::usage(failure.message)
    }
}

/// Opens the store and applies pending migrations, as every command that writes does.
pub async fn open_migrated(options: &StoreOptions) -> Result<Arc<dyn GraphStore>, Failure> {
    let store = open_store(options).await?;
    store.migrate().await.map_err(migration_failure)?;
    Ok(store)
}

async fn migrate(args: MigrateArgs) -> Outcome {
    let store = open_store(&args.store).await?;
    let applied = store.migrate().await.map_err(migration_failure)?;
    if applied.is_empty() {
        crate::outln!("{} store is up to date", store.backend())?;
    }
    for m in applied {
        crate::outln!("applied {} ({})", m.name, &m.checksum[..12])?;
    }
    Ok(())
}

fn read_token(args: &ServeArgs) -> Result<Option<SecretString>, Failure> {
    token_from(args.auth.token.as_deref(), args.auth.token_file.as_deref())
}

/// The token given as `--token`, else the first line of `--token-file`; `None` without either.
pub(crate) fn token_from(
    token: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Option<SecretString>, Failure> {
    if let Some(token) = token {
        return Ok(
            Some(SecretString::from(token.trim().to_owned())).filter(|_| !token.trim().is_empty())
        );
    }
    let Some(path) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("--token-file {}: {e}", path.display())))?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        return Err(Failure::usage(format!(
            "--token-file {}: the file is empty",
            path.display()
        )));
    }
    Ok(Some(SecretString::from(token)))
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Logs the migrations one `migrate` applied: how many, and their names.
fn log_migrated(store: &dyn GraphStore, applied: &[deploygraph_store::AppliedMigration]) {
    let names: Vec<&str> = applied.iter().map(|m| m.name.as_str()).collect();
    tracing::info!(
        applied = applied.len(),
        migrations = %names.join(","),
        backend = store.backend(),
        "store migrated"
    );
}

/// Applies migrations until they succeed: a store that is down at start-up is waited for,
/// while `/readyz` says 503. A migration that cannot apply (an edited file) stops the server.
async fn keep_migrating(store: Arc<dyn GraphStore>, stop: CancellationToken) {
    let mut pause = Duration::from_millis(500);
    loop {
        match store.migrate().await {
            Ok(applied) => {
                log_migrated(store.as_ref(), &applied);
                return;
            }
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error.message = %e, retry_in_ms = pause.as_millis() as u64, "store unavailable; will retry migrations");
            }
            Err(e) => {
                tracing::error!(error.message = %e, error.cause_chain = ?e, "migrations failed; stopping");
                stop.cancel();
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {},
            () = stop.cancelled() => return,
        }
        pause = (pause * 2).min(Duration::from_secs(15));
    }
}

/// Attribution settings from the command line.
pub fn attribution_settings(
    args: &crate::cli::AttributionArgs,
) -> Result<deploygraph_analysis::attribution::Settings, Failure> {
    let window = deploygraph_probe::config::parse_duration(&args.attribution_window)
        .map_err(|e| Failure::usage(format!("--attribution-window: {e}")))?;
    if !(0.0..=1.0).contains(&args.attribution_floor) {
        return Err(Failure::usage(
            "--attribution-floor: must be between 0 and 1",
        ));
    }
    Ok(deploygraph_analysis::attribution::Settings {
        window: chrono::Duration::from_std(window)
            .map_err(|e| Failure::usage(format!("--attribution-window: {e}")))?,
        floor: args.attribution_floor,
        depth: args.attribution_depth,
    })
}

/// Reads a topology file and records every service's `manual` dependencies, owner and tier.
pub async fn apply_topology(
    store: &dyn GraphStore,
    path: &std::path::Path,
) -> Result<usize, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("topology file {}: {e}", path.display())))?;
    let input: deploygraph_model::topology::TopologyInput = serde_norway::from_str(&text)
        .map_err(|e| Failure::usage(format!("topology file {}: {e}", path.display())))?;
    let services = input
        .validate()
        .map_err(|e| Failure::usage(format!("topology file {}: {e}", path.display())))?;
    let count = services.len();
    store
        .apply_topology(&deploygraph_store::TopologyUpdate {
            source: deploygraph_model::topology::EdgeSource::Manual,
            seen_at: chrono::Utc::now(),
            mode: deploygraph_store::TopologyMode::Replace,
            services,
        })
        .await
        .map_err(|e| Failure::from_store("failed to record the topology", e))?;
    tracing::info!(services = count, file = %path.display(), "topology applied");
    Ok(count)
}

/// What `serve --topology-prometheus-url` reads and how often, checked before anything starts.
fn mesh_config(
    args: &ServeArgs,
    cluster: &deploygraph_model::Cluster,
) -> Result<Option<(deploygraph_api::mesh::MeshConfig, Duration)>, Failure> {
    let Some(url) = &args.topology_prometheus_url else {
        return Ok(None);
    };
    let environment = deploygraph_model::Environment::parse(&args.topology_environment)
        .map_err(|e| Failure::usage(format!("--topology-environment: {e}")))?;
    let mut config = deploygraph_api::mesh::MeshConfig::new(url, environment)
        .map_err(|e| Failure::usage(format!("--topology-prometheus-url {e}")))?;
    config.cluster = cluster.clone();
    config.window = deploygraph_probe::config::parse_duration(&args.topology_prometheus_window)
        .map_err(|e| Failure::usage(format!("--topology-prometheus-window: {e}")))?;
    let interval = deploygraph_probe::config::parse_duration(&args.topology_prometheus_interval)
        .map_err(|e| Failure::usage(format!("--topology-prometheus-interval: {e}")))?;
    if interval.is_zero() || config.window.as_secs() == 0 {
        return Err(Failure::usage(
            "--topology-prometheus-interval and --topology-prometheus-window: must be at least 1s",
        ));
    }
    Ok(Some((config, interval)))
}

/// Starts the Kubernetes watcher: it campaigns for the Lease and records rollouts (and edits of
/// the ConfigMaps, Secrets and HPAs workloads use) while it leads.
///
/// With `analyses` (where they are recorded, the canary hooks, the most analyses at once and
/// whether they may roll back), new
/// rollouts of workloads with canary annotations are analysed ([`crate::canary_watch`]).
/// Starts the workload watcher (and the Helm watcher with `--watch-helm`) under Lease
/// election, recording into `store`: the store itself (`serve`) or the agent's spool.
pub(crate) async fn start_watcher(
    args: &crate::cli::WatchArgs,
    cluster: deploygraph_model::Cluster,
    store: Arc<dyn deploygraph_k8s::sink::RecordSink>,
    metrics: Arc<deploygraph_api::metrics::Metrics>,
    stop: CancellationToken,
    analyses: Option<(
        Arc<dyn crate::canary_watch::Records>,
        deploygraph_api::canary::HooksConfig,
        usize,
        bool,
    )>,
) -> Result<(), Failure> {
    use deploygraph_k8s::helm_watch::HelmWatcher;
    use deploygraph_k8s::leader::LeaseConfig;
    use deploygraph_k8s::watcher::{WatchConfig, WorkloadWatcher, run_elected};
    let environment = deploygraph_model::Environment::parse(&args.environment)
        .map_err(|e| Failure::usage(format!("--watch-environment: {e}")))?;
    if args.helm_max_release_bytes == 0 {
        return Err(Failure::usage(
            "--watch-helm-max-release-bytes: must be at least 1",
        ));
    }
    let limits = deploygraph_helm::Limits {
        max_release_bytes: args.helm_max_release_bytes,
        ..deploygraph_helm::Limits::default()
    };
    let client = crate::helm::kube_client(args.kubeconfig.as_deref()).await?;
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
        format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "deploygraph".into()),
            std::process::id()
        )
    });
    let lease_namespace = args
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".into());
    let lease = LeaseConfig::new(&lease_namespace, &args.lease_name, &identity);
    let config = WatchConfig {
        namespaces: args.namespaces.clone(),
        label_selector: args.selector.clone(),
        environment: environment.clone(),
        cluster: cluster.clone(),
        skip_helm_managed: args.watch_helm,
    };
    tracing::info!(identity = %identity, lease = %format!("{lease_namespace}/{}", args.lease_name), "Kubernetes watcher campaigning for the lease");
    let watch_client = client.clone();
    let (namespaces, watch_helm) = (args.namespaces.clone(), args.watch_helm);
    let analyses = analyses.map(|(records, hooks, max, rollbacks)| {
        Arc::new(crate::canary_watch::RolloutAnalyses::new(
            records,
            hooks,
            client.clone(),
            max,
            rollbacks,
            stop.clone(),
        ))
    });
    metrics.set_leading(false);
    tokio::spawn(run_elected(client, lease, stop, move |token| {
        // Leading from here until the token is cancelled (the Lease lost, or a stop).
        metrics.set_leading(true);
        let leading = {
            let (metrics, token) = (Arc::clone(&metrics), token.clone());
            tokio::spawn(async move {
                token.cancelled().await;
                metrics.set_leading(false);
            })
        };
        let (rollouts, changes, skipped) = (
            Arc::clone(&metrics),
            Arc::clone(&metrics),
            Arc::clone(&metrics),
        );
        let mut workloads =
            WorkloadWatcher::with_sink(watch_client.clone(), Arc::clone(&store), config.clone())
                .on_recorded(move |d, kind| {
                    let workload = d.workload.as_ref().map_or("unknown", |w| w.kind.as_str());
                    rollouts.rollout(workload, kind.as_str());
                    if matches!(
                        kind,
                        deploygraph_store::RecordKind::Created
                            | deploygraph_store::RecordKind::Updated
                    ) {
                        rollouts.deployment(d.source.as_str(), d.status.as_str());
                    }
                })
                .on_change(move |c, kind| changes.change(c.kind.as_str(), kind.as_str()))
                .on_skipped(move |_, reason| skipped.skipped(reason.as_str()));
        if let Some(analyses) = &analyses {
            let analyses = Arc::clone(analyses);
            workloads = workloads.on_rollout(move |rollout| analyses.start(rollout));
        }
        let mut tasks = vec![leading, tokio::spawn(workloads.run(token.clone()))];
        if watch_helm {
            let skipped = Arc::clone(&metrics);
            let helm = HelmWatcher::with_sink(
                watch_client.clone(),
                Arc::clone(&store),
                namespaces.clone(),
                environment.clone(),
            )
            .cluster(cluster.clone())
            .decode_limits(limits)
            .on_skipped(move |_, reason| skipped.skipped(reason.as_str()));
            tasks.push(tokio::spawn(helm.run(token)));
        }
        tasks
    }));
    Ok(())
}

/// The canary hooks' Prometheus and templates (`serve`, `agent`), checked; the watched
/// rollouts' analyses need at least one slot.
///
/// # Errors
/// Exit 2 for a bad Prometheus URL, templates directory or `--canary-max-analyses`.
pub(crate) fn canary_config(
    prometheus: Option<&str>,
    args: &crate::cli::CanaryWatchArgs,
) -> Result<deploygraph_api::canary::HooksConfig, Failure> {
    let hooks =
        deploygraph_api::canary::HooksConfig::new(prometheus, args.canary_templates.clone())
            .map_err(|e| Failure::usage(format!("--prometheus / --canary-templates: {e}")))?;
    if args.canary_max_analyses == 0 {
        return Err(Failure::usage("--canary-max-analyses: must be at least 1"));
    }
    Ok(hooks)
}

/// Refuses to serve anonymous writes beyond this host unless told to (exit 2).
fn check_exposure(
    listen: std::net::SocketAddr,
    token: Option<&SecretString>,
    insecure: bool,
) -> Result<(), Failure> {
    if listen.ip().is_loopback() || token.is_some() {
        return Ok(());
    }
    if !insecure {
        return Err(Failure::usage(format!(
            "refusing to listen on {listen} without a token: anyone who reaches it could write. \
             Set --token (or --token-file), listen on a loopback address, or pass \
             --insecure-allow-anonymous-writes to accept unauthenticated writes"
        )));
    }
    tracing::warn!(
        address = %listen,
        "INSECURE: listening beyond loopback without a token (--insecure-allow-anonymous-writes): \
         anyone who reaches this address can record deployments, alerts and snapshots"
    );
    Ok(())
}

/// The admission gate's TLS listener and settings, when --admission-tls-cert is given; bad
/// flags or files are usage errors.
fn admission_config(
    args: &ServeArgs,
) -> Result<
    Option<(
        deploygraph_api::tls::TlsListener,
        deploygraph_api::admission::Config,
    )>,
    Failure,
> {
    let (Some(cert), Some(key)) = (&args.admission_tls_cert, &args.admission_tls_key) else {
        return Ok(None);
    };
    let mode = deploygraph_api::admission::Mode::parse(&args.admission_mode)
        .map_err(|e| Failure::usage(format!("--admission-mode: {e}")))?;
    let max_snapshot_age =
        deploygraph_probe::config::parse_duration(&args.admission_max_snapshot_age)
            .map_err(|e| Failure::usage(format!("--admission-max-snapshot-age: {e}")))?;
    let timeout = deploygraph_probe::config::parse_duration(&args.admission_timeout)
        .map_err(|e| Failure::usage(format!("--admission-timeout: {e}")))?;
    if timeout.is_zero() || timeout > Duration::from_secs(25) {
        return Err(Failure::usage(
            "--admission-timeout: must be more than 0 and at most 25s (a webhook times out after 30s at most)",
        ));
    }
    if max_snapshot_age.is_zero() {
        return Err(Failure::usage(
            "--admission-max-snapshot-age: must be more than 0",
        ));
    }
    let certs = deploygraph_api::tls::CertFiles::open(cert, key)
        .map_err(|e| Failure::usage(format!("--admission-tls-cert/--admission-tls-key: {e}")))?;
    let client_ca = args
        .admission_client_ca
        .as_deref()
        .map(deploygraph_api::tls::read_pem_certs)
        .transpose()
        .map_err(|e| Failure::usage(format!("--admission-client-ca: {e}")))?;
    let tcp = std::net::TcpListener::bind(args.admission_listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std)
        .with_context(|| {
            format!(
                "failed to listen on {} (--admission-listen)",
                args.admission_listen
            )
        })?;
    let listener = deploygraph_api::tls::TlsListener::new(tcp, Arc::new(certs), client_ca)
        .map_err(|e| Failure::usage(format!("--admission-client-ca: {e}")))?;
    tracing::info!(address = %args.admission_listen, mode = %args.admission_mode, "serving the admission gate (TLS)");
    Ok(Some((
        listener,
        deploygraph_api::admission::Config {
            mode,
            max_snapshot_age,
            cluster: args.cluster.clone(),
            timeout,
            template_hash: Some(deploygraph_k8s::observe::template_hash_of),
        },
    )))
}

async fn serve(args: ServeArgs) -> Outcome {
    let token = read_token(&args)?;
    check_exposure(
        args.listen,
        token.as_ref(),
        args.insecure_allow_anonymous_writes,
    )?;
    let read_token = match args.read_token.as_deref().map(str::trim) {
        Some("") => return Err(Failure::usage("--read-token: must not be empty")),
        other => other.map(|t| SecretString::from(t.to_owned())),
    };
    for target in &args.snapshot_allow_targets {
        deploygraph_api::snapshot_targets::parse_allowed(target)
            .map_err(|e| Failure::usage(format!("--snapshot-allow-target {e}")))?;
    }
    let cypher_timeout = deploygraph_probe::config::parse_duration(&args.cypher_timeout)
        .map_err(|e| Failure::usage(format!("--cypher-timeout: {e}")))?;
    if cypher_timeout.is_zero() || cypher_timeout > deploygraph_store::cypher::MAX_QUERY_TIMEOUT {
        return Err(Failure::usage(
            "--cypher-timeout: must be more than 0 and at most 1h",
        ));
    }
    if args.cypher_max_bytes == 0 || args.cypher_max_rows == 0 {
        return Err(Failure::usage(
            "--cypher-max-rows and --cypher-max-bytes: must be at least 1",
        ));
    }
    let request_timeout = deploygraph_probe::config::parse_duration(&args.request_timeout)
        .map_err(|e| Failure::usage(format!("--request-timeout: {e}")))?;
    if request_timeout.is_zero() {
        return Err(Failure::usage("--request-timeout: must be more than 0"));
    }
    if args.max_concurrent_writes == 0 || args.max_concurrent_reads == 0 {
        return Err(Failure::usage(
            "--max-concurrent-writes and --max-concurrent-reads: must be at least 1",
        ));
    }
    if args.alertmanager_max_body_bytes == 0 || args.max_body_bytes == 0 {
        return Err(Failure::usage(
            "--max-body-bytes and --alertmanager-max-body-bytes: must be at least 1",
        ));
    }
    let cluster = match args.cluster.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => deploygraph_model::Cluster::parse(c)
            .map_err(|e| Failure::usage(format!("--cluster: {}", e.message)))?,
        None => deploygraph_model::Cluster::default(),
    };
    let mesh = mesh_config(&args, &cluster)?;
    let canary_hooks = canary_config(args.prometheus.as_deref(), &args.canary)?;
    let admission = admission_config(&args)?;
    let store = open_store(&args.store).await?;
    // A migration that cannot apply fails start-up; an unreachable store is waited for.
    let stop = CancellationToken::new();
    match store.migrate().await {
        Ok(applied) => log_migrated(store.as_ref(), &applied),
        Err(e) if e.is_unavailable() => {
            tracing::warn!(error.message = %e, "store unavailable at start-up; serving with /readyz at 503 until it is reachable");
            tokio::spawn(keep_migrating(Arc::clone(&store), stop.clone()));
        }
        Err(e) => return Err(migration_failure(e)),
    }
    let config = ApiConfig {
        token,
        max_body_bytes: args.max_body_bytes,
        alertmanager_max_body_bytes: args.alertmanager_max_body_bytes,
        request_timeout,
        max_concurrent_writes: args.max_concurrent_writes,
        max_concurrent_reads: args.max_concurrent_reads,
        attribution: attribution_settings(&args.attribution)?,
        alert_mapping: deploygraph_model::alertmanager::AlertMapping {
            service_labels: args.alert_service_labels.clone(),
            default_environment: args
                .alert_default_environment
                .as_deref()
                .map(deploygraph_model::Environment::parse)
                .transpose()
                .map_err(|e| Failure::usage(format!("--alert-default-environment: {e}")))?,
            ..deploygraph_model::alertmanager::AlertMapping::default()
        },
        read_token,
        cypher_timeout,
        cypher_max_rows: args.cypher_max_rows,
        cypher_max_bytes: args.cypher_max_bytes,
        snapshot_allow_targets: args.snapshot_allow_targets.clone(),
        canary: canary_hooks.clone(),
        ..ApiConfig::default()
    };
    if let Some(path) = &args.topology {
        apply_topology(store.as_ref(), path).await?;
    }
    if config.token.is_none() {
        tracing::warn!(
            "no token configured: write endpoints accept unauthenticated requests and POST /v1/cypher is refused"
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(
            deploygraph_api::tls::CertFiles::open(cert, key)
                .map_err(|e| Failure::usage(format!("--tls-cert/--tls-key: {e}")))?,
        )),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    let address = listener
        .local_addr()
        .context("failed to read the listening address")?;
    tracing::info!(address = %address, store = store.backend(), tls = tls.is_some(), "serving");
    let mut state = AppState::new(Arc::clone(&store), config);
    if let Some(path) = &args.gate_config {
        // Fail at start-up on a configuration that cannot be used at all.
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("--gate-config {}: {e}", path.display())))?;
        deploygraph_probe::config::parse(&text)
            .map_err(|e| Failure::usage(format!("--gate-config {}: {e}", path.display())))?;
        let snapshotter = Arc::new(Snapshotter::new(
            Arc::clone(&store),
            path.clone(),
            args.cluster.clone(),
        ));
        if let Some(interval) = &args.snapshot_interval {
            let interval = deploygraph_probe::config::parse_duration(interval)
                .map_err(|e| Failure::usage(format!("--snapshot-interval: {e}")))?;
            let stopped = stop.clone();
            tokio::spawn(
                Arc::clone(&snapshotter)
                    .run_schedule(interval, async move { stopped.cancelled().await }),
            );
        }
        state = state.with_snapshotter(snapshotter);
    }
    if let Some((config, interval)) = mesh {
        let importer =
            deploygraph_api::mesh::MeshImporter::new(Arc::clone(&store), state.metrics(), config)
                .map_err(|e| {
                Failure::from(anyhow::anyhow!(
                    "failed to build the Prometheus client: {e}"
                ))
            })?;
        let stopped = stop.clone();
        tokio::spawn(Arc::new(importer).run(interval, async move { stopped.cancelled().await }));
    }
    let mut state = state;
    if let Some(url) = args.prometheus.as_deref() {
        // Its own client, with a short time limit: an onset is read before an alert is
        // attributed, and a slow Prometheus must not hold the follow-up workers (an onset not
        // read in time is read again at the alert's next attribution).
        let config = deploygraph_canary::prometheus::PrometheusConfig {
            timeout: ONSET_TIMEOUT,
            ..deploygraph_canary::prometheus::PrometheusConfig::new(url)
                .map_err(|e| Failure::usage(format!("--prometheus: {e}")))?
        };
        let prometheus = deploygraph_canary::prometheus::Prometheus::new(config).map_err(|e| {
            Failure::from(anyhow::anyhow!(
                "failed to build the Prometheus client: {e}"
            ))
        })?;
        state = state.with_onsets(prometheus, args.service_health_query.clone());
    }
    let state = state.with_pipeline(deploygraph_analysis::pipeline::PipelineConfig {
        workers: usize::from(args.follow_up_workers),
        queue: args.follow_up_queue as usize,
        ..deploygraph_analysis::pipeline::PipelineConfig::default()
    });
    if args.watch.watch_kubernetes {
        let analyses = canary_hooks.prometheus.is_some().then(|| {
            (
                Arc::new(crate::canary_watch::StoreRecords(state.clone()))
                    as Arc<dyn crate::canary_watch::Records>,
                canary_hooks.clone(),
                args.canary.canary_max_analyses,
                args.canary.canary_rollback,
            )
        });
        start_watcher(
            &args.watch,
            cluster.clone(),
            Arc::new(deploygraph_k8s::sink::StoreSink(Arc::clone(&store))),
            state.metrics(),
            stop.clone(),
            analyses,
        )
        .await?;
    }
    let follow_ups = {
        let pipeline = state.pipeline();
        let stopped = stop.clone();
        tokio::spawn(async move { pipeline.run(async move { stopped.cancelled().await }).await })
    };
    let admission_server = match admission {
        Some((listener, config)) => {
            let router = deploygraph_api::admission::router(state.clone(), config);
            let stopped = stop.clone();
            let drain = Duration::from_secs(args.shutdown_timeout);
            Some(tokio::spawn(async move {
                deploygraph_api::serve(
                    listener,
                    router,
                    async move { stopped.cancelled().await },
                    drain,
                )
                .await
            }))
        }
        None => None,
    };
    let router = deploygraph_api::router(state);
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        signal_stop.cancel();
    });
    let stopped = stop.clone();
    let shutdown = async move { stopped.cancelled().await };
    let drain = Duration::from_secs(args.shutdown_timeout);
    match tls {
        Some(certs) => {
            let listener = deploygraph_api::tls::TlsListener::new(listener, certs, None)
                .map_err(|e| Failure::usage(format!("--tls-cert/--tls-key: {e}")))?;
            deploygraph_api::serve(listener, router, shutdown, drain).await
        }
        None => deploygraph_api::serve(listener, router, shutdown, drain).await,
    }
    .context("the server failed")?;
    if let Some(admission) = admission_server {
        match admission.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error.message = %e, "the admission gate's server failed"),
            Err(e) => tracing::warn!(error.message = %e, "the admission gate's server stopped"),
        }
    }
    // Follow-ups being done finish; the rest stay pending in the store for the next start.
    if tokio::time::timeout(Duration::from_secs(args.shutdown_timeout), follow_ups)
        .await
        .is_err()
    {
        tracing::warn!(
            "follow-ups still running at shutdown; they are done again after the next start"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// Splits `REPO[:TAG]@sha256:DIGEST`.
fn parse_image(reference: &str) -> Result<ImageInput, Failure> {
    let (name, digest) = reference.rsplit_once('@').ok_or_else(|| {
        Failure::usage(format!(
            "--image {reference:?}: expected REPO[:TAG]@sha256:DIGEST"
        ))
    })?;
    let (repository, tag) = match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_owned())),
        _ => (name, None),
    };
    Ok(ImageInput {
        repository: (!repository.is_empty()).then(|| repository.to_owned()),
        tag,
        digest: Some(digest.to_owned()),
    })
}

/// Names a model field by the flag that set it.
fn flag_for(field: &str) -> String {
    let flag = match field {
        f if f.starts_with("images") => "image",
        "commit.sha" => "commit",
        "commit.repo" => "repo",
        "version" => "release-version",
        f if f.starts_with("changes") => "change",
        f => f,
    };
    format!("--{}", flag.replace('_', "-"))
}

/// `--change` and `--changes-file`, in that order.
fn deployment_changes(
    args: &RecordDeploymentArgs,
) -> Result<Option<Vec<deploygraph_model::deployment::ChangeInput>>, Failure> {
    let mut changes = args.changes.clone();
    if let Some(path) = &args.changes_file {
        changes.extend(crate::changes::read_file(path).map_err(Failure::usage)?);
    }
    Ok((!changes.is_empty()).then_some(changes))
}

fn deployment_input(args: &RecordDeploymentArgs) -> Result<DeploymentInput, Failure> {
    let images = args
        .images
        .iter()
        .map(|i| parse_image(i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DeploymentInput {
        id: args.id.clone(),
        service: Some(args.service.clone()),
        namespace: args.namespace.clone(),
        environment: Some(args.environment.clone()),
        cluster: args.cluster.clone(),
        version: args.release_version.clone(),
        commit: Some(CommitInput {
            sha: Some(args.commit.clone()),
            repo: args.repo.clone(),
            ..CommitInput::default()
        }),
        images: Some(images),
        status: Some(args.status.clone()),
        started_at: Some(
            args.started_at
                .clone()
                .unwrap_or_else(|| format_time(&chrono::Utc::now())),
        ),
        finished_at: args.finished_at.clone(),
        actor: args.actor.clone(),
        changes: deployment_changes(args)?,
        validation: None,
    })
}

fn print_record(output: Output, status: &str, record: &Value) -> Outcome {
    match output {
        Output::Json => crate::outln!("{record}"),
        Output::Text => crate::outln!(
            "{status} deployment {} ({} {} {})",
            record["uid"].as_str().unwrap_or("?"),
            record["service"].as_str().unwrap_or("?"),
            record["environment"].as_str().unwrap_or("?"),
            record["status"].as_str().unwrap_or("?"),
        ),
    }
}

async fn record_deployment(args: RecordDeploymentArgs) -> Outcome {
    let input = deployment_input(&args)?;
    // Validate locally first: a usage error never reaches the API.
    input
        .validate(Source::Api)
        .map_err(|e| Failure::usage(format!("{}: {}", flag_for(&e.field), e.message)))?;
    let client = crate::api::connect(&args.target, crate::api::Local::default()).await?;
    let accepted = client
        .record_deployment(&input)
        .await
        .map_err(|e| Failure::from_api("failed to record the deployment", e))?;
    let status = if accepted.status == 201 {
        "recorded"
    } else {
        "already recorded"
    };
    print_record(args.output, status, &accepted.body)
}

pub(crate) fn print_page(output: Output, page: &Value) -> Outcome {
    if output == Output::Json {
        return crate::outln!("{page}");
    }
    let empty = Vec::new();
    let items = page["items"].as_array().unwrap_or(&empty);
    crate::outln!(
        "{:<20}  {:<24}  {:<12}  {:<11}  {:<12}  {:<12}  UID",
        "STARTED",
        "SERVICE",
        "ENVIRONMENT",
        "STATUS",
        "VERSION",
        "COMMIT"
    )?;
    for item in items {
        let s = |k: &str| item[k].as_str().unwrap_or("-").to_owned();
        let sha = item["commit"]["sha"].as_str().unwrap_or("-");
        crate::outln!(
            "{:<20}  {:<24}  {:<12}  {:<11}  {:<12}  {:<12}  {}",
            s("started_at"),
            s("service"),
            s("environment"),
            s("status"),
            s("version"),
            &sha[..sha.len().min(12)],
            s("uid"),
        )?;
    }
    if let Some(cursor) = page["next_cursor"].as_str() {
        eprintln!("more: --cursor {cursor}");
    }
    Ok(())
}

async fn query_deployments(args: QueryDeploymentsArgs) -> Outcome {
    // Checked here first, so a bad value names its flag.
    FilterParams {
        service: args.service.clone(),
        environment: args.environment.clone(),
        cluster: args.cluster.clone(),
        status: args.status.clone(),
        since: args.since.clone(),
        until: args.until.clone(),
        limit: Some(args.limit.to_string()),
        cursor: args.cursor.clone(),
    }
    .into_filter()
    .map_err(|e| Failure::usage(format!("{}: {}", flag_for(&e.field), e.message)))?;
    let client = crate::api::connect(&args.target, crate::api::Local::default()).await?;
    let what = "failed to list deployments";
    let answer = client
        .list_deployments(&DeploymentsQuery {
            service: args.service,
            environment: args.environment,
            cluster: args.cluster,
            status: args.status,
            since: args.since,
            until: args.until,
            limit: Some(args.limit),
            cursor: args.cursor,
        })
        .await
        .map_err(|e| Failure::from_api(what, e))?;
    print_page(args.output, &answer.body)
}

/// `record alert`: posts an Alertmanager webhook notification (version 4) from a file.
async fn record_alert(args: crate::cli::RecordAlertArgs) -> Outcome {
    let fail = |e: &dyn std::fmt::Display| Failure::usage(format!("{}: {e}", args.file.display()));
    let text = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| fail(&e))?
    } else {
        std::fs::read_to_string(&args.file).map_err(|e| fail(&e))?
    };
    let body: Value = serde_json::from_str(&text).map_err(|e| fail(&e))?;
    let client = crate::api::connect(&args.target, crate::api::Local::default()).await?;
    let answer = client
        .post_alertmanager(&body)
        .await
        .map_err(|e| Failure::from_api("failed to record the alerts", e))?;
    match args.output {
        Output::Json => crate::outln!("{}", answer.body),
        Output::Text => {
            let empty = Vec::new();
            for alert in answer.body["alerts"].as_array().unwrap_or(&empty) {
                crate::outln!(
                    "{} alert {} on {}",
                    alert["outcome"].as_str().unwrap_or("?"),
                    alert["fingerprint"].as_str().unwrap_or("?"),
                    alert["service"].as_str().unwrap_or("-"),
                )?;
            }
            crate::outln!(
                "received {}: {} created, {} updated, {} unchanged",
                answer.body["received"],
                answer.body["created"],
                answer.body["updated"],
                answer.body["unchanged"]
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn image_references_split_into_repository_tag_and_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let i = parse_image(&format!("ghcr.io/acme/payments:v2@{digest}"))
            .ok()
            .unwrap();
        assert_eq!(i.repository.as_deref(), Some("ghcr.io/acme/payments"));
        assert_eq!(i.tag.as_deref(), Some("v2"));
        let i = parse_image(&format!("registry:5000/acme/payments@{digest}"))
            .ok()
            .unwrap();
        assert_eq!(i.repository.as_deref(), Some("registry:5000/acme/payments"));
        assert_eq!(i.tag, None);
        assert!(parse_image("ghcr.io/acme/payments:v2").is_err());
    }

    #[test]
    fn api_failures_map_onto_the_exit_code_table() {
        use deploygraph_client::Error;
        let refused = |status: u16| Error::Rejected {
            status,
            code: "x".into(),
            message: "no".into(),
            field: Some("service".into()),
        };
        for (status, code) in [
            (400, 2),
            (422, 2),
            (501, 2),
            (401, 1),
            (403, 1),
            (404, 1),
            (409, 1),
            (413, 1),
            (500, 1),
        ] {
            let failure = Failure::from_api("failed to x", refused(status));
            assert_eq!(failure.code, code, "{status}");
            assert!(
                failure
                    .message
                    .contains(&format!("({status}): service: no")),
                "{}",
                failure.message
            );
        }
        let unsupported = Failure::from_api(
            "failed to x",
            Error::Rejected {
                status: 404,
                code: "unsupported".into(),
                message: "the sqlite store does not support Cypher queries".into(),
                field: None,
            },
        );
        assert_eq!(unsupported.code, 2, "{}", unsupported.message);
        let timed_out = Failure::from_api(
            "failed to x",
            Error::Rejected {
                status: 504,
                code: "query_timed_out".into(),
                message: "the query timed out after 2s and was stopped".into(),
                field: Some("query".into()),
            },
        );
        assert_eq!(timed_out.code, 2, "{}", timed_out.message);
        assert!(
            unsupported.message.contains("Cypher needs a Neo4j store"),
            "{}",
            unsupported.message
        );
        let gone = Error::Unavailable {
            attempts: 6,
            last: "connection refused".into(),
        };
        assert_eq!(Failure::from_api("failed to x", gone).code, 3);
        assert_eq!(Failure::output_closed().code, 0);
    }

    #[test]
    fn model_fields_are_named_by_their_flags() {
        assert_eq!(flag_for("images[0].digest"), "--image");
        assert_eq!(flag_for("commit.sha"), "--commit");
        assert_eq!(flag_for("started_at"), "--started-at");
        assert_eq!(flag_for("changes[1].path"), "--change");
    }
}

/// The readiness URL `healthcheck` probes without `--url`: the port `serve` listens on in the
/// same container (DEPLOYGRAPH_LISTEN), on loopback.
fn readiness_url(listen: Option<&str>) -> Result<url::Url, Failure> {
    let port = match listen {
        Some(listen) => listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| Failure::usage(format!("DEPLOYGRAPH_LISTEN {listen:?}: {e}")))?
            .port(),
        None => 8080,
    };
    url::Url::parse(&format!("http://127.0.0.1:{port}/readyz"))
        .map_err(|e| Failure::usage(format!("readiness URL: {e}")))
}

async fn healthcheck(args: crate::cli::HealthcheckArgs) -> Outcome {
    let url = match args.url {
        Some(url) => url,
        None => readiness_url(std::env::var("DEPLOYGRAPH_LISTEN").ok().as_deref())?,
    };
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .build()
        .map_err(|e| Failure::usage(format!("HTTP client: {e}")))?;
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| Failure::unreachable(format!("{url}: {e}")))?;
    let status = response.status();
    if status.is_success() {
        println!("ready: {url} answered {status}");
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(500).collect();
    Err(Failure::rejected(format!(
        "not ready: {url} answered {status}: {body}"
    )))
}

#[cfg(test)]
mod healthcheck_tests {
    use super::readiness_url;

    #[test]
    fn the_default_url_is_the_listen_port_on_loopback() {
        let url = |listen| readiness_url(listen).map(|u| u.to_string()).ok();
        assert_eq!(
            url(Some("0.0.0.0:9090")).as_deref(),
            Some("http://127.0.0.1:9090/readyz")
        );
        assert_eq!(
            url(Some("[::]:8443")).as_deref(),
            Some("http://127.0.0.1:8443/readyz")
        );
        assert_eq!(url(None).as_deref(), Some("http://127.0.0.1:8080/readyz"));
        assert!(readiness_url(Some("eight")).is_err());
    }
}
