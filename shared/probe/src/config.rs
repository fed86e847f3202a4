//! The gate's configuration file (`--config gate.yaml`). Unknown keys are errors; every error
//! names the field.
//!
//! ```yaml
//! checkend: 86400          # seconds a leaf certificate must stay valid (openssl -checkend)
//! deadline: 30s            # the whole gate is over by then
//! timeout: 10s             # per check
//! concurrency: 32          # checks at once
//! allow_untrusted: false   # an untrusted chain fails unless true
//! allow_unknown: false     # a check that cannot tell (timeout, unreachable) fails unless true
//! ca_file: /etc/ssl/internal-ca.pem   # trust anchors instead of the system roots
//! tls:
//!   - api.example.com:443
//!   - target: 10.0.0.1:6443
//!     server_name: kubernetes.default
//! cert_files:
//!   - /etc/ssl/certs/internal.pem
//! dns:
//!   - api.example.com                  # must resolve (A or AAAA), system resolver
//!   - name: kubernetes.default.svc.cluster.local
//!     server: 10.96.0.10:53            # this name server instead of the system's
//!     type: A                          # A, AAAA, CNAME, TXT, MX, SRV…
//!     addresses: [10.96.0.1]           # exactly these addresses
//!     max_latency: 200ms
//!   - name: removed.example.com
//!     expect: nxdomain                 # resolves (default) or nxdomain
//! apiserver:
//!   - url: https://10.0.0.1:6443       # /livez, /readyz?verbose, /version
//!     ca_file: /etc/kubernetes/pki/ca.crt
//! kubernetes:
//!   kubeconfig: /etc/deploygraph/kubeconfig   # default: $KUBECONFIG, then ~/.kube/config
//!   tls_secret_namespaces: [prod, ingress]    # kubernetes.io/tls Secrets: tls.crt and ca.crt
//!   client_certificates: true                 # the kubeconfig's client certificates
//!   apiserver_certificate: true               # the API server's serving certificate
//!   node_certificates: true                   # each Node's kubelet serving certificate
//!   node_selector: node-role.kubernetes.io/worker   # only these Nodes (a label selector)
//!   node_ca_file: /etc/kubernetes/pki/kubelet-ca.crt  # default: the kubeconfig's CA
//! coredns:
//!   - url: http://10.96.0.10:9153/metrics   # cache entries, hits, hit ratio
//!     min_hit_ratio: 0.5               # all three limits are optional
//!     max_success_entries: 10000
//!     max_denial_entries: 1000
//! ```

use crate::coredns::Thresholds;
use crate::dns::{DnsCheck, DnsTarget, Expect};
use crate::gate::Policy;
use crate::k8s::K8sTarget;
use crate::runner::{Check, RunOptions};
use crate::tls::{CheckOptions, TlsTarget, roots_from_bundle, system_roots};
use hickory_resolver::proto::rr::RecordType;
use serde::Deserialize;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

/// A configuration error, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// Path of the field (`tls[1].target`); empty for the document itself.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The parsed file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateFile {
    /// Seconds.
    pub checkend: Option<u64>,
    /// `30s`, `2m`.
    pub deadline: Option<String>,
    /// Per check.
    pub timeout: Option<String>,
    /// Checks at once.
    pub concurrency: Option<usize>,
    /// Whether untrusted chains pass.
    pub allow_untrusted: Option<bool>,
    /// Whether unknown results pass.
    pub allow_unknown: Option<bool>,
    /// Trust anchors.
    pub ca_file: Option<PathBuf>,
    /// TLS endpoints.
    #[serde(default)]
    pub tls: Vec<TlsEntry>,
    /// Certificate files.
    #[serde(default)]
    pub cert_files: Vec<PathBuf>,
    /// DNS names.
    #[serde(default)]
    pub dns: Vec<DnsEntry>,
    /// Kubernetes API servers.
    #[serde(default)]
    pub apiserver: Vec<ApiserverEntry>,
    /// CoreDNS metrics endpoints.
    #[serde(default)]
    pub coredns: Vec<CorednsEntry>,
    /// Certificates in a cluster.
    pub kubernetes: Option<KubernetesEntry>,
}

/// What to check in a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesEntry {
    /// Kubeconfig path; `$KUBECONFIG`, then `~/.kube/config` when absent.
    pub kubeconfig: Option<PathBuf>,
    /// Namespaces whose TLS Secrets to check.
    #[serde(default)]
    pub tls_secret_namespaces: Vec<String>,
    /// The kubeconfig's client certificates.
    #[serde(default)]
    pub client_certificates: bool,
    /// The API server's serving certificate.
    #[serde(default)]
    pub apiserver_certificate: bool,
    /// Each Node's kubelet serving certificate.
    #[serde(default)]
    pub node_certificates: bool,
    /// Only the Nodes with these labels (a label selector).
    pub node_selector: Option<String>,
    /// The CA bundle kubelet certificates must chain to (default: the kubeconfig's CA).
    pub node_ca_file: Option<PathBuf>,
}

impl KubernetesEntry {
    fn merge(self, overlay: KubernetesEntry) -> KubernetesEntry {
        let mut namespaces = self.tls_secret_namespaces;
        namespaces.extend(overlay.tls_secret_namespaces);
        KubernetesEntry {
            kubeconfig: overlay.kubeconfig.or(self.kubeconfig),
            tls_secret_namespaces: namespaces,
            client_certificates: self.client_certificates || overlay.client_certificates,
            apiserver_certificate: self.apiserver_certificate || overlay.apiserver_certificate,
            node_certificates: self.node_certificates || overlay.node_certificates,
            node_selector: overlay.node_selector.or(self.node_selector),
            node_ca_file: overlay.node_ca_file.or(self.node_ca_file),
        }
    }

    /// The kubeconfig to use: the configured one, `$KUBECONFIG` (its first entry), or
    /// `~/.kube/config`.
    pub fn kubeconfig_path(&self) -> Option<PathBuf> {
        self.kubeconfig
            .clone()
            .or_else(|| {
                std::env::var_os("KUBECONFIG")
                    .and_then(|v| std::env::split_paths(&v).next())
                    .filter(|p| !p.as_os_str().is_empty())
            })
            .or_else(|| {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube/config"))
            })
    }
}

/// A CoreDNS metrics endpoint and its cache limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorednsEntry {
    /// `http://host:9153/metrics`.
    pub url: String,
    /// Limits.
    #[serde(flatten)]
    pub limits: Thresholds,
}

/// A Kubernetes API server to check.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiserverEntry {
    /// `https://host:port`.
    pub url: String,
    /// Its CA bundle; the system roots when absent.
    pub ca_file: Option<PathBuf>,
}

/// A DNS check: `name[@server:port]` or a map.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum DnsEntry {
    /// `name[@server:port]`: must resolve.
    Short(String),
    /// With expectations.
    Long(DnsEntryLong),
}

/// A DNS check with expectations.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsEntryLong {
    /// Name to resolve.
    pub name: String,
    /// `ip[:port]` of the name server.
    pub server: Option<String>,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: Option<String>,
    /// `resolves` or `nxdomain`.
    pub expect: Option<String>,
    /// Exactly these addresses.
    pub addresses: Option<Vec<String>>,
    /// `200ms`.
    pub max_latency: Option<String>,
}

/// A TLS endpoint: `host:port[@sni]` or a map.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum TlsEntry {
    /// `host:port[@sni]`.
    Short(String),
    /// `{target, server_name}`.
    Long {
        /// `host:port`.
        target: String,
        /// SNI and the name to check.
        server_name: Option<String>,
    },
}

/// A validated configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GateConfig {
    /// Seconds.
    pub checkend: Option<u64>,
    /// Whole-gate deadline.
    pub deadline: Option<Duration>,
    /// Per-check timeout.
    pub timeout: Option<Duration>,
    /// Checks at once.
    pub concurrency: Option<usize>,
    /// Whether untrusted chains pass.
    pub allow_untrusted: Option<bool>,
    /// Whether unknown results pass.
    pub allow_unknown: Option<bool>,
    /// Trust anchors.
    pub ca_file: Option<PathBuf>,
    /// TLS endpoints.
    pub tls: Vec<TlsTarget>,
    /// Certificate files.
    pub cert_files: Vec<PathBuf>,
    /// DNS checks.
    pub dns: Vec<DnsCheck>,
    /// API servers.
    pub apiserver: Vec<ApiserverEntry>,
    /// CoreDNS metrics endpoints.
    pub coredns: Vec<CorednsEntry>,
    /// Certificates in a cluster.
    pub kubernetes: Option<KubernetesEntry>,
}

/// What a configuration asks to run, and how.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The checks, in configuration order: TLS, certificate files, DNS, API servers.
    pub checks: Vec<Check>,
    /// Timeouts, concurrency, deadline, TLS judgement.
    pub options: RunOptions,
    /// How results become a verdict.
    pub policy: Policy,
}

impl GateConfig {
    /// `overlay`'s settings where it has them, else this one's; lists are concatenated.
    #[must_use]
    pub fn merge(self, overlay: GateConfig) -> GateConfig {
        let mut tls = self.tls;
        tls.extend(overlay.tls);
        let mut cert_files = self.cert_files;
        cert_files.extend(overlay.cert_files);
        let mut dns = self.dns;
        dns.extend(overlay.dns);
        let mut apiserver = self.apiserver;
        apiserver.extend(overlay.apiserver);
        let mut coredns = self.coredns;
        coredns.extend(overlay.coredns);
        let kubernetes = match (self.kubernetes, overlay.kubernetes) {
            (Some(a), Some(b)) => Some(a.merge(b)),
            (a, b) => b.or(a),
        };
        GateConfig {
            checkend: overlay.checkend.or(self.checkend),
            deadline: overlay.deadline.or(self.deadline),
            timeout: overlay.timeout.or(self.timeout),
            concurrency: overlay.concurrency.or(self.concurrency),
            allow_untrusted: overlay.allow_untrusted.or(self.allow_untrusted),
            allow_unknown: overlay.allow_unknown.or(self.allow_unknown),
            ca_file: overlay.ca_file.or(self.ca_file),
            tls,
            cert_files,
            dns,
            apiserver,
            coredns,
            kubernetes,
        }
    }

    /// The checks and options this configuration describes, with defaults (checkend 86,400 s,
    /// deadline 30 s, timeout 10 s, concurrency 32, untrusted and unknown fail). CA files are
    /// read here.
    ///
    /// # Errors
    /// Unreadable CA files, or nothing to check; naming the field.
    pub fn plan(&self) -> Result<Plan, ConfigError> {
        let read = |field: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| invalid(field, format!("{}: {e}", path.display())))
        };
        let roots = match &self.ca_file {
            Some(path) => roots_from_bundle(&read("ca_file", path)?)
                .map_err(|e| invalid("ca_file", format!("{}: {e}", path.display())))?,
            None => system_roots(),
        };
        let mut checks: Vec<Check> = self.tls.iter().cloned().map(Check::Tls).collect();
        checks.extend(self.cert_files.iter().cloned().map(Check::File));
        checks.extend(self.dns.iter().cloned().map(Check::Dns));
        for (i, entry) in self.apiserver.iter().enumerate() {
            let ca_pem = entry
                .ca_file
                .as_deref()
                .map(|p| read(&format!("apiserver[{i}].ca_file"), p))
                .transpose()?;
            checks.push(Check::Apiserver {
                url: entry.url.clone(),
                ca_pem,
            });
        }
        checks.extend(self.coredns.iter().map(|c| Check::Coredns {
            url: c.url.clone(),
            limits: c.limits.clone(),
        }));
        if let Some(k8s) = &self.kubernetes {
            let kubeconfig = k8s.kubeconfig_path().ok_or_else(|| {
                invalid(
                    "kubernetes.kubeconfig",
                    "no kubeconfig: set it, $KUBECONFIG or $HOME",
                )
            })?;
            if k8s.tls_secret_namespaces.is_empty()
                && !k8s.client_certificates
                && !k8s.apiserver_certificate
                && !k8s.node_certificates
            {
                return Err(invalid(
                    "kubernetes",
                    "nothing to check: give tls_secret_namespaces, client_certificates, apiserver_certificate or node_certificates",
                ));
            }
            if !k8s.node_certificates && (k8s.node_selector.is_some() || k8s.node_ca_file.is_some())
            {
                return Err(invalid(
                    "kubernetes.node_certificates",
                    "node_selector and node_ca_file need node_certificates: true",
                ));
            }
            if k8s
                .node_selector
                .as_deref()
                .is_some_and(|s| s.trim().is_empty())
            {
                return Err(invalid("kubernetes.node_selector", "is empty"));
            }
            checks.push(Check::Kubernetes(K8sTarget {
                kubeconfig,
                tls_secret_namespaces: k8s.tls_secret_namespaces.clone(),
                client_certificates: k8s.client_certificates,
                apiserver_certificate: k8s.apiserver_certificate,
                node_certificates: k8s.node_certificates,
                node_selector: k8s.node_selector.clone(),
                node_ca_file: k8s.node_ca_file.clone(),
            }));
        }
        if checks.is_empty() {
            return Err(invalid(
                "",
                "nothing to check: give tls, cert_files, dns, apiserver, coredns or kubernetes entries",
            ));
        }
        let checkend = i64::try_from(self.checkend.unwrap_or(86_400))
            .map_err(|_| invalid("checkend", "too large"))?;
        Ok(Plan {
            checks,
            options: RunOptions {
                checks: CheckOptions {
                    checkend: chrono::Duration::seconds(checkend),
                    roots: Arc::new(roots),
                    untrusted_fails: !self.allow_untrusted.unwrap_or(false),
                    timeout: self.timeout.unwrap_or(Duration::from_secs(10)),
                },
                concurrency: self.concurrency.unwrap_or(32).max(1),
                deadline: self.deadline.unwrap_or(Duration::from_secs(30)),
            },
            policy: Policy {
                allow_unknown: self.allow_unknown.unwrap_or(false),
            },
        })
    }
}

/// Checks that `url` is an http(s) URL (API servers, metrics endpoints).
///
/// # Errors
/// A message naming the value.
pub fn http_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(format!("{url:?} is not an http(s) URL"))
    }
}

/// Parses a duration such as `30s`, `2m`, `1h 30m`, `500ms`.
///
/// # Errors
/// A message for anything else.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value)
        .map_err(|e| format!("{value:?} is not a duration like 30s or 2m: {e}"))
}

/// A configuration error for `field`.
pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// Parses and validates a gate file.
///
/// # Errors
/// The first problem, naming its field.
pub fn parse(text: &str) -> Result<GateConfig, ConfigError> {
    let de = serde_norway::Deserializer::from_str(text);
    let file: GateFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        invalid(
            if path == "." { String::new() } else { path },
            e.into_inner().to_string(),
        )
    })?;
    let duration = |field: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|m| invalid(field, m))
    };
    let tls = file
        .tls
        .iter()
        .enumerate()
        .map(|(i, entry)| match entry {
            TlsEntry::Short(s) => s
                .parse::<TlsTarget>()
                .map_err(|m| invalid(format!("tls[{i}]"), m)),
            TlsEntry::Long {
                target,
                server_name,
            } => {
                let mut t = target
                    .parse::<TlsTarget>()
                    .map_err(|m| invalid(format!("tls[{i}].target"), m))?;
                if let Some(name) = server_name {
                    t.server_name = Some(name.clone());
                }
                Ok(t)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dns = file
        .dns
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            dns_check(entry).map_err(|(field, m)| invalid(format!("dns[{i}]{field}"), m))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (i, entry) in file.coredns.iter().enumerate() {
        http_url(&entry.url).map_err(|m| invalid(format!("coredns[{i}].url"), m))?;
        if entry
            .limits
            .min_hit_ratio
            .is_some_and(|r| !(0.0..=1.0).contains(&r))
        {
            return Err(invalid(
                format!("coredns[{i}].min_hit_ratio"),
                "must be between 0 and 1",
            ));
        }
    }
    for (i, entry) in file.apiserver.iter().enumerate() {
        http_url(&entry.url).map_err(|m| invalid(format!("apiserver[{i}].url"), m))?;
    }
    if file.concurrency == Some(0) {
        return Err(invalid("concurrency", "must be at least 1"));
    }
    Ok(GateConfig {
        checkend: file.checkend,
        deadline: duration("deadline", &file.deadline)?,
        timeout: duration("timeout", &file.timeout)?,
        concurrency: file.concurrency,
        allow_untrusted: file.allow_untrusted,
        allow_unknown: file.allow_unknown,
        ca_file: file.ca_file,
        tls,
        cert_files: file.cert_files,
        dns,
        apiserver: file.apiserver,
        coredns: file.coredns,
        kubernetes: file.kubernetes,
    })
}

/// One `dns:` entry; errors carry the sub-field (`.server`) and the message.
fn dns_check(entry: &DnsEntry) -> Result<DnsCheck, (&'static str, String)> {
    let long = match entry {
        DnsEntry::Short(s) => {
            return s
                .parse::<DnsTarget>()
                .map(DnsCheck::resolves)
                .map_err(|m| ("", m));
        }
        DnsEntry::Long(long) => long,
    };
    let target = match &long.server {
        Some(server) => format!("{}@{server}", long.name)
            .parse::<DnsTarget>()
            .map_err(|m| (".server", m))?,
        None => long.name.parse::<DnsTarget>().map_err(|m| (".name", m))?,
    };
    let record_type = long
        .record_type
        .as_deref()
        .map(|t| {
            RecordType::from_str(&t.to_ascii_uppercase())
                .map_err(|_| (".type", format!("{t:?} is not a record type")))
        })
        .transpose()?;
    let expect = match (long.expect.as_deref(), &long.addresses) {
        (Some("nxdomain"), Some(_)) => {
            return Err((
                ".addresses",
                "cannot be combined with expect: nxdomain".into(),
            ));
        }
        (Some("nxdomain"), None) => Expect::NxDomain,
        (None | Some("resolves"), Some(addresses)) => Expect::Addresses(
            addresses
                .iter()
                .map(|a| {
                    a.parse()
                        .map_err(|_| (".addresses", format!("{a:?} is not an IP address")))
                })
                .collect::<Result<_, _>>()?,
        ),
        (None | Some("resolves"), None) => Expect::Resolves,
        (Some(other), _) => {
            return Err((".expect", format!("{other:?} is not resolves or nxdomain")));
        }
    };
    let max_latency = long
        .max_latency
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|m| (".max_latency", m))?;
    Ok(DnsCheck {
        target,
        record_type,
        expect,
        max_latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let example = include_str!("../../../examples/gate.yaml");
        let config = parse(example).unwrap_or_else(|e| panic!("{e}"));
        assert!(!config.tls.is_empty());
        assert_eq!(config.deadline, Some(Duration::from_secs(30)));
    }

    #[test]
    fn errors_name_the_field() {
        for (text, field) in [
            ("tls: [nohost]", "tls[0]"),
            ("tls: [{target: 'x'}]", "tls[0].target"),
            ("deadline: soon", "deadline"),
            ("checkend: -5", "checkend"),
            ("concurrency: 0", "concurrency"),
            ("colour: blue", "colour"),
            (
                "dns: [{name: a.test, server: 'dns.google'}]",
                "dns[0].server",
            ),
            ("dns: [{name: a.test, type: BOGUS}]", "dns[0].type"),
            ("dns: [{name: a.test, expect: maybe}]", "dns[0].expect"),
            ("dns: [{name: a.test, addresses: [x]}]", "dns[0].addresses"),
            (
                "dns: [{name: a.test, max_latency: fast}]",
                "dns[0].max_latency",
            ),
            ("apiserver: [{url: '10.0.0.1:6443'}]", "apiserver[0].url"),
            (
                "apiserver: [{url: 'https://x', token: y}]",
                "apiserver[0].token",
            ),
            (
                "coredns: [{url: 'http://x/metrics', min_hit_ratio: 2}]",
                "coredns[0].min_hit_ratio",
            ),
            ("coredns: [{url: 'x'}]", "coredns[0].url"),
            ("kubernetes: {namespaces: [a]}", "kubernetes.namespaces"),
        ] {
            let err = parse(text).expect_err(text);
            assert_eq!(err.field, field, "{text}: {err}");
        }
    }

    #[test]
    fn node_certificates_are_planned_and_their_options_need_them() {
        let plan = parse(
            "kubernetes: {kubeconfig: /k, node_certificates: true, node_selector: 'role=worker', node_ca_file: /ca.pem}",
        )
        .and_then(|c| c.plan())
        .unwrap_or_else(|e| panic!("{e}"));
        let Some(Check::Kubernetes(target)) = plan.checks.first() else {
            panic!("{:?}", plan.checks);
        };
        assert!(target.node_certificates);
        assert_eq!(target.node_selector.as_deref(), Some("role=worker"));
        assert_eq!(
            target.node_ca_file.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        for (text, field) in [
            (
                "kubernetes: {kubeconfig: /k, client_certificates: true, node_selector: a=b}",
                "kubernetes.node_certificates",
            ),
            (
                "kubernetes: {kubeconfig: /k, node_certificates: true, node_selector: ' '}",
                "kubernetes.node_selector",
            ),
        ] {
            let err = parse(text).and_then(|c| c.plan()).expect_err(text);
            assert_eq!(err.field, field, "{text}: {err}");
        }
    }

    #[test]
    fn every_section_of_the_example_becomes_a_check() {
        let plan = parse(include_str!("../../../examples/gate.yaml"))
            .and_then(|c| {
                // The example names files of a real cluster; planning would read them.
                let apiserver = c
                    .apiserver
                    .iter()
                    .map(|a| ApiserverEntry {
                        ca_file: None,
                        ..a.clone()
                    })
                    .collect();
                GateConfig {
                    ca_file: None,
                    apiserver,
                    ..c
                }
                .plan()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let kinds: std::collections::BTreeSet<&str> = plan
            .checks
            .iter()
            .map(|c| match c {
                Check::Tls(_) => "tls",
                Check::File(_) => "file",
                Check::Dns(_) => "dns",
                Check::Coredns { .. } => "coredns",
                Check::Kubernetes(_) => "kubernetes",
                Check::Apiserver { .. } => "apiserver",
            })
            .collect();
        assert_eq!(kinds.len(), 6, "{kinds:?}");
    }

    #[test]
    fn long_and_short_tls_entries_are_equivalent() {
        let a =
            parse("tls: ['10.0.0.1:6443@kubernetes.default']").unwrap_or_else(|e| panic!("{e}"));
        let b = parse("tls: [{target: '10.0.0.1:6443', server_name: kubernetes.default}]")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.tls, b.tls);
    }
}
