"""CSV cells a spreadsheet cannot execute (OWASP CSV injection guidance)."""

from __future__ import annotations

import re

# A cell starting with one of these is read as a formula by Excel, LibreOffice and Google Sheets.
_TRIGGERS = frozenset("=+-@\t\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(text: str) -> str:
    """`text` unchanged unless a spreadsheet would execute it: then prefixed with a single quote, as OWASP
    recommends (a number such as -0.5 stays a number). The csv module quotes the cell when it needs to."""
    if text and text[0] in _TRIGGERS and not _NUMBER.fullmatch(text):
        return "'" + text
    return text
