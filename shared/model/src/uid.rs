//! Deterministic node identities.
//!
//! A uid is `<prefix>-<32 hex>`: the first 128 bits of SHA-256 over the label and the parts
//! of the source's identity, each separated by a NUL byte so that `("ab","c")` and `("a","bc")`
//! differ. The same fact always gets the same uid, which makes `MERGE` on `uid` idempotent.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The prefix of deployment uids.
pub const DEPLOYMENT_PREFIX: &str = "deployment";
/// The prefix of the uids of the rollouts the Kubernetes watcher records.
pub const K8S_ROLLOUT_PREFIX: &str = "k8s-rollout";
/// The prefix of the uids of the Helm release revisions the Helm watcher records.
pub const HELM_RELEASE_PREFIX: &str = "helm-release";
/// Every prefix a deployment's uid has: recorded through the API, by the Kubernetes watcher,
/// by the Helm watcher.
pub const DEPLOYMENT_PREFIXES: [&str; 3] =
    [DEPLOYMENT_PREFIX, K8S_ROLLOUT_PREFIX, HELM_RELEASE_PREFIX];
/// The prefix of the uids of changes that are not rollouts (`ConfigChange`s, the keys a
/// deployment changed, are `change-`).
pub const CHANGE_PREFIX: &str = "change-event";
/// The prefix of chaos run uids.
pub const CHAOS_RUN_PREFIX: &str = "chaos-run";
/// The prefix of canary analysis uids.
pub const CANARY_ANALYSIS_PREFIX: &str = "canary-analysis";
/// The prefix of rollback uids.
pub const ROLLBACK_PREFIX: &str = "rollback";

/// A node identity, unique per label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Uid(String);

impl Uid {
    /// Derives the uid of a node with `prefix` from the parts of its identity.
    pub fn derive(prefix: &str, parts: &[&str]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(prefix.as_bytes());
        for part in parts {
            hasher.update([0u8]);
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        Self(format!("{prefix}-{}", hex::encode(&digest[..16])))
    }

    /// Wraps a uid read back from a store or a URL. Only the shape is checked.
    pub fn from_stored(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// A uid given by a user (a URL, a flag): 1 to 64 characters without whitespace.
    ///
    /// # Errors
    /// When `value` cannot be a uid.
    pub fn parse(value: &str) -> crate::Result<Self> {
        if value.is_empty() || value.len() > 64 || value.contains(char::is_whitespace) {
            Err(crate::Error::new("", format!("{value:?} is not a uid")))
        } else {
            Ok(Self(value.to_owned()))
        }
    }

    /// The pattern of the uids [`Uid::derive`] gives for `prefix`.
    pub fn pattern(prefix: &str) -> String {
        format!("^{prefix}-[0-9a-f]{{32}}$")
    }

    /// A uid a request names for a node of the kind `prefix`: exactly what [`Uid::derive`]
    /// gives for it (`chaos-run-` and 32 lower-case hex digits), so that a request cannot
    /// name another kind's node, or smuggle separators or control characters into a uid.
    ///
    /// # Errors
    /// When `value` is not such a uid.
    pub fn parse_derived(prefix: &str, value: &str) -> crate::Result<Self> {
        let ok = value
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|hex| {
                hex.len() == 32
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            });
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(crate::Error::new(
                "",
                format!("{value:?} is not a {prefix} uid ({prefix}- and 32 lower-case hex digits)"),
            ))
        }
    }

    /// A deployment's uid as a request names it: what [`Uid::derive`] gives for one of
    /// [`DEPLOYMENT_PREFIXES`] (a deployment recorded through the API, or by a watcher).
    ///
    /// # Errors
    /// When `value` is not such a uid.
    pub fn parse_deployment(value: &str) -> crate::Result<Self> {
        DEPLOYMENT_PREFIXES
            .iter()
            .find_map(|p| Self::parse_derived(p, value).ok())
            .ok_or_else(|| {
                crate::Error::new(
                    "",
                    format!(
                        "{value:?} is not a deployment uid (deployment-, k8s-rollout- or \
                         helm-release- and 32 lower-case hex digits)"
                    ),
                )
            })
    }

    /// The pattern of the uids [`Uid::parse_deployment`] accepts.
    pub fn deployment_pattern() -> String {
        format!("^({})-[0-9a-f]{{32}}$", DEPLOYMENT_PREFIXES.join("|"))
    }

    /// The uid as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 hex of arbitrary bytes; used for content fingerprints and migration checksums.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_parts_give_the_same_uid() {
        assert_eq!(
            Uid::derive("dep", &["a", "b"]),
            Uid::derive("dep", &["a", "b"])
        );
    }

    #[test]
    fn part_boundaries_matter() {
        assert_ne!(
            Uid::derive("dep", &["ab", "c"]),
            Uid::derive("dep", &["a", "bc"])
        );
    }

    #[test]
    fn user_given_uids_are_bounded() {
        assert!(Uid::parse("deployment-0123").is_ok());
        for bad in ["", "a b", &"x".repeat(65)] {
            assert!(Uid::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_deployment_is_named_by_any_of_its_sources_uids() {
        for prefix in DEPLOYMENT_PREFIXES {
            let uid = Uid::derive(prefix, &["a", "b"]);
            assert!(Uid::parse_deployment(uid.as_str()).is_ok(), "{uid}");
        }
        for bad in [
            Uid::derive(CHAOS_RUN_PREFIX, &["x"]).to_string(),
            "k8s-rollout-0123".to_owned(),
            format!("{}\n", Uid::derive(K8S_ROLLOUT_PREFIX, &["x"])),
        ] {
            assert!(Uid::parse_deployment(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Uid::deployment_pattern(),
            "^(deployment|k8s-rollout|helm-release)-[0-9a-f]{32}$"
        );
    }

    #[test]
    fn requests_name_uids_of_their_own_kind_only() {
        let run = Uid::derive(CHAOS_RUN_PREFIX, &["pod-delete", "2026-11-20T10:00:00Z"]);
        assert!(Uid::parse_derived(CHAOS_RUN_PREFIX, run.as_str()).is_ok());
        let deployment = Uid::derive(DEPLOYMENT_PREFIX, &["id", "x"]);
        for bad in [
            deployment.as_str().to_owned(),
            format!("{}\n", run.as_str()),
            format!("{}\t", run.as_str()),
            "x/../../y".to_owned(),
            "chaos-run-\0".to_owned(),
            run.as_str().to_uppercase(),
            String::new(),
        ] {
            assert!(
                Uid::parse_derived(CHAOS_RUN_PREFIX, &bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn uid_has_prefix_and_128_bits() {
        let uid = Uid::derive("svc", &["payments"]);
        assert!(uid.as_str().starts_with("svc-"));
        assert_eq!(uid.as_str().len(), 4 + 32);
    }
}
