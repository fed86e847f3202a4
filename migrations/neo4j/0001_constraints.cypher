// deploygraph on Neo4j, schema v1: one uniqueness constraint on `uid` per label, and the
// indexes the listing and FOLLOWS-chain queries use.
CREATE CONSTRAINT service_uid IF NOT EXISTS FOR (n:Service) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT deployment_event_uid IF NOT EXISTS FOR (n:DeploymentEvent) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT commit_uid IF NOT EXISTS FOR (n:Commit) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT image_uid IF NOT EXISTS FOR (n:Image) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT helm_revision_uid IF NOT EXISTS FOR (n:HelmRevision) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT config_change_uid IF NOT EXISTS FOR (n:ConfigChange) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT validation_result_uid IF NOT EXISTS FOR (n:ValidationResult) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT alert_uid IF NOT EXISTS FOR (n:Alert) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT infra_snapshot_uid IF NOT EXISTS FOR (n:InfraSnapshot) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT check_uid IF NOT EXISTS FOR (n:Check) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT certificate_uid IF NOT EXISTS FOR (n:Certificate) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT chaos_run_uid IF NOT EXISTS FOR (n:ChaosRun) REQUIRE n.uid IS UNIQUE;
CREATE INDEX deployment_event_newest IF NOT EXISTS FOR (n:DeploymentEvent) ON (n.started_at_us);
CREATE INDEX deployment_event_service IF NOT EXISTS FOR (n:DeploymentEvent) ON (n.service, n.started_at_us);
CREATE INDEX deployment_event_chain IF NOT EXISTS FOR (n:DeploymentEvent) ON (n.service_uid, n.started_at_us);
CREATE INDEX alert_type IF NOT EXISTS FOR (n:Alert) ON (n.type);
CREATE INDEX alert_fingerprint IF NOT EXISTS FOR (n:Alert) ON (n.fingerprint);
