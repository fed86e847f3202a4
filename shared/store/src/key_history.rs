//! What both backends share of [`crate::GraphStore::key_history`]: the bounds of a call, and
//! the tally of the changes each backend read, so that the two count alike.

use crate::types::{KEY_HISTORY_MAX_LIMIT, KEY_HISTORY_MAX_PATHS, KeyHistory};
use std::collections::{BTreeMap, HashSet};

/// The distinct paths a call reads (first occurrences, at most [`KEY_HISTORY_MAX_PATHS`]) and
/// its limit (at most [`KEY_HISTORY_MAX_LIMIT`]).
pub(crate) fn bounds(paths: &[String], limit: u32) -> (Vec<String>, u32) {
    let mut seen = HashSet::new();
    let distinct = paths
        .iter()
        .filter(|p| seen.insert(p.as_str()))
        .take(KEY_HISTORY_MAX_PATHS)
        .cloned()
        .collect();
    (distinct, limit.min(KEY_HISTORY_MAX_LIMIT))
}

/// One change of a key that a backend read: a deployment that changed it, or a change that is
/// not a rollout with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sighting {
    /// The key.
    pub path: String,
    /// When the deployment started or the change took effect, in microseconds.
    pub at_us: i64,
    /// The deployment's or the change's uid.
    pub subject: String,
    /// It TRIGGERS an alert with a confidence of [`crate::BLAMED_CONFIDENCE`] or more.
    pub blamed: bool,
}

/// For each path, of its `limit` most recent sightings (newest first, ties by the larger subject
/// uid; a subject counts once per path): how many, and how many were blamed. Ordered by path;
/// paths without a sighting are left out.
pub(crate) fn tally(sightings: Vec<Sighting>, limit: u32) -> Vec<KeyHistory> {
    let mut by_path: BTreeMap<String, Vec<Sighting>> = BTreeMap::new();
    for s in sightings {
        by_path.entry(s.path.clone()).or_default().push(s);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    by_path
        .into_iter()
        .filter_map(|(path, mut found)| {
            found.sort_by(|a, b| {
                b.at_us
                    .cmp(&a.at_us)
                    .then_with(|| b.subject.cmp(&a.subject))
            });
            let mut subjects = HashSet::new();
            let recent: Vec<&Sighting> = found
                .iter()
                .filter(|s| subjects.insert(s.subject.as_str()))
                .take(limit)
                .collect();
            if recent.is_empty() {
                return None;
            }
            let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            Some(KeyHistory {
                path,
                changes: count(recent.len()),
                followed_by_alerts: count(recent.iter().filter(|s| s.blamed).count()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(path: &str, at_us: i64, subject: &str, blamed: bool) -> Sighting {
        Sighting {
            path: path.into(),
            at_us,
            subject: subject.into(),
            blamed,
        }
    }

    #[test]
    fn bounds_keep_first_distinct_paths_and_cap_the_limit() {
        let paths: Vec<String> = (0..100)
            .flat_map(|i| [format!("k{i}"), format!("k{i}")])
            .collect();
        let (distinct, limit) = bounds(&paths, 10_000);
        assert_eq!(distinct.len(), KEY_HISTORY_MAX_PATHS);
        assert_eq!(distinct[0], "k0");
        assert_eq!(distinct[1], "k1");
        assert_eq!(limit, KEY_HISTORY_MAX_LIMIT);
        assert_eq!(bounds(&paths[..2], 7), (vec!["k0".to_owned()], 7));
    }

    #[test]
    fn tally_counts_the_most_recent_per_path_in_path_order() {
        let got = tally(
            vec![
                seen("b", 1, "d1", true),
                seen("b", 3, "d3", false),
                seen("b", 2, "c2", true),
                seen("a", 5, "d5", true),
            ],
            2,
        );
        assert_eq!(
            got,
            vec![
                KeyHistory {
                    path: "a".into(),
                    changes: 1,
                    followed_by_alerts: 1
                },
                // d3 and c2 are the two most recent; d1, blamed, is older.
                KeyHistory {
                    path: "b".into(),
                    changes: 2,
                    followed_by_alerts: 1
                },
            ]
        );
    }

    #[test]
    fn a_subject_counts_once_and_ties_go_to_the_larger_uid() {
        let got = tally(
            vec![
                seen("a", 4, "d1", true),
                seen("a", 4, "d1", true),
                seen("a", 4, "d2", false),
            ],
            1,
        );
        assert_eq!((got[0].changes, got[0].followed_by_alerts), (1, 0));
        let all = tally(vec![seen("a", 4, "d1", true), seen("a", 4, "d1", true)], 10);
        assert_eq!((all[0].changes, all[0].followed_by_alerts), (1, 1));
        assert!(tally(Vec::new(), 10).is_empty());
    }
}
