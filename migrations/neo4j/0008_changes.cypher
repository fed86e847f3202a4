// Changes that are not rollouts: (Change)-[:AFFECTS]->(Service), and
// (Change)-[:TRIGGERS]->(Alert) beside the deployments' TRIGGERS. Look-ups by uid and by time.
CREATE CONSTRAINT change_uid IF NOT EXISTS FOR (n:Change) REQUIRE n.uid IS UNIQUE;
CREATE INDEX change_newest IF NOT EXISTS FOR (n:Change) ON (n.at_us);
CREATE INDEX change_kind IF NOT EXISTS FOR (n:Change) ON (n.kind);
