"""`nmproxy cache explain|stats|purge`: see what a key covers, how the cache is doing, and empty it."""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import click
import orjson

from nextmodel_proxy.cache import store as cache_store
from nextmodel_proxy.cache.key import explain as explain_key
from nextmodel_proxy.cache.key import scope_for
from nextmodel_proxy.cli.common import config_option, db_option, existing_db, load_cli_config, resolve_db
from nextmodel_proxy.cli.output import echo_json
from nextmodel_proxy.config import CacheConfig, Config, ConfigError, parse_duration
from nextmodel_proxy.ledger import schema as db


@click.group("cache")
def cache_group() -> None:
    """Inspect and maintain the verified exact cache."""


def _cache_db(db_path: str | None, config: Config | None) -> str:
    """The file a proxy run with this config keeps its cache in: cache.path when the config sets one (`serve
    --db` / NMPROXY_DB move only the ledger, so they must not move the cache here either), else the ledger
    file (--db, NMPROXY_DB, ledger.path), where the cache lives by default."""
    if config is not None and config.cache.path:
        return config.cache.path
    return resolve_db(db_path, config)


def _read_body(source: str) -> dict[str, Any]:
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {source!r}: {exc.strerror or exc}") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise click.ClickException(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise click.ClickException("the request body must be a JSON object")
    return body


def _resolve_target(
    body: dict[str, Any], config: Config | None, provider: str | None, upstream_model: str | None
) -> tuple[str, str]:
    """(provider, upstream model) for the body's model: explicit flags, else the config's model entry."""
    if provider and upstream_model:
        return provider, upstream_model
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise click.ClickException('the body has no "model"; add one or pass --model')
    if config is None:
        raise click.ClickException(
            f"no config to resolve model {name!r}: pass --config, or --provider and --upstream-model"
        )
    if name in config.routes:
        names = ", ".join(c.model for c in config.routes[name].candidates)
        raise click.ClickException(
            f"{name!r} is a route; each candidate has its own key, pass --model one of: {names}"
        )
    model = config.models.get(name)
    if model is None:
        raise click.ClickException(
            f"model {name!r} is not in the config (models: {', '.join(config.models)})"
        )
    return provider or model.provider, upstream_model or model.upstream_id


@cache_group.command("explain")
@click.argument("source", default="-", metavar="[FILE|-]")
@click.option("--model", "model_name", default=None, help='Model name to use instead of the body\'s "model".')
@click.option("--provider", default=None, help="Provider name (skips resolution through the config).")
@click.option(
    "--upstream-model", default=None, help="Upstream model id (skips resolution through the config)."
)
@click.option("--scope", default=None, help="Literal scope string, e.g. project:web, key:k_123 or global.")
@click.option("--project", default=None, help="Project the request is attributed to (builds the scope).")
@click.option("--key-id", default=None, help="Proxy key id the request uses (builds the scope when per-key).")
@click.option(
    "--endpoint",
    type=click.Choice(["chat", "embeddings"]),
    default=None,
    help='Endpoint (default: embeddings when the body has "input" and no "messages", else chat).',
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@config_option
def explain_cmd(
    source: str,
    model_name: str | None,
    provider: str | None,
    upstream_model: str | None,
    scope: str | None,
    project: str | None,
    key_id: str | None,
    endpoint: str | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Print the canonical form of a request body (FILE, or - for stdin) and its cache key."""
    body = _read_body(source)
    if model_name:
        body["model"] = model_name
    config = load_cli_config(config_path)
    prov, upstream = _resolve_target(body, config, provider, upstream_model)
    cache_cfg = config.cache if config is not None else CacheConfig()
    scope = scope or scope_for(cache_cfg.scope, project=project, key_id=key_id)
    endpoint = endpoint or ("embeddings" if "input" in body and "messages" not in body else "chat")
    result = explain_key(body, scope=scope, provider=prov, upstream_model=upstream, endpoint=endpoint)
    if as_json:
        echo_json(result)
        return
    click.echo(f"key: {result['key']}")
    click.echo(f"not in the key: {', '.join(result['excluded']) or '(none present)'}")
    click.echo("canonical form:")
    click.echo(result["canonical"])


def _stats_or_empty(path: str) -> dict[str, Any]:
    conn = db.connect(path, readonly=True)
    try:
        return cache_store.stats(conn)
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise click.ClickException(f"cannot read the cache in {path!r}: {exc}") from None
        return cache_store.stats_empty()
    finally:
        conn.close()


@cache_group.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@config_option
@db_option
def stats_cmd(as_json: bool, config_path: str | None, db_path: str | None) -> None:
    """Entries, bytes, hit rate, bytes and money saved, verification failures."""
    config = load_cli_config(config_path)
    result = _stats_or_empty(existing_db(_cache_db(db_path, config)))
    if as_json:
        echo_json(result)
        return
    rate = "n/a" if result["hit_rate"] is None else f"{result['hit_rate'] * 100:.1f}%"
    rows = [
        ("entries", result["entries"]),
        ("bytes", result["bytes"]),
        ("hits", result["hits"]),
        ("misses", result["misses"]),
        ("hit rate", rate),
        ("bytes saved", result["bytes_saved"]),
        ("money saved (USD)", result["money_saved_usd"]),
        ("verification failures", result["verification_failures"]),
        ("evictions", result["evictions"]),
    ]
    for label, value in rows:
        click.echo(f"{label:<22} {value}")


@cache_group.command("purge")
@click.option(
    "--model",
    "model_name",
    default=None,
    help="Only entries for this model (a config model name resolves to its provider and upstream id).",
)
@click.option(
    "--older-than", default=None, metavar="DURATION", help="Only entries stored longer ago (30m, 24h, 7d)."
)
@click.option("--all", "purge_all", is_flag=True, help="Every entry.")
@config_option
@db_option
def purge_cmd(
    model_name: str | None,
    older_than: str | None,
    purge_all: bool,
    config_path: str | None,
    db_path: str | None,
) -> None:
    """Delete cache entries; a running proxy stops replaying them at once."""
    if not (model_name or older_than or purge_all):
        raise click.ClickException("say what to purge: --model M, --older-than 7d, or --all")
    try:
        older_than_s = parse_duration(older_than, "--older-than") if older_than else None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    config = load_cli_config(config_path)
    model, provider = model_name, None
    if model_name and config is not None and model_name in config.models:
        entry = config.models[model_name]
        model, provider = entry.upstream_id, entry.provider
    path = existing_db(_cache_db(db_path, config))
    conn = db.open_db(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        removed = cache_store.purge(
            conn, model=model, provider=provider, older_than_s=older_than_s, all=purge_all, now=time.time()
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    click.echo(f"purged {removed} cache entr{'y' if removed == 1 else 'ies'}")
