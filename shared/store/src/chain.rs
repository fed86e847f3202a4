//! The FOLLOWS chain: each deployment points to the previous one of the same service (name,
//! namespace, environment), ordered by `started_at` and then uid. Events may arrive out of
//! order, so inserting one can change its successor's link; these pure functions compute which
//! links to write, and both backends apply them.

use deploygraph_model::Deployment;
use std::collections::BTreeMap;

/// A node of a chain: ordering key and current link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainNode {
    /// `started_at` in microseconds.
    pub started_at_us: i64,
    /// Uid.
    pub uid: String,
    /// The uid it currently FOLLOWS.
    pub follows: Option<String>,
}

/// For each chain touched by `created` (keyed by service uid), the start time of its earliest
/// new deployment: links are recomputed from the deployment before it onwards.
pub fn earliest_by_chain(created: &[Deployment]) -> BTreeMap<String, i64> {
    let mut earliest: BTreeMap<String, i64> = BTreeMap::new();
    for d in created {
        let us = d.started_at.timestamp_micros();
        earliest
            .entry(d.service_uid().as_str().to_owned())
            .and_modify(|e| *e = (*e).min(us))
            .or_insert(us);
    }
    earliest
}

/// Given the chain nodes from the predecessor of the earliest new deployment onwards (any
/// order), the links `(newer, older)` that differ from what is stored.
pub fn relink(mut nodes: Vec<ChainNode>) -> Vec<(String, String)> {
    nodes.sort_by(|a, b| (a.started_at_us, &a.uid).cmp(&(b.started_at_us, &b.uid)));
    nodes
        .windows(2)
        .filter(|pair| pair[1].follows.as_deref() != Some(pair[0].uid.as_str()))
        .map(|pair| (pair[1].uid.clone(), pair[0].uid.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(us: i64, uid: &str, follows: Option<&str>) -> ChainNode {
        ChainNode {
            started_at_us: us,
            uid: uid.into(),
            follows: follows.map(Into::into),
        }
    }

    #[test]
    fn an_out_of_order_insert_relinks_its_successor() {
        // a(10) <- c(30) stored; b(20) arrives late.
        let links = relink(vec![
            node(30, "c", Some("a")),
            node(10, "a", None),
            node(20, "b", None),
        ]);
        assert_eq!(
            links,
            vec![("b".into(), "a".into()), ("c".into(), "b".into())]
        );
    }

    #[test]
    fn correct_links_are_not_rewritten() {
        assert!(relink(vec![node(10, "a", None), node(20, "b", Some("a"))]).is_empty());
    }

    #[test]
    fn equal_times_are_ordered_by_uid() {
        let links = relink(vec![node(10, "b", None), node(10, "a", None)]);
        assert_eq!(links, vec![("b".into(), "a".into())]);
    }
}
