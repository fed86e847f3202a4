//! Runs checks concurrently (bounded) under one global deadline. Checks still running at the
//! deadline are reported `unknown`; the call never outlives the deadline.

use crate::check::{CheckKind, CheckResult, Status};
use crate::coredns::Thresholds;
use crate::dns::DnsCheck;
use crate::k8s::K8sTarget;
use crate::tls::{CheckOptions, TlsTarget};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use std::path::PathBuf;
use std::time::Duration;

/// One check to run.
#[derive(Debug, Clone)]
pub enum Check {
    /// A TLS endpoint.
    Tls(TlsTarget),
    /// A certificate file.
    File(PathBuf),
    /// A DNS name.
    Dns(DnsCheck),
    /// CoreDNS's cache, from its metrics endpoint.
    Coredns {
        /// `http://host:9153/metrics`.
        url: String,
        /// Limits.
        limits: Thresholds,
    },
    /// Certificates in a cluster: TLS Secrets, kubeconfig client certificates, the API
    /// server's serving certificate. Gives one result per certificate source.
    Kubernetes(K8sTarget),
    /// A Kubernetes API server.
    Apiserver {
        /// `https://host:port`.
        url: String,
        /// Its CA bundle (PEM); the system roots when absent.
        ca_pem: Option<Vec<u8>>,
    },
}

impl Check {
    fn kind(&self) -> CheckKind {
        match self {
            Self::Tls(_) => CheckKind::Tls,
            Self::File(_) => CheckKind::FileCert,
            Self::Dns(_) => CheckKind::Dns,
            Self::Apiserver { .. } => CheckKind::Apiserver,
            Self::Coredns { .. } => CheckKind::Coredns,
            Self::Kubernetes(_) => CheckKind::K8sSecretCert,
        }
    }

    fn target(&self) -> String {
        match self {
            Self::Tls(t) => t.to_string(),
            Self::File(p) => p.display().to_string(),
            Self::Dns(d) => d.target.to_string(),
            Self::Apiserver { url, .. } | Self::Coredns { url, .. } => url.clone(),
            Self::Kubernetes(k) => format!("kubeconfig {}", k.kubeconfig.display()),
        }
    }
}

/// How checks run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Judgement and per-check timeout, shared by every check.
    pub checks: CheckOptions,
    /// At most this many checks at once.
    pub concurrency: usize,
    /// Everything is over by then.
    pub deadline: Duration,
}

/// Runs `checks` and returns their results in the order given (one per check, several for
/// [`Check::Kubernetes`]).
pub async fn run(checks: &[Check], options: &RunOptions) -> Vec<CheckResult> {
    let mut results: Vec<Option<Vec<CheckResult>>> = vec![None; checks.len()];
    let deadline = tokio::time::sleep(options.deadline);
    tokio::pin!(deadline);
    let mut pending = checks.iter().enumerate();
    let mut running = FuturesUnordered::new();
    let start_next =
        |running: &mut FuturesUnordered<_>,
         pending: &mut std::iter::Enumerate<std::slice::Iter<'_, Check>>| {
            if let Some((i, check)) = pending.next() {
                let options = options.clone();
                let check = check.clone();
                running.push(async move {
                    let result = match &check {
                        Check::Kubernetes(target) => {
                            let found = crate::k8s::check(
                                target,
                                options.checks.checkend,
                                options.checks.timeout,
                                options.concurrency,
                            )
                            .await;
                            return (i, found);
                        }
                        Check::Tls(target) => crate::tls::check(target, &options.checks).await,
                        Check::File(path) => {
                            crate::file::check(path, options.checks.checkend).await
                        }
                        Check::Dns(dns) => crate::dns::check(dns, options.checks.timeout).await,
                        Check::Coredns { url, limits } => {
                            crate::coredns::check(url, limits, options.checks.timeout).await
                        }
                        Check::Apiserver { url, ca_pem } => {
                            crate::apiserver::check(url, ca_pem.as_deref(), options.checks.timeout)
                                .await
                        }
                    };
                    (i, vec![result])
                });
            }
        };
    for _ in 0..options.concurrency.max(1) {
        start_next(&mut running, &mut pending);
    }
    loop {
        tokio::select! {
            next = running.next() => match next {
                Some((i, result)) => {
                    results[i] = Some(result);
                    start_next(&mut running, &mut pending);
                }
                None => break,
            },
            () = &mut deadline => break,
        }
    }
    results
        .into_iter()
        .zip(checks)
        .flat_map(|(result, check)| {
            result.unwrap_or_else(|| {
                vec![CheckResult::new(
                    check.kind(),
                    check.target(),
                    Status::Unknown,
                    format!(
                        "not finished within the gate's {:?} deadline",
                        options.deadline
                    ),
                )]
            })
        })
        .collect()
}
