//! Which targets `POST /v1/snapshots` may make the server connect to.
//!
//! A check named in a request runs only when the server's own gate configuration
//! (`serve --gate-config`) has the same check, or its target is on the configured allow-list
//! (`serve --snapshot-allow-target`: `host`, `host:port`, or a URL prefix such as
//! `https://api.example:6443/`). Anything else is refused before any connection is made, naming
//! the field and the target. Without a gate configuration and an allow-list, nothing runs on
//! request.

use crate::error::ApiError;
use deploygraph_probe::config::GateConfig;

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    /// A host, any port.
    Host(String),
    /// A host and port.
    HostPort(String, u16),
    /// URLs starting with this (`scheme://host[:port]/path…`).
    UrlPrefix(String),
}

/// Parses an allow-list entry.
///
/// # Errors
/// A message when it is neither `host`, `host:port` nor an `http(s)://` URL prefix.
pub fn parse_allowed(entry: &str) -> Result<(), String> {
    allowed(entry).map(|_| ())
}

fn allowed(entry: &str) -> Result<Allowed, String> {
    let entry = entry.trim();
    if entry.contains("://") {
        let url = url::Url::parse(entry).map_err(|e| format!("{entry:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "{entry:?}: an allowed URL prefix is http(s)://HOST…"
            ));
        }
        return Ok(Allowed::UrlPrefix(entry.to_owned()));
    }
    let (host, port) = split_host_port(entry).ok_or_else(|| {
        format!("{entry:?}: expected host, host:port or an http(s):// URL prefix")
    })?;
    Ok(match port {
        Some(port) => Allowed::HostPort(host, port),
        None => Allowed::Host(host),
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; the host lower-cased.
fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    if text.is_empty() || text.contains(['/', '@', ' ']) {
        return None;
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_ascii_lowercase(), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && !host.is_empty() => {
            Some((host.to_ascii_lowercase(), Some(port.parse().ok()?)))
        }
        // A bare IPv6 address.
        Some(_) => Some((text.to_ascii_lowercase(), None)),
        None => Some((text.to_ascii_lowercase(), None)),
    }
}

fn host_port_allowed(allow: &[Allowed], host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allow.iter().any(|a| match a {
        Allowed::Host(h) => *h == host,
        Allowed::HostPort(h, p) => *h == host && *p == port,
        Allowed::UrlPrefix(_) => false,
    })
}

fn url_allowed(allow: &[Allowed], target: &str) -> bool {
    let Ok(url) = url::Url::parse(target) else {
        return false;
    };
    let by_host = match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => host_port_allowed(
            allow,
            host.trim_start_matches('[').trim_end_matches(']'),
            port,
        ),
        _ => false,
    };
    by_host
        || allow.iter().any(|a| match a {
            // A prefix ends at a path boundary: `https://a.example` does not allow
            // `https://a.example.evil/`.
            Allowed::UrlPrefix(prefix) => {
                target.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                    prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?', '#'])
                })
            }
            _ => false,
        })
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Refuses the first check of `request` that neither the server's gate configuration nor the
/// allow-list permits (403 naming its field and target).
///
/// # Errors
/// The refusal.
pub fn authorize(
    request: &GateConfig,
    server: Option<&GateConfig>,
    allow_list: &[String],
) -> Result<(), ApiError> {
    if server.is_none() && allow_list.is_empty() {
        return Err(ApiError::forbidden(
            "config",
            "this server runs no checks on request: start it with --gate-config (checks it may \
             run) or --snapshot-allow-target, or post checks that ran elsewhere (`checks`)",
        ));
    }
    let allow: Vec<Allowed> = allow_list.iter().filter_map(|e| allowed(e).ok()).collect();
    let empty = GateConfig::default();
    let server = server.unwrap_or(&empty);
    let refuse = |field: String, target: &str| {
        Err(ApiError::forbidden(
            field,
            format!(
                "{target:?} is not a target this server checks: it is neither in the server's \
                 gate configuration nor allowed by --snapshot-allow-target"
            ),
        ))
    };
    for (i, tls) in request.tls.iter().enumerate() {
        let configured = server
            .tls
            .iter()
            .any(|s| s.host.eq_ignore_ascii_case(&tls.host) && s.port == tls.port);
        if !configured && !host_port_allowed(&allow, &tls.host, tls.port) {
            return refuse(
                format!("config.tls[{i}]"),
                &format!("{}:{}", tls.host, tls.port),
            );
        }
    }
    for (i, dns) in request.dns.iter().enumerate() {
        let configured = server.dns.iter().any(|s| {
            s.target.name.eq_ignore_ascii_case(&dns.target.name)
                && s.target.server == dns.target.server
        });
        // A name server on the allow-list may be asked any name; the system's resolvers only
        // for names the gate configuration has.
        let allowed = dns
            .target
            .server
            .is_some_and(|addr| host_port_allowed(&allow, &addr.ip().to_string(), addr.port()));
        if !configured && !allowed {
            return refuse(format!("config.dns[{i}]"), &dns.target.to_string());
        }
    }
    for (i, entry) in request.apiserver.iter().enumerate() {
        let configured = server
            .apiserver
            .iter()
            .any(|s| same_url(&s.url, &entry.url));
        if !configured && !url_allowed(&allow, &entry.url) {
            return refuse(format!("config.apiserver[{i}].url"), &entry.url);
        }
    }
    for (i, entry) in request.coredns.iter().enumerate() {
        let configured = server.coredns.iter().any(|s| same_url(&s.url, &entry.url));
        if !configured && !url_allowed(&allow, &entry.url) {
            return refuse(format!("config.coredns[{i}].url"), &entry.url);
        }
    }
    if let Some(k8s) = &request.kubernetes
        && server.kubernetes.as_ref() != Some(k8s)
    {
        return refuse(
            "config.kubernetes".to_owned(),
            "the cluster of the server's kubeconfig",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> GateConfig {
        deploygraph_probe::config::parse(yaml).expect("config")
    }

    #[test]
    fn allow_list_entries_are_hosts_host_ports_or_url_prefixes() {
        assert_eq!(
            allowed("Api.Example:6443"),
            Ok(Allowed::HostPort("api.example".into(), 6443))
        );
        assert_eq!(allowed("[::1]:53"), Ok(Allowed::HostPort("::1".into(), 53)));
        assert_eq!(allowed("db"), Ok(Allowed::Host("db".into())));
        assert!(allowed("https://api.example/").is_ok());
        assert!(allowed("ftp://x/").is_err());
        assert!(allowed("a b").is_err());
        assert!(allowed("host:notaport").is_err());
    }

    #[test]
    fn nothing_runs_without_a_gate_config_or_allow_list() {
        let err = authorize(&config("tls: [\"a.example:443\"]"), None, &[]).expect_err("refused");
        assert_eq!(err.status, axum::http::StatusCode::FORBIDDEN);
        assert_eq!(err.field.as_deref(), Some("config"));
    }

    #[test]
    fn checks_of_the_gate_config_run_and_others_are_refused_by_field() {
        let server = config("tls: [\"a.example:443\"]\ndns: [\"svc.example@127.0.0.1:5353\"]");
        let ok = config("tls: [\"A.example:443\"]\ndns: [\"svc.example@127.0.0.1:5353\"]");
        assert!(authorize(&ok, Some(&server), &[]).is_ok());
        let err = authorize(
            &config("tls: [\"a.example:443\", \"10.0.0.1:22\"]"),
            Some(&server),
            &[],
        )
        .expect_err("refused");
        assert_eq!(err.field.as_deref(), Some("config.tls[1]"));
        assert!(err.message.contains("10.0.0.1:22"), "{}", err.message);
        let err = authorize(
            &config("dns: [\"other.example@127.0.0.1:5353\"]"),
            Some(&server),
            &[],
        )
        .expect_err("refused");
        assert_eq!(err.field.as_deref(), Some("config.dns[0]"));
    }

    #[test]
    fn allow_list_admits_hosts_ports_and_url_prefixes_at_a_boundary() {
        let allow = vec![
            "db.example".to_owned(),
            "127.0.0.1:5353".to_owned(),
            "https://api.example".to_owned(),
        ];
        assert!(authorize(&config("tls: [\"db.example:5432\"]"), None, &allow).is_ok());
        assert!(authorize(&config("dns: [\"x.example@127.0.0.1:5353\"]"), None, &allow).is_ok());
        assert!(
            authorize(
                &config("apiserver: [{url: \"https://api.example/livez\"}]"),
                None,
                &allow
            )
            .is_ok()
        );
        for refused in [
            "apiserver: [{url: \"https://api.example.evil/\"}]",
            "apiserver: [{url: \"https://api.example:8443/\"}]",
            "tls: [\"db.example.evil:443\"]",
            "dns: [\"x.example@127.0.0.1:53\"]",
            "dns: [\"x.example\"]",
        ] {
            assert!(
                authorize(&config(refused), None, &allow).is_err(),
                "{refused}"
            );
        }
    }
}
