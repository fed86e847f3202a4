// Canary analyses: (CanaryAnalysis)-[:ANALYZED]->(DeploymentEvent),
// (CanaryAnalysis)-[:MEASURED]->(MetricVerdict). A MetricVerdict's uid is derived from its
// analysis and the metric's name; `service_uid` repeats the deployment's for timelines.
CREATE CONSTRAINT canary_analysis_uid IF NOT EXISTS FOR (n:CanaryAnalysis) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT metric_verdict_uid IF NOT EXISTS FOR (n:MetricVerdict) REQUIRE n.uid IS UNIQUE;
CREATE INDEX canary_analysis_service IF NOT EXISTS FOR (n:CanaryAnalysis) ON (n.service_uid, n.started_at_us);
CREATE INDEX canary_analysis_deployment IF NOT EXISTS FOR (n:CanaryAnalysis) ON (n.deployment_uid, n.started_at_us);
CREATE INDEX canary_analysis_newest IF NOT EXISTS FOR (n:CanaryAnalysis) ON (n.started_at_us);
CREATE INDEX metric_verdict_outcome IF NOT EXISTS FOR (n:MetricVerdict) ON (n.outcome, n.name);
