//! The real API server of `scripts/services up kube` for tests and benchmarks (feature
//! `testing`).

/// A client of the API server whose kubeconfig `KUBECONFIG_TEST` names.
///
/// # Panics
/// Without `KUBECONFIG_TEST` (tests never skip their subject) or with an unusable kubeconfig.
#[allow(clippy::expect_used)]
pub async fn client() -> kube::Client {
    let path = std::env::var("KUBECONFIG_TEST").expect(
        "KUBECONFIG_TEST is not set: these tests need the real API server; run them through \
         scripts/test (or `eval \"$(scripts/services env)\"` after `scripts/services up kube`)",
    );
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(path).expect("a readable kubeconfig"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("a usable kubeconfig");
    kube::Client::try_from(config).expect("a client")
}
