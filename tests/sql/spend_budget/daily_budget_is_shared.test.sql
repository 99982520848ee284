-- spend_budget(): lookups granted from a source's budget for the current UTC day, shared by
-- every run, never more than the daily limit in total.
BEGIN;
SELECT plan(7);

SELECT is(ipintel.spend_budget('greynoise', 30, 50), 30::bigint, 'a first run gets what it asks within the limit');
SELECT is(ipintel.spend_budget('greynoise', 30, 50), 20::bigint, 'a second run on the same day gets what is left');
SELECT is(ipintel.spend_budget('greynoise', 5, 50), 0::bigint, 'a spent budget grants nothing');
SELECT is(used, 50::bigint, 'the day''s row counts every lookup granted')
FROM ipintel.api_budget WHERE source = 'greynoise' AND day = (now() AT TIME ZONE 'UTC')::date;

-- Yesterday's spending does not count today.
UPDATE ipintel.api_budget SET day = day - 1 WHERE source = 'greynoise';
SELECT is(ipintel.spend_budget('greynoise', 10, 50), 10::bigint, 'a new UTC day starts a new budget');
SELECT is(ipintel.spend_budget('greynoise', 10, 0), 0::bigint, 'a limit of 0 grants nothing');
SELECT throws_ok($$SELECT ipintel.spend_budget('shodan', 1, 10)$$, '23503', NULL,
                 'only a registered source has a budget');

SELECT * FROM finish();
ROLLBACK;
