"""The cache pieces composed the way the request path uses them, with a counting fake upstream."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from nextmodel_proxy.cache import store as cache
from nextmodel_proxy.cache.key import cache_key, canonical_request, decide
from nextmodel_proxy.cache.replay import (
    encode_events,
    is_complete_stream,
    replay,
    replay_stream,
    sse_to_completion,
)
from nextmodel_proxy.cache.sharing import FlightFailed, SingleFlight
from nextmodel_proxy.config import CacheConfig
from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.sse import DONE, data_event

CFG = CacheConfig(ttl_s=3600)
HEAD = {"id": "chatcmpl-f", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}


class Proxy:
    """Just enough of a request path: writer and reader connections, single-flight, a fake upstream."""

    def __init__(self, path):
        self.writer = db.open_db(path)
        self.reader = db.connect(path, readonly=True)
        self.flights = SingleFlight(idle_timeout_s=2)
        self.upstream_calls = 0

    async def upstream(self, body):
        self.upstream_calls += 1
        text = body["messages"][-1]["content"].upper()
        for piece in ([{"role": "assistant", "content": ""}, None], [{"content": text}, None], [{}, "stop"]):
            await asyncio.sleep(0.005)
            yield data_event(
                {**HEAD, "choices": [{"index": 0, "delta": piece[0], "finish_reason": piece[1]}]}
            )
        yield data_event({**HEAD, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
        yield DONE

    async def serve(self, body, *, include_usage=True):
        """Events the client receives (a stream request)."""
        decision = decide(body, None, CFG, None)
        key, canonical = _key_and_canonical(body)
        hit = cache.lookup(self.reader, key, canonical, now=time.time(), ttl_s=CFG.ttl_s)
        if decision.read and hit is not None:
            return "hit", replay(hit.response_kind, hit.body, stream=True, include_usage=include_usage)
        flight = self.flights.lead_or_follow(key, canonical)
        if not flight.is_leader:
            try:
                return "follow", replay_stream(await flight.wait(), include_usage=include_usage)
            except FlightFailed:
                pass
        with flight:
            events = []
            async for event in self.upstream(body):
                events.append(event)  # the client is written first, then the followers
                flight.publish(event)
            ok = is_complete_stream(events)
            flight.finish(ok)
        if ok and decision.write:
            cache.store_and_evict(
                self.writer,
                cache.CacheEntry(
                    key=key,
                    scope="project:a",
                    provider="openai",
                    model="gpt-4o-mini",
                    endpoint="chat",
                    canonical=canonical,
                    response_kind="sse",
                    body=encode_events(events),
                    usage=None,
                    fresh_receipt_id="rcpt_fresh",
                    fresh_cost_pusd=100,
                    created_at=time.time(),
                ),
                max_entries=CFG.max_entries,
                max_bytes=CFG.max_bytes,
                ttl_s=CFG.ttl_s,
            )
        return "fresh", replay_stream(events, include_usage=include_usage)


@pytest.fixture
def proxy(tmp_path):
    p = Proxy(tmp_path / "flow.db")
    yield p
    p.writer.close()
    p.reader.close()


BODY = {"model": "fast", "messages": [{"role": "user", "content": "hello"}], "temperature": 0, "stream": True}


async def test_burst_costs_one_upstream_call_and_a_repeat_costs_none(proxy):
    results = await asyncio.wait_for(asyncio.gather(*(proxy.serve(BODY) for _ in range(10))), 5)
    assert proxy.upstream_calls == 1
    assert sorted(mode for mode, _ in results) == ["follow"] * 9 + ["fresh"]
    assert len({tuple(events) for _, events in results}) == 1
    mode, events = await proxy.serve({**BODY, "stream": False, "user": "someone else"})
    assert mode == "hit" and proxy.upstream_calls == 1
    assert sse_to_completion(events)["choices"][0]["message"]["content"] == "HELLO"


async def test_changed_message_misses_and_non_stream_replay_matches(proxy):
    await proxy.serve(BODY)
    await proxy.serve({**BODY, "messages": [{"role": "user", "content": "hellO"}]})
    assert proxy.upstream_calls == 2
    hit = cache.lookup(proxy.reader, *_key_and_canonical(BODY), now=time.time(), ttl_s=3600)
    as_json = orjson.loads(replay(hit.response_kind, hit.body, stream=False, include_usage=False))
    assert as_json["choices"][0]["message"]["content"] == "HELLO"
    assert as_json["usage"] == {"prompt_tokens": 3, "completion_tokens": 1}


def _key_and_canonical(body):
    canonical = canonical_request(
        body, scope="project:a", provider="openai", upstream_model="gpt-4o-mini", endpoint="chat"
    )
    return cache_key(canonical), canonical
