"""The receipts export contract (CSV / JSONL): EXPORT_COLUMNS in order, and the rows that feed them.

Rows come from iter_export_rows: the receipt's stored columns (SELECT_COLUMNS order) followed by the unit
prices of its price_version from the prices table (NULL when the version is not there)."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import orjson

from nextmodel_proxy.config import CurrencyConfig
from nextmodel_proxy.ledger.receipts import CONTENT, CONTENT_COLUMNS, ReceiptFilter
from nextmodel_proxy.ledger.spreadsheet import safe_cell
from nextmodel_proxy.pricing import convert, format_pusd, format_usd, from_pusd

# The export contract: reconciliation scripts rely on these names and their order; add at the end only.
# Money columns are exact USD decimal strings (format_usd); display_currency/display_rate are what the receipt
# recorded (else the configured display currency), billed_cost_display = billed_cost_usd x display_rate, exact.
EXPORT_COLUMNS: tuple[str, ...] = (
    "receipt_id",
    "created_utc",
    "request_id",
    "key_id",
    "project",
    "team",
    "environment",
    "tags",
    "endpoint",
    "model_requested",
    "model",
    "provider",
    "upstream_model",
    "route",
    "served_mode",
    "stream",
    "status",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "usage_source",
    "upstream_cost_usd",
    "billed_cost_usd",
    "fresh_cost_usd",
    "savings_usd",
    "cost_unknown_reason",
    "display_currency",
    "display_rate",
    "billed_cost_display",
    "latency_ms",
    "ttft_ms",
    "reused_receipt_id",
    "upstream_request_id",
    "price_version",
    "cache_key",
    "cache_status",
    "attempts",
    "seq",
    "prev_hash",
    "hash",
    "usage_reason",
    # issue 11: the native-currency figures and the unit prices behind the cost (per 1M tokens, in `currency`)
    "currency",
    "native_cost",
    "fx_rate",
    "fx_date",
    "unit_input_per_1m",
    "unit_output_per_1m",
    "unit_cached_input_per_1m",
    "unit_cache_write_per_1m",
    "price_tier",
    "price_window",
    "service_tier",
)
# Unit prices joined from the prices table, after the receipt's own columns.
_UNITS = {
    "unit_input_per_1m": "input",
    "unit_output_per_1m": "output",
    "unit_cached_input_per_1m": "cached_input",
    "unit_cache_write_per_1m": "cache_write",
}
_ROW = ("seq", *CONTENT_COLUMNS, "prev_hash", "hash", *_UNITS)
_AT = {name: i for i, name in enumerate(_ROW)}
_KIND_OF = (
    {col: kind for _, col, kind in CONTENT}
    | {"seq": "int", "prev_hash": "text", "hash": "text"}
    | dict.fromkeys(_UNITS, "text")
)
_SELECT = ", ".join(
    [
        *(f"r.{c}" for c in ("seq", *CONTENT_COLUMNS, "prev_hash", "hash")),
        *(f"p.{c}" for c in _UNITS.values()),
    ]
)
_DISPLAY = ("display_currency", "display_rate", "billed_cost_display")


def _export_source(column: str) -> tuple[int, str]:
    db_column = column.removesuffix("_usd") + "_pusd" if column.endswith("_usd") else column
    return _AT[db_column], _KIND_OF[db_column]


_CSV_CELL: dict[str, Callable[[Any], str]] = {
    "text": lambda v: v,
    "dec": lambda v: v,
    "json": lambda v: v,
    "int": str,
    "real": repr,
    "bool": lambda v: "true" if v else "false",
    "money": format_pusd,
}
_JSON_VALUE: dict[str, Callable[[Any], Any]] = {
    "text": lambda v: v,
    "dec": lambda v: v,
    "int": lambda v: v,
    "real": lambda v: v,
    "bool": bool,
    "money": format_pusd,
    "json": orjson.loads,
}
_PLAIN = tuple(
    (i, name, *_export_source(name)) for i, name in enumerate(EXPORT_COLUMNS) if name not in _DISPLAY
)
_DISPLAY_AT = tuple(EXPORT_COLUMNS.index(name) for name in _DISPLAY)


@functools.lru_cache(maxsize=64)
def _rate(text: str) -> Decimal:
    return Decimal(text)


def _display_values(row: Sequence[Any], currency: CurrencyConfig) -> tuple[str, str | None, str | None]:
    code = row[_AT["display_currency"]] or currency.display
    rate = row[_AT["display_rate"]]
    if rate is None and code in currency.rates:
        rate = format(currency.rates[code], "f")
    billed = row[_AT["billed_cost_pusd"]]
    shown = None if billed is None or rate is None else format_usd(convert(from_pusd(billed), _rate(rate)))
    return code, rate, shown


def export_csv_cells(row: Sequence[Any], currency: CurrencyConfig) -> list[str]:
    """A row from iter_export_rows as CSV cells in EXPORT_COLUMNS order: NULL is empty, booleans
    true/false, tags and attempts JSON arrays, money exact decimal strings; a text a spreadsheet would
    run as a formula (=, +, -, @, tab, CR first) gets a leading single quote (JSON exports keep raw values)."""
    cells = [""] * len(EXPORT_COLUMNS)
    for out, _name, at, kind in _PLAIN:
        value = row[at]
        if value is not None:
            cells[out] = _CSV_CELL[kind](value)
    for out, value in zip(_DISPLAY_AT, _display_values(row, currency), strict=True):
        cells[out] = "" if value is None else value
    return [safe_cell(cell) for cell in cells]


def export_json(row: Sequence[Any], currency: CurrencyConfig) -> dict[str, Any]:
    """A row from iter_export_rows as one JSONL object with the EXPORT_COLUMNS keys, in order."""
    record: dict[str, Any] = {}
    for _out, name, at, kind in _PLAIN:
        value = row[at]
        record[name] = None if value is None else _JSON_VALUE[kind](value)
    record.update(zip(_DISPLAY, _display_values(row, currency), strict=True))
    return {name: record[name] for name in EXPORT_COLUMNS}


def iter_export_rows(
    conn: sqlite3.Connection, filters: ReceiptFilter, *, chunk: int = 2000
) -> Iterator[tuple[Any, ...]]:
    """Every matching row (SELECT_COLUMNS order, then the unit prices of its price_version), oldest first,
    fetched `chunk` at a time: constant memory. Turn rows into export_csv_cells / export_json."""
    where, params = filters.where()
    cur = conn.execute(
        f"SELECT {_SELECT} FROM (SELECT * FROM receipts WHERE {where}) r "
        "LEFT JOIN prices p ON p.price_version = r.price_version ORDER BY r.seq",
        params,
    )
    try:
        while rows := cur.fetchmany(chunk):
            yield from rows
    finally:
        with contextlib.suppress(sqlite3.ProgrammingError):  # the connection may already be closed
            cur.close()
