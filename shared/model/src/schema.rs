//! The wire contract of validated values, as OpenAPI schemas built from the validators' own
//! constants: the API's document cannot declare one rule while the code enforces another.
//!
//! Each newtype ([`ServiceName`], [`Environment`], [`ImageDigest`], [`CommitSha`]) is its own
//! schema component. Uids that a request may name are [`DeploymentUid`] and [`ChaosRunUid`];
//! input times are [`InputTime`] (RFC 3339 within [`check_time`]'s range).

use crate::error::{Error, Result};
use crate::newtypes::{
    CLUSTER_MAX_LEN, CLUSTER_PATTERN, COMMIT_SHA_PATTERN, Cluster, CommitSha, DIGEST_PATTERN,
    ENVIRONMENT_MAX_LEN, ENVIRONMENT_PATTERN, Environment, ImageDigest, NAME_MAX_LEN,
    NAMESPACE_PATTERN, SERVICE_NAME_PATTERN, ServiceName, parse_time,
};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use std::borrow::Cow;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// The earliest input time accepted: nothing deploygraph records happened before.
pub fn earliest_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// How far ahead of the server's clock an input time may be (clock skew, time zones).
pub const MAX_TIME_AHEAD: Duration = Duration::days(1);

/// Checks that `t` lies between 2000-01-01 and a day after `now`.
///
/// # Errors
/// An error (without a field; callers add it) saying which bound was crossed.
pub fn check_time(t: DateTime<Utc>, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if t < earliest_time() {
        return Err(Error::new(
            "",
            format!("{} is before 2000-01-01", crate::newtypes::format_time(&t)),
        ));
    }
    if t > now + MAX_TIME_AHEAD {
        return Err(Error::new(
            "",
            format!(
                "{} is more than a day in the future",
                crate::newtypes::format_time(&t)
            ),
        ));
    }
    Ok(t)
}

/// Parses an input time: RFC 3339 with an offset, within [`check_time`]'s range.
///
/// # Errors
/// An error naming `field`.
pub fn parse_input_time(field: &str, value: &str) -> Result<DateTime<Utc>> {
    parse_time(value)
        .and_then(|t| check_time(t, Utc::now()))
        .map_err(|e| Error::new(field, e.message))
}

fn string_schema(description: &str, pattern: &str, max_length: Option<usize>) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .pattern(Some(pattern))
            .min_length(Some(1))
            .max_length(max_length)
            .build(),
    )
}

macro_rules! string_schema {
    ($t:ty, $name:literal, $description:expr, $pattern:expr, $max:expr) => {
        impl PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                RefOr::T(string_schema($description, $pattern, $max))
            }
        }
        impl ToSchema for $t {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

string_schema!(
    ServiceName,
    "ServiceName",
    "A service name: a DNS-1123 label.",
    SERVICE_NAME_PATTERN,
    Some(NAME_MAX_LEN)
);
string_schema!(
    Environment,
    "Environment",
    "An environment name (production, staging-eu).",
    ENVIRONMENT_PATTERN,
    Some(ENVIRONMENT_MAX_LEN)
);
string_schema!(
    Cluster,
    "Cluster",
    "A cluster name (eu-west-1): 1-63 of A-Z a-z 0-9 . _ -, starting and ending with a letter or digit; `default` when a source names none.",
    CLUSTER_PATTERN,
    Some(CLUSTER_MAX_LEN)
);
string_schema!(
    ImageDigest,
    "ImageDigest",
    "An OCI image digest: sha256 and 64 lower-case hex digits.",
    DIGEST_PATTERN,
    None
);
string_schema!(
    CommitSha,
    "CommitSha",
    "A git commit SHA: 7 to 40 hex digits.",
    COMMIT_SHA_PATTERN,
    None
);

/// A Kubernetes namespace as a request names it: a DNS-1123 label, or empty for none.
pub struct Namespace;

impl PartialSchema for Namespace {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "A namespace: a DNS-1123 label; empty is the same as absent.",
                ))
                .pattern(Some(NAMESPACE_PATTERN))
                .max_length(Some(NAME_MAX_LEN))
                .build(),
        ))
    }
}

impl ToSchema for Namespace {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Namespace")
    }
}

/// Longest alert fingerprint.
pub const FINGERPRINT_MAX_LEN: usize = 128;
/// An alert fingerprint: URL-safe, so that it can name the alert in a path.
pub const FINGERPRINT_PATTERN: &str = "^[A-Za-z0-9._~:-]+$";

/// Whether `value` is an alert fingerprint ([`FINGERPRINT_PATTERN`], at most
/// [`FINGERPRINT_MAX_LEN`]).
pub fn is_fingerprint(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= FINGERPRINT_MAX_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b':' | b'-'))
}

/// An alert fingerprint (Alertmanager's are 16 hex digits).
pub struct Fingerprint;

impl PartialSchema for Fingerprint {
    fn schema() -> RefOr<Schema> {
        RefOr::T(string_schema(
            "An alert fingerprint: letters, digits and . _ ~ : -",
            FINGERPRINT_PATTERN,
            Some(FINGERPRINT_MAX_LEN),
        ))
    }
}

impl ToSchema for Fingerprint {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Fingerprint")
    }
}

/// An alert's labels: strings, `alertname` required and not empty.
pub fn alert_labels() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "alertname",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1)),
            )
            .required("alertname")
            .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build(),
    )
}

/// The uid of a deployment, as a request names it.
pub struct DeploymentUid;

impl PartialSchema for DeploymentUid {
    fn schema() -> RefOr<Schema> {
        RefOr::T(string_schema(
            "A deployment's uid (deployment-, k8s-rollout- or helm-release- and 32 hex digits).",
            &crate::uid::Uid::deployment_pattern(),
            None,
        ))
    }
}

impl ToSchema for DeploymentUid {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DeploymentUid")
    }
}

/// The uid of a chaos run, as a request names it.
pub struct ChaosRunUid;

impl PartialSchema for ChaosRunUid {
    fn schema() -> RefOr<Schema> {
        RefOr::T(string_schema(
            "A chaos run's uid (chaos-run- and 32 hex digits).",
            &crate::uid::Uid::pattern(crate::uid::CHAOS_RUN_PREFIX),
            None,
        ))
    }
}

impl ToSchema for ChaosRunUid {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ChaosRunUid")
    }
}

/// An input time: RFC 3339 with an offset, from 2000-01-01 to a day ahead of the server.
///
/// The pattern spells out the calendar (month lengths, leap days) so that every string it
/// matches is accepted. It is built when the document is served and ends the day before:
/// with any offset, such a time is inside [`check_time`]'s range, while a time the pattern
/// misses by a day may still be accepted (JSON Schema cannot say "a day after now").
pub struct InputTime;

impl PartialSchema for InputTime {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .description(Some(
                    "RFC 3339 time with an offset, from 2000-01-01 to a day after the server's \
                     clock.",
                ))
                .pattern(Some(time_pattern(Utc::now())))
                .build(),
        ))
    }
}

impl ToSchema for InputTime {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("InputTime")
    }
}

/// Alertmanager's `endsAt`: an [`InputTime`], or Go's zero time that firing alerts carry.
pub struct AlertEndTime;

/// Go's zero time, Alertmanager's `endsAt` of firing alerts.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl PartialSchema for AlertEndTime {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "RFC 3339 time as InputTime, or 0001-01-01T00:00:00Z (still firing), or \
                     empty.",
                ))
                .pattern(Some(format!(
                    "^$|^{}$|{}",
                    regex_escape(ZERO_TIME),
                    time_pattern(Utc::now())
                )))
                .build(),
        ))
    }
}

impl ToSchema for AlertEndTime {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AlertEndTime")
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escape = matches!(c, '.' | '+' | '*' | '?' | '(' | ')' | '[' | ']' | '^' | '$');
            escape.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}

const DAYS_28: &str = "(0[1-9]|1[0-9]|2[0-8])";
const DAYS_30: &str = "(0[1-9]|[12][0-9]|30)";
const DAYS_31: &str = "(0[1-9]|[12][0-9]|3[01])";
const CLOCK: &str = "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// The month-day alternatives of a whole year (leap days are listed on their own).
fn whole_year() -> String {
    format!("((0[13578]|1[02])-{DAYS_31}|(0[469]|11)-{DAYS_30}|02-{DAYS_28})")
}

fn month_days(month: u32) -> &'static str {
    match month {
        2 => DAYS_28,
        4 | 6 | 9 | 11 => DAYS_30,
        _ => DAYS_31,
    }
}

/// A regular expression for RFC 3339 times dated 2000-01-02 to the day before `now` (UTC).
pub fn time_pattern(now: DateTime<Utc>) -> String {
    let last = now.date_naive().pred_opt().unwrap_or(now.date_naive());
    let first = NaiveDate::from_ymd_opt(2000, 1, 2).unwrap_or(last);
    let mut dates = Vec::new();
    // 2000 without its first day.
    if last.year() > 2000 {
        dates.push(format!(
            "2000-(01-(0[2-9]|[12][0-9]|3[01])|(0[3578]|1[02])-{DAYS_31}|(0[469]|11)-{DAYS_30}|02-{DAYS_28})"
        ));
        let years: Vec<String> = (2001..last.year()).map(|y| y.to_string()).collect();
        if !years.is_empty() {
            dates.push(format!("({})-{}", years.join("|"), whole_year()));
        }
    }
    // The last year, month by month up to its last day.
    let year = last.year();
    for month in 1..=last.month() {
        if year == 2000 && month == 1 && last < first {
            break;
        }
        let days = if month == last.month() {
            let from = if year == 2000 && month == 1 { 2 } else { 1 };
            let list: Vec<String> = (from..=last.day()).map(|d| format!("{d:02}")).collect();
            format!("({})", list.join("|"))
        } else if year == 2000 && month == 1 {
            "(0[2-9]|[12][0-9]|3[01])".to_owned()
        } else {
            month_days(month).to_owned()
        };
        dates.push(format!("{year}-{month:02}-{days}"));
    }
    // Leap days before the last date.
    let leap_days_year = if last.month() > 2 || (last.month() == 2 && last.day() == 29) {
        year
    } else {
        year - 1
    };
    let leap: Vec<String> = (2000..=leap_days_year)
        .filter(|y| NaiveDate::from_ymd_opt(*y, 2, 29).is_some())
        .map(|y| y.to_string())
        .collect();
    if !leap.is_empty() {
        dates.push(format!("({})-02-29", leap.join("|")));
    }
    format!("^({}){CLOCK}", dates.join("|"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::newtypes::{ENVIRONMENT_PATTERN, is_dns1123_label};
    use regex::Regex;

    fn re(pattern: &str) -> Regex {
        Regex::new(pattern).unwrap()
    }

    /// Strings around the edges of the name rules.
    fn samples() -> Vec<String> {
        let mut out: Vec<String> = [
            "",
            "a",
            "0",
            "-",
            "a-",
            "-a",
            "a-b",
            "A",
            "aB",
            "a.b",
            "a_b",
            "a_",
            "_a",
            "a.",
            "eu-west-1.prod",
            "a b",
            "a\n",
            "\na",
            "é",
            "payments",
            "api-gateway-2",
            "prod_eu.1",
            "..",
            "sha256:",
            "abcdef1",
            "ABCDEF12",
            "abcdefg",
            "a1b2c3d4",
            "fp:1~x",
            "fp/1",
            "a%2F",
            "x/../../y",
            "a\u{0}",
            "prod/eu/cluster-a",
            "/prod",
            "prod/",
            "prod//eu",
            "/",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for n in [6, 7, 40, 41, 62, 63, 64, 65, 128, 129, 253, 254] {
            out.push("a".repeat(n));
            out.push("F".repeat(n));
            out.push(format!("sha256:{}", "a".repeat(n)));
        }
        out
    }

    #[test]
    fn the_declared_patterns_accept_exactly_what_the_validators_accept() {
        let name = re(SERVICE_NAME_PATTERN);
        let env = re(ENVIRONMENT_PATTERN);
        let digest = re(DIGEST_PATTERN);
        let cluster = re(CLUSTER_PATTERN);
        let sha = re(COMMIT_SHA_PATTERN);
        let fingerprint = re(FINGERPRINT_PATTERN);
        let namespace = re(NAMESPACE_PATTERN);
        let run = re(&crate::uid::Uid::pattern(crate::uid::CHAOS_RUN_PREFIX));
        for s in samples() {
            let len = s.chars().count();
            assert_eq!(
                name.is_match(&s) && len <= NAME_MAX_LEN,
                ServiceName::parse(&s).is_ok(),
                "{s:?}"
            );
            assert_eq!(
                namespace.is_match(&s) && len <= NAME_MAX_LEN,
                s.is_empty() || is_dns1123_label(&s),
                "{s:?}"
            );
            assert_eq!(
                env.is_match(&s) && len <= ENVIRONMENT_MAX_LEN,
                Environment::parse(&s).is_ok(),
                "{s:?}"
            );
            assert_eq!(
                cluster.is_match(&s) && len <= CLUSTER_MAX_LEN,
                crate::Cluster::parse(&s).is_ok(),
                "{s:?}"
            );
            assert_eq!(digest.is_match(&s), ImageDigest::parse(&s).is_ok(), "{s:?}");
            assert_eq!(sha.is_match(&s), CommitSha::parse(&s).is_ok(), "{s:?}");
            assert_eq!(
                fingerprint.is_match(&s) && len <= FINGERPRINT_MAX_LEN,
                is_fingerprint(&s),
                "{s:?}"
            );
            assert_eq!(
                run.is_match(&s),
                crate::uid::Uid::parse_derived(crate::uid::CHAOS_RUN_PREFIX, &s).is_ok(),
                "{s:?}"
            );
        }
        let uid = crate::uid::Uid::derive(crate::uid::CHAOS_RUN_PREFIX, &["x"]);
        assert!(run.is_match(uid.as_str()));
    }

    #[test]
    fn times_before_2000_or_more_than_a_day_ahead_are_refused() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        let t = |s: &str| parse_time(s).unwrap();
        assert!(check_time(t("0498-08-21T00:00:00Z"), now).is_err());
        assert!(check_time(t("1999-12-31T23:59:59Z"), now).is_err());
        assert!(check_time(t("2000-01-01T00:00:00Z"), now).is_ok());
        assert!(check_time(t("2026-12-03T12:00:00Z"), now).is_ok());
        assert!(check_time(t("2026-12-03T12:00:01Z"), now).is_err());
        assert!(check_time(t("9999-12-31T23:59:59Z"), now).is_err());
        let e = parse_input_time("started_at", "9999-12-31T00:00:00Z").unwrap_err();
        assert_eq!(e.field, "started_at");
    }

    /// Every time the pattern matches is accepted, whatever its offset; the days it leaves out
    /// are only the first of 2000 and from today on.
    #[test]
    fn every_time_the_pattern_matches_is_in_range() {
        for now in [
            Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 1).unwrap(),
            Utc.with_ymd_and_hms(2028, 3, 1, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 0).unwrap(),
        ] {
            let pattern = re(&time_pattern(now));
            let mut day = NaiveDate::from_ymd_opt(1999, 12, 30).unwrap();
            let end = now.date_naive() + Duration::days(3);
            while day <= end {
                for (clock, offset) in [
                    ("00:00:00", "+23:59"),
                    ("23:59:59.5", "-23:59"),
                    ("12:00:00", "Z"),
                ] {
                    let text = format!("{}T{clock}{offset}", day.format("%Y-%m-%d"));
                    let t = parse_time(&text).unwrap();
                    if pattern.is_match(&text) {
                        assert!(check_time(t, now).is_ok(), "{text} at {now}");
                    }
                    let inside = day > NaiveDate::from_ymd_opt(2000, 1, 1).unwrap()
                        && day < now.date_naive();
                    assert_eq!(pattern.is_match(&text), inside, "{text} at {now}");
                }
                day += Duration::days(1);
            }
            for bad in [
                "2026-02-30T00:00:00Z",
                "2025-02-29T00:00:00Z",
                "2026-11-20 10:00:00Z",
                "2026-11-20T10:00:00",
                "2026-11-20T24:00:00Z",
                "2026-11-20T10:00:00Z\n",
            ] {
                assert!(!pattern.is_match(bad), "{bad}");
            }
        }
    }
}
