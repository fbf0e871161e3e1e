"""`nmproxy spend` in another currency or split by usage source: read receipt by receipt (ledger/spend_fx.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import click

from nextmodel_proxy.access.budget_store import usage_json
from nextmodel_proxy.cli.common import load_cli_config
from nextmodel_proxy.cli.output import echo_json
from nextmodel_proxy.cli.receipts import _print_table, read_ledger
from nextmodel_proxy.cli.spend import _budget_cells, _budgets_by_group
from nextmodel_proxy.ledger.receipts import ReceiptFilter
from nextmodel_proxy.ledger.spend import spend_total
from nextmodel_proxy.ledger.spend_fx import FxSpendRow, NoRate, spend_converted
from nextmodel_proxy.pricing import format_usd


def spend_per_receipt(
    db_path: str | None,
    config_path: str | None,
    by: str,
    code: str,
    split_usage_source: bool,
    as_json: bool,
    filters: ReceiptFilter,
) -> None:
    config = load_cli_config(config_path)

    def rate_of(currency: str, day: dt.date) -> Decimal | None:
        if currency == "USD":
            return Decimal(1)
        if config is None:
            return None
        found = config.fx.rate(currency, day)
        return found[0] if found else None

    with read_ledger(db_path, config_path) as (conn, _currency):
        try:
            rows, rates = spend_converted(
                conn, by, filters, code, rate_of, split_usage_source=split_usage_source
            )
        except NoRate as exc:
            raise click.ClickException(str(exc)) from None
        budgets = _budgets_by_group(conn, by, config_path)
    if by == "day":
        rows.sort(key=lambda r: (r.row.group or "", r.usage_source or ""))
    total = spend_total([r.row for r in rows])
    total_converted = sum((r.billed_converted for r in rows), Decimal(0))
    if as_json:
        out = [_json(r, split_usage_source) for r in rows]
        if budgets is not None:
            for row, r in zip(out, rows, strict=True):
                row["budgets"] = [usage_json(u) for u in budgets.get(r.row.group or "", [])]
        echo_json(
            {
                "by": by,
                "display_currency": code,
                # one rate when every receipt used the same one, else each its own day's
                "display_rate": format(next(iter(rates)), "f") if len(rates) == 1 else "per receipt",
                "rows": out,
                "total": _json(FxSpendRow(total, None, total_converted), False),
            }
        )
        return
    header = [
        by.upper(),
        *(["USAGE SOURCE"] if split_usage_source else []),
        "RECEIPTS",
        "PROMPT",
        "COMPLETION",
        "CACHED",
        "UPSTREAM USD",
        "BILLED USD",
        "SAVINGS USD",
        f"BILLED {code}",
        "UNKNOWN COST",
    ]
    cells = [_cells(r, split_usage_source) for r in rows]
    total_cells = _cells(FxSpendRow(total, None, total_converted), split_usage_source, "TOTAL")
    if budgets is not None:
        header += ["BUDGET", "PERIOD SPENT", "REMAINING"]
        cells = [
            c + _budget_cells(budgets.get(r.row.group or "", [])) for c, r in zip(cells, rows, strict=True)
        ]
        total_cells += ["", "", ""]
    _print_table(header, [*cells, total_cells])
    if code != "USD" and len(rates) == 1:
        click.echo(f"rate: 1 USD = {format(next(iter(rates)), 'f')} {code}")
    elif code != "USD":
        click.echo(
            f"{code}: each receipt converted at its own day's rate ({len(rates)} rates; exact: --json)"
        )


def _cells(r: FxSpendRow, split: bool, label: str | None = None) -> list[str]:
    row = r.row
    shown = r.billed_converted
    converted = f"{shown:,.2f}" if abs(shown) >= 1 else format_usd(shown.quantize(Decimal("1e-6")))
    return [
        label or (row.group if row.group is not None else "-"),
        *([("" if label else r.usage_source or "-")] if split else []),
        str(row.count),
        str(row.prompt_tokens),
        str(row.completion_tokens),
        str(row.cached_tokens),
        format_usd(row.upstream_usd),
        format_usd(row.billed_usd),
        format_usd(row.savings_usd),
        converted,
        str(row.unknown_cost),
    ]


def _json(r: FxSpendRow, split: bool) -> dict[str, Any]:
    row = r.row
    out: dict[str, Any] = {"group": row.group}
    if split:
        out["usage_source"] = r.usage_source
    out |= {
        "count": row.count,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cached_tokens": row.cached_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "upstream_cost_usd": format_usd(row.upstream_usd),
        "billed_cost_usd": format_usd(row.billed_usd),
        "fresh_cost_usd": format_usd(row.fresh_usd),
        "savings_usd": format_usd(row.savings_usd),
        "billed_cost_display": format_usd(r.billed_converted),
        "unknown_cost": row.unknown_cost,
    }
    return out
