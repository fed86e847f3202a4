// Attribution scores became probabilities (the evidence model in deploygraph-analysis): the
// scores of the earlier model are removed and every alert that had suspects is queued for
// re-attribution by the follow-up pipeline, so scores of two models are never mixed.
MATCH (:DeploymentEvent)-[:TRIGGERS]->(a:Alert)
WITH DISTINCT a
MERGE (f:FollowUp {uid: 'alert:' + a.uid})
  ON CREATE SET f.kind = 'alert', f.subject = a.uid, f.enqueued_at_us = timestamp() * 1000,
                f.claimable_at_us = 0, f.attempts = 0;
MATCH (:DeploymentEvent)-[t:TRIGGERS]->(:Alert) DELETE t;
