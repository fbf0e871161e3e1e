"""Keys, budgets and rate limits through the running proxy, with the official openai SDK as the client."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from click.testing import CliRunner
from sdk_clients import sdk

from nextmodel_proxy.access.keys import KeySettings, create_key, revoke_key
from nextmodel_proxy.cli.main import main
from nextmodel_proxy.config import Config, load_config
from nextmodel_proxy.ledger import schema as db

pytestmark = pytest.mark.usefixtures("close_sdk_clients")

# Every answer to "xx" (two letters) is "Echo: xx": 3 completion tokens upstream. With input free and output at
# 1000 USD per million, each request costs exactly 0.003 USD, and max_tokens=3 makes the reservation equal it.
METERED = "  metered: {provider: fake, upstream_id: fake-basic, price: {input: 0, output: 1000}}\n"
EXTRA = """
currency: {display: USD, rates: {GBP: "0.8"}}
projects:
  web: {team: growth, budget: {amount: "0.015", currency: USD, period: month}}
"""
COST_PUSD = 3_000_000_000  # 0.003 USD


@pytest.fixture
def config(write_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("NMPROXY_ADMIN_KEY", raising=False)
    path = Path(write_config(EXTRA).source_path)
    path.write_text(path.read_text().replace("\nmodels:\n", "\nmodels:\n" + METERED, 1))
    return load_config(path)


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


def cli(config: Config, *args: str) -> str:
    result = CliRunner().invoke(
        main, [*args, "--config", str(config.source_path), "--db", config.ledger.path]
    )
    assert result.exit_code == 0, result.output
    return result.output


def cli_key(config: Config, *args: str) -> tuple[str, str]:
    """(plaintext, key id) of a key made with `nmproxy keys create`."""
    out = cli(config, "keys", "create", *args)
    plaintext = next(line.strip() for line in out.splitlines() if line.strip().startswith("nm-"))
    return plaintext, out.split("key ", 1)[1].split()[0]


def direct_key(path: Path, settings: KeySettings, *, revoked: bool = False) -> str:
    conn = db.open_db(path)
    try:
        new, _ = create_key(conn, settings)
        if revoked:
            revoke_key(conn, new.key_id)
        return new.plaintext
    finally:
        conn.close()


async def ask(client: openai.AsyncOpenAI, word: str = "ab", model: str = "metered", **kw: Any) -> Any:
    """One chat completion; returns the raw response (headers + parse())."""
    return await client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": word}], max_tokens=3, **kw
    )


async def http(
    proxy: Any, method: str, path: str, key: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, str(proxy.make_url(path)), headers=headers, json=body) as resp,
    ):
        return resp.status, await resp.json()


def billed(ledger: Path, column: str, value: str) -> int:
    with sqlite3.connect(ledger) as conn:
        return conn.execute(
            f"SELECT COALESCE(SUM(billed_cost_pusd), 0) FROM receipts WHERE {column} = ?", (value,)
        ).fetchone()[0]


async def poll(check: Callable[[], Any], timeout_s: float = 2.0) -> float:
    """Seconds until `check()` (async) returns truthy; fails after timeout_s."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if await check():
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout_s}s")


# --- open mode and authentication ----------------------------------------------------------------


async def test_open_mode_serves_without_keys_and_attributes_by_headers(
    config: Config, start_proxy: Any
) -> None:
    proxy = await start_proxy(config)
    async with sdk(proxy, **{"x-nextmodel-project": "mobile", "x-nextmodel-team": "apps"}) as client:
        raw = await ask(client)
    assert raw.parse().choices[0].message.content == "Echo: ab"
    status, receipt = await http(proxy, "GET", f"/v1/receipts/{raw.headers['x-nextmodel-receipt-id']}")
    assert status == 200
    assert (receipt["key_id"], receipt["project"], receipt["team"]) == (None, "mobile", "apps")


async def test_missing_wrong_revoked_and_expired_keys_get_distinct_401s(
    config: Config, ledger: Path, start_proxy: Any
) -> None:
    good = direct_key(ledger, KeySettings(project="web"))
    revoked = direct_key(ledger, KeySettings(project="web"), revoked=True)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    expired = direct_key(ledger, KeySettings(project="web", expires_at=past))
    proxy = await start_proxy(config)
    async with sdk(proxy, good) as client:
        assert (await ask(client)).parse().choices[0].message.content == "Echo: ab"
    status, body = await http(
        proxy,
        "POST",
        "/v1/chat/completions",
        None,
        {"model": "metered", "messages": [{"role": "user", "content": "ab"}]},
    )
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert body["error"]["type"] == "invalid_request_error" and "didn't provide" in body["error"]["message"]
    messages = []
    for key in ("nm-not-a-real-key", revoked, expired):
        async with sdk(proxy, key) as client:
            with pytest.raises(openai.AuthenticationError) as caught:
                await ask(client)
        assert caught.value.code == "invalid_api_key"
        messages.append(caught.value.message)
    assert "Incorrect API key" in messages[0]
    assert "has been revoked" in messages[1] and "expired at" in messages[2]
    assert all(key not in m for m in messages for key in (revoked, expired))


async def test_keys_made_and_revoked_with_the_cli_apply_to_a_running_proxy_within_a_second(
    config: Config, ledger: Path, start_proxy: Any
) -> None:
    direct_key(ledger, KeySettings(project="ops"))  # projects without a budget: polling spends freely
    proxy = await start_proxy(config)
    plaintext, key_id = cli_key(config, "--project", "ops")

    # The refresher polls every 0.5 s; the margin is for a loaded machine.
    assert await poll(lambda: works(proxy, plaintext)) < 1.5
    cli(config, "keys", "revoke", key_id)
    assert await poll(lambda: _not(works(proxy, plaintext))) < 1.5


async def _not(check: Any) -> bool:
    return not await check


async def works(proxy: Any, key: str) -> bool:
    """Whether the proxy accepts `key` (False on 401)."""
    async with sdk(proxy, key) as client:
        try:
            await ask(client)
        except openai.AuthenticationError:
            return False
    return True


async def test_receipts_carry_the_key_and_other_projects_cannot_read_them(
    config: Config, ledger: Path, start_proxy: Any
) -> None:
    alpha, alpha_id = cli_key(config, "--project", "alpha", "--team", "t1", "--env", "prod")
    beta, _ = cli_key(config, "--project", "beta")
    proxy = await start_proxy(config)
    async with sdk(proxy, alpha) as client:
        receipt_id = (await ask(client)).headers["x-nextmodel-receipt-id"]
    status, receipt = await http(proxy, "GET", f"/v1/receipts/{receipt_id}", alpha)
    assert status == 200
    assert (receipt["key_id"], receipt["project"], receipt["team"], receipt["environment"]) == (
        alpha_id,
        "alpha",
        "t1",
        "prod",
    )
    assert (await http(proxy, "GET", f"/v1/receipts/{receipt_id}", beta))[0] == 404
    status, body = await http(proxy, "GET", "/v1/receipts?project=alpha", beta)
    assert status == 403 and body["error"]["code"] == "permission_denied"
    status, body = await http(proxy, "GET", "/v1/receipts", beta)
    assert status == 200 and body["data"] == []
    status, body = await http(proxy, "GET", "/v1/receipts", alpha)
    assert [r["receipt_id"] for r in body["data"]] == [receipt_id]


async def test_a_key_limited_to_some_models_is_refused_others(config: Config, start_proxy: Any) -> None:
    key, _ = cli_key(config, "--project", "web", "--models", "metered")
    proxy = await start_proxy(config)
    async with sdk(proxy, key) as client:
        await ask(client)
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await ask(client, model="fake-basic")
    assert caught.value.code == "permission_denied" and "'fake-basic'" in caught.value.message


# --- budgets -------------------------------------------------------------------------------------


async def test_a_budget_is_reached_exactly_and_then_refused(
    config: Config, ledger: Path, fake_upstream: Any, start_proxy: Any
) -> None:
    key, key_id = cli_key(config, "--project", "p1", "--budget", "0.009", "--budget-period", "day")
    proxy = await start_proxy(config)
    async with sdk(proxy, key) as client:
        for word in ("aa", "bb", "cc"):
            await ask(client, word)
        calls = fake_upstream.state.calls
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(client, "dd")
    assert fake_upstream.state.calls == calls  # refused before reaching the upstream
    err = caught.value
    assert err.code == "budget_exceeded" and err.type == "budget_exceeded"
    assert f"daily budget of key {key_id!r} is 0.009 USD; spent 0.009 USD" in err.message
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT00:00:00")
    assert f"resets at {tomorrow}" in err.message
    assert billed(ledger, "key_id", key_id) == 3 * COST_PUSD


async def test_concurrent_requests_cannot_overshoot_a_nearly_spent_budget(
    config: Config, ledger: Path, start_proxy: Any
) -> None:
    key, key_id = cli_key(config, "--project", "p1", "--budget", "0.010", "--budget-period", "total")
    proxy = await start_proxy(config)
    async with sdk(proxy, key) as client:
        await ask(client, "aa")
        await ask(client, "bb")  # 0.006 of 0.010 spent: room for exactly one more 0.003 request
        results = await asyncio.gather(
            *(ask(client, f"{chr(99 + i)}{chr(99 + i)}") for i in range(10)), return_exceptions=True
        )
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(refused) == 9 and all(r.code == "budget_exceeded" for r in refused)
    assert billed(ledger, "key_id", key_id) == 3 * COST_PUSD <= 10 * COST_PUSD // 3


async def test_budget_headers_show_remaining_and_warn_from_80_percent(
    config: Config, start_proxy: Any
) -> None:
    proxy = await start_proxy(config)  # providers.yaml: project web may spend 0.015 USD a month
    async with sdk(proxy, **{"x-nextmodel-project": "web"}) as client:
        first = await ask(client, "aa")
        assert first.headers["x-nextmodel-budget-remaining"] == "0.012 USD"
        assert "x-nextmodel-budget-warning" not in first.headers
        for word in ("bb", "cc"):
            await ask(client, word)
        fourth = await ask(client, "dd")
    assert fourth.headers["x-nextmodel-budget-remaining"] == "0.003 USD"
    assert (
        fourth.headers["x-nextmodel-budget-warning"] == "80% of the monthly budget of project 'web' is spent"
    )


async def test_a_gbp_budget_is_compared_at_the_configured_rate(config: Config, start_proxy: Any) -> None:
    # 0.003 USD is 0.0024 GBP at 0.8 GBP per USD: 0.0072 GBP buys exactly three requests.
    key, _ = cli_key(config, "--project", "p1", "--budget", "0.0072", "--budget-currency", "GBP")
    proxy = await start_proxy(config)
    async with sdk(proxy, key) as client:
        assert (await ask(client, "aa")).headers["x-nextmodel-budget-remaining"] == "0.0048 GBP"
        await ask(client, "bb")
        await ask(client, "cc")
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(client, "dd")
    assert "is 0.0072 GBP; spent 0.0072 GBP" in caught.value.message


async def test_cache_hits_spend_their_discounted_cost_against_the_budget(
    config: Config, ledger: Path, start_proxy: Any
) -> None:
    # fresh 0.003 + one replay at the default 0.1 ratio (0.0003) = 0.0033: the budget is then exactly spent.
    key, key_id = cli_key(config, "--project", "p1", "--budget", "0.0033", "--budget-period", "total")
    proxy = await start_proxy(config)
    async with sdk(proxy, key) as client:
        fresh = await ask(client, "aa", temperature=0)
        hit = await ask(client, "aa", temperature=0)
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(client, "aa", temperature=0)
    assert (fresh.headers["x-nextmodel-served-mode"], hit.headers["x-nextmodel-served-mode"]) == (
        "fresh",
        "exact-cache",
    )
    assert hit.headers["x-nextmodel-cost-usd"].startswith("0.0003")
    assert caught.value.code == "budget_exceeded"
    assert billed(ledger, "key_id", key_id) == COST_PUSD + COST_PUSD // 10


async def test_rate_limit_per_key_answers_429_with_retry_after(config: Config, start_proxy: Any) -> None:
    key, key_id = cli_key(config, "--project", "p1", "--rpm", "2")
    proxy = await start_proxy(config)
    async with sdk(proxy, key) as client:
        await ask(client, "aa")
        await ask(client, "bb")
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(client, "cc")
    assert caught.value.code == "rate_limit_exceeded" and key_id in caught.value.message
    assert int(caught.value.response.headers["retry-after"]) >= 1


async def test_spend_by_key_project_and_team_shows_each_budget(config: Config, start_proxy: Any) -> None:
    key, _ = cli_key(config, "--project", "web", "--budget", "0.009", "--budget-period", "total")
    proxy = await start_proxy(config)
    async with sdk(proxy, key) as client:
        await ask(client)
    rows = orjson.loads(cli(config, "spend", "--by", "key", "--json"))["rows"]
    assert rows[0]["budgets"][0]["amount"] == "0.009" and rows[0]["budgets"][0]["remaining"] == "0.006"
    rows = orjson.loads(cli(config, "spend", "--by", "project", "--json"))["rows"]
    assert [(b["scope_id"], b["spent"], b["source"]) for b in rows[0]["budgets"]] == [
        ("web", "0.003", "config")
    ]
    table = cli(config, "spend", "--by", "key")
    assert "BUDGET" in table and "0.006 USD" in table
    assert orjson.loads(cli(config, "spend", "--by", "team", "--json"))["rows"][0]["budgets"] == []


async def test_streamed_answers_settle_their_cost_against_the_budget(
    config: Config, ledger: Path, start_proxy: Any
) -> None:
    key, key_id = cli_key(config, "--project", "p1", "--budget", "0.006", "--budget-period", "total")
    proxy = await start_proxy(config)
    async with sdk(proxy, key) as client:
        for word in ("aa", "bb"):
            raw = await client.chat.completions.with_raw_response.create(
                model="metered", messages=[{"role": "user", "content": word}], max_tokens=3, stream=True
            )
            assert (
                "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
                == f"Echo: {word}"
            )
        assert raw.headers["x-nextmodel-budget-remaining"] == "0.003 USD"  # known when the stream starts
        with pytest.raises(openai.RateLimitError):
            await ask(client, "cc")
    await poll(lambda: _true(billed(ledger, "key_id", key_id) == 2 * COST_PUSD))


async def _true(value: bool) -> bool:
    return value
