//! Command-line interface: flags > environment (`DEPLOYGRAPH_*`).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// deploygraph records deployments, infra snapshots, chaos runs and alerts as one knowledge
/// graph and answers what changed, which change did it, and whether it happened before.
#[derive(Debug, Parser)]
#[command(name = "deploygraph", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub telemetry: TelemetryOptions,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API.
    Serve(Box<ServeArgs>),
    /// Watch one Kubernetes cluster and forward its rollouts and changes to a central
    /// `deploygraph serve` over HTTPS, through a durable on-disk spool (no store credentials
    /// in the cluster).
    Agent(Box<AgentArgs>),
    /// Apply pending store migrations.
    Migrate(MigrateArgs),
    /// Record a fact (from a CI pipeline).
    #[command(subcommand)]
    Record(RecordCommand),
    /// Query the graph.
    #[command(subcommand)]
    Query(QueryCommand),
    /// Answer a question in English or Chinese ("which deploy caused the checkout alert at
    /// 14:05?", "最近三次支付服务部署失败的共性是什么?") with the query it maps to; says how it
    /// was understood and the equivalent Cypher. Exit 2 when it cannot be mapped.
    Ask(AskArgs),
    /// Check TLS endpoints, certificate files, DNS and API servers before a rollout; exit 1 when any fails.
    Gate(GateArgs),
    /// Run the gate's checks and record them as an infra snapshot.
    Snapshot(SnapshotArgs),
    /// Read Helm release Secrets offline.
    #[command(subcommand)]
    Helm(HelmCommand),
    /// Draft reports from the graph.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Record the service topology (DEPENDS_ON).
    #[command(subcommand)]
    Topology(TopologyCommand),
    /// Run chaos scenarios and read their runs.
    #[command(subcommand)]
    Chaos(ChaosCommand),
    /// Judge a canary against its baseline on Prometheus metrics.
    #[command(subcommand)]
    Canary(CanaryCommand),
    /// Probe a running server's readiness (`/readyz`): exit 0 when it is ready, 1 when it
    /// answers not ready (its store down, migrations pending), 3 when it cannot be reached.
    /// The container image's HEALTHCHECK, which needs no curl.
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Subcommand)]
pub enum CanaryCommand {
    /// Judge the canary against its baseline every --interval until the verdict is final:
    /// a decisive fail stops at once, any other fail when the analysis one --window earlier
    /// failed too (exit 1); a pass is final when every metric of the template passed in an
    /// analysis at least one --window after the start (exit 0); at --max-duration the last
    /// verdict decides (pass 0, inconclusive, no data or an unconfirmed fail 4).
    Analyze(Box<CanaryAnalyzeArgs>),
    /// Record what a settled deployment measured on a template's metrics over --window (its
    /// release summary), so later canaries of the service can be judged against its history
    /// (`canary analyze --baseline history`).
    Summarize(Box<CanarySummarizeArgs>),
}

/// What `canary analyze` judges the canary against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BaselineChoice {
    /// The old version's pods running beside the canary (--baseline-selector).
    SideBySide,
    /// The service's earlier releases in the graph: the summaries `canary summarize` recorded
    /// for deployments of the service in the same environment that started before this one.
    History,
    /// Side by side while --baseline-selector finds series, else history.
    Auto,
}

#[derive(Debug, Args)]
pub struct CanarySummarizeArgs {
    /// The settled deployment (uid).
    #[arg(long, value_name = "UID")]
    pub deployment: String,
    /// Analysis template: a YAML file (a path, with a `/` or a `.` in it), or the name of a
    /// shipped template: `http-error-ratio`, `http-latency-p99`, `connection-pool-errors`.
    #[arg(long, value_name = "FILE|NAME")]
    pub template: String,
    /// The window the summary covers, ending now: the template's `{{window}}`.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = crate::canary::window_arg)]
    pub window: deploygraph_canary::Window,
    /// PromQL label matchers selecting the release (default: `service="SERVICE",track="stable"`
    /// with the deployment's service).
    #[arg(long, value_name = "SELECTOR", value_parser = crate::canary::selector_arg)]
    pub selector: Option<deploygraph_canary::Selector>,
    /// Prometheus' base URL.
    #[arg(long, env = "DEPLOYGRAPH_PROMETHEUS_URL", value_name = "URL")]
    pub prometheus: String,
    /// Output format.
    #[arg(long, visible_alias = "output", value_enum, default_value = "text")]
    pub format: Output,
    #[command(flatten)]
    pub record: CanaryRecordTarget,
}

#[derive(Debug, Args)]
pub struct CanaryAnalyzeArgs {
    /// The service under analysis; it makes the default selectors.
    #[arg(long, value_parser = crate::insight::service_arg)]
    pub service: deploygraph_model::ServiceName,
    /// Analysis template: a YAML file (a path, with a `/` or a `.` in it), or the name of a
    /// shipped template: `http-error-ratio`, `http-latency-p99`, `connection-pool-errors`.
    #[arg(long, value_name = "FILE|NAME")]
    pub template: String,
    /// PromQL label matchers selecting the canary (default: `service="SERVICE",track="canary"`).
    #[arg(long, value_name = "SELECTOR", value_parser = crate::canary::selector_arg)]
    pub canary_selector: Option<deploygraph_canary::Selector>,
    /// PromQL label matchers selecting the baseline (default: `service="SERVICE",track="stable"`).
    #[arg(long, value_name = "SELECTOR", value_parser = crate::canary::selector_arg)]
    pub baseline_selector: Option<deploygraph_canary::Selector>,
    /// Time between analyses.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::insight::duration_arg)]
    pub interval: std::time::Duration,
    /// Give up after this long; the last verdict decides.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = crate::insight::duration_arg)]
    pub max_duration: std::time::Duration,
    /// What each analysis looks back over: the template's `{{window}}` (a PromQL duration).
    /// A failure is confirmed one window later, so the window bounds the time to a rollback.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = crate::canary::window_arg)]
    pub window: deploygraph_canary::Window,
    /// Prometheus' base URL.
    #[arg(long, env = "DEPLOYGRAPH_PROMETHEUS_URL", value_name = "URL")]
    pub prometheus: String,
    /// Output format: a line per analysis, or a JSON object per line.
    #[arg(long, visible_alias = "output", value_enum, default_value = "text")]
    pub format: Output,
    /// The deployment under analysis (uid): every decision is recorded as its CanaryAnalysis
    /// through --server or --store (one of them is then required).
    #[arg(long, value_name = "UID")]
    pub deployment: Option<String>,
    /// Instead of --deployment: the newest deployment of --service recorded in this
    /// environment, looked up when the command starts.
    #[arg(long, value_name = "ENV", conflicts_with = "deployment", value_parser = crate::insight::environment_arg)]
    pub environment: Option<deploygraph_model::Environment>,
    #[command(flatten)]
    pub record: CanaryRecordTarget,
    /// What the canary is judged against. `history` and `auto` read the service's earlier
    /// releases (at most 10, the most recent first) for --deployment or --environment through
    /// --server or --store; the verdict says which baseline was used.
    #[arg(long, value_enum, default_value = "side-by-side")]
    pub baseline: BaselineChoice,
    #[command(flatten)]
    pub rollback: CanaryRollbackOptions,
}

/// What `canary analyze` rolls back when the canary fails (opt-in: nothing without
/// `--rollback`).
#[derive(Debug, Args)]
pub struct CanaryRollbackOptions {
    /// On a final fail, roll back at once: `deployment/NAME` (to its previous ReplicaSet's pod
    /// template, as `kubectl rollout undo`), `rollout/NAME` (abort the Argo Rollout) or
    /// `helm/RELEASE[:REVISION]` (`helm rollback`, to the previous revision by default). The
    /// rollback is recorded with the analysis when a deployment is named.
    #[arg(long, value_name = "TARGET", value_parser = crate::canary_rollback::target_arg)]
    pub rollback: Option<deploygraph_k8s::rollback::Target>,
    /// The --rollback target's namespace (default: the kubeconfig context's).
    #[arg(long, value_name = "NAMESPACE", requires = "rollback")]
    pub namespace: Option<String>,
    /// Only print what --rollback would do; nothing in the cluster changes (the Rollback is
    /// recorded with dry_run, and the deployment keeps its status).
    #[arg(long, requires = "rollback")]
    pub dry_run: bool,
    /// Kubeconfig for --rollback (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, env = "DEPLOYGRAPH_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The helm binary --rollback helm/RELEASE runs.
    #[arg(
        long,
        env = "DEPLOYGRAPH_HELM_BIN",
        value_name = "PATH",
        default_value = "helm"
    )]
    pub helm_bin: PathBuf,
}

/// Where `canary analyze` records its analyses: a server, or the API in this process over a
/// store. Nothing is recorded unless a deployment is named (--deployment or --environment).
#[derive(Debug, Args)]
pub struct CanaryRecordTarget {
    /// deploygraph server URL to record the analysis to.
    #[arg(long, env = "DEPLOYGRAPH_SERVER")]
    pub server: Option<String>,
    /// Bearer token for --server.
    #[arg(long, env = "DEPLOYGRAPH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Attempts of each recording against --server on 503, 502, 504 and connection errors,
    /// with exponential backoff (fewer than other commands: a verdict does not wait long).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub attempts: u32,
    /// Store URI to record to without a server: sqlite://PATH, neo4j://HOST:PORT or
    /// bolt://HOST:PORT.
    #[arg(long, env = "DEPLOYGRAPH_STORE")]
    pub store: Option<String>,
    /// Neo4j user.
    #[arg(long, env = "DEPLOYGRAPH_NEO4J_USER")]
    pub neo4j_user: Option<String>,
    /// Neo4j password (prefer the environment variable to the flag).
    #[arg(long, env = "DEPLOYGRAPH_NEO4J_PASSWORD", hide_env_values = true)]
    pub neo4j_password: Option<String>,
    #[command(flatten)]
    pub neo4j: Neo4jConnectionArgs,
    /// Load migrations from DIR/{sqlite,neo4j} instead of the ones built in.
    #[arg(long, env = "DEPLOYGRAPH_MIGRATIONS_DIR")]
    pub migrations_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ChaosCommand {
    /// Run a scenario file against the release live on its target; records a ChaosRun.
    Run(ChaosRunArgs),
    /// List recorded runs, newest first.
    List(ChaosListArgs),
    /// Show one run (a Litmus run still in progress is refreshed from the cluster).
    Show(ChaosShowArgs),
    /// Stop a Litmus run in progress (patches its ChaosEngine to engineState: stop).
    Abort(ChaosAbortArgs),
}

#[derive(Debug, Args)]
pub struct ChaosRunArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Follow the run to its end (a local fault always runs to its end).
    #[arg(long)]
    pub wait: bool,
    /// Print what would be applied (the ChaosEngine, or the local fault) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Kubeconfig of the cluster (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, env = "DEPLOYGRAPH_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The cluster the run is recorded in (default: the scenario's `target.cluster`, else
    /// `default`).
    #[arg(long, value_parser = crate::insight::cluster_arg)]
    pub cluster: Option<deploygraph_model::Cluster>,
    /// How long to wait for the operator to acknowledge a stop.
    #[arg(long, default_value = "30s")]
    pub ack_timeout: String,
    /// How long to wait, after the fault, for the raised alerts to resolve and the target to be ready.
    #[arg(long, default_value = "5m")]
    pub recovery_timeout: String,
    #[command(flatten)]
    pub store: StoreOptions,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ChaosListArgs {
    /// Only runs against this service.
    #[arg(long, value_parser = crate::insight::service_arg)]
    pub service: Option<deploygraph_model::ServiceName>,
    /// Only this environment.
    #[arg(long, value_parser = crate::insight::environment_arg)]
    pub environment: Option<deploygraph_model::Environment>,
    /// Only this cluster.
    #[arg(long, value_parser = crate::insight::cluster_arg)]
    pub cluster: Option<deploygraph_model::Cluster>,
    /// At most this many.
    #[arg(long, default_value_t = 20, value_parser = crate::insight::limit_arg)]
    pub limit: usize,
    /// Continue with the next page: the `--cursor` a previous truncated answer printed.
    #[arg(long)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ChaosShowArgs {
    /// The run's uid.
    pub run: String,
    /// Kubeconfig, to refresh a Litmus run in progress.
    #[arg(long, env = "DEPLOYGRAPH_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreOptions,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ChaosAbortArgs {
    /// The run's uid.
    pub run: String,
    /// Why (recorded on the run).
    #[arg(long, default_value = "aborted by an operator")]
    pub reason: String,
    /// Kubeconfig of the cluster.
    #[arg(long, env = "DEPLOYGRAPH_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GateOutput {
    Text,
    Json,
    Junit,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Gate configuration file (YAML; see examples/gate.yaml). Flags add to its lists and
    /// override its settings.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// TLS endpoint HOST:PORT, optionally @NAME for SNI and the name check; repeatable.
    #[arg(long = "tls", value_name = "HOST:PORT[@NAME]")]
    pub tls: Vec<String>,
    /// PEM or DER certificate file or bundle; repeatable.
    #[arg(long = "cert-file", value_name = "PATH")]
    pub cert_files: Vec<PathBuf>,
    /// DNS name that must resolve, optionally through SERVER[:PORT]; repeatable.
    #[arg(long = "dns", value_name = "NAME[@SERVER:PORT]")]
    pub dns: Vec<String>,
    /// Kubernetes API server URL whose /livez, /readyz and /version to check; repeatable.
    #[arg(long = "apiserver", value_name = "URL")]
    pub apiservers: Vec<String>,
    /// CoreDNS metrics URL whose cache state to read (limits go in --config); repeatable.
    #[arg(long = "coredns-metrics", value_name = "URL")]
    pub coredns: Vec<String>,
    /// Kubeconfig for the --k8s-* checks (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace whose kubernetes.io/tls Secrets to check (tls.crt and ca.crt); repeatable.
    #[arg(long = "k8s-tls-secrets", value_name = "NAMESPACE")]
    pub k8s_tls_secrets: Vec<String>,
    /// Check the kubeconfig's client certificates.
    #[arg(long)]
    pub k8s_client_certs: bool,
    /// Check the API server's serving certificate against the kubeconfig's CA.
    #[arg(long)]
    pub k8s_apiserver_cert: bool,
    /// Check each Node's kubelet serving certificate at the Node's address and kubelet port:
    /// expiry, a SAN naming the Node, trust against --k8s-node-ca (default: the kubeconfig's
    /// CA); one check per Node.
    #[arg(long)]
    pub k8s_node_certs: bool,
    /// Only the Nodes matching this label selector (with --k8s-node-certs).
    #[arg(long, value_name = "SELECTOR", requires = "k8s_node_certs")]
    pub k8s_node_selector: Option<String>,
    /// CA bundle the kubelets' certificates must chain to (with --k8s-node-certs).
    #[arg(long, value_name = "PATH", requires = "k8s_node_certs")]
    pub k8s_node_ca: Option<PathBuf>,
    /// CA bundle of the --apiserver URLs (default: the system roots).
    #[arg(long, value_name = "PATH")]
    pub apiserver_ca: Option<PathBuf>,
    /// Trust anchors for TLS endpoints instead of the system roots.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// Fail when a certificate expires within this many seconds (default 86400).
    #[arg(long, value_name = "SECONDS")]
    pub checkend: Option<u64>,
    /// The whole run is over by then (default 30s).
    #[arg(long, value_name = "DURATION")]
    pub deadline: Option<String>,
    /// Bound on each check (default 10s).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Checks run at once (default 32).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Let untrusted chains pass (with a note).
    #[arg(long)]
    pub allow_untrusted: bool,
    /// Let checks that cannot tell (timeouts, unreachable targets) pass.
    #[arg(long)]
    pub allow_unknown: bool,
}

#[derive(Debug, Args)]
pub struct GateArgs {
    #[command(flatten)]
    pub checks: CheckArgs,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub output: GateOutput,
    /// Also record the result as an infra snapshot in --store.
    #[arg(long)]
    pub record: bool,
    /// With --record: the deployment (uid) the snapshot is taken for.
    #[arg(long, requires = "record")]
    pub deployment: Option<String>,
    /// With --record: the cluster or environment name.
    #[arg(long, requires = "record")]
    pub cluster: Option<String>,
    #[command(flatten)]
    pub target: RecordTarget,
}

/// Where facts are recorded or read: the HTTP API of a server, or the same API served in this
/// process over a store.
#[derive(Debug, Args)]
pub struct RecordTarget {
    /// deploygraph server URL; without it, the API is served in this process over --store.
    #[arg(long, env = "DEPLOYGRAPH_SERVER")]
    pub server: Option<String>,
    /// Bearer token for --server (over --store, this process holds its own).
    #[arg(long, env = "DEPLOYGRAPH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Attempts against --server on 503, 502, 504 and connection errors, with exponential
    /// backoff (over --store nothing is retried).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub attempts: u32,
    #[command(flatten)]
    pub store: StoreOptions,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub checks: CheckArgs,
    /// The deployment (uid) the snapshot is taken for.
    #[arg(long)]
    pub deployment: Option<String>,
    /// The cluster or environment name.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Print a Mermaid diagram of what was checked and its state.
    #[arg(long)]
    pub mermaid: bool,
    /// Output format (without --mermaid).
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    #[command(flatten)]
    pub target: RecordTarget,
}

#[derive(Debug, Subcommand)]
pub enum HelmCommand {
    /// Print the summary of a release Secret saved with `kubectl get secret … -o json`
    /// (`-` reads standard input).
    Decode(HelmDecodeArgs),
    /// Diff two revisions saved with `kubectl get secret … -o json`: values and resources.
    Diff(HelmDiffArgs),
}

#[derive(Debug, Args)]
pub struct HelmDecodeArgs {
    /// Secret JSON file, or `-`.
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct HelmDiffArgs {
    /// Release to diff in the cluster (revisions from its Secrets); or use --from-secret/--to-secret.
    #[arg(conflicts_with_all = ["from_secret", "to_secret"])]
    pub release: Option<String>,
    /// Namespace of the release.
    #[arg(short = 'n', long, default_value = "default", requires = "release")]
    pub namespace: String,
    /// Older revision (default: the one before --to).
    #[arg(long, requires = "release")]
    pub from: Option<u32>,
    /// Newer revision (default: the newest).
    #[arg(long, requires = "release")]
    pub to: Option<u32>,
    /// Kubeconfig (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, requires = "release")]
    pub kubeconfig: Option<PathBuf>,
    /// The older revision's Secret JSON (`kubectl get secret … -o json`).
    #[arg(long, requires = "to_secret")]
    pub from_secret: Option<PathBuf>,
    /// The newer revision's Secret JSON.
    #[arg(long, requires = "from_secret")]
    pub to_secret: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct TelemetryOptions {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "DEPLOYGRAPH_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Log filter (`info`, `debug`, `deploygraph_store=debug`…).
    #[arg(
        long,
        global = true,
        env = "DEPLOYGRAPH_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,
}

/// How a process connects to Neo4j, beside the URI and credentials.
#[derive(Debug, Args, Clone)]
pub struct Neo4jConnectionArgs {
    /// Neo4j connections this process pools (16 unset; user Cypher gets a quarter as many of
    /// its own). Under a heavy write load, requests wait for a pooled connection and answer
    /// 503 after the connection timeout.
    #[arg(id = "neo4j_max_connections", long = "neo4j-max-connections", env = "DEPLOYGRAPH_NEO4J_MAX_CONNECTIONS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub max_connections: Option<u16>,
    /// Neo4j database to use (default `neo4j`). Naming it spares a routing-table request
    /// before every transaction over neo4j://.
    #[arg(id = "neo4j_database", long = "neo4j-database", env = "DEPLOYGRAPH_NEO4J_DATABASE", value_parser = crate::cli::neo4j_database)]
    pub database: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct StoreOptions {
    /// Store URI: sqlite://PATH, neo4j://HOST:PORT or bolt://HOST:PORT.
    #[arg(long, env = "DEPLOYGRAPH_STORE", default_value = deploygraph_store::DEFAULT_STORE_URI)]
    pub store: String,
    /// Neo4j user.
    #[arg(long, env = "DEPLOYGRAPH_NEO4J_USER")]
    pub neo4j_user: Option<String>,
    /// Neo4j password (prefer the environment variable to the flag).
    #[arg(long, env = "DEPLOYGRAPH_NEO4J_PASSWORD", hide_env_values = true)]
    pub neo4j_password: Option<String>,
    #[command(flatten)]
    pub neo4j: Neo4jConnectionArgs,
    /// Load migrations from DIR/{sqlite,neo4j} instead of the ones built in.
    #[arg(long, env = "DEPLOYGRAPH_MIGRATIONS_DIR")]
    pub migrations_dir: Option<PathBuf>,
}

/// The bearer token of writes: `serve` requires it, `agent` sends it.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Bearer token of write endpoints.
    #[arg(
        long,
        env = "DEPLOYGRAPH_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// File holding the bearer token (first line).
    #[arg(long, env = "DEPLOYGRAPH_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The central server (`https://deploygraph.example.com`).
    #[arg(long, env = "DEPLOYGRAPH_SERVER")]
    pub server: String,
    /// The central server's write token.
    #[command(flatten)]
    pub auth: TokenArgs,
    /// PEM certificates to trust for the central server besides the system's (a private CA).
    #[arg(long, env = "DEPLOYGRAPH_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// The cluster this agent watches: every rollout and change it forwards is of it.
    #[arg(long, env = "DEPLOYGRAPH_CLUSTER", value_parser = crate::insight::cluster_arg)]
    pub cluster: deploygraph_model::Cluster,
    /// Directory of the durable spool (write-ahead segments and the delivered mark); keep it
    /// on a persistent volume.
    #[arg(
        long,
        env = "DEPLOYGRAPH_SPOOL_DIR",
        default_value = "/var/lib/deploygraph/spool"
    )]
    pub spool_dir: PathBuf,
    /// Most bytes the spool may hold; when full, the watchers hold what they saw and try again
    /// (a workload's latest rollout is recorded once there is room, intermediate ones are not).
    #[arg(long, env = "DEPLOYGRAPH_SPOOL_MAX_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub spool_max_bytes: u64,
    /// Most records in one batch sent to the central server.
    #[arg(long, env = "DEPLOYGRAPH_AGENT_BATCH", default_value_t = 200)]
    pub batch: usize,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "DEPLOYGRAPH_AGENT_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub listen: SocketAddr,
    /// Prometheus' base URL, as the cluster's own Prometheus: rollouts of workloads annotated
    /// `deploygraph.io/canary-template` are analysed by the agent against it, and each round
    /// and rollback recorded on the central server.
    #[arg(long, env = "DEPLOYGRAPH_PROMETHEUS_URL", value_name = "URL")]
    pub prometheus: Option<String>,
    #[command(flatten)]
    pub canary: CanaryWatchArgs,
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// The canary templates and the analyses of watched rollouts, for `serve` and `agent`.
#[derive(Debug, Args)]
pub struct CanaryWatchArgs {
    /// Directory of analysis templates (NAME.yaml) the canary hooks and the
    /// `deploygraph.io/canary-template` annotations may name, besides the shipped ones (a file
    /// here wins over a shipped template of the same name). Every file is checked at start-up;
    /// files are re-read on each use.
    #[arg(long, env = "DEPLOYGRAPH_CANARY_TEMPLATES", value_name = "DIR")]
    pub canary_templates: Option<PathBuf>,
    /// Most canary analyses of watched rollouts running at once (with --watch-kubernetes and
    /// --prometheus, workloads annotated `deploygraph.io/canary-template` have their rollouts
    /// analysed); a rollout beyond them is not analysed, with a warning.
    #[arg(
        long,
        env = "DEPLOYGRAPH_CANARY_MAX_ANALYSES",
        value_name = "N",
        default_value_t = 32
    )]
    pub canary_max_analyses: usize,
    /// Let `deploygraph.io/canary-rollback: true` undo a watched Deployment whose canary fails
    /// (its previous ReplicaSet's template, as `kubectl rollout undo`); without it such a
    /// rollback is only planned and recorded as a dry run. The watcher's service account then
    /// needs `patch` on `deployments`.
    #[arg(long, env = "DEPLOYGRAPH_CANARY_ROLLBACK")]
    pub canary_rollback: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "DEPLOYGRAPH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Serve the API over TLS with this certificate chain (PEM, leaf first; read again when
    /// the file changes): what agents and CI reach across the network.
    #[arg(long, env = "DEPLOYGRAPH_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The API's TLS private key (PEM).
    #[arg(long, env = "DEPLOYGRAPH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreOptions,
    #[command(flatten)]
    pub auth: TokenArgs,
    /// Bearer token required on every GET except /healthz and /readyz (the write token is
    /// accepted too). Without it, reads are open.
    #[arg(long, env = "DEPLOYGRAPH_READ_TOKEN", hide_env_values = true)]
    pub read_token: Option<String>,
    /// Listen on a non-loopback address without --token, accepting unauthenticated writes.
    /// Without this flag such a server refuses to start.
    #[arg(long, env = "DEPLOYGRAPH_INSECURE_ALLOW_ANONYMOUS_WRITES")]
    pub insecure_allow_anonymous_writes: bool,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "DEPLOYGRAPH_MAX_BODY_BYTES", default_value_t = deploygraph_api::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Largest accepted Alertmanager notification (`POST /v1/alerts/alertmanager`), in bytes
    /// (32 MiB: tens of thousands of alerts). Alertmanager drops a notification refused for
    /// its size and never retries it.
    #[arg(
        long,
        env = "DEPLOYGRAPH_ALERTMANAGER_MAX_BODY_BYTES",
        default_value_t = deploygraph_api::DEFAULT_ALERTMANAGER_MAX_BODY_BYTES
    )]
    pub alertmanager_max_body_bytes: usize,
    /// Longest a request may run before it is answered 503 `timeout` (`30s`); user Cypher and
    /// snapshot checks have their own limits.
    #[arg(long, env = "DEPLOYGRAPH_REQUEST_TIMEOUT", default_value = "30s")]
    pub request_timeout: String,
    /// Most write requests served at once; more are answered 503 `overloaded` with
    /// `Retry-After`.
    #[arg(
        long,
        env = "DEPLOYGRAPH_MAX_CONCURRENT_WRITES",
        default_value_t = deploygraph_api::DEFAULT_MAX_CONCURRENT_WRITES
    )]
    pub max_concurrent_writes: usize,
    /// Most read requests served at once (a budget of their own, so writes cannot starve
    /// them); more are answered 503 `overloaded` with `Retry-After`.
    #[arg(
        long,
        env = "DEPLOYGRAPH_MAX_CONCURRENT_READS",
        default_value_t = deploygraph_api::DEFAULT_MAX_CONCURRENT_READS
    )]
    pub max_concurrent_reads: usize,
    /// Gate configuration (YAML) for infra snapshots: one is taken for every deployment
    /// recorded, and on --snapshot-interval. Re-read for every snapshot.
    #[arg(long, env = "DEPLOYGRAPH_GATE_CONFIG")]
    pub gate_config: Option<PathBuf>,
    /// A target `POST /v1/snapshots` may check besides those of --gate-config: `host`,
    /// `host:port` or a URL prefix (`https://api.example:6443/`); repeatable or comma-separated.
    #[arg(
        long = "snapshot-allow-target",
        env = "DEPLOYGRAPH_SNAPSHOT_ALLOW_TARGETS",
        value_delimiter = ',',
        value_name = "TARGET"
    )]
    pub snapshot_allow_targets: Vec<String>,
    /// Also take a snapshot this often (`15m`); needs --gate-config.
    #[arg(long, env = "DEPLOYGRAPH_SNAPSHOT_INTERVAL", requires = "gate_config")]
    pub snapshot_interval: Option<String>,
    /// The cluster this server records from: on the rollouts, changes and Helm releases of
    /// --watch-kubernetes, on snapshots, on the mesh's services, and the admission gate's
    /// snapshot lookup (default: `default`). 1-63 of A-Z a-z 0-9 . _ -.
    #[arg(long, env = "DEPLOYGRAPH_CLUSTER")]
    pub cluster: Option<String>,
    /// Serve the admission gate (`POST /v1/admission/validate`, a ValidatingWebhook for
    /// Deployments, StatefulSets and DaemonSets) with TLS on --admission-listen, with this
    /// certificate chain (PEM, leaf first). Read again when the file changes.
    #[arg(
        long,
        env = "DEPLOYGRAPH_ADMISSION_TLS_CERT",
        requires = "admission_tls_key"
    )]
    pub admission_tls_cert: Option<PathBuf>,
    /// The admission gate's private key (PEM).
    #[arg(
        long,
        env = "DEPLOYGRAPH_ADMISSION_TLS_KEY",
        requires = "admission_tls_cert"
    )]
    pub admission_tls_key: Option<PathBuf>,
    /// Address the admission gate listens on (TLS).
    #[arg(
        long,
        env = "DEPLOYGRAPH_ADMISSION_LISTEN",
        default_value = "0.0.0.0:8443"
    )]
    pub admission_listen: SocketAddr,
    /// Require API-server client certificates signed by this CA bundle (PEM) on the admission
    /// gate (the API server's AdmissionConfiguration names the certificate it presents).
    #[arg(
        long,
        env = "DEPLOYGRAPH_ADMISSION_CLIENT_CA",
        requires = "admission_tls_cert"
    )]
    pub admission_client_ca: Option<PathBuf>,
    /// `deny`: refuse a pod-template change while the cluster's newest infra snapshot fails,
    /// is older than --admission-max-snapshot-age or is missing; `warn`: admit it with a
    /// warning.
    #[arg(long, env = "DEPLOYGRAPH_ADMISSION_MODE", default_value = "deny")]
    pub admission_mode: String,
    /// An infra snapshot older than this does not let a change through (`1h`).
    #[arg(
        long,
        env = "DEPLOYGRAPH_ADMISSION_MAX_SNAPSHOT_AGE",
        default_value = "1h"
    )]
    pub admission_max_snapshot_age: String,
    /// Longest the store may take to answer an admission review (`2s`); past it the review
    /// gets a 503 and the webhook's failurePolicy decides. Keep it far below the webhook's
    /// timeoutSeconds.
    #[arg(long, env = "DEPLOYGRAPH_ADMISSION_TIMEOUT", default_value = "2s")]
    pub admission_timeout: String,
    /// Seconds open requests may take to finish after SIGTERM.
    #[arg(long, env = "DEPLOYGRAPH_SHUTDOWN_TIMEOUT", default_value_t = 20)]
    pub shutdown_timeout: u64,
    /// Service topology file (YAML, `services: [{name, namespace, environment, owner, tier,
    /// depends_on}]`), applied to the store at start-up as `manual` dependencies.
    #[arg(long, env = "DEPLOYGRAPH_TOPOLOGY")]
    pub topology: Option<PathBuf>,
    /// Prometheus holding the service call graph (Istio's `istio_requests_total`, the
    /// `traces_service_graph_request_total` of Tempo or the OpenTelemetry Collector): polled
    /// on --topology-prometheus-interval, what it reports is recorded as `mesh` dependencies.
    #[arg(long, env = "DEPLOYGRAPH_TOPOLOGY_PROMETHEUS_URL", value_name = "URL")]
    pub topology_prometheus_url: Option<String>,
    /// How often the call graph is read (`5m`).
    #[arg(
        long,
        env = "DEPLOYGRAPH_TOPOLOGY_PROMETHEUS_INTERVAL",
        default_value = "5m"
    )]
    pub topology_prometheus_interval: String,
    /// How far back calls count (`1h`).
    #[arg(
        long,
        env = "DEPLOYGRAPH_TOPOLOGY_PROMETHEUS_WINDOW",
        default_value = "1h"
    )]
    pub topology_prometheus_window: String,
    /// Environment of the services found in the call graph.
    #[arg(
        long,
        env = "DEPLOYGRAPH_TOPOLOGY_ENVIRONMENT",
        default_value = "production"
    )]
    pub topology_environment: String,
    /// Prometheus the canary hooks (`GET /v1/canary/judge` for Argo Rollouts,
    /// `POST /v1/canary/flagger` for Flagger) run their analyses against; without it they
    /// answer 404 `unsupported`. Attribution also reads each new alert's metric from it (the
    /// rule's expression in `generatorURL`, its comparison taken off) to find when the metric
    /// began to move: changes that started after that are not the cause.
    #[arg(long, env = "DEPLOYGRAPH_PROMETHEUS_URL", value_name = "URL")]
    pub prometheus: Option<String>,
    /// PromQL of a service's health, `$service` where its name goes (inside a label matcher's
    /// quotes; `$namespace` and `$cluster` for its namespace and cluster, so that one graph over
    /// many clusters reads each cluster's own series), one series whose rise means harm — an
    /// error ratio, a latency; e.g.
    /// `sum(rate(http_requests_total{service="$service",code=~"5.."}[5m])) /
    /// sum(rate(http_requests_total{service="$service"}[5m]))`. With --prometheus, attribution
    /// reads it for the alerting service and its dependencies (the nearest 16) over the window
    /// before each new alert: a change whose own service began to go wrong as it rolled out
    /// gains, one whose service stayed steady or was in trouble before it loses.
    #[arg(
        long,
        env = "DEPLOYGRAPH_SERVICE_HEALTH_QUERY",
        value_name = "PROMQL",
        requires = "prometheus",
        value_parser = service_health_query
    )]
    pub service_health_query: Option<String>,
    #[command(flatten)]
    pub canary: CanaryWatchArgs,
    #[command(flatten)]
    pub attribution: AttributionArgs,
    /// Alert labels tried in order for the service name (comma-separated).
    #[arg(
        long,
        env = "DEPLOYGRAPH_ALERT_SERVICE_LABELS",
        value_delimiter = ',',
        default_value = "service,app,app_kubernetes_io_name"
    )]
    pub alert_service_labels: Vec<String>,
    /// Environment of alerts without an `environment` label.
    #[arg(long, env = "DEPLOYGRAPH_ALERT_DEFAULT_ENVIRONMENT")]
    pub alert_default_environment: Option<String>,
    /// Server-side timeout of `POST /v1/cypher` queries (`10s`, at most `1h`).
    #[arg(long, env = "DEPLOYGRAPH_CYPHER_TIMEOUT", default_value = "10s")]
    pub cypher_timeout: String,
    /// Most rows `POST /v1/cypher` returns.
    #[arg(long, env = "DEPLOYGRAPH_CYPHER_MAX_ROWS", default_value_t = 1000)]
    pub cypher_max_rows: usize,
    /// Most bytes of JSON the rows of a `POST /v1/cypher` answer take (4 MiB).
    #[arg(long, env = "DEPLOYGRAPH_CYPHER_MAX_BYTES", default_value_t = deploygraph_store::cypher::DEFAULT_BYTE_CAP)]
    pub cypher_max_bytes: usize,
    /// Workers doing ingest follow-ups (attribution of new alerts, snapshots and
    /// re-attribution after deployments) at once.
    #[arg(long, env = "DEPLOYGRAPH_FOLLOW_UP_WORKERS", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub follow_up_workers: u16,
    /// Follow-ups claimed and waiting for a worker at most; beyond, they wait in the store.
    #[arg(long, env = "DEPLOYGRAPH_FOLLOW_UP_QUEUE", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub follow_up_queue: u32,
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// The Kubernetes watcher of `serve`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Watch Deployments, StatefulSets and DaemonSets and record every rollout, and edits of
    /// the ConfigMaps and Secrets they reference and of the HPAs that scale them as changes.
    #[arg(long, env = "DEPLOYGRAPH_WATCH_KUBERNETES")]
    pub watch_kubernetes: bool,
    /// Also record every Helm release revision (Secrets of type helm.sh/release.v1) with its
    /// values and manifest diff; workloads a release manages are then recorded as the release.
    #[arg(long, env = "DEPLOYGRAPH_WATCH_HELM", requires = "watch_kubernetes")]
    pub watch_helm: bool,
    /// Kubeconfig of the cluster to watch (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long = "watch-kubeconfig", env = "DEPLOYGRAPH_WATCH_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespaces to watch (repeatable or comma-separated; default: all).
    #[arg(
        long = "watch-namespace",
        env = "DEPLOYGRAPH_WATCH_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Only workloads matching this label selector (`team=payments`).
    #[arg(long = "watch-selector", env = "DEPLOYGRAPH_WATCH_SELECTOR")]
    pub selector: Option<String>,
    /// Environment recorded on the cluster's rollouts.
    #[arg(
        long = "watch-environment",
        env = "DEPLOYGRAPH_WATCH_ENVIRONMENT",
        default_value = "production"
    )]
    pub environment: String,
    /// Most bytes a Helm release may take decoded (the gzip output of its Secret); a release
    /// Secret over it (a gzip bomb, say) is skipped and counted, without decompressing further.
    #[arg(
        long = "watch-helm-max-release-bytes",
        env = "DEPLOYGRAPH_WATCH_HELM_MAX_RELEASE_BYTES",
        default_value_t = deploygraph_helm::decode::DEFAULT_MAX_RELEASE_BYTES
    )]
    pub helm_max_release_bytes: usize,
    /// Namespace of the leader-election Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long, env = "DEPLOYGRAPH_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "DEPLOYGRAPH_LEASE_NAME",
        default_value = "deploygraph-watcher"
    )]
    pub lease_name: String,
}

/// How alerts are attributed to deployments.
#[derive(Debug, Clone, Args)]
pub struct AttributionArgs {
    /// How far before an alert deployments are suspects (`6h`).
    #[arg(long, env = "DEPLOYGRAPH_ATTRIBUTION_WINDOW", default_value = "6h")]
    pub attribution_window: String,
    /// DEPENDS_ON hops from the alert's service whose deployments are suspects.
    #[arg(long, env = "DEPLOYGRAPH_ATTRIBUTION_DEPTH", default_value_t = 3)]
    pub attribution_depth: u32,
    /// Suspects whose probability is below this are not recorded.
    #[arg(long, env = "DEPLOYGRAPH_ATTRIBUTION_FLOOR", default_value_t = 0.01)]
    pub attribution_floor: f64,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub store: StoreOptions,
}

#[derive(Debug, Subcommand)]
pub enum RecordCommand {
    /// Record a deployment, with what changed (--change, --changes-file).
    Deployment(Box<RecordDeploymentArgs>),
    /// Record a change that is not a rollout (a feature flag, a Terraform apply, a migration,
    /// a node pool upgrade, a ConfigMap, Secret or HPA edit), with the keys it changed.
    Change(Box<RecordChangeArgs>),
    /// Record the alerts of an Alertmanager webhook notification (version 4) saved in a file.
    Alert(Box<RecordAlertArgs>),
}

#[derive(Debug, Args)]
pub struct RecordAlertArgs {
    /// The notification's JSON (`-` reads standard input).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct RecordDeploymentArgs {
    /// Service name (DNS-1123 label).
    #[arg(long)]
    pub service: String,
    /// Environment (`production`).
    #[arg(long)]
    pub environment: String,
    /// Cluster (default: `default`).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Commit SHA (7–40 hex).
    #[arg(long)]
    pub commit: String,
    /// Image as REPO[:TAG]@sha256:DIGEST; repeat for several.
    #[arg(long = "image", required = true)]
    pub images: Vec<String>,
    /// in_progress, succeeded, failed or rolled_back.
    #[arg(long)]
    pub status: String,
    /// Start time, RFC 3339 (default: now).
    #[arg(long)]
    pub started_at: Option<String>,
    /// Finish time, RFC 3339.
    #[arg(long)]
    pub finished_at: Option<String>,
    /// Idempotency key (e.g. the CI run id).
    #[arg(long)]
    pub id: Option<String>,
    /// Kubernetes namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Release version.
    #[arg(long)]
    pub release_version: Option<String>,
    /// Who rolled it out.
    #[arg(long)]
    pub actor: Option<String>,
    /// Repository of the commit.
    #[arg(long)]
    pub repo: Option<String>,
    /// A config change: PATH=BEFORE->AFTER (`values.redis.pool.size=50->10`); PATH=->AFTER
    /// for an added key, PATH=BEFORE-> for a removed one. Repeatable.
    #[arg(long = "change", value_name = "PATH=BEFORE->AFTER", value_parser = crate::changes::change_arg)]
    pub changes: Vec<deploygraph_model::deployment::ChangeInput>,
    /// Config changes from a file (`-`: standard input): a JSON or YAML list of
    /// {path, kind, before, after}, or the output of `helm diff upgrade`.
    #[arg(long, value_name = "FILE")]
    pub changes_file: Option<PathBuf>,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct RecordChangeArgs {
    /// A service it changed (DNS-1123 label); repeat for several.
    #[arg(long = "service", value_name = "NAME", required = true)]
    pub services: Vec<String>,
    /// The services' environment (`production`).
    #[arg(long)]
    pub environment: String,
    /// The services' Kubernetes namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// The services' cluster (default: `default`).
    #[arg(long)]
    pub cluster: Option<String>,
    /// feature_flag, terraform, migration, node_pool, config_map, secret, hpa or other.
    #[arg(long)]
    pub kind: String,
    /// Who or what made the change.
    #[arg(long)]
    pub actor: String,
    /// When it took effect, RFC 3339 (default: now).
    #[arg(long)]
    pub at: Option<String>,
    /// A key it changed; the --before and --after that follow it are its values (either may
    /// be left out: an added or a removed key). Repeatable.
    #[arg(long = "key", value_name = "K")]
    pub keys: Vec<String>,
    /// The value before of the --key it follows.
    #[arg(long = "before", value_name = "B")]
    pub befores: Vec<String>,
    /// The value after of the --key it follows.
    #[arg(long = "after", value_name = "A")]
    pub afters: Vec<String>,
    /// A link to the change (its audit log entry, Terraform run, pull request).
    #[arg(long)]
    pub link: Option<String>,
    /// One line for humans.
    #[arg(long)]
    pub summary: Option<String>,
    /// Idempotency key (e.g. the flag service's audit id).
    #[arg(long)]
    pub id: Option<String>,
    /// The keys with their values, paired from --key, --before and --after by their order on
    /// the command line ([`key_diffs`]).
    #[arg(skip)]
    pub diff: Vec<deploygraph_model::KeyChangeInput>,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

/// Pairs each `--before` and `--after` of `record change` (`matches`) with the `--key` before
/// it on the command line.
///
/// # Errors
/// A message for a `--before` or `--after` without a `--key` before it, or given twice for one
/// key.
pub fn key_diffs(
    matches: &clap::ArgMatches,
) -> Result<Vec<deploygraph_model::KeyChangeInput>, String> {
    let of = |id: &str| -> Vec<(usize, String)> {
        let indices = matches.indices_of(id).into_iter().flatten();
        let values = matches
            .get_many::<String>(id)
            .into_iter()
            .flatten()
            .cloned();
        indices.zip(values).collect()
    };
    let keys = of("keys");
    let mut diff: Vec<deploygraph_model::KeyChangeInput> = keys
        .iter()
        .map(|(_, key)| deploygraph_model::KeyChangeInput {
            key: Some(key.clone()),
            ..deploygraph_model::KeyChangeInput::default()
        })
        .collect();
    for (flag, id) in [("--before", "befores"), ("--after", "afters")] {
        for (index, value) in of(id) {
            let Some(owner) = keys.iter().rposition(|(k, _)| *k < index) else {
                return Err(format!(
                    "{flag} {value:?} must follow the --key whose value it is"
                ));
            };
            let entry = &mut diff[owner];
            let slot = if flag == "--before" {
                &mut entry.before
            } else {
                &mut entry.after
            };
            if slot.is_some() {
                return Err(format!("--key {:?} has {flag} twice", keys[owner].1));
            }
            *slot = Some(value);
        }
    }
    Ok(diff)
}

#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// List deployments, newest first.
    Deployments(QueryDeploymentsArgs),
    /// List alert occurrences, newest first.
    Alerts(QueryAlertsArgs),
    /// The deployments an alert is attributed to, most likely first.
    Suspects(QuerySuspectsArgs),
    /// A service's deployments, alerts, snapshots and chaos runs, oldest first.
    Timeline(QueryTimelineArgs),
    /// What a service's last failed or rolled-back deployments have in common.
    CommonFactors(QueryCommonFactorsArgs),
    /// DORA metrics per service and environment.
    Dora(QueryDoraArgs),
    /// Run a read-only Cypher query (Neo4j stores only).
    Cypher(QueryCypherArgs),
    /// Chaos verdicts per scenario across releases, regressions flagged.
    Resilience(QueryResilienceArgs),
}

#[derive(Debug, Args)]
pub struct QueryResilienceArgs {
    /// The service.
    #[arg(long, value_parser = crate::insight::service_arg)]
    pub service: deploygraph_model::ServiceName,
    /// Only this environment.
    #[arg(long, value_parser = crate::insight::environment_arg)]
    pub environment: Option<deploygraph_model::Environment>,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct QueryDeploymentsArgs {
    /// Only this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Only this environment.
    #[arg(long)]
    pub environment: Option<String>,
    /// Only this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Only this status.
    #[arg(long)]
    pub status: Option<String>,
    /// Started at or after (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Started at or before (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Continue after this cursor.
    #[arg(long)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

// Root-cause analysis (src/insight.rs). Values are checked as they are parsed, so a bad one
// exits 2 with clap's message naming the flag.

#[derive(Debug, Args)]
pub struct QueryAlertsArgs {
    /// Only alerts on this service.
    #[arg(long, value_parser = crate::insight::service_arg)]
    pub service: Option<deploygraph_model::ServiceName>,
    /// Only this environment.
    #[arg(long, value_parser = crate::insight::environment_arg)]
    pub environment: Option<deploygraph_model::Environment>,
    /// Only occurrences with this Alertmanager fingerprint.
    #[arg(long, value_parser = crate::insight::fingerprint_arg)]
    pub fingerprint: Option<String>,
    /// Started at or after (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = crate::insight::time_arg)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Started at or before (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = crate::insight::time_arg)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// At most this many.
    #[arg(long, default_value = "100", value_parser = crate::insight::limit_arg)]
    pub limit: usize,
    /// Continue with the next page: the `--cursor` a previous truncated answer printed.
    #[arg(long)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("verdict")
        .args(["confirm", "reject"])
        .conflicts_with("recompute")
        .requires("by")
))]
pub struct QuerySuspectsArgs {
    /// The alert's Alertmanager fingerprint (its newest occurrence unless --starts-at).
    #[arg(long, value_name = "FINGERPRINT", value_parser = crate::insight::fingerprint_arg)]
    pub alert: String,
    /// The occurrence that started at this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = crate::insight::time_arg)]
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Attribute the alert again first (and store the result); with --server, the server's
    /// attribution settings apply and --token is needed when it requires one.
    #[arg(long)]
    pub recompute: bool,
    /// Confirm this deployment or change (its uid) as the alert's cause (a write: --token when
    /// the server requires one). It need not be a computed suspect: the cause may lie outside
    /// the window. Kept across recomputes; later alerts count it as blamed.
    #[arg(long, value_name = "UID", value_parser = crate::insight::uid_arg)]
    pub confirm: Option<String>,
    /// Reject this deployment or change (its uid) as the alert's cause: it no longer counts
    /// as blamed for this alert, whatever its probability.
    #[arg(long, value_name = "UID", value_parser = crate::insight::uid_arg)]
    pub reject: Option<String>,
    /// Who gives the verdict (required with --confirm or --reject).
    #[arg(long, value_name = "NAME", requires = "verdict", value_parser = crate::insight::reviewer_arg)]
    pub by: Option<String>,
    /// Why, for the next reviewer (with --confirm or --reject).
    #[arg(long, value_name = "TEXT", requires = "verdict", value_parser = crate::insight::note_arg)]
    pub note: Option<String>,
    /// While the alert's attribution is still pending (it arrived moments ago and the server's
    /// follow-up workers have not computed it yet), wait up to this long for it (`10s`; `0s`
    /// answers at once, saying it is pending).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::insight::wait_arg)]
    pub wait: std::time::Duration,
    #[command(flatten)]
    pub attribution: AttributionArgs,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct QueryTimelineArgs {
    /// The service.
    #[arg(long, value_parser = crate::insight::service_arg)]
    pub service: deploygraph_model::ServiceName,
    /// Only this environment.
    #[arg(long, value_parser = crate::insight::environment_arg)]
    pub environment: Option<deploygraph_model::Environment>,
    /// Only this cluster.
    #[arg(long, value_parser = crate::insight::cluster_arg)]
    pub cluster: Option<deploygraph_model::Cluster>,
    /// Window start, RFC 3339 (default: 24 hours before --until).
    #[arg(long, value_name = "TIME", value_parser = crate::insight::time_arg)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Window end, RFC 3339 (default: now).
    #[arg(long, value_name = "TIME", value_parser = crate::insight::time_arg)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// At most this many items (a deployment, a change, an alert with its resolution, a
    /// snapshot, a chaos run with its end); the server's default is its page size, 10000.
    #[arg(long, value_parser = crate::insight::limit_arg)]
    pub limit: Option<usize>,
    /// Continue with the items before a previous truncated answer: its `--cursor`.
    #[arg(long)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct QueryCommonFactorsArgs {
    /// The service.
    #[arg(long, value_parser = crate::insight::service_arg)]
    pub service: deploygraph_model::ServiceName,
    /// Only this environment.
    #[arg(long, value_parser = crate::insight::environment_arg)]
    pub environment: Option<deploygraph_model::Environment>,
    /// Only this cluster.
    #[arg(long, value_parser = crate::insight::cluster_arg)]
    pub cluster: Option<deploygraph_model::Cluster>,
    /// How many of the newest failed or rolled-back deployments to compare.
    #[arg(long, default_value = "3", value_parser = crate::insight::last_arg)]
    pub last: usize,
    // Dependencies deployed within --attribution-window before a failure count as a factor
    // (with --store; a server uses its own settings).
    #[command(flatten)]
    pub attribution: AttributionArgs,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct QueryDoraArgs {
    /// Only this service (default: all).
    #[arg(long, value_parser = crate::insight::service_arg)]
    pub service: Option<deploygraph_model::ServiceName>,
    /// Only this environment.
    #[arg(long, value_parser = crate::insight::environment_arg)]
    pub environment: Option<deploygraph_model::Environment>,
    /// Only this cluster.
    #[arg(long, value_parser = crate::insight::cluster_arg)]
    pub cluster: Option<deploygraph_model::Cluster>,
    /// Period start, RFC 3339 (default: 30 days before --until).
    #[arg(long, value_name = "TIME", value_parser = crate::insight::time_arg)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Period end, RFC 3339 (default: now).
    #[arg(long, value_name = "TIME", value_parser = crate::insight::time_arg)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The readiness URL. Default: `/readyz` on loopback at the port of DEPLOYGRAPH_LISTEN (the
    /// address `serve` listens on in the same container), else 127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub url: Option<url::Url>,
    /// How long to wait for the answer.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question (times in it are UTC).
    #[arg(value_name = "QUESTION")]
    pub question: String,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format: text (how it was understood, the answer, the Cypher) or json (the
    /// server's answer as it is).
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct QueryCypherArgs {
    /// The Cypher query; it runs read-only, and a write is refused by the database.
    #[arg(value_name = "QUERY")]
    pub query: String,
    /// A string parameter `$NAME`; repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = crate::insight::param_arg)]
    pub params: Vec<(String, serde_json::Value)>,
    /// A parameter of any JSON type (`ids=[1,2]`, `n=5`); repeatable.
    #[arg(long = "param-json", value_name = "NAME=JSON", value_parser = crate::insight::param_json_arg)]
    pub params_json: Vec<(String, serde_json::Value)>,
    /// Time limit the database enforces (default 10s; a server may lower it).
    #[arg(long, value_name = "DURATION", value_parser = crate::insight::duration_arg)]
    pub timeout: Option<std::time::Duration>,
    /// At most this many rows (default 1000; a server may lower it).
    #[arg(long, value_parser = crate::insight::limit_arg)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format: an aligned table, or `{"columns","rows","truncated"}`.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// A post-incident review draft for an alert: suspects, timeline, infrastructure, chaos
    /// history, DORA context and a Mermaid diagram.
    Incident(ReportIncidentArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Markdown (also `text`).
    #[value(alias = "text")]
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportIncidentArgs {
    /// The alert's Alertmanager fingerprint (its newest occurrence unless --starts-at).
    #[arg(long, value_name = "FINGERPRINT", value_parser = crate::insight::fingerprint_arg)]
    pub alert: String,
    /// The occurrence that started at this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = crate::insight::time_arg)]
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Report format (`--output` is an alias).
    #[arg(long, visible_alias = "output", value_enum, default_value = "markdown")]
    pub format: ReportFormat,
    // The window and depth the report looks at (with --store; a server uses its own settings).
    #[command(flatten)]
    pub attribution: AttributionArgs,
    #[command(flatten)]
    pub target: RecordTarget,
}

#[derive(Debug, Subcommand)]
pub enum TopologyCommand {
    /// Record the dependencies of every service in a topology file (YAML,
    /// `services: [{name, namespace, environment, owner, tier, depends_on}]`), replacing the
    /// `manual` ones recorded before (edges from Backstage or the mesh stay).
    Apply(TopologyApplyArgs),
    /// Import dependencies, owners and tiers from Backstage catalog files (`backstage` edges,
    /// replacing those an earlier import recorded for the same entities), and/or the call graph
    /// Prometheus holds (`--prometheus`: `mesh` edges, added or refreshed).
    Import(TopologyImportArgs),
}

#[derive(Debug, Args)]
pub struct TopologyImportArgs {
    /// Backstage catalog files (`catalog-info.yaml`: one or more entity documents each).
    #[arg(value_name = "FILE", required_unless_present = "prometheus")]
    pub files: Vec<PathBuf>,
    /// Prometheus URL: import the call graph it holds (Istio's `istio_requests_total`, the
    /// `traces_service_graph_request_total` of Tempo or the OpenTelemetry Collector).
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// How far back calls count (`1h`).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub prometheus_window: String,
    /// Environment of the imported services.
    #[arg(
        long,
        env = "DEPLOYGRAPH_TOPOLOGY_ENVIRONMENT",
        default_value = "production",
        value_parser = crate::insight::environment_arg
    )]
    pub environment: deploygraph_model::Environment,
    /// Namespace of Backstage entities without a `backstage.io/kubernetes-namespace`
    /// annotation (default: none).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Cluster of every imported service.
    #[arg(long, default_value = "default", value_parser = crate::insight::cluster_arg)]
    pub cluster: deploygraph_model::Cluster,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct TopologyApplyArgs {
    /// The topology file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub target: RecordTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

/// A Neo4j database name: 3 to 63 of ASCII letters, digits, `.` and `-`, starting with a letter
/// (Neo4j's own rule for database names).
pub fn neo4j_database(value: &str) -> Result<String, String> {
    let ok = (3..=63).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_alphabetic())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(
            "a database name is 3 to 63 ASCII letters, digits, '.' or '-', starting with a letter"
                .into(),
        )
    }
}

/// A service health query names the service (`$service`).
fn service_health_query(text: &str) -> Result<String, String> {
    if text.contains("$service") {
        Ok(text.to_owned())
    } else {
        Err("the query must name the service as $service (e.g. {service=\"$service\"})".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn neo4j_database_names_follow_neo4j_s_rule() {
        for ok in ["neo4j", "team-a.graph", "abc"] {
            assert_eq!(neo4j_database(ok).as_deref(), Ok(ok));
        }
        for bad in ["ab", "1abc", "a_b", "", &"a".repeat(64)] {
            assert!(neo4j_database(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn suspects_with(args: &[&str]) -> Result<(), clap::error::ErrorKind> {
        let mut argv = vec!["deploygraph", "query", "suspects", "--alert", "fp1"];
        argv.extend_from_slice(args);
        Cli::command()
            .try_get_matches_from(argv)
            .map(|_| ())
            .map_err(|e| e.kind())
    }

    #[test]
    fn a_verdict_needs_a_reviewer_and_one_subject() {
        let uid = "deployment-0123";
        assert_eq!(suspects_with(&["--confirm", uid, "--by", "alice"]), Ok(()));
        assert_eq!(
            suspects_with(&["--reject", uid, "--by", "alice", "--note", "not it"]),
            Ok(())
        );
        for bad in [
            &["--confirm", uid][..],
            &["--confirm", uid, "--reject", uid, "--by", "alice"],
            &["--confirm", uid, "--by", "alice", "--recompute"],
            &["--by", "alice"],
            &["--note", "why"],
            &["--confirm", "not a uid", "--by", "alice"],
            &["--confirm", uid, "--by", ""],
        ] {
            assert!(suspects_with(bad).is_err(), "{bad:?}");
        }
    }

    fn diff_of(args: &[&str]) -> Result<Vec<deploygraph_model::KeyChangeInput>, String> {
        let mut argv = vec![
            "deploygraph",
            "record",
            "change",
            "--service",
            "payments",
            "--environment",
            "production",
            "--kind",
            "feature_flag",
            "--actor",
            "alice",
        ];
        argv.extend_from_slice(args);
        let matches = Cli::command()
            .try_get_matches_from(argv)
            .map_err(|e| e.to_string())?;
        let change = matches
            .subcommand_matches("record")
            .and_then(|m| m.subcommand_matches("change"))
            .ok_or("no record change")?;
        key_diffs(change)
    }

    #[test]
    fn values_belong_to_the_key_before_them() {
        let diff = diff_of(&[
            "--key", "a", "--after", "1", "--key", "b", "--before", "2", "--after", "3", "--key",
            "c",
        ])
        .expect("paired");
        let pairs: Vec<(Option<&str>, Option<&str>, Option<&str>)> = diff
            .iter()
            .map(|k| (k.key.as_deref(), k.before.as_deref(), k.after.as_deref()))
            .collect();
        assert_eq!(
            pairs,
            [
                (Some("a"), None, Some("1")),
                (Some("b"), Some("2"), Some("3")),
                (Some("c"), None, None)
            ]
        );
        assert!(diff_of(&[]).expect("no keys").is_empty());
        for bad in [
            &["--before", "1", "--key", "a"][..],
            &["--key", "a", "--after", "1", "--after", "2"][..],
        ] {
            assert!(diff_of(bad).is_err(), "{bad:?}");
        }
    }
}
