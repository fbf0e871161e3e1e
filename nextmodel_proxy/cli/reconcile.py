"""`nmproxy reconcile`: compare the ledger with a provider's usage/cost export (exit 0 all matched, 1 not, 2 unreadable)."""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

import click
import orjson

from nextmodel_proxy.cli.common import config_option, db_option, load_cli_config
from nextmodel_proxy.cli.output import echo_table
from nextmodel_proxy.cli.receipts import read_ledger
from nextmodel_proxy.ledger.reconcile import (
    FORMATS,
    Line,
    ReconcileFileError,
    compare,
    ledger_totals,
    read_export,
    summary,
)
from nextmodel_proxy.pricing import format_usd


def _tolerance(ctx: click.Context, param: click.Parameter, value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"must be an amount in USD, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise click.BadParameter("must be a non-negative amount in USD")
    return amount


@click.command("reconcile")
@config_option
@db_option
@click.option("--provider", "provider", required=True, help="The provider name in providers.yaml.")
@click.option("--file", "path", required=True, help="The provider's usage/cost export.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option(
    "--tolerance",
    default="0.01",
    show_default=True,
    callback=_tolerance,
    help="Largest cost difference (USD) per day and model still counted as matched.",
)
@click.option("--json", "as_json", is_flag=True, help="Lines and totals as JSON.")
def reconcile_command(
    config_path: str | None,
    db_path: str | None,
    provider: str,
    path: str,
    fmt: str,
    tolerance: Decimal,
    as_json: bool,
) -> None:
    """Compare the ledger with PROVIDER's own export, by UTC day and upstream model; replays never count."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        theirs = read_export(data, fmt)
    except OSError as exc:
        click.echo(f"error: cannot read {path!r}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    except ReconcileFileError as exc:
        click.echo(f"error: cannot read {path!r} as a {fmt} usage export: {exc}", err=True)
        sys.exit(2)
    config = load_cli_config(config_path)
    days = sorted(day for day, _model in theirs)
    with read_ledger(db_path, config_path) as (conn, _currency):
        ours = ledger_totals(conn, provider)
    if days:  # only the days the export covers; a proxy-only day outside it is not the provider's to answer
        first, last = days[0], days[-1]
        ours = {k: v for k, v in ours.items() if first <= k[0] <= last}
    fx = getattr(config, "fx", None) if config else None

    def usd_rate(code: str, day: str) -> Decimal | None:
        if fx is None:
            return None
        found = fx.rate(code, dt.date.fromisoformat(day))
        return found[0] if found else None

    lines = compare(ours, theirs, tolerance, usd_rate)
    total = summary(lines)
    if as_json:
        click.echo(
            orjson.dumps(
                {
                    "provider": provider,
                    "tolerance_usd": str(tolerance),
                    "lines": [x.as_json() for x in lines],
                    "total": total,
                },
                option=orjson.OPT_INDENT_2,
            ).decode()
        )
    else:
        _print(lines, total)
    sys.exit(0 if total["ok"] else 1)


def _n(value: Any) -> str:
    if isinstance(value, Decimal):
        return format_usd(value)
    return "-" if value is None else str(value)


def _signed(value: Any) -> str:
    if value is None:
        return "-"
    return f"+{_n(value)}" if value > 0 else _n(value)


def _print(lines: list[Line], total: dict[str, Any]) -> None:
    header = [
        "STATUS",
        "DAY",
        "MODEL",
        "IN proxy/provider (Δ)",
        "OUT proxy/provider (Δ)",
        "CACHED Δ",
        "COST proxy/provider (Δ)",
    ]
    rows = []
    for x in lines:
        p, q, d = x.proxy, x.provider, x.deltas
        cur = (q or p).currency if (q or p) else ""
        rows.append(
            [
                x.status.upper(),
                x.day,
                x.model,
                f"{_n(p and p.input_tokens)}/{_n(q and q.input_tokens)} ({_signed(d.get('input_tokens'))})",
                f"{_n(p and p.output_tokens)}/{_n(q and q.output_tokens)} ({_signed(d.get('output_tokens'))})",
                _signed(d.get("cached_input_tokens")),
                f"{_n(p and p.cost)}/{_n(q and q.cost)} {cur} ({_signed(d.get('cost'))})",
            ]
        )
    echo_table(header, rows)
    click.echo(
        f"TOTAL: {total['matched']} matched, {total['mismatch']} mismatch, {total['provider-only']} provider-only, "
        f"{total['proxy-only']} proxy-only; cost proxy {total['proxy_cost']} provider {total['provider_cost']} "
        f"(Δ {total['cost_delta']})"
    )
