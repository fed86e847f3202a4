//! Questions in English or Chinese mapped to the queries deploygraph answers (`deploygraph ask`,
//! `GET /v1/ask`): deterministic, no model and no network. [`parse`] reads a question against
//! what the graph holds (its services, environments and alert names) and returns how it was
//! understood — the intent, the service with the words it was matched from, the environment,
//! the status, the time range or instant, the count — or, when it cannot map the question, why,
//! the forms it understands and the closest services. It never guesses: a service is named
//! exactly, by a small misspelling of one service only, or through the glossary of common
//! Chinese service words ([`GLOSSARY`]) when that leads to one service only.
//!
//! Times in questions ("at 14:05", "since 14:00", "yesterday") are UTC.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use deploygraph_model::DeploymentStatus;
use serde::Serialize;

/// Longest question read, in characters.
pub const MAX_QUESTION_CHARS: usize = 500;

/// What a question asks for: one of the queries the API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// The suspects of an alert (`GET /v1/alerts/{fingerprint}/suspects`).
    Suspects,
    /// What a service's last failed deployments share (`GET /v1/services/{name}/common-factors`).
    CommonFactors,
    /// A service's timeline (`GET /v1/services/{name}/timeline`).
    Timeline,
    /// DORA metrics (`GET /v1/dora`).
    Dora,
    /// Chaos verdicts across releases (`GET /v1/services/{name}/resilience`).
    Resilience,
    /// Deployments, filtered (`GET /v1/deployments`).
    Deployments,
    /// Alerts, filtered (`GET /v1/alerts`).
    Alerts,
}

impl Intent {
    /// The intent as the API spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspects => "suspects",
            Self::CommonFactors => "common_factors",
            Self::Timeline => "timeline",
            Self::Dora => "dora",
            Self::Resilience => "resilience",
            Self::Deployments => "deployments",
            Self::Alerts => "alerts",
        }
    }
}

/// How a service was found in the question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// Its name, ignoring case, `-`, `_` and spaces.
    Exact,
    /// A small misspelling of its name, and of no other service's.
    Spelling,
    /// A Chinese word of the [`GLOSSARY`] that leads to it alone.
    Glossary,
}

/// The service a question names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceMatch {
    /// The service's name in the graph.
    pub name: String,
    /// The words of the question it was matched from.
    pub said: String,
    /// How.
    pub how: MatchKind,
}

/// A time range of the question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Range {
    /// From.
    pub since: DateTime<Utc>,
    /// To.
    pub until: DateTime<Utc>,
    /// The words it was read from.
    pub said: String,
}

/// How a question was understood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Understood {
    /// What it asks for.
    pub intent: Intent,
    /// The service it names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceMatch>,
    /// The environment it names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The cluster it names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The deployment status it names ("failed", "rolled back").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DeploymentStatus>,
    /// The time range it names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
    /// The instant it names ("at 14:05"): the alert nearest to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// How many ("the last three").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// The alert name it names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_name: Option<String>,
    /// The alert fingerprint it names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// Why a question could not be mapped, with what would be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotUnderstood {
    /// What is missing or unclear.
    pub reason: String,
    /// The question forms understood ([`FORMS`]).
    pub forms: Vec<&'static str>,
    /// The services whose names are closest to the question's words.
    pub closest_services: Vec<String>,
}

/// What the graph holds that questions are read against.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// Service names.
    pub services: &'a [String],
    /// Environment names.
    pub environments: &'a [String],
    /// Cluster names.
    pub clusters: &'a [String],
    /// Names of recent alerts.
    pub alert_names: &'a [String],
}

/// The question forms understood, as published in the README.
pub const FORMS: &[&str] = &[
    "which deploy caused the <service> alert [at 14:05 | yesterday]",
    "what caused <AlertName> [on <service>] / why did <service> alert",
    "what do the last <N> failed <service> deployments have in common",
    "timeline of <service> / what changed in <service> [since 14:00 | yesterday | last 6 hours]",
    "DORA metrics / change failure rate [of <service>] [in <environment>] [last month]",
    "has <service> been chaos tested / resilience of <service>",
    "[failed | rolled back] deployments of <service> [in <environment>] [last week]",
    "alerts on <service> [today]",
    "… [in cluster <cluster>]: any question, in one cluster",
    "哪个部署导致了 <service> 的告警 [14:05] / <service> 告警的原因是什么",
    "最近三次 <service> 部署失败的共性是什么",
    "<service> 的时间线 / <service> 最近发生了什么变更",
    "<service> 的部署频率 / 变更失败率 (DORA) [上个月]",
    "<service> 做过混沌测试吗 / <service> 的韧性",
    "<service> 昨天失败的部署 / <service> 今天的告警",
];

/// Chinese words for common services, each with the English stems a service name may start
/// with: `支付` finds `payment`, `payments` or `payment-api` — when only one service of the
/// graph fits.
pub const GLOSSARY: &[(&str, &[&str])] = &[
    ("支付", &["payment", "pay"]),
    ("订单", &["order"]),
    ("购物车", &["cart"]),
    ("结账", &["checkout"]),
    ("结算", &["checkout", "billing"]),
    ("账单", &["billing", "invoice"]),
    ("用户", &["user", "account"]),
    ("账户", &["account"]),
    ("库存", &["inventory", "stock"]),
    ("搜索", &["search"]),
    ("网关", &["gateway"]),
    ("认证", &["auth"]),
    ("鉴权", &["auth"]),
    ("登录", &["login", "auth"]),
    ("通知", &["notification", "notify"]),
    ("推荐", &["recommendation"]),
    ("物流", &["shipping", "logistics"]),
    ("配送", &["shipping", "delivery"]),
    ("前端", &["frontend", "web"]),
    ("数据库", &["db", "database", "postgres", "mysql"]),
    ("缓存", &["cache", "redis"]),
    ("消息队列", &["queue", "kafka"]),
    ("商品", &["catalog", "product"]),
    ("目录", &["catalog"]),
    ("广告", &["ad"]),
    ("邮件", &["email", "mail"]),
];

/// Reads `question` against `known`, at `now`.
///
/// # Errors
/// [`NotUnderstood`] when the question maps to no query, or to one that needs a service the
/// question does not name (or names ambiguously).
pub fn parse(
    question: &str,
    known: &Known<'_>,
    now: DateTime<Utc>,
) -> Result<Understood, NotUnderstood> {
    let text: String = question
        .chars()
        .take(MAX_QUESTION_CHARS)
        .map(|c| match c {
            '：' => ':',
            '？' => '?',
            '，' => ',',
            c => c,
        })
        .collect::<String>()
        .to_lowercase();
    let words = ascii_words(&text);
    let not_understood = |reason: String| NotUnderstood {
        reason,
        forms: FORMS.to_vec(),
        closest_services: closest_services(&words, known.services),
    };
    let count = count(&text, &words);
    let (range, at) = when(&text, &words, now);
    let environment = environment(&text, &words, known.environments);
    let cluster = cluster(&text, &words, known.clusters);
    let status = status(&text, &words);
    let fingerprint = words
        .iter()
        .find(|w| {
            w.len() == 16
                && w.bytes().all(|b| b.is_ascii_hexdigit())
                && w.bytes().any(|b| b.is_ascii_digit())
        })
        .cloned();
    let alert_name = alert_name(&words, known.alert_names);
    let service = match service(&text, &words, known.services) {
        Ok(s) => s,
        Err(names) => {
            return Err(not_understood(format!(
                "the question could name any of the services {}; name one",
                names.join(", ")
            )));
        }
    };
    let Some(intent) = intent(&text, &words) else {
        return Err(not_understood(
            "no question form matches: ask for an alert's suspects, what failed deployments have in common, a timeline, DORA metrics, resilience, deployments or alerts".into(),
        ));
    };
    let needs_service = match intent {
        Intent::CommonFactors | Intent::Timeline | Intent::Resilience => service.is_none(),
        Intent::Suspects => service.is_none() && fingerprint.is_none() && alert_name.is_none(),
        Intent::Dora | Intent::Deployments | Intent::Alerts => false,
    };
    if needs_service {
        let what = if intent == Intent::Suspects {
            "service, alert name or fingerprint"
        } else {
            "service"
        };
        return Err(not_understood(format!(
            "this is a {} question, and it names no {what} this graph knows",
            intent.as_str().replace('_', " ")
        )));
    }
    // A status filters deployments only ("did we test for pod failures" names none).
    let status = status.filter(|_| matches!(intent, Intent::Deployments | Intent::CommonFactors));
    Ok(Understood {
        intent,
        service,
        environment,
        cluster,
        status,
        range,
        at,
        count,
        alert_name,
        fingerprint,
    })
}

/// The question's runs of ASCII letters, digits, `-`, `_` and `.` (other characters separate
/// them; Chinese text is read by substring).
fn ascii_words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        .map(|w| w.trim_matches(|c| matches!(c, '-' | '_' | '.' | ':')))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn has_word(words: &[String], any: &[&str]) -> bool {
    words.iter().any(|w| any.contains(&w.as_str()))
}

fn has_phrase(text: &str, any: &[&str]) -> bool {
    // Phrases are matched on word boundaries for ASCII, anywhere for Chinese.
    any.iter().any(|p| {
        if p.is_ascii() {
            let padded = format!(" {} ", squash(text));
            padded.contains(&format!(" {p} "))
        } else {
            text.contains(p)
        }
    })
}

/// `text` with every run of non-word characters turned into one space.
fn squash(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '\'' || !c.is_ascii() && !c.is_whitespace() {
            out.push(c);
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    out.trim_end().to_owned()
}

fn intent(text: &str, words: &[String]) -> Option<Intent> {
    let suspects = has_word(
        words,
        &[
            "caused",
            "cause",
            "causes",
            "causing",
            "suspect",
            "suspects",
            "blame",
            "culprit",
            "responsible",
            "broke",
            "triggered",
        ],
    ) || has_phrase(
        text,
        &[
            "root cause",
            "why did",
            "why is",
            "why was",
            "why are",
            "what broke",
            "behind the",
            "导致",
            "引起",
            "造成",
            "原因",
            "根因",
            "罪魁",
            "哪个部署",
            "哪次部署",
            "哪次变更",
            "哪个变更",
        ],
    );
    let common = has_word(words, &["common", "share", "shared", "pattern", "patterns"])
        || has_phrase(text, &["in common", "共性", "共同", "相同点", "共通"]);
    let dora = has_word(words, &["dora", "mttr", "frequency"])
        || has_phrase(
            text,
            &[
                "change failure rate",
                "failure rate",
                "lead time",
                "time to restore",
                "how often",
                "部署频率",
                "变更失败率",
                "失败率",
                "恢复时间",
                "交付周期",
                "前置时间",
            ],
        );
    let resilience = has_word(
        words,
        &[
            "resilience",
            "resilient",
            "chaos",
            "litmus",
            "experiment",
            "experiments",
            "tested",
        ],
    ) || has_phrase(
        text,
        &[
            "ever test",
            "韧性",
            "混沌",
            "测试过",
            "演练",
            "故障注入",
            "容错",
        ],
    );
    let timeline = has_word(words, &["timeline", "history", "happened", "changed"])
        || has_phrase(
            text,
            &[
                "what changed",
                "what happened",
                "changes to",
                "changes in",
                "时间线",
                "发生了什么",
                "变更了什么",
                "改了什么",
                "有哪些变更",
                "有什么变更",
                "变更记录",
                "变化",
            ],
        );
    let alerts = has_word(
        words,
        &[
            "alert",
            "alerts",
            "alerting",
            "firing",
            "paged",
            "pages",
            "incident",
            "incidents",
        ],
    ) || has_phrase(text, &["告警", "报警", "警报"]);
    let deployments = has_word(
        words,
        &[
            "deploy",
            "deploys",
            "deployed",
            "deployment",
            "deployments",
            "release",
            "releases",
            "rollout",
            "rollouts",
            "rollback",
            "rollbacks",
        ],
    ) || has_phrase(text, &["rolled back", "部署", "发布", "上线", "回滚"]);
    // The most specific reading first: a question about what caused an alert mentions
    // deployments and alerts too.
    [
        (suspects && !common, Intent::Suspects),
        (common, Intent::CommonFactors),
        (dora, Intent::Dora),
        (resilience, Intent::Resilience),
        (timeline, Intent::Timeline),
        (alerts, Intent::Alerts),
        (deployments, Intent::Deployments),
    ]
    .into_iter()
    .find_map(|(read, intent)| read.then_some(intent))
}

fn status(text: &str, words: &[String]) -> Option<DeploymentStatus> {
    if has_phrase(text, &["rolled back", "roll back", "回滚"])
        || has_word(words, &["rollback", "rollbacks"])
    {
        Some(DeploymentStatus::RolledBack)
    } else if has_word(
        words,
        &["failed", "failing", "failure", "failures", "broken"],
    ) || text.contains("失败")
    {
        Some(DeploymentStatus::Failed)
    } else if has_word(words, &["succeeded", "successful", "healthy"]) || text.contains("成功") {
        Some(DeploymentStatus::Succeeded)
    } else if has_phrase(text, &["in progress", "rolling out", "进行中"]) {
        Some(DeploymentStatus::InProgress)
    } else {
        None
    }
}

const NUMBER_WORDS: &[(&str, usize)] = &[
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("fifteen", 15),
    ("twenty", 20),
    ("thirty", 30),
];

fn number_word(word: &str) -> Option<usize> {
    word.parse::<usize>().ok().or_else(|| {
        NUMBER_WORDS
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, n)| *n)
    })
}

/// A Chinese number at the start of `text` (一 to 九十九, or digits) and its length in chars.
fn chinese_number(text: &str) -> Option<(usize, usize)> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    if !digits.is_empty() {
        return digits.parse().ok().map(|n| (n, digits.chars().count()));
    }
    let value = |c: char| {
        "零一二三四五六七八九"
            .chars()
            .position(|d| d == c)
            .or((c == '两').then_some(2))
    };
    let chars: Vec<char> = text.chars().take(3).collect();
    match chars.as_slice() {
        [a, '十', b, ..] if value(*a).is_some() && value(*b).is_some() => {
            Some((value(*a)? * 10 + value(*b)?, 3))
        }
        [a, '十', ..] if value(*a).is_some() => Some((value(*a)? * 10, 2)),
        ['十', b, ..] if value(*b).is_some() => Some((10 + value(*b)?, 2)),
        ['十', ..] => Some((10, 1)),
        [a, ..] => value(*a).map(|n| (n, 1)),
        [] => None,
    }
}

const UNITS: &[(&str, i64)] = &[
    ("minute", 60),
    ("minutes", 60),
    ("min", 60),
    ("mins", 60),
    ("m", 60),
    ("hour", 3_600),
    ("hours", 3_600),
    ("hr", 3_600),
    ("hrs", 3_600),
    ("h", 3_600),
    ("day", 86_400),
    ("days", 86_400),
    ("d", 86_400),
    ("week", 604_800),
    ("weeks", 604_800),
    ("w", 604_800),
    ("month", 2_592_000),
    ("months", 2_592_000),
];

const CHINESE_UNITS: &[(&str, i64)] = &[
    ("分钟", 60),
    ("小时", 3_600),
    ("个小时", 3_600),
    ("天", 86_400),
    ("日", 86_400),
    ("周", 604_800),
    ("个星期", 604_800),
    ("星期", 604_800),
    ("个月", 2_592_000),
];

/// "the last three", "latest 5", "最近三次", "前 3 次": a count of items (not a time span).
fn count(text: &str, words: &[String]) -> Option<usize> {
    for (i, w) in words.iter().enumerate() {
        if [
            "last", "latest", "past", "recent", "previous", "top", "first",
        ]
        .contains(&w.as_str())
            && let Some(n) = words.get(i + 1).and_then(|n| number_word(n))
        {
            // "last 6 hours" is a range.
            if words
                .get(i + 2)
                .is_some_and(|u| UNITS.iter().any(|(unit, _)| unit == u))
            {
                continue;
            }
            return Some(n.clamp(1, 100));
        }
    }
    // A number glued to its unit ("6h") is a range, handled there.
    for marker in ["最近", "近", "前", "过去"] {
        for (i, _) in text.match_indices(marker) {
            let rest = text[i + marker.len()..].trim_start();
            if let Some((n, len)) = chinese_number(rest) {
                let after: String = rest.chars().skip(len).collect();
                let after = after.trim_start();
                if after.starts_with('次')
                    || after.starts_with('个')
                        && !after.starts_with("个月")
                        && !after.starts_with("个小时")
                        && !after.starts_with("个星期")
                {
                    return Some(n.clamp(1, 100));
                }
            }
        }
    }
    None
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN))
}

/// An `HH:MM` clock time in `word`, as the latest such instant at or before `now` (today's,
/// or yesterday's when today's is still to come), or on `day`.
fn clock(word: &str, now: DateTime<Utc>, day: Option<NaiveDate>) -> Option<DateTime<Utc>> {
    let (h, m) = word.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.get(..2).unwrap_or(m).parse().ok()?);
    let time = NaiveTime::from_hms_opt(h, m, 0)?;
    if let Some(day) = day {
        return Some(Utc.from_utc_datetime(&day.and_time(time)));
    }
    let today = Utc.from_utc_datetime(&now.date_naive().and_time(time));
    Some(if today > now {
        today - Duration::days(1)
    } else {
        today
    })
}

/// The first `HH:MM` of the text (ASCII digits around a colon) and where it starts.
fn find_clock(text: &str) -> Option<(usize, String)> {
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices(':') {
        let start = (0..i)
            .rev()
            .take_while(|&j| bytes[j].is_ascii_digit())
            .last()?;
        let end = (i + 1..bytes.len())
            .take_while(|&j| bytes[j].is_ascii_digit())
            .last()?;
        if (1..=2).contains(&(i - start)) && end + 1 - (i + 1) == 2 {
            return Some((start, text[start..=end].to_owned()));
        }
    }
    None
}

fn find_date(words: &[String]) -> Option<NaiveDate> {
    words
        .iter()
        .find_map(|w| NaiveDate::parse_from_str(w.get(..10).unwrap_or(w), "%Y-%m-%d").ok())
}

/// English phrases, Chinese phrases, from, to, and how the range is described.
type CalendarSpan<'a> = (
    &'a [&'a str],
    &'a [&'a str],
    DateTime<Utc>,
    DateTime<Utc>,
    &'a str,
);

/// The question's time range and instant.
#[allow(clippy::too_many_lines)] // one table of phrasings, read in order
fn when(
    text: &str,
    words: &[String],
    now: DateTime<Utc>,
) -> (Option<Range>, Option<DateTime<Utc>>) {
    let today = now.date_naive();
    let range = |since: DateTime<Utc>, until: DateTime<Utc>, said: &str| Range {
        since,
        until: until.min(now).max(since),
        said: said.to_owned(),
    };
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let first = today.with_day(1).unwrap_or(today);
    let previous_first = (first - Duration::days(1)).with_day(1).unwrap_or(first);
    let yesterday = today - Duration::days(1);
    let date = find_date(words);
    let clock_at = find_clock(text);
    let day_of_clock = if has_word(words, &["yesterday"]) || text.contains("昨天") {
        Some(yesterday)
    } else if has_word(words, &["today"]) || text.contains("今天") {
        Some(today)
    } else {
        date
    };

    // An instant, or the start of a range ("since 14:00").
    if let Some((start, word)) = &clock_at
        && let Some(t) = clock(word, now, day_of_clock)
    {
        let before = &text[..*start];
        let after = &text[start + word.len()..];
        let since = before.trim_end().ends_with("since")
            || before.trim_end().ends_with("from")
            || before.trim_end().ends_with("after")
            || after.trim_start().starts_with("以来")
            || after.trim_start().starts_with("之后")
            || after.trim_start().starts_with("以后")
            || after.trim_start().starts_with('起')
            || before.ends_with('自')
            || before.ends_with('从');
        if since {
            return (Some(range(t, now, &format!("since {word} UTC"))), None);
        }
        return (None, Some(t));
    }

    // Rolling spans: "last 6 hours", "past 2 days", "last hour", "6h", "最近 6 小时".
    for (i, w) in words.iter().enumerate() {
        let glued = w
            .find(|c: char| !c.is_ascii_digit())
            .filter(|&k| k > 0)
            .and_then(|k| Some((w[..k].parse::<i64>().ok()?, &w[k..])));
        let (n, unit) = match glued {
            Some((n, unit)) => (Some(n), Some(unit.to_owned())),
            None => (
                number_word(w).and_then(|n| i64::try_from(n).ok()),
                words.get(i + 1).cloned(),
            ),
        };
        let prev = i
            .checked_sub(1)
            .and_then(|p| words.get(p))
            .map(String::as_str);
        if let (Some(n), Some(unit)) = (n, unit)
            && let Some((_, secs)) = UNITS.iter().find(|(u, _)| *u == unit)
            && (glued.is_some() || matches!(prev, Some("last" | "past" | "previous" | "recent")))
        {
            let span = Duration::seconds(secs * n.clamp(1, 3_650));
            return (
                Some(range(now - span, now, &format!("the last {n} {unit}"))),
                None,
            );
        }
        if matches!(w.as_str(), "last" | "past" | "previous")
            && let Some(unit) = words.get(i + 1)
            && let Some((_, secs)) = UNITS
                .iter()
                .find(|(u, _)| u == unit && !u.ends_with('s') && u.len() > 1)
        {
            // "last week" and "last month" are the calendar's; "past week" is the last 7 days.
            if w == "last" && unit == "week" {
                return (
                    Some(range(
                        midnight(monday - Duration::days(7)),
                        midnight(monday),
                        "last week (Monday to Monday, UTC)",
                    )),
                    None,
                );
            }
            if w == "last" && unit == "month" {
                return (
                    Some(range(
                        midnight(previous_first),
                        midnight(first),
                        "last month (UTC)",
                    )),
                    None,
                );
            }
            return (
                Some(range(
                    now - Duration::seconds(*secs),
                    now,
                    &format!("the {w} {unit}"),
                )),
                None,
            );
        }
    }
    for marker in ["最近", "过去", "近"] {
        for (i, _) in text.match_indices(marker) {
            let rest = text[i + marker.len()..].trim_start();
            let (n, len) = chinese_number(rest).unwrap_or((1, 0));
            let after: String = rest.chars().skip(len).collect();
            if let Some((unit, secs)) = CHINESE_UNITS
                .iter()
                .find(|(u, _)| after.trim_start().starts_with(u))
            {
                let n = i64::try_from(n).unwrap_or(1).clamp(1, 3_650);
                return (
                    Some(range(
                        now - Duration::seconds(secs * n),
                        now,
                        &format!("{marker}{n}{unit}"),
                    )),
                    None,
                );
            }
        }
    }

    // Calendar days, weeks and months.
    let calendar: [CalendarSpan<'_>; 6] = [
        (
            &["since yesterday"],
            &["昨天以来", "从昨天"],
            midnight(yesterday),
            now,
            "since yesterday (UTC)",
        ),
        (
            &["yesterday"],
            &["昨天", "昨日"],
            midnight(yesterday),
            midnight(today),
            "yesterday (UTC)",
        ),
        (
            &["today", "tonight", "this morning"],
            &["今天", "今日"],
            midnight(today),
            now,
            "today (UTC)",
        ),
        (
            &["this week"],
            &["本周", "这周", "这个星期", "本星期"],
            midnight(monday),
            now,
            "this week (UTC)",
        ),
        (
            &["last week"],
            &["上周", "上个星期", "上星期"],
            midnight(monday - Duration::days(7)),
            midnight(monday),
            "last week (Monday to Monday, UTC)",
        ),
        (
            &["this month"],
            &["本月", "这个月"],
            midnight(first),
            now,
            "this month (UTC)",
        ),
    ];
    for (english, chinese, since, until, said) in calendar {
        if has_phrase(text, english) || chinese.iter().any(|c| text.contains(c)) {
            return (Some(range(since, until, said)), None);
        }
    }
    if has_phrase(text, &["last month"]) || text.contains("上个月") || text.contains("上月") {
        return (
            Some(range(
                midnight(previous_first),
                midnight(first),
                "last month (UTC)",
            )),
            None,
        );
    }
    if let Some(day) = date {
        if has_phrase(text, &["since"]) || text.contains("以来") {
            return (
                Some(range(midnight(day), now, &format!("since {day}"))),
                None,
            );
        }
        return (
            Some(range(
                midnight(day),
                midnight(day + Duration::days(1)),
                &day.to_string(),
            )),
            None,
        );
    }
    (None, None)
}

/// The name in `known` that `word` is, ignoring case.
fn known_name(known: &[String], word: &str) -> Option<String> {
    known.iter().find(|k| k.eq_ignore_ascii_case(word)).cloned()
}

fn environment(text: &str, words: &[String], known: &[String]) -> Option<String> {
    let is_known = |e: &str| known_name(known, e);
    if let Some(e) = words.iter().find_map(|w| is_known(w)) {
        return Some(e);
    }
    let aliases: [(&[&str], &[&str], &[&str]); 4] = [
        (
            &["prod", "production", "prd"],
            &["生产", "线上"],
            &["production", "prod", "prd"],
        ),
        (
            &["staging", "stage", "stg", "preprod"],
            &["预发", "预生产", "灰度"],
            &["staging", "stage", "stg", "preprod"],
        ),
        (
            &["dev", "development"],
            &["开发环境"],
            &["development", "dev"],
        ),
        (
            &["test", "testing", "qa"],
            &["测试环境"],
            &["test", "testing", "qa"],
        ),
    ];
    for (english, chinese, targets) in aliases {
        if has_word(words, english) || chinese.iter().any(|c| text.contains(c)) {
            return targets.iter().find_map(|t| is_known(t));
        }
    }
    None
}

/// The cluster a question names: a known cluster's name as a word next to "cluster" (or
/// "集群" after it), or any known cluster's name as a word but `default`, which is also a
/// common word.
fn cluster(text: &str, words: &[String], known: &[String]) -> Option<String> {
    let is_known = |w: &str| known_name(known, w);
    let marker = |w: &String| matches!(w.as_str(), "cluster" | "clusters");
    for (i, w) in words.iter().enumerate() {
        let beside = (i > 0 && marker(&words[i - 1])) || words.get(i + 1).is_some_and(marker);
        if let Some(name) = is_known(w)
            && (beside || !name.eq_ignore_ascii_case("default"))
        {
            return Some(name);
        }
    }
    // "在 eu-1 集群" / "eu-1集群": the ASCII word just before 集群.
    let before = text.split("集群").next().filter(|b| b.len() < text.len())?;
    ascii_words(before).last().and_then(|w| is_known(w))
}

fn alert_name(words: &[String], known: &[String]) -> Option<String> {
    words.iter().find_map(|w| {
        known
            .iter()
            .find(|k| k.len() > 3 && normalise(k) == normalise(w))
            .cloned()
    })
}

/// A name for comparison: lower case, without `-`, `_`, `.` and spaces.
fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Words of the question forms themselves: never read as a misspelled service name.
const VOCABULARY: &[&str] = &[
    "alert",
    "alerts",
    "alerting",
    "about",
    "after",
    "all",
    "and",
    "any",
    "are",
    "been",
    "before",
    "behind",
    "blame",
    "cause",
    "caused",
    "causes",
    "change",
    "changed",
    "changes",
    "chaos",
    "common",
    "culprit",
    "day",
    "days",
    "deploy",
    "deployed",
    "deployment",
    "deployments",
    "deploys",
    "did",
    "does",
    "dora",
    "ever",
    "experiment",
    "failed",
    "failing",
    "failure",
    "failures",
    "fire",
    "fired",
    "firing",
    "for",
    "from",
    "frequency",
    "happened",
    "has",
    "have",
    "history",
    "hour",
    "hours",
    "incident",
    "incidents",
    "last",
    "latest",
    "list",
    "metrics",
    "minutes",
    "month",
    "past",
    "rate",
    "recent",
    "release",
    "releases",
    "resilience",
    "rollback",
    "rollbacks",
    "rollout",
    "rollouts",
    "service",
    "services",
    "share",
    "shared",
    "show",
    "since",
    "staging",
    "production",
    "suspect",
    "suspects",
    "tested",
    "that",
    "the",
    "their",
    "them",
    "this",
    "time",
    "timeline",
    "today",
    "week",
    "what",
    "when",
    "which",
    "while",
    "why",
    "with",
    "yesterday",
    "root",
    "test",
    "testing",
    "lead",
    "restore",
    "three",
    "five",
    "seven",
    "were",
    "was",
    "tell",
    "give",
    "me",
    "our",
    "we",
];

/// The service the question names: `Ok(None)` for none, `Err(names)` when it could be several.
fn service(
    text: &str,
    words: &[String],
    known: &[String],
) -> Result<Option<ServiceMatch>, Vec<String>> {
    let norm: Vec<(String, &String)> = known.iter().map(|k| (normalise(k), k)).collect();
    // Exact: the longest run of one to three words that is a service's name.
    let mut best: Option<(usize, ServiceMatch)> = None;
    for len in (1..=3).rev() {
        for run in words.windows(len) {
            let joined = run.concat();
            let said = run.join(" ");
            let n = normalise(&joined);
            if let Some((_, name)) = norm.iter().find(|(k, _)| *k == n)
                && best.as_ref().is_none_or(|(l, _)| n.len() > *l)
            {
                best = Some((
                    n.len(),
                    ServiceMatch {
                        name: (*name).clone(),
                        said,
                        how: MatchKind::Exact,
                    },
                ));
            }
        }
    }
    if let Some((_, m)) = best {
        return Ok(Some(m));
    }
    // The glossary: a Chinese word whose stems start exactly one service's name.
    for (word, stems) in GLOSSARY {
        if !text.contains(word) {
            continue;
        }
        let mut fits: Vec<&String> = norm
            .iter()
            .filter(|(k, _)| {
                stems
                    .iter()
                    .any(|s| k.starts_with(s) || s.len() >= 4 && k.contains(s))
            })
            .map(|(_, name)| *name)
            .collect();
        fits.dedup();
        match fits.as_slice() {
            [] => {}
            [one] => {
                return Ok(Some(ServiceMatch {
                    name: (*one).clone(),
                    said: (*word).to_owned(),
                    how: MatchKind::Glossary,
                }));
            }
            many => {
                // A stem that is a whole name wins ("payments" beside "payments-worker").
                let whole: Vec<&&String> = many
                    .iter()
                    .filter(|n| {
                        stems
                            .iter()
                            .any(|s| normalise(n) == *s || normalise(n) == format!("{s}s"))
                    })
                    .collect();
                if let [one] = whole.as_slice() {
                    return Ok(Some(ServiceMatch {
                        name: (**one).clone(),
                        said: (*word).to_owned(),
                        how: MatchKind::Glossary,
                    }));
                }
                return Err(many.iter().map(|n| (*n).clone()).collect());
            }
        }
    }
    // A small misspelling of one service's name (not a word of the forms).
    let mut spelled: Vec<(usize, &String, String)> = Vec::new();
    for len in 1..=2 {
        for run in words.windows(len).take(200) {
            if run
                .iter()
                .all(|w| VOCABULARY.contains(&w.as_str()) || w.len() < 3)
            {
                continue;
            }
            let n = normalise(&run.concat());
            if n.len() < 4 || n.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            for (k, name) in &norm {
                let limit = if k.len() >= 8 { 2 } else { 1 };
                if n.len().abs_diff(k.len()) > limit {
                    continue;
                }
                let d = distance(&n, k);
                if d <= limit {
                    spelled.push((d, name, run.join(" ")));
                }
            }
        }
    }
    spelled.sort_by_key(|(d, name, _)| (*d, (*name).clone()));
    let Some((d, name, said)) = spelled.first().cloned() else {
        return Ok(None);
    };
    let mut rivals: Vec<String> = spelled
        .iter()
        .filter(|(d2, n, _)| *d2 == d && *n != name)
        .map(|(_, n, _)| (*n).clone())
        .collect();
    if rivals.is_empty() {
        Ok(Some(ServiceMatch {
            name: name.clone(),
            said,
            how: MatchKind::Spelling,
        }))
    } else {
        rivals.insert(0, name.clone());
        rivals.dedup();
        Err(rivals)
    }
}

/// The services whose names are nearest to any word of the question (at most five).
fn closest_services(words: &[String], known: &[String]) -> Vec<String> {
    // At most 40 words of at most 40 characters: bounded work whatever the question.
    let mut said: Vec<String> = words
        .iter()
        .flat_map(|w| std::iter::once(w.as_str()).chain(w.split(['-', '_', '.'])))
        .filter(|w| (3..=40).contains(&w.len()) && !VOCABULARY.contains(w))
        .map(normalise)
        .collect();
    said.dedup();
    said.truncate(40);
    let mut scored: Vec<(usize, &String)> = known
        .iter()
        .map(|k| {
            let n = normalise(k);
            let d = said
                .iter()
                .map(|w| distance(w, &n))
                .min()
                .unwrap_or(usize::MAX);
            (d, k)
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, k)| k.clone()).collect()
}

/// Damerau-Levenshtein distance (optimal string alignment) of two short strings.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len() > 64 || b.len() > 64 {
        return a.len().abs_diff(b.len()).max(64);
    }
    let mut d = vec![vec![0_usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_count_one_edit_per_typo() {
        assert_eq!(distance("checkout", "checkout"), 0);
        assert_eq!(distance("chekcout", "checkout"), 1);
        assert_eq!(distance("checkot", "checkout"), 1);
        assert_eq!(distance("payment", "payments"), 1);
        assert_eq!(distance("cart", "catalog"), 5);
    }

    #[test]
    fn chinese_numbers_read_up_to_ninety_nine() {
        assert_eq!(chinese_number("三次"), Some((3, 1)));
        assert_eq!(chinese_number("两次"), Some((2, 1)));
        assert_eq!(chinese_number("十次"), Some((10, 1)));
        assert_eq!(chinese_number("十二次"), Some((12, 2)));
        assert_eq!(chinese_number("二十次"), Some((20, 2)));
        assert_eq!(chinese_number("三十五"), Some((35, 3)));
        assert_eq!(chinese_number("12次"), Some((12, 2)));
        assert_eq!(chinese_number("次"), None);
    }
}
