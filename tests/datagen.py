"""Set-based generators of realistic tier rows for tests that need volume (no Python row loops)."""

from __future__ import annotations

import psycopg
from psycopg import sql

POPULATE_SQL = """
INSERT INTO ipintel.asn_inventory (asn, as_name, as_country, rir, allocated)
SELECT 64500 + g, 'TEST-AS-' || g, (ARRAY['US','DE','CN','RU','BR','NL'])[1 + g % 6], 'ripencc', date '2005-01-01' + g
FROM generate_series(1, {asns}) AS g;

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, enrichment, current_asn)
SELECT '11.0.0.0'::inet + g * 7,
       timestamptz '2026-10-01' + g * interval '1 minute',
       timestamptz '2026-10-01' + g * interval '1 minute' + interval '2 days',
       jsonb_build_object('maxmind', jsonb_build_object('country', (ARRAY['US','DE','CN','RU','BR','NL'])[1 + g % 6])),
       64500 + 1 + g % {asns}
FROM generate_series(1, {ips}) AS g;

INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, build, changed_at)
SELECT ip, 'maxmind', timestamptz '2026-11-01', extract(epoch FROM timestamptz '2026-10-28')::bigint,
       timestamptz '2026-11-01'
FROM ipintel.ip_inventory;

INSERT INTO ipintel.session_summaries (session_id, sensor, first_event_at, last_event_at, protocol, source_ip,
                                       login_attempts, login_successes, command_count, event_count)
SELECT md5(g::text), 'sensor-' || g % 3, timestamptz '2026-10-01' + g * {step},
       timestamptz '2026-10-01' + g * {step} + interval '20 seconds',
       CASE WHEN g % 5 = 0 THEN 'telnet' ELSE 'ssh' END,
       '11.0.0.0'::inet + (1 + g % {ips}) * 7, 3, g % 2, g % 4, 8
FROM generate_series(1, {sessions}) AS g;

UPDATE ipintel.ip_inventory i SET session_count = s.n
FROM (SELECT source_ip, count(*) AS n FROM ipintel.session_summaries GROUP BY source_ip) s
WHERE s.source_ip = i.ip;

INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
SELECT ip, current_asn, tstzrange(timestamptz '2026-11-01', NULL), 'maxmind'
FROM ipintel.ip_inventory;
"""


def populate(dsn: str, *, sessions: int = 100_000, ips: int = 20_000, asns: int = 500,
             step: str = "30 seconds") -> None:
    """Fill the tiers with `sessions` sessions from `ips` IPs in `asns` ASNs (all consistent), one
    session every `step` from 2026-10-01 on."""
    with psycopg.connect(dsn) as conn:
        # Literals, not parameters: several statements run in one call only without parameters.
        conn.execute(sql.SQL(POPULATE_SQL).format(
            asns=sql.Literal(asns), ips=sql.Literal(ips), sessions=sql.Literal(sessions),
            step=sql.SQL("{}::interval").format(sql.Literal(step))))


def tier_counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            """SELECT (SELECT count(*) FROM ipintel.asn_inventory),
                      (SELECT count(*) FROM ipintel.ip_inventory),
                      (SELECT count(*) FROM ipintel.session_summaries),
                      (SELECT count(*) FROM ipintel.ip_asn_history)"""
        ).fetchone()
    assert row is not None
    return dict(zip(("asn_inventory", "ip_inventory", "session_summaries", "ip_asn_history"), row, strict=True))
