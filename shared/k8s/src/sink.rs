//! Where the watchers record: the store itself (`serve`), or a durable queue that delivers to
//! a central server (`deploygraph agent`, whose cluster holds no store credentials). The
//! watchers need three calls of the store; [`StoreSink`] passes them to one.

use async_trait::async_trait;
use deploygraph_model::{Change, Deployment};
use deploygraph_store::{
    ChangeOutcome, DeploymentFilter, GraphStore, Page, RecordOutcome, Result, StoredDeployment,
};
use std::sync::Arc;

/// What the workload and Helm watchers write to and read their history from.
#[async_trait]
pub trait RecordSink: Send + Sync {
    /// Records rollouts ([`GraphStore::record_deployments`]); a queue answers
    /// [`deploygraph_store::RecordKind::Queued`] once they are durably queued.
    ///
    /// # Errors
    /// `Unavailable` when nothing could be recorded or queued (the watchers retry later).
    async fn record_deployments(&self, batch: Vec<Deployment>) -> Result<Vec<RecordOutcome>>;

    /// Records changes that are not rollouts ([`GraphStore::record_changes`]).
    ///
    /// # Errors
    /// As [`RecordSink::record_deployments`].
    async fn record_changes(&self, batch: Vec<Change>) -> Result<Vec<ChangeOutcome>>;

    /// The recorded rollouts a watcher compares a workload with when it first sees it
    /// ([`GraphStore::list_deployments`]).
    ///
    /// # Errors
    /// `Unavailable` when they cannot be read now.
    async fn list_deployments(&self, filter: &DeploymentFilter) -> Result<Page<StoredDeployment>>;
}

/// A [`RecordSink`] that is the store.
pub struct StoreSink(pub Arc<dyn GraphStore>);

#[async_trait]
impl RecordSink for StoreSink {
    async fn record_deployments(&self, batch: Vec<Deployment>) -> Result<Vec<RecordOutcome>> {
        self.0.record_deployments(batch).await
    }

    async fn record_changes(&self, batch: Vec<Change>) -> Result<Vec<ChangeOutcome>> {
        self.0.record_changes(batch).await
    }

    async fn list_deployments(&self, filter: &DeploymentFilter) -> Result<Page<StoredDeployment>> {
        self.0.list_deployments(filter).await
    }
}
