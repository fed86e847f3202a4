//! DNS checks through given name servers (or the system configuration), with expectations:
//! resolves, is NXDOMAIN, has exactly these addresses, answers within a latency limit.
//! Reports the rcode, answers, TTLs and latency. The resolver's own cache is off, so the TTLs
//! are the server's.
//!
//! Only DNS servers are asked: a check that names a server sends every query there (no hosts
//! file, no `localhost` shortcut), and a check through the system configuration that the system
//! would answer itself (`localhost`, an `/etc/hosts` entry) is `unknown`, reported as such.

use crate::check::{CheckKind, CheckResult, Status};
use hickory_resolver::config::{NameServerConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{DnsRequestOptions, Query};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::system_conf::read_system_conf;
use hickory_resolver::{Hosts, NameServerPool, PoolContext, TlsConfig};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `NAME[@SERVER[:PORT]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTarget {
    /// Name to resolve.
    pub name: String,
    /// Name server; the system configuration when absent.
    pub server: Option<SocketAddr>,
}

impl std::fmt::Display for DnsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.server {
            Some(server) => write!(f, "{}@{server}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl FromStr for DnsTarget {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let (name, server) = match value.split_once('@') {
            Some((name, server)) => {
                let server = server
                    .parse::<SocketAddr>()
                    .or_else(|_| server.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| {
                        format!("{value:?}: {server:?} is not SERVER[:PORT] with an IP address")
                    })?;
                (name, Some(server))
            }
            None => (value, None),
        };
        // What a query can carry: refused here, not reported `unknown` when the gate runs.
        if name.is_empty()
            || name.len() > 253
            || name.contains(|c: char| c.is_whitespace() || c.is_control())
            || Name::from_str(name).is_err()
        {
            return Err(format!("{value:?}: {name:?} is not a DNS name"));
        }
        Ok(Self {
            name: name.to_owned(),
            server,
        })
    }
}

/// What the answer must be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Expect {
    /// At least one record of the type.
    #[default]
    Resolves,
    /// The name does not exist.
    NxDomain,
    /// Exactly these addresses (in any order).
    Addresses(Vec<IpAddr>),
}

/// One DNS check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    /// What to resolve where.
    pub target: DnsTarget,
    /// A, AAAA, CNAME…; A and AAAA together when absent.
    pub record_type: Option<RecordType>,
    /// Expectation.
    pub expect: Expect,
    /// Fail when the answer takes longer.
    pub max_latency: Option<Duration>,
}

impl DnsCheck {
    /// A check that `target` resolves.
    pub fn resolves(target: DnsTarget) -> Self {
        Self {
            target,
            record_type: None,
            expect: Expect::Resolves,
            max_latency: None,
        }
    }
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// `NOERROR`, `NXDOMAIN`, `SERVFAIL`…
    pub rcode: String,
    /// Records as `type data ttl`.
    pub records: Vec<AnswerRecord>,
}

/// One answer record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerRecord {
    /// Record type.
    pub record_type: String,
    /// Data (`10.0.0.1`, `target.example.`).
    pub data: String,
    /// TTL in seconds, as served.
    pub ttl: u32,
}

/// The name servers a check asks: the one it names, or the system's (`/etc/resolv.conf`).
fn name_servers(server: Option<SocketAddr>) -> Result<Vec<NameServerConfig>, String> {
    match server {
        Some(server) => {
            let mut ns = NameServerConfig::udp_and_tcp(server.ip());
            for connection in &mut ns.connections {
                connection.port = server.port();
            }
            Ok(vec![ns])
        }
        None => {
            let (config, _) =
                read_system_conf().map_err(|e| format!("no system resolver configuration: {e}"))?;
            if config.name_servers().is_empty() {
                return Err("the system resolver configuration names no DNS server".into());
            }
            Ok(config.name_servers().to_vec())
        }
    }
}

/// How the system answers a name without asking any DNS server, when it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAnswer {
    /// `localhost` and the names under it (RFC 6761): resolvers answer them themselves.
    Localhost,
    /// An entry of the hosts file, with its addresses.
    HostsFile(Vec<IpAddr>),
}

impl LocalAnswer {
    /// The report's detail: what answered, and that no DNS server was asked.
    pub fn detail(&self) -> String {
        match self {
            LocalAnswer::Localhost => "answered locally: localhost names never reach a DNS \
                server (RFC 6761), no DNS server asked"
                .to_owned(),
            LocalAnswer::HostsFile(addresses) => {
                let listed: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                format!(
                    "answered from /etc/hosts ({}), no DNS server asked",
                    listed.join(", ")
                )
            }
        }
    }
}

/// Whether the system resolver answers `name` locally (a localhost name, or an entry of
/// `hosts`) for any of `types`: then no DNS server is asked, so a DNS check cannot pass on it.
pub fn local_answer(name: &Name, types: &[RecordType], hosts: &Hosts) -> Option<LocalAnswer> {
    if name.is_localhost() {
        return Some(LocalAnswer::Localhost);
    }
    let addresses: Vec<IpAddr> = types
        .iter()
        .filter_map(|t| hosts.lookup_static_host(&Query::query(name.clone(), *t)))
        .flat_map(|lookup| {
            lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    (!addresses.is_empty()).then_some(LocalAnswer::HostsFile(addresses))
}

/// The mnemonic of a DNS response code (RFC 1035, RFC 2136).
fn rcode_name(code: u16) -> String {
    match code {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => format!("RCODE{other}"),
    }
}

fn record_types(check: &DnsCheck) -> Vec<RecordType> {
    match check.record_type {
        Some(t) => vec![t],
        None => vec![RecordType::A, RecordType::AAAA],
    }
}

/// Why a query has no answer to judge.
enum NoAnswer {
    /// The system answers the name itself; no DNS server was asked.
    Local(LocalAnswer),
    /// No server answered, or the query could not be sent.
    Failed(String),
}

/// Asks the name servers, and only them: no hosts file, no special-use shortcut, no cache, no
/// search list. (hickory's `Resolver` answers `localhost` and hosts-file entries itself, even
/// when it is given a name server, so the pool of name servers is queried directly.)
async fn query(check: &DnsCheck, timeout: Duration) -> Result<Answer, NoAnswer> {
    let name = Name::from_str(&check.target.name)
        .map(|mut n| {
            n.set_fqdn(true);
            n
        })
        .map_err(|e| NoAnswer::Failed(format!("{:?} is not a DNS name: {e}", check.target.name)))?;
    let types = record_types(check);
    if check.target.server.is_none() {
        let hosts = Hosts::from_system().unwrap_or_default();
        if let Some(local) = local_answer(&name, &types, &hosts) {
            return Err(NoAnswer::Local(local));
        }
    }
    let servers = name_servers(check.target.server).map_err(NoAnswer::Failed)?;
    let mut options = ResolverOpts::default();
    options.timeout = timeout;
    options.attempts = 1;
    options.cache_size = 0;
    let tls = TlsConfig::new().map_err(|e| NoAnswer::Failed(e.to_string()))?;
    let pool = NameServerPool::from_config(
        servers,
        Arc::new(PoolContext::new(options, tls)),
        TokioRuntimeProvider::default(),
    );
    let mut records = Vec::new();
    let mut rcode = None;
    for record_type in types {
        let response = pool
            .lookup(
                Query::query(name.clone(), record_type),
                DnsRequestOptions::default(),
            )
            .first_answer()
            .await;
        match response {
            Ok(response) => {
                rcode.get_or_insert_with(|| "NOERROR".to_owned());
                records.extend(response.answers.iter().map(|r| AnswerRecord {
                    record_type: r.record_type().to_string(),
                    data: r.data.to_string(),
                    ttl: r.ttl,
                }));
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(no))) => {
                let code = rcode_name(u16::from(no.response_code));
                if rcode.is_none() || code == "NXDOMAIN" {
                    rcode = Some(code);
                }
            }
            // The server answered, with an error (REFUSED, SERVFAIL…): that is its answer.
            Err(NetError::Dns(DnsError::ResponseCode(code))) => {
                if rcode.as_deref().is_none_or(|r| r == "NOERROR") && records.is_empty() {
                    rcode = Some(rcode_name(u16::from(code)));
                }
            }
            Err(NetError::Timeout) => {
                return Err(NoAnswer::Failed(format!("no answer within {timeout:?}")));
            }
            Err(e) => return Err(NoAnswer::Failed(e.to_string())),
        }
    }
    Ok(Answer {
        rcode: rcode.unwrap_or_else(|| "NOERROR".into()),
        records,
    })
}

/// The verdict on an answer: pure.
pub fn judge(check: &DnsCheck, answer: &Answer, latency: Duration) -> (Status, String) {
    let addresses: Vec<IpAddr> = answer
        .records
        .iter()
        .filter_map(|r| r.data.parse().ok())
        .collect();
    let summary = if answer.records.is_empty() {
        answer.rcode.clone()
    } else {
        let listed: Vec<String> = answer
            .records
            .iter()
            .map(|r| format!("{} {} ttl {}", r.record_type, r.data, r.ttl))
            .collect();
        format!("{}: {}", answer.rcode, listed.join(", "))
    };
    let mut problem = match &check.expect {
        Expect::Resolves if answer.records.is_empty() => {
            Some(format!("does not resolve ({})", answer.rcode))
        }
        Expect::NxDomain if answer.rcode != "NXDOMAIN" => {
            Some(format!("expected NXDOMAIN, got {summary}"))
        }
        Expect::Addresses(expected) => {
            let mut want = expected.clone();
            let mut got = addresses.clone();
            want.sort_unstable();
            got.sort_unstable();
            got.dedup();
            (want != got).then(|| {
                let want: Vec<String> = want.iter().map(ToString::to_string).collect();
                format!("expected {}, got {summary}", want.join(", "))
            })
        }
        _ => None,
    };
    if problem.is_none()
        && let Some(limit) = check.max_latency
        && latency > limit
    {
        problem = Some(format!(
            "answered in {} ms, over the {} ms limit",
            latency.as_millis(),
            limit.as_millis()
        ));
    }
    match problem {
        Some(p) => (Status::Fail, p),
        None => (Status::Pass, summary),
    }
}

/// Runs one DNS check. No answer within `timeout` (or an unreachable server) is `unknown`, and
/// so is a name the system answers itself (localhost, the hosts file) when no name server is
/// given: no DNS server was asked, so there is nothing to pass.
pub async fn check(check: &DnsCheck, timeout: Duration) -> CheckResult {
    let started = Instant::now();
    let outcome =
        tokio::time::timeout(timeout + Duration::from_millis(100), query(check, timeout)).await;
    let latency = started.elapsed();
    let (status, detail) = match outcome {
        Err(_) => (Status::Unknown, format!("no answer within {timeout:?}")),
        Ok(Err(NoAnswer::Failed(reason))) => (Status::Unknown, reason),
        Ok(Err(NoAnswer::Local(local))) => (Status::Unknown, local.detail()),
        Ok(Ok(answer)) => judge(check, &answer, latency),
    };
    let mut result = CheckResult::new(CheckKind::Dns, check.target.to_string(), status, detail);
    result.latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(rcode: &str, data: &[&str]) -> Answer {
        Answer {
            rcode: rcode.into(),
            records: data
                .iter()
                .map(|d| AnswerRecord {
                    record_type: "A".into(),
                    data: (*d).into(),
                    ttl: 30,
                })
                .collect(),
        }
    }

    fn check(expect: Expect) -> DnsCheck {
        DnsCheck {
            expect,
            ..DnsCheck::resolves("api.example.test".parse().unwrap_or_else(|e| panic!("{e}")))
        }
    }

    fn name(n: &str) -> Name {
        Name::from_str(n).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn localhost_names_and_hosts_file_entries_are_answered_locally() {
        let mut hosts = Hosts::default();
        hosts
            .read_hosts_conf(
                "127.0.0.1 localhost\n10.1.2.3 db.internal db # primary\n::7 v6.internal\n"
                    .as_bytes(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let both = [RecordType::A, RecordType::AAAA];
        assert_eq!(
            local_answer(&name("localhost."), &both, &hosts),
            Some(LocalAnswer::Localhost)
        );
        assert_eq!(
            local_answer(&name("api.localhost."), &[RecordType::A], &Hosts::default()),
            Some(LocalAnswer::Localhost)
        );
        let db = local_answer(&name("db.internal."), &both, &hosts);
        assert_eq!(
            db,
            Some(LocalAnswer::HostsFile(vec![IpAddr::from([10, 1, 2, 3])]))
        );
        assert_eq!(
            db.map(|d| d.detail()).as_deref(),
            Some("answered from /etc/hosts (10.1.2.3), no DNS server asked")
        );
        assert!(local_answer(&name("db."), &both, &hosts).is_some());
        // Only the record types asked about count.
        assert_eq!(
            local_answer(&name("v6.internal."), &[RecordType::A], &hosts),
            None
        );
        assert!(local_answer(&name("v6.internal."), &both, &hosts).is_some());
        assert_eq!(
            local_answer(&name("api.example.test."), &both, &hosts),
            None
        );
        assert_eq!(
            local_answer(&name("localhost.example.test."), &both, &hosts),
            None
        );
    }

    #[test]
    fn targets_parse_with_and_without_a_server() {
        let t: DnsTarget = "api.example.test@127.0.0.1:5353"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.server,
            Some("127.0.0.1:5353".parse().unwrap_or_else(|e| panic!("{e}")))
        );
        let t: DnsTarget = "api.example.test@10.0.0.10"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.server.map(|s| s.port()), Some(53));
        assert!("a@dns.google".parse::<DnsTarget>().is_err());
        // Found by fuzzing (gate_targets): names no query can carry were accepted.
        for name in ["\0", "a\u{7f}b", "a..b", &"x".repeat(64)] {
            assert!(name.parse::<DnsTarget>().is_err(), "{name:?} accepted");
        }
        assert!("api-1.example.test.".parse::<DnsTarget>().is_ok());
        assert!("_sip._tcp.example.test".parse::<DnsTarget>().is_ok());
        assert!("@1.1.1.1".parse::<DnsTarget>().is_err());
    }

    #[test]
    fn expectations_are_judged() {
        let ok = Duration::from_millis(3);
        assert_eq!(
            judge(
                &check(Expect::Resolves),
                &answer("NOERROR", &["10.0.0.1"]),
                ok
            )
            .0,
            Status::Pass
        );
        assert_eq!(
            judge(&check(Expect::Resolves), &answer("NXDOMAIN", &[]), ok).0,
            Status::Fail
        );
        assert_eq!(
            judge(&check(Expect::NxDomain), &answer("NXDOMAIN", &[]), ok).0,
            Status::Pass
        );
        assert_eq!(
            judge(
                &check(Expect::NxDomain),
                &answer("NOERROR", &["10.0.0.1"]),
                ok
            )
            .0,
            Status::Fail
        );
        let want = Expect::Addresses(vec![
            "10.0.0.2".parse().unwrap_or_else(|e| panic!("{e}")),
            "10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
        ]);
        assert_eq!(
            judge(
                &check(want.clone()),
                &answer("NOERROR", &["10.0.0.1", "10.0.0.2"]),
                ok
            )
            .0,
            Status::Pass
        );
        assert_eq!(
            judge(&check(want), &answer("NOERROR", &["10.0.0.1"]), ok).0,
            Status::Fail
        );
        let slow = DnsCheck {
            max_latency: Some(Duration::from_millis(1)),
            ..check(Expect::Resolves)
        };
        let (status, detail) = judge(&slow, &answer("NOERROR", &["10.0.0.1"]), ok);
        assert_eq!(status, Status::Fail);
        assert!(detail.contains("over the 1 ms limit"), "{detail}");
    }
}
