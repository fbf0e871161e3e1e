"""The verified exact cache end to end: the openai SDK against the running proxy and a counting fake upstream."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from decimal import Decimal
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from click.testing import CliRunner
from polling import until

from nextmodel_proxy.cli.main import main as nmproxy

MSG = [{"role": "user", "content": "cache me please"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
POLL_S = 2.0


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "ledger.db")


@pytest.fixture
async def proxy_with(write_config, start_proxy):
    """A proxy started from the base config plus extra YAML, and an openai client on it."""
    clients: list[openai.AsyncOpenAI] = []

    async def start(extra: str = "") -> tuple[Any, openai.AsyncOpenAI]:
        server = await start_proxy(write_config(extra))
        client = openai.AsyncOpenAI(base_url=server.base, api_key="sk-client", max_retries=0, timeout=20)
        clients.append(client)
        return server, client

    yield start
    for client in clients:
        await client.close()


async def chat(client, *, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    """One chat completion (temperature 0 unless given) as a raw response: headers + parse()."""
    kw.setdefault("model", "fake-basic")
    kw.setdefault("messages", MSG)
    if "seed" not in kw:
        kw.setdefault("temperature", 0)
    return await client.chat.completions.with_raw_response.create(extra_headers=headers or {}, **kw)


async def stream_chat(client, *, headers: dict[str, str] | None = None, **kw: Any) -> tuple[Any, list[Any]]:
    """A streamed chat completion: (headers, every chunk as the SDK parsed it)."""
    resp = await chat(client, headers=headers, stream=True, **kw)
    return resp.headers, [chunk async for chunk in resp.parse()]


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def tool_calls_of(chunks: list[Any]) -> list[dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += delta.id or ""
            entry["name"] += delta.function.name or ""
            entry["arguments"] += delta.function.arguments or ""
    return [calls[i] for i in sorted(calls)]


def message_calls(message: Any) -> list[dict[str, str]]:
    return [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
        for c in message.tool_calls or []
    ]


def query(db_path: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_path, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def execute(db_path: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    conn = sqlite3.connect(db_path, timeout=5)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


async def until_stored(db_path: str, key: str, receipt_id: str | None = None) -> None:
    """Cache writes go through the ledger writer after the answer: wait (bounded) until the entry is there."""
    deadline = time.monotonic() + POLL_S
    while time.monotonic() < deadline:
        rows = query(db_path, "SELECT fresh_receipt_id FROM cache_entries WHERE key = ?", (key,))
        if rows and (receipt_id is None or rows[0][0] == receipt_id):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"cache entry {key} (receipt {receipt_id}) was not stored within {POLL_S}s")


async def settle(db_path: str, receipts: int) -> None:
    """Wait (bounded) until `receipts` receipts are committed: the one writer thread runs ops in order and a
    request queues its cache writes before its receipt, so anything those requests would store is stored."""
    deadline = time.monotonic() + POLL_S
    while query(db_path, "SELECT COUNT(*) FROM receipts")[0][0] < receipts:
        assert time.monotonic() < deadline, f"fewer than {receipts} receipts after {POLL_S}s"
        await asyncio.sleep(0.02)


async def cached(client, db_path: str, **kw: Any) -> Any:
    """A fresh answer, waited for until it is in the cache."""
    first = await chat(client, **kw)
    assert first.headers["x-nextmodel-cache"] == "miss"
    await until_stored(db_path, first.headers["x-nextmodel-cache-key"])
    return first


def stored_keys(db_path: str) -> set[str]:
    return {row[0] for row in query(db_path, "SELECT key FROM cache_entries")}


async def receipt(proxy, receipt_id: str) -> dict[str, Any]:
    """GET /v1/receipts/{id}, waiting (bounded) for an asynchronously written receipt."""
    deadline = time.monotonic() + POLL_S
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{proxy.base}/receipts/{receipt_id}") as resp:
                if resp.status == 200:
                    return await resp.json()
            assert time.monotonic() < deadline, f"receipt {receipt_id} never appeared"
            await asyncio.sleep(0.02)


# --- hit and miss ---------------------------------------------------------------------------------------


async def test_repeat_is_replayed_without_an_upstream_call(client, fake_upstream, db_path):
    first = await cached(client, db_path)
    second = await chat(client)
    assert fake_upstream.state.calls == 1
    assert first.headers["x-nextmodel-served-mode"] == "fresh"
    assert second.headers["x-nextmodel-served-mode"] == "exact-cache"
    assert second.headers["x-nextmodel-cache"] == "hit"
    assert second.headers["x-nextmodel-cache-key"] == first.headers["x-nextmodel-cache-key"]
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert second.parse().usage == first.parse().usage


@pytest.mark.parametrize(
    "change",
    [
        {"messages": [{"role": "user", "content": "cache me pleasE"}]},
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "integer"}}},
                    },
                }
            ]
        },
        {"seed": 7},
        {"max_tokens": 50},
    ],
    ids=["one-character", "tool-schema", "seed-instead-of-temperature-0", "max-tokens"],
)
async def test_changed_output_affecting_field_misses(client, fake_upstream, db_path, change):
    base = {"tools": [TOOL]} if "tools" in change else {}
    first = await cached(client, db_path, **base)
    changed = await chat(client, **{**base, **change})
    assert changed.headers["x-nextmodel-cache"] == "miss"
    assert changed.headers["x-nextmodel-cache-key"] != first.headers["x-nextmodel-cache-key"]
    assert fake_upstream.state.calls == 2


async def test_key_order_and_whitespace_of_the_json_body_hit(proxy, fake_upstream, db_path):
    compact = b'{"model":"fake-basic","temperature":0,"messages":[{"role":"user","content":"order  me"}]}'
    spaced = b'{\n  "messages" : [ {"content": "order  me", "role": "user"} ],\n\t"temperature": 0.0,\n "model": "fake-basic"}'
    async with aiohttp.ClientSession(headers={"Content-Type": "application/json"}) as session:
        async with session.post(f"{proxy.base}/chat/completions", data=compact) as resp:
            assert resp.status == 200
            first_key, first_body = resp.headers["x-nextmodel-cache-key"], await resp.json()
        await until_stored(db_path, first_key)
        async with session.post(f"{proxy.base}/chat/completions", data=spaced) as resp:
            assert resp.status == 200
            assert resp.headers["x-nextmodel-cache"] == "hit"
            assert resp.headers["x-nextmodel-cache-key"] == first_key
            assert (await resp.json())["choices"] == first_body["choices"]
    assert fake_upstream.state.calls == 1


# --- stream and non-stream share entries ----------------------------------------------------------------


@pytest.mark.parametrize("model", ["fake-basic", "fake-text-tool"])
async def test_stream_replayed_to_non_stream_equals_original(client, fake_upstream, db_path, model):
    headers, chunks = await stream_chat(client, model=model, stream_options={"include_usage": True})
    await until_stored(db_path, headers["x-nextmodel-cache-key"])
    replay = await chat(client, model=model)
    assert replay.headers["x-nextmodel-cache"] == "hit"
    message = replay.parse().choices[0].message
    assert (message.content or "") == text_of(chunks)
    assert message_calls(message) == tool_calls_of(chunks)
    assert replay.parse().choices[0].finish_reason == chunks[-2].choices[0].finish_reason
    assert replay.parse().usage == chunks[-1].usage
    assert fake_upstream.state.calls == 1


@pytest.mark.parametrize("model", ["fake-basic", "fake-tools"])
async def test_non_stream_replayed_to_stream_equals_original(client, fake_upstream, db_path, model):
    first = (await cached(client, db_path, model=model)).parse()
    headers, chunks = await stream_chat(client, model=model, stream_options={"include_usage": True})
    assert headers["x-nextmodel-cache"] == "hit"
    message = first.choices[0].message
    assert text_of(chunks) == (message.content or "")
    assert tool_calls_of(chunks) == message_calls(message)
    assert chunks[-1].usage == first.usage
    assert fake_upstream.state.calls == 1


@pytest.mark.parametrize("include_usage", [True, False])
async def test_stream_replayed_to_stream_reproduces_the_original_events(
    client, fake_upstream, db_path, include_usage
):
    opts = {"stream_options": {"include_usage": True}} if include_usage else {}
    headers, original = await stream_chat(client, model="fake-tools", **opts)
    await until_stored(db_path, headers["x-nextmodel-cache-key"])
    replay_headers, replay = await stream_chat(client, model="fake-tools", **opts)
    assert replay_headers["x-nextmodel-cache"] == "hit"
    assert replay_headers["x-nextmodel-served-mode"] == "exact-cache"
    assert [c.model_dump() for c in replay] == [c.model_dump() for c in original]
    assert (original[-1].usage is not None) is include_usage
    assert fake_upstream.state.calls == 1


# --- what is never stored ---------------------------------------------------------------------------------


async def _consume_stream(client, model: str) -> None:
    try:
        await stream_chat(client, model=model)
    except openai.APIError:
        pass


@pytest.mark.parametrize(
    "model,stream",
    [
        ("fake-broken", True),
        ("fake-error-500", False),
        ("fake-error-500", True),
        ("fake-filter", False),
        ("fake-filter", True),
    ],
)
async def test_incomplete_or_failed_answers_are_not_stored(client, fake_upstream, db_path, model, stream):
    for sent in (1, 2):
        if stream:
            await _consume_stream(client, model)
        else:
            with pytest.raises(openai.APIStatusError) if "error" in model else _nothing():
                await chat(client, model=model)
        await settle(db_path, sent)
    assert fake_upstream.state.calls == 2
    assert stored_keys(db_path) == set()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


async def test_client_that_disconnects_mid_stream_is_not_stored(proxy, fake_upstream, db_path):
    body = {"model": "fake-slow", "temperature": 0, "stream": True, "messages": MSG}
    async with aiohttp.ClientSession() as session:
        resp = await session.post(f"{proxy.base}/chat/completions", json=body)
        assert resp.status == 200
        await resp.content.readuntil(b"\n\n")
        resp.close()
    await settle(db_path, 1)
    client = openai.AsyncOpenAI(base_url=proxy.base, api_key="sk-client", max_retries=0, timeout=20)
    async with client:
        repeat = await chat(client, model="fake-slow")
    assert repeat.headers["x-nextmodel-cache"] == "miss"
    assert fake_upstream.state.calls == 2
    rows = query(db_path, "SELECT status, error_code FROM receipts WHERE stream = 1")
    assert rows and rows[0][1] in {"client_closed", "stream_incomplete"}


# --- single-flight -----------------------------------------------------------------------------------------


async def test_burst_of_identical_requests_costs_one_upstream_call(client, fake_upstream):
    fake_upstream.state.hang_s = 0.3
    replies = await asyncio.gather(*(chat(client, model="fake-hang") for _ in range(8)))
    assert fake_upstream.state.calls == 1
    contents = {r.parse().choices[0].message.content for r in replies}
    assert len(contents) == 1
    statuses = sorted(r.headers["x-nextmodel-cache"] for r in replies)
    assert statuses == ["hit"] * 7 + ["miss"]
    assert sum(r.headers["x-nextmodel-served-mode"] == "exact-cache" for r in replies) == 7


async def test_burst_of_identical_streams_costs_one_upstream_call(client, fake_upstream):
    results = await asyncio.gather(*(stream_chat(client, model="fake-slow") for _ in range(8)))
    assert fake_upstream.state.calls == 1
    dumps = [[c.model_dump() for c in chunks] for _, chunks in results]
    assert all(d == dumps[0] for d in dumps)
    assert text_of(results[0][1]) == "Echo: cache me please"
    assert all(c.usage is None for _, chunks in results for c in chunks)


async def test_stream_follower_receives_the_leaders_events_as_they_come(client, fake_upstream):
    start = time.monotonic()
    leader = asyncio.create_task(stream_chat(client, model="fake-slow"))
    await until(lambda: fake_upstream.state.calls >= 1, "the leader reached the upstream")
    resp = await chat(client, model="fake-slow", stream=True, stream_options={"include_usage": True})
    assert resp.headers["x-nextmodel-cache"] == "hit"
    chunks, first_at = [], None
    async for chunk in resp.parse():
        first_at = first_at or time.monotonic() - start
        chunks.append(chunk)
    _, leader_chunks = await leader
    done_at = time.monotonic() - start
    assert fake_upstream.state.calls == 1
    assert first_at < done_at - 0.5  # the follower's first event came long before the leader finished
    # the same events; the usage chunk the leader's client did not ask for reaches only the follower, who did
    assert [c.model_dump() for c in chunks[:-1]] == [c.model_dump() for c in leader_chunks]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


async def test_stream_follower_of_a_leader_failing_mid_stream_ends_with_an_error(
    client, fake_upstream, proxy
):
    fake_upstream.state.cut_after = 3
    leader = asyncio.create_task(_consume_stream(client, "fake-slow"))
    await until(lambda: fake_upstream.state.calls >= 1, "the leader reached the upstream")
    resp = await chat(client, model="fake-slow", stream=True)
    assert resp.headers["x-nextmodel-cache"] == "hit"
    chunks = []
    with pytest.raises(openai.APIError, match="ended before the answer was complete"):
        async for chunk in resp.parse():
            chunks.append(chunk)
    await leader
    assert chunks and fake_upstream.state.calls == 1
    follower = await receipt(proxy, resp.headers["x-nextmodel-receipt-id"])
    assert (follower["status"], follower["error_code"]) == (502, "upstream_error")


@pytest.mark.parametrize("leader_streams", [True, False])
async def test_follower_of_the_other_kind_gets_the_same_answer(client, fake_upstream, leader_streams):
    fake_upstream.state.hang_s = 0.3
    model = "fake-slow" if leader_streams else "fake-hang"
    if leader_streams:
        leader = asyncio.create_task(stream_chat(client, model=model, stream_options={"include_usage": True}))
    else:
        leader = asyncio.create_task(chat(client, model=model))
    await until(lambda: fake_upstream.state.calls >= 1, "the leader reached the upstream")
    if leader_streams:
        follower = (await chat(client, model=model)).parse()
        _, chunks = await leader
    else:
        headers, chunks = await stream_chat(client, model=model, stream_options={"include_usage": True})
        assert headers["x-nextmodel-cache"] == "hit"
        follower = (await leader).parse()
    assert fake_upstream.state.calls == 1
    assert text_of(chunks) == follower.choices[0].message.content == "Echo: cache me please"
    assert chunks[-1].usage == follower.usage


async def test_followers_are_billed_as_replays_of_the_leaders_receipt(client, fake_upstream, proxy):
    fake_upstream.state.hang_s = 0.3
    replies = await asyncio.gather(*(chat(client, model="fake-hang") for _ in range(3)))
    (leader,) = [r for r in replies if r.headers["x-nextmodel-cache"] == "miss"]
    fresh = await receipt(proxy, leader.headers["x-nextmodel-receipt-id"])
    for reply in replies:
        if reply is not leader:
            replay = await receipt(proxy, reply.headers["x-nextmodel-receipt-id"])
            assert (replay["served_mode"], replay["usage_source"]) == ("exact-cache", "cache")
            assert replay["reused_receipt_id"] == fresh["id"]
            assert Decimal(replay["billed_cost_usd"]) == Decimal(fresh["billed_cost_usd"]) * Decimal("0.1")
            assert replay["upstream_cost_usd"] == "0.00"


async def test_stream_from_a_fallback_model_is_neither_stored_nor_shared(client, fake_upstream, db_path):
    # The key is over the route's first candidate; an answer from a later one must not pass as its replay.
    results = await asyncio.gather(*(stream_chat(client, model="resilient") for _ in range(3)))
    for headers, _ in results:
        assert headers["x-nextmodel-served-mode"] == "fresh"
        assert headers["x-nextmodel-provider"] == "fake"
    await settle(db_path, 3)
    assert stored_keys(db_path) == set()


@pytest.mark.parametrize("stream", [False, True])
async def test_followers_of_a_failed_leader_go_upstream_themselves(client, fake_upstream, stream):
    fake_upstream.state.hang_s = 0.3
    fake_upstream.state.fail_next = 1
    call = (
        (lambda: stream_chat(client, model="fake-hang"))
        if stream
        else (lambda: chat(client, model="fake-hang"))
    )
    results = await asyncio.gather(*(call() for _ in range(4)), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], openai.InternalServerError)
    for result in results:
        if not isinstance(result, BaseException):
            text = text_of(result[1]) if stream else result.parse().choices[0].message.content
            assert text == "Echo: cache me please"
    assert fake_upstream.state.calls == 4


# --- verification ------------------------------------------------------------------------------------------


async def _stats_when(db_path: str, ready: Any, timeout_s: float = 3.0) -> dict[str, Any]:
    """Cache stats once `ready(stats)` holds (hit/miss counters are written in batches), bounded in time."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = _cache_stats(db_path)
        if ready(stats) or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.05)


def _cache_stats(db_path: str) -> dict[str, Any]:
    result = CliRunner().invoke(nmproxy, ["cache", "stats", "--json", "--db", db_path])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.output)


async def _tampered_entry_is_answered_fresh(client, db_path: str, key: str) -> None:
    """The repeat of the request whose entry was tampered with: a fresh, correct answer; one failure counted."""
    repeat = await chat(client)
    assert repeat.headers["x-nextmodel-cache"] == "miss"
    assert repeat.headers["x-nextmodel-served-mode"] == "fresh"
    assert repeat.parse().choices[0].message.content == "Echo: cache me please"
    await until_stored(db_path, key, repeat.headers["x-nextmodel-receipt-id"])
    assert _cache_stats(db_path)["verification_failures"] == 1


async def test_forged_collision_is_detected_and_not_replayed(client, fake_upstream, db_path):
    first = await cached(client, db_path)
    other = await cached(client, db_path, messages=[{"role": "user", "content": "another request"}])
    key, other_key = first.headers["x-nextmodel-cache-key"], other.headers["x-nextmodel-cache-key"]
    # Force the other request's canonical bytes (and answer) under the first request's key.
    execute(
        db_path,
        "UPDATE cache_entries SET (canonical, body, body_hash) = "
        "(SELECT canonical, body, body_hash FROM cache_entries WHERE key = ?) WHERE key = ?",
        (other_key, key),
    )
    await _tampered_entry_is_answered_fresh(client, db_path, key)
    assert fake_upstream.state.calls == 3


async def test_corrupted_stored_body_is_detected_and_not_replayed(client, fake_upstream, db_path):
    first = await cached(client, db_path)
    key = first.headers["x-nextmodel-cache-key"]
    (body,) = query(db_path, "SELECT body FROM cache_entries WHERE key = ?", (key,))[0]
    flipped = bytearray(body)
    flipped[body.index(b"Echo") + 1] ^= 0x20  # 'c' -> 'C': still valid JSON, different bytes
    execute(db_path, "UPDATE cache_entries SET body = ? WHERE key = ?", (bytes(flipped), key))
    await _tampered_entry_is_answered_fresh(client, db_path, key)
    assert fake_upstream.state.calls == 2


async def test_projects_never_share_entries(client, fake_upstream, db_path):
    a = await cached(client, db_path, headers={"x-nextmodel-project": "a"})
    b = await chat(client, headers={"x-nextmodel-project": "b"})
    assert b.headers["x-nextmodel-cache"] == "miss"
    assert b.headers["x-nextmodel-cache-key"] != a.headers["x-nextmodel-cache-key"]
    again = await chat(client, headers={"x-nextmodel-project": "a"})
    assert again.headers["x-nextmodel-cache"] == "hit"
    assert fake_upstream.state.calls == 2


# --- TTL and size ------------------------------------------------------------------------------------------


async def test_entries_expire_after_the_configured_ttl(proxy_with, fake_upstream, db_path):
    _, client = await proxy_with("cache: {ttl: 0.8s}\n")
    await cached(client, db_path)
    assert (await chat(client)).headers["x-nextmodel-cache"] == "hit"
    await asyncio.sleep(0.85)
    assert (await chat(client)).headers["x-nextmodel-cache"] == "miss"
    assert fake_upstream.state.calls == 2


async def test_least_recently_used_entry_is_evicted_past_max_entries(proxy_with, fake_upstream, db_path):
    _, client = await proxy_with("cache: {max_entries: 2}\n")
    one = await cached(client, db_path, messages=[{"role": "user", "content": "one"}])
    await cached(client, db_path, messages=[{"role": "user", "content": "two"}])
    assert (await chat(client, messages=[{"role": "user", "content": "one"}])).headers[
        "x-nextmodel-cache"
    ] == "hit"
    key_one = one.headers["x-nextmodel-cache-key"]
    await until(  # the hit's recency reaches the file before the next store evicts
        lambda: query(db_path, "SELECT hits FROM cache_entries WHERE key = ?", (key_one,))[0][0] >= 1,
        "the hit was recorded",
    )
    await cached(client, db_path, messages=[{"role": "user", "content": "three"}])
    assert len(stored_keys(db_path)) == 2
    assert one.headers["x-nextmodel-cache-key"] in stored_keys(db_path)
    two = await chat(client, messages=[{"role": "user", "content": "two"}])
    assert two.headers["x-nextmodel-cache"] == "miss"
    assert fake_upstream.state.calls == 4


async def test_oldest_entries_are_evicted_past_max_bytes(proxy_with, fake_upstream, db_path):
    _, client = await proxy_with("cache: {max_bytes: 2500}\n")
    keys = []
    for word in ("one", "two", "three", "four"):
        keys.append(
            (await cached(client, db_path, messages=[{"role": "user", "content": word}])).headers[
                "x-nextmodel-cache-key"
            ]
        )
    (size,) = query(db_path, "SELECT SUM(size_bytes) FROM cache_entries")[0]
    assert size <= 2500
    assert keys[-1] in stored_keys(db_path) and keys[0] not in stored_keys(db_path)
    assert _cache_stats(db_path)["evictions"] >= 1


# --- per-request modes and policy --------------------------------------------------------------------------


async def test_skip_neither_reads_nor_writes(client, fake_upstream, db_path):
    skipped = await chat(client, headers={"x-nextmodel-cache": "skip"})
    assert skipped.headers["x-nextmodel-cache"] == "bypass"
    assert skipped.headers["x-nextmodel-cache-reason"] == "skip"
    await settle(db_path, 1)
    assert stored_keys(db_path) == set()
    await cached(client, db_path)
    again = await chat(client, headers={"x-nextmodel-cache": "skip"})
    assert again.headers["x-nextmodel-served-mode"] == "fresh"
    assert fake_upstream.state.calls == 3


async def test_refresh_calls_upstream_and_overwrites(client, fake_upstream, db_path):
    first = await cached(client, db_path)
    refreshed = await chat(client, headers={"x-nextmodel-cache": "refresh"})
    assert refreshed.headers["x-nextmodel-cache"] == "refresh"
    assert refreshed.headers["x-nextmodel-served-mode"] == "fresh"
    assert fake_upstream.state.calls == 2
    key = first.headers["x-nextmodel-cache-key"]
    await until_stored(db_path, key, refreshed.headers["x-nextmodel-receipt-id"])
    hit = await chat(client)
    assert hit.headers["x-nextmodel-cache"] == "hit"
    assert fake_upstream.state.calls == 2


async def test_only_answers_hits_and_refuses_misses_without_calling_upstream(client, fake_upstream, db_path):
    with pytest.raises(openai.APIStatusError) as refused:
        await chat(client, headers={"x-nextmodel-cache": "only"})
    assert refused.value.status_code == 504
    assert refused.value.body["code"] == "cache_miss"
    assert fake_upstream.state.calls == 0
    await cached(client, db_path)
    hit = await chat(client, headers={"x-nextmodel-cache": "only"})
    assert hit.headers["x-nextmodel-cache"] == "hit"
    assert fake_upstream.state.calls == 1


@pytest.mark.parametrize(
    "fields,reason",
    [({"temperature": 0.7}, "nondeterministic"), ({"temperature": 0.7, "seed": 3, "n": 2}, "n>1")],
)
async def test_uncacheable_request_bypasses_the_cache_and_says_why(
    client, fake_upstream, db_path, fields, reason
):
    for _ in range(2):
        resp = await chat(client, **fields)
        assert resp.headers["x-nextmodel-cache"] == "bypass"
        assert resp.headers["x-nextmodel-cache-reason"] == reason
    await settle(db_path, 2)
    assert fake_upstream.state.calls == 2
    assert stored_keys(db_path) == set()


async def test_unknown_cache_header_value_is_refused(client, fake_upstream):
    with pytest.raises(openai.BadRequestError) as refused:
        await chat(client, headers={"x-nextmodel-cache": "sometimes"})
    assert refused.value.body["param"] == "x-nextmodel-cache"
    assert fake_upstream.state.calls == 0


# --- billing ---------------------------------------------------------------------------------------------


async def test_replay_is_billed_at_the_replay_ratio_to_the_exact_digit(client, proxy, db_path):
    first = await cached(client, db_path)
    second = await chat(client)
    fresh = await receipt(proxy, first.headers["x-nextmodel-receipt-id"])
    replay = await receipt(proxy, second.headers["x-nextmodel-receipt-id"])
    assert fresh["served_mode"] == "fresh" and Decimal(fresh["billed_cost_usd"]) > 0
    assert replay["served_mode"] == "exact-cache"
    assert replay["usage_source"] == "cache"
    assert replay["upstream_cost_usd"] == "0.00"
    assert replay["fresh_cost_usd"] == fresh["billed_cost_usd"]
    assert Decimal(replay["billed_cost_usd"]) == Decimal(fresh["billed_cost_usd"]) * Decimal("0.1")
    assert Decimal(replay["savings_usd"]) == Decimal(fresh["billed_cost_usd"]) - Decimal(
        replay["billed_cost_usd"]
    )
    assert replay["reused_receipt_id"] == fresh["id"]
    assert (replay["prompt_tokens"], replay["completion_tokens"]) == (
        fresh["prompt_tokens"],
        fresh["completion_tokens"],
    )
    assert second.headers["x-nextmodel-cost-usd"] == replay["billed_cost_usd"]
    assert first.headers["x-nextmodel-cost-usd"] == fresh["billed_cost_usd"]
    await settle(db_path, 2)
    stats = await _stats_when(db_path, lambda s: s["hits"] + s["misses"] >= 2)  # counters flush every 0.5 s
    assert (stats["hits"], stats["misses"]) == (1, 1)
    assert Decimal(stats["money_saved_usd"]) == Decimal(replay["savings_usd"])


async def test_embeddings_are_cached_the_same_way(client, fake_upstream, db_path):
    first = await client.embeddings.with_raw_response.create(model="fake-embed", input=["alpha", "beta"])
    assert first.headers["x-nextmodel-cache"] == "miss"
    await until_stored(db_path, first.headers["x-nextmodel-cache-key"])
    second = await client.embeddings.with_raw_response.create(model="fake-embed", input=["alpha", "beta"])
    assert second.headers["x-nextmodel-cache"] == "hit"
    assert [d.embedding for d in second.parse().data] == [d.embedding for d in first.parse().data]
    other = await client.embeddings.with_raw_response.create(model="fake-embed", input=["alpha", "gamma"])
    assert other.headers["x-nextmodel-cache"] == "miss"
    assert fake_upstream.state.calls == 2


async def test_cli_purge_takes_effect_on_the_running_proxy_at_once(client, fake_upstream, db_path):
    await cached(client, db_path)
    assert (await chat(client)).headers["x-nextmodel-cache"] == "hit"
    result = CliRunner().invoke(nmproxy, ["cache", "purge", "--all", "--db", db_path])
    assert result.exit_code == 0, result.output
    assert "purged 1 cache entry" in result.output
    assert (await chat(client)).headers["x-nextmodel-cache"] == "miss"
    assert fake_upstream.state.calls == 2
