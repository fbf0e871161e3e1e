"""`nmproxy keys ...` plus helpers `budgets`/`spend` share; writes go straight to the ledger file (WAL)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import click

from nextmodel_proxy.access import rules
from nextmodel_proxy.access.budget_store import (
    PERIODS,
    BudgetUsage,
    format_amount,
    set_budget,
)
from nextmodel_proxy.access.keys import (
    KeyNotFound,
    KeyRecord,
    KeySettings,
    NewKey,
    create_key,
    get_key,
    key_json,
    list_keys,
    revoke_key,
    rotate_key,
)
from nextmodel_proxy.cli.common import config_option, db_option, existing_db, load_cli_config, resolve_db
from nextmodel_proxy.cli.output import echo_json, table
from nextmodel_proxy.config import Config
from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.timespec import format_utc_or_none, utc_now

_SHOWN_ONCE = (
    "This is the only time the key is shown: store it now. Clients send it as Authorization: Bearer <key>."
)


@contextmanager
def write_transaction(db_path: str) -> Iterator[sqlite3.Connection]:
    """A migrated connection inside BEGIN IMMEDIATE; commits on success, rolls back on any error."""
    with _ledger_errors(db_path):
        conn = db.open_db(db_path)
    try:
        with _ledger_errors(db_path):
            conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


@contextmanager
def read_connection(db_path: str) -> Iterator[sqlite3.Connection]:
    with _ledger_errors(db_path):
        conn = db.open_db(existing_db(db_path))
    try:
        with _ledger_errors(db_path):
            yield conn
    finally:
        conn.close()


@contextmanager
def _ledger_errors(db_path: str) -> Iterator[None]:
    """A locked or unreadable ledger is a clean CLI error, not a traceback."""
    try:
        yield
    except sqlite3.Error as exc:
        raise click.ClickException(f"ledger {db_path}: {exc}") from None


def parse_amount(text: str, option: str) -> Decimal:
    try:
        return rules.amount(text)
    except rules.InputError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def checked_currency(currency: str, config: Config | None) -> str:
    """A budget currency needs a rate in the config's currency.rates (USD always has one)."""
    try:
        return rules.currency(currency, config.currency.rates if config else {})
    except rules.InputError as exc:
        where = f" of {config.source_path}" if config else " (no config loaded; pass --config)"
        raise click.ClickException(f"budget currency {exc}{where}") from None


def _checked_models(text: str | None, config: Config | None) -> frozenset[str] | None:
    try:
        return rules.models(text, {*config.models, *config.routes} if config else _ANY)
    except rules.InputError as exc:
        raise click.ClickException(f"--models: {exc} in the config") from None


def _expiry(text: str | None) -> dt.datetime | None:
    try:
        return rules.expires_at(text, utc_now())
    except rules.InputError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from None


class _Anything:
    """Without a config every model name is accepted (the proxy checks it against its own config)."""

    def __contains__(self, name: object) -> bool:
        return True


_ANY = _Anything()


def _echo_new_key(verb: str, new: NewKey, record: KeyRecord) -> None:
    where = ", ".join(
        f"{k} {v}"
        for k, v in (("project", record.project), ("team", record.team), ("env", record.environment))
        if v
    )
    admin = " (admin)" if record.is_admin else ""
    click.echo(
        f"{verb} key {record.key_id} ({record.display_prefix}…){admin}{' for ' + where if where else ''}."
    )
    click.echo(f"\n    {new.plaintext}\n")
    click.echo(_SHOWN_ONCE)


@click.group("keys")
def keys_group() -> None:
    """Proxy API keys: create, list, show, revoke, rotate (changes reach a running proxy within a second)."""


def _key_ref_command(name: str) -> Callable[[Callable[..., None]], click.Command]:
    """A `keys` subcommand taking ID plus --config/--db."""

    def wrap(f: Callable[..., None]) -> click.Command:
        return keys_group.command(name)(click.argument("key_ref", metavar="ID")(config_option(db_option(f))))

    return wrap


@keys_group.command("create")
@click.option("--project", help="Project the key's requests are billed to (required unless --admin).")
@click.option("--team", help="Team (default: the project's team in the config).")
@click.option("--env", "environment", help="Environment label, e.g. prod.")
@click.option("--name", help="A label for people.")
@click.option("--budget", "budget_amount", metavar="AMOUNT", help="Spending limit on this key.")
@click.option(
    "--budget-period", type=click.Choice(PERIODS), default=None, help="Budget period (default month)."
)
@click.option("--budget-currency", default=None, metavar="CODE", help="Budget currency (default USD).")
@click.option("--rpm", type=click.IntRange(min=1), help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(min=1), help="Tokens per minute.")
@click.option("--expires", metavar="DURATION", help="Lifetime, e.g. 30d or 12h.")
@click.option("--models", metavar="A,B", help="Only these models or routes.")
@click.option("--admin", is_flag=True, help="May use the admin endpoints.")
@config_option
@db_option
def create_cmd(
    project: str | None,
    team: str | None,
    environment: str | None,
    name: str | None,
    budget_amount: str | None,
    budget_period: str | None,
    budget_currency: str | None,
    rpm: int | None,
    tpm: int | None,
    expires: str | None,
    models: str | None,
    admin: bool,
    config_path: str | None,
    db_path: str | None,
) -> None:
    """Create a key and print it once."""
    config = load_cli_config(config_path)
    if not project and not admin:
        raise click.UsageError("--project is required (or --admin for an admin key)")
    if budget_amount is None and (budget_period or budget_currency):
        raise click.UsageError("--budget-period/--budget-currency need --budget AMOUNT")
    amount = parse_amount(budget_amount, "--budget") if budget_amount is not None else None
    currency = checked_currency(budget_currency or "USD", config)
    if team is None and project and config is not None and project in config.projects:
        team = config.projects[project].team
    settings = KeySettings(
        project, team, environment, name, admin, rpm, tpm, _checked_models(models, config), _expiry(expires)
    )
    with write_transaction(resolve_db(db_path, config)) as conn:
        new, record = create_key(conn, settings)
        budget = (
            set_budget(conn, "key", record.key_id, amount, currency, budget_period or "month")
            if amount is not None
            else None
        )
    _echo_new_key("Created", new, record)
    if budget is not None:
        click.echo(
            f"Budget {budget.budget_id}: {format_amount(budget.amount, budget.currency)} per {budget.period}."
        )


@keys_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON array instead of a table.")
@config_option
@db_option
def list_cmd(as_json: bool, config_path: str | None, db_path: str | None) -> None:
    """All keys with their status (no secrets)."""
    now = utc_now()
    with read_connection(resolve_db(db_path, load_cli_config(config_path))) as conn:
        records = list_keys(conn)
    if as_json:
        echo_json([key_json(r, now) for r in records])
        return
    if not records:
        click.echo(
            "No keys: the proxy runs in open mode (loopback only). Create one with nmproxy keys create."
        )
        return
    rows = [
        (
            r.key_id,
            r.display_prefix,
            r.name,
            r.project,
            r.team,
            r.environment,
            r.status(now),
            "admin" if r.is_admin else None,
            r.rpm,
            r.tpm,
            ",".join(sorted(r.models)) if r.models else None,
            format_utc_or_none(r.expires_at),
        )
        for r in records
    ]
    click.echo(
        table(
            (
                "ID",
                "PREFIX",
                "NAME",
                "PROJECT",
                "TEAM",
                "ENV",
                "STATUS",
                "ROLE",
                "RPM",
                "TPM",
                "MODELS",
                "EXPIRES",
            ),
            rows,
        )
    )


@_key_ref_command("show")
def show_cmd(key_ref: str, config_path: str | None, db_path: str | None) -> None:
    """One key (ID = key id or display prefix)."""
    with read_connection(resolve_db(db_path, load_cli_config(config_path))) as conn:
        record = lookup_key(conn, key_ref)
    for field, value in key_json(record, utc_now()).items():
        shown = ",".join(value) if isinstance(value, list) else value
        click.echo(f"{field + ':':<14}{'-' if shown is None else shown}")


@_key_ref_command("revoke")
def revoke_cmd(key_ref: str, config_path: str | None, db_path: str | None) -> None:
    """Revoke a key; a running proxy refuses it within a second."""
    with write_transaction(existing_db(resolve_db(db_path, load_cli_config(config_path)))) as conn:
        record = _changed(lambda: revoke_key(conn, lookup_key(conn, key_ref).key_id))
    click.echo(f"Revoked key {record.key_id} ({record.display_prefix}…).")


@_key_ref_command("rotate")
def rotate_cmd(key_ref: str, config_path: str | None, db_path: str | None) -> None:
    """Replace a key's secret: same settings and budgets, old secret revoked."""
    with write_transaction(existing_db(resolve_db(db_path, load_cli_config(config_path)))) as conn:
        new, record = _changed(lambda: rotate_key(conn, lookup_key(conn, key_ref).key_id))
    _echo_new_key(f"Rotated {record.rotated_from} into", new, record)


def lookup_key(conn: sqlite3.Connection, key_ref: str) -> KeyRecord:
    try:
        return get_key(conn, key_ref)
    except KeyNotFound as exc:
        raise click.ClickException(str(exc)) from None


def _changed(change: Any) -> Any:
    try:
        return change()
    except ValueError as exc:  # already revoked, and the like
        raise click.ClickException(str(exc)) from None


def usage_row(usage: BudgetUsage) -> tuple[Any, ...]:
    """A budgets/spend table row: amounts in the budget's currency."""
    b, cur = usage.budget, usage.budget.currency
    return (
        b.budget_id,
        b.scope,
        b.scope_id,
        b.period,
        format_amount(b.amount, cur),
        format_amount(usage.spent, cur),
        format_amount(max(usage.remaining, Decimal(0)), cur),
        f"{usage.share_spent * 100:.1f}%",
        format_utc_or_none(usage.reset_at) or "never",
    )


USAGE_HEADERS = ("BUDGET", "SCOPE", "ID", "PERIOD", "LIMIT", "SPENT", "REMAINING", "USED", "RESETS")
