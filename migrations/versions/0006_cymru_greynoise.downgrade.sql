-- From migrations/versions/0006_cymru_greynoise.downgrade.sql
-- squawk-ignore-file ban-drop-table, ban-drop-function
-- Merged Cymru and GreyNoise results stay in ip_inventory.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

DROP FUNCTION ipintel.spend_budget(text, bigint, bigint);
DROP TABLE ipintel.api_budget;
DROP FUNCTION ipintel.merge_greynoise(bigint, bigint);
DROP FUNCTION ipintel.merge_cymru(bigint, bigint);
DROP TABLE ipintel_staging.greynoise_results;
DROP TABLE ipintel_staging.cymru_results;
