//! Kubernetes certificate checks against the real API server (`scripts/services up kube`): TLS
//! Secrets created by the test, the API server's serving certificate, kubeconfig client
//! certificates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use chrono::Duration;
use deploygraph_probe::k8s::{K8sTarget, check};
use deploygraph_probe::testing::{Ca, closed_port, kubelet_node, leaf, serve};
use deploygraph_probe::{CheckKind, Status};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn kubeconfig() -> PathBuf {
    PathBuf::from(std::env::var("KUBECONFIG_TEST").unwrap_or_else(|_| {
        panic!("KUBECONFIG_TEST is not set: these tests need the real API server; run scripts/test")
    }))
}

async fn client() -> Client {
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig()).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    Client::try_from(config).unwrap()
}

fn tls_secret(name: &str, cert_pem: &str, ca_pem: &str) -> Secret {
    let mut data = BTreeMap::new();
    data.insert(
        "tls.crt".to_owned(),
        ByteString(cert_pem.as_bytes().to_vec()),
    );
    data.insert("tls.key".to_owned(), ByteString(b"not checked".to_vec()));
    data.insert("ca.crt".to_owned(), ByteString(ca_pem.as_bytes().to_vec()));
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_secrets_and_the_api_server_certificate_are_judged() {
    let client = client().await;
    let namespace = format!("certs-{:08x}", rand_suffix());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(namespace.clone()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .unwrap();
    let ca = Ca::new("cluster issuer");
    let secrets: Api<Secret> = Api::namespaced(client, &namespace);
    for (name, from, to) in [("web-valid", -1, 24 * 90), ("web-expired", -48, -1)] {
        secrets
            .create(
                &PostParams::default(),
                &tls_secret(
                    name,
                    &leaf(Some(&ca), &["web.test"], from, to).pem,
                    &ca.pem(),
                ),
            )
            .await
            .unwrap();
    }
    let target = K8sTarget {
        kubeconfig: kubeconfig(),
        tls_secret_namespaces: vec![namespace.clone()],
        client_certificates: true,
        apiserver_certificate: true,
        node_certificates: false,
        node_selector: None,
        node_ca_file: None,
    };
    let results = check(
        &target,
        Duration::days(1),
        std::time::Duration::from_secs(10),
        4,
    )
    .await;
    let find = |target: &str| {
        results
            .iter()
            .find(|r| r.target == target)
            .unwrap_or_else(|| panic!("{target} in {results:?}"))
    };
    let valid = find(&format!("{namespace}/web-valid"));
    assert_eq!(
        (valid.kind, valid.status),
        (CheckKind::K8sSecretCert, Status::Pass),
        "{}",
        valid.detail
    );
    assert_eq!(valid.certificates.len(), 2, "tls.crt and ca.crt");
    let expired = find(&format!("{namespace}/web-expired"));
    assert_eq!(expired.status, Status::Fail, "{}", expired.detail);
    assert!(expired.detail.contains("expired"), "{}", expired.detail);
    let apiserver = results
        .iter()
        .find(|r| r.kind == CheckKind::Tls)
        .expect("the API server's certificate");
    assert_eq!(apiserver.status, Status::Pass, "{}", apiserver.detail);
    // The test kubeconfig authenticates with a token: no client certificates to report.
    assert!(
        !results
            .iter()
            .any(|r| r.target.starts_with("kubeconfig user"))
    );
}

#[tokio::test]
async fn kubeconfig_client_certificates_are_judged() {
    let ca = Ca::new("client CA");
    let expiring = leaf(Some(&ca), &["admin"], -1, 2).pem;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    let data = base64::engine::general_purpose::STANDARD.encode(expiring);
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers:\n- name: ci-bot\n  user:\n    client-certificate-data: {data}\n    client-key-data: eA==\n"
        ),
    )
    .unwrap();
    let target = K8sTarget {
        kubeconfig: path,
        tls_secret_namespaces: vec![],
        client_certificates: true,
        apiserver_certificate: false,
        node_certificates: false,
        node_selector: None,
        node_ca_file: None,
    };
    let results = check(
        &target,
        Duration::days(1),
        std::time::Duration::from_secs(5),
        4,
    )
    .await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].target, "kubeconfig user ci-bot");
    assert_eq!(results[0].status, Status::Fail, "{}", results[0].detail);
    assert!(
        results[0].detail.contains("expires in"),
        "{}",
        results[0].detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_nodes_kubelet_certificate_is_checked_at_its_address_and_port() {
    let client = client().await;
    let nodes: Api<Node> = Api::all(client);
    let label = format!("t{:08x}", rand_suffix());
    let ca = Ca::new("kubelet CA");
    let name = |what: &str| format!("{label}-{what}");
    let (valid, expiring, wrong, untrusted, unreachable, nowhere) = (
        name("valid"),
        name("expiring"),
        name("wrong-name"),
        name("untrusted"),
        name("unreachable"),
        name("no-address"),
    );
    let ports = [
        (
            &valid,
            serve(leaf(Some(&ca), &[&valid], -1, 24 * 300)).await,
        ),
        (&expiring, serve(leaf(Some(&ca), &[&expiring], -1, 2)).await),
        (
            &wrong,
            serve(leaf(Some(&ca), &["another-node"], -1, 24 * 300)).await,
        ),
        (
            &untrusted,
            serve(leaf(None, &[&untrusted], -1, 24 * 300)).await,
        ),
        (&unreachable, closed_port()),
    ];
    let labelled = ("deploygraph.io/node-cert-test", label.as_str());
    for (node_name, port) in ports {
        kubelet_node(&nodes, node_name, labelled, Some(port)).await;
    }
    kubelet_node(&nodes, &nowhere, labelled, None).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("kubelet-ca.crt");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let target = K8sTarget {
        kubeconfig: kubeconfig(),
        tls_secret_namespaces: vec![],
        client_certificates: false,
        apiserver_certificate: false,
        node_certificates: true,
        node_selector: Some(format!("deploygraph.io/node-cert-test={label}")),
        node_ca_file: Some(ca_file),
    };
    let results = check(
        &target,
        Duration::days(1),
        std::time::Duration::from_secs(5),
        3,
    )
    .await;
    assert_eq!(results.len(), 6, "one check per Node: {results:?}");
    let find = |node_name: &str| {
        results
            .iter()
            .find(|r| {
                r.target.starts_with(&format!("node {node_name} "))
                    || r.target == format!("node {node_name}")
            })
            .unwrap_or_else(|| panic!("{node_name} in {results:?}"))
    };
    let ok = find(&valid);
    assert_eq!(
        (ok.kind, ok.status),
        (CheckKind::Tls, Status::Pass),
        "{}",
        ok.detail
    );
    assert!(ok.target.contains("kubelet 127.0.0.1:"), "{}", ok.target);
    let soon = find(&expiring);
    assert_eq!(soon.status, Status::Fail, "{}", soon.detail);
    assert!(soon.detail.contains("expires in"), "{}", soon.detail);
    let misnamed = find(&wrong);
    assert_eq!(misnamed.status, Status::Fail, "{}", misnamed.detail);
    assert!(
        misnamed.detail.contains(&format!("{wrong} is not in")),
        "{}",
        misnamed.detail
    );
    let foreign = find(&untrusted);
    assert_eq!(foreign.status, Status::Fail, "{}", foreign.detail);
    assert!(foreign.detail.contains("untrusted"), "{}", foreign.detail);
    assert_eq!(find(&unreachable).status, Status::Unknown);
    let none = find(&nowhere);
    assert_eq!(none.status, Status::Unknown);
    assert!(none.detail.contains("no InternalIP"), "{}", none.detail);

    // Without the kubelet CA, the kubeconfig's (the API server's) is the trust anchor: the
    // kubelets' own CA is not trusted.
    let target = K8sTarget {
        node_ca_file: None,
        ..target
    };
    let results = check(
        &target,
        Duration::days(1),
        std::time::Duration::from_secs(5),
        3,
    )
    .await;
    let valid_result = results
        .iter()
        .find(|r| r.target.starts_with(&format!("node {valid} ")))
        .unwrap();
    assert_eq!(valid_result.status, Status::Fail, "{}", valid_result.detail);
    assert!(
        valid_result.detail.contains("untrusted"),
        "{}",
        valid_result.detail
    );

    // A selector no Node matches: nothing to check, said so.
    let target = K8sTarget {
        node_selector: Some(format!("deploygraph.io/node-cert-test={label}-none")),
        ..target
    };
    let results = check(
        &target,
        Duration::days(1),
        std::time::Duration::from_secs(5),
        3,
    )
    .await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].status, Status::Pass, "{}", results[0].detail);

    for node_name in [
        &valid,
        &expiring,
        &wrong,
        &untrusted,
        &unreachable,
        &nowhere,
    ] {
        nodes
            .delete(node_name, &DeleteParams::default())
            .await
            .unwrap();
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// A minimal CustomResourceDefinition of a Gateway API kind (the test API server has none): the
/// API exists, its objects are kept as written.
async fn gateway_api(client: &Client, kind: &str, plural: &str) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
        // *.k8s.io groups are protected: the Gateway API's own CRDs carry this annotation.
        "metadata": {"name": format!("{plural}.gateway.networking.k8s.io"),
            "annotations": {"api-approved.kubernetes.io":
                "https://github.com/kubernetes-sigs/gateway-api/pull/2466"}},
        "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(),
                      "listKind": format!("{kind}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap();
    match crds.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_secrets_ingresses_and_gateways_name_the_services_it_secures() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let client = client().await;
    let namespace = format!("owners-{:08x}", rand_suffix());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).unwrap(),
        )
        .await
        .unwrap();
    let ca = Ca::new("ingress issuer");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    for (name, hours) in [
        ("api-tls", 24 * 5),
        ("public-tls", 24 * 90),
        ("lone-tls", 24 * 90),
    ] {
        secrets
            .create(
                &PostParams::default(),
                &tls_secret(
                    name,
                    &leaf(Some(&ca), &["shop.test"], -1, hours).pem,
                    &ca.pem(),
                ),
            )
            .await
            .unwrap();
    }
    let ingresses: Api<k8s_openapi::api::networking::v1::Ingress> =
        Api::namespaced(client.clone(), &namespace);
    ingresses
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "api"},
                "spec": {
                    "tls": [{"hosts": ["api.shop.test"], "secretName": "api-tls"}],
                    "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
                    "rules": [{"host": "api.shop.test", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix",
                         "backend": {"service": {"name": "payments", "port": {"number": 8080}}}}]}}]
                }
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    gateway_api(&client, "Gateway", "gateways").await;
    gateway_api(&client, "HTTPRoute", "httproutes").await;
    let resource = |kind: &str| {
        ApiResource::from_gvk(&GroupVersionKind::gvk(
            "gateway.networking.k8s.io",
            "v1",
            kind,
        ))
    };
    let create = |kind: &'static str, body: serde_json::Value| {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &namespace, &resource(kind));
        async move {
            let object: DynamicObject = serde_json::from_value(body).unwrap();
            // A new CRD is served within moments.
            for _ in 0..100 {
                match api.create(&PostParams::default(), &object).await {
                    Ok(_) => return,
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("{kind}: {e}"),
                }
            }
            panic!("{kind} is not served");
        }
    };
    create(
        "Gateway",
        serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "public"},
            "spec": {"gatewayClassName": "test", "listeners": [{"name": "https", "port": 443,
                "protocol": "HTTPS", "tls": {"mode": "Terminate",
                    "certificateRefs": [{"kind": "Secret", "name": "public-tls"}]}}]}}),
    )
    .await;
    create(
        "HTTPRoute",
        serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "checkout"},
            "spec": {"parentRefs": [{"name": "public"}],
                "rules": [{"backendRefs": [{"name": "checkout", "port": 8080}]}]}}),
    )
    .await;

    let target = K8sTarget {
        kubeconfig: kubeconfig(),
        tls_secret_namespaces: vec![namespace.clone()],
        client_certificates: false,
        apiserver_certificate: false,
        node_certificates: false,
        node_selector: None,
        node_ca_file: None,
    };
    let results = check(
        &target,
        Duration::days(7),
        std::time::Duration::from_secs(10),
        4,
    )
    .await;
    let find = |name: &str| {
        results
            .iter()
            .find(|r| r.target == format!("{namespace}/{name}"))
            .unwrap_or_else(|| panic!("{name} in {results:?}"))
    };
    let api = find("api-tls");
    assert_eq!(api.status, Status::Fail);
    assert!(
        api.detail.starts_with(&format!(
            "the certificate of ingress {namespace}/api (services fallback, payments): "
        )) && api.detail.contains("expires"),
        "{}",
        api.detail
    );
    assert_eq!(api.uses.len(), 1);
    assert_eq!(api.uses[0].services, ["fallback", "payments"]);
    let public = find("public-tls");
    assert_eq!(public.status, Status::Pass, "{}", public.detail);
    assert!(
        public.detail.starts_with(&format!(
            "the certificate of gateway {namespace}/public (service checkout): "
        )),
        "{}",
        public.detail
    );
    let lone = find("lone-tls");
    assert!(lone.uses.is_empty() && !lone.detail.starts_with("the certificate of"));
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .unwrap();
}
