// Clusters: a Service is (name, namespace, environment, cluster). Everything recorded before
// is in the cluster `default`, whose uids are the ones it had (the cluster is part of a uid only
// outside it), so nothing is re-keyed; the property is set so listings filter on it by index.
MATCH (s:Service) WHERE s.cluster IS NULL SET s.cluster = 'default';
MATCH (d:DeploymentEvent) WHERE d.cluster IS NULL SET d.cluster = 'default';
CREATE INDEX service_cluster IF NOT EXISTS FOR (n:Service) ON (n.cluster, n.name);
CREATE INDEX deployment_event_cluster IF NOT EXISTS FOR (n:DeploymentEvent) ON (n.cluster, n.started_at_us);
CREATE INDEX infra_snapshot_cluster IF NOT EXISTS FOR (n:InfraSnapshot) ON (n.cluster, n.taken_at_us);
