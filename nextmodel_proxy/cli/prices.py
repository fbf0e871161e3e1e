"""`nmproxy prices show VERSION` (a receipt's unit prices from the ledger) and `nmproxy prices check`."""

from __future__ import annotations

import datetime as dt
import sys

import click
import orjson

from nextmodel_proxy.cli.common import config_option, db_option, load_cli_config
from nextmodel_proxy.cli.output import echo_json
from nextmodel_proxy.cli.receipts import read_ledger
from nextmodel_proxy.ledger.prices import get_price, unit_prices_line
from nextmodel_proxy.price_checks import check


@click.group("prices")
def prices_group() -> None:
    """The price history in the ledger, and what in the catalog needs attention."""


@prices_group.command("show")
@config_option
@db_option
@click.argument("version")
@click.option("--json", "as_json", is_flag=True)
def show_cmd(config_path: str | None, db_path: str | None, version: str, as_json: bool) -> None:
    """The resolved price a price_version names: unit prices, currency, and the rules that chose them."""
    with read_ledger(db_path, config_path) as (conn, _currency):
        price = get_price(conn, version)
    if price is None:
        raise click.ClickException(f"no price version {version!r} in the ledger")
    if as_json:
        echo_json(price)
        return
    click.echo(f"price_version  {price['price_version']}")
    click.echo(f"model          {price['model']}")
    click.echo(f"unit prices    {unit_prices_line(price)}")
    for key in (
        "schedule_from",
        "price_tier",
        "price_window",
        "service_tier",
        "source",
        "as_of",
        "first_seen_utc",
    ):
        click.echo(f"{key.ljust(14)} {price[key] if price[key] is not None else '-'}")
    for bracket in price["brackets"]:
        click.echo(
            f"from {bracket['from_input_tokens']} input tokens: {unit_prices_line({**bracket, 'currency': price['currency']})}"
        )


@prices_group.command("check")
@config_option
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=30,
    show_default=True,
    help="Look this far ahead (and back for changes that just took effect).",
)
@click.option(
    "--stale-days",
    type=click.IntRange(1, 3650),
    default=60,
    show_default=True,
    help="A price older than this is stale.",
)
@click.option(
    "--today",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Check as of this date (default: today, UTC).",
)
@click.option("--json", "as_json", is_flag=True)
def check_cmd(
    config_path: str | None, days: int, stale_days: int, today: dt.datetime | None, as_json: bool
) -> None:
    """Stale prices, scheduled changes within --days (and ones that just took effect), retirements, notes that
    mention tiers / off-peak / service tiers / 1-hour writes the entry does not model, stale FX rates.
    Exit 1 when anything is found."""
    config = load_cli_config(config_path, required=True)
    assert config is not None
    day = today.date() if today else dt.datetime.now(dt.UTC).date()
    findings = check(config, day, days=days, stale_days=stale_days)
    if as_json:
        click.echo(
            orjson.dumps(
                [{"kind": f.kind, "subject": f.subject, "message": f.message} for f in findings],
                option=orjson.OPT_INDENT_2,
            ).decode()
        )
    else:
        for f in findings:
            click.echo(f"{f.kind.upper():12} {f.subject:32} {f.message}")
        click.echo(f"{len(findings)} finding(s) as of {day}")
    sys.exit(1 if findings else 0)
