//! What deployments change: the keys of realistic Helm charts and manifests per runtime, each
//! with a ladder of values operators actually set, the direction in which a change tends to
//! hurt, how it hurts, and two weights: how often a key is behind an outage, and how often it
//! is changed at all. Log levels and sampling rates change all the time and rarely hurt;
//! connection pools, memory limits, timeouts and heap flags change less and hurt more.

use super::dice::Dice;
use super::services::{Class, Runtime, Svc};

/// How a harmful change shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pods do not start or restart in a loop.
    Crash,
    /// Requests fail.
    Errors,
    /// Requests slow down.
    Latency,
    /// Fine until the next traffic peak.
    Capacity,
    /// Slowly: memory, connections or disk fill up over hours.
    Leak,
}

/// The direction in which moving along a key's ladder hurts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Smaller values hurt (limits, pools, timeouts).
    Down,
    /// Larger values hurt (retries, heap share, log verbosity).
    Up,
    /// Both ways (a pool too small starves, too large exhausts the database).
    Either,
    /// Any other value (paths, policies, URLs, flags).
    Swap,
}

/// One key.
#[derive(Debug)]
pub struct KeyDef {
    /// Its path; `{dep}` / `{DEP}` stand for a dependency's name, `{flag}` for a flag's.
    pub path: &'static str,
    /// The API's change kind.
    pub kind: &'static str,
    /// Values in increasing order (`{dep}` stands for the dependency's name).
    pub ladder: &'static [&'static str],
    /// Which way hurts.
    pub bad: Bad,
    /// How it hurts.
    pub mode: Mode,
    /// Weight among the keys behind outages.
    pub harm: f64,
    /// Weight among the keys changed by ordinary deployments.
    pub churn: f64,
}

const fn key(
    path: &'static str,
    kind: &'static str,
    ladder: &'static [&'static str],
    bad: Bad,
    mode: Mode,
    harm: f64,
    churn: f64,
) -> KeyDef {
    KeyDef {
        path,
        kind,
        ladder,
        bad,
        mode,
        harm,
        churn,
    }
}

use Bad::{Down, Either, Swap, Up};
use Mode::{Capacity, Crash, Errors, Latency, Leak};

// Each row: key(path, API kind,
//     values in increasing order, the direction that hurts, how it hurts,
//     weight among the keys behind outages, weight among the keys changed every day).

/// Every application container.
#[rustfmt::skip]
static APP: &[KeyDef] = &[
    key("spec.template.spec.containers[0].resources.limits.memory", "resources",
        &["256Mi", "384Mi", "512Mi", "768Mi", "1Gi", "1536Mi", "2Gi", "3Gi"], Down, Leak, 3.0, 1.5),
    key("spec.template.spec.containers[0].resources.requests.memory", "resources",
        &["128Mi", "256Mi", "512Mi", "1Gi", "2Gi"], Up, Capacity, 0.3, 1.2),
    key("spec.template.spec.containers[0].resources.limits.cpu", "resources",
        &["250m", "500m", "1", "1500m", "2", "4"], Down, Latency, 2.0, 1.0),
    key("spec.template.spec.containers[0].resources.requests.cpu", "resources",
        &["50m", "100m", "250m", "500m", "1", "2"], Either, Capacity, 0.5, 2.0),
    key("spec.replicas", "replicas",
        &["1", "2", "3", "4", "6", "8", "12"], Down, Capacity, 1.5, 2.0),
    key("values.autoscaling.maxReplicas", "value",
        &["3", "5", "8", "12", "20", "40"], Down, Capacity, 1.5, 1.2),
    key("values.autoscaling.targetCPUUtilizationPercentage", "value",
        &["50", "60", "70", "80", "90"], Up, Latency, 0.8, 1.0),
    key("spec.template.spec.containers[0].livenessProbe.timeoutSeconds", "manifest",
        &["1", "2", "3", "5", "10"], Down, Crash, 2.0, 0.5),
    key("spec.template.spec.containers[0].livenessProbe.failureThreshold", "manifest",
        &["1", "2", "3", "5", "10"], Down, Crash, 1.2, 0.4),
    key("spec.template.spec.containers[0].readinessProbe.httpGet.path", "manifest",
        &["/healthz", "/readyz", "/health/ready", "/actuator/health/readiness"], Swap, Crash, 1.5, 0.3),
    key("values.podDisruptionBudget.maxUnavailable", "value",
        &["0", "1", "2", "25%"], Up, Capacity, 0.2, 0.6),
    key("env.LOG_LEVEL", "env",
        &["error", "warn", "info", "debug", "trace"], Up, Latency, 0.6, 2.5),
    key("env.OTEL_TRACES_SAMPLER_ARG", "env",
        &["0.01", "0.05", "0.1", "0.25", "1.0"], Up, Latency, 0.2, 1.5),
    key("values.podAnnotations.sidecar.istio.io/proxyCPU", "value",
        &["50m", "100m", "200m", "500m"], Down, Latency, 0.6, 0.8),
    key("env.{DEP}_URL", "env",
        &["http://{dep}.prod.svc.cluster.local:8080", "http://{dep}:8080",
          "http://{dep}-canary.prod.svc.cluster.local:8080", "https://{dep}.internal.acme.io"],
        Swap, Errors, 1.5, 0.6),
    key("env.{DEP}_TIMEOUT_MS", "env",
        &["200", "500", "1000", "2000", "5000", "15000"], Either, Errors, 2.5, 1.2),
    key("values.resilience.retry.maxAttempts", "value",
        &["0", "1", "2", "3", "5"], Up, Latency, 1.2, 0.8),
    key("values.featureFlags.{flag}", "value",
        &["false", "true"], Swap, Errors, 2.0, 1.5),
    key("env.DB_PASSWORD", "env",
        &["vault:v11", "vault:v12", "vault:v13", "vault:v14"], Up, Errors, 0.8, 0.3),
    key("values.nodeSelector.karpenter.sh/capacity-type", "value",
        &["on-demand", "spot"], Up, Capacity, 0.5, 0.5),
    key("spec.template.spec.terminationGracePeriodSeconds", "manifest",
        &["5", "15", "30", "60"], Down, Errors, 0.5, 0.5),
    key("spec.template.spec.topologySpreadConstraints[0].maxSkew", "manifest",
        &["1", "2", "5"], Up, Capacity, 0.2, 0.4),
];

/// Services with their own ingress.
#[rustfmt::skip]
static INGRESS: &[KeyDef] = &[
    key("values.ingress.annotations.nginx.ingress.kubernetes.io/proxy-read-timeout", "value",
        &["10", "30", "60", "120", "300"], Down, Errors, 1.2, 0.7),
    key("values.ingress.annotations.nginx.ingress.kubernetes.io/proxy-body-size", "value",
        &["1m", "4m", "10m", "50m"], Down, Errors, 0.7, 0.6),
];

#[rustfmt::skip]
static JVM: &[KeyDef] = &[
    key("values.hikari.maximumPoolSize", "value",
        &["5", "10", "20", "30", "50", "100"], Either, Capacity, 3.0, 1.0),
    key("values.hikari.connectionTimeout", "value",
        &["250", "1000", "5000", "30000"], Down, Errors, 1.5, 0.5),
    key("env.JAVA_OPTS", "env",
        &["-XX:MaxRAMPercentage=50.0", "-XX:MaxRAMPercentage=65.0",
          "-XX:MaxRAMPercentage=75.0 -XX:+UseG1GC", "-XX:MaxRAMPercentage=85.0 -XX:+UseZGC",
          "-Xms2g -Xmx2g"],
        Up, Leak, 2.5, 1.0),
    key("values.server.tomcat.threads.max", "value",
        &["50", "100", "200", "400"], Down, Latency, 1.0, 0.5),
    key("values.spring.kafka.consumer.max-poll-records", "value",
        &["50", "100", "250", "500", "1000"], Up, Capacity, 0.8, 0.4),
];

#[rustfmt::skip]
static GO: &[KeyDef] = &[
    key("env.GOMAXPROCS", "env",
        &["1", "2", "4", "8"], Down, Latency, 1.2, 0.6),
    key("env.GOMEMLIMIT", "env",
        &["256MiB", "512MiB", "900MiB", "1800MiB"], Up, Leak, 1.5, 0.6),
    key("values.grpc.server.maxConcurrentStreams", "value",
        &["50", "100", "250", "1000"], Down, Latency, 0.8, 0.4),
    key("values.grpc.client.keepaliveTimeSeconds", "value",
        &["10", "30", "60", "300"], Down, Errors, 0.6, 0.3),
];

#[rustfmt::skip]
static NODE: &[KeyDef] = &[
    key("env.NODE_OPTIONS", "env",
        &["--max-old-space-size=256", "--max-old-space-size=512", "--max-old-space-size=1024",
          "--max-old-space-size=2048"],
        Either, Leak, 2.0, 0.8),
    key("env.UV_THREADPOOL_SIZE", "env",
        &["4", "8", "16", "32"], Down, Latency, 0.6, 0.4),
    key("values.ssr.cache.ttlSeconds", "value",
        &["0", "30", "60", "300"], Down, Latency, 0.7, 0.8),
];

#[rustfmt::skip]
static PYTHON: &[KeyDef] = &[
    key("env.GUNICORN_WORKERS", "env",
        &["1", "2", "4", "8", "16"], Either, Capacity, 1.5, 0.7),
    key("env.GUNICORN_TIMEOUT", "env",
        &["10", "30", "60", "120"], Down, Errors, 1.2, 0.5),
    key("values.celery.worker.concurrency", "value",
        &["2", "4", "8", "16"], Up, Leak, 0.8, 0.5),
];

#[rustfmt::skip]
static ENVOY: &[KeyDef] = &[
    key("values.routes.{dep}.timeout", "value",
        &["500ms", "1s", "3s", "5s", "15s", "30s"], Down, Errors, 2.5, 1.0),
    key("values.routes.{dep}.retryPolicy.numRetries", "value",
        &["0", "1", "2", "3", "5"], Up, Latency, 1.2, 0.6),
    key("values.envoy.circuitBreakers.maxPendingRequests", "value",
        &["256", "1024", "4096", "16384"], Down, Errors, 1.2, 0.5),
    key("values.rateLimit.requestsPerUnit", "value",
        &["50", "100", "250", "500", "1000"], Down, Errors, 1.5, 0.8),
    key("values.tls.minimumProtocolVersion", "value",
        &["TLSv1_0", "TLSv1_2", "TLSv1_3"], Up, Errors, 1.0, 0.3),
    key("values.resources.limits.memory", "resources",
        &["256Mi", "512Mi", "1Gi", "2Gi"], Down, Leak, 1.0, 0.6),
    key("spec.replicas", "replicas",
        &["2", "3", "4", "6", "9"], Down, Capacity, 1.0, 1.0),
    key("env.LOG_LEVEL", "env",
        &["error", "warn", "info", "debug"], Up, Latency, 0.4, 1.5),
];

#[rustfmt::skip]
static NGINX: &[KeyDef] = &[
    key("values.controller.config.proxy-read-timeout", "value",
        &["10", "30", "60", "120"], Down, Errors, 1.5, 0.7),
    key("values.controller.config.worker-processes", "value",
        &["1", "2", "4", "auto"], Down, Latency, 1.0, 0.5),
    key("values.controller.config.keep-alive-requests", "value",
        &["100", "1000", "10000"], Down, Latency, 0.6, 0.4),
    key("values.controller.config.use-http2", "value",
        &["false", "true"], Swap, Errors, 0.6, 0.4),
    key("values.controller.config.proxy-buffer-size", "value",
        &["4k", "8k", "16k", "32k"], Down, Errors, 0.8, 0.5),
    key("values.controller.replicaCount", "replicas",
        &["2", "3", "4", "6"], Down, Capacity, 1.0, 0.8),
    key("values.controller.resources.limits.memory", "resources",
        &["256Mi", "512Mi", "1Gi", "2Gi"], Down, Leak, 1.0, 0.6),
];

#[rustfmt::skip]
static POSTGRES: &[KeyDef] = &[
    key("values.primary.extendedConfiguration.max_connections", "value",
        &["100", "200", "300", "500", "1000"], Down, Errors, 3.0, 0.8),
    key("values.primary.extendedConfiguration.statement_timeout", "value",
        &["1s", "5s", "30s", "60s"], Down, Errors, 1.5, 0.6),
    key("values.primary.extendedConfiguration.work_mem", "value",
        &["4MB", "16MB", "64MB", "256MB"], Up, Leak, 1.2, 0.5),
    key("values.primary.resources.limits.memory", "resources",
        &["2Gi", "4Gi", "8Gi", "16Gi"], Down, Leak, 1.5, 0.6),
    key("values.readReplicas.replicaCount", "replicas",
        &["0", "1", "2", "3"], Down, Latency, 1.2, 0.5),
    key("values.pgbouncer.defaultPoolSize", "value",
        &["10", "20", "50", "100"], Down, Capacity, 2.0, 0.6),
    key("values.metrics.enabled", "value",
        &["false", "true"], Swap, Latency, 0.1, 0.5),
];

#[rustfmt::skip]
static MONGO: &[KeyDef] = &[
    key("values.wiredTigerCacheSizeGB", "value",
        &["0.5", "1", "2", "4"], Down, Latency, 1.5, 0.6),
    key("values.resources.limits.memory", "resources",
        &["2Gi", "4Gi", "8Gi"], Down, Leak, 1.5, 0.5),
    key("values.replicaCount", "replicas",
        &["1", "3", "5"], Down, Latency, 0.8, 0.3),
];

#[rustfmt::skip]
static ELASTIC: &[KeyDef] = &[
    key("values.esJavaOpts", "value",
        &["-Xmx1g -Xms1g", "-Xmx2g -Xms2g", "-Xmx4g -Xms4g"], Down, Leak, 1.5, 0.5),
    key("values.esConfig.thread_pool.search.queue_size", "value",
        &["100", "500", "1000", "2000"], Down, Errors, 1.2, 0.4),
    key("values.esConfig.indices.refresh_interval", "value",
        &["1s", "5s", "30s"], Down, Latency, 0.8, 0.6),
];

#[rustfmt::skip]
static REDIS: &[KeyDef] = &[
    key("values.master.configuration.maxmemory-policy", "value",
        &["noeviction", "allkeys-lru", "volatile-lru", "allkeys-lfu"], Swap, Errors, 2.5, 0.5),
    key("values.master.configuration.maxmemory", "value",
        &["256mb", "512mb", "1gb", "2gb"], Down, Errors, 2.0, 0.6),
    key("values.master.resources.limits.memory", "resources",
        &["512Mi", "1Gi", "2Gi", "4Gi"], Down, Leak, 1.5, 0.6),
    key("values.sentinel.downAfterMilliseconds", "value",
        &["1000", "5000", "30000", "60000"], Down, Errors, 1.0, 0.4),
];

#[rustfmt::skip]
static KAFKA: &[KeyDef] = &[
    key("values.heapOpts", "value",
        &["-Xmx1G -Xms1G", "-Xmx2G -Xms2G", "-Xmx4G -Xms4G"], Down, Leak, 1.5, 0.5),
    key("values.extraConfig.message.max.bytes", "value",
        &["1048588", "2097164", "5242880"], Down, Errors, 1.5, 0.4),
    key("values.logRetentionHours", "value",
        &["24", "72", "168"], Down, Errors, 0.5, 0.6),
    key("values.extraConfig.num.io.threads", "value",
        &["4", "8", "16"], Down, Latency, 0.8, 0.4),
];

#[rustfmt::skip]
static RABBIT: &[KeyDef] = &[
    key("values.extraConfiguration.vm_memory_high_watermark.relative", "value",
        &["0.4", "0.6", "0.8"], Up, Leak, 1.2, 0.4),
    key("values.resources.limits.memory", "resources",
        &["1Gi", "2Gi", "4Gi"], Down, Leak, 1.2, 0.5),
];

#[rustfmt::skip]
static NATS: &[KeyDef] = &[
    key("values.config.jetstream.memoryStore.maxSize", "value",
        &["256Mi", "1Gi", "4Gi"], Down, Errors, 1.2, 0.5),
    key("values.config.cluster.replicas", "replicas",
        &["1", "3", "5"], Down, Latency, 0.8, 0.3),
];

#[rustfmt::skip]
static PLATFORM: &[KeyDef] = &[
    key("values.opa.decisionCache.ttlSeconds", "value",
        &["0", "5", "30", "120"], Down, Latency, 1.5, 0.8),
    key("values.policyBundle.revision", "value",
        &["r41", "r42", "r43", "r44", "r45", "r46"], Up, Errors, 2.0, 1.5),
    key("values.jwt.allowedClockSkewSeconds", "value",
        &["0", "30", "60", "300"], Down, Errors, 1.0, 0.3),
    key("values.rateLimits.default.requestsPerUnit", "value",
        &["100", "500", "1000", "5000"], Down, Errors, 2.0, 0.6),
];

#[rustfmt::skip]
static CRON: &[KeyDef] = &[
    key("spec.schedule", "manifest",
        &["*/15 * * * *", "0 * * * *", "0 2 * * *", "30 3 * * *"], Swap, Capacity, 0.4, 0.8),
    key("spec.jobTemplate.spec.activeDeadlineSeconds", "manifest",
        &["600", "1800", "3600", "7200"], Down, Errors, 0.5, 0.4),
    key("spec.concurrencyPolicy", "manifest",
        &["Forbid", "Replace", "Allow"], Up, Capacity, 0.8, 0.3),
];

/// ConfigMaps edited in place (`kubectl edit`, a GitOps sync of the ConfigMap alone).
#[rustfmt::skip]
static CONFIG_MAP: &[KeyDef] = &[
    key("ConfigMap/{svc}-config:data.UPSTREAM_TIMEOUT_MS", "value",
        &["250", "500", "1000", "3000", "10000"], Down, Errors, 2.5, 1.0),
    key("ConfigMap/{svc}-config:data.MAX_INFLIGHT_REQUESTS", "value",
        &["50", "100", "200", "500"], Down, Capacity, 1.5, 0.8),
    key("ConfigMap/{svc}-config:data.CACHE_TTL_SECONDS", "value",
        &["0", "10", "60", "300", "900"], Down, Latency, 1.5, 1.2),
    key("ConfigMap/{svc}-config:data.DB_POOL_MAX", "value",
        &["5", "10", "20", "40", "80"], Either, Capacity, 2.0, 0.8),
    key("ConfigMap/{svc}-config:data.LOG_LEVEL", "value",
        &["warn", "info", "debug"], Up, Latency, 0.3, 2.0),
    key("ConfigMap/{svc}-config:data.RATE_LIMIT_PER_CLIENT", "value",
        &["10", "50", "100", "500"], Down, Errors, 1.5, 0.6),
    key("ConfigMap/{svc}-config:data.ENABLE_ASYNC_WRITES", "value",
        &["false", "true"], Swap, Errors, 1.5, 0.8),
];

/// Flags in the flag service, per service.
#[rustfmt::skip]
static FLAG: &[KeyDef] = &[
    key("featureflags/{svc}.{flag}:enabled", "value",
        &["false", "true"], Up, Errors, 2.0, 1.5),
    key("featureflags/{svc}.{flag}:rollout", "value",
        &["0%", "5%", "25%", "50%", "100%"], Up, Latency, 1.5, 1.5),
];

/// Flag names, as product teams name them.
pub const FLAGS: &[&str] = &[
    "newCheckout",
    "asyncInventoryReservation",
    "pricingEngineV2",
    "grpcTransport",
    "edgeCaching",
    "batchedWrites",
    "mlRanker",
    "oneClickPay",
    "searchIndexV3",
    "addressAutocomplete",
];

/// `kubectl rollout restart`: the only key an otherwise unchanged restart changes.
pub const RESTARTED_AT: &str =
    "spec.template.metadata.annotations.kubectl.kubernetes.io/restartedAt";

/// The keys a service's deployments may change.
pub fn table(svc: &Svc) -> Vec<&'static KeyDef> {
    let mut out: Vec<&'static KeyDef> = Vec::new();
    let runtime: &'static [KeyDef] = match svc.runtime {
        Runtime::Jvm => JVM,
        Runtime::Go => GO,
        Runtime::Node => NODE,
        Runtime::Python => PYTHON,
        Runtime::Envoy => ENVOY,
        Runtime::Nginx => NGINX,
        Runtime::Postgres => POSTGRES,
        Runtime::Mongo => MONGO,
        Runtime::Elastic => ELASTIC,
        Runtime::Redis => REDIS,
        Runtime::Kafka => KAFKA,
        Runtime::Rabbit => RABBIT,
        Runtime::Nats => NATS,
    };
    out.extend(runtime);
    match svc.class {
        Class::Edge | Class::Store | Class::Cache | Class::Queue => {}
        Class::Bff => {
            out.extend(APP);
            out.extend(INGRESS);
        }
        Class::Domain | Class::Core => out.extend(APP),
        Class::Platform => {
            out.extend(APP);
            out.extend(PLATFORM);
        }
        Class::Standalone => {
            out.extend(APP.iter().filter(|k| !k.path.contains("{DEP}")));
            out.extend(CRON);
        }
    }
    out
}

/// The ConfigMap keys and flags of a service.
pub fn out_of_band(flags: bool) -> &'static [KeyDef] {
    if flags { FLAG } else { CONFIG_MAP }
}

/// One key a change moves, with what its placeholders stand for.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// The key.
    pub def: &'static KeyDef,
    /// The service's base name (`{svc}`).
    pub svc: &'static str,
    /// The dependency (`{dep}`, `{DEP}`).
    pub dep: &'static str,
    /// The flag (`{flag}`).
    pub flag: &'static str,
}

impl KeySpec {
    /// The key's path.
    pub fn path(&self) -> String {
        fill(self.def.path, self)
    }

    /// The ladder's value at `i`.
    pub fn value(&self, i: usize) -> String {
        fill(self.def.ladder[i], self)
    }
}

fn fill(pattern: &str, spec: &KeySpec) -> String {
    pattern
        .replace("{DEP}", &spec.dep.to_ascii_uppercase().replace('-', "_"))
        .replace("{dep}", spec.dep)
        .replace("{svc}", spec.svc)
        .replace("{flag}", spec.flag)
}

/// Picks `n` keys of `defs` for a change on `svc`: the first by its weight as a cause when
/// `harmful`, the others by how often they change; never a path in `exclude`, never one path
/// twice. Fewer than `n` when the table runs out.
pub fn pick(
    dice: &mut Dice,
    defs: &[&'static KeyDef],
    svc: &'static str,
    deps: &[&'static str],
    n: usize,
    harmful: bool,
    exclude: &[String],
) -> Vec<KeySpec> {
    let mut out: Vec<KeySpec> = Vec::new();
    let mut taken: Vec<String> = exclude.to_vec();
    for k in 0..n {
        let as_cause = harmful && k == 0;
        let usable: Vec<(usize, f64)> = defs
            .iter()
            .enumerate()
            .filter(|(_, d)| !deps.is_empty() || !needs_dep(d))
            .map(|(i, d)| (i, if as_cause { d.harm } else { d.churn }))
            .collect();
        if usable.is_empty() {
            break;
        }
        let mut chosen = None;
        for _ in 0..8 {
            let def = defs[dice.weighted(&usable)];
            let spec = KeySpec {
                def,
                svc,
                dep: if deps.is_empty() { "" } else { dice.pick(deps) },
                flag: dice.pick(FLAGS),
            };
            let path = spec.path();
            if !taken.contains(&path) {
                taken.push(path);
                chosen = Some(spec);
                break;
            }
        }
        match chosen {
            Some(spec) => out.push(spec),
            None => break,
        }
    }
    out
}

fn needs_dep(def: &KeyDef) -> bool {
    def.path.contains("{dep}") || def.path.contains("{DEP}")
}
