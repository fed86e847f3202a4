//! The question forms of `deploygraph ask`, English and Chinese, read against one graph's
//! services: each phrasing with how it must be understood, and the questions that must not
//! be mapped (with why).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeZone, Utc};
use deploygraph_analysis::ask::{Intent, Known, MatchKind, parse};
use deploygraph_model::DeploymentStatus;

fn known_services() -> Vec<String> {
    [
        "checkout",
        "payments",
        "payments-worker",
        "cart",
        "api-gateway",
        "inventory",
        "search",
        "frontend",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Wednesday 2 December 2026, 15:30 UTC.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 15, 30, 0).unwrap()
}

fn t(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    let month = if day > 20 { 11 } else { 12 };
    Utc.with_ymd_and_hms(2026, month, day, h, m, 0).unwrap()
}

/// What a phrasing must be understood as; `None` fields must be absent.
struct Case {
    q: &'static str,
    intent: Intent,
    service: Option<&'static str>,
    environment: Option<&'static str>,
    status: Option<DeploymentStatus>,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    at: Option<DateTime<Utc>>,
    count: Option<usize>,
}

const fn case(q: &'static str, intent: Intent, service: Option<&'static str>) -> Case {
    Case {
        q,
        intent,
        service,
        environment: None,
        status: None,
        range: None,
        at: None,
        count: None,
    }
}

#[allow(clippy::too_many_lines)] // the table
fn cases() -> Vec<Case> {
    use DeploymentStatus::{Failed, RolledBack, Succeeded};
    use Intent::{Alerts, CommonFactors, Deployments, Dora, Resilience, Suspects, Timeline};
    let today = (t(2, 0, 0), now());
    let yesterday = (t(1, 0, 0), t(2, 0, 0));
    let last_week = (t(23, 0, 0), t(30, 0, 0));
    vec![
        // Suspects of an alert.
        Case {
            at: Some(t(2, 14, 5)),
            ..case(
                "Which deploy caused the checkout alert at 14:05?",
                Suspects,
                Some("checkout"),
            )
        },
        case("what caused the checkout alert", Suspects, Some("checkout")),
        case("Why did payments alert?", Suspects, Some("payments")),
        Case {
            at: Some(t(1, 9, 15)),
            ..case(
                "why did the api-gateway alert fire yesterday at 09:15",
                Suspects,
                Some("api-gateway"),
            )
        },
        case("root cause of the cart alert", Suspects, Some("cart")),
        case(
            "suspects for the frontend alert",
            Suspects,
            Some("frontend"),
        ),
        Case {
            environment: Some("production"),
            ..case(
                "what caused HighErrorRate on checkout in prod",
                Suspects,
                Some("checkout"),
            )
        },
        case("what caused HighErrorRate", Suspects, None),
        case("which change broke search", Suspects, Some("search")),
        Case {
            at: Some(t(2, 14, 5)),
            ..case(
                "哪个部署导致了 checkout 的告警？14:05",
                Suspects,
                Some("checkout"),
            )
        },
        case("支付服务告警的原因是什么", Suspects, Some("payments")),
        case("购物车报警是哪次变更引起的", Suspects, Some("cart")),
        case("what caused alert 3f2a9c0d1b4e5f60", Suspects, None),
        // What failed deployments have in common.
        Case {
            status: Some(Failed),
            count: Some(3),
            ..case(
                "What do the last three failed payments deployments have in common?",
                CommonFactors,
                Some("payments"),
            )
        },
        Case {
            status: Some(Failed),
            count: Some(5),
            ..case(
                "common factors of the last 5 failed checkout deploys",
                CommonFactors,
                Some("checkout"),
            )
        },
        Case {
            status: Some(Failed),
            ..case(
                "what do failed cart rollouts share",
                CommonFactors,
                Some("cart"),
            )
        },
        Case {
            status: Some(Failed),
            count: Some(3),
            ..case(
                "最近三次支付服务部署失败的共性配置缺陷是什么?",
                CommonFactors,
                Some("payments"),
            )
        },
        Case {
            status: Some(Failed),
            count: Some(5),
            ..case(
                "inventory 最近5次失败部署的共同点",
                CommonFactors,
                Some("inventory"),
            )
        },
        Case {
            status: Some(RolledBack),
            count: Some(2),
            ..case(
                "what did the last two rolled back frontend releases have in common",
                CommonFactors,
                Some("frontend"),
            )
        },
        // Timelines.
        case("timeline of checkout", Timeline, Some("checkout")),
        Case {
            range: Some((t(2, 14, 0), now())),
            ..case(
                "what changed in payments since 14:00",
                Timeline,
                Some("payments"),
            )
        },
        Case {
            range: Some(yesterday),
            ..case(
                "What happened to the api gateway yesterday?",
                Timeline,
                Some("api-gateway"),
            )
        },
        Case {
            range: Some((now() - chrono::Duration::hours(6), now())),
            ..case(
                "checkout history for the last 6 hours",
                Timeline,
                Some("checkout"),
            )
        },
        Case {
            range: Some((now() - chrono::Duration::hours(2), now())),
            ..case("cart timeline 2h", Timeline, Some("cart"))
        },
        case("checkout 的时间线", Timeline, Some("checkout")),
        Case {
            range: Some((now() - chrono::Duration::days(7), now())),
            ..case("库存最近一周发生了什么变更", Timeline, Some("inventory"))
        },
        Case {
            range: Some((t(2, 9, 30), now())),
            ..case("搜索 09:30以来有什么变更", Timeline, Some("search"))
        },
        Case {
            range: Some(today),
            ..case("what changed in chekout today", Timeline, Some("checkout"))
        },
        // DORA.
        case("DORA metrics", Dora, None),
        Case {
            range: Some((t(1, 0, 0).with_day_one_of_previous_month(), t(1, 0, 0))),
            ..case(
                "change failure rate of payments last month",
                Dora,
                Some("payments"),
            )
        },
        Case {
            environment: Some("staging"),
            ..case(
                "how often do we deploy checkout in staging",
                Dora,
                Some("checkout"),
            )
        },
        case("payments 的部署频率", Dora, Some("payments")),
        Case {
            range: Some((now() - chrono::Duration::days(30), now())),
            ..case("最近30天的变更失败率", Dora, None)
        },
        Case {
            environment: Some("production"),
            ..case("生产环境的 DORA 指标", Dora, None)
        },
        // Resilience.
        case(
            "has checkout been chaos tested",
            Resilience,
            Some("checkout"),
        ),
        case("resilience of payments", Resilience, Some("payments")),
        case(
            "did we ever test cart for pod failures",
            Resilience,
            Some("cart"),
        ),
        case("checkout 做过混沌测试吗", Resilience, Some("checkout")),
        case("网关的韧性怎么样", Resilience, Some("api-gateway")),
        // Deployments.
        Case {
            status: Some(Failed),
            range: Some(last_week),
            ..case(
                "failed deployments of payments last week",
                Deployments,
                Some("payments"),
            )
        },
        Case {
            environment: Some("production"),
            count: Some(10),
            ..case(
                "show the last 10 deploys of checkout in production",
                Deployments,
                Some("checkout"),
            )
        },
        Case {
            status: Some(RolledBack),
            ..case("which releases were rolled back", Deployments, None)
        },
        Case {
            status: Some(Succeeded),
            range: Some(today),
            ..case("successful rollouts today", Deployments, None)
        },
        Case {
            status: Some(Failed),
            range: Some(yesterday),
            ..case("checkout 昨天失败的部署", Deployments, Some("checkout"))
        },
        Case {
            range: Some((t(30, 0, 0), now())),
            ..case("本周 frontend 的发布", Deployments, Some("frontend"))
        },
        Case {
            status: Some(RolledBack),
            ..case("哪些部署被回滚了", Deployments, None)
        },
        // Alerts.
        Case {
            range: Some(today),
            ..case("alerts on checkout today", Alerts, Some("checkout"))
        },
        Case {
            range: Some((now() - chrono::Duration::days(1), now())),
            ..case(
                "what is firing on payments in the past day",
                Alerts,
                Some("payments"),
            )
        },
        Case {
            environment: Some("staging"),
            ..case("staging alerts", Alerts, None)
        },
        Case {
            range: Some(today),
            ..case("checkout 今天的告警", Alerts, Some("checkout"))
        },
        Case {
            range: Some(yesterday),
            ..case("昨天 api-gateway 有哪些报警", Alerts, Some("api-gateway"))
        },
    ]
}

trait PreviousMonth {
    fn with_day_one_of_previous_month(self) -> Self;
}

impl PreviousMonth for DateTime<Utc> {
    /// 1 November 2026 (the month before `now`'s).
    fn with_day_one_of_previous_month(self) -> Self {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
    }
}

#[test]
fn every_phrasing_is_understood_as_its_row_says() {
    let services = known_services();
    let environments = vec!["production".to_owned(), "staging".to_owned()];
    let alert_names = vec!["HighErrorRate".to_owned(), "KubePodCrashLooping".to_owned()];
    let known = Known {
        services: &services,
        environments: &environments,
        clusters: &[],
        alert_names: &alert_names,
    };
    let cases = cases();
    assert!(cases.len() >= 40, "{} phrasings", cases.len());
    let chinese = cases.iter().filter(|c| !c.q.is_ascii()).count();
    assert!(chinese >= 15, "{chinese} Chinese phrasings");
    let mut wrong = Vec::new();
    for c in &cases {
        let got = match parse(c.q, &known, now()) {
            Ok(u) => u,
            Err(e) => {
                wrong.push(format!("{:?}: not understood: {}", c.q, e.reason));
                continue;
            }
        };
        let mut diff = Vec::new();
        if got.intent != c.intent {
            diff.push(format!("intent {:?}, want {:?}", got.intent, c.intent));
        }
        let service = got.service.as_ref().map(|s| s.name.as_str());
        if service != c.service {
            diff.push(format!("service {service:?}, want {:?}", c.service));
        }
        if got.environment.as_deref() != c.environment {
            diff.push(format!(
                "environment {:?}, want {:?}",
                got.environment, c.environment
            ));
        }
        if got.status != c.status {
            diff.push(format!("status {:?}, want {:?}", got.status, c.status));
        }
        let range = got.range.as_ref().map(|r| (r.since, r.until));
        if range != c.range {
            diff.push(format!("range {range:?}, want {:?}", c.range));
        }
        if got.at != c.at {
            diff.push(format!("at {:?}, want {:?}", got.at, c.at));
        }
        if got.count != c.count {
            diff.push(format!("count {:?}, want {:?}", got.count, c.count));
        }
        if !diff.is_empty() {
            wrong.push(format!("{:?}: {}", c.q, diff.join("; ")));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} misread:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn how_a_service_was_found_is_said() {
    let services = known_services();
    let known = Known {
        services: &services,
        ..Known::default()
    };
    let how = |q: &str| {
        let s = parse(q, &known, now()).unwrap().service.unwrap();
        (s.name, s.said, s.how)
    };
    assert_eq!(
        how("timeline of Checkout"),
        ("checkout".into(), "checkout".into(), MatchKind::Exact)
    );
    assert_eq!(
        how("timeline of api_gateway"),
        ("api-gateway".into(), "api_gateway".into(), MatchKind::Exact)
    );
    assert_eq!(
        how("timeline of api gateway"),
        ("api-gateway".into(), "api gateway".into(), MatchKind::Exact)
    );
    assert_eq!(
        how("timeline of chekcout"),
        ("checkout".into(), "chekcout".into(), MatchKind::Spelling)
    );
    assert_eq!(
        how("支付的时间线"),
        ("payments".into(), "支付".into(), MatchKind::Glossary)
    );
    // The longest name wins over a shorter one inside it.
    assert_eq!(how("timeline of payments worker").0, "payments-worker");
}

#[test]
fn questions_that_cannot_be_mapped_say_why_and_offer_the_forms() {
    let services = known_services();
    let known = Known {
        services: &services,
        ..Known::default()
    };
    // No form.
    let e = parse("what is the meaning of life", &known, now()).unwrap_err();
    assert!(
        e.reason.contains("no question form matches"),
        "{}",
        e.reason
    );
    assert!(e.forms.len() >= 10 && e.forms.iter().any(|f| f.contains("最近三次")));
    // A form that needs a service, and none named: the closest are offered, never guessed.
    let e = parse("timeline of checkoutz-v2-legacy", &known, now()).unwrap_err();
    assert!(e.reason.contains("names no service"), "{}", e.reason);
    assert_eq!(
        e.closest_services.first().map(String::as_str),
        Some("checkout"),
        "{:?}",
        e.closest_services
    );
    let e = parse("what do failed deployments have in common", &known, now()).unwrap_err();
    assert!(e.reason.contains("common factors question"), "{}", e.reason);
    // A misspelling two services are equally close to is not a match.
    let two = vec!["cart".to_owned(), "card".to_owned()];
    let e = parse(
        "timeline of carx",
        &Known {
            services: &two,
            ..Known::default()
        },
        now(),
    )
    .unwrap_err();
    assert!(
        e.reason.contains("cart") && e.reason.contains("card"),
        "{}",
        e.reason
    );
    // A glossary word that fits several services, none by its whole name.
    let payments = vec!["payment-api".to_owned(), "payment-worker".to_owned()];
    let e = parse(
        "支付的时间线",
        &Known {
            services: &payments,
            ..Known::default()
        },
        now(),
    )
    .unwrap_err();
    assert!(
        e.reason.contains("payment-api") && e.reason.contains("payment-worker"),
        "{}",
        e.reason
    );
    // Anything at all is read without a panic: long, empty, control characters.
    for q in [
        "",
        " ",
        "\u{0}",
        &"x".repeat(5_000),
        "14:99 at 99:99 since 25:00",
        "最近九十九次",
        "last 999999999999 days",
    ] {
        let _ = parse(q, &known, now());
    }
}

#[test]
fn a_cluster_is_read_from_the_question() {
    let services = vec!["payments".to_owned(), "web".to_owned()];
    let environments = vec!["production".to_owned()];
    let clusters = vec![
        "default".to_owned(),
        "eu-west-1".to_owned(),
        "us-east".to_owned(),
    ];
    let known = Known {
        services: &services,
        environments: &environments,
        clusters: &clusters,
        alert_names: &[],
    };
    for (q, cluster) in [
        ("timeline of payments in eu-west-1", Some("eu-west-1")),
        (
            "alerts on payments in cluster us-east today",
            Some("us-east"),
        ),
        (
            "failed deployments of web in production on the US-EAST cluster",
            Some("us-east"),
        ),
        (
            "timeline of payments in the default cluster",
            Some("default"),
        ),
        // "default" alone is a word, not a cluster.
        ("timeline of payments by default", None),
        ("payments 在 eu-west-1 集群的时间线", Some("eu-west-1")),
        ("timeline of payments", None),
        ("timeline of payments in cluster mars", None),
    ] {
        let u = parse(q, &known, now()).unwrap_or_else(|e| panic!("{q}: {}", e.reason));
        assert_eq!(u.cluster.as_deref(), cluster, "{q}");
        assert_eq!(
            u.service.as_ref().map(|s| s.name.as_str()),
            Some(if q.contains("web") { "web" } else { "payments" }),
            "{q}"
        );
    }
}
