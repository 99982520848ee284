"""Classification at full size: `ips` IPs against `ranges` published ranges.

Generated set-based in SQL: range lists shaped like the real ones (cloud lists of /12 to /24
IPv4 and /32 to /48 IPv6 ranges, a third of them nested in a wider range of the same list, with
services and regions; Cloudflare's few wide ranges; a Tor list of single addresses; the curated
hosting-ASN list), each loaded as one snapshot with `ipintel.load_range_snapshot`, as `ipintel
ranges load` does; an inventory of `ips` IPs (a quarter inside a listed range, the rest spread
over the address space) in 2,000 ASNs, some named like consumer ISPs, each IP with a MaxMind
answer in enrichment_state (a few anonymous proxies).

Measured: `ipintel.ip_classes` over every IP of the inventory in one call (classification
alone, nothing written); `ipintel.classify_inventory` over the whole inventory in batches of
10,000 as `ipintel ranges load` runs it after a load, first when every row changes, then again
when none does.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
from psycopg import sql

from bench.maxmind_pass import checkpoint, scratch_databases
from ipintel import schema

# (list, share of the ranges) for the cloud and CDN lists; Tor exits are a fixed share of /32s.
LISTS = [("aws", 0.40), ("azure", 0.25), ("gcp", 0.10), ("oracle", 0.05), ("digitalocean", 0.05)]
TOR_SHARE = 0.14

STAGE_CLOUD = """
INSERT INTO ipintel_staging.listed_ranges (batch_id, prefix, service, region)
SELECT %(batch)s, p.prefix, (ARRAY['', 'EC2', 'S3', 'CLOUDFRONT', 'AzureStorage', 'Google Cloud'])[1 + g %% 6],
       (ARRAY['us-east-1', 'eu-west-1', 'ap-northeast-2', 'eastus', ''])[1 + g %% 5]
FROM generate_series(0, %(n)s - 1) g
CROSS JOIN LATERAL (SELECT CASE
    -- every sixth an IPv6 range
    WHEN g %% 6 = 5 THEN set_masklen(format('2600:%%s:%%s::', to_hex(%(list_no)s * 16 + g %% 16), to_hex(g))::inet,
                                     32 + (g %% 3) * 8)::cidr
    -- a third nested: a /24 inside the range two before it
    WHEN g %% 3 = 2 THEN set_masklen('20.0.0.0'::inet + ((%(list_no)s * 200000 + g - 2)::bigint << 12), 24)::cidr
    ELSE set_masklen('20.0.0.0'::inet + ((%(list_no)s * 200000 + g)::bigint << 12), 20 - (g %% 4) * 2)::cidr
END AS prefix) p
"""

STAGE_TOR = """
INSERT INTO ipintel_staging.listed_ranges (batch_id, prefix, service, region)
SELECT %(batch)s, set_masklen('185.220.0.0'::inet + g * 3, 32)::cidr, '', ''
FROM generate_series(0, %(n)s - 1) g
"""

STAGE_CLOUDFLARE = """
INSERT INTO ipintel_staging.listed_ranges (batch_id, prefix, service, region)
SELECT %(batch)s, p::cidr, '', '' FROM unnest(ARRAY['173.245.48.0/20', '103.21.244.0/22', '103.22.200.0/22',
    '103.31.4.0/22', '141.101.64.0/18', '108.162.192.0/18', '190.93.240.0/20', '188.114.96.0/20', '197.234.240.0/22',
    '198.41.128.0/17', '162.158.0.0/15', '104.16.0.0/13', '104.24.0.0/14', '172.64.0.0/13', '131.0.72.0/22']) p
"""

STAGE_HOSTING = """
INSERT INTO ipintel_staging.listed_asns (batch_id, asn, name, source)
SELECT %(batch)s, 70000 + g, 'HOSTER-' || g, 'https://www.peeringdb.com/asn/' || (70000 + g)
FROM generate_series(0, 39) g
"""

INVENTORY = ["""
INSERT INTO ipintel.asn_inventory (asn, as_name)
SELECT 70000 + g, CASE WHEN g %% 10 = 3 THEN 'BROADBAND-ISP-' || g || ', US' ELSE 'NETWORK-' || g || ', DE' END
FROM generate_series(0, 1999) g
""", """
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count, current_asn, current_asn_source, ip_type,
                                  ip_type_source)
SELECT y.ip, now(), now(), 1, 70000 + y.g %% 2000, 'maxmind', 'routed', 'maxmind'
FROM (SELECT x.ip, min(g) AS g
      FROM generate_series(1, %(ips)s * 102 / 100) g
      CROSS JOIN LATERAL (SELECT CASE
          -- a quarter inside the cloud lists' IPv4 ranges, some in the Tor list
          WHEN g %% 4 = 0 THEN '20.0.0.0'::inet + (((g %% 5) * 200000 + (g::bigint * 7919) %% %(per_list)s) << 12) + g %% 4096
          WHEN g %% 97 = 1 THEN '185.220.0.0'::inet + (g %% %(tor)s) * 3
          WHEN g %% 13 = 2 THEN format('2600:%%s::%%s:%%s', to_hex(g %% 80), to_hex(g >> 16), to_hex(g & 65535))::inet
          ELSE '60.0.0.0'::inet + (g::bigint * 1013)
      END AS ip) x
      GROUP BY x.ip
      ORDER BY 2
      LIMIT %(ips)s) y
""", """
INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, build, changed_at, asn, asn_observed, country, ip_type)
SELECT i.ip, 'maxmind', now(), 1, now(), i.current_asn, true, 'US',
       CASE WHEN hashtext(host(i.ip)) %% 200 = 0 THEN 'anonymizer' END
FROM ipintel.ip_inventory i
"""]


def _stage_and_load(conn: psycopg.Connection[Any], list_name: str, statement: str, params: dict[str, Any]) -> int:
    batch = conn.execute("SELECT nextval('ipintel_staging.batch_id_seq')").fetchone()
    assert batch is not None
    conn.execute(statement, {"batch": batch[0], **params})  # type: ignore[arg-type]  # our own constants
    row = conn.execute("SELECT entries FROM ipintel.load_range_snapshot(%s, current_date, 'bench', %s)",
                       (list_name, batch[0])).fetchone()
    assert row is not None
    return int(row[0])


def run(server: str, *, ips: int = 1_000_000, ranges: int = 15_000) -> dict[str, Any]:
    db = f"ipintel_bench_classify_{uuid.uuid4().hex[:8]}"
    results: dict[str, Any] = {"ips": ips, "ranges_asked": ranges}
    with scratch_databases(server, db) as (dsn,):
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        schema.upgrade(dsn)
        with psycopg.connect(dsn) as conn:
            loaded = {}
            for number, (name, share) in enumerate(LISTS):
                loaded[name] = _stage_and_load(conn, name, STAGE_CLOUD, {"n": int(ranges * share), "list_no": number})
            loaded["tor_bulk_exit_list"] = _stage_and_load(conn, "tor_bulk_exit_list", STAGE_TOR,
                                                           {"n": int(ranges * TOR_SHARE)})
            loaded["cloudflare_ipv4"] = _stage_and_load(conn, "cloudflare_ipv4", STAGE_CLOUDFLARE, {})
            loaded["hosting_asns"] = _stage_and_load(conn, "hosting_asns", STAGE_HOSTING, {})
            for statement in INVENTORY:
                conn.execute(statement, {"ips": ips, "per_list": max(1, int(ranges * min(s for _, s in LISTS))),
                                         "tor": max(1, int(ranges * TOR_SHARE))})
            conn.commit()
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
            row = conn.execute("SELECT count(*) FROM ipintel.listed_ranges").fetchone()
            inventory = conn.execute("SELECT count(*) FROM ipintel.ip_inventory").fetchone()
            assert row is not None and inventory is not None
        results |= {"ranges": row[0], "ranges_per_list": loaded, "inventory_ips": inventory[0]}
        print(f"classify: {row[0]:,} ranges in {len(loaded) - 1} range lists, 40 hosting ASNs; "
              f"{inventory[0]:,} IPs in ip_inventory", flush=True)
        checkpoint(server)

        with psycopg.connect(dsn, autocommit=True) as conn:
            started = time.perf_counter()
            counts = conn.execute(
                "SELECT c.ip_type, count(*) FROM ipintel.ip_classes("
                "  ARRAY(SELECT ip FROM ipintel.ip_inventory ORDER BY ip),"
                "  array_fill(current_date, ARRAY[(SELECT count(*)::int FROM ipintel.ip_inventory)]),"
                "  ARRAY(SELECT current_asn FROM ipintel.ip_inventory ORDER BY ip),"
                "  ARRAY(SELECT current_asn_source FROM ipintel.ip_inventory ORDER BY ip)) c "
                "GROUP BY 1 ORDER BY 2 DESC").fetchall()
            elapsed = time.perf_counter() - started
        results |= {"ip_classes_seconds": round(elapsed, 2), "classes": dict(counts)}
        print(f"    ip_classes over {inventory[0]:,} IPs (one call, nothing written): {elapsed:.1f} s; "
              + ", ".join(f"{t} {n:,}" for t, n in counts), flush=True)

        for label in ("classify_inventory_first_seconds", "classify_inventory_again_seconds"):
            with psycopg.connect(dsn, autocommit=True) as conn:
                started = time.perf_counter()
                after, changed = None, 0
                while True:
                    batch = conn.execute("SELECT * FROM ipintel.classify_inventory(%s, 10000)", (after,)).fetchone()
                    assert batch is not None
                    if batch[0] is None:
                        break
                    after, changed = batch[0], changed + batch[2]
                elapsed = time.perf_counter() - started
            results[label] = round(elapsed, 2)
            results[label.replace("seconds", "changed")] = changed
            print(f"    classify_inventory, batches of 10,000: {elapsed:.1f} s, {changed:,} rows changed", flush=True)
    return results
