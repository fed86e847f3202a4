// Key history: the most recent changes of one config key anywhere in the graph, read from an
// index. A ConfigChange repeats its deployment's start (`started_at_us`), backfilled here in
// batches (a large graph holds hundreds of thousands of them), so "the N most recent
// deployments that changed this path" is one index range.
CREATE INDEX config_change_recent IF NOT EXISTS FOR (n:ConfigChange) ON (n.path, n.started_at_us);
MATCH (d:DeploymentEvent)-[:CHANGED]->(x:ConfigChange)
WHERE x.started_at_us IS NULL
CALL {
  WITH d, x
  SET x.started_at_us = d.started_at_us
} IN TRANSACTIONS OF 10000 ROWS;
