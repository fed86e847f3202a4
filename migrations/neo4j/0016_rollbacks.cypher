// Rollbacks: (Rollback)-[:UNDID]->(DeploymentEvent), (Rollback)-[:RESTORED]->(DeploymentEvent);
// `service_uid` repeats the undone deployment's for timelines.
CREATE CONSTRAINT rollback_uid IF NOT EXISTS FOR (n:Rollback) REQUIRE n.uid IS UNIQUE;
CREATE INDEX rollback_service IF NOT EXISTS FOR (n:Rollback) ON (n.service_uid, n.at_us);
CREATE INDEX rollback_deployment IF NOT EXISTS FOR (n:Rollback) ON (n.deployment_uid, n.at_us);
// The round that ended a canary analysis; analyses stored before are not known to be final.
MATCH (c:CanaryAnalysis) WHERE c.final IS NULL SET c.final = false;
