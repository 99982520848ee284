"""PostgreSQL's COPY text format, for the values ipintel streams into staging tables. Its own
module so that the parsing process (ipintel.chunks) formats its lines without importing
psycopg; the loader's other writers (ipintel.enrich) import copy_field from here too."""

from __future__ import annotations

# Backslash, tab, newline and carriage return are the characters COPY text escapes.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def needs_escaping(text: str) -> bool:
    """Whether `text` holds a character COPY text escapes: a line whose text fields (joined into
    `text`) hold none can be written by plain formatting, without copy_field for each value."""
    return "\\" in text or "\t" in text or "\n" in text or "\r" in text


def copy_field(value: object) -> str:
    """One value as a field of COPY text (NULL is \\N)."""
    if value is None:
        return "\\N"
    if type(value) is str:
        return value.translate(_COPY_ESCAPES)
    if type(value) is float:
        return repr(value)
    return str(value)
