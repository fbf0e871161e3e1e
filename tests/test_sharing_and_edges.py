"""Edges found in review: a leader's client leaving, `only` without a cache, streamed embeddings, deep bodies."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from dataclasses import replace

import aiohttp
import openai
import pytest
from polling import until

MSG = [{"role": "user", "content": "shared answer please"}]


async def test_follower_stream_completes_when_the_leaders_client_leaves(proxy, client, fake_upstream):
    body = {"model": "fake-slow", "temperature": 0, "stream": True, "messages": MSG}
    async with aiohttp.ClientSession() as s:
        leader = await s.post(proxy.base + "/chat/completions", json=body)
        await leader.content.readuntil(b"\n\n")  # the leader's stream is open and upstream is mid-answer
        follower = await client.chat.completions.with_raw_response.create(
            model="fake-slow", temperature=0, stream=True, messages=MSG
        )
        assert follower.headers["x-nextmodel-cache"] == "hit"
        leader.close()  # the leader's client walks away
        chunks = [c async for c in follower.parse()]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: shared answer please"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert fake_upstream.state.calls == 1
    assert fake_upstream.state.cancelled == 0  # the upstream answer was read to the end for the follower
    receipt = await _receipt(proxy, follower.headers["x-nextmodel-receipt-id"])
    assert (receipt["served_mode"], receipt["status"], receipt["error_code"]) == ("exact-cache", 200, None)
    # the complete answer was stored too: a later identical request is a plain cache hit
    deadline = time.monotonic() + 3
    while True:
        again = await client.chat.completions.with_raw_response.create(
            model="fake-slow", temperature=0, messages=MSG
        )
        if again.headers["x-nextmodel-cache"] == "hit" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert again.headers["x-nextmodel-cache"] == "hit"


async def _receipt(proxy, receipt_id: str) -> dict:
    """A receipt by id, polled: a stream's receipt is written just after its last byte."""
    deadline = time.monotonic() + 3
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(f"{proxy.base}/receipts/{receipt_id}") as r:
                if r.status == 200 or time.monotonic() > deadline:
                    return await r.json()
            await asyncio.sleep(0.05)


async def test_leader_alone_still_cancels_upstream_when_its_client_leaves(proxy, fake_upstream):
    fake_upstream.state.silent_s = 3
    body = {"model": "fake-silent", "temperature": 0, "stream": True, "messages": MSG}
    async with aiohttp.ClientSession() as s:
        resp = await s.post(proxy.base + "/chat/completions", json=body)
        await resp.content.readuntil(b"\n\n")
        resp.close()
    deadline = time.monotonic() + 2
    while not fake_upstream.state.cancelled and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert fake_upstream.state.cancelled == 1


async def test_cache_only_never_calls_upstream_even_without_a_ledger(
    write_config, start_proxy, fake_upstream
):
    config = write_config()
    proxy = await start_proxy(replace(config, ledger=replace(config.ledger, enabled=False)))
    async with openai.AsyncOpenAI(base_url=proxy.base, api_key="x", max_retries=0) as c:
        with pytest.raises(openai.APIStatusError) as info:
            await c.chat.completions.create(
                model="gpt-test", temperature=0, messages=MSG, extra_headers={"x-nextmodel-cache": "only"}
            )
    assert info.value.status_code == 504
    assert info.value.body["code"] == "cache_miss"
    assert fake_upstream.state.calls == 0


async def test_embeddings_with_a_stream_flag_are_answered_as_json_also_from_the_cache(
    proxy, fake_upstream, tmp_path
):
    def stored() -> bool:
        with closing(sqlite3.connect(tmp_path / "ledger.db")) as conn:
            return conn.execute("SELECT COUNT(*) FROM cache_entries").fetchone()[0] >= 1

    body = {"model": "fake-embed", "input": "hello world", "stream": True}
    async with aiohttp.ClientSession() as s:
        answers = []
        for _ in range(2):
            async with s.post(proxy.base + "/embeddings", json=body) as r:
                answers.append(
                    (r.headers["Content-Type"], r.headers.get("x-nextmodel-cache"), await r.json())
                )
                await until(stored, "the answer was stored")
    (type1, cache1, first), (type2, cache2, second) = answers
    assert type1.startswith("application/json") and type2.startswith("application/json")
    assert (cache1, cache2) == ("miss", "hit")
    assert second["data"] == first["data"] and second["data"][0]["embedding"]


async def test_deeply_nested_body_is_a_400_not_a_500(proxy):
    nested: object = "x"
    for _ in range(300):
        nested = [nested]
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": nested}]}
    async with aiohttp.ClientSession() as s, s.post(proxy.base + "/chat/completions", json=body) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "invalid_body"
