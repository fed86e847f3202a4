//! Infra snapshots taken by the server: for every deployment it records, and on a schedule.
//!
//! The gate configuration file is read again for every snapshot, so edits apply without a
//! restart. An edit that does not parse is logged, and the last good configuration stays in use.

use deploygraph_model::{InfraSnapshot, Uid};
use deploygraph_probe::config::{self, GateConfig};
use deploygraph_store::GraphStore;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Takes and records snapshots from a gate configuration file.
pub struct Snapshotter {
    store: Arc<dyn GraphStore>,
    config_path: PathBuf,
    cluster: Option<String>,
    last_good: Mutex<Option<(String, GateConfig)>>,
}

impl Snapshotter {
    /// A snapshotter reading its checks from `config_path`.
    pub fn new(store: Arc<dyn GraphStore>, config_path: PathBuf, cluster: Option<String>) -> Self {
        Self {
            store,
            config_path,
            cluster,
            last_good: Mutex::new(None),
        }
    }

    /// The configuration now: the file when it reads and parses, else the last good one.
    ///
    /// # Errors
    /// A message when the file has never been usable.
    pub fn config(&self) -> Result<GateConfig, String> {
        let read = std::fs::read_to_string(&self.config_path)
            .map_err(|e| format!("{}: {e}", self.config_path.display()))
            .and_then(|text| {
                config::parse(&text)
                    .map(|c| (text, c))
                    .map_err(|e| format!("{}: {e}", self.config_path.display()))
            });
        let mut last = self
            .last_good
            .lock()
            .map_err(|_| "the configuration lock is poisoned".to_owned())?;
        match read {
            Ok((text, parsed)) => {
                if last.as_ref().is_some_and(|(old, _)| *old != text) {
                    tracing::info!(path = %self.config_path.display(), "gate configuration changed; using the new one");
                }
                *last = Some((text, parsed.clone()));
                Ok(parsed)
            }
            Err(reason) => match last.as_ref() {
                Some((_, good)) => {
                    tracing::warn!(reason = %reason, "gate configuration unusable; keeping the last good one");
                    Ok(good.clone())
                }
                None => Err(reason),
            },
        }
    }

    /// Runs the checks and records the snapshot, for `deployment` when given.
    ///
    /// # Errors
    /// A message when there is no usable configuration or the store refuses the snapshot.
    pub async fn take(&self, deployment: Option<Uid>) -> Result<InfraSnapshot, String> {
        let plan = self.config()?.plan().map_err(|e| e.to_string())?;
        let results = deploygraph_probe::runner::run(&plan.checks, &plan.options).await;
        let snapshot = deploygraph_probe::snapshot::from_results(
            &results,
            chrono::Utc::now(),
            self.cluster.clone(),
            deployment,
        );
        self.store
            .record_snapshot(&snapshot)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(snapshot.uid = %snapshot.uid, verdict = snapshot.verdict.as_str(), "recorded infra snapshot");
        Ok(snapshot)
    }

    /// Takes a snapshot every `interval` until `shutdown` resolves.
    pub async fn run_schedule(
        self: Arc<Self>,
        interval: Duration,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(reason) = self.take(None).await {
                        tracing::warn!(reason = %reason, "scheduled snapshot failed");
                    }
                }
                () = &mut shutdown => return,
            }
        }
    }
}

#[async_trait::async_trait]
impl deploygraph_analysis::pipeline::Snapshots for Snapshotter {
    async fn take_for(&self, deployment: &Uid) -> Result<(), String> {
        self.take(Some(deployment.clone())).await.map(|_| ())
    }
}
