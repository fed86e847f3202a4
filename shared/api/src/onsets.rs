//! The follow-up pipeline's source of alert metric onsets: the rule's metric read from
//! Prometheus ([`deploygraph_canary::onset`]) before an alert is first attributed.

use crate::metrics::Metrics;
use async_trait::async_trait;
use deploygraph_analysis::pipeline::Onsets;
use deploygraph_canary::onset::read_onset;
use deploygraph_canary::prometheus::Prometheus;
use deploygraph_model::{Alert, MetricOnset};
use std::sync::Arc;

/// Reads onsets from one Prometheus (the one `serve --prometheus` names; an alert's own
/// `generatorURL` host is never called).
pub struct PrometheusOnsets {
    prometheus: Prometheus,
    metrics: Arc<Metrics>,
}

impl PrometheusOnsets {
    /// Onsets from `prometheus`, counted in `metrics` (`deploygraph_alert_onsets_total`).
    pub fn new(prometheus: Prometheus, metrics: Arc<Metrics>) -> Self {
        Self {
            prometheus,
            metrics,
        }
    }
}

#[async_trait]
impl Onsets for PrometheusOnsets {
    async fn onset(&self, alert: &Alert, window: chrono::Duration) -> Option<MetricOnset> {
        let window = window.to_std().ok()?;
        match read_onset(
            &self.prometheus,
            alert.generator_url.as_deref(),
            &alert.labels,
            alert.starts_at,
            window,
        )
        .await
        {
            Ok(Some(onset)) => {
                let outcome = match &onset {
                    MetricOnset::Found { .. } => "found",
                    MetricOnset::NotFound { .. } => "not_found",
                };
                self.metrics.alert_onset(outcome);
                Some(onset)
            }
            Ok(None) => {
                // No break yet, minutes after the alert: read again when it is next attributed.
                self.metrics.alert_onset("too_early");
                None
            }
            Err(e) => {
                tracing::warn!(alert.uid = %alert.uid, error.message = %e, "reading the alert's metric onset failed; it is read again when the alert is next attributed");
                self.metrics.alert_onset("unavailable");
                None
            }
        }
    }
}
