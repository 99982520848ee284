-- From migrations/versions/0032_attribution_daily.downgrade.sql
-- Back to 0029: the rollup, its queue, triggers and functions go. The hll extension stays (another
-- schema may use it); DROP EXTENSION hll by hand if none does.
-- squawk-ignore-file ban-drop-function, ban-drop-table
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

DROP TRIGGER session_summaries_attribution_insert ON ipintel.session_summaries;
DROP TRIGGER session_summaries_attribution_update_new ON ipintel.session_summaries;
DROP TRIGGER session_summaries_attribution_update_old ON ipintel.session_summaries;
DROP TRIGGER session_summaries_attribution_delete ON ipintel.session_summaries;
DROP FUNCTION ipintel.verify_attribution();
DROP FUNCTION ipintel.top_countries(date, date, bigint);
DROP FUNCTION ipintel.top_asns(date, date, bigint);
DROP FUNCTION ipintel.roll_up_attribution();
DROP FUNCTION ipintel.attribution_of_days(date[]);
DROP FUNCTION ipintel.queue_attribution_days();
DROP TABLE ipintel.attribution_dirty_days;
DROP TABLE ipintel.attribution_daily;
