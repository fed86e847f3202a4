-- The attribution model places each alert's metric onset against a candidate's whole rollout
-- (from its start to its finish: features `onset_near` and `onset_lead` measure from the
-- finish, `onset_in_rollout` the length of a rollout the onset fell in, `onset_found`), reads a
-- service's history once for all of its candidates, and its weights were refitted: every alert
-- with stored suspects is queued for re-attribution (a revisit), so that scores of the earlier
-- weights are replaced by the follow-up pipeline; until then the alert's suspects say the
-- attribution is pending.
INSERT INTO follow_ups (kind, subject, enqueued_at_us, claimable_at_us, attempts)
SELECT 'revisit', alert_uid, CAST(strftime('%s', 'now') AS INTEGER) * 1000000, 0, 0
FROM (SELECT alert_uid FROM triggers UNION SELECT alert_uid FROM change_triggers) WHERE true
ON CONFLICT (kind, subject) DO NOTHING;
