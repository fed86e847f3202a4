//! Fixtures for tests: a certificate authority, leaf certificates valid in any window, TLS
//! listeners on free loopback ports, a listener that never answers, a closed port. Only built
//! with the `testing` feature.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::net::TcpListener;

/// A test certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    /// A CA named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Self {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// Its certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }
}

/// A leaf certificate with its key.
pub struct Leaf {
    /// The chain to serve (the leaf).
    pub chain: Vec<CertificateDer<'static>>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
    /// The leaf, PEM.
    pub pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
}

/// A leaf for `names`, valid from `from_hours` to `to_hours` relative to now, signed by `ca`
/// (self-signed without one).
pub fn leaf(ca: Option<&Ca>, names: &[&str], from_hours: i64, to_hours: i64) -> Leaf {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
    let now = OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::hours(from_hours);
    params.not_after = now + time::Duration::hours(to_hours);
    let key = KeyPair::generate().unwrap();
    let cert = match ca {
        Some(ca) => params.signed_by(&key, &ca.issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    Leaf {
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    }
}

/// A TLS listener on a free loopback port serving `leaf` to every client until the test ends.
pub async fn serve(leaf: Leaf) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain, leaf.key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // The handshake is all the checks need; the connection closes on drop.
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    port
}

/// Accepts TCP connections and never says a word.
pub async fn silent() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    port
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Creates a Node named `name` with the label `label` (`key`, `value`) whose status says its
/// kubelet answers at 127.0.0.1:`port` (an InternalIP and the kubelet endpoint); with `None`,
/// a Node without any address. The API server keeps such Nodes as written: nothing runs on them.
pub async fn kubelet_node(
    nodes: &kube::Api<k8s_openapi::api::core::v1::Node>,
    name: &str,
    label: (&str, &str),
    port: Option<u16>,
) {
    use kube::api::{Patch, PatchParams, PostParams};
    let node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {label.0: label.1}},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let status = match port {
        Some(port) => serde_json::json!({"status": {
            "addresses": [{"type": "Hostname", "address": name},
                          {"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        }}),
        None => serde_json::json!({"status": {"addresses": []}}),
    };
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}
