"""Errors a retry cannot fix say so (x-should-retry: false), and route errors name every candidate."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import openai
import pytest

EXTRA = """
  unkeyed2:
    kind: openai
    base_url: http://127.0.0.1:9/v1
    api_key_env: NMPROXY_TEST_UNSET_KEY_TWO
"""
ROUTES = """
  all-keyless: {strategy: fallback, candidates: [needs-key, needs-key-2]}
"""
MODEL = "  needs-key-2: {provider: unkeyed2, upstream_id: fake-basic, price: {input: 1, output: 1}}\n"


@pytest.fixture
async def keyless_proxy(write_config: Any, start_proxy: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("NMPROXY_TEST_UNSET_KEY_TWO", raising=False)
    config = write_config()
    path = config.source_path
    text = Path(path).read_text()
    text = text.replace("\nmodels:\n", EXTRA + "models:\n" + MODEL, 1).replace(
        "\nroutes:\n", "\nroutes:\n" + ROUTES
    )
    Path(path).write_text(text)
    from nextmodel_proxy.config import load_config

    config = load_config(path)
    server = await start_proxy(config)
    server.db = config.ledger.path
    return server


def receipt_count(db: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM receipts").fetchone()[0]
    finally:
        conn.close()


async def test_provider_key_missing_is_not_retried_by_the_sdk_and_says_restart(keyless_proxy: Any) -> None:
    async with openai.AsyncOpenAI(
        base_url=keyless_proxy.base, api_key="sk-x", max_retries=2, timeout=10
    ) as c:
        with pytest.raises(openai.APIStatusError) as info:
            await c.chat.completions.create(model="needs-key", messages=[{"role": "user", "content": "hi"}])
    err = info.value
    assert err.status_code == 503
    assert err.response.headers["x-should-retry"] == "false"
    assert err.body["code"] == "provider_key_missing"
    assert "NMPROXY_TEST_UNSET_KEY" in err.body["message"] and "restart" in err.body["message"]
    # the SDK obeyed the header: one request, one receipt (with retries it would be three)
    assert receipt_count(keyless_proxy.db) == 1


async def test_route_error_names_every_candidate(keyless_proxy: Any) -> None:
    async with openai.AsyncOpenAI(
        base_url=keyless_proxy.base, api_key="sk-x", max_retries=0, timeout=10
    ) as c:
        with pytest.raises(openai.APIStatusError) as info:
            await c.chat.completions.create(model="all-keyless", messages=[{"role": "user", "content": "hi"}])
    message = info.value.body["message"]
    assert "NMPROXY_TEST_UNSET_KEY " in message and "NMPROXY_TEST_UNSET_KEY_TWO" in message
    assert "needs-key via unkeyed" in message and "needs-key-2 via unkeyed2" in message
    assert info.value.response.headers["x-should-retry"] == "false"


async def test_client_errors_say_no_retry_and_rate_limits_do_not(proxy: Any) -> None:
    async with openai.AsyncOpenAI(base_url=proxy.base, api_key="sk-x", max_retries=0, timeout=10) as c:
        with pytest.raises(openai.NotFoundError) as info:
            await c.chat.completions.create(
                model="no-such-model", messages=[{"role": "user", "content": "hi"}]
            )
    assert info.value.response.headers["x-should-retry"] == "false"
    from nextmodel_proxy.errors import ProxyError

    assert "x-should-retry" not in ProxyError(429, "slow down", "rate_limit_exceeded").headers
    assert ProxyError(429, "over budget", "budget_exceeded").headers["x-should-retry"] == "false"
