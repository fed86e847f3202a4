// The attribution model reads what the health metric of each service around an alert did
// before it (features `service_moved_near`, `service_moved_before`, `service_steady`,
// `moved_below_first`) and its weights were refitted: every alert with stored suspects is
// queued for re-attribution (a revisit), so that scores of the earlier weights are replaced by
// the follow-up pipeline; until then the alert's suspects say the attribution is pending.
MATCH ()-[:TRIGGERS]->(a:Alert)
WITH DISTINCT a
CALL (a) {
  MERGE (f:FollowUp {uid: 'revisit:' + a.uid})
    ON CREATE SET f.kind = 'revisit', f.subject = a.uid, f.enqueued_at_us = timestamp() * 1000,
                  f.claimable_at_us = 0, f.attempts = 0
} IN TRANSACTIONS OF 10000 ROWS;
