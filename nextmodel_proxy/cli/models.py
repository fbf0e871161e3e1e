"""`nmproxy models`: the catalog shortlist side by side, filtered and sorted."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from decimal import Decimal

import click
import orjson

from nextmodel_proxy.catalog import blended_price, model_row, model_status
from nextmodel_proxy.cli.common import config_option, load_cli_config
from nextmodel_proxy.cli.output import table
from nextmodel_proxy.config import CAPABILITIES, Config, ModelConfig

_CAP_LETTERS = {"tools": "T", "vision": "V", "json_schema": "J", "reasoning": "R", "embeddings": "E"}
_LEGEND = "caps: T tools, V vision, J json_schema, R reasoning, E embeddings. ttft is a catalog estimate."
_COLUMNS = ("model", "provider", "in $/1M", "out $/1M", "cached $/1M", "context", "caps", "ttft", "flags")
_NUMERIC = frozenset({"in $/1M", "out $/1M", "cached $/1M", "context", "ttft"})


def select_models(
    config: Config,
    *,
    providers: Iterable[str] = (),
    capabilities: Iterable[str] = (),
    tags: Iterable[str] = (),
) -> list[ModelConfig]:
    """Models matching every filter: any listed provider, all listed capabilities, any listed tag."""
    wanted_providers, wanted_caps, wanted_tags = set(providers), set(capabilities), set(tags)
    return [
        m
        for m in config.models.values()
        if (not wanted_providers or m.provider in wanted_providers)
        and wanted_caps <= m.capabilities
        and (not wanted_tags or wanted_tags & set(m.tags))
    ]


def sort_models(models: list[ModelConfig], key: str) -> list[ModelConfig]:
    """Sort by blended price (3:1 input:output), latency estimate, or name; unknown values go last."""
    if key == "price":

        def by_price(m: ModelConfig) -> tuple[bool, Decimal, str]:
            blended = blended_price(m.price)
            return blended is None, blended or Decimal(0), m.id.casefold()

        return sorted(models, key=by_price)
    if key == "latency":

        def by_latency(m: ModelConfig) -> tuple[float, str]:
            ttft = m.latency.ttft_ms if m.latency and m.latency.ttft_ms is not None else math.inf
            return ttft, m.id.casefold()

        return sorted(models, key=by_latency)
    return sorted(models, key=lambda m: m.id.casefold())


def _usd(value: Decimal | None) -> str:
    return "-" if value is None else format(value.normalize(), "f")


def _tokens(value: int | None) -> str:
    if value is None:
        return "-"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.2f}".rstrip("0").rstrip(".") + "M"
    return f"{value // 1000}K" if value >= 1000 else str(value)


def table_row(model: ModelConfig, today: dt.date) -> dict[str, str]:
    price = model.price
    ttft = model.latency.ttft_ms if model.latency else None
    return {
        "model": model.id,
        "provider": model.provider,
        "in $/1M": _usd(price.input if price else None),
        "out $/1M": _usd(price.output if price else None),
        "cached $/1M": _usd(price.cached_input if price else None),
        "context": _tokens(model.context_window),
        "caps": "".join(_CAP_LETTERS[c] for c in _CAP_LETTERS if c in model.capabilities) or "-",
        "ttft": f"~{ttft:.0f}ms" if ttft is not None else "-",
        "flags": " ".join(_flags(model, today)),
    }


def _flags(model: ModelConfig, today: dt.date) -> list[str]:
    flags = model_status(model, today).labels(model)
    if model.verified and model.verified.startswith("unverified"):
        flags.append("UNVERIFIED")
    pm = model.pricing
    if pm is not None:
        if pm.currency != "USD":  # listed in USD at today's fx rate; billed in its own currency
            flags.append(pm.currency)
        for entry in pm.schedule:  # a dated price change within 30 days either side of today
            if (
                entry.start is not None
                and entry is not pm.schedule[0]
                and abs((entry.start - today).days) <= 30
            ):
                flags.append(f"PRICE {'CHANGES' if entry.start > today else 'CHANGED'} {entry.start}")
    return flags


def render_table(rows: list[dict[str, str]]) -> str:
    right = {i for i, c in enumerate(_COLUMNS) if c in _NUMERIC}
    return table(list(_COLUMNS), [[r[c] for c in _COLUMNS] for r in rows], right=right)


def _json_rows(models: list[ModelConfig], today: dt.date) -> bytes:
    data = []
    for m in models:
        row = model_row(m, today)
        blended = blended_price(m.price)
        row["blended_price"] = None if blended is None else format(blended.normalize(), "f")
        data.append(row)
    return orjson.dumps({"object": "list", "data": data}, option=orjson.OPT_INDENT_2)


@click.command("models")
@config_option
@click.option("--provider", "providers", multiple=True, metavar="P", help="Only this provider (repeatable).")
@click.option(
    "--capability",
    "capabilities",
    multiple=True,
    type=click.Choice(sorted(CAPABILITIES)),
    help="Only models with this capability (repeatable: all must match).",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="TAG",
    help="Only models with this tag, e.g. domestic, global, local.",
)
@click.option(
    "--sort",
    "sort_key",
    type=click.Choice(["price", "latency", "name"]),
    default="name",
    show_default=True,
    help="price = blended 3:1 input:output per 1M tokens; latency = ttft estimate.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable rows with exact decimal strings.")
@click.option(
    "--today",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    hidden=True,
    help="Evaluate STALE/RETIRING flags as of this date (for tests).",
)
def models_command(
    config_path: str | None,
    providers: tuple[str, ...],
    capabilities: tuple[str, ...],
    tags: tuple[str, ...],
    sort_key: str,
    as_json: bool,
    today: dt.datetime | None,
) -> None:
    """Show the model catalog side by side: prices, context, capabilities, latency, flags."""
    config = load_cli_config(config_path, required=True)
    assert config is not None  # required=True either loads or raises ClickException
    unknown = sorted(set(providers) - set(config.providers))
    if unknown:
        raise click.ClickException(
            f"unknown provider {', '.join(unknown)} (known: {', '.join(config.providers)})"
        )
    day = today.date() if today else dt.datetime.now(dt.UTC).date()
    chosen = sort_models(
        select_models(config, providers=providers, capabilities=capabilities, tags=tags), sort_key
    )
    if as_json:
        click.echo(_json_rows(chosen, day).decode())
        return
    if not chosen:
        click.echo("no models match these filters")
        return
    click.echo(render_table([table_row(m, day) for m in chosen]))
    click.echo(
        f"\n{len(chosen)} models. {_LEGEND} STALE: price older than 60 days. A currency flag (CNY): billed in it,"
        " listed here in USD at today's fx rate. Full price rules: nmproxy prices check."
    )
