"""`nmproxy spend`: totals with cache savings by key/project/team/model/provider/day/mode, against budgets."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

import click

from nextmodel_proxy.access.budget_store import (
    SCOPES,
    BudgetUsage,
    UnknownCurrency,
    format_amount,
    spend_against_budgets,
    usage_json,
)
from nextmodel_proxy.access.keys import KEY_PREFIX
from nextmodel_proxy.cli.common import config_option, db_option, load_cli_config
from nextmodel_proxy.cli.output import echo_json
from nextmodel_proxy.cli.receipts import _display, _filters, _print_table, filter_options, read_ledger
from nextmodel_proxy.config import CurrencyConfig
from nextmodel_proxy.ledger.spend import SPEND_BY, SpendRow, spend, spend_total
from nextmodel_proxy.pricing import format_usd, to_display


@click.command("spend")
@config_option
@db_option
@click.option("--by", type=click.Choice(list(SPEND_BY)), default="project", show_default=True)
@filter_options
@click.option(
    "--currency",
    "code",
    default=None,
    help="Show billed totals in this currency (default: currency.display), each receipt at its own day's rate.",
)
@click.option(
    "--usage-source", is_flag=True, help="Split each group by usage source (upstream/cache/estimated/none)."
)
@click.option("--json", "as_json", is_flag=True, help="Exact, unrounded decimal strings.")
def spend_cmd(
    config_path: str | None,
    db_path: str | None,
    by: str,
    code: str | None,
    usage_source: bool,
    as_json: bool,
    **kw: Any,
) -> None:
    """Spend totals with cache savings, in USD and the display currency; by key/project/team, against budgets.
    Another currency converts each receipt at the rate of its own day (what the CSV export shows)."""
    config = load_cli_config(config_path)
    target = (code or (config.currency.display if config else "USD")).upper()
    if usage_source or target != "USD":
        from nextmodel_proxy.cli.spend_fx import spend_per_receipt  # it builds on this module

        spend_per_receipt(db_path, config_path, by, target, usage_source, as_json, _filters(kw))
        return
    with read_ledger(db_path, config_path) as (conn, currency):
        rows = spend(conn, by, _filters(kw))
        budgets = _budgets_by_group(conn, by, config_path)
        names = _key_names(conn) if by == "key" else {}
    if by == "day":
        rows.sort(key=lambda r: r.group or "")
    total = spend_total(rows)
    if as_json:
        out = [_spend_json(r, currency) for r in rows]
        if budgets is not None:
            for row, r in zip(out, rows, strict=True):
                row["budgets"] = [usage_json(u) for u in budgets.get(r.group or "", [])]
        if by == "key":
            for row, r in zip(out, rows, strict=True):
                row["key_name"], row["key_prefix"] = names.get(r.group or "", (None, None))
        echo_json(
            {
                "by": by,
                "display_currency": currency.display,
                "display_rate": format(currency.rates[currency.display], "f"),
                "rows": out,
                "total": _spend_json(total, currency),
                **(
                    {"budgets": [usage_json(u) for us in budgets.values() for u in us]}
                    if budgets is not None
                    else {}
                ),
            }
        )
        return
    header = [
        by.upper(),
        "RECEIPTS",
        "PROMPT",
        "COMPLETION",
        "CACHED",
        "UPSTREAM USD",
        "BILLED USD",
        "SAVINGS USD",
        f"BILLED {currency.display}",
        "UNKNOWN COST",
    ]
    cells = [_spend_cells(r, currency) for r in rows]
    total_cells = _spend_cells(total, currency, "TOTAL")
    display_at = 8
    if by == "key":  # the key id alone means nothing to a reader: its name and display prefix beside it
        header[1:1] = ["NAME", "PREFIX"]
        for c, r in zip(cells, rows, strict=True):
            name, prefix = names.get(r.group or "", (None, None))
            c[1:1] = [name or "-", f"{prefix}…" if prefix else "-"]
        total_cells[1:1] = ["", ""]
        display_at += 2
    if budgets is not None:
        header += ["BUDGET", "PERIOD SPENT", "REMAINING"]
        cells = [c + _budget_cells(budgets.get(r.group or "", [])) for c, r in zip(cells, rows, strict=True)]
        total_cells += ["", "", ""]
    _print_table(header, [*cells, total_cells], display_at=display_at)
    if currency.display != "USD":
        click.echo(f"rate: 1 USD = {format(currency.rates[currency.display], 'f')} {currency.display}")


def _key_names(conn: sqlite3.Connection) -> dict[str, tuple[str | None, str]]:
    """key id -> (name, display prefix) for every key ever made (revoked ones too: their spend still shows)."""
    try:
        found = conn.execute("SELECT key_id, name, prefix FROM api_keys").fetchall()
    except sqlite3.OperationalError:  # a ledger from before keys existed
        return {}
    return {key_id: (name, KEY_PREFIX + prefix) for key_id, name, prefix in found}


def _budgets_by_group(
    conn: sqlite3.Connection, by: str, config_path: str | None
) -> dict[str, list[BudgetUsage]] | None:
    """Budgets on each key/project/team with their current period's spend; None for other groupings."""
    if by not in SCOPES:
        return None
    try:
        usages = spend_against_budgets(conn, by, load_cli_config(config_path))
    except UnknownCurrency as exc:
        raise click.ClickException(str(exc)) from None
    out: dict[str, list[BudgetUsage]] = {}
    for usage in usages:
        out.setdefault(usage.budget.scope_id, []).append(usage)
    return out


def _budget_cells(usages: list[BudgetUsage]) -> list[str]:
    """'monthly 100 GBP' / spent / remaining, one budget per '; ' part (a group may have one per period)."""
    if not usages:
        return ["-", "-", "-"]
    return [
        "; ".join(f"{u.budget.period} {format_amount(u.budget.amount, u.budget.currency)}" for u in usages),
        "; ".join(format_amount(u.spent, u.budget.currency) for u in usages),
        "; ".join(format_amount(max(u.remaining, Decimal(0)), u.budget.currency) for u in usages),
    ]


def _spend_cells(r: SpendRow, currency: CurrencyConfig, label: str | None = None) -> list[str]:
    return [
        label or (r.group if r.group is not None else "-"),
        str(r.count),
        str(r.prompt_tokens),
        str(r.completion_tokens),
        str(r.cached_tokens),
        format_usd(r.upstream_usd),
        format_usd(r.billed_usd),
        format_usd(r.savings_usd),
        _display(r.billed_usd, currency),
        str(r.unknown_cost),
    ]


def _spend_json(r: SpendRow, currency: CurrencyConfig) -> dict[str, Any]:
    billed_display = to_display(r.billed_usd, currency)[0]
    return {
        "group": r.group,
        "count": r.count,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "cached_tokens": r.cached_tokens,
        "cache_write_tokens": r.cache_write_tokens,
        "reasoning_tokens": r.reasoning_tokens,
        "upstream_cost_usd": format_usd(r.upstream_usd),
        "billed_cost_usd": format_usd(r.billed_usd),
        "fresh_cost_usd": format_usd(r.fresh_usd),
        "savings_usd": format_usd(r.savings_usd),
        "billed_cost_display": format_usd(billed_display),
        "unknown_cost": r.unknown_cost,
    }
