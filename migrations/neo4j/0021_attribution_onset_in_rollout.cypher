// The attribution model places each alert's metric onset against a candidate's whole rollout
// (from its start to its finish: features `onset_near` and `onset_lead` measure from the
// finish, `onset_in_rollout` the length of a rollout the onset fell in, `onset_found`), reads a
// service's history once for all of its candidates, and its weights were refitted: every alert
// with stored suspects is queued for re-attribution (a revisit), so that scores of the earlier
// weights are replaced by the follow-up pipeline; until then the alert's suspects say the
// attribution is pending.
MATCH ()-[:TRIGGERS]->(a:Alert)
WITH DISTINCT a
CALL (a) {
  MERGE (f:FollowUp {uid: 'revisit:' + a.uid})
    ON CREATE SET f.kind = 'revisit', f.subject = a.uid, f.enqueued_at_us = timestamp() * 1000,
                  f.claimable_at_us = 0, f.attempts = 0
} IN TRANSACTIONS OF 10000 ROWS;
