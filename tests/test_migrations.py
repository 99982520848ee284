"""Migrations a DBA can trust: reversible, and safe on a populated database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from ipintel import schema
from tests.datagen import populate, tier_counts

# The tiers' keys: added NOT VALID by 0002, validated by 0003.
FOREIGN_KEYS = {"ip_inventory_current_asn_fkey", "session_summaries_source_ip_fkey"}
# ip_asn_history's keys too, until 0026 traded them for verify_integrity (merges write history
# only for IPs and ASNs they have just locked and checked: the per-row check could never fail).
FOREIGN_KEYS_0002 = FOREIGN_KEYS | {"ip_asn_history_ip_fkey", "ip_asn_history_asn_fkey"}


# Revision 0036's downgrade adds snapshot_enrichment back at the end of session_summaries' columns
# (PostgreSQL cannot put a column back in its place): a schema taken down through it is the same
# but for where that column is listed (in the table, its partitions, its column comments and the
# `s.*` that a BEGIN ATOMIC body of an old revision expanded), and for the commas that follow.
MOVED_COLUMN = re.compile(r"\s+(s\.)?snapshot_enrichment( jsonb)?,?")
MOVED_COMMENT = re.compile(r"^--\n-- Name: COLUMN \w+\.snapshot_enrichment; Type: COMMENT;[^\n]*\n--\n\n"
                           r"COMMENT ON COLUMN [^\n]*\n\n\n", re.M)


def comparable(dump: str) -> tuple[list[str], int]:
    """A schema dump without the place of snapshot_enrichment, and how often it is named."""
    lines = MOVED_COMMENT.sub("", dump).splitlines()
    return [line.rstrip(",") for line in lines if not MOVED_COLUMN.fullmatch(line)], dump.count("snapshot_enrichment")


def ipintel_objects(dsn: str) -> list[str]:
    """Every schema, relation, function and type that belongs to ipintel."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """
            SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname LIKE 'ipintel%%'
            UNION ALL
            SELECT 'relation ' || n.nspname || '.' || c.relname
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname LIKE 'ipintel%%'
               OR (c.relname LIKE '%%ipintel%%' AND c.relname NOT LIKE 'ipintel_alembic_version%%')
               OR c.relname IN ('asn_inventory', 'ip_inventory', 'session_summaries', 'ip_asn_history')
            UNION ALL
            SELECT 'function ' || p.oid::regprocedure::text
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname LIKE 'ipintel%%' OR p.proname IN ('is_bogon', 'normalize_ip')
            UNION ALL
            SELECT 'type ' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE n.nspname LIKE 'ipintel%%'
            """
        ).fetchall()
    return sorted(r[0] for r in rows)


def foreign_keys(dsn: str) -> dict[str, bool]:
    """The foreign keys between the tiers (those of revisions 0002/0003) and whether validated."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """SELECT c.conname, c.convalidated FROM pg_constraint c
               JOIN pg_namespace n ON n.oid = c.connamespace
               WHERE n.nspname = 'ipintel' AND c.contype = 'f'
                 AND c.conrelid::regclass::text IN ('ipintel.asn_inventory', 'ipintel.ip_inventory',
                                                    'ipintel.session_summaries', 'ipintel.ip_asn_history')
                 AND c.confrelid::regclass::text IN ('ipintel.asn_inventory', 'ipintel.ip_inventory',
                                                     'ipintel.session_summaries')"""
        ).fetchall()
    return dict(rows)


def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_db: str) -> None:
    schema.upgrade(empty_db)
    assert ipintel_objects(empty_db), "upgrade head created nothing"
    assert foreign_keys(empty_db) == dict.fromkeys(FOREIGN_KEYS, True)

    schema.downgrade(empty_db, "base")
    assert ipintel_objects(empty_db) == []
    with psycopg.connect(empty_db) as conn:
        # Alembic's own bookkeeping table stays (empty): it is how alembic knows we are at base.
        assert conn.execute("SELECT count(*) FROM ipintel_alembic_version").fetchone() == (0,)

    schema.upgrade(empty_db)
    assert foreign_keys(empty_db) == dict.fromkeys(FOREIGN_KEYS, True)


@pytest.mark.slow
def test_foreign_key_revisions_round_trip_on_a_populated_database(db: str) -> None:
    populate(db, sessions=100_000, ips=20_000)
    before = tier_counts(db)
    assert before["session_summaries"] == 100_000 and before["ip_inventory"] == 20_000

    schema.downgrade(db, "0001")  # undo validate (0003) and the NOT VALID keys (0002)
    assert foreign_keys(db) == {}
    assert tier_counts(db) == before

    schema.upgrade(db, "0002")
    assert foreign_keys(db) == dict.fromkeys(FOREIGN_KEYS_0002, False), "0002 must add the keys NOT VALID"

    schema.upgrade(db, "head")
    assert foreign_keys(db) == dict.fromkeys(FOREIGN_KEYS, True)
    assert tier_counts(db) == before


def test_validation_names_the_violating_row(db: str) -> None:
    """A row that breaks a key added NOT VALID stops VALIDATE with a message naming it."""
    schema.downgrade(db, "0001")
    with psycopg.connect(db) as conn:
        conn.execute(
            """INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
               VALUES ('orphan', now(), now(), '203.0.114.9')"""
        )
    schema.upgrade(db, "0002")
    with pytest.raises(Exception, match=r"session_summaries_source_ip_fkey"):
        schema.upgrade(db, "head")
    assert foreign_keys(db)["session_summaries_source_ip_fkey"] is False


def test_squawk_finds_nothing_in_the_revisions() -> None:
    """The revisions' SQL is lint-clean (each justified exception is an ignore comment in the file)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    squawk = shutil.which("squawk") or str(Path(sys.executable).with_name("squawk"))
    files = sorted(str(p) for p in (schema.migrations_dir() / "versions").glob("*.sql"))
    assert files
    proc = subprocess.run([squawk, "--assume-in-transaction", "--reporter", "gcc", *files],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_enrichment_state_backfill_moves_freshness_out_of_the_documents(db: str) -> None:
    """0017 fills enrichment_state from the documents' fetched_at / build_epoch and leaves the facts;
    its downgrade puts them back where 0015's functions read them."""
    schema.downgrade(db, "0015")
    maxmind_at, cymru_at = (datetime.now(UTC) - timedelta(days=d) for d in (1, 2))
    facts = {"maxmind": {"country": "NL", "asn": 64500, "location_db": {"type": "GeoLite2-City"},
                         "asn_db": {"type": "GeoLite2-ASN"}},
             "cymru": {"found": True, "asn": 64500}}
    before_0016 = {  # as 0015's merges wrote them
        "maxmind": {**facts["maxmind"], "location_db": {"type": "GeoLite2-City", "build_epoch": 90},
                    "asn_db": {"type": "GeoLite2-ASN", "build_epoch": 100}, "build_epoch": 100,
                    "fetched_at": maxmind_at.isoformat()},
        "cymru": {**facts["cymru"], "fetched_at": cymru_at.isoformat()}}
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO ipintel.asn_inventory (asn, sources) VALUES (64500, %s)",
                     (Jsonb({"maxmind": {"as_org": "AS-X", "fetched_at": maxmind_at.isoformat()},
                             "cymru": {"as_name": "AS-X"}}),))
        conn.execute("INSERT INTO ipintel.ip_inventory (ip, enrichment) VALUES ('203.0.114.9', %s)",
                     (Jsonb(before_0016),))

    schema.upgrade(db, "head")
    with psycopg.connect(db) as conn:
        state = conn.execute("SELECT source, fetched_at, build, changed_at FROM ipintel.enrichment_state "
                             "ORDER BY source").fetchall()
        [(document, sources)] = conn.execute(
            "SELECT i.enrichment, a.sources FROM ipintel.ip_inventory i, ipintel.asn_inventory a").fetchall()
    assert state == [("cymru", cymru_at, None, cymru_at), ("maxmind", maxmind_at, 100, maxmind_at)]
    assert document == facts
    # 0020 files every source's AS name under as_name (the key as_name_rank reads)
    assert sources == {"maxmind": {"as_name": "AS-X"}, "cymru": {"as_name": "AS-X"}}

    schema.downgrade(db, "0015")
    with psycopg.connect(db) as conn:
        [(document,)] = conn.execute("SELECT enrichment FROM ipintel.ip_inventory").fetchall()
        due = [conn.execute("SELECT count(*) FROM ipintel.ips_due('maxmind', p_current_build => %s)",
                            (build,)).fetchone() for build in (100, 101)]
    assert document["maxmind"]["build_epoch"] == 100
    assert datetime.fromisoformat(document["maxmind"]["fetched_at"]) == maxmind_at
    assert datetime.fromisoformat(document["cymru"]["fetched_at"]) == cymru_at
    assert due == [(0,), (1,)], "0015's ips_due reads the restored fetched_at and build_epoch"


def merge_one_answer(dsn: str, source: str, ip: str, document: dict[str, Any]) -> None:
    """A new IP and one answer of `source` for it, merged through merge_batch as a pass would."""
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO ipintel.ip_inventory (ip) VALUES (%s)", (ip,))
        run = conn.execute("SELECT ipintel.start_run(%s, '{}'::jsonb)", (source,)).fetchone()[0]  # type: ignore[index]
        conn.execute("""INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result)
                        VALUES (%s, 1, %s, %s, now(), %s)""", (run, source, ip, Jsonb(document)))
        conn.execute("SELECT * FROM ipintel.merge_batch(%s, 1)", (run,))


def registry(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT * FROM ipintel.enrichment_policy ORDER BY source").fetchall()


def test_offline_sources_revision_goes_back_to_0023_unless_their_answers_are_recorded(db: str, empty_db: str) -> None:
    """0024 registers IPinfo Lite and DB-IP Lite (and ranks Cymru's country after them); its downgrade
    gives back 0023's schema and registry, with their skipped runs gone, but refuses to drop answers
    the tiers already hold (ASN history, resolved columns)."""
    schema.upgrade(empty_db, "0023")
    at_0023, registry_0023 = schema.schema_dump(empty_db), registry(empty_db)
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT source, asn_rank, country_rank, as_name_rank, pass_order, enabled "
                            "FROM ipintel.enrichment_policy ORDER BY pass_order").fetchall() == [
            ("maxmind", 2, 1, 2, 10, True), ("ipinfo", 3, 2, 3, 12, True), ("dbip", 4, 3, 4, 14, True),
            ("cymru", 1, 4, 1, 20, True), ("greynoise", None, None, None, 30, True), ("dshield", 5, 5, 5, 40, True)]
        # What `ipintel enrich` leaves on a machine without their files.
        conn.execute("SELECT ipintel.start_run(s, '{}'::jsonb, 'skipped', 'not installed') "
                     "FROM unnest(ARRAY['ipinfo', 'dbip']) s")
    schema.downgrade(db, DSHIELD_PARENT)  # DShield's revision first: its downgrade has its own test
    schema.downgrade(db, "0023")
    assert comparable(schema.schema_dump(db)) == comparable(at_0023)
    assert registry(db) == registry_0023

    schema.upgrade(db, "head")
    merge_one_answer(db, "ipinfo", "203.0.114.9", {"found": True, "asn": 64500})
    with pytest.raises(Exception, match="cannot downgrade below 0024: IPinfo Lite or DB-IP Lite answers are "
                                        "recorded for 1 IPs"):
        schema.downgrade(db, "0023")
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT current_asn_source FROM ipintel.ip_inventory").fetchone() == ("ipinfo",)
        assert conn.execute("SELECT version_num FROM ipintel_alembic_version").fetchone() == ("0024",)


DSHIELD_PARENT = schema.script_directory().get_revision("0028").down_revision
assert isinstance(DSHIELD_PARENT, str)


def test_dshield_revision_goes_back_to_its_parent_unless_dshield_answers_are_recorded(db: str, empty_db: str) -> None:
    """0028 registers DShield and adds the fact is_known_attacker (with threatfeeds) everywhere facts
    go; its downgrade gives back the parent's schema and registry exactly (a skipped DShield run,
    and a snapshot that knew the field, included), but refuses to drop DShield's answers."""
    schema.upgrade(empty_db, DSHIELD_PARENT)
    at_parent, registry_parent = schema.schema_dump(empty_db), registry(empty_db)
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT source, is_known_attacker_rank FROM ipintel.enrichment_policy "
                            "WHERE is_known_attacker_rank IS NOT NULL").fetchall() == [("dshield", 1)]
        conn.execute("SELECT ipintel.start_run('dshield', '{}'::jsonb, 'skipped', 'no contact')")
        conn.execute("INSERT INTO ipintel.ip_inventory (ip) VALUES ('10.9.8.7')")  # a bogon: never asked
        conn.execute("INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) "
                     "VALUES ('s1', now(), now(), '10.9.8.7')")
        conn.execute("UPDATE ipintel.enrichment_policy SET enabled = false WHERE source <> 'dshield'")
        assert conn.execute("SELECT ipintel.take_snapshots()").fetchone() == (1,)
        assert conn.execute("SELECT snapshot_is_known_attacker_source FROM ipintel.session_summaries").fetchone() \
            == ("bogon",)
        conn.execute("UPDATE ipintel.enrichment_policy SET enabled = true")
    schema.downgrade(db, DSHIELD_PARENT)
    assert comparable(schema.schema_dump(db)) == comparable(at_parent)
    assert registry(db) == registry_parent

    schema.upgrade(db, "head")
    merge_one_answer(db, "dshield", "203.0.114.9", {"count": 3, "threatfeeds": {}})
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT is_known_attacker, is_known_attacker_source, threatfeeds "
                            "FROM ipintel.ip_inventory WHERE ip = '203.0.114.9'").fetchone() == (True, "dshield", [])
    with pytest.raises(Exception, match="cannot downgrade below 0028: DShield answers are recorded for 1 IPs"):
        schema.downgrade(db, DSHIELD_PARENT)
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM ipintel_alembic_version").fetchone() == ("0028",)


def test_geo_builds_revision_goes_back_with_routing_history_and_builds_loaded(db: str, empty_db: str) -> None:
    """0029 (dated geolocation builds, routing files' sha256, the shared run-length merge): its
    downgrade gives back the schema before it with the routing history kept, the builds gone."""
    before = schema.script_directory().get_revision("0029").down_revision
    assert isinstance(before, str)
    schema.upgrade(empty_db, before)
    at_before = schema.schema_dump(empty_db)
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO ipintel_staging.routing_prefixes (batch_id, prefix, asn) VALUES (1, '81.2.69.0/24', 64500)")
        conn.execute("SELECT ipintel.load_routing_snapshot('routeviews', '2026-01-01', 'f', 1, repeat('a', 64))")
        conn.execute("INSERT INTO ipintel_staging.geo_ranges (batch_id, first_ip, last_ip, country, asn) "
                     "VALUES (2, '81.2.69.0', '81.2.69.255', 'GB', NULL), (2, '81.2.69.0', '81.2.69.255', NULL, 64500)")
        conn.execute("SELECT ipintel.load_geo_build('ipinfo_lite', 'ipinfo', 1767268800, 'ipinfo ipinfo_lite.mmdb', "
                     "'g', repeat('b', 64), 2)")
    schema.downgrade(db, before)
    assert comparable(schema.schema_dump(db)) == comparable(at_before)
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT prefix::text, asn, valid::text FROM ipintel.prefix_origins").fetchall() == [
            ("81.2.69.0/24", 64500, "[2026-01-01,)")]
    schema.upgrade(db, "head")
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM ipintel.geo_builds").fetchone() == (0,)
        assert conn.execute("SELECT sha256 FROM ipintel.routing_snapshots").fetchone() == (None,)


def test_attribution_revision_fills_the_rollup_from_existing_sessions_and_goes_back(db: str, empty_db: str) -> None:
    """0032 (attribution_daily): on a populated database the upgrade queues every day and its fill
    step rolls them up after the commit (the rollup then equals a recount); the downgrade gives
    back the schema before it, and upgrading again fills it again."""
    before = schema.script_directory().get_revision("0032").down_revision
    assert isinstance(before, str)
    schema.upgrade(empty_db, before)
    at_before = schema.schema_dump(empty_db)
    schema.downgrade(db, before)
    populate(db, sessions=20_000, ips=4_000)
    with psycopg.connect(db) as conn:
        # Snapshots taken before the revision (one session in ten still has none).
        conn.execute("UPDATE ipintel.session_summaries s SET snapshot_asn = i.current_asn, snapshot_asn_source = 'x', "
                     "snapshot_country = 'NL', snapshot_enrichment = '{}', snapshot_at = s.first_event_at "
                     "FROM ipintel.ip_inventory i WHERE i.ip = s.source_ip AND hashtext(s.session_id) % 10 <> 0")
    schema.upgrade(db, "head")
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM ipintel.attribution_dirty_days").fetchone() == (0,)
        assert conn.execute("SELECT sum(sessions)::bigint = (SELECT count(*) FROM ipintel.session_summaries "
                            "WHERE snapshot_at IS NOT NULL) FROM ipintel.attribution_daily").fetchone() == (True,)
        assert conn.execute("SELECT sum(violations) FROM ipintel.verify_attribution()").fetchone() == (0,)
        # 0037's fill: the ASN rollup holds the same sessions (verify's rule 3 compares each row).
        assert conn.execute("SELECT (SELECT sum(sessions) FROM ipintel.attribution_asn_daily) = "
                            "(SELECT sum(sessions) FROM ipintel.attribution_daily)").fetchone() == (True,)
    schema.downgrade(db, before)
    assert comparable(schema.schema_dump(db)) == comparable(at_before)
    schema.upgrade(db, "head")
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT sum(violations) FROM ipintel.verify_attribution()").fetchone() == (0,)


def classes_state(dsn: str) -> dict[str, Any]:
    """ip_inventory's file, its classes, its unclassified rows (None before 0030) and 0030's constraint."""
    with psycopg.connect(dsn) as conn:
        def one(statement: str) -> Any:
            return conn.execute(statement).fetchone()[0]  # type: ignore[index]

        has_basis = one("SELECT count(*) FROM pg_attribute WHERE attrelid = 'ipintel.ip_inventory'::regclass "
                        "AND attname = 'ip_class_basis'") == 1
        return {
            "relfilenode": one("SELECT relfilenode FROM pg_class WHERE oid = 'ipintel.ip_inventory'::regclass"),
            "types": dict(conn.execute("SELECT ip_type, count(*) FROM ipintel.ip_inventory GROUP BY 1").fetchall()),
            "unclassified": one("SELECT count(*) FROM ipintel.ip_inventory WHERE ip_class_basis IS NULL")
            if has_basis else None,
            "validated": dict(conn.execute(
                "SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'ipintel.ip_inventory'::regclass "
                "AND conname IN ('ip_inventory_ip_type_fkey', 'ip_inventory_ip_class_basis_is_object')").fetchall()),
        }


def test_ip_classes_revisions_on_a_populated_inventory(db: str, empty_db: str) -> None:
    """0030 adds ip_provider / ip_class_basis without rewriting ip_inventory (its CHECK NOT VALID,
    no foreign key: verify_integrity checks ip_type); 0031 classifies every row in committed
    batches (here: residential by the AS name) and validates; the downgrade gives back 0029's
    schema and its classes."""
    schema.upgrade(empty_db, "0029")
    at_parent = schema.schema_dump(empty_db)
    schema.downgrade(db, "0029")
    populate(db, sessions=20_000, ips=5_000, asns=50)
    with psycopg.connect(db) as conn:
        # As the parent's merges left them: MaxMind observed every ASN; the IPs of AS64501 sit on a
        # consumer ISP's network; one other IP is an anonymous proxy.
        conn.execute("UPDATE ipintel.enrichment_state e SET asn = i.current_asn, asn_observed = true "
                     "FROM ipintel.ip_inventory i WHERE i.ip = e.ip")
        conn.execute("UPDATE ipintel.ip_inventory SET current_asn_source = 'maxmind', ip_type = 'routed', "
                     "ip_type_source = 'maxmind'")
        conn.execute("UPDATE ipintel.asn_inventory SET as_name = 'COMCAST-7922, US' WHERE asn = 64501")
        proxy = conn.execute("SELECT ip FROM ipintel.ip_inventory WHERE current_asn <> 64501 ORDER BY ip LIMIT 1").fetchone()[0]  # type: ignore[index]
        conn.execute("UPDATE ipintel.enrichment_state SET ip_type = 'anonymizer' WHERE ip = %s", (proxy,))
        conn.execute("UPDATE ipintel.ip_inventory SET ip_type = 'anonymizer' WHERE ip = %s", (proxy,))
        residential = conn.execute("SELECT count(*) FROM ipintel.ip_inventory WHERE current_asn = 64501").fetchone()[0]  # type: ignore[index]
    before, counts = classes_state(db), tier_counts(db)
    assert before["types"] == {"routed": 4_999, "anonymizer": 1}

    schema.upgrade(db, "0030")
    pre = classes_state(db)
    assert pre["relfilenode"] == before["relfilenode"], "0030 does not rewrite ip_inventory"
    assert pre["types"] == before["types"] and pre["unclassified"] == 5_000
    assert pre["validated"] == {"ip_inventory_ip_class_basis_is_object": False}

    schema.upgrade(db, "head")
    post = classes_state(db)
    assert post["unclassified"] == 0
    assert post["types"] == {"routed": 4_999 - residential, "residential": residential, "anonymizer": 1}
    assert post["validated"] == {"ip_inventory_ip_class_basis_is_object": True}
    assert tier_counts(db) == counts
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT DISTINCT ip_provider, ip_type_source, ip_class_basis ->> 'rule' FROM ipintel.ip_inventory "
                            "WHERE current_asn = 64501").fetchall() == [("COMCAST-7922, US", "maxmind", "residential")]

    schema.downgrade(db, "0029")
    assert comparable(schema.schema_dump(db)) == comparable(at_parent)
    assert classes_state(db)["types"] == before["types"], "the parent's classes again"


def snapshot_documents(dsn: str) -> dict[str, Any]:
    """Each snapshotted session's document as the schema holds it: snapshot_enrichment up to 0035,
    session_documents (enrichment_documents) from 0035 on."""
    with psycopg.connect(dsn) as conn:
        has_view = conn.execute("SELECT to_regclass('ipintel.session_documents') IS NOT NULL").fetchone()[0]  # type: ignore[index]
        query = ("SELECT session_id, snapshot_enrichment FROM ipintel.session_documents" if has_view else
                 "SELECT session_id, snapshot_enrichment FROM ipintel.session_summaries WHERE snapshot_at IS NOT NULL")
        return dict(conn.execute(query).fetchall())


def test_enrichment_documents_revisions_move_the_copies_and_go_back(db: str, empty_db: str) -> None:
    """0035/0036 (snapshots without copies): on a populated database the copies of the documents
    in every session move to enrichment_documents, one row per distinct document, every session
    keeps its document as it was (complete snapshots too: the guard lets a document move, not
    change), the final CHECK is validated and snapshot_enrichment dropped; a snapshot taken
    between the two revisions is kept; the downgrade gives back 0034's schema with every copy."""
    schema.upgrade(empty_db, "0034")
    at_parent = schema.schema_dump(empty_db)
    schema.downgrade(db, "0034")
    populate(db, sessions=20_000, ips=4_000)
    with psycopg.connect(db) as conn:
        # Snapshots taken before 0035 (one session in ten has none; half are complete): the
        # document of each IP, two versions (sessions before and after 2026-10-04).
        conn.execute("""UPDATE ipintel.session_summaries s
                        SET snapshot_asn = i.current_asn, snapshot_asn_source = 'maxmind:current',
                            snapshot_country = 'NL', snapshot_country_source = 'maxmind',
                            snapshot_ip_type = 'routed', snapshot_ip_type_source = 'maxmind',
                            snapshot_is_scanner_source = 'none',
                            snapshot_enrichment = jsonb_build_object('maxmind', jsonb_build_object(
                                'asn', i.current_asn, 'ip', host(i.ip), 'build', s.first_event_at >= '2026-10-04',
                                'note', repeat('x', 3000))),
                            snapshot_at = s.first_event_at,
                            snapshot_complete_at = CASE WHEN hashtext(s.session_id) % 2 = 0 THEN s.first_event_at END
                        FROM ipintel.ip_inventory i
                        WHERE i.ip = s.source_ip AND hashtext(s.session_id) % 10 <> 0""")
        distinct = conn.execute("SELECT count(DISTINCT snapshot_enrichment) FROM ipintel.session_summaries").fetchone()[0]  # type: ignore[index]
    before, counts = snapshot_documents(db), tier_counts(db)
    assert 17_000 < len(before) < 19_000 and distinct > 4_000

    schema.upgrade(db, "0035")
    assert snapshot_documents(db) == before, "0035: the copies are read through session_documents"
    with psycopg.connect(db) as conn:
        # A snapshot taken between the revisions: its document goes to enrichment_documents at once.
        late = conn.execute("SELECT session_id FROM ipintel.session_summaries WHERE snapshot_at IS NULL "
                            "ORDER BY session_id LIMIT 1").fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO ipintel.enrichment_documents (document) VALUES ('{\"late\": true}')")
        conn.execute("UPDATE ipintel.session_summaries SET snapshot_at = now(), snapshot_document = "
                     "(SELECT document_id FROM ipintel.enrichment_documents) WHERE session_id = %s", (late,))
    before[late] = {"late": True}

    schema.upgrade(db, "head")
    assert snapshot_documents(db) == before
    assert tier_counts(db) == counts
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM ipintel.enrichment_documents").fetchone() == (distinct + 1,)
        assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'ipintel.session_summaries'::regclass "
                            "AND attname = 'snapshot_enrichment' AND NOT attisdropped").fetchone() == (0,)
        assert conn.execute("SELECT bool_and(convalidated) FROM pg_constraint "
                            "WHERE conname = 'session_summaries_snapshot_is_consistent'").fetchone() == (True,)
        assert conn.execute("SELECT sum(violations) FROM ipintel.verify_snapshots()").fetchone() == (0,)

    schema.downgrade(db, "0034")
    assert comparable(schema.schema_dump(db)) == comparable(at_parent)
    assert snapshot_documents(db) == before, "every copy back in snapshot_enrichment"
    schema.upgrade(db, "head")
    assert snapshot_documents(db) == before
