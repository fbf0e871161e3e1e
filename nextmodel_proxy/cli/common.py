"""Options and helpers shared by the CLI command modules: config and database resolution, clean errors."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from nextmodel_proxy.config import DEFAULT_CONFIG, DEFAULT_DB, Config, ConfigError, load_config

F = TypeVar("F", bound=Callable[..., Any])


def config_option(f: F) -> F:
    return click.option(
        "--config",
        "config_path",
        envvar="NMPROXY_CONFIG",
        default=None,
        metavar="PATH",
        help=f"providers.yaml to read (env NMPROXY_CONFIG; default ./{DEFAULT_CONFIG}).",
    )(f)


def db_option(f: F) -> F:
    return click.option(
        "--db",
        "db_path",
        envvar="NMPROXY_DB",
        default=None,
        metavar="PATH",
        help="SQLite ledger file (env NMPROXY_DB; default: ledger.path from the config, else ./nextmodel.db).",
    )(f)


def load_cli_config(config_path: str | None, *, required: bool = False) -> Config | None:
    """The config named, or ./providers.yaml if present; ConfigError becomes a clean CLI error."""
    path = config_path or (DEFAULT_CONFIG if (required or Path(DEFAULT_CONFIG).exists()) else None)
    if path is None:
        return None
    if not Path(path).exists():
        given = (
            "from --config or NMPROXY_CONFIG"
            if config_path
            else f"no --config or NMPROXY_CONFIG: ./{DEFAULT_CONFIG}"
        )
        raise click.ClickException(
            f"no config file at {path!r} ({given}): pass --config PATH or set NMPROXY_CONFIG=PATH "
            "(the shipped providers.yaml is a good start)"
        )
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(f"config error: {exc}") from None


def resolve_db(db_path: str | None, config: Config | None) -> str:
    """--db / NMPROXY_DB wins, then ledger.path from the config, then ./nextmodel.db."""
    if db_path:
        return db_path
    if config is not None:
        return config.ledger.path
    return os.environ.get("NMPROXY_DB") or DEFAULT_DB


def existing_db(db_path: str) -> str:
    """Refuse to read a ledger that does not exist rather than creating an empty one."""
    if not Path(db_path).exists():
        raise click.ClickException(f"no ledger at {db_path!r} (run the proxy first, or pass --db)")
    return db_path
