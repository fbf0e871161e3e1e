"""relay on its own: batched writes, usage-chunk stripping, held final events, a client that goes away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from nextmodel_proxy.relay import ClientGone, relay_batches, split_final
from nextmodel_proxy.tee import StreamTee

DONE = b"data: [DONE]\n\n"


def event(obj: dict) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


TEXT = event({"id": "x", "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]})
STOP = event({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
USAGE = event({"id": "x", "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 1}})


class Sink:
    """A StreamSink that records writes and can fail from the n-th write on."""

    def __init__(self, fail_from: int | None = None) -> None:
        self.writes: list[bytes] = []
        self.fail_from = fail_from

    async def start(self, status: int, headers: dict) -> None:
        pass

    async def write(self, data: bytes) -> None:
        if self.fail_from is not None and len(self.writes) >= self.fail_from:
            raise ConnectionResetError("client went away")
        self.writes.append(data)


async def batches(*groups: list[bytes]) -> AsyncIterator[list[bytes]]:
    for group in groups:
        await asyncio.sleep(0)
        yield group


async def relay(
    sink: Sink, *groups: list[bytes], wants_usage: bool = False, **kw
) -> tuple[bool, StreamTee, list]:
    tee, firsts = StreamTee(collect=True), []
    lost = await relay_batches(
        batches(*groups),
        sink,
        tee,
        keepalive_s=60,
        wants_usage=wants_usage,
        on_first=lambda: firsts.append(1),
        **kw,
    )
    return lost, tee, firsts


async def test_each_upstream_read_is_one_write_and_the_unasked_usage_chunk_is_not_sent():
    sink = Sink()
    lost, tee, firsts = await relay(sink, [TEXT, STOP], [USAGE, DONE])
    assert not lost and firsts == [1]
    assert sink.writes == [TEXT + STOP, DONE]
    assert tee.complete and tee.usage == {"prompt_tokens": 2, "completion_tokens": 1}  # the tee saw it


async def test_a_client_that_asked_for_usage_gets_it():
    sink = Sink()
    await relay(sink, [TEXT, STOP, USAGE, DONE], wants_usage=True)
    assert sink.writes == [TEXT + STOP + USAGE + DONE]


async def test_held_final_events_wait_for_the_caller():
    sink, held = Sink(), []
    await relay(sink, [TEXT, STOP], [USAGE, DONE], wants_usage=True, held=held)
    assert sink.writes == [TEXT + STOP] and held == [USAGE, DONE]
    now, later = split_final([TEXT, STOP, USAGE, DONE], StreamTee(collect=False))
    assert now == [TEXT, STOP] and later == [USAGE, DONE]


async def test_a_gone_client_raises_unless_others_still_need_the_answer():
    with pytest.raises(ClientGone):
        await relay(Sink(fail_from=1), [TEXT], [STOP], [DONE])
    published: list[bytes] = []
    lost, tee, _ = await relay(
        Sink(fail_from=1), [TEXT], [STOP], [DONE], publish=published.append, keep_reading=lambda: True
    )
    assert lost and tee.complete and published == [TEXT, STOP, DONE]  # read to the end for the followers
