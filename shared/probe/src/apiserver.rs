//! Kubernetes API server health: `/version`, `/livez` and `/readyz?verbose` (open to
//! unauthenticated users through `system:public-info-viewer`), parsed into per-check parts.

use crate::check::{CheckKind, CheckResult, Part, Status};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// `/version`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// `v1.37.2`.
    pub git_version: String,
    /// Go version it was built with.
    #[serde(default)]
    pub go_version: String,
    /// `linux/amd64`.
    #[serde(default)]
    pub platform: String,
}

/// Parses a `?verbose` health body: `[+]ping ok`, `[-]etcd failed: reason withheld`, then
/// `readyz check passed|failed`.
pub fn parse_verbose(body: &str) -> Vec<Part> {
    body.lines()
        .filter_map(|line| {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("[+]") {
                let name = rest.split_whitespace().next().unwrap_or(rest);
                Some(Part {
                    name: name.to_owned(),
                    ok: true,
                    detail: "ok".to_owned(),
                })
            } else {
                line.strip_prefix("[-]").map(|rest| {
                    let (name, detail) = rest.split_once(' ').unwrap_or((rest, "failed"));
                    Part {
                        name: name.to_owned(),
                        ok: false,
                        detail: detail.trim().to_owned(),
                    }
                })
            }
        })
        .collect()
}

/// The verdict from `/livez`, `/readyz?verbose` and `/version`: pure.
pub fn judge(
    livez: Result<(u16, String), String>,
    readyz: Result<(u16, String), String>,
    version: Option<Version>,
) -> (Status, String, Vec<Part>) {
    let (readyz_status, readyz_body) = match readyz {
        Ok(r) => r,
        Err(reason) => {
            return (
                Status::Unknown,
                format!("API server unreachable: {reason}"),
                Vec::new(),
            );
        }
    };
    let parts = parse_verbose(&readyz_body);
    let failed: Vec<String> = parts
        .iter()
        .filter(|p| !p.ok)
        .map(|p| format!("{} ({})", p.name, p.detail))
        .collect();
    let live = matches!(&livez, Ok((200, _)));
    let version_text = version.map_or_else(|| "version unknown".to_owned(), |v| v.git_version);
    if readyz_status == 200 && live {
        (
            Status::Pass,
            format!("{version_text}; live and ready ({} checks)", parts.len()),
            parts,
        )
    } else {
        let mut problems = Vec::new();
        if !live {
            problems.push(match &livez {
                Ok((code, _)) => format!("/livez answered {code}"),
                Err(e) => format!("/livez failed: {e}"),
            });
        }
        if readyz_status != 200 {
            problems.push(if failed.is_empty() {
                format!("/readyz answered {readyz_status}")
            } else {
                format!("not ready: {}", failed.join(", "))
            });
        }
        (
            Status::Fail,
            format!("{version_text}; {}", problems.join("; ")),
            parts,
        )
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Result<(u16, String), String> {
    let response = client.get(url).send().await.map_err(|e| {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        message
    })?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Checks the API server at `base` (`https://10.0.0.1:6443`), trusting `ca_pem` (or the system
/// roots), each request bounded by `timeout`.
pub async fn check(base: &str, ca_pem: Option<&[u8]>, timeout: Duration) -> CheckResult {
    let started = Instant::now();
    let base = base.trim_end_matches('/');
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout);
    if let Some(pem) = ca_pem {
        match reqwest::Certificate::from_pem_bundle(pem) {
            Ok(certs) => {
                builder = builder.tls_built_in_root_certs(false);
                for cert in certs {
                    builder = builder.add_root_certificate(cert);
                }
            }
            Err(e) => {
                return CheckResult::new(
                    CheckKind::Apiserver,
                    base,
                    Status::Fail,
                    format!("invalid CA bundle: {e}"),
                );
            }
        }
    }
    let client = match builder.build() {
        Ok(client) => client,
        Err(e) => {
            return CheckResult::new(CheckKind::Apiserver, base, Status::Unknown, e.to_string());
        }
    };
    let (livez_url, readyz_url, version_url) = (
        format!("{base}/livez"),
        format!("{base}/readyz?verbose"),
        format!("{base}/version"),
    );
    let (livez, readyz, version) = tokio::join!(
        get(&client, &livez_url),
        get(&client, &readyz_url),
        get(&client, &version_url)
    );
    let version = version
        .ok()
        .filter(|(code, _)| *code == 200)
        .and_then(|(_, body)| serde_json::from_str::<Version>(&body).ok());
    let (status, detail, parts) = judge(livez, readyz, version);
    let mut result = CheckResult::new(CheckKind::Apiserver, base, status, detail);
    result.parts = parts;
    result.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILING: &str = "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[+]poststarthook/start-informers ok\nreadyz check failed\n";

    #[test]
    fn verbose_bodies_become_parts() {
        let parts = parse_verbose(FAILING);
        assert_eq!(parts.len(), 4);
        assert_eq!(
            parts[2],
            Part {
                name: "etcd".into(),
                ok: false,
                detail: "failed: reason withheld".into()
            }
        );
        assert_eq!(parts[3].name, "poststarthook/start-informers");
    }

    #[test]
    fn an_unready_server_fails_and_names_the_failing_checks() {
        let version = Some(Version {
            git_version: "v1.37.2".into(),
            go_version: String::new(),
            platform: String::new(),
        });
        let (status, detail, _) = judge(
            Ok((200, "ok".into())),
            Ok((500, FAILING.into())),
            version.clone(),
        );
        assert_eq!(status, Status::Fail);
        assert!(
            detail.contains("not ready: etcd (failed: reason withheld)"),
            "{detail}"
        );
        let (status, detail, parts) = judge(
            Ok((200, "ok".into())),
            Ok((200, "[+]ping ok\nreadyz check passed".into())),
            version,
        );
        assert_eq!((status, parts.len()), (Status::Pass, 1));
        assert!(detail.starts_with("v1.37.2"), "{detail}");
        assert_eq!(
            judge(Err("refused".into()), Err("refused".into()), None).0,
            Status::Unknown
        );
    }
}
