//! An SRE's verdict on a suspect of an alert: `(DeploymentEvent|Change)-[:CAUSED {by, at,
//! note}]->(Alert)` when the suspect is confirmed as the cause, `-[:REJECTED {by, at, note}]->`
//! when it is ruled out.
//!
//! A subject holds at most one verdict per alert: a later verdict replaces the earlier one (and
//! its relationship kind). Verdicts are facts of a review, not of attribution: recomputing the
//! attribution (which rewrites TRIGGERS) keeps them, and the history evidence of later alerts
//! counts a confirmed deployment as blamed and never one rejected for that alert.
//! [`VerdictInput`] is the wire format of `POST /v1/alerts/{fingerprint}/suspects/{uid}/verdict`.

use crate::alert::SubjectKind;
use crate::error::{Error, Result};
use crate::redact::redact_secrets;
use crate::uid::Uid;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Whether the reviewer confirmed the suspect as the cause or ruled it out.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// The subject caused the alert: `CAUSED`.
    Confirmed,
    /// The subject did not cause the alert: `REJECTED`.
    Rejected,
}

impl VerdictKind {
    /// Both kinds, in wire order.
    pub const ALL: [Self; 2] = [Self::Confirmed, Self::Rejected];

    /// The wire name (`confirmed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
        }
    }

    /// The graph's relationship type (`CAUSED`, `REJECTED`).
    pub fn relationship(self) -> &'static str {
        match self {
            Self::Confirmed => "CAUSED",
            Self::Rejected => "REJECTED",
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    /// When `value` is neither `confirmed` nor `rejected`.
    pub fn parse(value: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == value)
            .ok_or_else(|| Error::new("", format!("{value:?} is not one of confirmed, rejected")))
    }
}

/// A verdict on one suspect of one alert occurrence, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspectVerdict {
    /// The alert occurrence.
    pub alert_uid: Uid,
    /// What the subject is.
    pub subject: SubjectKind,
    /// The deployment's or the change's uid.
    pub subject_uid: Uid,
    /// Confirmed or rejected.
    pub verdict: VerdictKind,
    /// Who gave it.
    pub by: String,
    /// When it was given.
    pub at: DateTime<Utc>,
    /// Why, for the next reviewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl SuspectVerdict {
    /// Whether `other` says the same as this one (verdict, reviewer and note): recording it
    /// again changes nothing, not even the time.
    pub fn says_the_same(&self, other: &Self) -> bool {
        self.alert_uid == other.alert_uid
            && self.subject_uid == other.subject_uid
            && self.verdict == other.verdict
            && self.by == other.by
            && self.note == other.note
    }
}

/// Upper bounds of a verdict's fields, as the schema declares them.
pub mod limits {
    /// `by`.
    pub const BY: usize = 256;
    /// `note`.
    pub const NOTE: usize = 4096;
}

/// The JSON body of `POST /v1/alerts/{fingerprint}/suspects/{uid}/verdict`. Unknown fields are
/// rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerdictInput {
    /// `confirmed` (the subject caused the alert) or `rejected` (it did not) (required).
    #[serde(default)]
    #[schema(value_type = VerdictKind, required = true)]
    pub verdict: Option<String>,
    /// Who gives the verdict (required).
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 256)]
    pub by: Option<String>,
    /// Why, for the next reviewer (secrets in it are redacted; empty: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 4096)]
    pub note: Option<String>,
}

fn longer_than(field: &str, value: &str, max: usize) -> Result<()> {
    if value.chars().count() > max {
        Err(Error::new(
            field,
            format!("is longer than {max} characters"),
        ))
    } else {
        Ok(())
    }
}

impl VerdictInput {
    /// Validates the input into the verdict, the reviewer and the note (redacted; an empty
    /// note is none).
    ///
    /// # Errors
    /// The first invalid field, by its name.
    pub fn validate(&self) -> Result<(VerdictKind, String, Option<String>)> {
        let verdict = match self.verdict.as_deref() {
            Some(v) if !v.is_empty() => VerdictKind::parse(v).map_err(|e| e.within("verdict"))?,
            _ => return Err(Error::new("verdict", "is required (confirmed or rejected)")),
        };
        let by = match self.by.as_deref() {
            Some(by) if !by.is_empty() => {
                longer_than("by", by, limits::BY)?;
                by.to_owned()
            }
            _ => return Err(Error::new("by", "is required")),
        };
        let note = match self.note.as_deref() {
            Some(note) => {
                longer_than("note", note, limits::NOTE)?;
                Some(redact_secrets(note).into_owned()).filter(|n| !n.is_empty())
            }
            None => None,
        };
        Ok((verdict, by, note))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(verdict: Option<&str>, by: Option<&str>, note: Option<&str>) -> VerdictInput {
        VerdictInput {
            verdict: verdict.map(str::to_owned),
            by: by.map(str::to_owned),
            note: note.map(str::to_owned),
        }
    }

    #[test]
    fn a_verdict_names_its_invalid_field() {
        for (bad, field) in [
            (input(None, Some("alice"), None), "verdict"),
            (input(Some(""), Some("alice"), None), "verdict"),
            (input(Some("maybe"), Some("alice"), None), "verdict"),
            (input(Some("confirmed"), None, None), "by"),
            (input(Some("confirmed"), Some(""), None), "by"),
            (input(Some("rejected"), Some(&"a".repeat(257)), None), "by"),
            (
                input(Some("rejected"), Some("alice"), Some(&"n".repeat(4097))),
                "note",
            ),
        ] {
            assert_eq!(bad.validate().map_err(|e| e.field), Err(field.to_owned()));
        }
    }

    #[test]
    fn a_verdict_redacts_its_note_and_drops_an_empty_one() {
        let (verdict, by, note) = input(
            Some("confirmed"),
            Some("alice"),
            Some("pool cut; see postgres://app:hunter2@db/orders"),
        )
        .validate()
        .expect("valid");
        assert_eq!((verdict, by.as_str()), (VerdictKind::Confirmed, "alice"));
        let note = note.expect("a note");
        assert!(!note.contains("hunter2"), "{note}");
        let (_, _, none) = input(Some("rejected"), Some("bob"), Some(""))
            .validate()
            .expect("valid");
        assert_eq!(none, None);
        assert_eq!(VerdictKind::Rejected.relationship(), "REJECTED");
    }
}
