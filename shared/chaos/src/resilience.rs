//! Resilience across releases: each scenario's verdicts and probe success per release (the
//! image digests of the deployment a run was AGAINST), with regressions flagged — passed on the
//! previous release, fails on this one.

use chrono::{DateTime, Utc};
use deploygraph_model::{ChaosRun, ChaosVerdict, Deployment, Uid};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// One run in the trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendRow {
    /// The scenario.
    pub scenario: String,
    /// The release: the deployment's image digests (or version, or uid) it ran against.
    pub release: String,
    /// That deployment.
    pub deployment: Option<Uid>,
    /// The run.
    pub run: Uid,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its verdict.
    pub verdict: ChaosVerdict,
    /// Probe success.
    pub probe_success_pct: Option<f64>,
    /// It fails where the previous release passed.
    pub regression: bool,
}

/// What identifies a release: its image digests, else its version, else the deployment's uid.
pub fn release_of(d: &Deployment) -> String {
    let digests: Vec<&str> = d
        .images
        .iter()
        .filter_map(|i| i.digest.as_ref().map(|x| x.as_str()))
        .collect();
    if !digests.is_empty() {
        return digests.join(",");
    }
    d.version.clone().unwrap_or_else(|| d.uid.to_string())
}

fn decided(v: ChaosVerdict) -> bool {
    matches!(
        v,
        ChaosVerdict::Pass | ChaosVerdict::Fail | ChaosVerdict::Error
    )
}

/// The trend of `runs`, per scenario in time order, with `deployments` the runs were against.
pub fn trend(runs: &[ChaosRun], deployments: &HashMap<Uid, Deployment>) -> Vec<TrendRow> {
    let mut by_scenario: BTreeMap<&str, Vec<&ChaosRun>> = BTreeMap::new();
    for run in runs {
        by_scenario
            .entry(run.scenario.as_str())
            .or_default()
            .push(run);
    }
    let mut rows = Vec::new();
    for (scenario, mut runs) in by_scenario {
        runs.sort_by(|a, b| {
            a.started_at
                .cmp(&b.started_at)
                .then_with(|| a.uid.cmp(&b.uid))
        });
        // The last decided verdict of each release seen so far, in order.
        let mut releases: Vec<(String, ChaosVerdict)> = Vec::new();
        for run in runs {
            let release = run
                .against
                .as_ref()
                .and_then(|uid| deployments.get(uid))
                .map_or_else(
                    || {
                        run.against
                            .as_ref()
                            .map_or_else(|| "unknown".to_owned(), ToString::to_string)
                    },
                    release_of,
                );
            let previous = releases
                .iter()
                .rev()
                .find(|(r, _)| *r != release)
                .map(|(_, v)| *v);
            let regression = matches!(run.verdict, ChaosVerdict::Fail | ChaosVerdict::Error)
                && previous == Some(ChaosVerdict::Pass);
            if decided(run.verdict) {
                releases.retain(|(r, _)| *r != release);
                releases.push((release.clone(), run.verdict));
            }
            rows.push(TrendRow {
                scenario: scenario.to_owned(),
                release,
                deployment: run.against.clone(),
                run: run.uid.clone(),
                started_at: run.started_at,
                verdict: run.verdict,
                probe_success_pct: run.probe_success_pct,
                regression,
            });
        }
    }
    rows
}

/// The trend as text.
pub fn trend_text(service: &str, rows: &[TrendRow]) -> String {
    use std::fmt::Write as _;
    let mut out = format!("resilience of {service}\n");
    if rows.is_empty() {
        out.push_str("no chaos runs recorded\n");
    }
    let mut scenario = "";
    for r in rows {
        if r.scenario != scenario {
            scenario = &r.scenario;
            let _ = writeln!(out, "{scenario}:");
        }
        let short: String = r.release.chars().take(19).collect();
        let _ = writeln!(
            out,
            "  {}  {:<19}  {:<8} probes {:>5}{}",
            deploygraph_model::format_time(&r.started_at),
            short,
            r.verdict.as_str(),
            r.probe_success_pct
                .map_or("-".to_owned(), |p| format!("{p:.0}%")),
            if r.regression { "  REGRESSION" } else { "" }
        );
    }
    out
}

/// The resilience trend of a service (all environments, or one): its newest
/// [`deploygraph_store::MAX_PAGE_SIZE`] chaos runs with the deployments they ran against (read
/// in one batch), and whether older runs were left out.
///
/// # Errors
/// The store's.
pub async fn of_service(
    store: &dyn deploygraph_store::GraphStore,
    service: &deploygraph_model::ServiceName,
    environment: Option<&deploygraph_model::Environment>,
    cluster: Option<&deploygraph_model::Cluster>,
) -> deploygraph_store::Result<(Vec<TrendRow>, bool)> {
    let services: Vec<Uid> = store
        .find_services(service, None, environment, cluster)
        .await?
        .iter()
        .map(deploygraph_model::ServiceRef::uid)
        .collect();
    if services.is_empty() {
        return Ok((Vec::new(), false));
    }
    let mut runs = store
        .list_chaos_runs(&deploygraph_store::ChaosFilter {
            services,
            limit: deploygraph_store::MAX_PAGE_SIZE + 1,
            ..deploygraph_store::ChaosFilter::default()
        })
        .await?;
    let truncated = runs.len() > deploygraph_store::MAX_PAGE_SIZE;
    runs.truncate(deploygraph_store::MAX_PAGE_SIZE);
    let against: Vec<Uid> = runs.iter().filter_map(|r| r.against.clone()).collect();
    let deployments: HashMap<Uid, _> = store
        .get_deployments(&against)
        .await?
        .into_iter()
        .map(|d| (d.deployment.uid.clone(), d.deployment))
        .collect();
    Ok((trend(&runs, &deployments), truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, minute: i64, against: &str, verdict: ChaosVerdict) -> ChaosRun {
        ChaosRun {
            against: Some(Uid::from_stored(against)),
            verdict,
            ..ChaosRun::test(id, "payments", minute, Some(minute + 1))
        }
    }

    #[test]
    fn a_failure_after_a_passing_release_is_a_regression() {
        let mut d1 = Deployment::test().image_seed(1).build();
        d1.uid = Uid::from_stored("d1");
        let mut d2 = Deployment::test().image_seed(2).build();
        d2.uid = Uid::from_stored("d2");
        let deployments: HashMap<Uid, Deployment> =
            [(d1.uid.clone(), d1.clone()), (d2.uid.clone(), d2.clone())].into();
        let runs = [
            run("r1", 0, "d1", ChaosVerdict::Pass),
            run("r2", 10, "d1", ChaosVerdict::Pass),
            run("r3", 20, "d2", ChaosVerdict::Stopped),
            run("r4", 30, "d2", ChaosVerdict::Fail),
            run("r5", 40, "d2", ChaosVerdict::Fail),
        ];
        let rows = trend(&runs, &deployments);
        let flags: Vec<(&str, bool)> = rows
            .iter()
            .map(|r| {
                let i = runs.iter().position(|x| x.uid == r.run).unwrap_or(0);
                (["r1", "r2", "r3", "r4", "r5"][i], r.regression)
            })
            .collect();
        // r4 fails where d1 passed; r5 fails again on d2 (d1 still the previous release).
        assert_eq!(
            flags,
            vec![
                ("r1", false),
                ("r2", false),
                ("r3", false),
                ("r4", true),
                ("r5", true)
            ]
        );
        assert_eq!(rows[3].release, release_of(&d2));
        assert_ne!(rows[0].release, rows[3].release);
    }
}
