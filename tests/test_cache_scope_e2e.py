"""Cache scope, a separate cache file and per-model cache policy, end to end through the proxy with the openai SDK."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from click.testing import CliRunner
from sdk_clients import sdk

from nextmodel_proxy.access.keys import KeySettings, create_key
from nextmodel_proxy.appkeys import SERVICES
from nextmodel_proxy.cli.main import main as nmproxy
from nextmodel_proxy.config import Config, load_config
from nextmodel_proxy.ledger import schema as db

pytestmark = pytest.mark.usefixtures("close_sdk_clients")

POLL_S = 3.0
POLICY_MODELS = (
    "  sampled-ok: {provider: fake, upstream_id: fake-basic, cache_policy: always, price: {input: 1, output: 2}}\n"
    "  never-cached: {provider: fake, upstream_id: fake-basic, cache_policy: never, price: {input: 1, output: 2}}\n"
)


async def ask(
    client: openai.AsyncOpenAI, model: str = "fake-basic", temperature: float = 0, **headers: str
) -> Any:
    """One chat completion as a raw response (headers + parse())."""
    return await client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": "scope me"}],
        temperature=temperature,
        extra_headers=headers,
    )


def rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path, timeout=5)) as conn:
        return conn.execute(sql, params).fetchall()


async def until(check: Callable[[], bool], what: str) -> None:
    """Stores and hit/miss counters are written after the answer: wait (bounded) for them."""
    deadline = time.monotonic() + POLL_S
    while not check():
        assert time.monotonic() < deadline, f"{what} not within {POLL_S}s"
        await asyncio.sleep(0.02)


async def until_stored(path: Path, resp: Any) -> str:
    """The cache key of a fresh answer, once its entry is in the cache file at `path`."""
    assert resp.headers["x-nextmodel-cache"] == "miss"
    key = resp.headers["x-nextmodel-cache-key"]
    await until(lambda: bool(rows(path, "SELECT 1 FROM cache_entries WHERE key = ?", (key,))), f"entry {key}")
    return key


def new_keys(ledger: Path, count: int, project: str) -> list[tuple[str, str]]:
    """(plaintext, key id) of `count` proxy keys of one project, written before the proxy starts."""
    conn = db.open_db(ledger)
    try:
        made = [create_key(conn, KeySettings(project=project))[0] for _ in range(count)]
        return [(new.plaintext, new.key_id) for new in made]
    finally:
        conn.close()


def with_models(config: Config, lines: str) -> Config:
    """The config with extra model entries (BASE_YAML already has a `models:` mapping)."""
    path = Path(config.source_path)
    path.write_text(path.read_text().replace("\nmodels:\n", "\nmodels:\n" + lines, 1))
    return load_config(path)


def cli(*args: str) -> str:
    result = CliRunner().invoke(nmproxy, list(args))
    assert result.exit_code == 0, result.output
    return result.output


# --- scope ---------------------------------------------------------------------------------------------


async def test_per_key_scope_keeps_two_keys_of_one_project_apart(
    write_config, start_proxy, fake_upstream, tmp_path
):
    ledger = tmp_path / "ledger.db"
    (first, first_id), (second, second_id) = new_keys(ledger, 2, project="web")
    proxy = await start_proxy(write_config("cache: {scope: key}\n"))
    async with sdk(proxy, first) as a, sdk(proxy, second) as b:
        key = await until_stored(ledger, await ask(a))
        other = await ask(b)
        assert other.headers["x-nextmodel-cache"] == "miss"
        assert other.headers["x-nextmodel-cache-key"] != key
        again = await ask(a)
        assert again.headers["x-nextmodel-cache"] == "hit"
        assert again.headers["x-nextmodel-cache-key"] == key
        await until_stored(ledger, other)
        assert (await ask(b)).headers["x-nextmodel-cache"] == "hit"
    assert fake_upstream.state.calls == 2
    scopes = {row[0] for row in rows(ledger, "SELECT scope FROM cache_entries")}
    assert scopes == {f"key:{first_id}", f"key:{second_id}"}


async def test_global_scope_shares_entries_across_projects(
    write_config, start_proxy, fake_upstream, tmp_path
):
    ledger = tmp_path / "ledger.db"
    proxy = await start_proxy(write_config("cache: {scope: global}\n"))
    async with sdk(proxy) as client:
        stored = await ask(client, **{"x-nextmodel-project": "alpha"})
        key = await until_stored(ledger, stored)
        shared = await ask(client, **{"x-nextmodel-project": "beta"})
    assert shared.headers["x-nextmodel-cache"] == "hit"
    assert shared.headers["x-nextmodel-cache-key"] == key
    assert shared.parse().choices[0].message.content == stored.parse().choices[0].message.content
    assert fake_upstream.state.calls == 1
    assert rows(ledger, "SELECT scope FROM cache_entries") == [("global",)]
    receipt_id = shared.headers["x-nextmodel-receipt-id"]
    await until(
        lambda: bool(rows(ledger, "SELECT 1 FROM receipts WHERE receipt_id = ?", (receipt_id,))),
        "the replay's receipt",
    )
    ((project, reused),) = rows(
        ledger, "SELECT project, reused_receipt_id FROM receipts WHERE receipt_id = ?", (receipt_id,)
    )
    assert (project, reused) == ("beta", stored.headers["x-nextmodel-receipt-id"])


# --- a cache file of its own ---------------------------------------------------------------------------


def _stats(path: Path) -> dict[str, Any]:
    return orjson.loads(cli("cache", "stats", "--json", "--db", str(path)))


async def test_cache_path_keeps_entries_and_counters_out_of_the_ledger(
    write_config, start_proxy, fake_upstream, tmp_path, monkeypatch
):
    monkeypatch.delenv("NMPROXY_DB", raising=False)  # the env var would count as --db and hide cache.path
    ledger, cache_file = tmp_path / "ledger.db", tmp_path / "cache.db"
    config = write_config(f"cache: {{path: {cache_file}}}\n")
    proxy = await start_proxy(config)
    async with sdk(proxy) as client:
        key = await until_stored(cache_file, await ask(client))
        hit = await ask(client)
        assert hit.headers["x-nextmodel-cache"] == "hit"
        assert fake_upstream.state.calls == 1
        await until(lambda: _stats(cache_file)["hits"] == 1, "the hit counter in the cache file")
        stats = _stats(cache_file)
        assert (stats["entries"], stats["hits"], stats["misses"]) == (1, 1, 1)
        assert rows(ledger, "SELECT COUNT(*) FROM cache_entries") == [(0,)]
        assert rows(ledger, "SELECT hits, misses FROM cache_stats") == [(0, 0)]
        # Without --db the CLI finds the cache through the config's cache.path, not the ledger.
        assert (
            orjson.loads(cli("cache", "stats", "--json", "--config", str(config.source_path)))["entries"] == 1
        )
        assert "purged 1 cache entry" in cli("cache", "purge", "--all", "--config", str(config.source_path))
        assert rows(cache_file, "SELECT key FROM cache_entries WHERE key = ?", (key,)) == []
        after = await ask(client)
        assert after.headers["x-nextmodel-cache"] == "miss"
        assert fake_upstream.state.calls == 2
    ids = {r.headers["x-nextmodel-receipt-id"] for r in (hit, after)}
    await until(
        lambda: rows(ledger, "SELECT COUNT(*) FROM receipts")[0][0] == 3, "three receipts in the ledger"
    )
    assert ids <= {row[0] for row in rows(ledger, "SELECT receipt_id FROM receipts")}
    assert rows(cache_file, "SELECT COUNT(*) FROM receipts") == [(0,)]


async def test_cache_path_naming_the_ledger_another_way_keeps_one_writer(
    write_config, start_proxy, fake_upstream, tmp_path
):
    ledger = tmp_path / "ledger.db"
    proxy = await start_proxy(write_config(f"cache: {{path: {tmp_path}/./ledger.db}}\n"))
    services = proxy.app[SERVICES]
    assert services.cache_writer is services.ledger  # one file, one writer thread
    async with sdk(proxy) as client:
        await until_stored(ledger, await ask(client))
        assert (await ask(client)).headers["x-nextmodel-cache"] == "hit"
    assert fake_upstream.state.calls == 1


# --- per-model policy ----------------------------------------------------------------------------------


async def test_model_policy_always_caches_a_sampled_request(
    write_config, start_proxy, fake_upstream, tmp_path
):
    proxy = await start_proxy(with_models(write_config(), POLICY_MODELS))
    async with sdk(proxy) as client:
        assert (await ask(client, temperature=0.7)).headers["x-nextmodel-cache-reason"] == "nondeterministic"
        await until_stored(tmp_path / "ledger.db", await ask(client, "sampled-ok", temperature=0.7))
        hit = await ask(client, "sampled-ok", temperature=0.7)
    assert hit.headers["x-nextmodel-cache"] == "hit"
    assert fake_upstream.state.calls == 2


async def test_model_policy_never_bypasses_a_deterministic_request(
    write_config, start_proxy, fake_upstream, tmp_path
):
    proxy = await start_proxy(with_models(write_config(), POLICY_MODELS))
    async with sdk(proxy) as client:
        # The same upstream model's answer is stored: `never` must not read it either.
        await until_stored(tmp_path / "ledger.db", await ask(client))
        for _ in range(2):
            resp = await ask(client, "never-cached")
            assert resp.headers["x-nextmodel-cache"] == "bypass"
            assert resp.headers["x-nextmodel-cache-reason"] == "policy-never"
            assert resp.headers["x-nextmodel-served-mode"] == "fresh"
    assert fake_upstream.state.calls == 3
    assert rows(tmp_path / "ledger.db", "SELECT COUNT(*) FROM cache_entries") == [(1,)]


async def test_purge_reaches_a_separate_cache_file_even_with_db_or_nmproxy_db(
    write_config, start_proxy, fake_upstream, tmp_path, monkeypatch
):
    ledger, cache_file = tmp_path / "ledger.db", tmp_path / "cache.db"
    monkeypatch.setenv("NMPROXY_DB", str(ledger))  # as a deployment that sets it for `serve` would
    config = write_config(f"cache: {{path: {cache_file}}}\n")
    proxy = await start_proxy(config)
    async with sdk(proxy) as client:
        await until_stored(cache_file, await ask(client))
        assert (await ask(client)).headers["x-nextmodel-cache"] == "hit"
        out = cli("cache", "purge", "--all", "--config", str(config.source_path), "--db", str(ledger))
        assert "purged 1 cache entry" in out
        assert (await ask(client)).headers["x-nextmodel-cache"] == "miss"
