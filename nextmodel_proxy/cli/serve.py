"""`nmproxy serve` and `nmproxy check-config`."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import logging
import os
import socket
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path

import click

from nextmodel_proxy.access.auth import ADMIN_ENV, UnsafeBindError, check_bind
from nextmodel_proxy.cli.common import config_option, load_cli_config
from nextmodel_proxy.cli.logs import setup_logging
from nextmodel_proxy.config import Config
from nextmodel_proxy.config.prices import stale_fx
from nextmodel_proxy.ledger import schema as db

log = logging.getLogger("nextmodel_proxy")


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
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Port, 0-65535 (overrides server.port)."
)
@click.option(
    "--db", "db_path", envvar="NMPROXY_DB", default=None, help="SQLite ledger file (env NMPROXY_DB)."
)
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--log-format",
    default="text",
    type=click.Choice(["text", "json"]),
    show_default=True,
    help="text for people, json (one object per line) for log collectors.",
)
@click.option("--allow-open", is_flag=True, help="Serve without API keys on a non-loopback host (dangerous).")
def serve(
    config_path: str | None,
    host: str | None,
    port: int | None,
    db_path: str | None,
    log_level: str,
    log_format: str,
    allow_open: bool,
) -> None:
    """Start the proxy."""
    from nextmodel_proxy import listener
    from nextmodel_proxy.app import create_app

    setup_logging(log_level, log_format)
    config = load_cli_config(config_path, required=True)
    assert config is not None
    server = replace(
        config.server, host=host or config.server.host, port=port if port is not None else config.server.port
    )
    config = replace(config, server=server, ledger=replace(config.ledger, path=db_path or config.ledger.path))
    if config.ledger.enabled:
        for path in dict.fromkeys((config.ledger.path, config.cache.path or config.ledger.path)):
            check_writable(path)
            check_ledger_path(path)
    try:
        check_bind(
            server.host, bool(os.environ.get(ADMIN_ENV)) or ledger_has_keys(config.ledger.path), allow_open
        )
    except UnsafeBindError as exc:
        raise click.ClickException(str(exc)) from None
    loop_name = "uvloop" if _use_uvloop() else "asyncio"
    limits = listener.ConnectionLimits(
        max_connections=server.max_connections or listener.auto_max_connections(),
        header_timeout_s=server.header_timeout_s,
    )
    app = create_app(config)

    def started() -> None:
        click.echo(
            f"nmproxy listening on http://{server.host}:{server.port}/v1 "
            f"(config {config.source_path}, ledger {config.ledger.path}, {loop_name})"
        )
        log.info(
            "started on %s:%s (max %d connections, grace %gs)",
            server.host,
            server.port,
            limits.max_connections,
            server.shutdown_grace_s,
            extra={"nm": {"event": "start", "host": server.host, "port": server.port}},
        )

    def stopping() -> None:
        log.info(
            "stopping: finishing requests in flight (up to %gs)",
            server.shutdown_grace_s,
            extra={"nm": {"event": "stopping"}},
        )

    try:
        listener.run(
            app,
            server.host,
            server.port,
            limits=limits,
            shutdown_grace_s=server.shutdown_grace_s,
            on_started=started,
            on_stopping=stopping,
        )
    except OSError as exc:
        raise click.ClickException(_listen_error(server.host, server.port, exc)) from None
    except sqlite3.Error as exc:
        raise click.ClickException(
            f"cannot open the ledger {config.ledger.path!r}: {exc} (choose another --db)"
        ) from None
    log.info("stopped", extra={"nm": {"event": "stopped"}})


def _listen_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {host}:{port}: the port is already in use "
            "(stop the other process, or pick another with --port)"
        )
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return f"cannot listen on {host}:{port}: no such address on this machine (check --host)"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {host}:{port}: permission denied (ports below 1024 need privileges; use --port)"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def check_ledger_path(path: str) -> None:
    """One clear line, before anything starts, when --db cannot be a ledger."""
    p = Path(path)
    if not p.parent.is_dir():
        raise click.ClickException(
            f"the ledger's folder {str(p.parent)!r} does not exist: create it, or point --db elsewhere"
        )
    if p.is_dir():
        raise click.ClickException(f"the ledger {path!r} is a folder: give --db a file path")
    if p.exists() and p.stat().st_size > 0:
        with p.open("rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise click.ClickException(
                    f"{path!r} is not an SQLite file: point --db at the ledger (or a new file name)"
                )


def check_writable(db_path: str) -> None:
    """A ledger the proxy could not write -> one line naming the path and the UID that needs write access.

    SQLite in WAL mode writes the file and its -wal/-shm companions, so the directory must be writable too.
    """
    target = Path(db_path)
    folder = target.parent
    if not folder.is_dir():
        return  # check_ledger_path says so
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
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a ledger from before keys existed has no api_keys table
            return False
        raise click.ClickException(
            f"cannot read the ledger {db_path!r}: {exc} (choose another --db)"
        ) from None
    except sqlite3.DatabaseError as exc:
        raise click.ClickException(
            f"{db_path!r} is not a readable SQLite ledger: {exc} (choose another --db)"
        ) from None
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
