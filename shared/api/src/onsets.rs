//! The follow-up pipeline's source of alert metric onsets: the rule's metric read from
//! Prometheus ([`deploygraph_canary::onset`]) before an alert is first attributed, and, when a
//! service health query is configured, what each service around the alert did
//! ([`deploygraph_canary::onset::read_service_metric`]).

use crate::metrics::Metrics;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deploygraph_analysis::pipeline::Onsets;
use deploygraph_canary::onset::{read_onset, read_service_metric, service_query};
use deploygraph_canary::prometheus::Prometheus;
use deploygraph_canary::prometheus::QueryFailure;
use deploygraph_model::{Alert, MetricOnset, ServiceMetric, ServiceRef};
use moka::future::Cache;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How many services' health metrics are read from Prometheus at once for one alert.
const SERVICE_READS_AT_ONCE: usize = 4;

/// How long a service's health reading is reused for other alerts that started at the same
/// moment with the same window (an alert storm: one rule evaluation fires many alerts around
/// one dependency). Short, because a reading of a moment minutes ago may still gain samples.
const SERVICE_READING_REUSE: Duration = Duration::from_secs(30);

/// How many services' readings are kept for reuse.
const SERVICE_READINGS_KEPT: u64 = 4_096;

/// After Prometheus did not answer, how long reads are not tried (answered as unavailable at
/// once): an alert storm while Prometheus is down, each alert's attribution read again by its
/// deferred revisits, would otherwise hold the follow-up workers for each read's timeout.
const UNAVAILABLE_PAUSE: Duration = Duration::from_secs(30);

/// What a reading depends on: the query (with the service's name in it), the alert's start
/// and the window.
type ReadingKey = (String, DateTime<Utc>, Duration);

/// Reads onsets from one Prometheus (the one `serve --prometheus` names; an alert's own
/// `generatorURL` host is never called).
pub struct PrometheusOnsets {
    prometheus: Prometheus,
    metrics: Arc<Metrics>,
    /// The service health query (`$service` for the service's name), when configured.
    service_template: Option<String>,
    /// Recent readings, and readings under way: alerts asking for the same reading at once
    /// share one query; a failed query is not kept.
    readings: Cache<ReadingKey, ServiceMetric>,
    /// Until when reads are not tried, after Prometheus did not answer ([`UNAVAILABLE_PAUSE`]).
    paused_until: std::sync::Mutex<Option<std::time::Instant>>,
}

impl PrometheusOnsets {
    /// Onsets from `prometheus`, counted in `metrics` (`deploygraph_alert_onsets_total`).
    pub fn new(prometheus: Prometheus, metrics: Arc<Metrics>) -> Self {
        Self {
            prometheus,
            metrics,
            service_template: None,
            readings: Cache::builder()
                .max_capacity(SERVICE_READINGS_KEPT)
                .time_to_live(SERVICE_READING_REUSE)
                .build(),
            paused_until: std::sync::Mutex::new(None),
        }
    }

    /// `service`'s health reading for an alert that started at `alert_start`: reused when
    /// another alert asked for the same one within [`SERVICE_READING_REUSE`] (or is asking
    /// now), else read from Prometheus.
    async fn service_reading(
        &self,
        query: String,
        alert_start: DateTime<Utc>,
        window: Duration,
    ) -> Result<ServiceMetric, Arc<QueryFailure>> {
        let queried = AtomicBool::new(false);
        let key = (query.clone(), alert_start, window);
        let reading = self
            .readings
            .try_get_with(key, async {
                queried.store(true, Ordering::Relaxed);
                read_service_metric(&self.prometheus, &query, alert_start, window).await
            })
            .await;
        if queried.load(Ordering::Relaxed) {
            self.metrics.service_metric_query();
        }
        reading
    }

    /// Whether reads are paused: Prometheus did not answer moments ago.
    fn paused(&self) -> bool {
        let now = std::time::Instant::now();
        self.paused_until
            .lock()
            .map(|until| until.is_some_and(|u| now < u))
            .unwrap_or(false)
    }

    /// Prometheus did not answer: reads are paused for [`UNAVAILABLE_PAUSE`].
    fn pause(&self) {
        if let Ok(mut until) = self.paused_until.lock() {
            *until = Some(std::time::Instant::now() + UNAVAILABLE_PAUSE);
        }
    }

    /// Also reads the health metric of each service around an alert: `template` with
    /// `$service` for the service's name (one series whose rise means harm).
    #[must_use]
    pub fn with_service_template(mut self, template: Option<String>) -> Self {
        self.service_template = template;
        self
    }
}

#[async_trait]
impl Onsets for PrometheusOnsets {
    async fn onset(&self, alert: &Alert, window: chrono::Duration) -> Option<MetricOnset> {
        let window = window.to_std().ok()?;
        if self.paused() {
            self.metrics.alert_onset("unavailable");
            return None;
        }
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
                // No break yet, minutes after the alert: read again when it is next attributed (a
                // revisit is deferred for it).
                self.metrics.alert_onset("too_early");
                None
            }
            Err(e) => {
                tracing::warn!(alert.uid = %alert.uid, error.message = %e, "reading the alert's metric onset failed; it is read again when the alert is next attributed");
                self.metrics.alert_onset("unavailable");
                self.pause();
                None
            }
        }
    }

    fn reads_services(&self) -> bool {
        self.service_template.is_some()
    }

    async fn services(
        &self,
        alert: &Alert,
        services: &[ServiceRef],
        window: chrono::Duration,
    ) -> Option<BTreeMap<String, ServiceMetric>> {
        let template = self.service_template.as_deref()?;
        let window = window.to_std().ok()?;
        if self.paused() {
            self.metrics.service_metric_read("unavailable");
            return None;
        }
        let mut reads = Vec::with_capacity(services.len());
        for chunk in services.chunks(SERVICE_READS_AT_ONCE) {
            let mut batch = Vec::with_capacity(chunk.len());
            for service in chunk {
                let query = service_query(
                    template,
                    service.name.as_str(),
                    service.namespace.as_deref().unwrap_or_default(),
                    service.cluster.as_str(),
                );
                batch.push(async move {
                    let read = self.service_reading(query, alert.starts_at, window).await;
                    (service.shown(), read)
                });
            }
            reads.extend(futures::future::join_all(batch).await);
        }
        let mut out = BTreeMap::new();
        for (service, read) in reads {
            match read {
                Ok(metric) => {
                    self.metrics.service_metric_read(match &metric {
                        ServiceMetric::Moved { .. } => "moved",
                        ServiceMetric::Steady => "steady",
                        ServiceMetric::NoSeries => "no_series",
                    });
                    out.insert(service, metric);
                }
                Err(e) => {
                    tracing::warn!(alert.uid = %alert.uid, service = %service, error.message = %e, "reading a service's health metric failed; the alert's services are read again when it is next attributed");
                    self.metrics.service_metric_read("unavailable");
                    self.pause();
                    return None;
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use deploygraph_canary::prometheus::PrometheusConfig;
    use std::sync::atomic::AtomicUsize;

    /// A Prometheus that accepts connections and never answers: every read times out.
    async fn silent_prometheus() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        (url, connections)
    }

    #[tokio::test]
    async fn after_prometheus_did_not_answer_reads_pause_instead_of_waiting_again() {
        let (url, connections) = silent_prometheus().await;
        let mut config = PrometheusConfig::new(&url).unwrap();
        config.timeout = Duration::from_millis(300);
        let onsets =
            PrometheusOnsets::new(Prometheus::new(config).unwrap(), Arc::new(Metrics::new()))
                .with_service_template(Some("up{service=\"$service\"}".into()));
        let mut alert = Alert::test("fp-pause", "api", 0);
        alert.generator_url =
            Some("http://prometheus/graph?g0.expr=rate%28errors%5B5m%5D%29+%3E+1".into());
        let window = chrono::Duration::minutes(60);
        assert_eq!(onsets.onset(&alert, window).await, None);
        let tried = connections.load(Ordering::SeqCst);
        assert!(tried >= 1, "the first read went to Prometheus");
        // Within the pause: answered as unavailable without a query.
        assert_eq!(onsets.onset(&alert, window).await, None);
        assert_eq!(
            onsets
                .services(
                    &alert,
                    &[ServiceRef::test("api"), ServiceRef::test("db")],
                    window
                )
                .await,
            None
        );
        assert_eq!(connections.load(Ordering::SeqCst), tried);
        // After the pause, Prometheus is asked again.
        *onsets.paused_until.lock().unwrap() = Some(std::time::Instant::now());
        assert_eq!(onsets.onset(&alert, window).await, None);
        assert!(connections.load(Ordering::SeqCst) > tried);
    }
}
