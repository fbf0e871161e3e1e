"""`nmproxy receipts list|show|export|verify` and `nmproxy spend`: read-only views of the ledger."""

from __future__ import annotations

import csv
import datetime as dt
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from decimal import Decimal
from typing import IO, Any, TypeVar

import click
import orjson

from nextmodel_proxy.access.budget_store import (
    SCOPES,
    BudgetUsage,
    UnknownCurrency,
    format_amount,
    spend_against_budgets,
    usage_json,
)
from nextmodel_proxy.access.keys import KEY_PREFIX
from nextmodel_proxy.cli.common import config_option, db_option, existing_db, load_cli_config, resolve_db
from nextmodel_proxy.cli.output import echo_json, echo_table
from nextmodel_proxy.config import CurrencyConfig
from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.ledger.backlog import count_lines, dead_letter_path, spool_path
from nextmodel_proxy.ledger.chain import verify
from nextmodel_proxy.ledger.export import EXPORT_COLUMNS, export_csv_cells, export_json, iter_export_rows
from nextmodel_proxy.ledger.prices import get_price, unit_prices_line
from nextmodel_proxy.ledger.receipts import (
    SERVED_MODES,
    Receipt,
    ReceiptFilter,
    get_receipt,
    list_json,
    query_receipts,
    receipt_to_json,
)
from nextmodel_proxy.ledger.spend import SPEND_BY, SpendRow, spend, spend_total
from nextmodel_proxy.pricing import format_usd, to_display
from nextmodel_proxy.timespec import parse_time

F = TypeVar("F", bound=Callable[..., Any])


class TimeParam(click.ParamType):
    """ISO 8601 or a relative time such as 24h or 7d (meaning that long ago)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        try:
            return parse_time(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def filter_options(f: F) -> F:
    """--since/--until/--project/--model/--mode, shared by list, export and spend."""
    for option in reversed(
        [
            click.option("--since", type=TimeParam(), help="From this time (ISO 8601, or 30m, 24h, 7d ago)."),
            click.option("--until", type=TimeParam(), help="Before this time (ISO 8601, or relative)."),
            click.option("--project", help="Only this project."),
            click.option("--model", help="Only this served model id."),
            click.option("--mode", type=click.Choice(SERVED_MODES), help="Only this served mode."),
        ]
    ):
        f = option(f)
    return f


def _filters(kw: dict[str, Any]) -> ReceiptFilter:
    return ReceiptFilter(
        since=kw["since"], until=kw["until"], project=kw["project"], model=kw["model"], mode=kw["mode"]
    )


@contextmanager
def read_ledger(
    db_path: str | None, config_path: str | None
) -> Iterator[tuple[sqlite3.Connection, CurrencyConfig]]:
    """A read-only connection to an existing ledger (upgraded first if it is from an older version)."""
    config = load_cli_config(config_path)
    path = existing_db(resolve_db(db_path, config))
    try:
        conn = db.connect(path, readonly=True)
        if _needs_migration(conn):
            conn.close()
            db.open_db(path).close()
            conn = db.connect(path, readonly=True)
    except sqlite3.Error as exc:
        raise click.ClickException(f"cannot read the ledger {path!r}: {exc}") from None
    try:
        yield conn, config.currency if config else CurrencyConfig()
    except sqlite3.Error as exc:
        raise click.ClickException(f"cannot read the ledger {path!r}: {exc}") from None
    finally:
        conn.close()


def _needs_migration(conn: sqlite3.Connection) -> bool:
    try:
        done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    except sqlite3.OperationalError:
        return True
    return any(name not in done for name, _ in db.MIGRATIONS)


@click.group("receipts")
def receipts() -> None:
    """List, show, export and verify the priced receipts in the ledger."""


@receipts.command("list")
@config_option
@db_option
@filter_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--cursor", help="Continue from a previous page's next_cursor.")
@click.option("--json", "as_json", is_flag=True, help="The API's list object instead of a table.")
def list_cmd(
    config_path: str | None, db_path: str | None, limit: int, cursor: str | None, as_json: bool, **kw: Any
) -> None:
    """Receipts, newest first."""
    with read_ledger(db_path, config_path) as (conn, currency):
        f = _filters(kw)
        try:
            rows, next_cursor = query_receipts(
                conn,
                since=f.since,
                until=f.until,
                project=f.project,
                model=f.model,
                mode=f.mode,
                limit=limit,
                cursor=cursor,
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(list_json(rows, next_cursor))
        return
    _print_table(
        [
            "RECEIPT",
            "CREATED (UTC)",
            "PROJECT",
            "MODEL",
            "MODE",
            "STATUS",
            "TOKENS IN/OUT",
            "BILLED USD",
            f"BILLED {currency.display}",
        ],
        [_list_cells(r, currency) for r in rows],
        display_at=8,
    )
    if next_cursor:
        click.echo(f"more: --cursor {next_cursor}")


def _list_cells(r: Receipt, currency: CurrencyConfig) -> list[str]:
    tokens = f"{r.prompt_tokens or 0}/{r.completion_tokens or 0}"
    if r.cached_tokens:
        tokens += f" ({r.cached_tokens} cached)"
    return [
        r.receipt_id,
        r.created_utc[:19].replace("T", " "),
        r.project or "-",
        r.model or "-",
        r.served_mode,
        str(r.status or "-"),
        tokens,
        _usd(r.billed_cost_usd),
        _display(r.billed_cost_usd, currency),
    ]


def _usd(amount: Decimal | None) -> str:
    return "unknown" if amount is None else format_usd(amount)


def _display(amount: Decimal | None, currency: CurrencyConfig) -> str:
    """Rounded for reading (2 decimals, 6 below 1); --json and exports carry the exact figure."""
    if amount is None:
        return "unknown"
    shown = to_display(amount, currency)[0]
    return f"{shown:,.2f}" if abs(shown) >= 1 else format_usd(shown.quantize(Decimal("1e-6")))


def _print_table(header: list[str], rows: list[list[str]], *, display_at: int | None = None) -> None:
    """Aligned columns; the display-currency column (at `display_at`) is left out when it is USD anyway."""
    if display_at is not None and header[display_at] == "BILLED USD":
        header = header[:display_at] + header[display_at + 1 :]
        rows = [row[:display_at] + row[display_at + 1 :] for row in rows]
    echo_table(header, rows)


@receipts.command("show")
@config_option
@db_option
@click.argument("receipt_id")
@click.option("--json", "as_json", is_flag=True)
def show_cmd(config_path: str | None, db_path: str | None, receipt_id: str, as_json: bool) -> None:
    """One receipt, every field."""
    with read_ledger(db_path, config_path) as (conn, _currency):
        receipt = get_receipt(conn, receipt_id)
        price = get_price(conn, receipt.price_version) if receipt and receipt.price_version else None
    if receipt is None:
        raise click.ClickException(f"no receipt {receipt_id!r} in the ledger")
    data = receipt_to_json(receipt)
    if as_json:
        echo_json({**data, "unit_prices": price})
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        shown = orjson.dumps(value).decode() if isinstance(value, list | dict | bool) else value
        click.echo(f"{key.ljust(width)}  {'-' if shown is None else shown}")
    units = unit_prices_line(price) if price else "- (price version not in the ledger's prices table)"
    click.echo(f"{'unit prices'.ljust(width)}  {units}")


@receipts.command("export")
@config_option
@db_option
@filter_options
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="File to write (default stdout)."
)
def export_cmd(config_path: str | None, db_path: str | None, fmt: str, output: str | None, **kw: Any) -> None:
    """Stream receipts oldest first as CSV (RFC 4180, header row) or JSON lines; columns: EXPORT_COLUMNS."""
    with read_ledger(db_path, config_path) as (conn, currency):
        rows = iter_export_rows(conn, _filters(kw))
        with closing(rows):
            if output:
                with open(output, "w", newline="", encoding="utf-8") as out:
                    _write_export(out, fmt, rows, currency)
                return
            try:
                _write_export(sys.stdout, fmt, rows, currency)
            except BrokenPipeError:  # `| head`: the reader has gone, stop quietly
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _write_export(out: IO[str], fmt: str, rows: Iterator[tuple[Any, ...]], currency: CurrencyConfig) -> None:
    if fmt == "jsonl":
        for row in rows:
            out.write(orjson.dumps(export_json(row, currency)).decode())
            out.write("\n")
        return
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180: CRLF, quotes doubled, quoted when needed
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(export_csv_cells(row, currency))


@receipts.command("verify")
@config_option
@db_option
def verify_cmd(config_path: str | None, db_path: str | None) -> None:
    """Check the hash chain; exit 1 naming the first receipt edited, inserted or deleted. Also counts the
    receipts quarantined in the dead-letter file and those still kept in the spool (they do not change the
    exit status: the chain of what is in the ledger is what is verified)."""
    with read_ledger(db_path, config_path) as (conn, _currency):
        result = verify(conn)
    path = resolve_db(db_path, load_cli_config(config_path))
    for count, where, what in (
        (count_lines(dead_letter_path(path)), dead_letter_path(path), "quarantined (could not be written)"),
        (count_lines(spool_path(path)), spool_path(path), "kept in the spool, written at the next start"),
    ):
        if count:
            click.echo(f"note: {count} receipt(s) {what}: {where}", err=True)
    if result.ok:
        click.echo(f"ok: {result.checked} receipts checked, hash chain intact")
        return
    click.echo(
        f"TAMPERED: first bad receipt: {result.first_bad_receipt_id or '-'} ({result.reason}); "
        f"{result.checked} receipts checked",
        err=True,
    )
    sys.exit(1)


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
