"""loader/ipintel/sql/queries.sql: every statement the loader sends, by name (issue 10).

The file's format (unique names, a description each, parameters named and cast), that every
query is used and every name used exists, that no SQL statement is left in the Python source, that
the file ships inside the installed package, and that every statement plans on a migrated database.
"""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

import psycopg
import pytest

from ipintel import db as ipdb

LOADER_DIR = Path(__file__).resolve().parents[1] / "loader"
PACKAGE_DIR = LOADER_DIR / "ipintel"
TEXT = (PACKAGE_DIR / "sql" / "queries.sql").read_text(encoding="utf-8")
PARSED = ipdb.parse_queries(TEXT)
NAMES = [q.name for q in PARSED]
# The installed package's modules, and everything under loader/ (where a query may be used).
SOURCES = {path: path.read_text(encoding="utf-8") for path in sorted(PACKAGE_DIR.rglob("*.py"))}
LOADER_SOURCES = {path: path.read_text(encoding="utf-8") for path in sorted(LOADER_DIR.rglob("*.py"))}

# A string literal (any quote, triple quotes included, maybe prefixed f/r/b) that opens with an SQL
# statement keyword in capitals followed by a blank: `"SELECT `, `"""\n    UPDATE `, `f"COPY `.
SQL_LITERAL = re.compile(
    r"""(?<![A-Za-z0-9_])[rRbBfFuU]{0,2}(?:'''|\"\"\"|'|")\s*"""
    r"(SELECT|INSERT|UPDATE|DELETE|COPY|WITH|CREATE|ALTER|DROP|TRUNCATE|LOCK|VALUES|CALL|GRANT|REVOKE|SET|RESET)\s")
# Statements that may stay in Python, by file, each with the reason. None today (the development
# cluster's two administrative statements are in devtools/localdb.py, which is not installed).
ALLOWED_SQL_LITERALS: dict[str, str] = {}


def test_file_names_where_it_comes_from() -> None:
    # temboard's convention: server logs and tracebacks point back to the file.
    assert TEXT.splitlines()[0] == "-- From loader/ipintel/sql/queries.sql"
    assert ipdb.query("tier_counts").startswith("-- From loader/ipintel/sql/queries.sql: tier_counts\n")


def test_every_name_is_unique_and_described() -> None:
    assert len(NAMES) >= 30  # the parser found the blocks (a broken marker would hide them)
    duplicates = sorted({n for n in NAMES if NAMES.count(n) > 1})
    assert not duplicates, f"defined twice: {duplicates}"
    for q in PARSED:
        assert q.description.strip(), q.name
        assert q.sql.strip(), q.name
    # Every marker line is a well-formed name (a typo such as `-- Name --` would glue two blocks).
    markers = re.findall(r"^-- (\S+) --\s*$", TEXT, re.MULTILINE)
    assert markers == NAMES


def test_parser_rejects_a_block_without_description_or_statement() -> None:
    with pytest.raises(ValueError, match="needs a description"):
        ipdb.parse_queries("-- a --\nSELECT 1;\n")
    with pytest.raises(ValueError, match="needs a description"):
        ipdb.parse_queries("-- a --\n-- What it is.\n\n")


def test_parameters_are_named_and_cast_in_sql() -> None:
    for q in PARSED:
        assert not re.search(r"%s|%\d", q.sql), f"{q.name}: positional parameter"
        for match in re.finditer(r"%\((\w+)\)s", q.sql):
            assert q.sql[match.end():].startswith("::"), f"{q.name}: parameter {match.group(1)} has no cast"
        if q.name.startswith("copy_"):
            assert q.sql.startswith("COPY ") and q.sql.rstrip(";").endswith("FROM STDIN"), q.name


def test_every_query_is_used_and_every_used_name_exists() -> None:
    # A name counts as used when it appears as a string literal in the loader's source (not in
    # db.py's docstrings or the SQL file): db.query("name"), or a table of names (REPORT_QUERIES).
    source = "\n".join(LOADER_SOURCES.values())
    unused = [n for n in NAMES if not re.search(rf"""["']{n}["']""", source)]
    assert not unused, f"queries nobody runs: {unused}"
    looked_up = set(re.findall(r"""db\.query\(\s*["'](\w+)["']""", source))
    assert looked_up <= set(NAMES), f"looked up but not defined: {sorted(looked_up - set(NAMES))}"


def test_no_sql_statement_stays_in_python() -> None:
    found = []
    for path, text in SOURCES.items():
        for match in SQL_LITERAL.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            if path.name not in ALLOWED_SQL_LITERALS:
                found.append(f"{path.relative_to(PACKAGE_DIR)}:{line}: {match.group(0).strip()}")
    assert not found, "SQL in Python; make it a named query in sql/queries.sql:\n" + "\n".join(found)


def test_the_check_finds_sql_literals() -> None:
    # The regex of the test above, on samples: it must not be vacuous.
    samples = ['q = "SELECT 1"', "q = 'UPDATE t SET a = 1'", 'q = """\n    INSERT INTO t VALUES (1)"""',
               'cur.copy(f"COPY t ({cols}) FROM STDIN")', 'conn.execute("DELETE FROM t")']
    assert all(SQL_LITERAL.search(s) for s in samples)
    prose = ['"Selected 3 rows"', '"select a source"', '"Update the files"', 'x = "WITHOUT"']
    assert not any(SQL_LITERAL.search(s) for s in prose)


def test_file_is_package_data() -> None:
    # Read the way the loader reads it (importlib.resources): the file the installed ipintel ships
    # (pyproject's package-data) is this one.
    resource = importlib.resources.files("ipintel").joinpath(ipdb.QUERIES_FILE)
    assert resource.read_text(encoding="utf-8") == TEXT
    assert set(ipdb.queries()) == set(NAMES)


def test_every_statement_plans_on_a_migrated_database(db: str) -> None:
    """EXPLAIN each statement with NULL for every parameter: a misspelt table, column or function,
    or a cast to a wrong type, fails here even when no other test runs that query. EXPLAIN does not
    execute: no lock is taken, no row written, no sequence moved."""
    not_explainable = {"copy_cowrie_sessions", "copy_cowrie_event_counts", "copy_cowrie_rejects",
                       "copy_enrichment_results",
                       "copy_enrichment_failures", "copy_routing_prefixes", "copy_routing_rejects", "copy_geo_ranges",
                       "copy_listed_ranges", "copy_listed_asns"}
    with psycopg.connect(db, autocommit=True) as conn:
        for name in NAMES:
            if name in not_explainable:
                continue
            statement = ipdb.query(name)
            params = dict.fromkeys(re.findall(r"%\((\w+)\)s", statement))
            try:
                conn.execute(f"EXPLAIN {statement}", params or None)
            except psycopg.Error as exc:
                pytest.fail(f"{name}: {exc}")
        # COPY cannot be explained: check its table and columns exist by copying nothing in.
        with conn.transaction(force_rollback=True), conn.cursor() as cur:
            for name in sorted(not_explainable):
                with cur.copy(ipdb.query(name)):
                    pass
