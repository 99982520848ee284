-- From migrations/versions/0001_tiers.downgrade.sql
-- squawk-ignore-file ban-drop-table, ban-drop-function, ban-drop-schema
-- Downgrading to base is the explicit request to remove ipintel: the drops are the point.
-- Drops exactly what 0001 created, by name and without CASCADE: an object someone else
-- added to these schemas makes the downgrade stop instead of vanishing silently.
-- btree_gist is shared with whatever else uses the database and stays installed.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP TABLE ipintel.ip_asn_history;
DROP TABLE ipintel.session_summaries;
DROP TABLE ipintel.ip_inventory;
DROP TABLE ipintel.asn_inventory;
DROP FUNCTION ipintel.normalize_ip(inet);
DROP FUNCTION ipintel.is_bogon(inet);
DROP SCHEMA ipintel_staging;
DROP SCHEMA ipintel;
