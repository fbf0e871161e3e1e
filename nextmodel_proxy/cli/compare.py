"""`nmproxy compare`: what the ledger's real chat workload would have cost under other models."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal

import click
import orjson

from nextmodel_proxy.cli.common import config_option, db_option, existing_db, load_cli_config, resolve_db
from nextmodel_proxy.cli.output import table
from nextmodel_proxy.config import Config, ModelConfig
from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.ledger.compare import Repriced, Workload, compare, load_workload
from nextmodel_proxy.pricing import from_pusd, plain_amount
from nextmodel_proxy.timespec import format_utc, parse_time


def _since_utc(since: str | None, now: dt.datetime) -> str | None:
    """The receipts' created_utc text for --since: ISO 8601 or a duration ago (30d, 2w), as everywhere."""
    if since is None:
        return None
    try:
        return format_utc(parse_time(since, now))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


def _chosen_models(config: Config, names: str | None) -> list[ModelConfig]:
    if not names:
        return [m for m in config.models.values() if m.mode in (None, "chat") and m.price is not None]
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in config.models]
    if unknown:
        raise click.ClickException(f"unknown model {', '.join(unknown)} (see `nmproxy models`)")
    return [config.models[n] for n in wanted]


def _read(db_path: str, since_utc: str | None, project: str | None) -> Workload:
    try:
        conn = db.connect(existing_db(db_path), readonly=True)
    except sqlite3.Error as exc:
        raise click.ClickException(f"cannot open ledger {db_path!r}: {exc}") from None
    try:
        return load_workload(conn, since_utc=since_utc, project=project)
    except sqlite3.OperationalError as exc:
        raise click.ClickException(f"cannot read receipts from {db_path!r}: {exc}") from None
    finally:
        conn.close()


def _usd(value: Decimal) -> str:
    return plain_amount(value)


def _vs(value: Decimal, billed: Decimal) -> str:
    if not billed:
        return "-"
    return f"{(value - billed) / billed * 100:+.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """The first column names the row; the others are figures, right-aligned."""
    return table(header, rows, right=range(1, len(header)))


def render(workload: Workload, repriced: list[Repriced], ratio: Decimal, scope: str) -> str:
    fresh, replayed = workload.fresh, workload.replayed
    total = fresh.requests + replayed.requests
    head = (
        f"Chat workload {scope}: {total} requests, {replayed.requests} replayed from the exact cache "
        f"({workload.hit_rate * 100:.1f}% hit rate); billed ${_usd(workload.billed)}"
    )
    if workload.unknown_cost_rows:
        head += f" (+{workload.unknown_cost_rows} requests of unknown cost)"
    served = _table(
        ["served model", "fresh", "replays", "prompt", "cached", "completion", "billed $"],
        [
            [
                m.model,
                str(m.fresh.requests),
                str(m.replayed.requests),
                str(m.fresh.prompt_tokens + m.replayed.prompt_tokens),
                str(m.fresh.cached_tokens + m.replayed.cached_tokens),
                str(m.fresh.completion_tokens + m.replayed.completion_tokens),
                _usd(from_pusd(m.billed_pusd)),
            ]
            for m in workload.models
        ],
    )
    rows = [
        [
            r.model,
            _usd(r.all_fresh),
            _usd(r.with_cache),
            _vs(r.with_cache, workload.billed),
            ("no " + ", ".join(r.assumed) + " price: input price used") if r.assumed else "",
        ]
        for r in repriced
    ]
    table = _table(["model", "all fresh $", "with cache $", "vs billed", "note"], rows)
    foot = (
        f"Same tokens repriced at each model's list price (USD). 'with cache' bills the observed replays at "
        f"{_usd(ratio)} of fresh. Tiered and off-peak prices are not modelled."
    )
    return f"{head}\n\n{served}\n\n{table}\n\n{foot}"


def as_json(workload: Workload, repriced: list[Repriced], ratio: Decimal) -> bytes:
    return orjson.dumps(
        {
            "requests": workload.fresh.requests + workload.replayed.requests,
            "replayed": workload.replayed.requests,
            "hit_rate": _usd(workload.hit_rate.quantize(Decimal("0.0001"))),
            "billed_usd": _usd(workload.billed),
            "unknown_cost_requests": workload.unknown_cost_rows,
            "replay_price_ratio": _usd(ratio),
            "models": [
                {
                    "model": r.model,
                    "all_fresh_usd": _usd(r.all_fresh),
                    "with_cache_usd": _usd(r.with_cache),
                    "assumed_input_price_for": list(r.assumed),
                }
                for r in repriced
            ],
        },
        option=orjson.OPT_INDENT_2,
    )


@click.command("compare")
@config_option
@db_option
@click.option("--since", default="30d", show_default=True, help="Look back this far (30d, 12h, ...).")
@click.option(
    "--models",
    "model_names",
    default=None,
    metavar="A,B,C",
    help="Models to reprice under (default: every priced chat model in the config).",
)
@click.option("--project", default=None, help="Only this project's traffic.")
@click.option("--json", "json_out", is_flag=True, help="Exact decimal strings, machine-readable.")
def compare_command(
    config_path: str | None,
    db_path: str | None,
    since: str,
    model_names: str | None,
    project: str | None,
    json_out: bool,
) -> None:
    """Reprice the real chat workload in the ledger under other models: fresh, and with the cache hit rate."""
    config = load_cli_config(config_path, required=True)
    assert config is not None  # required=True either loads or raises ClickException
    models = _chosen_models(config, model_names)
    since_utc = _since_utc(since, dt.datetime.now(dt.UTC))
    workload = _read(resolve_db(db_path, config), since_utc, project)
    ratio = config.cache.replay_price_ratio
    repriced = compare(workload, models, ratio)
    if json_out:
        click.echo(as_json(workload, repriced, ratio).decode())
        return
    if not workload.models:
        click.echo(f"no chat receipts since {since_utc}" + (f" for project {project!r}" if project else ""))
        return
    scope = f"since {since_utc[:10]}" + (f", project {project}" if project else "")
    click.echo(render(workload, repriced, ratio, scope))
