-- From migrations/versions/0014_status_report_functions.downgrade.sql
-- squawk-ignore-file ban-drop-function
-- These functions only read: dropping them loses no data.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

DROP FUNCTION ipintel.status_open_failures();
DROP FUNCTION ipintel.status_last_runs(bigint);
DROP FUNCTION ipintel.report_asn_moves(timestamptz, timestamptz, bigint);
DROP FUNCTION ipintel.report_ip_types(timestamptz, timestamptz, bigint);
DROP FUNCTION ipintel.report_top_countries(timestamptz, timestamptz, bigint);
DROP FUNCTION ipintel.report_top_asns(timestamptz, timestamptz, bigint);
