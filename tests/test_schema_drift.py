"""sql/ (the stored logic as it is now) and the migrations must build the same schema."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

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
