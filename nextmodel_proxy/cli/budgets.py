"""`nmproxy budgets set|list|delete`: spending limits on keys, projects and teams, stored in the ledger file."""

from __future__ import annotations

import click

from nextmodel_proxy.access.budget_store import (
    PERIODS,
    UnknownCurrency,
    delete_budget,
    format_amount,
    set_budget,
    spend_against_budgets,
    usage_json,
)
from nextmodel_proxy.cli.common import config_option, db_option, existing_db, load_cli_config, resolve_db
from nextmodel_proxy.cli.keys import (
    USAGE_HEADERS,
    checked_currency,
    lookup_key,
    parse_amount,
    read_connection,
    usage_row,
    write_transaction,
)
from nextmodel_proxy.cli.output import echo_json, table


@click.group("budgets")
def budgets_group() -> None:
    """Budgets on a key, project or team (providers.yaml budgets are listed too)."""


@budgets_group.command("set")
@click.option("--key", "key_ref", metavar="ID", help="Key id or display prefix.")
@click.option("--project")
@click.option("--team")
@click.option("--amount", required=True, help="Limit, exact decimal, in --currency.")
@click.option("--currency", default="USD", show_default=True, help="Needs a rate in currency.rates.")
@click.option(
    "--period",
    type=click.Choice(PERIODS),
    default="month",
    show_default=True,
    help="UTC calendar period (weeks start Monday) or total.",
)
@config_option
@db_option
def set_cmd(
    key_ref: str | None,
    project: str | None,
    team: str | None,
    amount: str,
    currency: str,
    period: str,
    config_path: str | None,
    db_path: str | None,
) -> None:
    """Create or replace the budget of one scope and period."""
    scopes = [(s, v) for s, v in (("key", key_ref), ("project", project), ("team", team)) if v]
    if len(scopes) != 1:
        raise click.UsageError("give exactly one of --key, --project, --team")
    config = load_cli_config(config_path)
    limit, currency = parse_amount(amount, "--amount"), checked_currency(currency, config)
    scope, scope_id = scopes[0]
    with write_transaction(resolve_db(db_path, config)) as conn:
        if scope == "key":
            scope_id = lookup_key(conn, scope_id).key_id
        budget = set_budget(conn, scope, scope_id, limit, currency, period)
    click.echo(
        f"Budget {budget.budget_id}: {scope} {scope_id!r} may spend "
        f"{format_amount(budget.amount, budget.currency)} per {period}."
    )


@budgets_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON array instead of a table.")
@config_option
@db_option
def list_cmd(as_json: bool, config_path: str | None, db_path: str | None) -> None:
    """Every budget with its spend in the current period."""
    config = load_cli_config(config_path)
    with read_connection(resolve_db(db_path, config)) as conn:
        try:
            usages = [u for by in ("key", "project", "team") for u in spend_against_budgets(conn, by, config)]
        except UnknownCurrency as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json([usage_json(u) for u in usages])
    elif usages:
        click.echo(table(USAGE_HEADERS, [usage_row(u) for u in usages]))
    else:
        click.echo("No budgets.")


@budgets_group.command("delete")
@click.argument("budget_id")
@config_option
@db_option
def delete_cmd(budget_id: str, config_path: str | None, db_path: str | None) -> None:
    """Remove a budget made with `budgets set` or `keys create --budget`."""
    if budget_id.startswith("config:"):
        raise click.ClickException(f"{budget_id} comes from providers.yaml; edit the config to change it")
    with write_transaction(existing_db(resolve_db(db_path, load_cli_config(config_path)))) as conn:
        if not delete_budget(conn, budget_id):
            raise click.ClickException(f"no budget {budget_id!r} (see nmproxy budgets list)")
    click.echo(f"Deleted budget {budget_id}.")
