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
