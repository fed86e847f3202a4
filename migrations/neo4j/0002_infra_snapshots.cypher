// Infrastructure snapshots: look-ups by the deployment they were taken for, newest first.
CREATE INDEX infra_snapshot_deployment IF NOT EXISTS FOR (n:InfraSnapshot) ON (n.deployment_uid, n.taken_at_us);
CREATE INDEX infra_snapshot_newest IF NOT EXISTS FOR (n:InfraSnapshot) ON (n.taken_at_us);
CREATE INDEX certificate_not_after IF NOT EXISTS FOR (n:Certificate) ON (n.not_after);
