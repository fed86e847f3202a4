//! Validated newtypes. Construct them with `parse`; once built they are known to be well-formed.

use crate::error::{Error, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest service name or namespace (a DNS-1123 label).
pub const NAME_MAX_LEN: usize = 63;
/// A DNS-1123 label, as the schema declares it (length apart: [`NAME_MAX_LEN`]).
pub const SERVICE_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A namespace in a request: a DNS-1123 label, or empty for none.
pub const NAMESPACE_PATTERN: &str = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$";
/// Longest environment name.
pub const ENVIRONMENT_MAX_LEN: usize = 253;
/// An environment name: `A-Za-z0-9._-` segments separated by single `/`.
pub const ENVIRONMENT_PATTERN: &str = "^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$";
/// Longest cluster name.
pub const CLUSTER_MAX_LEN: usize = 63;
/// A cluster name: 1–63 of `A-Za-z0-9._-`, starting and ending with a letter or digit.
pub const CLUSTER_PATTERN: &str = "^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$";
/// An OCI image digest.
pub const DIGEST_PATTERN: &str = "^sha256:[0-9a-f]{64}$";
/// A git commit SHA.
pub const COMMIT_SHA_PATTERN: &str = "^[0-9a-fA-F]{7,40}$";

/// A service name: a DNS-1123 label (1–63 of `a-z0-9-`, starting and ending alphanumeric).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl ServiceName {
    /// Validates a service name.
    ///
    /// # Errors
    /// When `value` is not a DNS-1123 label.
    pub fn parse(value: &str) -> Result<Self> {
        if is_dns1123_label(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::new(
                "",
                format!(
                    "{value:?} is not a DNS-1123 label (1-63 lower-case letters, digits or '-', \
                     starting and ending with a letter or digit)"
                ),
            ))
        }
    }

    /// The service name a producer's own spelling (`myApp`, `Payments_API`) stands for:
    /// lower-cased, each run of other characters than `a-z0-9` turned into one `-`, leading
    /// and trailing `-` dropped, cut to 63 characters. `None` when nothing is left.
    pub fn normalize(value: &str) -> Option<Self> {
        let mut out = String::with_capacity(value.len().min(63));
        let mut dash = false;
        for c in value.chars() {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                let separator = dash && !out.is_empty();
                if out.len() + usize::from(separator) + 1 > 63 {
                    break;
                }
                if separator {
                    out.push('-');
                }
                dash = false;
                out.push(c);
            } else {
                dash = true;
            }
        }
        Self::parse(&out).ok()
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `value` is a DNS-1123 label.
pub fn is_dns1123_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= NAME_MAX_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A deployment environment name (`production`, `staging-eu`), or a path of such names
/// (`prod/eu/cluster-a`, as CDEvents producers name environments): 1–253 of `A-Za-z0-9._-/`,
/// where `/` only separates non-empty segments. The whole path is the name: `prod/eu/cluster-a`
/// and `staging/eu/cluster-a` are different environments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Environment(String);

impl Environment {
    /// The longest environment name.
    pub const MAX_LEN: usize = ENVIRONMENT_MAX_LEN;

    /// Validates an environment name.
    ///
    /// # Errors
    /// When `value` is empty, longer than 253 characters, has other characters, or an empty
    /// path segment.
    pub fn parse(value: &str) -> Result<Self> {
        let ok = !value.is_empty()
            && value.len() <= ENVIRONMENT_MAX_LEN
            && value.split('/').all(|segment| {
                !segment.is_empty()
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            });
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::new(
                "",
                format!(
                    "{value:?} is not an environment name (1-253 of A-Z a-z 0-9 . _ -, \
                     with / between non-empty segments)"
                ),
            ))
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The Kubernetes cluster a service runs in (`eu-west-1`, `prod.us-east`): 1–63 of
/// `A-Za-z0-9._-`, starting and ending with a letter or digit. Data recorded before clusters
/// were told apart, and every source that does not name one, is in [`Cluster::DEFAULT`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cluster(String);

impl Cluster {
    /// The cluster of everything that does not name one.
    pub const DEFAULT: &'static str = "default";

    /// Validates a cluster name.
    ///
    /// # Errors
    /// When `value` is empty, longer than 63 characters, has other characters, or starts or
    /// ends with `.`, `_` or `-`.
    pub fn parse(value: &str) -> Result<Self> {
        let bytes = value.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= CLUSTER_MAX_LEN
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::new(
                "",
                format!(
                    "{value:?} is not a cluster name (1-63 of A-Z a-z 0-9 . _ -, starting and \
                     ending with a letter or digit)"
                ),
            ))
        }
    }

    /// The cluster a field names, [`Cluster::DEFAULT`] when it is absent.
    ///
    /// # Errors
    /// An invalid (or empty) name, as an error at `field`.
    pub fn parse_field(value: Option<&str>, field: &str) -> Result<Self> {
        match value {
            Some(v) => Self::parse(v).map_err(|e| Error::new(field, e.message)),
            None => Ok(Self::default()),
        }
    }

    /// The part a derived uid gets from the cluster: none in [`Cluster::DEFAULT`] (the uids
    /// recorded before clusters were told apart), the name in any other.
    pub fn uid_part(&self) -> Option<&str> {
        (!self.is_default()).then_some(self.0.as_str())
    }

    /// Whether this is [`Cluster::DEFAULT`].
    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

/// An OCI image digest: `sha256:` followed by 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageDigest(String);

impl ImageDigest {
    /// Validates a digest.
    ///
    /// # Errors
    /// When `value` is not `sha256:<64 hex>`.
    pub fn parse(value: &str) -> Result<Self> {
        match value.strip_prefix("sha256:") {
            Some(hex) if hex.len() == 64 && hex.bytes().all(is_lower_hex) => {
                Ok(Self(value.to_owned()))
            }
            _ => Err(Error::new(
                "",
                format!(
                    "{value:?} is not an image digest (sha256: followed by 64 lower-case hex digits)"
                ),
            )),
        }
    }

    /// The digest as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A git commit SHA: 7 to 40 hex digits, stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommitSha(String);

impl CommitSha {
    /// Validates a commit SHA and lower-cases it.
    ///
    /// # Errors
    /// When `value` is not 7–40 hex digits.
    pub fn parse(value: &str) -> Result<Self> {
        if (7..=40).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(value.to_ascii_lowercase()))
        } else {
            Err(Error::new(
                "",
                format!("{value:?} is not a commit SHA (7 to 40 hex digits)"),
            ))
        }
    }

    /// The SHA as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// Parses an RFC 3339 time (with a zone offset) into UTC.
///
/// # Errors
/// When `value` is not RFC 3339.
pub fn parse_time(value: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::new("", format!("{value:?} is not an RFC 3339 time: {e}")))
}

/// Formats a time the way deploygraph writes times everywhere: RFC 3339, UTC, `Z`, with
/// sub-second digits only when present.
pub fn format_time(value: &DateTime<Utc>) -> String {
    value.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

macro_rules! string_newtype_impls {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                Self::parse(&value)
            }
        }
        impl From<$t> for String {
            fn from(value: $t) -> String {
                value.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
string_newtype_impls!(ServiceName, Environment, Cluster, ImageDigest, CommitSha);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_default_to_default_and_refuse_what_they_cannot_name() {
        assert!(Cluster::default().is_default());
        assert_eq!(
            Cluster::parse_field(None, "cluster").ok(),
            Some(Cluster::default())
        );
        let eu = Cluster::parse_field(Some("eu-west-1.prod"), "cluster").expect("a cluster");
        assert!(!eu.is_default());
        for bad in ["", "-eu", "eu_", "eu west", "é", &"a".repeat(64)] {
            let e = Cluster::parse_field(Some(bad), "target.cluster").expect_err("refused");
            assert_eq!(e.field, "target.cluster", "{bad:?}");
        }
        assert!(Cluster::parse(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn service_names_follow_dns_1123() {
        for ok in ["payments", "a", "api-gateway-2", &"a".repeat(63)] {
            assert!(ServiceName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Payments",
            "-api",
            "api-",
            "api_gw",
            "a.b",
            &"a".repeat(64),
        ] {
            assert!(ServiceName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests_need_sha256_and_64_lower_hex() {
        let hex = "a".repeat(64);
        assert!(ImageDigest::parse(&format!("sha256:{hex}")).is_ok());
        assert!(ImageDigest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(ImageDigest::parse(&format!("sha512:{hex}")).is_err());
        assert!(ImageDigest::parse(&format!("sha256:{}", "a".repeat(63))).is_err());
        assert!(ImageDigest::parse("sha256:").is_err());
    }

    #[test]
    fn commit_shas_are_7_to_40_hex_and_lower_cased() {
        assert_eq!(
            CommitSha::parse("ABCDEF1").map(String::from),
            Ok("abcdef1".to_owned())
        );
        assert!(CommitSha::parse("abcdef").is_err());
        assert!(CommitSha::parse(&"a".repeat(41)).is_err());
        assert!(CommitSha::parse("abcdefg").is_err());
    }

    #[test]
    fn times_must_carry_an_offset_and_become_utc() {
        let t = parse_time("2026-11-20T12:05:00+02:00").expect("valid time");
        assert_eq!(format_time(&t), "2026-11-20T10:05:00Z");
        assert!(parse_time("2026-11-20 10:05:00").is_err());
        assert!(parse_time("2026-11-20T10:05:00").is_err());
    }

    #[test]
    fn environments_allow_dots_and_underscores() {
        assert!(Environment::parse("prod_eu.1").is_ok());
        assert!(Environment::parse("").is_err());
        assert!(Environment::parse("prod eu").is_err());
    }

    #[test]
    fn environment_paths_are_kept_whole() {
        let a = Environment::parse("prod/eu/cluster-a").expect("a path");
        let b = Environment::parse("staging/eu/cluster-a").expect("a path");
        assert_eq!(a.as_str(), "prod/eu/cluster-a");
        assert_ne!(a, b);
        assert!(Environment::parse(&"a".repeat(253)).is_ok());
        for bad in [
            "/prod",
            "prod/",
            "prod//eu",
            "/",
            "prod/e u",
            "prod\\eu",
            &"a".repeat(254),
        ] {
            assert!(Environment::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_names_are_normalized_from_a_producers_spelling() {
        let cases = [
            ("mySubject123", Some("mysubject123")),
            ("myApp", Some("myapp")),
            ("Payments_API", Some("payments-api")),
            ("--a..b--", Some("a-b")),
            ("payments", Some("payments")),
            ("caf\u{e9}-bar", Some("caf-bar")),
            ("___", None),
            ("", None),
        ];
        for (raw, want) in cases {
            assert_eq!(
                ServiceName::normalize(raw)
                    .as_ref()
                    .map(ServiceName::as_str),
                want,
                "{raw}"
            );
        }
        let long = ServiceName::normalize(&format!("{}-{}", "a".repeat(62), "b".repeat(10)))
            .expect("cut to a label");
        assert_eq!(long.as_str(), "a".repeat(62));
    }
}
