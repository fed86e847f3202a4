// Release summaries: (ReleaseSummary)-[:SUMMARIZES]->(DeploymentEvent), one per deployment and
// template (the uid is derived from both). `service`, `environment` and `deployed_at_us` repeat
// the deployment's for the history read, newest deployment first.
CREATE CONSTRAINT release_summary_uid IF NOT EXISTS FOR (n:ReleaseSummary) REQUIRE n.uid IS UNIQUE;
CREATE INDEX release_summary_history IF NOT EXISTS FOR (n:ReleaseSummary) ON (n.service, n.environment, n.template, n.deployed_at_us);
