-- From migrations/versions/0032_attribution_daily.fill.sql
-- After the revision's transaction: attribution_daily for every day the upgrade queued, in one
-- transaction of its own (EXCLUSIVE on attribution_daily only: ingest and enrich go on; their
-- writes meanwhile queue their days again, rolled up by their own roll_up_attribution call).
SELECT ipintel.roll_up_attribution();
