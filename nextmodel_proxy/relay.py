"""Writing a stream to the client: the sink protocol, keep-alive comments, usage-chunk stripping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.sse import KEEPALIVE
from nextmodel_proxy.tee import StreamTee


class StreamSink(Protocol):
    """Where a stream goes: the handler's HTTP response."""

    async def start(self, status: int, headers: Mapping[str, str]) -> None: ...

    async def write(self, data: bytes) -> None: ...


class ClientGone(Exception):
    """The client closed its connection while we were writing to it."""


async def write(sink: StreamSink, data: bytes) -> None:
    try:
        await sink.write(data)
    except (ConnectionError, RuntimeError) as exc:
        raise ClientGone() from exc


async def start(sink: StreamSink, status: int, headers: Mapping[str, str]) -> None:
    try:
        await sink.start(status, headers)
    except (ConnectionError, RuntimeError) as exc:
        raise ClientGone() from exc


def error_event(exc: ProxyError) -> bytes:
    """An error after the stream started: one last SSE event carrying the OpenAI error object."""
    return b"data: " + exc.body() + b"\n\n"


class KeepAlive:
    """Writes `: keep-alive` while upstream is silent, so idle-timeout proxies keep slow streams open."""

    __slots__ = ("_sink", "_interval", "_last", "_task")

    def __init__(self, sink: StreamSink, interval: float) -> None:
        self._sink = sink
        self._interval = interval
        self._last = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def touch(self) -> None:
        self._last = time.monotonic()

    async def _run(self) -> None:
        try:
            while True:
                wait = self._last + self._interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                await self._sink.write(KEEPALIVE)
                self._last = time.monotonic()
        except (ConnectionError, RuntimeError):
            return

    def stop(self) -> None:
        self._task.cancel()


async def relay_batches(
    batches: AsyncIterator[list[bytes]],
    sink: StreamSink,
    tee: StreamTee,
    *,
    keepalive_s: float,
    wants_usage: bool,
    on_first: Callable[[], None],
    publish: Callable[[bytes], None] | None = None,
    keep_reading: Callable[[], bool] | None = None,
    held: list[bytes] | None = None,
) -> bool:
    """Write each upstream read's events in one write, then let the tee and followers see them.

    A usage-only chunk the client did not ask for is seen by the tee (and followers) but not written.
    With `held`, the final events (a usage-only chunk the client asked for, the terminal event such as
    `data: [DONE]`, and anything after it) are put there instead of written: the caller sends them once
    the receipt has committed. If the client goes away while `keep_reading()` says others still need the
    answer, reading goes on without writing. Returns whether the client was lost on the way.
    """
    keepalive = KeepAlive(sink, keepalive_s)
    first, writing = True, True
    try:
        async for batch in batches:
            keepalive.touch()
            if first:
                on_first()
                first = False
            out = hold_final(batch, tee, wants_usage, held)
            if out and writing:
                try:
                    await write(sink, out[0] if len(out) == 1 else b"".join(out))
                except ClientGone:
                    if keep_reading is None or not keep_reading():
                        raise
                    writing = False
                    keepalive.stop()
            if publish is not None:
                for raw in batch:
                    publish(raw)
    finally:
        keepalive.stop()
    return not writing


def hold_final(
    batch: list[bytes], tee: StreamTee, wants_usage: bool, held: list[bytes] | None
) -> list[bytes]:
    """The events of a batch to write now; the tee sees every event. A usage-only chunk the client did not
    ask for is dropped; with `held`, the final events from the first of them on go there instead."""
    out = []
    for raw in batch:
        usage_only = tee.observe(raw)
        if usage_only and not wants_usage:
            continue
        if held is not None and (held or usage_only or tee.done):
            held.append(raw)
        else:
            out.append(raw)
    return out


def split_final(events: list[bytes], tee: StreamTee) -> tuple[list[bytes], list[bytes]]:
    """(events to write now, final events to send once the receipt has committed) of a whole stream."""
    held: list[bytes] = []
    return hold_final(events, tee, True, held), held
