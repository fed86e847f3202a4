//! Kubernetes certificates: TLS Secrets (`kubernetes.io/tls`, their `tls.crt` and `ca.crt`) in
//! given namespaces, the kubeconfig's client certificates, the API server's serving
//! certificate (checked like any TLS endpoint, against the kubeconfig's CA), and each Node's
//! kubelet serving certificate at the Node's address and kubelet port (expiry, a SAN naming the
//! Node, trust against a CA bundle: the given one or the kubeconfig's).

use crate::check::{CheckKind, CheckResult, Status};
use crate::file::judge_bundle;
use crate::tls::{self, CheckOptions, TlsTarget, roots_from_bundle};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Duration;
use deploygraph_model::CertificateUse;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to check in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sTarget {
    /// The kubeconfig to use.
    pub kubeconfig: PathBuf,
    /// Namespaces whose TLS Secrets to check.
    pub tls_secret_namespaces: Vec<String>,
    /// Whether to check the kubeconfig's client certificates.
    pub client_certificates: bool,
    /// Whether to check the API server's serving certificate.
    pub apiserver_certificate: bool,
    /// Whether to check each Node's kubelet serving certificate.
    pub node_certificates: bool,
    /// Only the Nodes with these labels (a label selector, `role=worker`); all when absent.
    pub node_selector: Option<String>,
    /// The CA bundle kubelet certificates must chain to (default: the kubeconfig's CA).
    pub node_ca_file: Option<PathBuf>,
}

/// The kubelet port when a Node does not say (`status.daemonEndpoints.kubeletEndpoint.Port`).
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

fn unknown(kind: CheckKind, target: impl Into<String>, reason: impl Into<String>) -> CheckResult {
    CheckResult::new(kind, target, Status::Unknown, reason)
}

/// A file path in a kubeconfig, relative to the kubeconfig's directory.
fn resolve(kubeconfig: &Path, file: &str) -> PathBuf {
    let path = PathBuf::from(file);
    if path.is_absolute() {
        path
    } else {
        kubeconfig
            .parent()
            .map_or(path.clone(), |dir| dir.join(path))
    }
}

fn inline_or_file(
    kubeconfig: &Path,
    data: Option<&String>,
    file: Option<&String>,
) -> Option<Result<Vec<u8>, String>> {
    if let Some(data) = data {
        return Some(
            STANDARD
                .decode(data.trim())
                .map_err(|e| format!("invalid base64: {e}")),
        );
    }
    file.map(|f| {
        let path = resolve(kubeconfig, f);
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    })
}

/// The kubeconfig's client certificates, one result per user that has one.
pub fn client_certificates(
    kubeconfig_path: &Path,
    kubeconfig: &Kubeconfig,
    checkend: Duration,
) -> Vec<CheckResult> {
    kubeconfig
        .auth_infos
        .iter()
        .filter_map(|named| {
            let auth = named.auth_info.as_ref()?;
            let bytes = inline_or_file(
                kubeconfig_path,
                auth.client_certificate_data.as_ref(),
                auth.client_certificate.as_ref(),
            )?;
            let target = format!("kubeconfig user {}", named.name);
            Some(match bytes {
                Ok(bytes) => judge_bundle(CheckKind::FileCert, &bytes, target, checkend),
                Err(reason) => unknown(CheckKind::FileCert, target, reason),
            })
        })
        .collect()
}

/// The current context's API server as a TLS target, with its CA as trust anchor.
fn apiserver_target(
    kubeconfig_path: &Path,
    kubeconfig: &Kubeconfig,
) -> Result<(TlsTarget, Option<Vec<u8>>), String> {
    let context_name = kubeconfig
        .current_context
        .as_deref()
        .ok_or("the kubeconfig has no current-context")?;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| format!("context {context_name:?} is not in the kubeconfig"))?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| format!("cluster {:?} is not in the kubeconfig", context.cluster))?;
    let server = cluster
        .server
        .as_deref()
        .ok_or("the cluster has no server")?;
    let url = url::Url::parse(server).map_err(|e| format!("server {server:?}: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("server {server:?} has no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let ca = inline_or_file(
        kubeconfig_path,
        cluster.certificate_authority_data.as_ref(),
        cluster.certificate_authority.as_ref(),
    )
    .transpose()?;
    Ok((
        TlsTarget {
            host,
            port,
            server_name: None,
        },
        ca,
    ))
}

async fn client_of(kubeconfig: Kubeconfig) -> Result<Client, String> {
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    Client::try_from(config).map_err(|e| e.to_string())
}

/// Where a Node's kubelet answers: its first InternalIP, else ExternalIP, else Hostname
/// address, and its kubelet port.
pub fn kubelet_endpoint(node: &Node) -> Result<(String, u16), String> {
    let status = node.status.as_ref();
    let addresses = status.and_then(|s| s.addresses.as_ref());
    let address = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|kind| {
            addresses?
                .iter()
                .find(|a| a.type_ == *kind && !a.address.is_empty())
        })
        .map(|a| a.address.clone())
        .ok_or("the Node has no InternalIP, ExternalIP or Hostname address")?;
    let port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map_or(0, |e| e.port);
    let port = match u16::try_from(port) {
        Ok(0) => DEFAULT_KUBELET_PORT,
        Ok(port) => port,
        Err(_) => return Err(format!("kubelet port {port} is out of range")),
    };
    Ok((address, port))
}

/// Each selected Node's kubelet serving certificate, one result per Node, `concurrency` at a
/// time, each bounded by `options.timeout`.
async fn node_certificates(
    client: Client,
    selector: Option<&str>,
    options: &CheckOptions,
    concurrency: usize,
) -> Vec<CheckResult> {
    let nodes: Api<Node> = Api::all(client);
    let params = selector.map_or_else(ListParams::default, |s| ListParams::default().labels(s));
    let what = selector.map_or_else(|| "nodes".to_owned(), |s| format!("nodes {s}"));
    let list = match tokio::time::timeout(options.timeout, nodes.list(&params)).await {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => {
            return vec![unknown(
                CheckKind::Tls,
                what,
                format!("cannot list Nodes: {e}"),
            )];
        }
        Err(_) => {
            return vec![unknown(
                CheckKind::Tls,
                what,
                format!("no answer from the API server within {:?}", options.timeout),
            )];
        }
    };
    if list.items.is_empty() {
        return vec![CheckResult::new(
            CheckKind::Tls,
            what,
            Status::Pass,
            "no Nodes to check",
        )];
    }
    futures::stream::iter(list.items)
        .map(|node| async move {
            let name = node.metadata.name.clone().unwrap_or_default();
            match kubelet_endpoint(&node) {
                Err(reason) => unknown(CheckKind::Tls, format!("node {name}"), reason),
                Ok((host, port)) => {
                    let target = TlsTarget {
                        host,
                        port,
                        server_name: Some(name.clone()),
                    };
                    let mut result = tls::check(&target, options).await;
                    result.target = format!("node {name} kubelet {target}");
                    result
                }
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await
}

/// The Ingresses of `namespace` that terminate TLS with a Secret of it, by Secret name; empty
/// when they cannot be listed (no permission: the certificates are checked all the same).
async fn ingress_uses(client: &Client, namespace: &str) -> BTreeMap<String, Vec<CertificateUse>> {
    let mut uses: BTreeMap<String, Vec<CertificateUse>> = BTreeMap::new();
    let api: Api<Ingress> = Api::namespaced(client.clone(), namespace);
    let list = match api.list(&ListParams::default()).await {
        Ok(list) => list,
        Err(e) => {
            tracing::debug!(namespace, error.message = %e, "Ingresses not listed; certificates checked without their owners");
            return uses;
        }
    };
    for ingress in list.items {
        let Some(spec) = ingress.spec else { continue };
        let mut services = BTreeSet::new();
        if let Some(backend) = spec
            .default_backend
            .as_ref()
            .and_then(|b| b.service.as_ref())
        {
            services.insert(backend.name.clone());
        }
        for rule in spec.rules.iter().flatten() {
            for path in rule.http.iter().flat_map(|h| &h.paths) {
                if let Some(service) = &path.backend.service {
                    services.insert(service.name.clone());
                }
            }
        }
        let secrets: BTreeSet<&String> = spec
            .tls
            .iter()
            .flatten()
            .filter_map(|t| t.secret_name.as_ref())
            .collect();
        for secret in secrets {
            uses.entry(secret.clone())
                .or_default()
                .push(CertificateUse {
                    kind: "ingress".into(),
                    namespace: namespace.to_owned(),
                    name: ingress.metadata.name.clone().unwrap_or_default(),
                    services: services.iter().cloned().collect(),
                });
        }
    }
    uses
}

/// The Gateways (`gateway.networking.k8s.io/v1`) whose listeners terminate TLS with a Secret,
/// by the Secret's namespace and name, with the Services their HTTPRoutes route to; listed
/// once for all namespaces; empty where the Gateway API is not installed or cannot be listed.
async fn gateway_uses(client: &Client) -> BTreeMap<(String, String), Vec<CertificateUse>> {
    let mut uses: BTreeMap<(String, String), Vec<CertificateUse>> = BTreeMap::new();
    let resource = |kind: &str| {
        ApiResource::from_gvk(&GroupVersionKind::gvk(
            "gateway.networking.k8s.io",
            "v1",
            kind,
        ))
    };
    let gateways: Api<DynamicObject> = Api::all_with(client.clone(), &resource("Gateway"));
    let Ok(gateways) = gateways.list(&ListParams::default()).await else {
        return uses;
    };
    let routes: Api<DynamicObject> = Api::all_with(client.clone(), &resource("HTTPRoute"));
    let routes = routes
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    for gateway in gateways.items {
        let (Some(name), Some(gateway_ns)) = (&gateway.metadata.name, &gateway.metadata.namespace)
        else {
            continue;
        };
        let mut secrets = BTreeSet::new();
        for listener in gateway.data["spec"]["listeners"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for reference in listener["tls"]["certificateRefs"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let kind = reference["kind"].as_str().unwrap_or("Secret");
                let group = reference["group"].as_str().unwrap_or("");
                let ns = reference["namespace"].as_str().unwrap_or(gateway_ns);
                if kind == "Secret"
                    && group.is_empty()
                    && let Some(secret) = reference["name"].as_str()
                {
                    secrets.insert((ns.to_owned(), secret.to_owned()));
                }
            }
        }
        if secrets.is_empty() {
            continue;
        }
        // The Services of the routes attached to this Gateway, in the routes' namespaces.
        let mut services = BTreeSet::new();
        for route in &routes {
            let route_ns = route.metadata.namespace.as_deref().unwrap_or_default();
            let attached = route.data["spec"]["parentRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| {
                    p["name"].as_str() == Some(name.as_str())
                        && p["namespace"].as_str().unwrap_or(route_ns) == gateway_ns
                        && p["kind"].as_str().unwrap_or("Gateway") == "Gateway"
                });
            if !attached {
                continue;
            }
            for rule in route.data["spec"]["rules"].as_array().into_iter().flatten() {
                for backend in rule["backendRefs"].as_array().into_iter().flatten() {
                    if backend["kind"].as_str().unwrap_or("Service") == "Service"
                        && backend["namespace"].as_str().unwrap_or(route_ns) == route_ns
                        && let Some(service) = backend["name"].as_str()
                    {
                        services.insert(if route_ns == gateway_ns {
                            service.to_owned()
                        } else {
                            format!("{route_ns}/{service}")
                        });
                    }
                }
            }
        }
        for secret in secrets {
            uses.entry(secret).or_default().push(CertificateUse {
                kind: "gateway".into(),
                namespace: gateway_ns.clone(),
                name: name.clone(),
                services: services.iter().cloned().collect(),
            });
        }
    }
    uses
}

async fn tls_secrets(
    kubeconfig: Kubeconfig,
    namespaces: &[String],
    checkend: Duration,
) -> Vec<CheckResult> {
    let client = match client_of(kubeconfig).await {
        Ok(client) => client,
        Err(e) => return vec![unknown(CheckKind::K8sSecretCert, "kubernetes", e)],
    };
    let mut results = Vec::new();
    let gateways = gateway_uses(&client).await;
    for namespace in namespaces {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let list = match api
            .list(&ListParams::default().fields("type=kubernetes.io/tls"))
            .await
        {
            Ok(list) => list,
            Err(e) => {
                results.push(unknown(
                    CheckKind::K8sSecretCert,
                    format!("{namespace}/*"),
                    format!("cannot list TLS Secrets: {e}"),
                ));
                continue;
            }
        };
        if list.items.is_empty() {
            results.push(CheckResult::new(
                CheckKind::K8sSecretCert,
                format!("{namespace}/*"),
                Status::Pass,
                "no TLS Secrets in the namespace",
            ));
        }
        let mut owners = ingress_uses(&client, namespace).await;
        for ((_, secret), uses) in gateways.iter().filter(|((ns, _), _)| ns == namespace) {
            owners
                .entry(secret.clone())
                .or_default()
                .extend(uses.iter().cloned());
        }
        for secret in list.items {
            let name = secret.metadata.name.clone().unwrap_or_default();
            let target = format!("{namespace}/{name}");
            let data = secret.data.unwrap_or_default();
            let mut bundle = data.get("tls.crt").map(|b| b.0.clone()).unwrap_or_default();
            if let Some(ca) = data.get("ca.crt") {
                bundle.push(b'\n');
                bundle.extend_from_slice(&ca.0);
            }
            let mut result = judge_bundle(CheckKind::K8sSecretCert, &bundle, target, checkend);
            if let Some(uses) = owners.remove(&name) {
                // "the certificate of ingress payments/api (service payments): expires in 5 days"
                let owners: Vec<String> = uses.iter().map(CertificateUse::describe).collect();
                result.detail = format!(
                    "the certificate of {}: {}",
                    owners.join(", "),
                    result.detail
                );
                result.uses = uses;
            }
            results.push(result);
        }
    }
    results
}

/// Runs every check `target` asks for; Nodes' certificates `concurrency` at a time.
pub async fn check(
    target: &K8sTarget,
    checkend: Duration,
    timeout: std::time::Duration,
    concurrency: usize,
) -> Vec<CheckResult> {
    let kubeconfig = match Kubeconfig::read_from(&target.kubeconfig) {
        Ok(k) => k,
        Err(e) => {
            return vec![unknown(
                CheckKind::K8sSecretCert,
                format!("kubeconfig {}", target.kubeconfig.display()),
                format!("cannot read the kubeconfig: {e}"),
            )];
        }
    };
    let mut results = Vec::new();
    if target.client_certificates {
        results.extend(client_certificates(
            &target.kubeconfig,
            &kubeconfig,
            checkend,
        ));
    }
    if target.apiserver_certificate {
        results.push(match apiserver_target(&target.kubeconfig, &kubeconfig) {
            Err(reason) => unknown(CheckKind::Tls, "kubeconfig API server", reason),
            Ok((tls_target, ca)) => {
                let roots = match ca.as_deref().map(roots_from_bundle).transpose() {
                    Ok(Some(roots)) => roots,
                    Ok(None) => tls::system_roots(),
                    Err(reason) => {
                        return vec![unknown(CheckKind::Tls, tls_target.to_string(), reason)];
                    }
                };
                let options = CheckOptions {
                    checkend,
                    roots: Arc::new(roots),
                    untrusted_fails: true,
                    timeout,
                };
                tls::check(&tls_target, &options).await
            }
        });
    }
    if target.node_certificates {
        results.extend(nodes(target, &kubeconfig, checkend, timeout, concurrency).await);
    }
    if !target.tls_secret_namespaces.is_empty() {
        match tokio::time::timeout(
            timeout,
            tls_secrets(kubeconfig, &target.tls_secret_namespaces, checkend),
        )
        .await
        {
            Ok(found) => results.extend(found),
            Err(_) => results.push(unknown(
                CheckKind::K8sSecretCert,
                target.tls_secret_namespaces.join(","),
                format!("no answer from the API server within {timeout:?}"),
            )),
        }
    }
    results
}

/// The Nodes' kubelet certificates, trusted against `node_ca_file` or the kubeconfig's CA.
async fn nodes(
    target: &K8sTarget,
    kubeconfig: &Kubeconfig,
    checkend: Duration,
    timeout: std::time::Duration,
    concurrency: usize,
) -> Vec<CheckResult> {
    let what = || {
        target
            .node_selector
            .as_ref()
            .map_or_else(|| "nodes".to_owned(), |s| format!("nodes {s}"))
    };
    let ca = match &target.node_ca_file {
        Some(path) => std::fs::read(path)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        None => apiserver_target(&target.kubeconfig, kubeconfig).map(|(_, ca)| ca),
    };
    let roots = match ca.and_then(|ca| ca.as_deref().map(roots_from_bundle).transpose()) {
        Ok(Some(roots)) => roots,
        Ok(None) => tls::system_roots(),
        Err(reason) => return vec![unknown(CheckKind::Tls, what(), reason)],
    };
    let client = match client_of(kubeconfig.clone()).await {
        Ok(client) => client,
        Err(reason) => return vec![unknown(CheckKind::Tls, what(), reason)],
    };
    let options = CheckOptions {
        checkend,
        roots: Arc::new(roots),
        untrusted_fails: true,
        timeout,
    };
    node_certificates(
        client,
        target.node_selector.as_deref(),
        &options,
        concurrency,
    )
    .await
}
