//! What failed deployments have in common: every fact of each deployment is a factor, and a
//! factor's count is how many of the deployments share it.

use crate::views::Factor;
use deploygraph_model::{Deployment, Uid};
use std::collections::{BTreeMap, BTreeSet};

/// The facts of one failed deployment that common-factor analysis compares.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedFacts {
    /// The deployment.
    pub deployment: Uid,
    /// Changed config key paths.
    pub config_keys: Vec<String>,
    /// Images (`repository:tag` or the digest).
    pub images: Vec<String>,
    /// Helm charts (`name-version`), when known.
    pub charts: Vec<String>,
    /// The commit author.
    pub author: Option<String>,
    /// Who rolled it out.
    pub actor: Option<String>,
    /// Dependencies deployed in the window before it (`name@version` or `name`).
    pub dependencies: Vec<String>,
    /// Checks that failed in the infrastructure snapshot taken before it (`kind target`).
    pub failed_checks: Vec<String>,
    /// Metrics its canary analyses failed on (`http-error-ratio`).
    pub failed_canary_metrics: Vec<String>,
    /// Who rolled it back (the Rollbacks' `by`, dry runs left out; `unrecorded` when its
    /// status is `rolled_back` without a Rollback).
    pub rolled_back_by: Vec<String>,
}

impl FailedFacts {
    /// The facts a deployment carries itself; dependencies and checks come from the store.
    pub fn of(d: &Deployment) -> Self {
        Self {
            deployment: d.uid.clone(),
            config_keys: d.changes.iter().map(|c| c.path.clone()).collect(),
            images: d
                .images
                .iter()
                .map(|i| match (&i.repository, &i.tag) {
                    (Some(r), Some(t)) => format!("{r}:{t}"),
                    _ => i.reference(),
                })
                .collect(),
            charts: d
                .helm
                .iter()
                .filter_map(|h| {
                    let chart = h.chart.as_deref()?;
                    Some(match &h.chart_version {
                        Some(v) => format!("{chart}-{v}"),
                        None => chart.to_owned(),
                    })
                })
                .collect(),
            author: d.commit.as_ref().and_then(|c| c.author.clone()),
            actor: d.actor.clone(),
            dependencies: Vec::new(),
            failed_checks: Vec::new(),
            failed_canary_metrics: Vec::new(),
            rolled_back_by: Vec::new(),
        }
    }
}

/// Counts factors across `facts`, most shared first (ties by kind and value). With more than
/// one deployment, factors only one of them has are left out.
pub fn common_factors(facts: &[FailedFacts]) -> Vec<Factor> {
    let mut seen: BTreeMap<(&str, String), BTreeSet<&Uid>> = BTreeMap::new();
    for f in facts {
        let mut add = |kind: &'static str, value: &str| {
            seen.entry((kind, value.to_owned()))
                .or_default()
                .insert(&f.deployment);
        };
        f.config_keys.iter().for_each(|v| add("config_key", v));
        f.images.iter().for_each(|v| add("image", v));
        f.charts.iter().for_each(|v| add("chart", v));
        f.author.iter().for_each(|v| add("author", v));
        f.actor.iter().for_each(|v| add("actor", v));
        f.dependencies.iter().for_each(|v| add("dependency", v));
        f.failed_checks.iter().for_each(|v| add("failed_check", v));
        f.failed_canary_metrics
            .iter()
            .for_each(|v| add("canary_failed", v));
        f.rolled_back_by.iter().for_each(|v| add("rolled_back", v));
    }
    let min = if facts.len() > 1 { 2 } else { 1 };
    let order: BTreeMap<&Uid, usize> = facts
        .iter()
        .enumerate()
        .map(|(i, f)| (&f.deployment, i))
        .collect();
    let mut factors: Vec<Factor> = seen
        .into_iter()
        .filter(|(_, uids)| uids.len() >= min)
        .map(|((kind, value), uids)| {
            let mut deployments: Vec<&Uid> = uids.into_iter().collect();
            deployments.sort_by_key(|u| order.get(u).copied().unwrap_or(usize::MAX));
            Factor {
                kind: kind.to_owned(),
                value,
                count: deployments.len(),
                deployments: deployments.into_iter().cloned().collect(),
            }
        })
        .collect();
    factors.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.value.cmp(&b.value))
    });
    factors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(uid: &str, keys: &[&str], author: &str, deps: &[&str]) -> FailedFacts {
        FailedFacts {
            deployment: Uid::from_stored(uid),
            config_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            author: Some(author.to_owned()),
            dependencies: deps.iter().map(|k| (*k).to_owned()).collect(),
            images: Vec::new(),
            charts: Vec::new(),
            actor: None,
            failed_checks: Vec::new(),
            failed_canary_metrics: Vec::new(),
            rolled_back_by: Vec::new(),
        }
    }

    #[test]
    fn shared_factors_are_counted_and_ranked() {
        let all = [
            facts(
                "d3",
                &["values.redis.pool.size", "values.timeout"],
                "ann",
                &["redis@7.2"],
            ),
            facts("d2", &["values.redis.pool.size"], "bob", &["redis@7.2"]),
            facts(
                "d1",
                &["values.redis.pool.size", "values.replicas"],
                "ann",
                &[],
            ),
        ];
        let got: Vec<(String, String, usize)> = common_factors(&all)
            .into_iter()
            .map(|f| (f.kind, f.value, f.count))
            .collect();
        assert_eq!(
            got,
            vec![
                ("config_key".into(), "values.redis.pool.size".into(), 3),
                ("author".into(), "ann".into(), 2),
                ("dependency".into(), "redis@7.2".into(), 2),
            ]
        );
        let top = &common_factors(&all)[0];
        assert_eq!(
            top.deployments,
            vec![
                Uid::from_stored("d3"),
                Uid::from_stored("d2"),
                Uid::from_stored("d1")
            ],
            "in the order examined (newest first)"
        );
    }

    #[test]
    fn charts_come_from_the_helm_revision() {
        let mut d = Deployment::test().build();
        d.helm = Some(deploygraph_model::HelmRevision {
            release: "payments".into(),
            namespace: "prod".into(),
            revision: 4,
            chart: Some("payments".into()),
            chart_version: Some("1.4.2".into()),
            app_version: None,
            status: "failed".into(),
        });
        assert_eq!(
            FailedFacts::of(&d).charts,
            vec!["payments-1.4.2".to_owned()]
        );
    }

    #[test]
    fn being_rolled_back_by_the_same_hand_is_a_factor() {
        let mut a = facts("deployment-a", &[], "x", &[]);
        let mut b = facts("deployment-b", &[], "y", &[]);
        let c = facts("deployment-c", &[], "z", &[]);
        a.rolled_back_by = vec!["deploygraph canary analyze".into()];
        b.rolled_back_by = vec!["deploygraph canary analyze".into()];
        let found = common_factors(&[a, b, c]);
        let rolled: Vec<(&str, &str, usize)> = found
            .iter()
            .filter(|f| f.kind == "rolled_back")
            .map(|f| (f.kind.as_str(), f.value.as_str(), f.count))
            .collect();
        assert_eq!(rolled, [("rolled_back", "deploygraph canary analyze", 2)]);
    }

    #[test]
    fn a_canary_failing_on_the_same_metric_is_a_factor() {
        let mut a = facts("d1", &[], "ann", &[]);
        let mut b = facts("d2", &[], "bob", &[]);
        a.failed_canary_metrics = vec!["http-error-ratio".into(), "http-latency-p99".into()];
        b.failed_canary_metrics = vec!["http-error-ratio".into()];
        let found = common_factors(&[a, b]);
        let canary: Vec<(&str, &str, usize)> = found
            .iter()
            .filter(|f| f.kind == "canary_failed")
            .map(|f| (f.kind.as_str(), f.value.as_str(), f.count))
            .collect();
        assert_eq!(canary, [("canary_failed", "http-error-ratio", 2)]);
    }

    #[test]
    fn a_single_deployment_lists_all_its_facts() {
        let one = [facts("d1", &["a"], "ann", &[])];
        assert_eq!(common_factors(&one).len(), 2);
        assert!(common_factors(&[]).is_empty());
    }
}
