"""What each dashboard view shows, as JSON-ready dicts (the JSON API serves them; the pages render them).

Money is exact decimal text (pricing.format_usd), the same strings `nmproxy spend --json` prints, so a tile can
be checked against the CLI to the digit. Query parameters are checked here: a bad one is a ViewError naming it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from nextmodel_proxy.access.budgets import BudgetBook
from nextmodel_proxy.ledger import dashboard as dash
from nextmodel_proxy.ledger.receipts import (
    MAX_LIST_LIMIT,
    SERVED_MODES,
    decode_cursor,
    encode_cursor,
    get_receipt,
    query_receipts,
    receipt_to_json,
)
from nextmodel_proxy.pricing import format_usd
from nextmodel_proxy.ui.access import Viewer

STATUS_CLASSES = ("2xx", "4xx", "5xx")
DEFAULT_DAYS = 7


class ViewError(ValueError):
    """A bad query parameter: the page says so in place; the JSON API answers 400 naming `param`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def window_of(params: Mapping[str, str], default_tz: str, today_utc: dt.datetime) -> dash.Window:
    """?tz=Area/City&from=YYYY-MM-DD&to=YYYY-MM-DD (local days, inclusive); default: the last 7 days."""
    try:
        tz = dash.zone(params.get("tz") or default_tz)
        today = today_utc.astimezone(tz).date()
        last = _date(params, "to") or today
        first = _date(params, "from") or last - dt.timedelta(days=DEFAULT_DAYS - 1)
        return dash.Window.of_days(first, last, tz)
    except dash.RangeError as exc:
        raise ViewError(exc.param, str(exc)) from None


def _date(params: Mapping[str, str], name: str) -> dt.date | None:
    text = params.get(name)
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ViewError(name, f"{name} must be a date as YYYY-MM-DD, got {text[:40]!r}") from None


def _money(t: dash.Totals) -> dict[str, str]:
    return {
        "upstream_cost_usd": format_usd(t.upstream_usd),
        "billed_cost_usd": format_usd(t.billed_usd),
        "fresh_cost_usd": format_usd(t.fresh_usd),
        "savings_usd": format_usd(t.savings_usd),
    }


def _rate(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.4f}"


def totals_json(t: dash.Totals) -> dict[str, Any]:
    return {
        "group": t.group,
        "count": t.requests,
        "fresh": t.fresh,
        "exact_cache": t.exact_cache,
        "errors": t.errors,
        "error_rate": _rate(t.error_rate),
        "cache_hit_rate": _rate(t.cache_hit_rate),
        "estimated": t.estimated,
        "unknown_cost": t.unknown_cost,
        "prompt_tokens": t.prompt_tokens,
        "completion_tokens": t.completion_tokens,
        "cached_tokens": t.cached_tokens,
        "cache_write_tokens": t.cache_write_tokens,
        "reasoning_tokens": t.reasoning_tokens,
        "tokens": t.tokens,
        **_money(t),
        "usd_per_request": None if t.usd_per_request is None else format_usd(t.usd_per_request),
    }


def _ms(value: float | None) -> float | str | None:
    return "inf" if value == float("inf") else value


def overview(
    conn: sqlite3.Connection,
    window: dash.Window,
    viewer: Viewer,
    budgets: BudgetBook | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """Tiles, the daily chart series, every breakdown and the budgets, for one window and viewer."""
    key = viewer.key_id
    today = now.astimezone(window.tz).date()
    month = dash.Window.of_days(today.replace(day=1), today, window.tz)
    latency = dash.percentiles(conn, "latency", window.start, window.end, key)
    ttft = dash.percentiles(conn, "ttft", window.start, window.end, key)
    series = dash.daily(conn, window, key)
    return {
        "tz": str(window.tz),
        "from": window.first_day.isoformat(),
        "to": window.last_day.isoformat(),
        "since_utc": _utc(window.start),
        "until_utc": _utc(window.end),
        "viewer": viewer.label,
        "today": {
            "since_utc": _utc(dash.local_midnight(today, window.tz)),
            **totals_json(
                dash.totals(
                    conn, dash.local_midnight(today, window.tz), _next_midnight(today, window.tz), key
                )
            ),
        },
        "month": {
            "since_utc": _utc(month.start),
            **totals_json(dash.totals(conn, month.start, month.end, key)),
        },
        "range": {
            **totals_json(dash.totals(conn, window.start, window.end, key)),
            "latency_p50_ms": _ms(latency.p50_ms),
            "latency_p95_ms": _ms(latency.p95_ms),
            "ttft_p95_ms": _ms(ttft.p95_ms),
            "latency_samples": latency.samples,
            "ttft_samples": ttft.samples,
        },
        "daily": {
            "days": series.days,
            "models": series.models,
            "spend_usd": {m: [format_usd(v) for v in values] for m, values in series.spend.items()},
            "fresh": series.fresh,
            "exact_cache": series.exact_cache,
        },
        "breakdowns": {
            by: [totals_json(t) for t in dash.breakdown(conn, by, window.start, window.end, key)]
            for by in dash.BREAKDOWN_BY
        },
        "budgets": budgets_json(budgets, viewer, now) if budgets is not None else [],
    }


def _next_midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    return dash.local_midnight(day + dt.timedelta(days=1), tz)


def _utc(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def budgets_json(book: BudgetBook, viewer: Viewer, now: dt.datetime) -> list[dict[str, Any]]:
    """Each budget's period: spent, held by requests in flight, limit and reset (a key sees its own only)."""
    out = []
    for line in book.snapshot(now):
        b = line.usage.budget
        if not viewer.sees_all and not (b.scope == "key" and b.scope_id == viewer.key_id):
            continue
        out.append(
            {
                "budget_id": b.budget_id,
                "scope": b.scope,
                "scope_id": b.scope_id,
                "period": b.period,
                "currency": b.currency,
                "limit": f"{b.amount:f}",
                "spent": f"{line.usage.spent:f}",
                "reserved": f"{line.reserved:f}",
                "remaining": f"{line.usage.remaining:f}",
                "share_spent": f"{line.usage.share_spent:.4f}",
                "reset_at": None if line.usage.reset_at is None else _utc(line.usage.reset_at),
            }
        )
    return out


def receipts_filters(
    params: Mapping[str, str], window: dash.Window, viewer: Viewer, known_models: set[str]
) -> dict[str, Any]:
    """?model=&project=&key=&mode=&status=2xx|4xx|5xx&limit=&cursor= checked against what exists."""
    out: dict[str, Any] = {"since": window.start, "until": window.end}
    model = params.get("model") or None
    if model is not None and model not in known_models:
        raise ViewError("model", f"no model {model[:80]!r} in this proxy's config or ledger")
    mode = params.get("mode") or None
    if mode is not None and mode not in SERVED_MODES:
        raise ViewError("mode", f"mode must be one of {', '.join(SERVED_MODES)}")
    status = params.get("status") or None
    if status is not None and status not in STATUS_CLASSES:
        raise ViewError("status", f"status must be one of {', '.join(STATUS_CLASSES)}")
    key = params.get("key") or None
    if not viewer.sees_all:
        if key is not None and key != viewer.key_id:
            raise ViewError("key", "this key can see only its own receipts")
        key = viewer.key_id
    limit_text = params.get("limit") or "50"
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIST_LIMIT:
        raise ViewError("limit", f"limit must be an integer from 1 to {MAX_LIST_LIMIT}")
    cursor = params.get("cursor") or None
    if cursor is not None:
        try:
            decode_cursor(cursor)
        except ValueError as exc:
            raise ViewError("cursor", str(exc)) from None
    out.update(model=model, project=params.get("project") or None, key_id=key, mode=mode)
    out.update(status=status, limit=int(limit_text), cursor=cursor)
    return out


def receipts_page(conn: sqlite3.Connection, filters: dict[str, Any]) -> dict[str, Any]:
    """One page, newest first. A status class is filtered on top of the indexed query, page by page."""
    status = filters.pop("status")
    limit = filters["limit"]
    if status is None:
        page, next_cursor = query_receipts(conn, **filters)
        return {"data": [receipt_to_json(r) for r in page], "next_cursor": next_cursor}
    low = int(status[0]) * 100
    kept: list[dict[str, Any]] = []
    cursor = filters.get("cursor")
    for _ in range(50):  # bounded: at most 50 index pages are read for one page of a rare status
        page, cursor = query_receipts(conn, **{**filters, "cursor": cursor, "limit": MAX_LIST_LIMIT})
        for r in page:
            if r.status is not None and low <= r.status < low + 100:
                kept.append(receipt_to_json(r))
                if len(kept) == limit:
                    return {"data": kept, "next_cursor": encode_cursor(r.seq) if r.seq else None}
        if cursor is None:
            break
    return {"data": kept, "next_cursor": cursor}


def receipt_detail(conn: sqlite3.Connection, receipt_id: str, viewer: Viewer) -> dict[str, Any] | None:
    """Every field of one receipt (None if absent or not the viewer's), with its price entry when recorded."""
    receipt = get_receipt(conn, receipt_id)
    if receipt is None or (not viewer.sees_all and receipt.key_id != viewer.key_id):
        return None
    return receipt_to_json(receipt)


def known_models(conn: sqlite3.Connection, configured: set[str]) -> set[str]:
    """Models a filter may name: the configured ones and any the ledger has served."""
    rows = conn.execute("SELECT DISTINCT model FROM spend_daily").fetchall()  # the small per-day rollup
    return configured | {m for (m,) in rows if m}
