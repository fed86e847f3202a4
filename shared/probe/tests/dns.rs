//! DNS checks and the CoreDNS cache check against a real CoreDNS (`scripts/services up coredns`)
//! serving the test zone `example.test.` (tests/support/coredns/example.test.zone).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_probe::Status;
use deploygraph_probe::coredns::{self, Thresholds};
use deploygraph_probe::dns::{DnsCheck, DnsTarget, Expect, check};
use hickory_resolver::proto::rr::RecordType;
use std::time::Duration;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: these tests need CoreDNS; run scripts/test (or `scripts/services up coredns && eval \"$(scripts/services env)\"`)")
    })
}

fn target(name: &str) -> DnsTarget {
    format!("{name}@{}", env("COREDNS_TEST_ADDR"))
        .parse()
        .unwrap()
}

fn dns(name: &str, record_type: Option<RecordType>, expect: Expect) -> DnsCheck {
    DnsCheck {
        target: target(name),
        record_type,
        expect,
        max_latency: None,
    }
}

const TIMEOUT: Duration = Duration::from_secs(3);

#[tokio::test]
async fn records_of_the_test_zone_resolve_as_served() {
    let both = Expect::Addresses(vec![
        "127.0.0.10".parse().unwrap(),
        "127.0.0.11".parse().unwrap(),
    ]);
    let a = check(&dns("api.example.test", Some(RecordType::A), both), TIMEOUT).await;
    assert_eq!(a.status, Status::Pass, "{}", a.detail);
    assert!(a.detail.starts_with("NOERROR: A 127.0.0.1"), "{}", a.detail);

    let cname = check(
        &dns(
            "www.example.test",
            Some(RecordType::CNAME),
            Expect::Resolves,
        ),
        TIMEOUT,
    )
    .await;
    assert_eq!(cname.status, Status::Pass, "{}", cname.detail);
    assert!(
        cname.detail.contains("CNAME api.example.test."),
        "{}",
        cname.detail
    );

    let v6 = Expect::Addresses(vec!["::10".parse().unwrap()]);
    let aaaa = check(&dns("v6.example.test", Some(RecordType::AAAA), v6), TIMEOUT).await;
    assert_eq!(aaaa.status, Status::Pass, "{}", aaaa.detail);

    let short = check(
        &dns("short.example.test", Some(RecordType::A), Expect::Resolves),
        TIMEOUT,
    )
    .await;
    let ttl: u32 = short
        .detail
        .rsplit("ttl ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        ttl <= 5,
        "the server's TTL is reported, not a resolver cache's: {}",
        short.detail
    );

    let either = check(&DnsCheck::resolves(target("api.example.test")), TIMEOUT).await;
    assert_eq!(either.status, Status::Pass, "A or AAAA: {}", either.detail);
}

#[tokio::test]
async fn missing_names_wrong_addresses_and_dead_servers_are_reported() {
    let nx = check(
        &dns("missing.example.test", None, Expect::NxDomain),
        TIMEOUT,
    )
    .await;
    assert_eq!(nx.status, Status::Pass, "{}", nx.detail);
    let must_resolve = check(&DnsCheck::resolves(target("missing.example.test")), TIMEOUT).await;
    assert_eq!(must_resolve.status, Status::Fail);
    assert!(
        must_resolve.detail.contains("NXDOMAIN"),
        "{}",
        must_resolve.detail
    );

    let wrong = Expect::Addresses(vec!["10.9.9.9".parse().unwrap()]);
    let moved = check(
        &dns("api.example.test", Some(RecordType::A), wrong),
        TIMEOUT,
    )
    .await;
    assert_eq!(moved.status, Status::Fail);
    assert!(
        moved.detail.contains("expected 10.9.9.9"),
        "{}",
        moved.detail
    );

    let exists = check(
        &dns("api.example.test", Some(RecordType::A), Expect::NxDomain),
        TIMEOUT,
    )
    .await;
    assert_eq!(exists.status, Status::Fail, "{}", exists.detail);

    let port = deploygraph_probe::testing::closed_port();
    let dead = DnsCheck::resolves(
        format!("api.example.test@127.0.0.1:{port}")
            .parse()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    let result = check(&dead, Duration::from_secs(1)).await;
    assert_eq!(result.status, Status::Unknown, "{}", result.detail);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The names `/etc/hosts` gives addresses to, besides the localhost ones.
fn hosts_file_names() -> Vec<String> {
    std::fs::read_to_string("/etc/hosts")
        .unwrap_or_default()
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(|line| line.split_whitespace().skip(1))
        .filter(|name| !name.eq_ignore_ascii_case("localhost") && !name.ends_with(".localhost"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn names_answered_locally_never_pass_against_a_resolver_that_does_not_answer() {
    // A name server that receives every query and answers none.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead = silent.local_addr().unwrap();
    let mut names = vec!["localhost".to_owned(), "db.localhost".to_owned()];
    names.extend(hosts_file_names());
    for name in names {
        for record_type in [None, Some(RecordType::A)] {
            let check_ = DnsCheck {
                target: format!("{name}@{dead}").parse().unwrap(),
                record_type,
                expect: Expect::Resolves,
                max_latency: None,
            };
            let result = check(&check_, Duration::from_millis(500)).await;
            assert_eq!(
                result.status,
                Status::Unknown,
                "{name} ({record_type:?}) against a silent resolver: {}",
                result.detail
            );
        }
    }
    // The queries did reach the configured server, and only it.
    let mut buf = [0u8; 512];
    silent.set_nonblocking(true).unwrap();
    assert!(
        silent.recv_from(&mut buf).is_ok(),
        "no query reached {dead}"
    );
}

#[tokio::test]
async fn a_configured_resolver_is_asked_about_localhost_too() {
    // CoreDNS serves only example.test., so it refuses localhost: the check says what the
    // server answered, not what the local machine would have.
    let result = check(&DnsCheck::resolves(target("localhost")), TIMEOUT).await;
    assert_eq!(result.status, Status::Fail, "{}", result.detail);
    assert!(result.detail.contains("REFUSED"), "{}", result.detail);
    let served = check(&DnsCheck::resolves(target("api.example.test")), TIMEOUT).await;
    assert_eq!(served.status, Status::Pass, "{}", served.detail);
}

#[tokio::test]
async fn names_the_system_answers_itself_are_reported_as_such_not_passed() {
    let localhost = check(&DnsCheck::resolves("localhost".parse().unwrap()), TIMEOUT).await;
    assert_eq!(localhost.status, Status::Unknown, "{}", localhost.detail);
    assert!(
        localhost.detail.contains("no DNS server asked"),
        "{}",
        localhost.detail
    );
    // Whatever this machine's hosts file names (the hosts-file logic itself is unit-tested on a
    // file of its own in `dns::tests`).
    for name in hosts_file_names() {
        let result = check(&DnsCheck::resolves(name.parse().unwrap()), TIMEOUT).await;
        assert_eq!(result.status, Status::Unknown, "{name}: {}", result.detail);
        assert!(
            result.detail.starts_with("answered from /etc/hosts (")
                && result.detail.ends_with("no DNS server asked"),
            "{name}: {}",
            result.detail
        );
    }
}

#[tokio::test]
async fn the_coredns_cache_is_read_from_its_metrics() {
    // Fill the cache with a success and a denial entry first.
    check(
        &dns("api.example.test", Some(RecordType::A), Expect::Resolves),
        TIMEOUT,
    )
    .await;
    check(
        &dns("missing.example.test", None, Expect::NxDomain),
        TIMEOUT,
    )
    .await;
    let url = env("COREDNS_TEST_METRICS");
    let ok = coredns::check(&url, &Thresholds::default(), TIMEOUT).await;
    assert_eq!(ok.status, Status::Pass, "{}", ok.detail);
    assert!(ok.detail.starts_with("cache: "), "{}", ok.detail);
    let strict = Thresholds {
        max_success_entries: Some(0.0),
        ..Thresholds::default()
    };
    let full = coredns::check(&url, &strict, TIMEOUT).await;
    assert_eq!(full.status, Status::Fail, "{}", full.detail);
    assert!(
        full.parts
            .iter()
            .any(|p| p.name == "success_entries" && !p.ok)
    );
    let port = deploygraph_probe::testing::closed_port();
    let gone = coredns::check(
        &format!("http://127.0.0.1:{port}/metrics"),
        &Thresholds::default(),
        TIMEOUT,
    )
    .await;
    assert_eq!(gone.status, Status::Unknown);
}
