"""Upstream answers and events past the provider's caps: a 502 upstream_too_large with a receipt, never buffered whole."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from hostile_sizes import HostileState, create_hostile_app

from nextmodel_proxy.config import load_config

CAPS = "max_answer_bytes: 1048576, max_event_bytes: 65536"


@pytest.fixture
async def hostile() -> Any:
    state = HostileState(size=3 * 1024 * 1024)
    server = TestServer(create_hostile_app(state), host="127.0.0.1")
    await server.start_server()
    server.state = state  # type: ignore[attr-defined]
    yield server
    await server.close()


@pytest.fixture
async def capped_proxy(write_config: Any, start_proxy: Any, hostile: Any) -> Any:
    config = write_config()
    path = Path(config.source_path)
    url = str(hostile.make_url("/v1")).rstrip("/")
    provider = f"  hostile: {{kind: openai, base_url: {url}, max_retries: 0, {CAPS}}}\n"
    models = "".join(
        f"  {m}: {{provider: hostile, price: {{input: 1, output: 1}}}}\n"
        for m in ("huge-json", "huge-chunked", "huge-stream", "long-line")
    )
    text = path.read_text().replace("\nproviders:\n", "\nproviders:\n" + provider, 1)
    path.write_text(text.replace("\nmodels:\n", "\nmodels:\n" + models, 1))
    server = await start_proxy(load_config(path))
    server.db = config.ledger.path
    return server


def receipt(db: str, receipt_id: str) -> tuple[Any, ...]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT status, error_code, served_mode FROM receipts WHERE receipt_id = ?", (receipt_id,)
        ).fetchone()
    finally:
        conn.close()


async def wait_receipt(db: str, receipt_id: str) -> tuple[Any, ...]:
    for _ in range(200):  # bounded: 10 s
        row = receipt(db, receipt_id)
        if row is not None:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"no receipt {receipt_id}")


@pytest.mark.parametrize("model", ["huge-json", "huge-chunked"])
async def test_a_non_stream_answer_past_the_cap_is_a_502_with_a_receipt(
    capped_proxy: Any, model: str
) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(capped_proxy.base + "/chat/completions", json=body) as r:
            assert r.status == 502
            err = (await r.json())["error"]
            receipt_id = r.headers["x-nextmodel-receipt-id"]
    assert err["code"] == "upstream_too_large" and "max_answer_bytes" in err["message"]
    assert await wait_receipt(capped_proxy.db, receipt_id) == (502, "upstream_too_large", "error")


@pytest.mark.parametrize("model,key", [("huge-stream", "max_answer_bytes"), ("long-line", "max_event_bytes")])
async def test_a_stream_past_a_cap_ends_with_an_error_event_and_a_502_receipt(
    capped_proxy: Any, hostile: Any, model: str, key: str
) -> None:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(capped_proxy.base + "/chat/completions", json=body) as r:
            assert r.status == 200
            receipt_id = r.headers["x-nextmodel-receipt-id"]
            text = await asyncio.wait_for(r.read(), 20)
    last = [e for e in text.split(b"\n\n") if e.strip()][-1]
    err = orjson.loads(last.removeprefix(b"data: "))["error"]
    assert err["code"] == "upstream_too_large" and key in err["message"]
    assert await wait_receipt(capped_proxy.db, receipt_id) == (502, "upstream_too_large", "error")
    if model == "long-line":  # the proxy dropped the upstream connection instead of reading on
        for _ in range(200):
            if hostile.state.cut_off:
                break
            await asyncio.sleep(0.05)
        assert hostile.state.cut_off == 1 and hostile.state.finished == 0
