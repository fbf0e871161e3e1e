"""`nmproxy reconcile`: the ledger against a provider's own usage/cost export, by UTC day x upstream model.

Readers (each returns ProviderLine rows, summed per day and model):
  openai     the Usage API (`/v1/organization/usage/completions`, group_by model) and/or Costs API
             (`/v1/organization/costs`, group_by line_item) JSON pages: buckets with start_time (unix s) and
             results; a file may hold one page, a list of pages, or {"usage": page(s), "costs": page(s)}.
  anthropic  the Admin API usage report (`/v1/organizations/usage_report/messages`, group_by model) and/or
             cost report (`/v1/organizations/cost_report`, group_by description; amounts are decimal strings
             in cents); one page, a list, or {"usage_report": ..., "cost_report": ...}.
  generic    CSV with the header date,model,input_tokens,output_tokens,cached_input_tokens,cost,currency
             (input_tokens counts the whole prompt, cached included, as receipts do).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from nextmodel_proxy.pricing import format_usd, from_pusd

GENERIC_COLUMNS = (
    "date",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost",
    "currency",
)
FORMATS = ("auto", "openai", "anthropic", "generic")
_CENTS = Decimal(100)


class ReconcileFileError(ValueError):
    """The export cannot be read (exit 2); the message is one line naming what was expected."""


@dataclass
class Totals:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost: Decimal | None = None
    currency: str = "USD"
    requests: int = 0

    def add(self, other: Totals) -> None:
        for name in ("input_tokens", "output_tokens", "cached_tokens", "cost"):
            theirs = getattr(other, name)
            if theirs is not None:
                mine = getattr(self, name)
                setattr(self, name, theirs if mine is None else mine + theirs)
        self.requests += other.requests
        self.currency = other.currency or self.currency


@dataclass
class Line:
    day: str
    model: str
    status: str  # matched | mismatch | provider-only | proxy-only
    proxy: Totals | None
    provider: Totals | None
    deltas: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "model": self.model,
            "status": self.status,
            "proxy": _totals_json(self.proxy),
            "provider": _totals_json(self.provider),
            "delta": {k: (format_usd(v) if isinstance(v, Decimal) else v) for k, v in self.deltas.items()},
        }


def _totals_json(t: Totals | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "cached_input_tokens": t.cached_tokens,
        "cost": None if t.cost is None else format_usd(t.cost),
        "currency": t.currency,
    }


# --- readers ------------------------------------------------------------------------------------


def read_export(data: bytes, fmt: str = "auto") -> dict[tuple[str, str], Totals]:
    """Provider totals per (UTC day, model) from an export file's bytes."""
    if fmt not in FORMATS:
        raise ReconcileFileError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    text = data.decode("utf-8-sig", errors="replace")
    stripped = text.lstrip()
    if fmt == "generic" or (fmt == "auto" and not stripped.startswith(("{", "["))):
        return _generic(text)
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ReconcileFileError(
            f"not JSON and not a CSV with the header {','.join(GENERIC_COLUMNS)}"
        ) from None
    if fmt == "auto":
        fmt = _detect(doc)
    return _openai(doc) if fmt == "openai" else _anthropic(doc)


_EXPECTED = (
    "expected an OpenAI Usage/Costs API page (data[].start_time, data[].results[]), an Anthropic usage or "
    "cost report (data[].starting_at, data[].results[]), or a CSV with the header "
    + ",".join(GENERIC_COLUMNS)
)


def _pages(doc: Any, *keys: str) -> list[Mapping[str, Any]]:
    if isinstance(doc, list):
        return [p for item in doc for p in _pages(item, *keys)]
    if isinstance(doc, Mapping):
        if isinstance(doc.get("data"), list):
            return [doc]
        return [p for key in keys if key in doc for p in _pages(doc[key], *keys)]
    return []


def _buckets(doc: Any, *keys: str) -> list[Mapping[str, Any]]:
    return [b for page in _pages(doc, *keys) for b in page["data"] if isinstance(b, Mapping)]


def _detect(doc: Any) -> str:
    buckets = _buckets(doc, "usage", "costs", "usage_report", "cost_report")
    if buckets and all("start_time" in b for b in buckets):
        return "openai"
    if buckets and all("starting_at" in b for b in buckets):
        return "anthropic"
    raise ReconcileFileError(_EXPECTED)


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != int(value):
        raise ReconcileFileError(f"{where}: token count must be a whole number, got {value!r}")
    return int(value)


def _dec(value: Any, where: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ReconcileFileError(f"{where}: amount must be a number, got {value!r}") from None
    if not amount.is_finite():
        raise ReconcileFileError(f"{where}: amount must be finite")
    return amount


def _put(out: dict[tuple[str, str], Totals], day: str, model: str, t: Totals) -> None:
    out.setdefault((day, model), Totals(currency=t.currency)).add(t)


def _openai(doc: Any) -> dict[tuple[str, str], Totals]:
    buckets = _buckets(doc, "usage", "costs")
    if not buckets or not all("start_time" in b for b in buckets):
        raise ReconcileFileError(_EXPECTED)
    out: dict[tuple[str, str], Totals] = {}
    for b in buckets:
        day = dt.datetime.fromtimestamp(_int(b["start_time"], "start_time"), dt.UTC).date().isoformat()
        for r in b.get("results") or []:
            kind = r.get("object", "")
            where = f"bucket {day} {kind}"
            if kind == "organization.usage.completions.result" or "input_tokens" in r:
                model = r.get("model")
                if not model:
                    raise ReconcileFileError(f"{where}: no model (export the usage grouped by model)")
                _put(
                    out,
                    day,
                    model,
                    Totals(
                        input_tokens=_int(r.get("input_tokens", 0), where),
                        output_tokens=_int(r.get("output_tokens", 0), where),
                        cached_tokens=_int(r.get("input_cached_tokens", 0), where),
                        requests=_int(r.get("num_model_requests", 0), where),
                    ),
                )
            elif kind == "organization.costs.result" or "amount" in r:
                line_item = r.get("line_item") or ""
                model = line_item.split(",")[0].strip()
                if not model:
                    raise ReconcileFileError(f"{where}: no line_item (export the costs grouped by line_item)")
                amount = r.get("amount") or {}
                currency = str(amount.get("currency") or "usd").upper()
                _put(out, day, model, Totals(cost=_dec(amount.get("value", 0), where), currency=currency))
    return out


def _anthropic(doc: Any) -> dict[tuple[str, str], Totals]:
    buckets = _buckets(doc, "usage_report", "cost_report")
    if not buckets or not all("starting_at" in b for b in buckets):
        raise ReconcileFileError(_EXPECTED)
    out: dict[tuple[str, str], Totals] = {}
    for b in buckets:
        day = str(b["starting_at"])[:10]
        for r in b.get("results") or []:
            model = r.get("model")
            where = f"bucket {day}"
            if not model:
                if "amount" in r and r.get("cost_type") not in (None, "tokens"):
                    continue  # web search / code execution: not token spend the proxy prices
                raise ReconcileFileError(f"{where}: no model (group the report by model / description)")
            if "amount" in r:
                cost = _dec(r["amount"], where) / _CENTS  # lowest currency units (cents) as a decimal string
                _put(out, day, model, Totals(cost=cost, currency=str(r.get("currency") or "USD")))
                continue
            creation = r.get("cache_creation") or {}
            writes = _int(creation.get("ephemeral_1h_input_tokens", 0), where) + _int(
                creation.get("ephemeral_5m_input_tokens", 0), where
            )
            reads = _int(r.get("cache_read_input_tokens", 0), where)
            _put(
                out,
                day,
                model,
                Totals(
                    input_tokens=_int(r.get("uncached_input_tokens", 0), where) + reads + writes,
                    output_tokens=_int(r.get("output_tokens", 0), where),
                    cached_tokens=reads,
                ),
            )
    return out


def _count_text(text: str, where: str) -> int:
    if not text:
        return 0
    if not text.isdigit():
        raise ReconcileFileError(f"{where}: token count must be a whole number, got {text!r}")
    return int(text)


def _generic(text: str) -> dict[tuple[str, str], Totals]:
    reader = csv.DictReader(io.StringIO(text))
    header = tuple(h.strip() for h in (reader.fieldnames or ()))
    if any(c not in header for c in GENERIC_COLUMNS):
        raise ReconcileFileError(
            f"the CSV header must hold the columns {','.join(GENERIC_COLUMNS)}; got {','.join(header) or 'nothing'}"
        )
    out: dict[tuple[str, str], Totals] = {}
    for n, row in enumerate(reader, start=2):
        where = f"line {n}"
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        try:
            day = dt.date.fromisoformat(row["date"][:10]).isoformat()
        except ValueError:
            raise ReconcileFileError(f"{where}: date must be YYYY-MM-DD, got {row['date']!r}") from None
        if not row["model"]:
            raise ReconcileFileError(f"{where}: model is empty")
        _put(
            out,
            day,
            row["model"],
            Totals(
                input_tokens=_count_text(row["input_tokens"], where),
                output_tokens=_count_text(row["output_tokens"], where),
                cached_tokens=_count_text(row["cached_input_tokens"], where),
                cost=_dec(row["cost"] or "0", where),
                currency=(row["currency"] or "USD").upper(),
            ),
        )
    return out


# --- the ledger side ----------------------------------------------------------------------------

# Calls that reached the upstream: fresh answers and upstream errors (replays never reach it). One pass over
# the provider's receipts: a non-USD group also brings its exact native costs (decimal text) to sum here.
_LEDGER_SQL = """
SELECT substr(created_utc, 1, 10), upstream_model, COALESCE(currency, 'USD'), COUNT(*),
       SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), SUM(upstream_cost_pusd),
       group_concat(CASE WHEN currency IS NOT NULL AND currency != 'USD' THEN native_cost END, ' ')
FROM receipts WHERE provider = ? AND served_mode IN ('fresh', 'error') {where}
GROUP BY 1, 2, 3
"""


def ledger_totals(
    conn: sqlite3.Connection, provider: str, since: str | None = None, until: str | None = None
) -> dict[tuple[str, str, str], Totals]:
    """Ledger totals per (UTC day, upstream model, currency); costs of non-USD models in their currency."""
    where, params = "", [provider]
    if since:
        where += " AND created_utc >= ?"
        params.append(since)
    if until:
        where += " AND created_utc < ?"
        params.append(until)
    out: dict[tuple[str, str, str], Totals] = {}
    rows = conn.execute(_LEDGER_SQL.format(where=where), params)
    for day, model, currency, n, p, c, cached, up, natives in rows:
        cost = from_pusd(up or 0)
        if currency != "USD":
            cost = sum((Decimal(text) for text in (natives or "").split()), Decimal(0))
        out[(day, model or "", currency)] = Totals(
            input_tokens=p or 0,
            output_tokens=c or 0,
            cached_tokens=cached or 0,
            cost=cost,
            currency=currency,
            requests=n,
        )
    return out


# --- comparison ---------------------------------------------------------------------------------


def compare(
    proxy: Mapping[tuple[str, str, str], Totals],
    provider: Mapping[tuple[str, str], Totals],
    tolerance_usd: Decimal,
    usd_rate: Any = None,
) -> list[Line]:
    """One line per (day, model) on either side. `usd_rate(currency, day)` converts a cost delta in another
    currency to USD for the tolerance (None: compared as it is)."""
    mine: dict[tuple[str, str], Totals] = {}
    for (day, model, _currency), t in proxy.items():
        key = (day, model)
        if key in mine:
            mine[key].add(t)
        else:
            mine[key] = Totals(
                t.input_tokens, t.output_tokens, t.cached_tokens, t.cost, t.currency, t.requests
            )
    lines = []
    for day, model in sorted(set(mine) | set(provider)):
        ours, theirs = mine.get((day, model)), provider.get((day, model))
        if ours is None:
            lines.append(Line(day, model, "provider-only", None, theirs, _deltas(None, theirs)))
        elif theirs is None:
            lines.append(Line(day, model, "proxy-only", ours, None, _deltas(ours, None)))
        else:
            deltas = _deltas(ours, theirs)
            ok = all(
                deltas.get(k, 0) in (0, None)
                for k in ("input_tokens", "output_tokens", "cached_input_tokens")
            )
            cost_delta = deltas.get("cost")
            if cost_delta is not None:
                usd = cost_delta
                if theirs.currency != "USD" and usd_rate is not None:
                    rate = usd_rate(theirs.currency, day)
                    usd = cost_delta / rate if rate else cost_delta
                ok = ok and abs(usd) <= tolerance_usd
            lines.append(Line(day, model, "matched" if ok else "mismatch", ours, theirs, deltas))
    return lines


def _deltas(ours: Totals | None, theirs: Totals | None) -> dict[str, Any]:
    """provider minus proxy for every figure both sides (or the one side present) carry."""
    out: dict[str, Any] = {}
    for name, key in (
        ("input_tokens", "input_tokens"),
        ("output_tokens", "output_tokens"),
        ("cached_tokens", "cached_input_tokens"),
        ("cost", "cost"),
    ):
        a = getattr(ours, name) if ours is not None else None
        b = getattr(theirs, name) if theirs is not None else None
        if ours is not None and theirs is not None and (a is None or b is None):
            continue  # the export does not carry this figure: nothing to compare
        out[key] = (b if b is not None else 0) - (a if a is not None else 0)
    return out


def summary(lines: Iterable[Line]) -> dict[str, Any]:
    counts: dict[str, int] = {"matched": 0, "mismatch": 0, "provider-only": 0, "proxy-only": 0}
    proxy_cost, provider_cost = Decimal(0), Decimal(0)
    for line in lines:
        counts[line.status] += 1
        if line.proxy is not None and line.proxy.cost is not None:
            proxy_cost += line.proxy.cost
        if line.provider is not None and line.provider.cost is not None:
            provider_cost += line.provider.cost
    return {
        **counts,
        "proxy_cost": format_usd(proxy_cost),
        "provider_cost": format_usd(provider_cost),
        "cost_delta": format_usd(provider_cost - proxy_cost),
        "ok": counts["mismatch"] == counts["provider-only"] == counts["proxy-only"] == 0,
    }
