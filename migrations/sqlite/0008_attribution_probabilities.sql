-- Attribution scores became probabilities (the evidence model in deploygraph-analysis): the
-- scores of the earlier model are removed and every alert that had suspects is queued for
-- re-attribution by the follow-up pipeline, so scores of two models are never mixed.
INSERT INTO follow_ups (kind, subject, enqueued_at_us, claimable_at_us, attempts)
SELECT DISTINCT 'alert', alert_uid, CAST(strftime('%s', 'now') AS INTEGER) * 1000000, 0, 0
FROM triggers WHERE true
ON CONFLICT (kind, subject) DO NOTHING;
DELETE FROM triggers;
