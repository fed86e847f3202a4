-- Clusters: a Service is (name, namespace, environment, cluster). Everything recorded before
-- is in the cluster `default`, whose uids are the ones it had (the cluster is part of a uid only
-- outside it), so nothing is re-keyed.
ALTER TABLE services ADD COLUMN cluster TEXT NOT NULL DEFAULT 'default';
ALTER TABLE deployments ADD COLUMN cluster TEXT NOT NULL DEFAULT 'default';
-- The alert's `cluster` label, when it has one (NULL: any cluster).
ALTER TABLE alerts ADD COLUMN cluster TEXT;
CREATE INDEX services_cluster ON services (cluster, name, environment);
CREATE INDEX deployments_cluster_newest ON deployments (cluster, started_at_us DESC, uid DESC);
CREATE INDEX infra_snapshots_cluster_newest ON infra_snapshots (cluster, taken_at_us DESC);
