"""Retries with backoff and fallback across route candidates, before the first byte reaches the client."""

from __future__ import annotations

import time

import aiohttp


async def test_transient_500_is_retried_on_the_same_candidate(client, fake_upstream):
    resp = await client.chat.completions.with_raw_response.create(
        model="flaky-500", messages=[{"role": "user", "content": "retry me"}]
    )
    assert resp.parse().choices[0].message.content == "Echo: retry me"
    assert fake_upstream.state.calls == 2


async def test_429_retry_honours_retry_after(client, fake_upstream):
    start = time.perf_counter()
    completion = await client.chat.completions.create(
        model="flaky-429", messages=[{"role": "user", "content": "patience"}]
    )
    assert completion.choices[0].message.content == "Echo: patience"
    assert fake_upstream.state.calls == 2
    assert time.perf_counter() - start >= 0.05


async def test_route_falls_back_past_refused_connection_and_500s(client, fake_upstream):
    resp = await client.chat.completions.with_raw_response.create(
        model="resilient", messages=[{"role": "user", "content": "get there"}]
    )
    assert resp.parse().choices[0].message.content == "Echo: get there"
    # dead-model refused (no retries configured), always-500 tried 1 + 2 retries, then backup answered
    assert fake_upstream.state.calls == 4
    assert resp.headers["x-nextmodel-provider"] == "fake"


async def test_missing_key_falls_back_without_retrying(client, fake_upstream):
    completion = await client.chat.completions.create(
        model="keyless-first", messages=[{"role": "user", "content": "next please"}]
    )
    assert completion.choices[0].message.content == "Echo: next please"
    assert fake_upstream.state.calls == 1


async def test_upstream_4xx_is_not_retried(client, fake_upstream):
    async with aiohttp.ClientSession() as s:
        async with s.post(
            str(client.base_url) + "chat/completions",
            json={"model": "fake-error-400", "messages": [{"role": "user", "content": "x"}]},
        ) as r:
            assert r.status == 400
    assert fake_upstream.state.calls == 1


async def test_no_retry_after_first_streamed_byte(client, fake_upstream):
    stream = await client.chat.completions.create(
        model="retry-broken", stream=True, messages=[{"role": "user", "content": "cut me off"}]
    )
    received = []
    try:
        async for chunk in stream:
            received.append(chunk)
    except Exception:  # noqa: BLE001 - the SDK may raise on the cut connection; either way no retry
        pass
    assert received
    assert fake_upstream.state.calls == 1
