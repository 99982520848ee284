"""sql/ (the stored logic as it is now) and the migrations must build the same schema."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import psycopg

from ipintel import schema


def _diff(a: str, b: str) -> str:
    return "".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True), "migrations", "sql/"))


def test_migrations_and_sql_dir_build_the_same_schema(empty_db: str, pg_server, db: str) -> None:
    schema.apply_sql_dir(empty_db)
    diff = _diff(schema.schema_dump(db), schema.schema_dump(empty_db))
    assert diff == "", f"sql/ and migrations disagree:\n{diff}"


def test_drift_is_detected_when_a_column_is_added_to_sql_dir_only(empty_db: str, db: str, tmp_path: Path) -> None:
    changed = tmp_path / "sql"
    shutil.copytree(schema.sql_dir(), changed)
    tiers = changed / "030_tiers.sql"
    text = tiers.read_text()
    marker = "    hassh               text,\n"
    assert marker in text
    tiers.write_text(text.replace(marker, marker + "    ja4_fingerprint     text,\n"))

    schema.apply_sql_dir(empty_db, changed)
    diff = _diff(schema.schema_dump(db), schema.schema_dump(empty_db))
    assert "+    ja4_fingerprint text," in diff


# pg_dump runs with --no-privileges above (owners and grants differ in form between the two
# builds); the grants themselves must not: a function the migrations forget to grant is one the
# reader cannot call (the view over it fails) while a database built from sql/ works.
GRANTS = """
SELECT o.name, a.grantee::regrole::text, a.privilege_type
FROM (SELECT p.oid::regprocedure::text AS name, p.proacl AS acl
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname LIKE 'ipintel%%'
      UNION ALL
      SELECT c.oid::regclass::text, c.relacl
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname LIKE 'ipintel%%' AND c.relkind IN ('r', 'v', 'S', 'p')) o
CROSS JOIN LATERAL aclexplode(o.acl) a
WHERE a.grantee <> 0
ORDER BY 1, 2, 3
"""


def grants(dsn: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        return [tuple(r) for r in conn.execute(GRANTS).fetchall()]


def test_migrations_and_sql_dir_grant_the_same(empty_db: str, db: str) -> None:
    schema.apply_sql_dir(empty_db)
    migrated, from_sql = grants(db), grants(empty_db)
    assert ("ipintel.ip_inventory_row(inet)", "ipintel_reader", "EXECUTE") in from_sql
    assert sorted(set(from_sql) - set(migrated)) == [], "granted by sql/ only"
    assert sorted(set(migrated) - set(from_sql)) == [], "granted by the migrations only"
