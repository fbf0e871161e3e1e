"""Receipt: one row per request; its columns, its JSON and export forms, and the read queries."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import operator
import random
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

import orjson

from nextmodel_proxy.pricing import format_usd, from_pusd, to_pusd
from nextmodel_proxy.text_safety import encodable, safe_json
from nextmodel_proxy.timespec import format_utc, parse_time

SERVED_MODES = ("fresh", "exact-cache", "error")  # refusals are errors with their code (budget_exceeded, …)
USAGE_SOURCES = ("upstream", "cache", "estimated", "none")


# Receipt ids need uniqueness, not secrecy (reading one needs the right key). os.urandom per request
# released the GIL and handed it to the ledger writer: ~0.2 ms a request under load. Seeded once instead.
_ids = random.Random(secrets.token_bytes(16))


def new_receipt_id() -> str:
    """`rcpt_` + 12 hex of ms since the epoch + 14 random hex: unique, and text order is time order."""
    return f"rcpt_{int(time.time() * 1000):012x}{_ids.getrandbits(56):014x}"


def new_request_id() -> str:
    """`req_` + 24 random hex: the request id of a request whose client sent none."""
    return f"req_{_ids.getrandbits(96):024x}"


@dataclass(frozen=True, slots=True)
class Receipt:
    """The receipts table row. Money is exact USD (`*_usd` here, integer `*_pusd` in SQLite); all four
    amounts are None when the cost is unknown. seq, prev_hash and hash are set by the ledger writer."""

    receipt_id: str
    created_utc: str  # 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (timespec.format_utc)
    request_id: str | None = None
    key_id: str | None = None
    project: str | None = None
    team: str | None = None
    environment: str | None = None
    tags: tuple[str, ...] = ()
    endpoint: str = "chat"
    model_requested: str | None = None
    model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    route: str | None = None
    served_mode: str = "fresh"
    stream: bool = False
    status: int | None = None
    error_code: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    usage_source: str = "none"
    upstream_cost_usd: Decimal | None = None
    billed_cost_usd: Decimal | None = None
    fresh_cost_usd: Decimal | None = None
    savings_usd: Decimal | None = None
    cost_unknown_reason: str | None = None
    display_currency: str | None = None
    display_rate: Decimal | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    reused_receipt_id: str | None = None
    upstream_request_id: str | None = None
    price_version: str | None = None
    cache_key: str | None = None
    cache_status: str | None = None
    attempts: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    # Added by m030 (after the m001 columns: hashed only when not NULL, so older rows verify unchanged).
    usage_reason: str | None = None  # why usage is `estimated` (e.g. the upstream's figure was not trusted)
    # Added by m040 (hashed only when not NULL, like usage_reason).
    service_tier: str | None = None  # as the upstream reported it, else as the client asked
    price_tier: str | None = None  # the long-context tier billed (e.g. ">272000"), None for the base price
    price_window: str | None = None  # the UTC time-of-day window billed (e.g. "16:30-00:30")
    currency: str | None = None  # the currency the provider invoices the model in
    native_cost: Decimal | None = (
        None  # billed cost in that currency, exact (billed_cost_usd = this / fx_rate)
    )
    fx_rate: Decimal | None = None  # units of `currency` per 1 USD used at write time (1 for USD)
    fx_date: str | None = None  # the date of that rate (None for USD or an undated rate)
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None

    def __post_init__(self) -> None:
        if self.served_mode not in SERVED_MODES:
            raise ValueError(f"served_mode must be one of {SERVED_MODES}, got {self.served_mode!r}")
        if self.usage_source not in USAGE_SOURCES:
            raise ValueError(f"usage_source must be one of {USAGE_SOURCES}, got {self.usage_source!r}")
        money = (self.upstream_cost_usd, self.billed_cost_usd, self.fresh_cost_usd, self.savings_usd)
        if any(m is None for m in money) and any(m is not None for m in money):
            raise ValueError("the four cost fields are all None (cost unknown) or all set")


# --- field <-> SQLite value ----------------------------------------------------------------------
# Writes coerce every value to the exact type SQLite hands back, so the hash of a row computed before the
# INSERT equals the hash recomputed from the stored row (an int latency would come back as a float).


def _text(v: Any) -> str | None:
    return None if v is None else str(v)


def _int(v: Any) -> int | None:
    return v if v is None or v.__class__ is int else int(v)


def _real(v: Any) -> float | None:
    return v if v is None or v.__class__ is float else float(v)


def _flag(v: Any) -> int | None:
    return None if v is None else int(bool(v))


def _money(v: Decimal | None) -> int | None:
    if v.__class__ is Decimal:
        return to_pusd(v)
    if v is None:
        return None
    if not isinstance(v, Decimal | int) or isinstance(v, bool):
        raise TypeError(f"money must be a Decimal, got {type(v).__name__}")  # never floats
    return to_pusd(Decimal(v))


def _decimal_text(v: Decimal | None) -> str | None:
    if v.__class__ is Decimal:
        return _plain(v)
    return None if v is None else _plain(Decimal(v))


@functools.lru_cache(maxsize=256)
def _plain(v: Decimal) -> str:
    """A rate as plain digits; cached because every receipt carries one of a handful of rates."""
    return format(v, "f")


def _json_list(v: Sequence[Any]) -> str:
    if not v:
        return "[]"
    try:
        return orjson.dumps(list(v), option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # a lone surrogate (or a value JSON has no form for) somewhere inside: escape it
        return orjson.dumps(safe_json(list(v)), option=orjson.OPT_SORT_KEYS).decode()


_TO_DB: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "int": _int,
    "real": _real,
    "bool": _flag,
    "money": _money,
    "dec": _decimal_text,
    "json": _json_list,
}
_FROM_DB: dict[str, Callable[[Any], Any]] = {
    "text": lambda v: v,
    "int": lambda v: v,
    "real": lambda v: v,
    "bool": lambda v: None if v is None else bool(v),
    "money": lambda v: None if v is None else from_pusd(v),
    "dec": lambda v: None if v is None else Decimal(v),
    "json": lambda v: tuple(orjson.loads(v)) if v else (),
}
_MONEY = ("upstream_cost", "billed_cost", "fresh_cost", "savings")
_KINDS = {
    "tags": "json",
    "attempts": "json",
    "stream": "bool",
    "display_rate": "dec",
    "native_cost": "dec",
    "fx_rate": "dec",
    "latency_ms": "real",
    "ttft_ms": "real",
    "status": "int",
    **{f"{n}_tokens": "int" for n in ("prompt", "completion", "cached", "cache_write", "reasoning")},
    **{f"{m}_usd": "money" for m in _MONEY},
}
_CHAIN_FIELDS = ("seq", "prev_hash", "hash")
# (dataclass field, SQLite column, kind) for the hashed content columns, in table order.
CONTENT: tuple[tuple[str, str, str], ...] = tuple(
    (
        f.name,
        f.name.removesuffix("_usd") + "_pusd" if _KINDS.get(f.name) == "money" else f.name,
        _KINDS.get(f.name, "text"),
    )
    for f in fields(Receipt)
    if f.name not in _CHAIN_FIELDS
)
CONTENT_COLUMNS: tuple[str, ...] = tuple(col for _, col, _ in CONTENT)
# The m001 content columns are always hashed; a column added later joins the hash only when it is not NULL.
CORE_WIDTH = CONTENT_COLUMNS.index("attempts") + 1
SELECT_COLUMNS = ", ".join(("seq", *CONTENT_COLUMNS, "prev_hash", "hash"))
_CONVERT_IN = tuple((name, _FROM_DB[kind]) for name, _, kind in CONTENT)
_GET_CONTENT = operator.attrgetter(*(name for name, _, _ in CONTENT))
_TEXT_AT = tuple(i for i, (_, _, kind) in enumerate(CONTENT) if kind == "text")
_INT_AT = tuple(i for i, (_, _, kind) in enumerate(CONTENT) if kind == "int")
_REAL_AT = tuple(i for i, (_, _, kind) in enumerate(CONTENT) if kind == "real")
_CONVERT_AT = tuple(
    (i, _TO_DB[kind]) for i, (_, _, kind) in enumerate(CONTENT) if kind not in ("text", "int", "real")
)


def content_values(receipt: Receipt) -> tuple[Any, ...]:
    """The receipt's stored values in CONTENT_COLUMNS order (what the hash chain covers)."""
    values = list(_GET_CONTENT(receipt))  # one C call for all fields: this runs for every receipt written
    for i in _INT_AT:  # _int and _real inlined: no call for the values that already have the right type
        value = values[i]
        if value is not None and value.__class__ is not int:
            values[i] = int(value)
    for i in _REAL_AT:
        value = values[i]
        if value is not None and value.__class__ is not float:
            values[i] = float(value)
    for i, to_db in _CONVERT_AT:
        values[i] = to_db(values[i])
    for i in _TEXT_AT:
        value = values[i]
        if value is not None:
            if value.__class__ is not str:
                value = values[i] = str(value)
            if not value.isascii():  # the last gate: text SQLite cannot encode (a lone surrogate) is escaped
                values[i] = encodable(value)
    return tuple(values)


def receipt_facts(receipt: Any) -> dict[str, Any]:
    """Every field of a receipt as it is, money and rates as decimal text (for the dead-letter file)."""
    out = {}
    for f in fields(Receipt):
        value = getattr(receipt, f.name, None)
        out[f.name] = format(value, "f") if isinstance(value, Decimal) else value
    return out


def receipt_from_row(row: Sequence[Any]) -> Receipt:
    """A Receipt from a row selected with SELECT_COLUMNS."""
    values = {name: conv(row[i + 1]) for i, (name, conv) in enumerate(_CONVERT_IN)}
    return Receipt(seq=row[0], prev_hash=row[-2], hash=row[-1], **values)


# --- JSON and export forms -----------------------------------------------------------------------


def receipt_to_json(receipt: Receipt) -> dict[str, Any]:
    """The API / --json form: money as exact decimal strings, tags and attempts as lists."""
    out: dict[str, Any] = {"object": "receipt", "id": receipt.receipt_id}
    for f in fields(Receipt):
        value = getattr(receipt, f.name)
        if isinstance(value, Decimal):
            value = format_usd(value) if f.name.endswith("_usd") else format(value, "f")
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


# --- queries -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceiptFilter:
    """since is inclusive, until exclusive; model matches the served model id."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    project: str | None = None
    model: str | None = None
    mode: str | None = None
    key_id: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        """An SQL condition (never empty: `1` when nothing filters) and its parameters."""
        clauses, params = ["1"], []
        if self.since is not None:
            clauses.append("created_utc >= ?")
            params.append(format_utc(self.since))
        if self.until is not None:
            clauses.append("created_utc < ?")
            params.append(format_utc(self.until))
        for column, value in (
            ("project", self.project),
            ("model", self.model),
            ("served_mode", self.mode),
            ("key_id", self.key_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return " AND ".join(clauses), params


class QueryError(ValueError):
    """A bad filter in an API query string; `param` names it (answer 400 invalid_value)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


MAX_LIST_LIMIT = 1000


def list_query(params: Mapping[str, str]) -> dict[str, Any]:
    """GET /v1/receipts query parameters -> keyword arguments for query_receipts (QueryError if bad)."""
    out: dict[str, Any] = {}
    for name in ("since", "until"):
        if params.get(name):
            try:
                out[name] = parse_time(params[name])
            except ValueError as exc:
                raise QueryError(name, str(exc)) from None
    for name in ("project", "model", "key_id"):
        if params.get(name):
            out[name] = params[name]
    if params.get("mode"):
        if params["mode"] not in SERVED_MODES:
            raise QueryError("mode", f"mode must be one of {', '.join(SERVED_MODES)}")
        out["mode"] = params["mode"]
    limit = params.get("limit", "50")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIST_LIMIT:
        raise QueryError("limit", f"limit must be an integer from 1 to {MAX_LIST_LIMIT}")
    out["limit"] = int(limit)
    if params.get("cursor"):
        try:
            decode_cursor(params["cursor"])
        except ValueError as exc:
            raise QueryError("cursor", str(exc)) from None
        out["cursor"] = params["cursor"]
    return out


def list_json(receipts: Sequence[Receipt], next_cursor: str | None) -> dict[str, Any]:
    """The GET /v1/receipts body (also `receipts list --json`)."""
    return {"object": "list", "data": [receipt_to_json(r) for r in receipts], "next_cursor": next_cursor}


def get_receipt(conn: sqlite3.Connection, receipt_id: str) -> Receipt | None:
    row = conn.execute(
        f"SELECT {SELECT_COLUMNS} FROM receipts WHERE receipt_id = ?", (receipt_id,)
    ).fetchone()
    return receipt_from_row(row) if row else None


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The seq a cursor continues below; ValueError for anything this module did not produce."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, seq = text.partition(":")
        if kind == "seq" and seq.isdigit():
            return int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValueError(f"invalid cursor {cursor!r}")


def query_receipts(
    conn: sqlite3.Connection,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    project: str | None = None,
    model: str | None = None,
    mode: str | None = None,
    key_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Receipt], str | None]:
    """Newest first; `next_cursor` continues after the last row returned (None on the last page)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    where, params = ReceiptFilter(since, until, project, model, mode, key_id).where()
    if cursor is not None:
        where += " AND seq < ?"
        params.append(decode_cursor(cursor))
    rows = conn.execute(
        f"SELECT {SELECT_COLUMNS} FROM receipts WHERE {where} ORDER BY seq DESC LIMIT ?", (*params, limit + 1)
    ).fetchall()
    page = [receipt_from_row(row) for row in rows[:limit]]
    return page, encode_cursor(page[-1].seq) if len(rows) > limit and page[-1].seq is not None else None
