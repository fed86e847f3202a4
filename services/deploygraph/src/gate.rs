//! `deploygraph gate` and `deploygraph snapshot`: flags and the config file into one
//! configuration, run its checks, report, record.

use crate::api::{Local, connect};
use crate::cli::{CheckArgs, GateArgs, GateOutput, Output, RecordTarget, SnapshotArgs};
use crate::commands::Failure;
use crate::insight::decode;
use deploygraph_model::{InfraSnapshot, Uid};
use deploygraph_probe::CheckResult;
use deploygraph_probe::config::{self, ApiserverEntry, CorednsEntry, GateConfig, KubernetesEntry};
use deploygraph_probe::coredns::Thresholds;
use deploygraph_probe::dns::{DnsCheck, DnsTarget};
use deploygraph_probe::gate::{Verdict, verdict};
use deploygraph_probe::tls::TlsTarget;
use deploygraph_probe::{report, snapshot};
use std::io::IsTerminal as _;

/// The configuration the flags describe, to merge over the file's.
fn flags(args: &CheckArgs) -> Result<GateConfig, Failure> {
    let duration = |flag: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(config::parse_duration)
            .transpose()
            .map_err(|e| Failure::usage(format!("--{flag}: {e}")))
    };
    if args.concurrency == Some(0) {
        return Err(Failure::usage("--concurrency: must be at least 1"));
    }
    let tls = args
        .tls
        .iter()
        .map(|raw| {
            raw.parse::<TlsTarget>()
                .map_err(|e| Failure::usage(format!("--tls: {e}")))
        })
        .collect::<Result<_, Failure>>()?;
    let dns = args
        .dns
        .iter()
        .map(|raw| {
            raw.parse::<DnsTarget>()
                .map(DnsCheck::resolves)
                .map_err(|e| Failure::usage(format!("--dns: {e}")))
        })
        .collect::<Result<_, Failure>>()?;
    let apiserver = args
        .apiservers
        .iter()
        .map(|url| {
            config::http_url(url).map_err(|e| Failure::usage(format!("--apiserver: {e}")))?;
            Ok(ApiserverEntry {
                url: url.clone(),
                ca_file: args.apiserver_ca.clone(),
            })
        })
        .collect::<Result<_, Failure>>()?;
    let coredns = args
        .coredns
        .iter()
        .map(|url| {
            config::http_url(url).map_err(|e| Failure::usage(format!("--coredns-metrics: {e}")))?;
            Ok(CorednsEntry {
                url: url.clone(),
                limits: Thresholds::default(),
            })
        })
        .collect::<Result<_, Failure>>()?;
    let kubernetes = (!args.k8s_tls_secrets.is_empty()
        || args.k8s_client_certs
        || args.k8s_apiserver_cert
        || args.k8s_node_certs)
        .then(|| KubernetesEntry {
            kubeconfig: args.kubeconfig.clone(),
            tls_secret_namespaces: args.k8s_tls_secrets.clone(),
            client_certificates: args.k8s_client_certs,
            apiserver_certificate: args.k8s_apiserver_cert,
            node_certificates: args.k8s_node_certs,
            node_selector: args.k8s_node_selector.clone(),
            node_ca_file: args.k8s_node_ca.clone(),
        });
    if kubernetes.is_none() && args.kubeconfig.is_some() {
        return Err(Failure::usage(
            "--kubeconfig: give --k8s-tls-secrets, --k8s-client-certs, --k8s-apiserver-cert or --k8s-node-certs too",
        ));
    }
    Ok(GateConfig {
        checkend: args.checkend,
        deadline: duration("deadline", &args.deadline)?,
        timeout: duration("timeout", &args.timeout)?,
        concurrency: args.concurrency,
        allow_untrusted: args.allow_untrusted.then_some(true),
        allow_unknown: args.allow_unknown.then_some(true),
        ca_file: args.ca_file.clone(),
        tls,
        cert_files: args.cert_files.clone(),
        dns,
        apiserver,
        coredns,
        kubernetes,
    })
}

/// Runs the checks `args` (and `--config`) describe.
async fn run_checks(args: &CheckArgs) -> Result<(Vec<CheckResult>, Verdict), Failure> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::usage(format!("--config {}: {e}", path.display())))?;
            config::parse(&text)
                .map_err(|e| Failure::usage(format!("--config {}: {e}", path.display())))?
        }
        None => GateConfig::default(),
    };
    let plan = file.merge(flags(args)?).plan().map_err(|e| {
        if e.field.is_empty() {
            Failure::usage(format!(
                "{}; give --tls, --cert-file, --dns, --apiserver or --config",
                e.message
            ))
        } else {
            Failure::usage(e.to_string())
        }
    })?;
    if std::io::stderr().is_terminal() {
        eprintln!(
            "checking {} target(s), deadline {:?}…",
            plan.checks.len(),
            plan.options.deadline
        );
    }
    let results = deploygraph_probe::runner::run(&plan.checks, &plan.options).await;
    let verdict = verdict(&results, plan.policy);
    tracing::info!(
        passed = verdict.passed,
        failed = verdict.failed,
        unknown = verdict.unknown,
        pass = verdict.pass,
        "checks finished"
    );
    Ok((results, verdict))
}

/// Records `results` as a snapshot through the API (`POST /v1/snapshots` with the checks that
/// ran here), on `--server` or over `--store` in this process.
async fn record(
    target: &RecordTarget,
    results: &[CheckResult],
    cluster: Option<String>,
    deployment: Option<&str>,
) -> Result<InfraSnapshot, Failure> {
    let deployment = deployment
        .map(Uid::parse)
        .transpose()
        .map_err(|_| Failure::usage("--deployment: not a deployment uid"))?;
    let snapshot = snapshot::from_results(results, chrono::Utc::now(), cluster, deployment);
    let client = connect(target, Local::default()).await?;
    let body = serde_json::json!({
        "checks": snapshot.checks,
        "taken_at": deploygraph_model::format_time(&snapshot.taken_at),
        "cluster": snapshot.cluster,
        "deployment": snapshot.deployment_uid,
    });
    let what = "failed to record the snapshot";
    let accepted = client
        .record_snapshot(&body)
        .await
        .map_err(|e| Failure::from_api(what, e))?;
    decode(what, accepted.body)
}

/// `deploygraph gate`: exit 0 when every check passes, 1 otherwise.
pub async fn gate(args: GateArgs) -> Result<(), Failure> {
    let (results, verdict) = run_checks(&args.checks).await?;
    match args.output {
        GateOutput::Text => crate::out!("{}", report::text(&results, &verdict))?,
        GateOutput::Json => crate::outln!("{}", report::json(&results, &verdict))?,
        GateOutput::Junit => crate::out!("{}", report::junit(&results))?,
    }
    if args.record {
        let snapshot = record(
            &args.target,
            &results,
            args.cluster.clone(),
            args.deployment.as_deref(),
        )
        .await?;
        eprintln!("recorded snapshot {}", snapshot.uid);
    }
    if verdict.pass {
        Ok(())
    } else {
        Err(Failure::rejected(format!(
            "gate failed: {} failed, {} unknown of {} checks",
            verdict.failed,
            verdict.unknown,
            results.len()
        )))
    }
}

/// `deploygraph snapshot`: records whatever the verdict; exit 0 once recorded.
pub async fn snapshot(args: SnapshotArgs) -> Result<(), Failure> {
    let (results, _) = run_checks(&args.checks).await?;
    let snapshot = record(
        &args.target,
        &results,
        args.cluster.clone(),
        args.deployment.as_deref(),
    )
    .await?;
    if args.mermaid {
        crate::out!("{}", snapshot::mermaid(&snapshot))?;
    } else if args.output == Output::Json {
        crate::outln!("{}", serde_json::json!(snapshot))?;
    } else {
        crate::outln!(
            "snapshot {} ({}): {} checks",
            snapshot.uid,
            snapshot.verdict.as_str(),
            snapshot.checks.len()
        )?;
        for check in &snapshot.checks {
            crate::outln!(
                "  {:<7} {:<9} {}  {}",
                check.status.as_str(),
                check.kind,
                check.target,
                check.detail
            )?;
        }
    }
    Ok(())
}
