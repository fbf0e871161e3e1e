"""Text from clients and upstreams made safe to store and to send back (pure).

aiohttp decodes header bytes that are not UTF-8 into lone surrogates (surrogateescape). Such a string cannot be
encoded to UTF-8 (SQLite, orjson and HTTP all refuse it), so it must never reach the ledger or a response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_ID_CHARS = 128  # request ids (client and upstream) are kept to this many characters


def printable(value: str) -> bool:
    """True for text that is valid Unicode (no lone surrogate) and has no control characters."""
    if value.isascii():
        return value.isprintable()
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return value.isprintable()


def _raw_bytes(value: str) -> bytes:
    """The bytes a header string came from (surrogateescape), or its UTF-8 with surrogates kept as bytes."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def escaped(value: str, limit: int = MAX_ID_CHARS) -> str:
    """Printable ASCII for any string: itself when it already is; else bytes that are not UTF-8 as `\\xNN`,
    other non-ASCII and control characters as Python escapes; cut to `limit` characters."""
    if not (value.isascii() and value.isprintable()):
        text = _raw_bytes(value).decode("utf-8", "backslashreplace")
        value = "".join(
            c if c.isascii() and c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
        )
    return value if len(value) <= limit else value[:limit]


def encodable(value: str) -> str:
    """`value` unchanged unless it cannot be encoded as UTF-8; then its undecodable bytes as `\\xNN`."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _raw_bytes(value).decode("utf-8", "backslashreplace")
    return value


def safe_json(value: Any) -> Any:
    """A JSON-able copy of anything: text made encodable, keys as text, ints past 64 bits and unknown values
    as their repr (orjson refuses lone surrogates and such ints)."""
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, Mapping):
        return {encodable(str(k)): safe_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_json(v) for v in value]
    if value is None or isinstance(value, bool | float) or (isinstance(value, int) and abs(value) < 2**63):
        return value
    return encodable(repr(value))
