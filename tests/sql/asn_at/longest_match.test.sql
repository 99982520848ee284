-- asn_at() / routing_asns(): the longest prefix containing the address in the latest snapshot
-- taken on or before the day, within the dataset's max_age.
BEGIN;
SELECT plan(8);

SELECT ipintel_tests.load_routes('2026-03-01', '{{81.2.0.0/16,100},{81.2.69.0/24,200},{5.6.7.0/24,300},{5.6.7.0/24,301},{2a01:4f8::/32,24940}}');
SELECT ipintel_tests.load_routes('2026-03-08', '{{81.2.0.0/16,100},{81.2.69.0/24,201},{2a01:4f8::/32,24940}}');

SELECT is(ipintel.asn_at('81.2.69.7', '2026-03-02 12:00Z'), 200::bigint, 'the more specific /24 wins over the /16');
SELECT is(ipintel.asn_at('81.2.70.7', '2026-03-02 12:00Z'), 100::bigint, 'outside the /24: the covering /16');
SELECT is(ipintel.asn_at('81.2.69.7', '2026-03-09 00:30Z'), 201::bigint, 'after the move: the new origin');
SELECT is(ipintel.asn_at('5.6.7.8', '2026-03-01 23:00Z'), 300::bigint, 'multi-origin: the smallest origin');
SELECT is(ipintel.asn_at('2a01:4f8:1:2::3', '2026-03-03 00:00Z'), 24940::bigint, 'IPv6');
SELECT is(ipintel.asn_at('81.2.69.7', '2026-02-28 23:59Z'), NULL, 'before the first snapshot: not covered');
SELECT is(ipintel.asn_at('81.2.69.7', '2026-03-16 00:00Z'), NULL,
          'eight days after the last snapshot: older than max_age (7 days), not covered');
UPDATE ipintel.routing_datasets SET max_age = interval '30 days';
SELECT is(ipintel.asn_at('81.2.69.7', '2026-03-16 00:00Z'), 201::bigint, 'with a longer max_age it covers');

SELECT * FROM finish();
ROLLBACK;
