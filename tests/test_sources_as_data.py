"""A source's name appears in sql/ only in its registry row and in its own functions.

Everything else (staging, runs, failures, merges, the resolved columns of ip_inventory,
snapshots, reports) reads the registry, so adding a source is a registry row, its functions
(sql/080_sources.sql), a Python pass class and a test fake.
"""

from __future__ import annotations

import re

import psycopg

from ipintel import schema

REGISTRY_INSERT = re.compile(r"INSERT INTO ipintel\.enrichment_policy .*?;", re.S)
COMMENT_ON = re.compile(r"^COMMENT ON .*?';$", re.S | re.M)
LINE_COMMENT = re.compile(r"--[^\n]*")
FUNCTION = re.compile(r"^CREATE FUNCTION ipintel\.(\w+)\(.*?(?=^CREATE |\Z)", re.S | re.M)


def code_of(text: str) -> str:
    """SQL without comments and COMMENT ON statements (documentation may name sources)."""
    return LINE_COMMENT.sub("", COMMENT_ON.sub("", text))


def misplaced_names(sources: list[str]) -> list[str]:
    found = []
    for path in sorted(schema.sql_dir().glob("*.sql")):
        code = REGISTRY_INSERT.sub("", code_of(path.read_text()))
        for match in FUNCTION.finditer(code):
            owner = next((s for s in sources if s in match.group(1)), None)
            for source in sources:
                if source != owner and re.search(rf"\b{source}\b", match.group(0)):
                    found.append(f"{path.name}: {source} in function {match.group(1)}")
        rest = FUNCTION.sub("", code)
        found += [f"{path.name}: {s} outside any function" for s in sources if re.search(rf"\b{s}\b", rest)]
    return found


def test_source_names_only_in_the_registry_and_their_own_functions(db: str) -> None:
    with psycopg.connect(db) as conn:
        sources = [r[0] for r in conn.execute("SELECT source FROM ipintel.enrichment_policy ORDER BY source")]
    assert sources == ["cymru", "dbip", "dshield", "greynoise", "ipinfo", "maxmind"]
    assert misplaced_names(sources) == []


def test_the_check_finds_a_source_named_in_shared_code() -> None:
    """The rule is not vacuous: a name in a shared function or a table is found."""
    shared = "CREATE FUNCTION ipintel.take_snapshots()\n  SELECT 'greynoise';\n"
    assert re.search(r"\bgreynoise\b", FUNCTION.search(code_of(shared)).group(0))  # type: ignore[union-attr]
    assert re.search(r"\bcymru\b", FUNCTION.sub("", code_of("CREATE TABLE t (c text CHECK (c <> 'cymru'));\n")))
    assert not re.search(r"\bcymru\b", code_of("-- cymru is documented here\nCOMMENT ON TABLE t IS 'cymru';\n"))
