"""`nmproxy serve` and `nmproxy check-config`."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path

import click

from nextmodel_proxy.access.auth import ADMIN_ENV, UnsafeBindError, check_bind
from nextmodel_proxy.cli.common import config_option, load_cli_config
from nextmodel_proxy.config import Config
from nextmodel_proxy.config.prices import stale_fx
from nextmodel_proxy.ledger import schema as db


def _use_uvloop() -> bool:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


@click.command()
@config_option
@click.option("--host", default=None, help="Bind address (overrides server.host).")
@click.option("--port", type=int, default=None, help="Port (overrides server.port).")
@click.option(
    "--db", "db_path", envvar="NMPROXY_DB", default=None, help="SQLite ledger file (env NMPROXY_DB)."
)
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--allow-open", is_flag=True, help="Serve without API keys on a non-loopback host (dangerous).")
def serve(
    config_path: str | None,
    host: str | None,
    port: int | None,
    db_path: str | None,
    log_level: str,
    allow_open: bool,
) -> None:
    """Start the proxy."""
    from aiohttp import web

    from nextmodel_proxy.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_cli_config(config_path, required=True)
    assert config is not None
    server = replace(
        config.server, host=host or config.server.host, port=port if port is not None else config.server.port
    )
    config = replace(config, server=server, ledger=replace(config.ledger, path=db_path or config.ledger.path))
    if config.ledger.enabled:
        for path in dict.fromkeys((config.ledger.path, config.cache.path or config.ledger.path)):
            check_writable(path)
    try:
        check_bind(
            server.host, bool(os.environ.get(ADMIN_ENV)) or ledger_has_keys(config.ledger.path), allow_open
        )
    except UnsafeBindError as exc:
        raise click.ClickException(str(exc)) from None
    loop_name = "uvloop" if _use_uvloop() else "asyncio"
    app = create_app(config)
    click.echo(
        f"nmproxy listening on http://{server.host}:{server.port}/v1 "
        f"(config {config.source_path}, ledger {config.ledger.path}, {loop_name})"
    )
    web.run_app(
        app,
        host=server.host,
        port=server.port,
        print=None,
        access_log=None,
        shutdown_timeout=server.shutdown_grace_s,
        handler_cancellation=True,
    )


def check_writable(db_path: str) -> None:
    """A ledger the proxy could not write -> one line naming the path and the UID that needs write access.

    SQLite in WAL mode writes the file and its -wal/-shm companions, so the directory must be writable too.
    """
    target = Path(db_path)
    folder = target.parent
    if not folder.is_dir():
        raise click.ClickException(
            f"cannot write the ledger {db_path!r}: directory {str(folder)!r} does not exist"
        )
    blocked = target if target.exists() and not os.access(target, os.W_OK) else None
    if blocked is None and not os.access(folder, os.W_OK | os.X_OK):
        blocked = folder
    if blocked is not None:
        uid, gid = os.getuid(), os.getgid()
        raise click.ClickException(
            f"cannot write the ledger {db_path!r}: {str(blocked)!r} is not writable by UID {uid} (this process); "
            f"make it writable for UID {uid}, e.g. chown {uid}:{gid} {blocked}, or mount a writable volume there"
        )


def ledger_has_keys(db_path: str) -> bool:
    """Whether any proxy key (even a revoked one) exists: then the proxy is closed, as KeyStore.open_mode says."""
    if not Path(db_path).exists():
        return False
    try:
        conn = db.connect(db_path, readonly=True)
    except sqlite3.Error as exc:
        raise click.ClickException(f"cannot read the ledger {db_path!r}: {exc}") from None
    try:
        return conn.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None
    except sqlite3.OperationalError:  # a ledger from before keys existed has no api_keys table
        return False
    finally:
        conn.close()


@click.command("check-config")
@config_option
def check_config(config_path: str | None) -> None:
    """Validate providers.yaml and print a summary (exit 1 with the YAML path of the first problem)."""
    config = load_cli_config(config_path, required=True)
    assert config is not None
    click.echo(
        f"{config.source_path}: OK — {len(config.providers)} providers, {len(config.models)} models, "
        f"{len(config.routes)} routes"
    )
    # Warnings, not errors: an old or undated FX rate still converts, but receipts may not match invoices.
    for line in fx_warnings(config, dt.datetime.now(dt.UTC).date()):
        click.echo(f"warning: fx: {line}")
    sys.exit(0)


def fx_warnings(config: Config, today: dt.date) -> list[str]:
    """Stale or undated rates of the currencies in use (models' invoice currencies, display, budgets)."""
    codes = {m.pricing.currency for m in config.models.values() if m.pricing is not None}
    codes.add(config.currency.display)
    for scope in (*config.projects.values(), *config.teams.values()):
        if scope.budget is not None:
            codes.add(scope.budget.currency)
    return stale_fx(config.fx, codes, today)
